"""A real-world style config (Django/Docker deployments): logging through a
dictConfig with formatters, rotating and watched file handlers, the app's
own logger, plus server hooks that leave evidence in a file.
CG_REAL_DIR names the directory for the logs and the evidence."""

import logging
import os

OUT = os.environ["CG_REAL_DIR"]
EVIDENCE = os.path.join(OUT, "evidence.txt")

workers = 2
worker_class = "gthread"
threads = 2
timeout = 30
graceful_timeout = 10
proc_name = "real-logging"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)s "%(a)s"'

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "verbose": {
            "format": "%(asctime)s %(levelname)s [%(name)s] pid=%(process)d %(message)s",
            "datefmt": "%Y-%m-%dT%H:%M:%S",
        },
        "access": {"format": "ACCESS %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "verbose",
                    "stream": "ext://sys.stdout"},
        "error_file": {"class": "logging.handlers.RotatingFileHandler",
                       "filename": os.path.join(OUT, "gunicorn.error.log"),
                       "maxBytes": 10 * 1024 * 1024, "backupCount": 3,
                       "formatter": "verbose"},
        "access_file": {"class": "logging.handlers.WatchedFileHandler",
                        "filename": os.path.join(OUT, "access.log"),
                        "formatter": "access"},
    },
    "loggers": {
        "gunicorn.error": {"handlers": ["console", "error_file"], "level": "INFO",
                           "propagate": False},
        "gunicorn.access": {"handlers": ["access_file"], "level": "INFO",
                            "propagate": False},
        "myapp": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
}


def _evidence(*words):
    with open(EVIDENCE, "a") as f:
        f.write(" ".join(str(w) for w in words) + "\n")


def on_starting(server):
    _evidence("on_starting", os.getpid())


def when_ready(server):
    server.log.info("ready with %s workers", server.num_workers)
    _evidence("when_ready", os.getpid())


def post_fork(server, worker):
    _evidence("post_fork", worker.pid)


def pre_request(worker, req):
    _evidence("pre_request", worker.pid, req.method, req.path)


def post_request(worker, req, environ, resp):
    _evidence("post_request", worker.pid, req.path, resp.status)


def worker_exit(server, worker):
    _evidence("worker_exit", worker.pid)


def on_exit(server):
    _evidence("on_exit", os.getpid())
