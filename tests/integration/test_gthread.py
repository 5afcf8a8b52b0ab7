"""The gthread worker: keep-alive, pipelining, connection limits, streamed
uploads, slow clients, graceful stop and max_requests, with 1 thread (app
inline on the loop) and with 4 (thread pool)."""

import os
import signal
import socket
import threading
import time

import pytest

import cgtest

APP = "gthread_app:app"


class Conn:
    """A client connection that reads responses one by one (Content-Length
    framing), so several can travel on one connection."""

    def __init__(self, srv, timeout=10.0):
        self.s = srv.connect(timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def get(self, path, extra=b"", version=b"HTTP/1.1"):
        self.send(b"GET " + path.encode() + b" " + version + b"\r\nHost: t\r\n" + extra + b"\r\n")
        return self.response()

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("server closed the connection")
        self.buf += d

    def response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return lines[0], headers, body

    def closed_within(self, seconds):
        """True when the server closes the connection within `seconds`."""
        self.s.settimeout(seconds)
        try:
            return self.s.recv(1) == b""
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


THREADS = [pytest.param(1, id="threads1"), pytest.param(4, id="threads4")]


def start(cg, threads, *args):
    return cg(APP, args=["-k", "gthread", "--threads", str(threads)] + list(args))


@pytest.mark.parametrize("threads", THREADS)
def test_keepalive_reuses_connection(cg, threads):
    srv = start(cg, threads, "--keep-alive", "5")
    c = Conn(srv)
    pids = set()
    for i in range(5):
        status, headers, body = c.get("/n%d" % i)
        assert status == "HTTP/1.1 200 OK"
        assert headers["connection"] == "keep-alive"
        assert body.split()[0] == b"/n%d" % i
        pids.add(body.split()[1])
    assert len(pids) == 1
    # HTTP/1.0 without keep-alive, and Connection: close, end the connection.
    status, headers, _ = c.get("/last", extra=b"Connection: close\r\n")
    assert headers["connection"] == "close"
    assert c.closed_within(5)
    c.close()
    c = Conn(srv)
    status, headers, _ = c.get("/old", version=b"HTTP/1.0")
    assert status == "HTTP/1.0 200 OK" and headers["connection"] == "close"
    assert c.closed_within(5)
    c.close()


@pytest.mark.parametrize("threads", THREADS)
def test_gunicorn_socket_is_the_connection(cg, threads):
    """environ['gunicorn.socket'] is the connection's socket, one object for
    all requests of a keep-alive connection (as Gunicorn's); once the
    connection is closed, an object the app kept no longer holds its fd."""
    srv = start(cg, threads, "--keep-alive", "5")
    c = Conn(srv)
    port = c.s.getsockname()[1]
    first = c.get("/sock?keep=1")[2].split()
    second = c.get("/sock")[2].split()
    assert int(first[2]) == port and int(first[1]) >= 0 and first[0] == b"0"
    assert second == [b"1"] + first[1:]  # the same object, on the same fd
    c.close()
    time.sleep(0.3)
    d = Conn(srv)
    other = d.get("/sock")[2].split()
    assert other[0] == b"0" and int(other[2]) == d.s.getsockname()[1]
    assert d.get("/kept")[2] == b"-1"
    d.close()


@pytest.mark.parametrize("threads", THREADS)
def test_long_request_is_not_a_worker_timeout(cg, threads):
    """As in Gunicorn's gthread worker, `timeout` watches the worker's loop,
    not the app: a request longer than the timeout completes, also when it
    runs inline on the loop thread (threads=1)."""
    srv = start(cg, threads, "--timeout", "1")
    c = Conn(srv, timeout=15)
    status, _, body = c.get("/sleep?t=3.5")
    assert status == "HTTP/1.1 200 OK" and body == b"slept"
    # the same worker is still there and serves
    assert c.get("/again")[0] == "HTTP/1.1 200 OK"
    c.close()
    assert "WORKER TIMEOUT" not in srv.log()
    assert len(srv.wait_log(r"Booting worker with pid", count=1)) == 1


@pytest.mark.parametrize("threads", THREADS)
def test_stalled_small_body_holds_no_thread(cg, threads):
    """Clients that stop half-way through a small request body (more of
    them than there are threads) do not keep the app from serving others:
    such a body is read on the loop before the app runs. Once the body
    comes, the request is served whole."""
    srv = start(cg, threads, "--keep-alive", "5")
    body = bytes(range(256)) * 4  # 1 KiB
    stalled = []
    for _ in range(threads + 2):
        c = Conn(srv)
        c.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)
               + body[:10])
        stalled.append(c)
    time.sleep(0.3)
    other = Conn(srv, timeout=3)
    t0 = time.monotonic()
    status, _, reply = other.get("/quick")
    assert status == "HTTP/1.1 200 OK" and reply.split()[0] == b"/quick"
    assert time.monotonic() - t0 < 2
    other.close()
    import hashlib
    for c in stalled:
        c.send(body[10:])
        status, _, reply = c.response()
        assert status == "HTTP/1.1 200 OK"
        total, pieces, largest, digest = reply.split()
        assert int(total) == len(body) and digest.decode() == hashlib.sha256(body).hexdigest()
        c.close()


def test_stalled_body_gets_the_head_deadline(cg):
    """A small body that never completes is dropped after --timeout, like a
    head that never completes."""
    srv = start(cg, 1, "--timeout", "2", "--log-level", "debug")
    c = Conn(srv, timeout=10)
    c.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
    t0 = time.monotonic()
    assert c.closed_within(8)
    assert 1.5 < time.monotonic() - t0 < 6
    srv.wait_log(r"request body not complete in time")
    c.close()


@pytest.mark.parametrize("threads", THREADS)
def test_environ_per_request_values(cg, threads):
    """The keys the base environ holds for every request (url scheme,
    SCRIPT_NAME, server name and port, wsgi.input) are overridden for one
    request and back to normal on the next; an input object the app kept is
    replaced, and the new one reads the new body."""
    import json
    srv = cg(APP, args=["-k", "gthread", "--threads", str(threads), "--keep-alive", "5"],
             env={"SCRIPT_NAME": "/app"})
    c = Conn(srv)

    def env(extra=b"", body=b"", path="/app/environ"):
        c.send(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
               % len(body) + extra + b"\r\n" + body)
        status, _, reply = c.response()
        assert status == "HTTP/1.1 200 OK", reply
        return json.loads(reply)

    plain = env(body=b"one")
    assert plain["wsgi.url_scheme"] == "http" and plain["SCRIPT_NAME"] == "/app"
    assert plain["PATH_INFO"] == "/environ" and plain["body"] == "one"
    assert plain["SERVER_NAME"] == "127.0.0.1" and plain["SERVER_PORT"] == str(srv.port)
    secure = env(b"X-Forwarded-Proto: https\r\n", b"two")
    assert secure["wsgi.url_scheme"] == "https" and secure["body"] == "two"
    assert env(body=b"three")["wsgi.url_scheme"] == "http"
    kept = env(body=b"four", path="/app/environ?keep=1")
    assert kept["body"] == "four" and kept["kept_same"] is True
    after = env(body=b"five")
    assert after["body"] == "five" and after["kept_same"] is False
    c.close()


@pytest.mark.parametrize("threads", THREADS)
def test_multithread_flag(cg, threads):
    srv = start(cg, threads)
    c = Conn(srv)
    _, _, body = c.get("/env")
    assert body.split()[:2] == [b"True", b"False"]
    c.close()


@pytest.mark.parametrize("threads", THREADS)
def test_pipelining_16_in_order(cg, threads):
    srv = start(cg, threads, "--keep-alive", "5")
    c = Conn(srv)
    c.send(b"".join(b"GET /p%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(16)))
    for i in range(16):
        status, headers, body = c.response()
        assert status == "HTTP/1.1 200 OK"
        assert body.split()[0] == b"/p%d" % i
        assert headers["connection"] == "keep-alive"
    # and the connection still serves afterwards
    assert c.get("/after")[2].split()[0] == b"/after"
    c.close()


@pytest.mark.parametrize("threads", THREADS)
def test_keepalive_timeout_closes_idle_connection(cg, threads):
    srv = start(cg, threads, "--keep-alive", "1")
    c = Conn(srv)
    assert c.get("/a")[1]["connection"] == "keep-alive"
    t0 = time.monotonic()
    assert c.closed_within(5)
    assert 0.7 < time.monotonic() - t0 < 3.5
    c.close()


def test_keepalive_zero_closes(cg):
    srv = start(cg, 1, "--keep-alive", "0")
    c = Conn(srv)
    assert c.get("/a")[1]["connection"] == "close"
    assert c.closed_within(5)
    c.close()


@pytest.mark.parametrize("threads", THREADS)
def test_worker_connections_cap(cg, threads):
    srv = start(cg, threads, "--worker-connections", "2", "--keep-alive", "10")
    # two slots taken by heads begun and never finished (a connection that
    # sends nothing stays in the kernel for a second: TCP_DEFER_ACCEPT)
    idle = [srv.connect(), srv.connect()]
    for s in idle:
        s.sendall(b"GET /idle HTTP/1.1\r\n")
    time.sleep(0.3)
    c = Conn(srv)
    c.send(b"GET /third HTTP/1.1\r\nHost: t\r\n\r\n")
    c.s.settimeout(1.0)
    with pytest.raises(socket.timeout):
        c.s.recv(1)  # not accepted while at the cap
    idle[0].close()  # a slot frees: the worker accepts again
    c.s.settimeout(5.0)
    status, _, body = c.response()
    assert status == "HTTP/1.1 200 OK" and body.split()[0] == b"/third"
    c.close()
    idle[1].close()


@pytest.mark.parametrize("threads", THREADS)
def test_large_upload_streamed_in_pieces(cg, threads):
    srv = start(cg, threads)
    import hashlib
    data = os.urandom(3 * 1024 * 1024 + 12345)
    c = Conn(srv, timeout=30)
    c.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(data))
    c.send(data)
    status, headers, body = c.response()
    total, pieces, largest, digest = body.split()
    assert int(total) == len(data)
    assert digest.decode() == hashlib.sha256(data).hexdigest()
    assert int(largest) <= 65536 and int(pieces) >= len(data) // 65536
    # chunked too, on the same connection
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 50000]), data[i:i + 50000])
                      for i in range(0, len(data), 50000)) + b"0\r\n\r\n"
    c.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    _, _, body = c.response()
    assert body.split()[0] == str(len(data)).encode()
    assert body.split()[3].decode() == hashlib.sha256(data).hexdigest()
    c.close()


@pytest.mark.parametrize("threads", THREADS)
def test_unread_body_drained_or_closed(cg, threads):
    srv = start(cg, threads, "--keep-alive", "5")
    c = Conn(srv)
    # small unread body: drained, connection reused
    c.send(b"POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 10000\r\n\r\n" + b"x" * 10000)
    assert c.response()[2].split()[0] == b"/small"
    assert c.get("/next")[2].split()[0] == b"/next"
    # a larger body is read ahead of the app (the spool): unread, it is
    # simply dropped, and the connection is reused
    c.send(b"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n" + b"y" * 1000000)
    assert c.response()[2].split()[0] == b"/big"
    assert c.get("/next2")[2].split()[0] == b"/next2"
    # beyond what is read ahead (16 MiB), the rest streams: unread, it is
    # not drained past 64 KiB and the connection is closed
    c.send(b"POST /huge HTTP/1.1\r\nHost: t\r\nContent-Length: 40000000\r\n\r\n")
    chunk = b"z" * (1 << 20)
    for _ in range(17):
        c.send(chunk)
    assert c.response()[2].split()[0] == b"/huge"
    assert c.closed_within(10)
    c.close()


def test_slow_client_does_not_block_others(cg):
    srv = start(cg, 1, "--keep-alive", "5")
    slow = srv.connect()
    stop = threading.Event()
    head = b"GET /slow HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"z" * 200 + b"\r\n\r\n"

    def trickle():
        for b in head:
            if stop.is_set():
                return
            slow.sendall(bytes([b]))
            time.sleep(0.2)

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        for i in range(10):
            t0 = time.monotonic()
            c = Conn(srv, timeout=5)
            assert c.get("/fast%d" % i)[2].split()[0] == b"/fast%d" % i
            c.close()
            assert time.monotonic() - t0 < 1.0
        assert t.is_alive()  # the slow client was still sending all along
    finally:
        stop.set()
        t.join()
        slow.close()


@pytest.mark.parametrize("threads", THREADS)
def test_graceful_term_finishes_inflight_request(cg, threads):
    srv = start(cg, threads, "--keep-alive", "5")
    c = Conn(srv, timeout=15)
    c.send(b"GET /sleep?t=1.5&say=1 HTTP/1.1\r\nHost: t\r\n\r\n")
    srv.wait_log(r"app: sleeping", timeout=15)
    srv.send_signal(signal.SIGTERM)
    status, headers, body = c.response()
    assert status == "HTTP/1.1 200 OK" and body == b"slept"
    assert headers["connection"] == "close"  # shutting down: no keep-alive
    assert c.closed_within(5)
    c.close()
    assert srv.wait_exit(15) == 0


@pytest.mark.parametrize("threads", THREADS)
def test_request_on_idle_keepalive_during_stop_is_served(cg, threads):
    # Gunicorn 27.0.1 (RFC 9112 9.6): a stopping worker keeps its kept-alive
    # connections for a while and answers a request on one, closing after;
    # a client reusing the connection (a redirect) must not lose it.
    srv = start(cg, threads, "--keep-alive", "5")
    c = Conn(srv, timeout=15)
    status, headers, _ = c.get("/first")
    assert status == "HTTP/1.1 200 OK" and headers["connection"] == "keep-alive"
    srv.send_signal(signal.SIGTERM)
    srv.wait_log(r"Handling signal: term")
    status, headers, body = c.get("/second")
    assert status == "HTTP/1.1 200 OK" and body.split()[0] == b"/second"
    assert c.closed_within(6)
    c.close()
    assert srv.wait_exit(15) == 0


@pytest.mark.parametrize("threads", THREADS)
def test_max_requests_restarts_worker(cg, threads):
    srv = start(cg, threads, "--max-requests", "3", "--keep-alive", "5")
    c = Conn(srv)
    first = [c.get("/r%d" % i) for i in range(3)]
    assert [h["connection"] for _, h, _ in first] == ["keep-alive", "keep-alive", "close"]
    assert c.closed_within(5)
    c.close()
    srv.wait_log(r"Autorestarting worker after current request\.")
    old = first[0][2].split()[1]
    deadline = time.monotonic() + 15
    while True:
        try:
            c = Conn(srv, timeout=5)
            pid = c.get("/again")[2].split()[1]
            c.close()
            if pid != old:
                break
        except (OSError, EOFError):
            pass
        assert time.monotonic() < deadline, "no new worker"
        time.sleep(0.2)


def test_threads_serve_concurrently(cg):
    srv = start(cg, 4)
    results = []

    def one():
        c = Conn(srv, timeout=10)
        results.append(c.get("/sleep?t=1")[2])
        c.close()

    t0 = time.monotonic()
    ts = [threading.Thread(target=one) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert results == [b"slept"] * 4
    assert time.monotonic() - t0 < 2.5


@pytest.mark.parametrize("spelling", ["gunicorn.workers.gthread.ThreadWorker", "egg:gunicorn#gthread",
                                      "sync"])
def test_worker_class_spellings(cg, spelling):
    srv = cg(APP, args=["-k", spelling, "--threads", "2"])
    srv.wait_log(r"Using worker: (gthread|gunicorn\.workers\.gthread\.ThreadWorker|egg:gunicorn#gthread)")
    c = Conn(srv)
    _, headers, body = c.get("/env")
    assert headers["connection"] == "keep-alive" and body.startswith(b"True")
    c.close()


@pytest.mark.parametrize("threads", THREADS)
def test_bad_request_refused_and_closed(cg, threads):
    srv = start(cg, threads)
    data = srv.raw(b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 Bad Request")
    # good then bad, pipelined: the first is answered, then the 400
    data = srv.raw(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/9.9\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK") and b"400 Bad Request" in data
