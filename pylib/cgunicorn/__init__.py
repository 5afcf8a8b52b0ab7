"""cgunicorn: Gunicorn's pre-fork HTTP server, rebuilt in C.

The server is C (the ``cgunicorn._core`` extension module); this package is
its Python front end: the ``cgunicorn`` console script, ``python -m
cgunicorn`` and Gunicorn's programmatic API (``cgunicorn.app.base``).
"""
from cgunicorn._core import SERVER_SOFTWARE, __version__

version_info = tuple(int(p) for p in __version__.split("."))

__all__ = ["SERVER_SOFTWARE", "__version__", "version_info"]
