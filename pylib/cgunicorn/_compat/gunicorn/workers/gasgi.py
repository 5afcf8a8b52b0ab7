"""gunicorn.workers.gasgi: the name of the ASGI worker (C in cgunicorn)."""
from cgunicorn.workers import ASGIWorker

__all__ = ["ASGIWorker"]
