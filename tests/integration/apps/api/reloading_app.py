"""A BaseApplication whose settings come from a JSON file (CG_API_OPTIONS)
read by load_config(): HUP makes the server call reload(), which reads the
file again, and the new settings take effect. Every load_config(), reload()
and load() is recorded in CG_API_RECORD."""
import json
import os

from cgunicorn.app.base import BaseApplication


def record(**fields):
    with open(os.environ["CG_API_RECORD"], "a") as f:
        f.write(json.dumps(fields) + "\n")


def app(environ, start_response):
    body = json.dumps({"pid": os.getpid()}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


class FileConfigured(BaseApplication):

    def load_config(self):
        with open(os.environ["CG_API_OPTIONS"]) as f:
            options = json.load(f)
        for key, value in options.items():
            self.cfg.set(key, value)
        record(event="load_config", pid=os.getpid(), workers=self.cfg.workers)

    def reload(self):
        record(event="reload", pid=os.getpid())
        super().reload()

    def load(self):
        record(event="load", pid=os.getpid())
        return app


if __name__ == "__main__":
    FileConfigured().run()
