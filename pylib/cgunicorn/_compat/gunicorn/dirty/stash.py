"""gunicorn.dirty.stash: cgunicorn.dirty.stash under Gunicorn's name."""
from cgunicorn.dirty.stash import *  # noqa: F401,F403
from cgunicorn.dirty.stash import __all__  # noqa: F401
