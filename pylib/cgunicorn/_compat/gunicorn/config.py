"""gunicorn.config: cgunicorn.config under Gunicorn's name."""
from cgunicorn.config import Config, Setting, auto_int, get_default_config_file

__all__ = ["Config", "Setting", "auto_int", "get_default_config_file"]
