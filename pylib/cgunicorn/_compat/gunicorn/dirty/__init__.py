"""gunicorn.dirty: cgunicorn.dirty under Gunicorn's name."""
from cgunicorn.dirty import *  # noqa: F401,F403
from cgunicorn.dirty import __all__  # noqa: F401
