"""Gunicorn's documented custom application (docs: "Custom Application"):
a BaseApplication subclass given an options dict, whose load() returns the
WSGI callable. CG_API_IMPORT picks the import: "gunicorn" (the shims, as
the docs write it) or "cgunicorn". A post_fork hook set with cfg.set()
records each worker in CG_API_RECORD (JSON lines)."""
import json
import os
import sys

if os.environ.get("CG_API_IMPORT") == "cgunicorn":
    import cgunicorn.app.base as base
else:
    import gunicorn.app.base as base


def record(**fields):
    with open(os.environ["CG_API_RECORD"], "a") as f:
        f.write(json.dumps(fields) + "\n")


def handler_app(environ, start_response):
    body = json.dumps({"pid": os.getpid(), "software": environ["SERVER_SOFTWARE"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def post_fork(server, worker):
    record(hook="post_fork", pid=os.getpid(), ppid=os.getppid(), wpid=worker.pid,
           workers=server.cfg.workers)


class StandaloneApplication(base.BaseApplication):

    def __init__(self, app, options=None):
        self.options = options or {}
        self.application = app
        super().__init__()

    def load_config(self):
        config = {key: value for key, value in self.options.items()
                  if key in self.cfg.settings and value is not None}
        for key, value in config.items():
            self.cfg.set(key.lower(), value)

    def load(self):
        return self.application


if __name__ == "__main__":
    record(event="start", pid=os.getpid(), base=base.BaseApplication.__module__,
           base_file=base.__file__)
    options = {
        "bind": "127.0.0.1:%s" % os.environ["CG_API_PORT"],
        "workers": 2,
        "not_a_setting": "ignored, as the docs' load_config() filters it out",
    }
    app = StandaloneApplication(handler_app, options)
    app.cfg.set("post_fork", post_fork)
    app.run()
    sys.exit("run() returned")  # never reached: run() exits with the server
