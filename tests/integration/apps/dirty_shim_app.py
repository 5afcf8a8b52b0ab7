"""Gunicorn's dirty API under Gunicorn's names, for test_dirty.py's shim
test: served where no real Gunicorn is importable, so ``gunicorn`` is
cgunicorn's compatibility package (pylib/cgunicorn/_compat)."""
import json
import os

import gunicorn
from gunicorn.dirty import DirtyApp, get_dirty_client, stash
from gunicorn.dirty.app import DirtyApp as AppDirtyApp
from gunicorn.dirty.client import DirtyClient, set_dirty_socket_path
from gunicorn.dirty.errors import DirtyError, DirtyNoWorkersAvailableError
from gunicorn.dirty.stash import StashClient, StashKeyNotFoundError, StashTable
from gunicorn.dirty.worker import DirtyWorker


class ShimApp(DirtyApp):
    stashes = ["shim"]

    def hello(self, name):
        stash.put("shim", "last", name)
        return "hello %s from %d" % (name, os.getpid())


def _not_provided(name):
    try:
        __import__("gunicorn.dirty." + name)
    except ImportError as e:
        return str(e)
    return None


def app(environ, start_response):
    import sys
    out = {
        "gunicorn_file": gunicorn.__file__,
        "real_gunicorn_on_path": any(os.path.isdir(os.path.join(p, "gunicorn")) and
                                     "_compat" not in p for p in sys.path if p),
        "same_app_class": AppDirtyApp is DirtyApp,
        "worker_class": DirtyWorker.__module__,
        "names": [c.__name__ for c in (DirtyClient, DirtyError, DirtyNoWorkersAvailableError,
                                       StashClient, StashKeyNotFoundError, StashTable)],
        "set_dirty_socket_path": callable(set_dirty_socket_path),
        "result": get_dirty_client().execute("dirty_shim_app:ShimApp", "hello", "shim"),
        "stash": StashClient(os.environ["GUNICORN_DIRTY_SOCKET"]).get("shim", "last"),
        "tables": sorted(stash.tables()),
        "not_provided": {n: _not_provided(n) for n in ("arbiter", "protocol", "tlv",
                                                        "pidfile")},
    }
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
