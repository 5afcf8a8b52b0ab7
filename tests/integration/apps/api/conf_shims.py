"""A configuration file written for Gunicorn: it imports gunicorn,
gunicorn.glogging and gunicorn.config, and records what it found in
CG_API_RECORD (JSON lines). Its post_fork hook records each worker."""
import json
import os

import gunicorn
from gunicorn import glogging
from gunicorn.config import Config

workers = 2
proc_name = "conf-shims"
# Gunicorn's default logger named by its class, as configs written for
# Gunicorn do (the shim's, or a real Gunicorn's where one is installed)
logger_class = glogging.Logger


def _record(**fields):
    with open(os.environ["CG_API_RECORD"], "a") as f:
        f.write(json.dumps(fields) + "\n")


_record(event="config", pid=os.getpid(), gunicorn_file=gunicorn.__file__,
        server_software=gunicorn.SERVER_SOFTWARE, version=gunicorn.__version__,
        logger=glogging.Logger.__name__,
        error_handlers=glogging.CONFIG_DEFAULTS["loggers"]["gunicorn.error"]["handlers"],
        default_workers=Config().workers)


def post_fork(server, worker):
    _record(hook="post_fork", pid=os.getpid(), wpid=worker.pid)
