"""gunicorn.workers.gthread: the name of the gthread worker (C in cgunicorn)."""
from cgunicorn.workers import ThreadWorker

__all__ = ["ThreadWorker"]
