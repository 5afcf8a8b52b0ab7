"""App for test_logconfig.py and test_realworld_configs.py: a few routes,
an exception, its own logger, and (when asked through the environment) a
logging change made at import, as Django's LOGGING does in a worker."""

import logging
import os

if os.environ.get("CG_LOGCFG_APP_DEBUG"):
    logging.getLogger("gunicorn.error").setLevel(logging.DEBUG)

log = logging.getLogger("myapp")


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise ValueError("kaboom from the app")
    if path == "/applog":
        log.warning("app says hello from %s", os.getpid())
    body = ("ok %s\n" % path).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Thing", "yes"),
                              ("Content-Length", str(len(body)))])
    return [body]
