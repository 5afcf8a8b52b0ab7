"""gunicorn.errors: cgunicorn.errors under Gunicorn's name."""
from cgunicorn.errors import AppImportError, ConfigError, HaltServer

__all__ = ["AppImportError", "ConfigError", "HaltServer"]
