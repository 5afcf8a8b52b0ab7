"""Names for the worker classes cgunicorn runs.

The workers are C: a sync worker, a gthread worker and an ASGI worker,
picked with ``worker_class`` ("sync", "gthread", "asgi", or Gunicorn's class
paths for them; Uvicorn's ``uvicorn.workers.UvicornWorker``,
``UvicornH11Worker`` and ``uvicorn_worker.UvicornWorker`` select the ASGI
worker too).
The classes here only name them, for code that imports or compares
``gunicorn.workers.sync.SyncWorker`` and the like, and for
``Config.worker_class``; they cannot be instantiated to serve.
"""

# worker_class values the server accepts, and the class each one names
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


class Worker:
    """A worker kind of the C server (a name only; see the module's doc)."""

    #: the worker_class value that selects this kind
    kind = None

    def __init__(self, *args, **kwargs):
        raise TypeError("cgunicorn's workers are C; %s cannot be created from Python"
                        % type(self).__name__)


class SyncWorker(Worker):
    """Gunicorn's default worker: one request at a time per process."""
    kind = "sync"


class ThreadWorker(Worker):
    """Gunicorn's gthread worker: a loop and a pool of --threads threads."""
    kind = "gthread"


class ASGIWorker(Worker):
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
