"""gunicorn.glogging: cgunicorn.glogging under Gunicorn's name."""
from cgunicorn.glogging import CONFIG_DEFAULTS, SYSLOG_FACILITIES, Logger, SafeAtoms, loggers

__all__ = ["CONFIG_DEFAULTS", "SYSLOG_FACILITIES", "Logger", "SafeAtoms", "loggers"]
