"""``-k gevent``: Gunicorn's gevent worker, with the HTTP work in C.

The worker is this Python class, run as any Python worker class is
(docs/worker-classes.md): gevent's ``monkey.patch_all()`` before the
application is imported, gevent's hub, an accepting greenlet per listener
whose ``Pool`` of ``--worker-connections`` greenlets bounds the connections
(as Gunicorn's ``StreamServer`` per listener), a heartbeat every second
while the hub runs, Gunicorn's signal handling and graceful stop. Each
connection's greenlet runs ``_core.GeventServer.serve()``, which reads,
parses and answers its requests in C (src/workers/ggevent.c): the socket's
reads and writes are C syscalls, and only when one would block does it
wait on the hub, so the other greenlets run meanwhile (docs/gevent.md).
"""
import io
import os
import sys
import time
from datetime import datetime

try:
    import gevent
except ImportError:
    raise RuntimeError("gevent worker requires gevent 24.10.1 or higher")


def _version(text):
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


if _version(gevent.__version__) < (24, 10, 1):
    raise RuntimeError("gevent worker requires gevent 24.10.1 or higher")

from gevent import hub, monkey, pywsgi  # noqa: E402
from gevent import socket as gsocket  # noqa: E402
from gevent.pool import Pool  # noqa: E402

from cgunicorn import _core, __version__  # noqa: E402
from cgunicorn.workers import base  # noqa: E402
from cgunicorn.sock import ssl_context  # noqa: E402

# Gunicorn's SERVER_SOFTWARE for its pywsgi workers
VERSION = "gevent/%s gunicorn/%s" % (gevent.__version__, __version__)


def _throw_if(still, glet, exc):
    """--request-timeout, as a hub callback: raise exc in the greenlet of a
    timed-out request, unless that request has ended meanwhile (still()
    is the C side's check)."""
    if still():
        glet.throw(exc)


class GeventWorker(base.Worker):
    """Gunicorn's ``gunicorn.workers.ggevent.GeventWorker`` (names
    "gevent", "egg:gunicorn#gevent" and that path select it)."""

    # Gunicorn's hooks for its pywsgi subclasses (GeventPyWSGIWorker below)
    server_class = None
    wsgi_handler = None

    def __init__(self, *args, **kwargs):
        self._alive = True
        self._nr = 0
        super().__init__(*args, **kwargs)
        self.worker_connections = self.cfg.worker_connections
        self._server = None

    # `alive` and `nr` are the C worker's: the C side counts requests, stops
    # after --max-requests and reads `alive` for the Connection header.
    @property
    def alive(self):
        value = _core._worker_alive()
        return self._alive if value is None else value

    @alive.setter
    def alive(self, value):
        self._alive = bool(value)
        _core._worker_alive(self._alive)

    @property
    def nr(self):
        value = _core._worker_requests()
        return self._nr if value is None else value

    @nr.setter
    def nr(self, value):
        self._nr = value

    def patch(self):
        """gevent's monkey-patching, before the application is imported,
        and the listeners as gevent sockets."""
        monkey.patch_all()
        self.sockets = [gsocket.socket(s.family, gsocket.SOCK_STREAM, fileno=s.sock.detach())
                        for s in self.sockets]

    def init_process(self):
        self.patch()
        hub.reinit()
        super().init_process()

    def timeout_ctx(self):
        return gevent.Timeout(self.cfg.keepalive, False)

    def notify(self):
        super().notify()
        if self.ppid != os.getppid():
            self.log.info("Parent changed, shutting down: %s", self)
            sys.exit(0)

    def _accept_loop(self, index, pool):
        """Accept on listener `index` while the pool has room; each
        connection's greenlet runs serve() itself (accept() and serve()
        are C, waiting on the hub)."""
        accept, serve = self._server.accept, self._server.serve
        while True:
            pool.wait_available()
            fd = accept(index)
            if fd is None:  # EMFILE and the like (logged): let some close
                gevent.sleep(0.5)
                continue
            pool.spawn(serve, fd, index)

    def run(self):
        self._server = _core.GeventServer(self.wsgi, hub.get_hub().loop.io, gsocket.wait,
                                          gevent.sleep)
        # one pool per listener, as Gunicorn's StreamServer per listener
        pools = [Pool(self.worker_connections) for _ in self.sockets]
        acceptors = [gevent.spawn(self._accept_loop, index, pool)
                     for index, pool in enumerate(pools)]

        # --request-timeout: a greenlet that times out requests (in C)
        tick = self._server.watch_requests()
        watcher = gevent.spawn(self._watch_requests, tick) if tick is not None else None

        # the heartbeat: a hub blocked by the app (a CPU loop) stops it,
        # and the master's --timeout ends the worker
        beat = min(1.0, self.timeout / 2) if self.timeout > 0 else 1.0
        while self.alive:
            self.notify()
            gevent.sleep(beat)

        try:
            # stop accepting, let the connections finish up to
            # --graceful-timeout, then kill what is left
            gevent.killall(acceptors)
            deadline = time.monotonic() + self.cfg.graceful_timeout
            for pool in pools:
                while len(pool) > 0:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self.notify()
                    pool.join(timeout=min(beat, left))
            if any(len(pool) > 0 for pool in pools):
                self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
                for pool in pools:
                    pool.kill(timeout=1)
        except Exception:
            self.log.exception("Error while stopping the gevent worker")
        if watcher is not None:
            watcher.kill(block=False)

    def _watch_requests(self, tick):
        watch = self._server.watch_requests
        while True:
            gevent.sleep(tick)
            tick = watch()

    def handle_quit(self, sig, frame):
        # out of the signal handler, on a greenlet of its own: the hook and
        # the exit may block (Gunicorn #1126)
        gevent.spawn(super().handle_quit, sig, frame)

    def handle_usr1(self, sig, frame):
        gevent.spawn(super().handle_usr1, sig, frame)


class GeventResponse:
    """What the access log reads of a pywsgi response (Gunicorn's class)."""

    status = None
    headers = None
    sent = None

    def __init__(self, status, headers, clength):
        self.status = status
        self.headers = headers
        self.sent = clength


class PyWSGIHandler(pywsgi.WSGIHandler):
    """gevent's pywsgi handler with Gunicorn's access log and environ
    (``gunicorn.sock``, ``RAW_URI``)."""

    def log_request(self):
        start = datetime.fromtimestamp(self.time_start)
        finish = datetime.fromtimestamp(self.time_finish)
        resp_headers = getattr(self, "response_headers", {})
        # gevent keeps the status as bytes, except for its own error pages
        status = self.status.decode() if isinstance(self.status, bytes) else self.status
        resp = GeventResponse(status, resp_headers, self.response_length)
        req_headers = self.headers.items() if hasattr(self, "headers") else []
        self.server.log.access(resp, req_headers, self.environ, finish - start)

    def get_environ(self):
        env = super().get_environ()
        env["gunicorn.sock"] = self.socket
        env["RAW_URI"] = self.path
        return env


class PyWSGIServer(pywsgi.WSGIServer):
    pass


class FileWrapper:
    """``wsgi.file_wrapper`` for the pywsgi workers: the file read in
    blocks (pywsgi has no sendfile path)."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


class ErrorsWrapper(io.RawIOBase):
    """``wsgi.errors``: text written there goes to the error log's streams
    (stderr where the error log has no stream handler), as Gunicorn's
    WSGIErrorsWrapper."""

    def __init__(self, log):
        super().__init__()
        import logging
        self.streams = [h.stream for h in getattr(log, "error_log", logging.getLogger()).handlers
                        if isinstance(h, logging.StreamHandler)] or [sys.stderr]

    def writable(self):
        return True

    def write(self, data):
        for stream in self.streams:
            try:
                stream.write(data)
            except UnicodeError:
                stream.write(data.encode("UTF-8"))
            stream.flush()
        return len(data)


def base_environ(worker):
    """What Gunicorn's http.wsgi.base_environ(cfg) gives every request."""
    return {
        "wsgi.errors": ErrorsWrapper(worker.log),
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": worker.cfg.workers > 1,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
        "wsgi.input_terminated": True,
        "SERVER_SOFTWARE": _core.SERVER_SOFTWARE,
    }


class GeventPyWSGIWorker(GeventWorker):
    """Gunicorn's ``gunicorn.workers.ggevent.GeventPyWSGIWorker`` (names
    "gevent_wsgi", "gevent_pywsgi"): gevent's own pywsgi server parses and
    answers the requests, in Python, with ``wsgi_handler`` as its handler
    class (gevent-websocket's worker sets its WebSocketHandler there)."""

    server_class = PyWSGIServer
    wsgi_handler = PyWSGIHandler

    def run(self):
        # TLS as Gunicorn's: gevent's server wraps each connection with
        # the context of sock.ssl_context (the ssl_context hook's)
        ssl_args = {"ssl_context": ssl_context(self.cfg)} if self.cfg.is_ssl else {}
        servers = []
        for s in self.sockets:
            s.setblocking(1)
            environ = base_environ(self)
            environ.update({"wsgi.multithread": True, "SERVER_SOFTWARE": VERSION})
            server = self.server_class(s, application=self.wsgi,
                                       spawn=Pool(self.worker_connections), log=self.log,
                                       handler_class=self.wsgi_handler, environ=environ,
                                       **ssl_args)
            server.start()
            servers.append(server)

        beat = min(1.0, self.timeout / 2) if self.timeout > 0 else 1.0
        while self.alive:
            self.notify()
            gevent.sleep(beat)

        try:
            # stop accepting, let the connections finish up to
            # --graceful-timeout, then kill what is left
            for server in servers:
                server.close()
            deadline = time.monotonic() + self.cfg.graceful_timeout
            while any(server.pool.free_count() != server.pool.size for server in servers):
                left = deadline - time.monotonic()
                if left <= 0:
                    self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
                    for server in servers:
                        server.stop(timeout=1)
                    break
                self.notify()
                gevent.sleep(min(beat, left))
        except Exception:
            self.log.exception("Error while stopping the gevent worker")
