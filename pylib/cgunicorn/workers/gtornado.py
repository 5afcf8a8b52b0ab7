"""``-k tornado``: Gunicorn's tornado worker (gunicorn.workers.gtornado),
run as any Python worker class is (docs/worker-classes.md).

The application is served by Tornado's own HTTPServer on Tornado's IOLoop:
a ``tornado.web.Application`` (or a ``WSGIContainer``) as it is, any other
callable as a WSGI app in a ``WSGIContainer`` (on the loop's thread, one
request at a time, as in Gunicorn). Two one-second periodic callbacks do
what Gunicorn's do: the heartbeat and the parent check, and, once the
worker is no longer alive, stopping the server, then the loop a second
later. Requests are counted when a connection closes, as Gunicorn counts
them, for ``--max-requests``.
"""
import asyncio
import os

try:
    import tornado
except ImportError:
    raise RuntimeError("You need tornado installed to use this worker.")
import tornado.httpserver  # noqa: E402
import tornado.web  # noqa: E402
from tornado.ioloop import IOLoop, PeriodicCallback  # noqa: E402
from tornado.wsgi import WSGIContainer  # noqa: E402

from cgunicorn import __version__  # noqa: E402
from cgunicorn.sock import ssl_context  # noqa: E402
from cgunicorn.workers.base import Worker  # noqa: E402


class TornadoWorker(Worker):
    """Gunicorn's ``gunicorn.workers.gtornado.TornadoWorker`` (names
    "tornado", "egg:gunicorn#tornado" and that path select it)."""

    @classmethod
    def setup(cls):
        # Gunicorn's mark on Tornado's Server header, in the master before
        # the fork as there
        old_clear = tornado.web.RequestHandler.clear
        if getattr(old_clear, "_cgunicorn", False):
            return

        def clear(self):
            old_clear(self)
            if "Gunicorn" not in self._headers["Server"]:
                self._headers["Server"] += " (Gunicorn/%s)" % __version__
        clear._cgunicorn = True
        tornado.web.RequestHandler.clear = clear

    def handle_exit(self, sig, frame):
        if self.alive:
            super().handle_exit(sig, frame)

    def handle_request(self):
        self.nr += 1
        if self.alive and self.nr >= self.max_requests:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False

    def watchdog(self):
        if self.alive:
            self.notify()
        if self.ppid != os.getppid():
            self.log.info("Parent changed, shutting down: %s", self)
            self.alive = False

    def heartbeat(self):
        if not self.alive:
            if self.server_alive:
                if hasattr(self, "server"):
                    try:
                        self.server.stop()
                    except Exception:
                        pass
                self.server_alive = False
            else:
                for callback in self.callbacks:
                    callback.stop()
                self.ioloop.stop()

    def init_process(self):
        # a loop made before the fork (--preload) cannot serve this process
        asyncio.set_event_loop(asyncio.new_event_loop())
        super().init_process()

    def run(self):
        self.ioloop = IOLoop.current()
        self.alive = True
        self.server_alive = False

        if "h2" in (getattr(self.cfg, "http_protocols", None) or ()):
            self.log.warning("HTTP/2 is not supported by the tornado worker. "
                             "Use gthread, gevent, or asgi workers for HTTP/2 support. "
                             "Falling back to HTTP/1.1 only.")

        self.callbacks = [PeriodicCallback(self.watchdog, 1000),
                          PeriodicCallback(self.heartbeat, 1000)]
        for callback in self.callbacks:
            callback.start()

        app = self.wsgi
        if not isinstance(app, (WSGIContainer, tornado.web.Application)):
            app = WSGIContainer(app)

        worker = self

        class _HTTPServer(tornado.httpserver.HTTPServer):
            def on_close(self, server_conn):
                worker.handle_request()
                super().on_close(server_conn)

        # TLS as Gunicorn's: Tornado's server wraps each connection with
        # the context of sock.ssl_context (the ssl_context hook's)
        server = _HTTPServer(app, ssl_options=ssl_context(self.cfg) if self.cfg.is_ssl else None)
        self.server = server
        self.server_alive = True
        for s in self.sockets:
            s.setblocking(0)
            server.add_socket(getattr(s, "sock", s))
        server.no_keep_alive = self.cfg.keepalive <= 0
        server.start(num_processes=1)
        self.ioloop.start()
