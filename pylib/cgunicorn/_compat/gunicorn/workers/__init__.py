"""gunicorn.workers: the names of the worker classes cgunicorn runs (the
workers themselves are C; see cgunicorn.workers)."""
from cgunicorn.workers import SUPPORTED_WORKERS

__all__ = ["SUPPORTED_WORKERS"]
