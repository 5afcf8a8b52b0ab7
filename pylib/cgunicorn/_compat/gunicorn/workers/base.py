"""gunicorn.workers.base: the base class of Python worker classes
(cgunicorn.workers.base.Worker)."""
from cgunicorn.workers.base import Worker

__all__ = ["Worker"]
