"""gunicorn.app.base: cgunicorn.app.base under Gunicorn's name."""
from cgunicorn.app.base import Application, BaseApplication

__all__ = ["Application", "BaseApplication"]
