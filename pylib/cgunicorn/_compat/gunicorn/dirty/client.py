"""gunicorn.dirty.client: cgunicorn.dirty.client under Gunicorn's name."""
from cgunicorn.dirty.client import *  # noqa: F401,F403
