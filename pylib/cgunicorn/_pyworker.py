"""The Python half of a Python worker class (src/python/pyworker.c).

The C server calls, with the GIL held: ``load(uri, True)`` once in the
master at start-up (Gunicorn's cfg.worker_class: load_class, then the
class's setup()), and in each worker it forks ``make(...)``, which builds
what Gunicorn's arbiter hands a worker (sockets, app, cfg, log) and the
instance, then ``run(worker)``, which is spawn_worker's try/except around
``init_process()`` and returns the exit status.
"""
import logging
import os
import socket
import sys
import traceback

from cgunicorn import _core, glogging
from cgunicorn.workers.base import WorkerTmp


def load(uri, setup=False):
    """The class worker_class names (a class object given in a
    configuration or to cfg.set() is found by its name); RuntimeError
    "class uri ... invalid or not found" as Gunicorn's load_class."""
    from cgunicorn.config import _load_worker_class
    cls = _load_worker_class(uri)
    if setup and hasattr(cls, "setup"):
        cls.setup()
    return cls


class Listener:
    """A listening socket as Gunicorn's sock.BaseSocket shows it to
    workers: ``sock`` (a socket.socket over a duplicate of the server's
    descriptor, non-blocking), ``cfg_addr``, ``conf``, ``log``,
    ``fileno()``, ``close()``; any other attribute is the socket's."""

    def __init__(self, fd, display, conf, log):
        self.conf = conf
        self.log = log
        # a duplicate: the class may close or detach it freely
        self.sock = socket.socket(fileno=os.dup(fd))
        self.sock.setblocking(False)
        self.cfg_addr = self.sock.getsockname()
        self._display = display

    def __str__(self):
        return self._display

    def __getattr__(self, name):
        if name == "sock":  # closed: no socket to delegate to
            raise AttributeError(name)
        return getattr(self.sock, name)

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        if self.sock is None:
            return
        try:
            self.sock.close()
        except OSError as e:
            self.log.info("Error while closing socket %s", str(e))
        self.sock = None

    def get_backlog(self):
        return -1


class WorkerApp:
    """The application as the arbiter hands it to a worker when no
    application object was given (the command line): ``cfg`` and
    ``wsgi()``, which imports APP_MODULE as the C workers do (or gives
    --preload's callable), raising AppImportError where Gunicorn does."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.callable = None

    def load(self):
        return _core._worker_load_app()

    load_wsgiapp = load

    def wsgi(self):
        if self.callable is None:
            self.callable = self.load()
        return self.callable

    def reload(self):
        pass


class _ErrorHandler(logging.Handler):
    """Records of the "gunicorn.error" logger to the server's C error log
    (its format, file, syslog and statsd counters)."""

    def emit(self, record):
        try:
            _core._worker_log(record.levelno, self.format(record))
        except Exception:
            self.handleError(record)


class _AccessHandler(logging.Handler):
    """Lines of the "gunicorn.access" logger to the server's access log."""

    def emit(self, record):
        try:
            _core._worker_access(self.format(record))
        except Exception:
            self.handleError(record)


class WorkerLogger(glogging.Logger):
    """Gunicorn's Logger for a Python worker class when logger_class is
    the default: ``error_log`` and ``access_log`` are Python loggers (what
    classes such as aiohttp's and Uvicorn's hand to their own code) whose
    records the C log writes. With a logconfig* setting the master has set
    those loggers up already (the C log's records go there too), and they
    are used as they are."""

    def __init__(self, cfg, python_logging=False):
        self._python_logging = python_logging
        # Logger.__init__ turns propagation off; a logging configuration
        # the master applied keeps what it said
        kept = [(log, log.propagate) for log in (logging.getLogger("gunicorn.error"),
                                                 logging.getLogger("gunicorn.access"))]
        super().__init__(cfg)
        if python_logging:
            for log, propagate in kept:
                log.propagate = propagate

    def setup(self, cfg):
        self.cfg = cfg
        if self._python_logging:
            return
        self.loglevel = self.LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO)
        self.error_log.setLevel(self.loglevel)
        self.access_log.setLevel(logging.INFO)
        for log, handler in ((self.error_log, _ErrorHandler()),
                             (self.access_log, _AccessHandler())):
            for old in list(log.handlers):
                if getattr(old, "_gunicorn", False):
                    log.removeHandler(old)
            handler._gunicorn = True
            log.addHandler(handler)

    def reopen_files(self):
        # the C log reopens its files (and Python logging's, when it has them)
        _core._worker_reopen_logs()


def make(uri, age, ppid, listeners, timeout, cfg, logger, app, python_logging, max_requests,
         pid):
    """The worker instance, made as Gunicorn's arbiter makes it.

    listeners: [(fd, display)]; logger: the logger_class instance, or None
    for the default; app: the application object, or None to import
    APP_MODULE; max_requests: the arbiter's draw (jitter included), -1 for
    none; pid: this process."""
    cls = load(uri)
    if logger is None:
        logger = WorkerLogger(cfg, python_logging)
    sockets = [Listener(fd, display, cfg, logger) for fd, display in listeners]
    if app is None:
        app = WorkerApp(cfg)
    worker = cls(age, ppid, sockets, app, timeout, cfg, logger)
    worker.pid = pid
    worker.max_requests = max_requests if max_requests >= 0 else sys.maxsize
    tmp = getattr(worker, "tmp", None)
    if not isinstance(tmp, WorkerTmp):
        # a class on a real Gunicorn's base made a WorkerTmp file: its
        # notify() must reach the heartbeat the master watches instead
        if tmp is not None and hasattr(tmp, "close"):
            try:
                tmp.close()
            except OSError:
                pass
        worker.tmp = WorkerTmp(cfg)
    return worker


def _exit_status(code):
    """What a process leaving with SystemExit(code) exits with."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    sys.stderr.flush()
    return 1


def run(worker):
    """worker.init_process() with Gunicorn's spawn_worker handling; the
    exit status (SystemExit's code, 4 for AppImportError, 3 for another
    exception before the worker booted, 255 after)."""
    try:
        worker.init_process()
        return 0
    except SystemExit as e:
        return _exit_status(e.code)
    except BaseException as e:
        # matched by name: cgunicorn's AppImportError or a real Gunicorn's
        if type(e).__name__ == "AppImportError":
            worker.log.debug("Exception while loading the application", exc_info=True)
            print("%s" % e, file=sys.stderr)
            sys.stderr.flush()
            return 4
        worker.log.exception("Exception in worker process")
        print("%s" % e, file=sys.stderr)
        sys.stderr.flush()
        return 255 if worker.booted else 3
    finally:
        try:
            worker.tmp.close()
        except Exception:
            worker.log.warning("Exception during worker exit:\n%s", traceback.format_exc())
