"""Dirty arbiters: a separate pool of worker processes that load
stateful applications once (a model, an index) and serve calls from the
HTTP workers (docs/dirty.md). Gunicorn's gunicorn.dirty API."""
from .app import DirtyApp
from .client import (DirtyClient, close_dirty_client, close_dirty_client_async,
                     get_dirty_client, get_dirty_client_async, set_dirty_socket_path)
from .errors import (DirtyAppError, DirtyAppNotFoundError, DirtyConnectionError, DirtyError,
                     DirtyNoWorkersAvailableError, DirtyProtocolError, DirtyTimeoutError,
                     DirtyWorkerError)
from . import stash
from .stash import (StashClient, StashError, StashKeyNotFoundError, StashTable,
                    StashTableNotFoundError)

__all__ = ["DirtyError", "DirtyTimeoutError", "DirtyConnectionError", "DirtyWorkerError",
           "DirtyAppError", "DirtyAppNotFoundError", "DirtyNoWorkersAvailableError",
           "DirtyProtocolError", "DirtyApp", "DirtyClient", "get_dirty_client",
           "get_dirty_client_async", "close_dirty_client", "close_dirty_client_async",
           "set_dirty_socket_path", "stash", "StashClient", "StashTable", "StashError",
           "StashTableNotFoundError", "StashKeyNotFoundError"]
