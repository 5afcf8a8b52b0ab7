"""A WSGIApplication subclass: init() gives defaults of its own (beneath the
config file and the command line), load() wraps the APP_MODULE the command
line names in a middleware. An on_starting hook from init() records what
the server was given in CG_API_RECORD."""
import json
import os

from cgunicorn.app.wsgiapp import WSGIApplication


def on_starting(server):
    with open(os.environ["CG_API_RECORD"], "a") as f:
        f.write(json.dumps({"hook": "on_starting", "proc_name": server.cfg.proc_name,
                            "workers": server.cfg.workers,
                            "timeout": server.cfg.timeout}) + "\n")


class Wrapped(WSGIApplication):

    def init(self, parser, opts, args):
        super().init(parser, opts, args)
        return {"workers": 3, "proc_name": "api-init", "timeout": 17,
                "on_starting": on_starting}

    def load(self):
        inner = super().load()

        def wrapped(environ, start_response):
            def start(status, headers, exc_info=None):
                return start_response(status, headers + [("X-Wrapped", self.app_uri)],
                                      exc_info)
            return inner(environ, start)
        return wrapped


if __name__ == "__main__":
    Wrapped("%(prog)s [OPTIONS] [APP_MODULE]").run()
