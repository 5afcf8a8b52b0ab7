"""cgunicorn: Gunicorn's pre-fork HTTP server, rebuilt in C.

The server is C (the ``cgunicorn._core`` extension module); this package is
its Python front end: the ``cgunicorn`` console script, ``python -m
cgunicorn`` and Gunicorn's programmatic API (``cgunicorn.app.base``).
"""
import os
import sys

from cgunicorn._core import SERVER_SOFTWARE, __version__

version_info = tuple(int(p) for p in __version__.split("."))


def _reexec_command():
    """What a USR2 upgrade executes: (sys.executable, sys.orig_argv) with
    the script's path made absolute. The new master starts in the directory
    the old one ended up in (--chdir), where a relative script path such as
    venv/bin/cgunicorn would name nothing."""
    orig = list(getattr(sys, "orig_argv", None) or [])
    script = sys.argv[0] if sys.argv else ""
    if script and script not in ("-c", "-m") and not os.path.isabs(script):
        for i in range(1, len(orig)):
            if orig[i] == script:
                orig[i] = os.path.abspath(script)
                break
    return sys.executable, (orig or None)

__all__ = ["SERVER_SOFTWARE", "__version__", "version_info"]
