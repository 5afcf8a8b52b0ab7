"""WebSockets on the ASGI worker (-k asgi, docs/asgi.md "WebSockets"):
the websocket scope and messages with the `websockets` library as a real
client (pinned in tests/requirements.txt), and raw sockets for what a
well-behaved client never sends. App: apps/asgi_ws.py."""

import asyncio
import base64
import json
import os
import select
import signal
import socket
import struct
import sys
import time
import zlib

import pytest

import cgtest
from cgtest import parse_response

ASGI = ["-k", "asgi", "--asgi-loop", "asyncio"]


@pytest.fixture(scope="module")
def ws_site(tmp_path_factory):
    """The pinned websockets client on sys.path (Debian's python3 may have
    an older one: the pinned one goes first)."""
    site = str(cgtest.pinned_site(tmp_path_factory.mktemp("ws-site"), "websockets"))
    if site not in sys.path:
        sys.path.insert(0, site)
    import websockets
    assert websockets.__version__ == cgtest.pinned_version("websockets"), websockets.__file__
    return site


@pytest.fixture(scope="module")
def srv(cg_module):
    return cg_module("asgi_ws:app", args=ASGI + ["--access-logfile", "-"])


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def url(srv, path):
    return "ws://127.0.0.1:%d%s" % (srv.port, path)


def connect(srv, path, **kw):
    from websockets.asyncio.client import connect as ws_connect
    kw.setdefault("open_timeout", 30)
    kw.setdefault("close_timeout", 30)
    return ws_connect(url(srv, path), **kw)


# ---- raw sockets ----

KEY = base64.b64encode(b"0123456789abcdef")


def mask(payload, key):
    n = len(payload)
    m = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")


def frame(opcode, payload=b"", fin=True, masked=True, rsv1=False, length=None):
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    m = 0x80 if masked else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack("!Q", n)
    if masked:
        key = os.urandom(4)
        return head + key + mask(payload, key)
    return head + payload


class Raw:
    """A WebSocket client on a plain socket: the handshake, then frames."""

    def __init__(self, srv, path="/echo", extra=b"", timeout=20):
        self.s = srv.connect(timeout=timeout)
        self.s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY +
                       b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n")
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        self.head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = self.head.decode("latin-1")

    def _more(self):
        data = self.s.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def _need(self, n):
        while len(self.buf) < n:
            self._more()

    def read_frame(self):
        """(fin, rsv1, opcode, payload); EOFError when the server closed."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server frames are not masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(off + n)
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F, payload

    def read_close(self):
        """The server's close frame's (code, reason), then its EOF."""
        while True:
            fin, rsv1, op, payload = self.read_frame()
            if op == 0x8:
                break
        code = struct.unpack("!H", payload[:2])[0] if payload else None
        try:
            self._need(len(self.buf) + 1)
            raise AssertionError("bytes after the close frame")
        except EOFError:
            pass
        return code, payload[2:].decode()

    def send(self, data):
        self.s.sendall(data)

    def close(self):
        self.s.close()


def worker_pid(srv):
    pids = srv.worker_pids()
    assert len(pids) == 1
    return next(iter(pids))


def http_ok(srv):
    status, _, body = parse_response(srv.raw(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    return status == "HTTP/1.1 200 OK" and body == b"http"


# ---- the websocket scope and messages ----

def test_echo_and_scope(srv, ws_site):
    async def go():
        async with connect(srv, "/echo?q=1", subprotocols=["x", "chat"],
                           additional_headers={"X-Thing": "one"}) as ws:
            assert ws.subprotocol == "chat"
            assert ws.response.headers["x-app"] == "yes"
            assert ws.response.headers["server"] == "gunicorn"
            assert ws.response.headers["date"]
            await ws.send("hello \u00e9")
            assert await ws.recv() == "hello \u00e9"
            await ws.send(b"\x00\xff bytes")
            assert await ws.recv() == b"\x00\xff bytes"
            await ws.send("")
            assert await ws.recv() == ""
            await ws.send("scope")
            return json.loads(await ws.recv())
    s = run(go())
    assert s["type"] == "websocket" and "method" not in s
    assert s["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert s["http_version"] == "1.1" and s["scheme"] == "ws"
    assert s["path"] == "/echo" and s["raw_path"] == "/echo" and s["query_string"] == "q=1"
    assert s["root_path"] == ""
    assert ["x-thing", "one"] in s["headers"] and ["upgrade", "websocket"] in s["headers"]
    assert s["subprotocols"] == ["x", "chat"]
    assert s["extensions"] == {"websocket.http.response": {}}
    assert s["client"][0] == "127.0.0.1" and s["server"] == ["127.0.0.1", srv.port]
    srv.wait_log(r'"GET /echo\?q=1 HTTP/1\.1" 101 ', source=srv.stdout)


def test_subprotocols(srv, ws_site):
    from websockets.exceptions import InvalidStatus

    async def go():
        async with connect(srv, "/echo") as ws:
            assert ws.subprotocol is None
        async with connect(srv, "/echo", subprotocols=["other"]) as ws:
            assert ws.subprotocol is None
        with pytest.raises(InvalidStatus) as e:
            async with connect(srv, "/badsub", subprotocols=["x"]):
                pass
        return e.value.response.status_code
    before = len(srv.log())
    assert run(go()) == 500
    srv.wait_log(r"Error in ASGI application\n[\s\S]*RuntimeError: WebSocket subprotocol "
                 r"'never-offered' was not offered by the client \(\['x'\]\)",
                 source=lambda: srv.log()[before:])


def test_close_codes_both_ways(srv, ws_site):
    from websockets.exceptions import ConnectionClosed

    async def go():
        # the app closes: its code and reason reach the client
        async with connect(srv, "/echo") as ws:
            await ws.send("close:4001:bye now")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            app_close = (ws.close_code, ws.close_reason)
        # the client closes: the app hears its code and reason, the server
        # echoes the code
        ws = await connect(srv, "/echo")
        await ws.send("x")
        assert await ws.recv() == "x"
        await ws.close(4002, "ciao")
        client_close = ws.close_code
        async with connect(srv, "/echo") as ws:
            pass  # 1000
        return app_close, client_close
    before = len(srv.log())
    app_close, client_close = run(go())
    assert app_close == (4001, "bye now")
    assert client_close == 4002
    srv.wait_log(r"^disconnect 4002 ciao$", source=lambda: srv.log()[before:])
    srv.wait_log(r"^disconnect 1000 $", source=lambda: srv.log()[before:])
    srv.wait_log(r"^disconnect 4001 bye now$", source=lambda: srv.log()[before:])


def test_denial_response_and_refusals(srv, ws_site):
    from websockets.exceptions import InvalidStatus

    async def refused(path):
        with pytest.raises(InvalidStatus) as e:
            async with connect(srv, path):
                pass
        return e.value.response

    r = run(refused("/deny"))
    assert r.status_code == 401 and r.body == b"go away"
    assert r.headers["x-denied"] == "1"
    assert run(refused("/reject")).status_code == 403
    before = len(srv.log())
    assert run(refused("/raise")).status_code == 500
    srv.wait_log(r"Error in ASGI application\n[\s\S]*ValueError: boom before accept",
                 source=lambda: srv.log()[before:])
    srv.wait_log(r'"GET /deny HTTP/1\.1" 401 ', source=srv.stdout)
    srv.wait_log(r'"GET /reject HTTP/1\.1" 403 ', source=srv.stdout)
    # handshakes the codec refuses, before the app sees them
    base = (b"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
    data = srv.raw(base + b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 8\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"Sec-WebSocket-Version: 13\r\n" in data
    data = srv.raw(base + b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    data = srv.raw(base + b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n"
                   b"Sec-WebSocket-Extensions: permessage-deflate; x=\"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert http_ok(srv)


def test_app_end_after_accept(srv, ws_site):
    from websockets.exceptions import ConnectionClosed

    async def end(path):
        async with connect(srv, path) as ws:
            await ws.send("go")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code
    before = len(srv.log())
    assert run(end("/raise-after")) == 1011
    srv.wait_log(r"Error in ASGI application\n[\s\S]*ValueError: boom after accept",
                 source=lambda: srv.log()[before:])
    assert run(end("/return")) == 1000


@pytest.mark.parametrize("compression", ["deflate", None])
def test_large_and_fragmented_messages(srv, ws_site, compression):
    async def go():
        async with connect(srv, "/echo", compression=compression, max_size=None) as ws:
            ext = ws.response.headers.get("Sec-WebSocket-Extensions")
            assert (ext is not None) == (compression is not None), ext
            big = os.urandom(1 << 20)
            await ws.send(big)
            assert await ws.recv() == big
            text = "\u00e9t\u00e9 " * 200000  # 1.2 MB of UTF-8
            await ws.send(text)
            assert await ws.recv() == text
            # fragmented: one message in several frames, pings between
            await ws.send(["frag", "men", "ted \u20ac"])
            assert await ws.recv() == "fragmented \u20ac"
            await ws.send([b"a" * 70000, b"b" * 70000])
            assert await ws.recv() == b"a" * 70000 + b"b" * 70000
            await ws.send("size")
            await ws.send(b"z" * (15 << 20))
            assert await ws.recv() == "size %d" % (15 << 20)
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 20)
    run(go())


def test_pings_answered_in_c(srv, ws_site):
    r = Raw(srv)
    try:
        assert r.head.startswith("HTTP/1.1 101 Switching Protocols\r\n")
        r.send(frame(0x9, b"ping-payload") + frame(0x9, b"") + frame(0x1, "hi".encode()))
        assert r.read_frame() == (True, False, 0xA, b"ping-payload")
        assert r.read_frame() == (True, False, 0xA, b"")
        assert r.read_frame() == (True, False, 0x1, b"hi")
        # a ping between the fragments of a message
        r.send(frame(0x1, b"a", fin=False) + frame(0x9, b"p") + frame(0x0, b"b"))
        assert r.read_frame() == (True, False, 0xA, b"p")
        assert r.read_frame() == (True, False, 0x1, b"ab")
        r.send(frame(0x8, struct.pack("!H", 1000)))
        assert r.read_close() == (1000, "")
    finally:
        r.close()


def test_permessage_deflate_frames(srv, ws_site):
    """Offered: answered with websockets' parameters, and the server's
    frames come compressed (RSV1) and inflate to the message."""
    r = Raw(srv, extra=b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")
    try:
        assert ("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12; "
                "client_max_window_bits=12") in r.head
        msg = b"compress me " * 100
        c = zlib.compressobj(wbits=-12)
        payload = c.compress(msg) + c.flush(zlib.Z_SYNC_FLUSH)
        assert payload.endswith(b"\x00\x00\xff\xff")
        r.send(frame(0x2, payload[:-4], rsv1=True))
        fin, rsv1, op, data = r.read_frame()
        assert fin and rsv1 and op == 0x2 and len(data) < len(msg)
        d = zlib.decompressobj(wbits=-15)
        assert d.decompress(data + b"\x00\x00\xff\xff") == msg
        r.send(frame(0x8, struct.pack("!H", 1000)))
        assert r.read_close() == (1000, "")
    finally:
        r.close()
    # not offered: not answered, and RSV1 is a protocol error
    r = Raw(srv)
    try:
        assert "Sec-WebSocket-Extensions" not in r.head
        r.send(frame(0x1, b"x", rsv1=True))
        assert r.read_close()[0] == 1002
    finally:
        r.close()


# ---- hostile clients ----

HOSTILE = [
    ("unmasked", frame(0x1, b"hello", masked=False), 1002),
    ("bad utf-8", frame(0x1, b"ok \xc3\x28"), 1007),
    ("bad utf-8 across fragments", frame(0x1, b"\xe2\x82", fin=False) + frame(0x0, b"\x28"), 1007),
    ("oversized", frame(0x2, b"x" * 16, length=(16 << 20) + 1), 1009),
    ("oversized in fragments", None, 1009),
    ("unknown opcode", frame(0x3, b"x"), 1002),
    ("continuation first", frame(0x0, b"x"), 1002),
    ("fragmented control", frame(0x9, b"x", fin=False), 1002),
    ("long control", frame(0x9, b"x" * 126), 1002),
    ("bad close code", frame(0x8, struct.pack("!H", 999)), 1002),
    ("garbage", b"\xff" * 64 + b"GET / HTTP/1.1\r\n\r\n", 1002),
]


@pytest.mark.parametrize("data,code", [pytest.param(d, c, id=w) for w, d, c in HOSTILE])
def test_hostile_frames(srv, ws_site, data, code):
    pid = worker_pid(srv)
    if data is None:
        # 10 MiB, then 10 MiB more announced: 1009 at the second header,
        # before its payload
        data = frame(0x2, b"y" * (10 << 20), fin=False) + frame(0x0, b"", length=10 << 20)
    r = Raw(srv)
    try:
        r.send(data)
        assert r.read_close()[0] == code
    finally:
        r.close()
    assert http_ok(srv) and worker_pid(srv) == pid


# ---- websocket_max_message_size (Gunicorn 27) ----

@pytest.fixture(scope="module")
def small_srv(cg_module):
    return cg_module("asgi_ws:app", args=ASGI + ["--websocket-max-message-size", "1000"])


def test_max_message_size_setting(small_srv, ws_site):
    srv = small_srv
    pid = worker_pid(srv)
    # up to the limit, whole or in fragments: echoed
    r = Raw(srv)
    try:
        r.send(frame(0x2, b"a" * 1000))
        assert r.read_frame() == (True, False, 0x2, b"a" * 1000)
        r.send(frame(0x2, b"b" * 600, fin=False) + frame(0x0, b"c" * 400))
        assert r.read_frame() == (True, False, 0x2, b"b" * 600 + b"c" * 400)
        # one byte more: 1009, judged on the frame header
        r.send(frame(0x2, b"", length=1001))
        assert r.read_close()[0] == 1009
    finally:
        r.close()
    # over it across fragments
    r = Raw(srv)
    try:
        r.send(frame(0x1, b"d" * 600, fin=False) + frame(0x0, b"e" * 401))
        assert r.read_close()[0] == 1009
    finally:
        r.close()
    # after decompression: 2000 bytes that deflate to a few
    r = Raw(srv, extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
    try:
        assert "permessage-deflate" in r.head
        c = zlib.compressobj(wbits=-15)
        data = c.compress(b"f" * 2000) + c.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff") and len(data) < 100
        r.send(frame(0x2, data[:-4], rsv1=True))
        assert r.read_close()[0] == 1009
    finally:
        r.close()
    assert http_ok(srv) and worker_pid(srv) == pid


def test_max_message_size_zero_is_no_limit(cg, ws_site):
    srv = cg("asgi_ws:app", args=ASGI + ["--websocket-max-message-size", "0"])
    big = os.urandom((16 << 20) + 1)  # one byte past the default
    async def go():
        async with connect(srv, "/echo", max_size=None) as ws:
            await ws.send(big)
            assert await ws.recv() == big
    run(go(), timeout=120)


def test_half_open_and_truncated(srv, ws_site):
    pid = worker_pid(srv)
    before = len(srv.log())
    # the client ends its side after the handshake: the app hears 1006
    r = Raw(srv)
    r.s.shutdown(socket.SHUT_WR)
    with pytest.raises(EOFError):
        r.read_frame()
    r.close()
    srv.wait_log(r"^disconnect 1006 $", source=lambda: srv.log()[before:])
    # half a frame, then gone
    r = Raw(srv)
    r.send(frame(0x2, b"x" * 1000)[:500])
    r.close()
    srv.wait_log(r"^disconnect 1006 $", count=2, source=lambda: srv.log()[before:])
    # a handshake cut short, then gone
    s = srv.connect()
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n")
    s.close()
    assert http_ok(srv) and worker_pid(srv) == pid


def test_slow_app_pauses_reading(srv, ws_site):
    """An app that does not receive: the server stops reading (its queue and
    buffer are bounded), the client's writes block; once the app reads,
    everything arrives."""
    r = Raw(srv, "/gated")
    try:
        assert r.head.startswith("HTTP/1.1 101 ")
        msg = frame(0x2, b"m" * 65536)
        started, limit = 0, 1024  # 64 MiB at most
        pending = b""
        r.s.setblocking(False)
        while started < limit or pending:
            if not pending:
                pending = msg
                started += 1
            try:
                pending = pending[r.s.send(pending):]
            except BlockingIOError:
                # no room: none for a while means the server stopped reading
                _, w, _ = select.select([], [r.s], [], 2.0)
                if not w:
                    break
        assert started < limit, "the server never stopped reading"
        r.s.setblocking(True)
        assert http_ok_path(srv, "/release")
        r.send(pending)
        rest = max(0, 300 - started)
        for _ in range(rest):
            r.send(msg)
        r.send(frame(0x1, b"end"))
        fin, rsv1, op, data = r.read_frame()
        n = started + rest
        assert data.decode() == "count %d bytes %d" % (n, n * 65536)
        assert r.read_close() == (1000, "")
    finally:
        r.close()


def http_ok_path(srv, path):
    status, _, body = parse_response(srv.raw(b"GET " + path.encode() +
                                             b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    return status == "HTTP/1.1 200 OK"


# ---- graceful stop ----

def test_term_closes_with_1001(cg, ws_site):
    srv = cg("asgi_ws:app", args=ASGI + ["--graceful-timeout", "20"])
    from websockets.exceptions import ConnectionClosed

    async def go():
        async with connect(srv, "/echo") as ws:
            await ws.send("before")
            assert await ws.recv() == "before"
            srv.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code
    assert run(go()) == 1001
    srv.wait_log(r"^disconnect 1001 $")
    assert srv.wait_exit(20) == 0


# ---- frameworks ----

FASTAPI = ("fastapi", "starlette", "anyio", "idna", "pydantic", "pydantic-core",
           "annotated-types", "typing-inspection", "typing-extensions", "python-multipart",
           "websockets")


def test_fastapi_and_starlette_websockets(cg, tmp_path_factory, ws_site):
    site = str(cgtest.pinned_site(tmp_path_factory.mktemp("fa-site"), *FASTAPI))
    srv = cg("asgi_fastapi:app", args=ASGI, env={"PYTHONPATH": site})
    from websockets.exceptions import ConnectionClosed

    async def go():
        async with connect(srv, "/ws/lobby", subprotocols=["chat"],
                           additional_headers={"X-Token": "abc"}) as ws:
            assert ws.subprotocol == "chat"
            await ws.send(json.dumps({"n": 1}))
            got = json.loads(await ws.recv())
        async with connect(srv, "/starlette-ws") as ws:
            await ws.send("shout")
            upper = await ws.recv()
            await ws.send("bye")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            code = ws.close_code
        return got, upper, code
    got, upper, code = run(go())
    assert got == {"room": "lobby", "who": "ABC", "got": {"n": 1}, "db": "connected"}
    assert upper == "SHOUT" and code == 4000
    srv.wait_log(r"fastapi ws disconnect 1000")


# ---- the check ----

@pytest.mark.timeout(300)
def test_echo_10000_messages_100_clients(srv, ws_site):
    """100 clients at once, 100 messages each, permessage-deflate on."""
    async def client(i):
        async with connect(srv, "/echo") as ws:
            assert ws.response.headers.get("Sec-WebSocket-Extensions", "").startswith(
                "permessage-deflate")
            for k in range(100):
                msg = "client %d message %d " % (i, k) + "x" * (k % 50)
                await ws.send(msg)
                assert await ws.recv() == msg
        return 100

    async def go():
        t0 = time.monotonic()
        n = sum(await asyncio.gather(*(client(i) for i in range(100))))
        return n, time.monotonic() - t0
    n, secs = run(go(), timeout=240)
    assert n == 10000
    print("\n10,000 echoes from 100 clients in %.2f s (%.0f messages/s)" % (secs, n / secs))
    assert worker_pid(srv)
