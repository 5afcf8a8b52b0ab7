"""gunicorn.config: cgunicorn.config under Gunicorn's name."""
from cgunicorn.config import (AccessLogFormat, Config, Setting, auto_int,
                              get_default_config_file)

__all__ = ["AccessLogFormat", "Config", "Setting", "auto_int", "get_default_config_file"]
