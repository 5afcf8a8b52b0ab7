"""gunicorn.glogging's Logger used as Gunicorn's is: built from a Config,
writing the error log and the access log to the files in argv[1] and
argv[2]; prints, as JSON, what the Config said about logger_class."""
import datetime
import json
import sys

from gunicorn import glogging
from gunicorn.config import Config


class Resp:
    status = "200 OK"
    sent = 5
    headers = [("Content-Type", "text/plain")]


class Req:
    headers = [("User-Agent", "cg-api"), ("X-Thing", "t")]


def main():
    cfg = Config()
    cfg.set("errorlog", sys.argv[1])
    cfg.set("accesslog", sys.argv[2])
    cfg.set("loglevel", "warning")
    cfg.set("access_log_format", '%(h)s "%(r)s" %(s)s %(b)s "%(a)s" %({x-thing}i)s %(L)s')
    log = glogging.Logger(cfg)
    log.info("not shown at warning")
    log.warning("warned %s", "here")
    log.log("error", "by name")
    environ = {"REMOTE_ADDR": "10.1.2.3", "REQUEST_METHOD": "GET", "RAW_URI": "/p?q=1",
               "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": "/p", "QUERY_STRING": "q=1",
               "HTTP_USER_AGENT": "cg-api"}
    log.access(Resp(), Req(), environ, datetime.timedelta(seconds=1, microseconds=5))

    class Custom(glogging.Logger):
        error_fmt = "%(message)s"

    out = {"subclass_mro": [c.__name__ for c in Custom.__mro__]}
    try:
        cfg.set("logger_class", Custom)
        out["custom"] = "accepted"
        out["custom_loaded"] = cfg.logger_class is Custom
    except NotImplementedError as e:
        out["custom"] = str(e)
    cfg.set("logger_class", glogging.Logger)
    out["default_is_logger"] = cfg.logger_class is glogging.Logger
    out["defaults_keys"] = sorted(glogging.CONFIG_DEFAULTS)
    out["root"] = glogging.CONFIG_DEFAULTS["root"]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
