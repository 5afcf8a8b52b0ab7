"""-k gevent: Gunicorn's gevent worker, its HTTP work in C and its I/O on
gevent's hub (src/workers/ggevent.c, pylib/cgunicorn/workers/ggevent.py).

Concurrency (1,000 sleepers on one worker, requests.get to a slow server
not blocking others), keep-alive, request bodies, streamed and file
responses, the conformance corpus, TERM/QUIT/--max-requests/--timeout, and
hostile input. gevent comes from the test-site (tests/requirements.txt).
"""

import asyncio
import base64
import http.server
import json
import os
import re
import signal
import socket
import threading
import time

import pytest

import cgtest
from cgtest import dechunk, parse_response, split_head
import test_conformance as conf


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return cgtest.pinned_site(tmp_path_factory.mktemp("gevent-site"), "gevent", "greenlet",
                              "zope.event", "zope.interface")


SANITIZED = "ASAN_OPTIONS" in os.environ
# greenlet switches stacks by copying them to the heap and back: under ASan
# the redzones of instrumented frames go with them (memcpy's check reports
# the copy) and stay poisoned under the next greenlet's frames. The gevent
# servers keep their instrumented locals on ASan's fake stack instead (what
# detect_stack_use_after_return does), and run without memcpy's range check;
# the rest of ASan and UBSan stays on.
ENV = ({"ASAN_OPTIONS": os.environ["ASAN_OPTIONS"]
        + ":detect_stack_use_after_return=1:replace_intrin=0"} if SANITIZED else None)


def gevent_args(site, *more):
    return ["-k", "gevent", "--pythonpath", site] + list(more)


def get(srv, path, extra=b"", method=b"GET", body=b"", timeout=10.0):
    req = (method + b" " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
           + extra + (b"Content-Length: %d\r\n" % len(body) if body else b"") + b"\r\n" + body)
    return parse_response(srv.raw(req, timeout=timeout))


@pytest.fixture(scope="module")
def basic(cg_module, site):
    return cg_module("gevent_app:app", args=gevent_args(site, "--worker-connections", "1000",
                                                         "--keep-alive", "5"), env=ENV)


def test_serves_with_the_app_patched(basic):
    status, headers, body = get(basic, "/info")
    assert status == "HTTP/1.1 200 OK"
    info = json.loads(body)
    # monkey.patch_all() ran before the app was imported
    assert info["socket_module"].startswith("gevent")
    assert info["multithread"] is True
    basic.wait_log(r"Using worker: gevent")


@pytest.mark.timeout(120)
def test_thousand_sleepers_on_one_worker(basic):
    """1,000 connections at once, each a request whose app sleeps 1 s in
    gevent.sleep: all answered in under 3 s."""
    n = 1000

    async def one():
        r, w = await asyncio.open_connection("127.0.0.1", basic.port)
        w.write(b"GET /sleep?1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = await r.read()
        w.close()
        return data

    async def all_of_them():
        t0 = time.monotonic()
        results = await asyncio.gather(*(one() for _ in range(n)))
        return time.monotonic() - t0, results

    took, results = asyncio.run(all_of_them())
    assert all(parse_response(d)[2] == b"slept" for d in results)
    assert took < 3.0, "1000 concurrent gevent.sleep(1) requests took %.2fs" % took


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    """Answers once the test releases it: `arrived` is set when a request
    is in, the answer waits for `release`."""
    arrived = threading.Event()
    release = threading.Event()

    def do_GET(self):
        type(self).arrived.set()
        type(self).release.wait(30)
        body = b"from the slow server"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.timeout(60)
def test_slow_upstream_does_not_block_others(basic):
    slow = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    result = {}

    def fetch():
        url = "http://127.0.0.1:%d/x" % slow.server_address[1]
        result["r"] = get(basic, "/fetch?" + url, timeout=30)

    t = threading.Thread(target=fetch)
    t.start()
    try:
        assert _SlowHandler.arrived.wait(20)
        # the request waiting on requests.get holds its greenlet only
        for _ in range(3):
            assert get(basic, "/")[2] == b"hello"
        assert "r" not in result
    finally:
        _SlowHandler.release.set()
        t.join(30)
        slow.shutdown()
    assert result["r"][2] == b"from the slow server"


def test_keepalive_and_pipelining(basic):
    s = basic.connect()
    try:
        ports = set()
        for _ in range(3):
            s.sendall(b"GET /info HTTP/1.1\r\nHost: t\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(65536)
            h, _, rest = head.partition(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", h).group(1))
            while len(rest) < length:
                rest += s.recv(65536)
            assert b"Connection: keep-alive" in h
            ports.add(json.loads(rest[:length])["remote_port"])
        assert len(ports) == 1  # one connection served them all
        # two pipelined requests in one write, answered in order
        s.sendall(b"GET /sleep?0.01 HTTP/1.1\r\nHost: t\r\n\r\n"
                  b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = cgtest.read_until_close(s)
        assert data.count(b"HTTP/1.1 200 OK") == 2
        assert data.index(b"slept") < data.index(b"hello")
    finally:
        s.close()


def test_request_bodies(basic):
    big = os.urandom(1 << 20)
    assert get(basic, "/echo", method=b"POST", body=big, timeout=30)[2] == big
    chunked = b"".join(b"%X\r\n%s\r\n" % (len(p), p) for p in (b"hello ", b"chunked ", b"world"))
    data = basic.raw(b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n")
    assert parse_response(data)[2] == b"hello chunked world"
    # a body sent in pieces, slowly: the greenlet waits on the hub for each
    s = basic.connect()
    try:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                  b"Content-Length: 10\r\n\r\n01234")
        assert get(basic, "/")[2] == b"hello"  # meanwhile, others are served
        s.sendall(b"56789")
        assert parse_response(cgtest.read_until_close(s))[2] == b"0123456789"
    finally:
        s.close()


def test_streamed_response(basic):
    status, headers, body = split_head(basic.raw(
        b"GET /stream?5 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    assert status == "HTTP/1.1 200 OK"
    assert cgtest.header(headers, "Transfer-Encoding") == "chunked"
    assert dechunk(body)[0] == b"".join(b"chunk-%d\n" % i for i in range(5))


def test_file_wrapper(basic, tmp_path):
    blob = os.urandom(3 << 20)  # more than a socket buffer: sendfile waits on the hub
    f = tmp_path / "blob.bin"
    f.write_bytes(blob)
    status, headers, body = get(basic, "/file?" + str(f), timeout=30)
    assert status == "HTTP/1.1 200 OK" and body == blob


def test_hostile_input_gets_400_and_the_worker_survives(basic):
    pid = json.loads(get(basic, "/info")[2])["pid"]
    for raw in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
                b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) + b"\r\n\r\n"):
        data = basic.raw(raw, half_close=True)
        status = data.split(b"\r\n", 1)[0]
        assert status.startswith(b"HTTP/1.1 4"), (raw[:40], data[:200])
    # a client that leaves mid-head, and one that resets
    s = basic.connect()
    s.sendall(b"GET / HTTP/1.1\r\nHo")
    s.close()
    s = basic.connect()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nxx")
    s.close()
    assert json.loads(get(basic, "/info")[2])["pid"] == pid


# ---- signals, limits ----

@pytest.mark.timeout(60)
def test_graceful_term_lets_requests_finish(cg, site):
    srv = cg("gevent_app:app", args=gevent_args(site, "--graceful-timeout", "20"), env=ENV)
    result = {}

    def slow(i):
        result[i] = get(srv, "/slow?1.5", timeout=20)

    threads = [threading.Thread(target=slow, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    srv.wait_log(r"SLOW-START", count=3, timeout=10)
    srv.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(20)
    assert all(result[i][2] == b"slow done" for i in range(3))
    assert srv.wait_exit(30) == 0


def stopped_with_a_request_in_app(srv, sig):
    """Send sig to the master while a request sleeps 60 s in the app: the
    master leaves with status 0 within 10 s. Returns that request's socket."""
    s = srv.connect(timeout=30)
    s.sendall(b"GET /slow?60 HTTP/1.1\r\nHost: t\r\n\r\n")
    srv.wait_log(r"SLOW-START", timeout=10)
    t0 = time.monotonic()
    srv.send_signal(sig)
    assert srv.wait_exit(20) == 0
    assert time.monotonic() - t0 < 10
    return s


@pytest.mark.timeout(60)
def test_graceful_timeout_kills_what_is_left(cg, site):
    srv = cg("gevent_app:app", args=gevent_args(site, "--graceful-timeout", "1"), env=ENV)
    s = stopped_with_a_request_in_app(srv, signal.SIGTERM)
    # the request is cut off (by the worker's kill or the master's SIGKILL,
    # whichever comes first: both wait --graceful-timeout)
    assert cgtest.read_until_close(s, timeout=5) == b""
    s.close()


@pytest.mark.timeout(60)
def test_quit_leaves_at_once(cg, site):
    srv = cg("gevent_app:app", args=gevent_args(site, "--graceful-timeout", "30"), env=ENV)
    stopped_with_a_request_in_app(srv, signal.SIGQUIT).close()


@pytest.mark.timeout(60)
def test_max_requests_restarts_the_worker(cg, site):
    srv = cg("gevent_app:app", args=gevent_args(site, "--max-requests", "3"), env=ENV)
    pid = json.loads(get(srv, "/info")[2])["pid"]
    get(srv, "/")
    status, headers, _ = split_head(srv.raw(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
                                             half_close=True))
    assert cgtest.header(headers, "Connection") == "close"
    srv.wait_log(r"Autorestarting worker after current request\.")
    srv.wait_log(r"Booting worker with pid: (?!%d)\d+" % pid)
    srv.wait_workers(lambda pids: pid not in pids and len(pids) == 1, 20)


@pytest.mark.timeout(90)
def test_timeout_kills_a_worker_whose_hub_is_blocked(cg, site):
    srv = cg("gevent_app:app", args=gevent_args(site, "--timeout", "2"), env=ENV)
    pid = json.loads(get(srv, "/info")[2])["pid"]
    s = srv.connect(timeout=30)
    s.sendall(b"GET /spin HTTP/1.1\r\nHost: t\r\n\r\n")
    srv.wait_log(r"WORKER TIMEOUT \(pid:%d\)" % pid, timeout=30)
    srv.wait_log(r"Booting worker with pid: (?!%d)\d+" % pid, timeout=30)
    s.close()
    deadline = time.monotonic() + 20
    while json.loads(get(srv, "/info")[2])["pid"] == pid:
        assert time.monotonic() < deadline
        time.sleep(0.1)


# ---- the conformance corpus (tests/integration/test_conformance.py) ----

def self_pid(srv):
    return json.loads(parse_response(srv.raw(b"GET /_pid HTTP/1.0\r\n\r\n"))[2])["pid"]


class GeventPool(conf.Pool):
    def __init__(self, factory, site):
        super().__init__(factory)
        self.site = site

    def _start(self, settings):
        args = ["-w", "1"] + gevent_args(self.site) + conf.settings_args(settings)
        srv = self.factory("echo:app", args=args, start=False, env=ENV)
        srv.wait_ready()
        srv.initial_pid = self_pid(srv)
        return srv


@pytest.fixture(scope="module")
def gevent_pool(cg_module, site):
    return GeventPool(cg_module, site)


@pytest.mark.parametrize("case", conf.VALID, ids=conf.ids(conf.VALID))
def test_corpus_valid(gevent_pool, case):
    srv = gevent_pool.get(case)
    conf.check_echo(case, srv.raw(base64.b64decode(case["raw_b64"]), half_close=True))


@pytest.mark.parametrize("case", conf.VALID, ids=conf.ids(conf.VALID))
def test_corpus_valid_split(gevent_pool, case):
    """The request in pieces: each wait for the next is a wait on the hub."""
    srv = gevent_pool.get(case)
    raw = base64.b64decode(case["raw_b64"])
    for p in conf.split_points(raw):
        try:
            conf.check_echo(case, srv.raw(raw, pieces=[p], delay=0.03, half_close=True))
        except AssertionError as e:
            raise AssertionError("split at byte %d of %d: %s" % (p, len(raw), e)) from e


@pytest.mark.parametrize("case", conf.INVALID, ids=conf.ids(conf.INVALID))
def test_corpus_invalid(gevent_pool, case):
    srv = gevent_pool.get(case)
    conf.check_refusal(srv, case)
    assert self_pid(srv) == srv.initial_pid  # the worker survived
