"""gunicorn.dirty.app: cgunicorn.dirty.app under Gunicorn's name."""
from cgunicorn.dirty.app import *  # noqa: F401,F403
