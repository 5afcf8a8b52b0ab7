"""A BaseApplication whose load() raises AppImportError, as Gunicorn's own
loaders do for an APP_MODULE that names nothing: the worker reports the
message alone and the server stops with Gunicorn's status 4."""
import sys

from cgunicorn.app.base import BaseApplication
from cgunicorn.errors import AppImportError


class Failing(BaseApplication):

    def load_config(self):
        self.cfg.set("bind", sys.argv[1])

    def load(self):
        raise AppImportError("no application in this test (on purpose)")


if __name__ == "__main__":
    Failing().run()
