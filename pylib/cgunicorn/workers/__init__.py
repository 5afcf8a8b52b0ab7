"""The worker classes cgunicorn runs.

The sync, gthread and ASGI workers are C, picked with ``worker_class``
("sync", "gthread", "asgi", or Gunicorn's class paths for them; Uvicorn's
``uvicorn.workers.UvicornWorker``, ``UvicornH11Worker`` and
``uvicorn_worker.UvicornWorker`` select the ASGI worker too).
``SyncWorker``, ``ThreadWorker`` and ``ASGIWorker`` here only name them,
for code that imports or compares
``gunicorn.workers.sync.SyncWorker`` and the like, and for
``Config.worker_class``; they cannot be instantiated to serve.

Any other ``worker_class`` is a Python class run in a worker the C arbiter
forks (``cgunicorn.workers.base.Worker`` is the base to write one on; see
docs/worker-classes.md).
"""
from cgunicorn.workers.base import Worker

# worker_class values the C server runs, and the class each one names
SUPPORTED_WORKERS = {
    "sync": "gunicorn.workers.sync.SyncWorker",
    "gthread": "gunicorn.workers.gthread.ThreadWorker",
    "asgi": "gunicorn.workers.gasgi.ASGIWorker",
}

# Other projects' worker classes that the ASGI worker stands in for
STAND_INS = {
    "uvicorn.workers.UvicornWorker": "asgi",
    "uvicorn.workers.UvicornH11Worker": "asgi",
    "uvicorn_worker.UvicornWorker": "asgi",
    "uvicorn_worker.UvicornH11Worker": "asgi",
}


class CWorker(Worker):
    """A worker kind of the C server (a name only; see the module's doc)."""

    #: the worker_class value that selects this kind
    kind = None

    def __init__(self, *args, **kwargs):
        raise TypeError("cgunicorn's %s is C; it cannot be created from Python"
                        % type(self).__name__)


class SyncWorker(CWorker):
    """Gunicorn's default worker: one request at a time per process."""
    kind = "sync"


class ThreadWorker(CWorker):
    """Gunicorn's gthread worker: a loop and a pool of --threads threads."""
    kind = "gthread"


class ASGIWorker(CWorker):
    """Gunicorn's asgi worker: ASGI 3 apps on an asyncio event loop."""
    kind = "asgi"


def by_kind(kind):
    """The class a worker_class value names ("sync", "gthread", their class
    paths or egg:gunicorn#NAME, Uvicorn's workers), or None for a kind
    cgunicorn does not run."""
    kind = STAND_INS.get(kind, kind)
    for cls in (SyncWorker, ThreadWorker, ASGIWorker):
        if kind in (cls.kind, SUPPORTED_WORKERS[cls.kind], "egg:gunicorn#" + cls.kind):
            return cls
    return None
