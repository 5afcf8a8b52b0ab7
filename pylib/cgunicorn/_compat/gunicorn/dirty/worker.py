"""gunicorn.dirty.worker: the dirty worker class (the ``worker`` the
dirty_post_fork / dirty_worker_init / dirty_worker_exit hooks get)."""
from cgunicorn.dirty._worker import DirtyWorker  # noqa: F401

__all__ = ["DirtyWorker"]
