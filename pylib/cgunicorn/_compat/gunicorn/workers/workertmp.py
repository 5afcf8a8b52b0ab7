"""gunicorn.workers.workertmp: the worker's heartbeat under Gunicorn's
name (cgunicorn.workers.base.WorkerTmp; shared memory, not a file)."""
from cgunicorn.workers.base import WorkerTmp

__all__ = ["WorkerTmp"]
