"""``gunicorn`` for code written against Gunicorn (config files, custom
applications), where Gunicorn itself is not installed: thin names for the
``cgunicorn`` modules. An installed Gunicorn comes first on sys.path and is
used instead (see cgunicorn-gunicorn-compat.pth)."""
from cgunicorn import SERVER_SOFTWARE, __version__, version_info

SERVER = "gunicorn"

__all__ = ["SERVER", "SERVER_SOFTWARE", "__version__", "version_info"]
