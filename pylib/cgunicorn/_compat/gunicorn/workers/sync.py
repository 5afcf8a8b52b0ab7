"""gunicorn.workers.sync: the name of the sync worker (C in cgunicorn)."""
from cgunicorn.workers import SyncWorker

__all__ = ["SyncWorker"]
