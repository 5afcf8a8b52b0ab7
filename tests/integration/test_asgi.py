"""The ASGI worker (-k asgi, docs/asgi.md) with hand-written ASGI 3 apps
(apps/asgi_basic.py, apps/asgi_echo.py): scope, request and response
streaming, keep-alive and pipelining, errors, lifespan, graceful stop,
max_requests, back-pressure, hostile input, the conformance corpus."""

import base64
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

ASGI = ["-k", "asgi", "--asgi-loop", "asyncio"]


def get(srv, path, extra=b"", method=b"GET", body=b""):
    req = method + b" " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + extra
    if body:
        req += b"Content-Length: %d\r\n" % len(body)
    return parse_response(srv.raw(req + b"\r\n" + body), head_request=method == b"HEAD")


@pytest.fixture(scope="module")
def basic(cg_module):
    return cg_module("asgi_basic:app", args=ASGI + ["--root-path", "/mnt"])


def test_scope(basic):
    status, headers, body = get(basic, "/sc%6Fpe?a=1&b=%20", b"X-Thing: One\r\nx-thing: two\r\n")
    assert status == "HTTP/1.1 200 OK"
    s = json.loads(body)
    assert s["type"] == "http"
    assert s["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert s["http_version"] == "1.1"
    assert s["method"] == "GET"
    assert s["scheme"] == "http"
    assert s["path"] == "/scope"
    assert s["raw_path"] == "/sc%6Fpe"
    assert s["query_string"] == "a=1&b=%20"
    assert s["root_path"] == "/mnt"
    assert ["x-thing", "One"] in s["headers"] and ["x-thing", "two"] in s["headers"]
    assert ["host", "t"] in s["headers"]
    assert s["client"][0] == "127.0.0.1" and isinstance(s["client"][1], int)
    assert s["server"] == ["127.0.0.1", basic.port]
    assert s["state_keys"] == ["pid", "started"]
    assert cgtest.header(headers, "Server") == "gunicorn"
    assert cgtest.header(headers, "Date")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_scope_client_is_each_connections_peer(cg, site, loop):
    """scope["client"] is the peer accept() gave each connection (the
    protocol is made from it, not asked of the transport): one connection
    after another, and several open at once, each sees its own port."""
    srv = cg("asgi_basic:app", args=["-k", "asgi", "--asgi-loop", loop],
             env={"PYTHONPATH": site})
    req = b"GET /scope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    for _ in range(3):
        with srv.connect() as c:
            port = c.getsockname()[1]
            s = json.loads(parse_response(cgtest.exchange(c, req))[2])
        assert s["client"] == ["127.0.0.1", port]
        assert s["server"] == ["127.0.0.1", srv.port]
    conns = [srv.connect() for _ in range(4)]
    try:
        ports = [c.getsockname()[1] for c in conns]
        for c in reversed(conns):
            c.sendall(req)
        got = [json.loads(parse_response(cgtest.read_until_close(c))[2])["client"]
               for c in conns]
    finally:
        for c in conns:
            c.close()
    assert got == [["127.0.0.1", p] for p in ports]
    srv.stop()
    assert "Error" not in srv.log() and "Traceback" not in srv.log()


def test_scope_server_per_listener(cg):
    """scope["server"] is the connection's local address: a listener bound
    to one address and a wildcard one each give their own port, whatever
    the connection before them had."""
    p1, p2 = cgtest.free_port(), cgtest.free_port()
    srv = cg("asgi_basic:app", args=ASGI, bind=["127.0.0.1:%d" % p1, "0.0.0.0:%d" % p2])

    def server_of(port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            data = cgtest.exchange(s, b"GET /scope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        status, _, body = parse_response(data)
        assert status == "HTTP/1.1 200 OK", status
        return json.loads(body)["server"]

    assert server_of(p1) == ["127.0.0.1", p1]
    assert server_of(p2) == ["127.0.0.1", p2]
    assert server_of(p1) == ["127.0.0.1", p1]
    assert server_of(p2) == ["127.0.0.1", p2]


def test_scope_utf8_path_and_trusted_scheme(basic):
    # forwarded_allow_ips has 127.0.0.1 by default: its X-Forwarded-Proto counts
    status, _, body = get(basic, "/scope/%C3%A9t%C3%A9")
    assert status.endswith("404 Not Found")
    assert body.decode("utf-8") == "not found: /scope/\u00e9t\u00e9"
    status, _, body = get(basic, "/scope", b"X-Forwarded-Proto: https\r\n")
    assert json.loads(body)["scheme"] == "https"


def test_request_body_streams(basic):
    # Content-Length body in pieces: several http.request messages
    data = bytes(range(256)) * 800  # 200 KiB
    req = (b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
           % len(data)) + data
    status, headers, body = parse_response(basic.raw(req, pieces=[len(req) - len(data) + 1000,
                                                                   len(req) - 5000], delay=0.05))
    assert status == "HTTP/1.1 200 OK"
    assert body == data
    assert int(cgtest.header(headers, "x-chunks")) >= 2
    # chunked request body
    req = (b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
    status, _, body = parse_response(basic.raw(req, pieces=[60, 80], delay=0.05))
    assert body == b"hello world"


def test_response_streams_chunked_and_length(basic):
    data = basic.raw(b"GET /stream?n=4&size=3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    status, headers, raw_body = split_head(data)
    assert cgtest.header(headers, "Transfer-Encoding") == "chunked"
    assert raw_body == b"3\r\naaa\r\n3\r\nbbb\r\n3\r\nccc\r\n3\r\nddd\r\n0\r\n\r\n"
    status, headers, body = get(basic, "/length")
    assert body == b"0123456789" and cgtest.header(headers, "Content-Length") == "10"
    assert cgtest.header(headers, "Transfer-Encoding") is None
    # HTTP/1.0: no chunked framing, the end of the body is the close
    data = basic.raw(b"GET /stream?n=2&size=2 HTTP/1.0\r\n\r\n")
    status, headers, body = split_head(data)
    assert status == "HTTP/1.0 200 OK" and body == b"aabb"
    assert cgtest.header(headers, "Connection") == "close"


def test_head_has_no_body(basic):
    status, headers, body = get(basic, "/head", method=b"HEAD")
    assert status == "HTTP/1.1 200 OK" and body == b""


def test_keepalive_and_pipelining(basic):
    reqs = b"".join(b"GET /state?i=%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(3))
    reqs += b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz"
    reqs += b"GET /length HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    data = basic.raw(reqs)
    bodies = []
    rest = data
    for _ in range(5):
        status, headers, body = split_head(rest)
        assert status == "HTTP/1.1 200 OK", status
        if cgtest.header(headers, "Transfer-Encoding") == "chunked":
            end = body.index(b"\r\n0\r\n\r\n") + 7
            bodies.append(dechunk(body[:end])[0])
        else:
            n = int(cgtest.header(headers, "Content-Length"))
            end = n
            bodies.append(body[:n])
        rest = body[end:]
    assert rest == b""
    assert [json.loads(b)["mine"] for b in bodies[:3]] == [1, 1, 1]  # state: a copy per request
    assert bodies[3] == b"xyz" and bodies[4] == b"0123456789"


def test_keepalive_scopes_each_their_own(basic):
    """Requests on one kept-alive connection each get their own scope: what
    a request like the one before reuses (the connection's template, the
    header pairs) never shows one request's values, nor what an app did to
    its scope, in the next one."""
    reqs = [
        b"GET /scope?a=1 HTTP/1.1\r\nHost: t\r\nX-One: 1\r\n\r\n",
        b"GET /scope?a=1 HTTP/1.1\r\nHost: t\r\nX-One: 1\r\n\r\n",
        b"GET /scope-mutate?a=1 HTTP/1.1\r\nHost: t\r\nX-One: 1\r\n\r\n",
        b"GET /scope?a=1 HTTP/1.1\r\nHost: t\r\nX-One: 1\r\n\r\n",
        b"POST /scope?a=2 HTTP/1.1\r\nHost: t\r\nX-One: 2\r\nContent-Length: 0\r\n\r\n",
        b"DELETE /scope?a=1 HTTP/1.1\r\nHost: t\r\nX-Two: 1\r\nX-One: 1\r\n\r\n",
        b"GET /scope?a=1 HTTP/1.1\r\nHost: t\r\nX-One: 1\r\n\r\n",
        # no length: its answer ends with the connection
        b"GET /scop%65 HTTP/1.0\r\nHost: t\r\nX-One: 1\r\n\r\n",
    ]
    data = basic.raw(b"".join(reqs))
    scopes = []
    for _ in reqs:
        status, headers, rest = split_head(data)
        assert status.endswith("200 OK"), status
        if cgtest.header(headers, "Transfer-Encoding") == "chunked":
            n = rest.index(b"\r\n0\r\n\r\n") + 7
            body, data = dechunk(rest[:n])[0], rest[n:]
        else:  # HTTP/1.0
            n = int(cgtest.header(headers, "Content-Length") or len(rest))
            body, data = rest[:n], rest[n:]
        scopes.append(json.loads(body) if body != b"mutated" else None)
    assert data == b""
    view = [(s["method"], s["http_version"], s["path"], s["raw_path"], s["query_string"],
             [h for h in s["headers"] if h[0].startswith("x-")], "extra" in s)
            for s in scopes if s is not None]
    one = [["x-one", "1"]]
    assert view == [
        ("GET", "1.1", "/scope", "/scope", "a=1", one, False),
        ("GET", "1.1", "/scope", "/scope", "a=1", one, False),
        ("GET", "1.1", "/scope", "/scope", "a=1", one, False),  # after /scope-mutate
        ("POST", "1.1", "/scope", "/scope", "a=2", [["x-one", "2"]], False),
        ("DELETE", "1.1", "/scope", "/scope", "a=1", [["x-two", "1"], ["x-one", "1"]], False),
        ("GET", "1.1", "/scope", "/scope", "a=1", one, False),
        ("GET", "1.0", "/scope", "/scop%65", "", one, False),
    ]
    assert all(["host", "t"] == s["headers"][0] for s in scopes if s is not None)


def test_app_errors(basic):
    before = len(basic.log())
    status, headers, body = get(basic, "/raise")
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert cgtest.header(headers, "Connection") == "close"
    basic.wait_log(r"\[ERROR\] Error in ASGI application\nTraceback[\s\S]*ValueError: boom before start",
                   source=lambda: basic.log()[before:])
    # after the response started: the connection just closes (no final chunk)
    data = basic.raw(b"GET /raise-late HTTP/1.1\r\nHost: t\r\n\r\n")
    status, headers, body = split_head(data)
    assert status == "HTTP/1.1 200 OK" and body == b"7\r\npartial\r\n"
    basic.wait_log(r"ValueError: boom after start", source=lambda: basic.log()[before:])
    status, _, _ = get(basic, "/nostart")
    assert status == "HTTP/1.1 500 Internal Server Error"
    basic.wait_log(r"ASGI callable returned without starting response\.",
                   source=lambda: basic.log()[before:])


def test_disconnect_after_response(basic):
    before = len(basic.log())
    with basic.connect() as s:
        s.sendall(b"GET /disconnect HTTP/1.1\r\nHost: t\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200 OK")
    basic.wait_log(r"after response: http.disconnect", source=lambda: basic.log()[before:])


def test_disconnect_while_waiting_in_receive(basic):
    """An app waiting in receive() after the body hears http.disconnect
    when the client closes, without writing anything first."""
    before = len(basic.log())
    with basic.connect() as s:
        s.sendall(b"GET /listen HTTP/1.1\r\nHost: t\r\n\r\n")
        basic.wait_log(r"listen: 0 body bytes, waiting", source=lambda: basic.log()[before:])
    basic.wait_log(r"listen: http.disconnect", source=lambda: basic.log()[before:])


def test_half_close_gets_body_then_disconnect_and_answer(basic):
    """A client that sends its request and shuts its write side: the app
    gets the whole body first, then http.disconnect (the EOF looks the same
    as a close), and what it still sends reaches the client."""
    body = b"x" * 100000
    req = (b"POST /listen HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    status, headers, got = parse_response(basic.raw(req, half_close=True))
    assert status == "HTTP/1.1 200 OK"
    assert got == b"heard http.disconnect after 100000 bytes"


@pytest.fixture(scope="module")
def no_grace(cg_module):
    return cg_module("asgi_basic:app", args=ASGI + ["--asgi-disconnect-grace-period", "0",
                                                    "--log-level", "debug"])


def test_half_close_after_pipelined_requests(no_grace):
    """An EOF behind pipelined requests is a half-close: every one is
    answered, none is taken for a client that left (with no grace at all,
    that would cancel it)."""
    reqs = b"GET /slow?s=0.3 HTTP/1.1\r\nHost: t\r\n\r\nGET /length HTTP/1.1\r\nHost: t\r\n\r\n"
    data = no_grace.raw(reqs, half_close=True)
    status, headers, rest = split_head(data)
    assert status == "HTTP/1.1 200 OK"
    end = rest.index(b"\r\n0\r\n\r\n") + 7
    assert dechunk(rest[:end])[0] == b"slow done"
    status, headers, rest = split_head(rest[end:])
    assert status == "HTTP/1.1 200 OK" and rest == b"0123456789"
    assert "Request cancelled" not in no_grace.log()


def test_eof_starts_the_disconnect_grace(no_grace):
    """asgi_disconnect_grace_period starts at the client's EOF (Gunicorn 27
    closes on it): with 0 an app busy with a request whose client left is
    cancelled at once, before it ever writes."""
    before = len(no_grace.log())
    with no_grace.connect() as s:
        s.sendall(b"GET /slow?s=30 HTTP/1.1\r\nHost: t\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        no_grace.wait_log(r"Request cancelled \(client disconnected\)",
                          source=lambda: no_grace.log()[before:])
    assert get(no_grace, "/length")[2] == b"0123456789"


def test_expect_continue(basic):
    with basic.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                  b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        s.settimeout(10)
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"data")
        status, _, body = parse_response(cgtest.read_until_close(s))
    assert status == "HTTP/1.1 200 OK" and body == b"data"


def test_hostile_input_and_websocket(basic):
    pid = json.loads(get(basic, "/state")[2])["pid"]
    data = basic.raw(b"GARBAGE\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    data = basic.raw(b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 9000 + b"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 4")
    data = basic.raw(b"GET /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    data = basic.raw(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    # an app without WebSocket support (it asserts an http scope): 500
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert json.loads(get(basic, "/state")[2])["pid"] == pid


def test_backpressure_slow_reader(basic):
    """A 32 MiB answer (more than the kernel buffers on both sides hold) to
    a client that does not read yet: the transport pauses send(), the loop
    goes on serving others, and every byte arrives once the client reads."""
    size = 32 << 20
    before = len(basic.log())
    s = basic.connect(timeout=30)
    s.sendall(b"GET /big?size=%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % size)
    # meanwhile another client is served
    assert get(basic, "/length")[2] == b"0123456789"
    assert "big sent" not in basic.log()[before:]  # still waiting in send()
    data = cgtest.read_until_close(s, timeout=30)
    s.close()
    status, headers, body = split_head(data)
    assert len(body) == size
    basic.wait_log(r"big sent", source=lambda: basic.log()[before:])


def test_lifespan_unsupported_auto(cg):
    srv = cg("asgi_echo:app", args=ASGI)
    srv.wait_log(r"ASGI 'lifespan' protocol appears unsupported\.")
    assert json.loads(parse_response(srv.raw(b"GET /a HTTP/1.0\r\n\r\n"))[2])["path"] == "/a"


@pytest.mark.parametrize("fail,mode", [("fail", "auto"), ("raise", "on")])
def test_lifespan_startup_failure_stops(cg, fail, mode):
    srv = cg("asgi_basic:app", args=ASGI + ["--asgi-lifespan", mode], start=False,
             env={"CG_ASGI_FAIL": fail})
    assert srv.wait_exit(20) == 3
    assert "Application startup failed. Exiting." in srv.log()
    if fail == "fail":
        assert "no database" in srv.log()
    else:
        assert "RuntimeError: startup exploded" in srv.log()


def test_lifespan_raise_auto_serves(cg):
    srv = cg("asgi_basic:app", args=ASGI, env={"CG_ASGI_FAIL": "raise"})
    srv.wait_log(r"appears unsupported")
    assert json.loads(get(srv, "/state")[2])["started"] is None


def test_graceful_term_finishes_inflight(cg):
    srv = cg("asgi_basic:app", args=ASGI + ["--graceful-timeout", "20"])
    result = {}
    s = srv.connect(timeout=30)
    s.sendall(b"GET /slow?s=1.5 HTTP/1.1\r\nHost: t\r\n\r\n")

    def read():
        result["data"] = cgtest.read_until_close(s, timeout=30)
    t = threading.Thread(target=read)
    t.start()
    # the request is with the app once its task runs: wait for the worker to
    # have it (a second request on another connection is answered first)
    assert get(srv, "/length")[2] == b"0123456789"
    srv.send_signal(signal.SIGTERM)
    t.join(30)
    s.close()
    status, headers, body = split_head(result["data"])
    assert status == "HTTP/1.1 200 OK" and dechunk(body)[0] == b"slow done"
    assert cgtest.header(headers, "Connection") == "close"
    assert srv.wait_exit(20) == 0
    assert "lifespan shutdown ran" in srv.log()


HOOKS_CONF = """
import json, os
from gunicorn.glogging import Logger

OUT = os.environ["CG_HOOK_LOG"]

def _rec(**kw):
    with open(OUT, "a") as f:
        f.write(json.dumps(kw) + "\\n")

def pre_request(worker, req):
    _rec(hook="pre", method=req.method, path=req.path, query=req.query, wpid=worker.pid,
         pid=os.getpid())
    if req.path == "/boom-hook":
        raise RuntimeError("pre_request refused")

def post_request(worker, req, environ, resp):
    _rec(hook="post", path=req.path, status=resp and resp.status, sent=resp and resp.sent,
         path_info=environ and environ["PATH_INFO"], ua=environ and environ.get("HTTP_USER_AGENT"))

class Access(Logger):
    def access(self, resp, req, environ, request_time):
        _rec(hook="access", path=req.path, status=resp.status, sent=resp.sent,
             headers=[list(h) for h in resp.headers], method=environ["REQUEST_METHOD"],
             raw_uri=environ["RAW_URI"], secs=request_time.total_seconds())

logger_class = Access
"""


@pytest.mark.parametrize("access", [True, False], ids=["accesslog", "no-accesslog"])
def test_request_hooks_and_logger_class(cg, tmp_path, access):
    """pre_request/post_request around each request, and a logger_class's
    access() with the objects Gunicorn's asgi worker passes: post_request's
    environ and resp are None without an access log, as there."""
    conf = tmp_path / "hooks.py"
    # a logger_class takes access records: without an access log, none
    conf.write_text(HOOKS_CONF if access else HOOKS_CONF.replace("logger_class = Access", ""))
    out = tmp_path / "records.jsonl"
    srv = cg("asgi_basic:app", args=ASGI + ["-c", str(conf)] +
             (["--access-logfile", "-"] if access else []), env={"CG_HOOK_LOG": str(out)})
    status, _, body = get(srv, "/length?a=1", b"User-Agent: hook-test\r\n")
    assert status == "HTTP/1.1 200 OK" and body == b"0123456789"
    before = len(srv.log())
    status, _, _ = get(srv, "/boom-hook")
    assert status == "HTTP/1.1 500 Internal Server Error"
    srv.wait_log(r"Error in ASGI application\nTraceback[\s\S]*RuntimeError: pre_request refused",
                 source=lambda: srv.log()[before:])
    recs = cgtest.wait_records(out, lambda r: len([x for x in r if x["hook"] == "post"]) == 2,
                               what="post_request")
    pre = [r for r in recs if r["hook"] == "pre"]
    post = [r for r in recs if r["hook"] == "post"]
    acc = [r for r in recs if r["hook"] == "access"]
    assert [(r["method"], r["path"], r["query"]) for r in pre] == \
        [("GET", "/length", "a=1"), ("GET", "/boom-hook", "")]
    assert pre[0]["wpid"] == pre[0]["pid"]
    if access:
        assert post == [{"hook": "post", "path": "/length", "status": 200, "sent": 10,
                         "path_info": "/length", "ua": "hook-test"},
                        {"hook": "post", "path": "/boom-hook", "status": 500, "sent": 0,
                         "path_info": "/boom-hook", "ua": None}]
        assert [(r["path"], r["status"], r["sent"], r["method"], r["raw_uri"]) for r in acc] == \
            [("/length", 200, 10, "GET", "/length?a=1"),
             ("/boom-hook", 500, 0, "GET", "/boom-hook")]
        assert ["content-length", "10"] in acc[0]["headers"] and 0 <= acc[0]["secs"] < 10
    else:
        assert [(r["path"], r["status"], r["path_info"]) for r in post] == \
            [("/length", None, None), ("/boom-hook", None, None)]
        assert acc == []


def test_silent_client_mid_body_is_dropped(cg):
    """A client that stops sending half-way through a body the app waits
    for is dropped after --timeout (the head's), and the worker serves on."""
    srv = cg("asgi_basic:app", args=ASGI + ["--timeout", "2", "--log-level", "debug"])
    with srv.connect(timeout=30) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        t0 = time.monotonic()
        assert cgtest.read_until_close(s, timeout=30) == b""
        assert time.monotonic() - t0 >= 1.5
    srv.wait_log(r"Closing connection: request body not complete in time")
    # a slow client that keeps sending is not dropped by it
    with srv.connect(timeout=30) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                  b"Content-Length: 4\r\n\r\n")
        for ch in b"abcd":
            time.sleep(0.6)  # each piece well inside the 2 s
            s.sendall(bytes([ch]))
        status, _, body = parse_response(cgtest.read_until_close(s, timeout=30))
    assert status == "HTTP/1.1 200 OK" and body == b"abcd"


def test_quit_leaves_at_once(cg):
    srv = cg("asgi_basic:app", args=ASGI + ["--graceful-timeout", "30"])
    s = srv.connect(timeout=30)
    s.sendall(b"GET /slow?s=60 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert get(srv, "/length")[2] == b"0123456789"
    t0 = time.monotonic()
    srv.send_signal(signal.SIGQUIT)
    assert srv.wait_exit(20) == 0
    assert time.monotonic() - t0 < 15
    s.close()


def test_max_requests_restarts(cg):
    srv = cg("asgi_basic:app", args=ASGI + ["--max-requests", "2"])
    pid = json.loads(get(srv, "/state")[2])["pid"]
    status, headers, _ = get(srv, "/state")
    srv.wait_log(r"Autorestarting worker after current request\.")
    srv.wait_log(r"Booting worker with pid: (?!%d)\d+" % pid)
    deadline = time.monotonic() + 20
    while True:
        try:
            newpid = json.loads(get(srv, "/state")[2])["pid"]
            if newpid != pid:
                break
        except (OSError, ValueError, AssertionError):
            pass
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_wrong_interface_refused(cg):
    srv = cg("asgi_wsgi_app:application", args=ASGI, start=False)
    assert srv.wait_exit(20) == 4
    assert "is not an ASGI application" in srv.log()
    srv = cg("asgi_wsgi_app:asgi", args=["-k", "sync"], start=False)
    assert srv.wait_exit(20) == 4
    assert "is an ASGI application" in srv.log()


def test_access_log_response_header_atoms(cg):
    """{name}o atoms see the app's response fields (views into the head,
    made when the record is written): each one, not ours (Server, Date)."""
    srv = cg("asgi_basic:app", args=ASGI + [
        "--access-logfile", "-", "--access-logformat",
        "RESP ct=%({content-type}o)s tc=%({x-tuple-client}o)s srv=%({server}o)s s=%(s)s"])
    for _ in range(2):
        assert get(srv, "/scope")[0] == "HTTP/1.1 200 OK"
    srv.wait_log(r"RESP ct=text/plain tc=tuple srv=- s=200\n[\s\S]*"
                 r"RESP ct=text/plain tc=tuple srv=- s=200", source=srv.stdout)


def test_uvicorn_worker_name(cg):
    srv = cg("asgi_basic:app", args=["-k", "uvicorn.workers.UvicornWorker",
                                     "--asgi-loop", "asyncio", "--access-logfile", "-"])
    srv.wait_log(r"\[INFO\] cgunicorn runs uvicorn.workers.UvicornWorker with its own ASGI worker")
    assert get(srv, "/length")[2] == b"0123456789"
    srv.wait_log(r'"GET /length HTTP/1.1" 200 10 ', source=srv.stdout)


# ---- the conformance corpus (tests/integration/test_conformance.py) ----

class AsgiPool(conf.Pool):
    def _start(self, settings):
        args = ["-w", "1"] + ASGI + conf.settings_args(settings)
        srv = self.factory("asgi_echo:app", args=args, start=False)
        srv.wait_ready()
        srv.initial_pid = self_pid(srv)
        return srv


def self_pid(srv):
    return json.loads(parse_response(srv.raw(b"GET /_pid HTTP/1.0\r\n\r\n"))[2])["pid"]


@pytest.fixture(scope="module")
def asgi_pool(cg_module):
    return AsgiPool(cg_module)


# 099 announces more body than it sends: the WSGI app gets the short body,
# an ASGI app gets http.disconnect (the client left mid-body).
SHORT_BODY = {"099"}


@pytest.mark.parametrize("case", conf.VALID, ids=conf.ids(conf.VALID))
def test_corpus_valid(asgi_pool, case):
    if case["name"] in SHORT_BODY:
        pytest.skip("an ASGI app gets http.disconnect for a body cut short")
    srv = asgi_pool.get(case)
    exp = case["expect"][0]
    status, _, body = parse_response(srv.raw(base64.b64decode(case["raw_b64"]), half_close=True))
    assert status.split()[1] == "200", (status, body[:300])
    got = json.loads(body)
    assert got["method"] == exp["method"]
    assert got["query_string"] == exp["uri"]["query"]
    assert got["http_version"] == "%d.%d" % tuple(exp["version"])
    assert got["headers"] == [[n.lower(), v] for n, v in exp["headers"]]
    assert base64.b64decode(got["body_b64"]) == base64.b64decode(exp["body_b64"])


@pytest.mark.parametrize("case", conf.INVALID, ids=conf.ids(conf.INVALID))
def test_corpus_invalid(asgi_pool, case):
    srv = asgi_pool.get(case)
    conf.check_refusal(srv, case)
    assert self_pid(srv) == srv.initial_pid


# ---- real frameworks: FastAPI (and Starlette under it) ----

ASGI_PACKAGES = ("fastapi", "starlette", "anyio", "idna", "pydantic", "pydantic-core",
                 "annotated-types", "typing-inspection", "typing-extensions", "python-multipart",
                 "uvloop")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The pinned framework packages (a skip without PyPI)."""
    return str(cgtest.pinned_site(tmp_path_factory.mktemp("asgi-site"), *ASGI_PACKAGES))


@pytest.mark.parametrize("worker,loop", [("asgi", "asyncio"), ("asgi", "auto"),
                                         ("uvicorn.workers.UvicornWorker", "auto")])
def test_fastapi(cg, site, worker, loop):
    srv = cg("asgi_fastapi:app", args=["-k", worker, "--asgi-loop", loop],
             env={"PYTHONPATH": site})
    status, _, body = get(srv, "/items/42", b"X-Token: abc\r\n")
    assert status == "HTTP/1.1 200 OK", body
    got = json.loads(body)
    assert got["item_id"] == 42 and got["who"] == "ABC" and got["db"] == "connected"
    assert got["loop"].startswith("uvloop" if loop == "auto" else "asyncio")
    status, _, body = get(srv, "/items/x")
    assert status == "HTTP/1.1 422 Unprocessable Content" or status.startswith("HTTP/1.1 422 ")
    status, _, body = get(srv, "/notify?text=hello", method=b"POST")
    assert json.loads(body) == {"queued": "hello"}
    srv.wait_log(r"background task: hello")
    status, headers, body = get(srv, "/stream?n=4")
    assert body == b"part-0\npart-1\npart-2\npart-3\n"
    assert cgtest.header(headers, "Transfer-Encoding") == "chunked"
    payload = b"\x89PNG\r\n\x1a\n" + os.urandom(300000)
    form = (b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + payload + b"\r\n--BOUNDARY--\r\n")
    status, _, body = get(srv, "/upload", b"Content-Type: multipart/form-data; boundary=BOUNDARY\r\n",
                          method=b"POST", body=form)
    assert json.loads(body) == {"name": "a.png", "size": len(payload), "head": "\x89PNG\r\n\x1a\n"}
    srv.stop()
    assert "fastapi lifespan shutdown" in srv.log()


def test_informational_early_hints(basic):
    """http.response.informational: a 103 before the response on HTTP/1.1,
    nothing for an HTTP/1.0 client, refused once the response began."""
    raw = basic.raw(b"GET /hints HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 103 Early Hints\r\n"
                          b"link: </style.css>; rel=preload; as=style\r\n\r\n"
                          b"HTTP/1.1 200 OK\r\n"), raw[:200]
    assert b"with early hints" in raw.split(b"\r\n\r\n", 2)[2]
    raw = basic.raw(b"GET /hints HTTP/1.0\r\nHost: t\r\n\r\n")
    assert raw.startswith(b"HTTP/1.0 200 OK\r\n") and b"103" not in raw.split(b"\r\n\r\n")[0]
    before = len(basic.log())
    # the app's send raises; its response had started (its head is not out
    # yet): the connection just closes
    basic.raw(b"GET /late-hints HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    basic.wait_log(r"Unexpected ASGI message 'http\.response\.informational' sent, after "
                   r"response already started\.", source=lambda: basic.log()[before:])


def _responses(data, n):
    out = []
    for _ in range(n):
        status, headers, body = split_head(data)
        length = int(cgtest.header(headers, "Content-Length"))
        out.append((status, body[:length]))
        data = body[length:]
    return out


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_each_request_its_own_task(cg, site, loop):
    """The app runs in a Task of its own per request (what anyio and
    asyncio.timeout need), with a fresh copy of the context; the loop's task
    factory is used once the app set one; an exception after a real await
    still gets its traceback and the 500 page, and nothing is left for
    asyncio's "exception was never retrieved"."""
    srv = cg("asgi_tasks:app", args=["-k", "asgi", "--asgi-loop", loop], env={"PYTHONPATH": site})
    reqs = b"".join(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % p for p in (b"/a", b"/sleep", b"/b"))
    got = _responses(srv.raw(reqs + b"GET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"), 4)
    infos = [json.loads(body) for status, body in got]
    assert all(status == "HTTP/1.1 200 OK" for status, _ in got)
    assert all(i["is_task"] and i["done"] is False for i in infos)
    assert [i["before"] for i in infos] == ["unset"] * 4  # nothing leaks between requests
    assert [i["after"] for i in infos] == ["/a", "/sleep", "/b", "/c"]
    assert not any(i["from_factory"] for i in infos)
    # each in asyncio.all_tasks() while it runs, by a name of its own, and
    # gone from it once done (many requests later, only a few tasks left)
    assert all(i["registered"] for i in infos)
    names = [i["name"] for i in infos]
    assert all(re.fullmatch(r"Request-\d+", n) for n in names) and len(set(names)) == 4
    many = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n" * 40
    got = _responses(srv.raw(many + b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"), 41)
    assert json.loads(got[-1][1])["ntasks"] < 8
    assert get(srv, "/factory")[2] == b"set"
    info = json.loads(get(srv, "/sleep")[2])
    assert info["from_factory"] and info["is_task"]
    status, _, _ = get(srv, "/raise-after-await")
    assert status == "HTTP/1.1 500 Internal Server Error"
    srv.wait_log(r"Error in ASGI application\nTraceback[\s\S]*KeyError: 'late boom'")
    srv.stop()
    assert "never retrieved" not in srv.log()


def test_disconnect_grace_period_cancels(cg):
    """asgi_disconnect_grace_period: an app that goes on writing after the
    client left is cancelled at its await, a grace period after the write
    that found the connection gone; the cancellation reaches the app's
    coroutine through its task, and is logged."""
    srv = cg("asgi_tasks:app", args=["-k", "asgi", "--asgi-loop", "asyncio",
                                     "--asgi-disconnect-grace-period", "1", "--log-level", "debug"])
    with srv.connect() as s:
        s.sendall(b"GET /ignore-disconnect HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while b"started" not in data:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
    srv.wait_log(r"app: cancelled after the disconnect")
    srv.wait_log(r"Request cancelled \(client disconnected\)")
    assert get(srv, "/a")[0] == "HTTP/1.1 200 OK"  # the worker goes on
