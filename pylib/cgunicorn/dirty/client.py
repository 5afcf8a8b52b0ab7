"""The caller's side: get_dirty_client().execute(app_path, action, ...)
and stream(), their async twins, as in Gunicorn.

Each call is one connection to the socket of its app (<dir>/<i>.sock,
told by the master through CGUNICORN_DIRTY_DIR and CGUNICORN_DIRTY_APPS),
accepted by whichever dirty worker loaded that app and is free: the kernel
queues the call until one is, so no router process sits between the two.
The wait is bounded by the client's timeout and dirty_timeout, whichever
is shorter (DirtyTimeoutError).
"""
import asyncio
import os
import socket
import threading
import time

from . import _avail, _wire
from .app import parse_dirty_app_spec
from .errors import (DirtyAppNotFoundError, DirtyConnectionError, DirtyError,
                     DirtyProtocolError, DirtyTimeoutError, DirtyWorkerError)

__all__ = ["DirtyClient", "get_dirty_client", "get_dirty_client_async",
           "close_dirty_client", "close_dirty_client_async", "set_dirty_socket_path"]

_socket_dir = None


def set_dirty_socket_path(path):
    """Use the dirty sockets in this directory (the master's by default)."""
    global _socket_dir
    _socket_dir = path


def _sockets():
    """{import_path: socket path} of the configured dirty apps."""
    d = _socket_dir or os.environ.get("CGUNICORN_DIRTY_DIR")
    apps = os.environ.get("CGUNICORN_DIRTY_APPS", "")
    if not d or not apps:
        return {}
    return {parse_dirty_app_spec(spec)[0]: os.path.join(d, "%d.sock" % i)
            for i, spec in enumerate(apps.split(","))}


def _dirty_timeout():
    try:
        t = float(os.environ.get("CGUNICORN_DIRTY_TIMEOUT", "0"))
    except ValueError:
        return None
    return t if t > 0 else None


def _raise_for(kind, value):
    if kind == _wire.ERROR:
        raise DirtyError.from_dict(value)
    raise DirtyProtocolError("Unexpected message type %r" % (kind,))


class DirtyClient:
    """Calls into the dirty workers. Thread-safe: each call has its own
    connection. ``timeout``: seconds a call may take in all."""

    def __init__(self, socket_path=None, timeout=30.0):
        if socket_path is not None:
            set_dirty_socket_path(socket_path)
        self.timeout = timeout
        self._paths = None

    def _limit(self):
        dt = _dirty_timeout()
        return min(self.timeout, dt) if dt and self.timeout else (dt or self.timeout)

    def _path(self, app_path):
        if self._paths is None:
            self._paths = _sockets()
        path = self._paths.get(app_path)
        if path is None:
            raise DirtyAppNotFoundError(app_path)
        _avail.check(path, app_path)
        return path

    # ---- sync (sync and gthread workers) ------------------------------

    @staticmethod
    def _encode(action, args, kwargs):
        try:
            return _wire.encode((action, args, kwargs))
        except Exception as e:
            raise DirtyProtocolError(f"Cannot serialize the arguments of {action!r}: {e}") from e

    def _call(self, app_path, action, args, kwargs):
        """A connected socket with the request sent, and the deadline."""
        path = self._path(app_path)
        request = self._encode(action, args, kwargs)
        limit = self._limit()
        deadline = time.monotonic() + limit if limit else None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(limit)
            sock.connect(path)
        except socket.timeout:
            sock.close()
            raise DirtyTimeoutError("Timeout connecting to the dirty worker", timeout=limit)
        except OSError as e:
            sock.close()
            raise DirtyConnectionError(f"Failed to connect to dirty worker: {e}",
                                       socket_path=path) from e
        try:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            _wire.send(sock, _wire.REQUEST, request, left)
        except socket.timeout:
            sock.close()
            raise DirtyTimeoutError("Timeout sending to the dirty worker", timeout=limit)
        except OSError as e:
            sock.close()
            raise DirtyConnectionError(f"Communication error: {e}", socket_path=path) from e
        return sock, deadline, limit

    @staticmethod
    def _recv(sock, carry, deadline, limit):
        left = None
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DirtyTimeoutError("Timeout waiting for dirty app response", timeout=limit)
        try:
            return _wire.recv(sock, carry, left)
        except socket.timeout:
            raise DirtyTimeoutError("Timeout waiting for dirty app response",
                                    timeout=limit) from None
        except EOFError:
            raise DirtyWorkerError("Dirty worker exited before answering") from None
        except OSError as e:
            raise DirtyConnectionError(f"Communication error: {e}") from e
        except Exception as e:  # a malformed frame, an answer that does not unpickle
            raise DirtyProtocolError(f"Cannot read the dirty worker's answer: {e}") from e

    def execute(self, app_path, action, *args, **kwargs):
        """The action's result; its exception as a DirtyError."""
        sock, deadline, limit = self._call(app_path, action, args, kwargs)
        try:
            kind, value = self._recv(sock, bytearray(), deadline, limit)
        finally:
            sock.close()
        if kind == _wire.RESULT:
            return value
        if kind == _wire.CHUNK:
            raise DirtyProtocolError("The action streams: use stream()")
        _raise_for(kind, value)

    def stream(self, app_path, action, *args, **kwargs):
        """An iterator over what a generator action yields."""
        return self._stream(app_path, action, args, kwargs)

    def _stream(self, app_path, action, args, kwargs):
        sock, deadline, limit = self._call(app_path, action, args, kwargs)
        carry = bytearray()
        try:
            while True:
                kind, value = self._recv(sock, carry, deadline, limit)
                if kind == _wire.CHUNK:
                    yield value
                elif kind == _wire.END:
                    return
                elif kind == _wire.RESULT:
                    # a plain result: the one item of the stream
                    yield value
                    return
                else:
                    _raise_for(kind, value)
        finally:
            sock.close()

    def close(self):
        """Nothing stays open between calls."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- async (-k asgi) ----------------------------------------------

    async def _call_async(self, app_path, action, args, kwargs):
        path = self._path(app_path)
        payload, bufs = self._encode(action, args, kwargs)
        limit = self._limit()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(path, limit=1 << 20), limit)
        except asyncio.TimeoutError:
            raise DirtyTimeoutError("Timeout connecting to the dirty worker",
                                    timeout=limit) from None
        except OSError as e:
            raise DirtyConnectionError(f"Failed to connect to dirty worker: {e}",
                                       socket_path=path) from e
        writer.writelines(_wire.frame(_wire.REQUEST, payload, bufs))
        deadline = time.monotonic() + limit if limit else None
        return reader, writer, deadline, limit

    @staticmethod
    async def _recv_async(reader, deadline, limit):
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise DirtyTimeoutError("Timeout waiting for dirty app response", timeout=limit)
        try:
            return await asyncio.wait_for(_wire.recv_async(reader), left)
        except asyncio.TimeoutError:
            raise DirtyTimeoutError("Timeout waiting for dirty app response",
                                    timeout=limit) from None
        except asyncio.IncompleteReadError:
            raise DirtyWorkerError("Dirty worker exited before answering") from None
        except OSError as e:
            raise DirtyConnectionError(f"Communication error: {e}") from e

    async def execute_async(self, app_path, action, *args, **kwargs):
        reader, writer, deadline, limit = await self._call_async(app_path, action, args, kwargs)
        try:
            await writer.drain()
            kind, value = await self._recv_async(reader, deadline, limit)
        finally:
            writer.close()
        if kind == _wire.RESULT:
            return value
        _raise_for(kind, value)

    async def stream_async(self, app_path, action, *args, **kwargs):
        reader, writer, deadline, limit = await self._call_async(app_path, action, args, kwargs)
        try:
            await writer.drain()
            while True:
                kind, value = await self._recv_async(reader, deadline, limit)
                if kind == _wire.CHUNK:
                    yield value
                elif kind == _wire.END:
                    return
                elif kind == _wire.RESULT:
                    yield value
                    return
                else:
                    _raise_for(kind, value)
        finally:
            writer.close()

    async def close_async(self):
        """Nothing stays open between calls."""

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close_async()


_client = None
_lock = threading.Lock()


def get_dirty_client(timeout=30.0):
    """The process's client (one per process; calls are independent)."""
    global _client
    with _lock:
        if _client is None or _client.timeout != timeout:
            _client = DirtyClient(timeout=timeout)
        return _client


async def get_dirty_client_async(timeout=30.0):
    return get_dirty_client(timeout)


def close_dirty_client():
    global _client
    with _lock:
        _client = None


async def close_dirty_client_async():
    close_dirty_client()
