"""gunicorn.debug for code written for Gunicorn: cgunicorn's."""
from cgunicorn.debug import Spew, spew, unspew  # noqa: F401
