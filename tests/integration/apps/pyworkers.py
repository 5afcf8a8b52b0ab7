"""Worker classes written in Python for test_worker_classes.py: a tiny
blocking accept loop that serves self.wsgi, on Gunicorn's base (whichever
`gunicorn` imports: a real one or cgunicorn's shims) and on cgunicorn's.

GET /           the app's answer
GET /info       what the worker was given (JSON)
GET /slow?s=N   the app sleeps N seconds (a request in flight for TERM)
GET /stop-notify  answers, then the worker stops calling notify()
"""
import json
import os
import select
import sys
import time

from cgunicorn import sock as cgsock
from cgunicorn.workers.base import Worker as CgWorker
from gunicorn import sock as gsock
from gunicorn.workers.base import Worker as GWorker


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow":
        sys.stderr.write("SLOW-START %s\n" % os.getpid())
        sys.stderr.flush()
        time.sleep(float(environ["QUERY_STRING"].partition("=")[2] or "1"))
        body = b"slow done"
    else:
        body = ("hello %s %s" % (environ["wsgi.version"], os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data.split(b"\r\n", 1)[0].decode("latin1")


class _Loop:
    """run(): accept on every listener, one request per connection."""

    stop_notifying = False

    def run(self):
        while self.alive:
            if not self.stop_notifying:
                self.notify()
            else:
                time.sleep(0.5)  # the master's timeout ends this
                continue
            try:
                ready, _, _ = select.select(self.wait_fds, [], [], 1.0)
            except InterruptedError:
                continue
            for lst in ready:
                if lst is self.PIPE[0]:
                    try:
                        os.read(self.PIPE[0], 64)
                    except BlockingIOError:
                        pass
                    continue
                try:
                    conn, addr = lst.accept()
                except BlockingIOError:
                    continue
                self.nr += 1
                conn.setblocking(True)
                if self.cfg.is_ssl:
                    # as Gunicorn's sync worker: each connection wrapped
                    # with the ssl_context hook's (or the default) context
                    try:
                        conn = self.ssl_wrap_socket(conn, self.cfg)
                    except OSError as e:
                        self.log.debug("TLS-FAILED %s" % e)
                        conn.close()
                        continue
                with conn:
                    self.handle(conn, lst)
                if self.nr >= self.max_requests:
                    self.log.info("Autorestarting worker after current request.")
                    self.alive = False
        self.log.info("LOOP-END %s" % type(self).__name__)

    def handle(self, conn, lst):
        line = _read_head(conn)
        if line is None:
            return
        method, target, _ = line.split(" ", 2)
        path, _, query = target.partition("?")
        if path == "/info":
            info = {
                "class": type(self).__name__,
                "age": self.age, "pid": self.pid, "ppid": self.ppid,
                "getpid": os.getpid(), "getppid": os.getppid(),
                "timeout": self.timeout, "max_requests": self.max_requests,
                "nr": self.nr, "booted": self.booted,
                "sockets": [str(s) for s in self.sockets],
                "cfg_addr": [list(s.cfg_addr) if isinstance(s.cfg_addr, tuple)
                             else s.cfg_addr for s in self.sockets],
                "keepalive": self.cfg.keepalive,
                "worker_connections": self.cfg.worker_connections,
                "is_ssl": bool(self.cfg.is_ssl),
                "tls_version": conn.version() if hasattr(conn, "version") else None,
                "settings_workers": self.cfg.settings["workers"].value,
                "tmp_fileno": self.tmp.fileno() >= 0,
                "last_update_age": time.time() - self.tmp.last_update(),
                "hook_mark": getattr(self, "hook_mark", None),
                "log_class": type(self.log).__name__,
                "base": type(self).__mro__[2].__module__,
            }
            body = json.dumps(info).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            return
        if path == "/stop-notify":
            self.stop_notifying = True
            self.log.info("NOTIFY-OFF %s" % os.getpid())
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.version": (1, 0), "wsgi.errors": sys.stderr,
        }
        status_headers = []

        def start_response(status, headers, exc_info=None):
            status_headers[:] = [status, headers]

        body = b"".join(self.wsgi(environ, start_response))
        status, headers = status_headers
        head = "HTTP/1.1 %s\r\n%sConnection: close\r\n\r\n" % (
            status, "".join("%s: %s\r\n" % h for h in headers))
        conn.sendall(head.encode("latin1") + body)
        self.log.access_log.info("ACCESS %s %s" % (method, target))


class GunicornBaseWorker(_Loop, GWorker):
    """On gunicorn.workers.base.Worker (a real Gunicorn when one is
    installed), wrapping with gunicorn.sock's ssl_wrap_socket (Gunicorn
    20.1's has none: then cgunicorn's)."""

    ssl_wrap_socket = staticmethod(getattr(gsock, "ssl_wrap_socket", cgsock.ssl_wrap_socket))


class CgBaseWorker(_Loop, CgWorker):
    """On cgunicorn.workers.base.Worker."""

    ssl_wrap_socket = staticmethod(cgsock.ssl_wrap_socket)


class FailingWorker(CgWorker):
    """init_process() raises before the worker boots: exit status 3."""

    def init_process(self):
        raise ValueError("FAILING-WORKER boom")

