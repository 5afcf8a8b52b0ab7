"""Gunicorn's ``gunicorn.glogging`` for code that imports it: the
``CONFIG_DEFAULTS`` that logconfig_dict and logconfig_json are merged over,
the syslog facility table, ``SafeAtoms`` and the ``Logger`` class.

With the default ``logger_class`` the server writes its error and access
logs from C (and through Python's logging only when a logconfig* setting
asks for it). ``Logger`` here is a working Python logger with Gunicorn's
interface: a ``logger_class`` that subclasses it (overriding ``access``,
``atoms``, the error methods ...) is instantiated and called by the server
as Gunicorn calls it (docs/logger-class.md).
"""
import base64
import binascii
import logging
import logging.config
import logging.handlers
import os
import socket
import sys
import threading
import time
import traceback

# Gunicorn's table of syslog facility names (RFC 5424 codes)
SYSLOG_FACILITIES = {
    "auth": 4, "authpriv": 10, "cron": 9, "daemon": 3, "ftp": 11, "kern": 0,
    "lpr": 6, "mail": 2, "news": 7, "security": 4, "syslog": 5, "user": 1,
    "uucp": 8, "local0": 16, "local1": 17, "local2": 18, "local3": 19,
    "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

def parse_syslog_address(addr):
    """(socket type, address) for a syslog_addr: unix://PATH[#dgram]
    gives (None or SOCK_DGRAM, PATH) -- None lets SysLogHandler try a
    datagram socket, then a stream one; udp:// and tcp://HOST:PORT give
    (SOCK_DGRAM or SOCK_STREAM, (host, port)), port 514 by default."""
    if addr.startswith("unix://"):
        path, _, kind = addr[len("unix://"):].partition("#")
        return (socket.SOCK_DGRAM if kind == "dgram" else None), path
    for scheme, socktype in (("udp://", socket.SOCK_DGRAM), ("tcp://", socket.SOCK_STREAM)):
        if addr.startswith(scheme):
            rest = addr[len(scheme):]
            break
    else:
        raise RuntimeError("invalid syslog address")
    if "[" in rest and "]" in rest:
        host = rest.split("]")[0][1:].lower()
    elif ":" in rest:
        host = rest.split(":")[0].lower()
    else:
        host = rest.lower() or "localhost"
    tail = rest.split("]")[-1]
    port = 514
    if ":" in tail:
        text = tail.split(":", 1)[1]
        if not text.isdigit():
            raise RuntimeError("%r is not a valid port number." % text)
        port = int(text)
    return socktype, (host, port)


_GENERIC_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
_DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"

# What a logconfig_dict (or the JSON of logconfig_json) is merged over: the
# error log on stderr, the access log and the root logger on stdout, all in
# the error log's format.
CONFIG_DEFAULTS = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {
            "level": "INFO",
            "handlers": ["error_console"],
            "propagate": True,
            "qualname": "gunicorn.error",
        },
        "gunicorn.access": {
            "level": "INFO",
            "handlers": ["console"],
            "propagate": True,
            "qualname": "gunicorn.access",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stdout",
        },
        "error_console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stderr",
        },
    },
    "formatters": {
        "generic": {
            "format": _GENERIC_FORMAT,
            "datefmt": _DATE_FORMAT,
            "class": "logging.Formatter",
        },
    },
}


def loggers():
    """Every named logger Python's logging knows (the root is not one)."""
    return [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]


class SafeAtoms(dict):
    """Access-log atoms for %-formatting: double quotes in text escaped, a
    missing atom shown as "-", {header}i/o/e atoms found whatever their case."""

    def __init__(self, atoms):
        super().__init__()
        for key, value in atoms.items():
            self[key] = value.replace('"', '\\"') if isinstance(value, str) else value

    def __getitem__(self, key):
        if key.startswith("{"):
            key = key.lower()
        return super().__getitem__(key) if key in self else "-"


class Logger:
    """Gunicorn's logger interface over Python's logging: the
    "gunicorn.error" logger (critical ... debug, exception, log) and the
    "gunicorn.access" logger (access())."""

    LOG_LEVELS = {
        "critical": logging.CRITICAL,
        "error": logging.ERROR,
        "warning": logging.WARNING,
        "info": logging.INFO,
        "debug": logging.DEBUG,
    }
    loglevel = logging.INFO

    error_fmt = _GENERIC_FORMAT
    datefmt = _DATE_FORMAT
    access_fmt = "%(message)s"
    syslog_fmt = "[%(process)d] %(message)s"

    atoms_wrapper_class = SafeAtoms

    def __init__(self, cfg):
        self.error_log = logging.getLogger("gunicorn.error")
        self.error_log.propagate = False
        self.access_log = logging.getLogger("gunicorn.access")
        self.access_log.propagate = False
        self.error_handlers = []
        self.access_handlers = []
        self.logfile = None
        self.lock = threading.Lock()
        self.cfg = cfg
        self.setup(cfg)

    def setup(self, cfg):
        """(Re)build the handlers for cfg: errorlog, accesslog, then any
        logconfig_dict / logconfig_json / logconfig on top."""
        self.cfg = cfg
        self.loglevel = self.LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO)
        self.error_log.setLevel(self.loglevel)
        self.access_log.setLevel(logging.INFO)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                if getattr(handler, "_gunicorn", False):
                    log.removeHandler(handler)
        if cfg.capture_output and cfg.errorlog != "-":
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            self.logfile = open(cfg.errorlog, "a+")
            os.dup2(self.logfile.fileno(), sys.stdout.fileno())
            os.dup2(self.logfile.fileno(), sys.stderr.fileno())
        self._set_handler(self.error_log, cfg.errorlog,
                          logging.Formatter(self.error_fmt, self.datefmt))
        if cfg.accesslog is not None:
            self._set_handler(self.access_log, cfg.accesslog,
                              logging.Formatter(self.access_fmt), stream=sys.stdout)
        if cfg.syslog:
            self._set_syslog_handler(self.error_log, cfg, self.syslog_fmt, "error")
            if not cfg.disable_redirect_access_to_syslog:
                self._set_syslog_handler(self.access_log, cfg, self.syslog_fmt, "access")
        if cfg.logconfig_dict:
            self._dict_config(dict(cfg.logconfig_dict))
        elif cfg.logconfig_json:
            if os.path.exists(cfg.logconfig_json):
                import json
                try:
                    with open(cfg.logconfig_json) as f:
                        loaded = json.load(f)
                except json.JSONDecodeError as exc:
                    raise RuntimeError(str(exc)) from exc
                self._dict_config(loaded)
        elif cfg.logconfig:
            if not os.path.exists(cfg.logconfig):
                raise RuntimeError("Error: log config '%s' not found" % cfg.logconfig)
            defaults = dict(CONFIG_DEFAULTS)
            defaults["__file__"] = cfg.logconfig
            defaults["here"] = os.path.dirname(cfg.logconfig)
            logging.config.fileConfig(cfg.logconfig, defaults=defaults,
                                      disable_existing_loggers=False)

    @staticmethod
    def _dict_config(overrides):
        config = dict(CONFIG_DEFAULTS)
        config.update(overrides)
        try:
            logging.config.dictConfig(config)
        except (AttributeError, ImportError, ValueError, TypeError) as exc:
            raise RuntimeError(str(exc)) from exc

    def critical(self, msg, *args, **kwargs):
        self.error_log.critical(msg, *args, **kwargs)

    def error(self, msg, *args, **kwargs):
        self.error_log.error(msg, *args, **kwargs)

    def warning(self, msg, *args, **kwargs):
        self.error_log.warning(msg, *args, **kwargs)

    def info(self, msg, *args, **kwargs):
        self.error_log.info(msg, *args, **kwargs)

    def debug(self, msg, *args, **kwargs):
        self.error_log.debug(msg, *args, **kwargs)

    def exception(self, msg, *args, **kwargs):
        self.error_log.exception(msg, *args, **kwargs)

    def log(self, lvl, msg, *args, **kwargs):
        """Log at lvl: a logging level number or a name ("info"...)."""
        if isinstance(lvl, str):
            lvl = self.LOG_LEVELS.get(lvl.lower(), logging.INFO)
        self.error_log.log(lvl, msg, *args, **kwargs)

    def atoms(self, resp, req, environ, request_time):
        """The access-log atoms of one request (see access_log_format):
        resp has status, sent and headers; req has headers (or is them);
        request_time is a datetime.timedelta."""
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        secs, usecs = request_time.seconds, request_time.microseconds
        atoms = {
            "h": environ.get("REMOTE_ADDR", "-"),
            "l": "-",
            "u": self._get_user(environ) or "-",
            "t": self.now(),
            "r": "%s %s %s" % (environ["REQUEST_METHOD"], environ["RAW_URI"],
                               environ["SERVER_PROTOCOL"]),
            "s": status,
            "m": environ.get("REQUEST_METHOD"),
            "U": environ.get("PATH_INFO"),
            "q": environ.get("QUERY_STRING"),
            "H": environ.get("SERVER_PROTOCOL"),
            "b": str(sent) if sent is not None else "-",
            "B": sent,
            "f": environ.get("HTTP_REFERER", "-"),
            "a": environ.get("HTTP_USER_AGENT", "-"),
            "T": secs,
            "D": secs * 1000000 + usecs,
            "M": secs * 1000 + usecs // 1000,
            "L": "%d.%06d" % (secs, usecs),
            "p": "<%s>" % os.getpid(),
        }
        headers = getattr(req, "headers", req)
        headers = headers.items() if hasattr(headers, "items") else headers
        atoms.update(("{%s}i" % k.lower(), v) for k, v in headers)
        headers = resp.headers
        headers = headers.items() if hasattr(headers, "items") else headers
        atoms.update(("{%s}o" % k.lower(), v) for k, v in headers)
        atoms.update(("{%s}e" % k.lower(), v) for k, v in environ.items())
        return atoms

    @property
    def access_log_enabled(self):
        """Whether access() writes anything with this configuration."""
        cfg = self.cfg
        return bool(cfg.accesslog or cfg.logconfig or cfg.logconfig_dict
                    or cfg.logconfig_json
                    or (cfg.syslog and not cfg.disable_redirect_access_to_syslog))

    def access(self, resp, req, environ, request_time):
        """Write one access-log line in access_log_format."""
        if not self.access_log_enabled:
            return
        safe = self.atoms_wrapper_class(self.atoms(resp, req, environ, request_time))
        try:
            self.access_log.info(self.cfg.access_log_format, safe)
        except Exception:
            self.error(traceback.format_exc())

    def now(self):
        """The time as the access log's %(t)s shows it."""
        return time.strftime("[%d/%b/%Y:%H:%M:%S %z]")

    def reopen_files(self):
        """Reopen every file a logging handler writes (after log rotation:
        USR1)."""
        if self.cfg.capture_output and self.cfg.errorlog != "-":
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            with self.lock:
                if self.logfile is not None:
                    self.logfile.close()
                self.logfile = open(self.cfg.errorlog, "a+")
                os.dup2(self.logfile.fileno(), sys.stdout.fileno())
                os.dup2(self.logfile.fileno(), sys.stderr.fileno())
        for log in loggers():
            for handler in log.handlers:
                if isinstance(handler, logging.FileHandler):
                    handler.acquire()
                    try:
                        if handler.stream:
                            handler.close()
                            handler.stream = handler._open()
                    finally:
                        handler.release()

    def close_on_exec(self):
        """Mark the log files' descriptors close-on-exec."""
        for log in loggers():
            for handler in log.handlers:
                if isinstance(handler, logging.FileHandler) and handler.stream:
                    os.set_inheritable(handler.stream.fileno(), False)

    def _get_gunicorn_handler(self, log):
        for handler in log.handlers:
            if getattr(handler, "_gunicorn", False):
                return handler
        return None

    def _set_handler(self, log, output, fmt, stream=None):
        """Replace log's own handler by one writing to output ("-": the
        stream, else a file)."""
        old = self._get_gunicorn_handler(log)
        if old is not None:
            log.handlers.remove(old)
        if output is None:
            return
        if output == "-":
            handler = logging.StreamHandler(stream)
        else:
            handler = logging.FileHandler(output)
            try:
                # the workers (another user after --user) reopen it
                os.chown(handler.baseFilename, self.cfg.user, self.cfg.group)
            except OSError:
                pass
        handler.setFormatter(fmt)
        handler._gunicorn = True
        log.addHandler(handler)

    def _set_syslog_handler(self, log, cfg, fmt, name):
        """Add a SysLogHandler for cfg's syslog settings to log, its records
        tagged "gunicorn.<prefix>.<name>: " (the server itself sends the
        same records from C: src/log/syslog.c)."""
        prefix = cfg.syslog_prefix or cfg.proc_name.replace(":", ".")
        formatter = logging.Formatter("gunicorn.%s.%s: %s" % (prefix, name, fmt))
        facility = SYSLOG_FACILITIES.get(cfg.syslog_facility.lower())
        if facility is None:
            raise RuntimeError("unknown facility name")
        socktype, address = parse_syslog_address(cfg.syslog_addr)
        handler = logging.handlers.SysLogHandler(address=address, facility=facility,
                                                 socktype=socktype)
        handler.setFormatter(formatter)
        handler._gunicorn = True
        log.addHandler(handler)

    def _get_user(self, environ):
        """The user name of a Basic Authorization header, or None."""
        auth = environ.get("HTTP_AUTHORIZATION")
        if not auth or not auth.lower().startswith("basic"):
            return None
        parts = auth.split(" ", 1)
        if len(parts) != 2:
            return None
        try:
            decoded = base64.b64decode(parts[1].strip().encode("utf-8"))
            return decoded.split(b":", 1)[0].decode("utf-8")
        except (TypeError, binascii.Error, UnicodeDecodeError) as exc:
            self.debug("Couldn't get username: %s", exc)
            return None
