"""HTTP/2 on the asgi worker (src/asgi/h2.c over src/h2/): over TLS (ALPN
h2, asyncio's SSL transport) and over h2c (prior knowledge, Upgrade), with
the `h2` library as a frame-level client and curl: the scope of an HTTP/2
stream, bodies both ways under flow control, concurrent streams on one
connection with a slow one not holding the others, GOAWAY on TERM with a
stream in flight, and the attack bounds (rapid reset, CONTINUATION flood,
HPACK bomb, SETTINGS flood, a shut window) leaving the worker alive.

The client (H2Client), its fixtures and helpers are test_http2.py's."""

import hashlib
import json
import signal
import socket
import ssl
import time

import pytest

import cgtest
from test_http2 import (SETTINGS_ARGS, H2Client, check_large_response_slow_reader,  # noqa: F401
                        check_many_short_connections, check_max_requests_goaway,
                        check_oversized_headers, check_rapid_reset,
                        check_settings_from_config, curl, curl_has_http2, h2lib,
                        http11_on_tls, pattern, pki, raw_frames, ENHANCE_YOUR_CALM)

MODES = ["tls", "h2c"]


def asgi_args(mode, pki, *more):
    args = ["-k", "asgi", "--log-level", "debug"]
    if mode == "tls":
        args += ["--certfile", pki["cert"], "--keyfile", pki["key"], "--http-protocols", "h2,h1"]
    elif mode == "h2c":
        args += ["--http2-cleartext", "prior-knowledge"]
    else:
        args += ["--http2-cleartext", mode]
    return args + list(more)


def start(cg, mode, pki, *more):
    return cg("h2_asgi_app:app", asgi_args(mode, pki, *more))


def client(h2lib, srv, mode, pki, **kw):
    return H2Client(h2lib, srv.port, pki if mode == "tls" else None, **kw)


def scope_of(st):
    assert st["headers"] is not None and st["headers"][":status"] == "200", st
    return json.loads(bytes(st["data"]))


@pytest.mark.parametrize("mode", MODES)
def test_scope_and_access_log(cg, h2lib, pki, mode):
    srv = start(cg, mode, pki, "--access-logfile", "-")
    c = client(h2lib, srv, mode, pki)
    st = c.get("/some/p%20th?x=1&y=2",
               headers=[("x-test", "yes"), ("cookie", "a=1"), ("cookie", "b=2")])
    c.close()
    assert st["headers"]["x-served"] == "Yes"
    assert "connection" not in st["headers"] and "transfer-encoding" not in st["headers"]
    sc = scope_of(st)
    assert sc["type"] == "http" and sc["http_version"] == "2"
    assert sc["scheme"] == ("https" if mode == "tls" else "http")
    assert sc["method"] == "GET"
    assert sc["path"] == "/some/p th" and sc["raw_path"] == "/some/p%20th"
    assert sc["query"] == "x=1&y=2"
    assert sc["headers"]["host"] == ["localhost"]  # from :authority
    assert sc["headers"]["x-test"] == ["yes"]
    assert sc["headers"]["cookie"] == ["a=1; b=2"]  # RFC 9113 section 8.2.3
    assert sc["client"][0] == "127.0.0.1"
    assert sc["extensions"] == ["http.response.trailers"]
    srv.wait_log(r'"GET /some/p%20th\?x=1&y=2 HTTP/2.0" 200', source=srv.stdout)


@pytest.mark.parametrize("mode", MODES)
def test_post_body(cg, h2lib, pki, mode):
    srv = start(cg, mode, pki)
    c = client(h2lib, srv, mode, pki)
    body = pattern(5000)
    sid = c.request("POST", "/form", headers=[("content-length", str(len(body)))], body=body)
    c.wait(lambda: c.done(sid))
    sc = scope_of(c.streams[sid])
    assert sc["method"] == "POST" and sc["headers"]["content-length"] == ["5000"]
    assert sc["body_sha"] == hashlib.sha256(body).hexdigest()
    # no Content-Length: the body ends with the stream
    sid = c.request("PUT", "/nolen", body=b"abc")
    c.wait(lambda: c.done(sid))
    sc = scope_of(c.streams[sid])
    assert sc["body_len"] == 3 and "content-length" not in sc["headers"]
    # Expect: 100-continue: a 100 (informational HEADERS) at the app's
    # first receive(), before the client sends its body
    sid = c.request("POST", "/cont", headers=[("expect", "100-continue")], end=False)
    c.wait(lambda: c.streams[sid]["info"], "the 100")
    assert c.streams[sid]["info"][0][":status"] == "100"
    c.send_body(sid, b"after")
    c.wait(lambda: c.done(sid))
    assert scope_of(c.streams[sid])["body_len"] == 5
    c.close()


@pytest.mark.parametrize("mode", MODES)
def test_concurrent_streams_slow_one_does_not_block(cg, h2lib, pki, mode):
    """Streams of one connection are request cycles on the loop at once: a
    stream whose app sleeps does not hold the others, and big responses
    interleave."""
    srv = start(cg, mode, pki)
    c = client(h2lib, srv, mode, pki)
    slow = c.request("GET", "/slow?30")
    sizes = {}
    for i in range(30):
        size = 70000 + i * 1111
        sizes[c.request("GET", "/big?%d" % size)] = size
    c.wait(lambda: all(c.done(s) for s in sizes), "every fast stream")
    assert not c.done(slow)  # still sleeping: it held nobody
    for sid, size in sizes.items():
        st = c.streams[sid]
        assert st["reset"] is None and st["headers"][":status"] == "200"
        assert bytes(st["data"]) == pattern(size), sid
    first, last = {}, {}
    for i, sid in enumerate(c.order):
        first.setdefault(sid, i)
        last[sid] = i
    assert any(first[a] < first[b] < last[a] for a in sizes for b in sizes if a != b)
    # the slow one's client leaves: the stream is reset, the worker goes on
    c.conn.reset_stream(slow, error_code=8)
    c.flush()
    assert c.get("/after")["headers"][":status"] == "200"
    c.close()


@pytest.mark.parametrize("mode", MODES)
def test_large_upload_streamed(cg, h2lib, pki, mode):
    """An 8 MiB upload against a 64 KiB window, echoed back as it comes:
    the client can only send as the app reads."""
    srv = start(cg, mode, pki, "--http2-initial-window-size", "65535")
    c = client(h2lib, srv, mode, pki)
    body = pattern(8 << 20)
    sid = c.request("POST", "/echo", body=body)
    c.wait(lambda: c.done(sid), "the echo")
    st = c.streams[sid]
    assert st["reset"] is None and len(st["data"]) == len(body)
    assert hashlib.sha256(bytes(st["data"])).hexdigest() == hashlib.sha256(body).hexdigest()
    c.close()


def test_slow_app_stops_window_updates(cg, h2lib, pki):
    """An app that does not call receive() gives no window back: the
    client, its window spent, cannot send more until the app reads."""
    srv = start(cg, "h2c", pki, "--http2-initial-window-size", "65535")
    c = client(h2lib, srv, "h2c", pki)
    c.wait(lambda: c.remote_settings, "SETTINGS")
    sid = c.request("POST", "/lazy?5", end=False)
    c.send_body(sid, pattern(65535), end=False)
    assert c.conn.local_flow_control_window(sid) == 0
    # while the app sleeps, no WINDOW_UPDATE for the stream comes
    c.sock.settimeout(1.0)
    deadline = time.monotonic() + 1.5
    try:
        while time.monotonic() < deadline:
            c.pump()
    except socket.timeout:
        pass
    assert sid not in c.window_updated
    c.sock.settimeout(30.0)
    # once it reads, the window comes back and the rest goes
    c.send_body(sid, pattern(100000), end=True)
    c.wait(lambda: c.done(sid), "the answer")
    assert scope_of(c.streams[sid])["body_len"] == 65535 + 100000
    c.close()


def test_large_response_slow_reader(cg, h2lib, pki):
    """The server never sends beyond the client's window, and the waiting
    stream holds nothing else: another connection is served meanwhile."""
    srv = start(cg, "tls", pki)
    check_large_response_slow_reader(h2lib, lambda **kw: client(h2lib, srv, "tls", pki, **kw))


@pytest.mark.parametrize("mode", MODES)
def test_goaway_on_term_finishes_stream(cg, h2lib, pki, mode):
    frame_mod = __import__("hyperframe.frame").frame
    srv = start(cg, mode, pki, "--graceful-timeout", "30")
    c = client(h2lib, srv, mode, pki)
    first = pattern(30000)
    sid = c.request("POST", "/echo", body=first, end=False)
    c.wait(lambda: len(c.streams[sid]["data"]) == len(first), "the first part's echo")
    srv.send_signal(signal.SIGTERM)
    c.wait(lambda: c.goaway is not None, "GOAWAY")
    assert c.goaway.error_code == 0 and c.goaway.last_stream_id == sid
    rest = pattern(20000)[::-1]
    out = b"".join(f.serialize() for f in (
        frame_mod.WindowUpdateFrame(0, window_increment=1 << 20),
        frame_mod.WindowUpdateFrame(sid, window_increment=1 << 20),
        frame_mod.DataFrame(sid, rest[:10000]),
        frame_mod.DataFrame(sid, rest[10000:], flags=["END_STREAM"])))
    c.sock.sendall(out)
    data, ended, _ = raw_frames(c, sid)
    assert ended and bytes(c.streams[sid]["data"]) + bytes(data) == first + rest
    _, _, eof = raw_frames(c, 0)
    assert eof
    # (over TLS, asyncio's transport waits for the client's close_notify)
    c.close()
    assert srv.wait_exit(30) == 0


def test_rapid_reset_goaway_and_worker_survives(cg, h2lib, pki):
    srv = start(cg, "tls", pki)
    # streams whose app would sleep: the reset ones must not pile up
    check_rapid_reset(srv, lambda: client(h2lib, srv, "tls", pki), "/slow?5")


@pytest.mark.parametrize("mode", MODES)
def test_oversized_headers_and_hpack_bomb(cg, h2lib, pki, mode):
    srv = start(cg, mode, pki, "--http2-max-header-list-size", "4096")
    check_oversized_headers(srv, lambda: client(h2lib, srv, mode, pki))


def flood(cg, h2lib, pki, frames):
    """Send `frames` after the preface on a plain h2c connection; returns
    the error code of the GOAWAY that ends it (None: none came), once a new
    connection was served by the same worker."""
    srv = start(cg, "h2c", pki)
    pids = srv.worker_pids()
    frame_mod = __import__("hyperframe.frame").frame
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
    code = None
    try:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame_mod.SettingsFrame(0).serialize() +
                  frames)
        buf = bytearray()
        while code is None:
            while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
                more = s.recv(65536)
                if not more:
                    raise ConnectionResetError
                buf += more
            frame, length = frame_mod.Frame.parse_frame_header(memoryview(buf[:9]))
            frame.parse_body(memoryview(buf[9:9 + length]))
            del buf[:9 + length]
            if isinstance(frame, frame_mod.GoAwayFrame):
                code = frame.error_code
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.close()
    c = client(h2lib, srv, "h2c", pki)
    assert c.get("/after")["headers"][":status"] == "200"
    c.close()
    assert srv.worker_pids() == pids
    return code


def test_continuation_flood(cg, h2lib, pki):
    """CVE-2024-28182: a header block sent as endless CONTINUATION frames
    ends the connection after a few, and the worker serves on."""
    frame_mod = __import__("hyperframe.frame").frame
    import hpack
    enc = hpack.Encoder()
    block = enc.encode([(":method", "GET"), (":path", "/"), (":scheme", "http"),
                        (":authority", "x")])
    out = frame_mod.HeadersFrame(1, data=block).serialize()  # no END_HEADERS
    for i in range(200):
        out += frame_mod.ContinuationFrame(1, data=enc.encode([("x-%d" % i, "v")])).serialize()
    code = flood(cg, h2lib, pki, out)
    assert code is not None and code != 0


def test_settings_flood(cg, h2lib, pki):
    """A SETTINGS frame with more entries than any client needs is a flood
    (nghttp2's max_settings): GOAWAY ENHANCE_YOUR_CALM."""
    payload = b"".join((4).to_bytes(2, "big") + (65535 + i).to_bytes(4, "big") for i in range(40))
    raw = len(payload).to_bytes(3, "big") + b"\x04\x00" + (0).to_bytes(4, "big") + payload
    assert flood(cg, h2lib, pki, raw) == ENHANCE_YOUR_CALM


def test_zero_window_bounded(cg, h2lib, pki):
    """A client that never opens its window: its stream's app waits in
    send() without holding anything else, and after --timeout of silence
    the connection is closed (the app hears http.disconnect)."""
    srv = start(cg, "h2c", pki, "--timeout", "3")
    pids = srv.worker_pids()
    c = client(h2lib, srv, "h2c", pki, auto_ack=False,
               settings={h2lib.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    sid = c.request("GET", "/big?%d" % (4 << 20))
    other = client(h2lib, srv, "h2c", pki)
    assert other.get("/meanwhile")["headers"][":status"] == "200"
    other.close()
    start_t = time.monotonic()
    c.sock.settimeout(30.0)
    while not c.closed:
        c.pump()
    assert time.monotonic() - start_t < 25
    assert not c.streams[sid]["ended"]
    c.close()
    assert srv.worker_pids() == pids


@pytest.mark.parametrize("mode", MODES)
def test_early_hints_trailers_and_errors(cg, h2lib, pki, mode):
    srv = start(cg, mode, pki)
    c = client(h2lib, srv, mode, pki)
    st = c.get("/hints")
    assert st["info"] and st["info"][0][":status"] == "103"
    assert st["info"][0]["link"] == "</style.css>; rel=preload"
    assert st["headers"][":status"] == "200" and bytes(st["data"]) == b"ok"
    st = c.get("/trailers")
    assert st["headers"][":status"] == "200" and st["reset"] is None
    assert bytes(st["data"]) == b"part1part2"
    assert st["trailers"] == {"x-checksum": "abc123", "grpc-status": "0"}
    st = c.get("/fail")
    assert st["headers"][":status"] == "500"
    assert c.get("/after")["headers"][":status"] == "200"  # the connection goes on
    c.close()
    srv.wait_log(r"RuntimeError: boom")


def test_request_timeout_per_stream(cg, h2lib, pki):
    """request_timeout watches each stream: the one past it is answered
    504, the others on the connection are not touched."""
    srv = start(cg, "h2c", pki, "--request-timeout", "1")
    c = client(h2lib, srv, "h2c", pki)
    slow = c.request("GET", "/slow?10")
    assert c.get("/quick")["headers"][":status"] == "200"
    c.wait(lambda: c.done(slow), "the 504")
    assert c.streams[slow]["headers"][":status"] == "504"
    assert c.get("/after")["headers"][":status"] == "200"
    c.close()
    srv.wait_log(r"Request timeout \(request_timeout 1 s\): GET /slow")


def test_settings_from_config(cg, h2lib, pki):
    srv = start(cg, "tls", pki, *SETTINGS_ARGS)
    check_settings_from_config(h2lib, client(h2lib, srv, "tls", pki))


def test_http11_on_the_same_tls_port(cg, pki):
    """A client that offers only http/1.1 (or no ALPN) gets HTTP/1.1."""
    srv = start(cg, "tls", pki)
    for version, sc in http11_on_tls(srv, pki):
        assert version == 11 and sc["http_version"] == "1.1" and sc["extensions"] == []


def _selected_alpn(srv, pki, offer):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ctx.set_alpn_protocols(offer)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
            return tls.selected_alpn_protocol()


def test_alpn_is_the_default_factorys(cg, pki, tmp_path):
    """As Gunicorn 27, the default factory sets the ALPN list: a hook that
    calls it and then sets its own list keeps its own; without a hook the
    list is http_protocols'."""
    conf = tmp_path / "c.py"
    conf.write_text("def ssl_context(conf, factory):\n"
                    "    ctx = factory()\n"
                    "    ctx.set_alpn_protocols(['http/1.1'])\n"
                    "    return ctx\n")
    srv = start(cg, "tls", pki, "-c", str(conf))
    assert _selected_alpn(srv, pki, ["h2", "http/1.1"]) == "http/1.1"
    for version, sc in http11_on_tls(srv, pki):
        assert version == 11 and sc["http_version"] == "1.1"
    srv.stop()
    srv = start(cg, "tls", pki)
    assert _selected_alpn(srv, pki, ["h2", "http/1.1"]) == "h2"


def test_h2c_upgrade_and_plain_http11(cg, h2lib):
    """http2_cleartext both: Upgrade: h2c makes the request stream 1 after a
    101, prior knowledge works on the same port, and plain HTTP/1.1 (with a
    body, the upgrade ignored) is served as before."""
    srv = cg("h2_asgi_app:app", asgi_args("both", None, "--access-logfile", "-"))
    c = H2Client(h2lib, srv.port, upgrade="/upg?x=1")
    c.wait(lambda: c.done(1), "stream 1")
    sc = scope_of(c.streams[1])
    assert sc["http_version"] == "2" and sc["path"] == "/upg" and sc["query"] == "x=1"
    assert c.get("/next")["headers"][":status"] == "200"  # stream 3, same connection
    c.close()
    srv.wait_log(r'"GET /upg\?x=1 HTTP/2.0" 200', source=srv.stdout)
    status, headers, body = cgtest.parse_response(srv.raw(
        b"POST /p HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, close\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\nContent-Length: 3\r\n\r\nabc"))
    assert status.split()[1] == "200" and json.loads(body)["http_version"] == "1.1"
    c = H2Client(h2lib, srv.port)
    assert c.get("/pk")["headers"][":status"] == "200"
    c.close()


def test_http2_off_by_default_on_cleartext(cg):
    """Without http2_cleartext the preface is no request: HTTP/1.1's 400."""
    srv = cg("h2_asgi_app:app", ["-k", "asgi"])
    out = srv.raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400"), out[:80]


@pytest.mark.skipif(not curl_has_http2(), reason="curl without HTTP/2")
@pytest.mark.parametrize("mode", ["tls", "h2c", "upgrade"])
def test_curl(cg, pki, mode):
    srv = start(cg, mode, pki)
    version, sc = curl(srv, pki, mode, "-d", "x=1")
    if mode == "upgrade":
        # a request with a body is not upgraded (it would have to come
        # whole before the switch): HTTP/1.1; one without is
        assert version == b"1.1" and sc["http_version"] == "1.1"
        version, sc = curl(srv, pki, mode)
        assert version == b"2" and sc["http_version"] == "2" and sc["body_len"] == 0
    else:
        assert version == b"2" and sc["http_version"] == "2" and sc["body_len"] == 3


@pytest.mark.parametrize("mode", MODES)
def test_connection_lost_with_streams_in_the_app(cg, h2lib, pki, mode):
    """The client goes with streams in the app (sleeping, reading a body):
    their apps hear http.disconnect, their tasks are cancelled after the
    grace period, and the worker serves on."""
    srv = start(cg, mode, pki, "--asgi-disconnect-grace-period", "1")
    pids = srv.worker_pids()
    c = client(h2lib, srv, mode, pki)
    for _ in range(5):
        c.request("GET", "/slow?30")
    sid = c.request("POST", "/echo", body=pattern(20000), end=False)
    c.wait(lambda: len(c.streams[sid]["data"]) == 20000, "the echo")
    c.sock.close()
    srv.wait_log(r"Request cancelled \(client disconnected\)")
    other = client(h2lib, srv, mode, pki)
    assert other.get("/after")["headers"][":status"] == "200"
    other.close()
    assert srv.worker_pids() == pids


def test_many_short_connections(cg, h2lib, pki):
    """Connections that close as soon as their response is in, from several
    threads at once: sessions torn down while their streams' cycles are
    still handed back (early hints make that two writes each)."""
    srv = start(cg, "tls", pki)
    check_many_short_connections(srv, lambda: client(h2lib, srv, "tls", pki))


def test_max_requests_goaway(cg, h2lib, pki):
    """The stream that reaches max_requests is answered, after a GOAWAY
    that sends the next ones elsewhere."""
    srv = start(cg, "h2c", pki, "--max-requests", "3")
    check_max_requests_goaway(srv, client(h2lib, srv, "h2c", pki))
