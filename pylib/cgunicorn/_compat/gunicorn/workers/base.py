"""gunicorn.workers.base: the name of Gunicorn's worker base class."""
from cgunicorn.workers import Worker

__all__ = ["Worker"]
