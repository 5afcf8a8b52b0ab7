"""gunicorn.dirty.errors: cgunicorn.dirty.errors under Gunicorn's name."""
from cgunicorn.dirty.errors import *  # noqa: F401,F403

__all__ = [n for n in dir() if not n.startswith("_")]
