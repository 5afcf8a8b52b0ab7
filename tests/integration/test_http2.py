"""HTTP/2 on the gthread worker (src/h2/): over TLS (ALPN h2) and over h2c
with prior knowledge, with the `h2` library as a frame-level client and
curl: the environ an HTTP/2 request gets, bodies both ways under flow
control, many streams on one connection, GOAWAY on TERM with a stream in
flight, the rapid-reset and header-size limits, and HTTP/1.1 still served
on the same TLS port.

Certificates come from trustme, made per test module."""

import hashlib
import json
import signal
import socket
import ssl
import subprocess

import pytest
import trustme

import cgtest

ENHANCE_YOUR_CALM = 0xB


@pytest.fixture(scope="module")
def h2lib(tmp_path_factory):
    """The h2 package (pinned in tests/requirements.txt's test site)."""
    site = cgtest.pinned_site(tmp_path_factory.mktemp("h2lib"), "h2", "hpack", "hyperframe")
    import sys
    sys.path.insert(0, str(site))
    try:
        import h2.config
        import h2.connection
        import h2.events
        import h2.settings
        import hyperframe.frame  # noqa: F401 (raw frames after GOAWAY)
    finally:
        sys.path.remove(str(site))
    return h2


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    srv = ca.issue_cert("localhost", "127.0.0.1")
    files = {"ca": str(d / "ca.pem"), "cert": str(d / "cert.pem"), "key": str(d / "key.pem")}
    ca.cert_pem.write_to_path(files["ca"])
    srv.cert_chain_pems[0].write_to_path(files["cert"])
    srv.private_key_pem.write_to_path(files["key"])
    return files


def pattern(size):
    block = bytes(range(256)) * 64
    return (block * (size // len(block) + 1))[:size]


class H2Client:
    """One HTTP/2 connection driven by the h2 library. Every wait reads
    frames until a condition holds (events, never sleeps), bounded by the
    socket timeout."""

    def __init__(self, h2, port, pki=None, settings=None, auto_ack=True, timeout=20.0,
                 upgrade=None):
        """upgrade: a path to GET over HTTP/1.1 with Upgrade: h2c (RFC 7540
        section 3.2); its response comes on stream 1, and self.switched
        says whether the server answered 101."""
        self.h2 = h2
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if pki is not None:
            ctx = ssl.create_default_context(cafile=pki["ca"])
            ctx.set_alpn_protocols(["h2", "http/1.1"])
            self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
            assert self.sock.selected_alpn_protocol() == "h2"
            self.scheme = "https"
        else:
            self.sock = raw
            self.scheme = "http"
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.auto_ack = auto_ack
        self.streams = {}
        self.goaway = None
        self.closed = False
        self.remote_settings = {}
        self.window_updated = set()
        self.order = []  # stream ids of DATA frames, in arrival order
        rest = b""
        if upgrade is not None:
            b64 = self.conn.initiate_upgrade_connection()
            self.sock.sendall(b"GET " + upgrade.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
                              b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                              b"HTTP2-Settings: " + b64 + b"\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                more = self.sock.recv(65536)
                assert more, "closed before the 101"
                head += more
            head, rest = head.split(b"\r\n\r\n", 1)
            self.switched = head.startswith(b"HTTP/1.1 101 ")
            assert self.switched, head
            self.streams[1] = {"headers": None, "info": [], "data": bytearray(), "ended": False,
                               "reset": None, "unacked": 0, "trailers": None}
        else:
            self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        if rest:
            self.feed(rest)

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def close(self):
        self.sock.close()

    def request(self, method, path, headers=(), body=None, end=True, authority="localhost"):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":path", path), (":scheme", self.scheme),
                (":authority", authority)] + list(headers)
        self.streams[sid] = {"headers": None, "info": [], "data": bytearray(), "ended": False,
                             "reset": None, "unacked": 0, "trailers": None}
        self.conn.send_headers(sid, hdrs, end_stream=end and body is None)
        self.flush()
        if body is not None:
            self.send_body(sid, body, end)
        return sid

    def send_body(self, sid, body, end=True):
        """Send as the server's windows allow, reading its WINDOW_UPDATEs."""
        view = memoryview(body)
        while len(view) > 0:
            n = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size,
                    len(view))
            if n <= 0:
                self.pump()
                continue
            self.conn.send_data(sid, bytes(view[:n]))
            view = view[n:]
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    def pump(self):
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
            return
        self.feed(data)

    def feed(self, data):
        ev_mod = self.h2.events
        for ev in self.conn.receive_data(data):
            st = self.streams.get(getattr(ev, "stream_id", None))
            if isinstance(ev, ev_mod.ResponseReceived):
                st["headers"] = dict(ev.headers)
            elif isinstance(ev, ev_mod.InformationalResponseReceived):
                st["info"].append(dict(ev.headers))
            elif isinstance(ev, ev_mod.DataReceived):
                st["data"] += ev.data
                self.order.append(ev.stream_id)
                if self.auto_ack:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                else:
                    st["unacked"] += ev.flow_controlled_length
            elif isinstance(ev, ev_mod.TrailersReceived):
                st["trailers"] = dict(ev.headers)
            elif isinstance(ev, ev_mod.StreamEnded):
                st["ended"] = True
            elif isinstance(ev, ev_mod.StreamReset):
                if st is not None:
                    st["reset"] = ev.error_code
            elif isinstance(ev, ev_mod.ConnectionTerminated):
                self.goaway = ev
            elif isinstance(ev, ev_mod.RemoteSettingsChanged):
                for k, v in ev.changed_settings.items():
                    self.remote_settings[int(k)] = v.new_value
            elif isinstance(ev, ev_mod.WindowUpdated):
                self.window_updated.add(ev.stream_id)
        self.flush()

    def wait(self, pred, what="condition"):
        while not pred():
            if self.closed:
                raise AssertionError("connection closed while waiting for %s" % what)
            self.pump()

    def done(self, sid):
        st = self.streams[sid]
        return st["ended"] or st["reset"] is not None

    def get(self, path, **kw):
        sid = self.request("GET", path, **kw)
        self.wait(lambda: self.done(sid), "the response")
        return self.streams[sid]


def h2_args(pki, *more, threads=2):
    args = ["-k", "gthread", "--threads", str(threads), "--log-level", "debug"]
    if pki is not None:
        args += ["--certfile", pki["cert"], "--keyfile", pki["key"], "--http-protocols", "h2,h1"]
    else:
        args += ["--http2-cleartext", "prior-knowledge"]
    return args + list(more)


MODES = ["tls", "h2c"]


def start(cg, mode, pki, *more, threads=2):
    return cg("h2_app:app", h2_args(pki if mode == "tls" else None, *more, threads=threads))


def client(h2lib, srv, mode, pki, **kw):
    return H2Client(h2lib, srv.port, pki if mode == "tls" else None, **kw)


@pytest.mark.parametrize("mode", MODES)
def test_get_environ_and_access_log(cg, h2lib, pki, mode):
    srv = start(cg, mode, pki, "--access-logfile", "-")
    c = client(h2lib, srv, mode, pki)
    st = c.get("/some/path?x=1&y=2",
               headers=[("x-test", "yes"), ("cookie", "a=1"), ("cookie", "b=2")])
    c.close()
    assert st["headers"][":status"] == "200"
    assert st["headers"]["x-served"] == "Yes"
    assert "connection" not in st["headers"] and "transfer-encoding" not in st["headers"]
    env = json.loads(bytes(st["data"]))
    assert env["protocol"] == "HTTP/2.0"  # Gunicorn's HTTP2Request: version (2, 0)
    assert env["http_version"] == "2"
    assert env["scheme"] == ("https" if mode == "tls" else "http")
    assert env["method"] == "GET"
    assert env["path"] == "/some/path" and env["query"] == "x=1&y=2"
    assert env["host"] == "localhost"  # from :authority
    assert env["x_test"] == "yes"
    assert env["cookie"] == "a=1; b=2"  # RFC 9113 section 8.2.3
    assert env["socket"] is False
    srv.wait_log(r'"GET /some/path\?x=1&y=2 HTTP/2.0" 200', source=srv.stdout)


@pytest.mark.parametrize("mode", MODES)
def test_post_body(cg, h2lib, pki, mode):
    srv = start(cg, mode, pki)
    c = client(h2lib, srv, mode, pki)
    body = pattern(5000)
    sid = c.request("POST", "/form", headers=[("content-length", str(len(body)))], body=body)
    c.wait(lambda: c.done(sid))
    env = json.loads(bytes(c.streams[sid]["data"]))
    assert env["method"] == "POST" and env["content_length"] == "5000"
    assert env["body_sha"] == hashlib.sha256(body).hexdigest()
    # no Content-Length: the body ends with the stream
    sid = c.request("PUT", "/nolen", body=b"abc")
    c.wait(lambda: c.done(sid))
    env = json.loads(bytes(c.streams[sid]["data"]))
    assert env["body_len"] == 3 and env["content_length"] is None
    c.close()


@pytest.mark.parametrize("mode", MODES)
def test_many_concurrent_streams(cg, h2lib, pki, mode):
    srv = start(cg, mode, pki, threads=4)
    c = client(h2lib, srv, mode, pki)
    sizes = {}
    for i in range(40):
        size = 70000 + i * 1111
        sid = c.request("GET", "/big?%d" % size)
        sizes[sid] = size
    c.wait(lambda: all(c.done(s) for s in sizes), "every stream")
    for sid, size in sizes.items():
        st = c.streams[sid]
        assert st["reset"] is None and st["headers"][":status"] == "200"
        assert bytes(st["data"]) == pattern(size), sid
    # answered interleaved, not one after the other: some stream got
    # data after another's began and before its own ended
    first, last = {}, {}
    for i, sid in enumerate(c.order):
        first.setdefault(sid, i)
        last[sid] = i
    assert any(first[a] < first[b] < last[a] for a in sizes for b in sizes if a != b)
    c.close()


def test_large_response_slow_reader(cg, h2lib, pki):
    """The client grants a small window and acknowledges only what it has
    read: the server never sends beyond it (h2 raises FlowControlError if
    it did), and the stalled stream holds no thread: with one thread, a
    second connection is served meanwhile."""
    srv = start(cg, "tls", pki, threads=1)
    check_large_response_slow_reader(h2lib, lambda **kw: client(h2lib, srv, "tls", pki, **kw))


# The check_* scenarios take `connect(**kw)`, a new H2Client to a server
# started with the worker under test (test_asgi_h2.py runs them on asgi).

def check_large_response_slow_reader(h2lib, connect):
    small = 16384
    c = connect(auto_ack=False, settings={h2lib.settings.SettingCodes.INITIAL_WINDOW_SIZE: small})
    size = 3 * 1024 * 1024
    sid = c.request("GET", "/big?%d" % size)
    st = c.streams[sid]
    # the first window's worth arrives, then the server must stop
    c.wait(lambda: st["unacked"] >= small, "a full window")
    assert st["unacked"] == small and not st["ended"]
    # the app has answered (its bytes wait in the spool): another request
    # on another connection runs meanwhile
    other = connect()
    assert other.get("/other")["headers"][":status"] == "200"
    other.close()
    while not st["ended"]:
        if st["unacked"] > 0:
            c.conn.acknowledge_received_data(st["unacked"], sid)
            st["unacked"] = 0
            c.flush()
        c.pump()
    assert len(st["data"]) == size and bytes(st["data"]) == pattern(size)
    c.close()


@pytest.mark.parametrize("mode", MODES)
def test_file_wrapper(cg, h2lib, pki, mode):
    """wsgi.file_wrapper: over h2c by reference into the stream's spool
    (read as the window opens), over TLS read and written as any body."""
    srv = start(cg, mode, pki)
    c = client(h2lib, srv, mode, pki)
    size = 3 * 1024 * 1024 + 17
    st = c.get("/file?%d" % size)
    assert st["headers"][":status"] == "200" and st["headers"]["content-length"] == str(size)
    assert len(st["data"]) == size and bytes(st["data"]) == pattern(size)
    c.close()


@pytest.mark.parametrize("mode", MODES)
def test_request_body_beyond_window(cg, h2lib, pki, mode):
    """A 1 MiB upload against a 64 KiB window: the client can only send as
    the app reads (the window comes back as it does)."""
    srv = start(cg, mode, pki, "--http2-initial-window-size", "65535")
    c = client(h2lib, srv, mode, pki)
    body = pattern(1 << 20)
    sid = c.request("POST", "/up", body=body)
    c.wait(lambda: c.done(sid))
    env = json.loads(bytes(c.streams[sid]["data"]))
    assert env["body_len"] == len(body)
    assert env["body_sha"] == hashlib.sha256(body).hexdigest()
    c.close()


def raw_frames(c, sid, goaway=None):
    """After GOAWAY the h2 library takes the connection for closed, while
    RFC 9113 section 6.8 lets streams up to last_stream_id finish: read on
    with hyperframe until stream sid ends (or the connection does). Returns
    (data of sid, whether it ended, EOF seen); a GOAWAY met on the way goes
    into the list goaway as (error code, last stream id)."""
    frame_mod = __import__("hyperframe.frame").frame
    buf = bytearray()
    data = bytearray()
    ended = False
    while not ended:
        while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
            more = c.sock.recv(65536)
            if not more:
                return data, ended, True
            buf += more
        frame, length = frame_mod.Frame.parse_frame_header(memoryview(buf[:9]))
        frame.parse_body(memoryview(buf[9:9 + length]))
        del buf[:9 + length]
        if isinstance(frame, frame_mod.DataFrame) and frame.stream_id == sid:
            data += frame.data
            ended = "END_STREAM" in frame.flags
        elif isinstance(frame, frame_mod.GoAwayFrame) and goaway is not None:
            goaway.append((frame.error_code, frame.last_stream_id))
    return data, ended, False


@pytest.mark.parametrize("mode", MODES)
def test_goaway_on_term_finishes_stream(cg, h2lib, pki, mode):
    frame_mod = __import__("hyperframe.frame").frame
    srv = start(cg, mode, pki, "--graceful-timeout", "30")
    c = client(h2lib, srv, mode, pki)
    first = pattern(65535)  # fills the stream's window: the app runs
    sid = c.request("POST", "/echo", body=first, end=False)
    # the window comes back once the app read it: the stream is in flight
    c.wait(lambda: sid in c.window_updated and 0 in c.window_updated,
           "the app to read the first part")
    # and its echo: nothing of the stream is on the way when GOAWAY comes
    # (the h2 library refuses frames after it)
    # (the app echoes whole 16 KiB reads: 3 of them so far)
    c.wait(lambda: len(c.streams[sid]["data"]) == 3 * 16384, "the first part's echo")
    srv.send_signal(signal.SIGTERM)
    c.wait(lambda: c.goaway is not None, "GOAWAY")
    assert c.goaway.error_code == 0 and c.goaway.last_stream_id == sid
    got = bytes(c.streams[sid]["data"])
    # the rest of the body, and room for the whole answer
    rest = pattern(20000)[::-1]
    out = b"".join(f.serialize() for f in (
        frame_mod.WindowUpdateFrame(0, window_increment=1 << 20),
        frame_mod.WindowUpdateFrame(sid, window_increment=1 << 20),
        frame_mod.DataFrame(sid, rest[:10000]),
        frame_mod.DataFrame(sid, rest[10000:], flags=["END_STREAM"])))
    c.sock.sendall(out)
    data, ended, _ = raw_frames(c, sid)
    assert ended and got + bytes(data) == first + rest
    # then the server closes the connection, and the worker exits
    _, _, eof = raw_frames(c, 0)
    assert eof
    assert srv.wait_exit(30) == 0


def test_rapid_reset_goaway_and_worker_survives(cg, h2lib, pki):
    srv = start(cg, "tls", pki)
    check_rapid_reset(srv, lambda: client(h2lib, srv, "tls", pki), "/")


def check_rapid_reset(srv, connect, path):
    pids = srv.worker_pids()
    c = connect()
    for _ in range(400):
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", c.scheme),
                                  (":authority", "localhost")], end_stream=True)
        c.conn.reset_stream(sid, error_code=8)  # CANCEL
    try:
        c.flush()
        c.wait(lambda: c.goaway is not None, "GOAWAY")
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        pytest.fail("connection dropped without a GOAWAY")
    assert c.goaway.error_code == ENHANCE_YOUR_CALM
    c.close()
    srv.wait_log(r"rapid reset")
    other = connect()
    assert other.get("/after")["headers"][":status"] == "200"
    other.close()
    assert srv.worker_pids() == pids


@pytest.mark.parametrize("mode", MODES)
def test_oversized_headers(cg, h2lib, pki, mode):
    srv = start(cg, mode, pki, "--http2-max-header-list-size", "4096")
    check_oversized_headers(srv, lambda: client(h2lib, srv, mode, pki))


def check_oversized_headers(srv, connect):
    """Past http2_max_header_list_size 4096: 431, the connection goes on;
    far beyond it: GOAWAY, the worker goes on."""
    pids = srv.worker_pids()
    c = connect()
    assert c.get("/small", headers=[("x-test", "a" * 1000)])["headers"][":status"] == "200"
    st = c.get("/big-head", headers=[("x-test", "a" * 6000)])
    assert st["headers"][":status"] == "431"
    # the connection goes on
    assert c.get("/again")["headers"][":status"] == "200"
    # far beyond it (an HPACK bomb decodes to this): the connection ends
    c.request("GET", "/bomb", headers=[("x-%d" % i, "b" * 4000) for i in range(6)])
    c.wait(lambda: c.goaway is not None, "GOAWAY")
    assert c.goaway.error_code == ENHANCE_YOUR_CALM
    c.close()
    srv.wait_log(r"header list far beyond")
    other = connect()
    assert other.get("/after")["headers"][":status"] == "200"
    other.close()
    assert srv.worker_pids() == pids


SETTINGS_ARGS = ("--http2-max-concurrent-streams", "7", "--http2-initial-window-size", "100000",
                 "--http2-max-frame-size", "32768")


def test_settings_from_config(cg, h2lib, pki):
    srv = start(cg, "tls", pki, *SETTINGS_ARGS)
    check_settings_from_config(h2lib, client(h2lib, srv, "tls", pki))


def check_settings_from_config(h2lib, c):
    """SETTINGS_ARGS in our SETTINGS frame."""
    c.wait(lambda: c.remote_settings, "SETTINGS")
    codes = h2lib.settings.SettingCodes
    assert c.remote_settings[codes.MAX_CONCURRENT_STREAMS] == 7
    assert c.remote_settings[codes.INITIAL_WINDOW_SIZE] == 100000
    assert c.remote_settings[codes.MAX_FRAME_SIZE] == 32768
    assert c.remote_settings[codes.MAX_HEADER_LIST_SIZE] == 65536
    c.close()


def test_early_hints(cg, h2lib, pki):
    srv = start(cg, "tls", pki)
    c = client(h2lib, srv, "tls", pki)
    st = c.get("/hints")
    assert st["headers"] is not None, (st, srv.log())
    assert st["info"] and st["info"][0][":status"] == "103"
    assert st["info"][0]["link"] == "</style.css>; rel=preload"
    assert st["headers"][":status"] == "200" and bytes(st["data"]) == b"ok"
    c.close()


@pytest.mark.parametrize("mode", MODES)
def test_trailers(cg, h2lib, pki, mode):
    """Gunicorn's gunicorn.http2.send_trailers: fields sent after the body,
    the last HEADERS frame ending the stream."""
    srv = start(cg, mode, pki)
    c = client(h2lib, srv, mode, pki)
    for query, body in (("", b"part1part2"), ("empty", b""), ("file", b"part1part2")):
        st = c.get("/trailers?" + query)
        assert st["headers"][":status"] == "200" and st["reset"] is None
        assert bytes(st["data"]) == body
        assert st["trailers"] == {"x-checksum": "abc123", "grpc-status": "0"}
    c.close()


def test_http11_on_the_same_tls_port(cg, pki):
    """A client that offers only http/1.1 (or no ALPN) gets HTTP/1.1."""
    srv = start(cg, "tls", pki)
    for version, env in http11_on_tls(srv, pki):
        assert version == 11 and env["protocol"] == "HTTP/1.1"


def http11_on_tls(srv, pki):
    """GET /h1 offering only http/1.1, then no ALPN: [(version, JSON body)]."""
    import http.client
    out = []
    for alpn in (["http/1.1"], None):
        ctx = ssl.create_default_context(cafile=pki["ca"])
        if alpn:
            ctx.set_alpn_protocols(alpn)
        conn = http.client.HTTPSConnection("localhost", srv.port, timeout=10, context=ctx)
        conn.request("GET", "/h1")
        r = conn.getresponse()
        out.append((r.version, json.loads(r.read())))
        conn.close()
    return out


def test_h2c_plain_http11_still_served(cg):
    srv = cg("h2_app:app", h2_args(None))
    status, headers, body = cgtest.parse_response(
        srv.raw(b"GET /h1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert status.split()[1] == "200" and json.loads(body)["protocol"] == "HTTP/1.1"
    # no gunicorn.http2.send_trailers on HTTP/1.1
    status, headers, body = cgtest.parse_response(
        srv.raw(b"GET /trailers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert body == b"no h2"


def test_h2c_upgrade(cg, h2lib):
    """http2_cleartext 'both': Upgrade: h2c (the request becomes stream 1,
    answered over HTTP/2 after a 101) and prior knowledge on one port; a
    request with a body stays HTTP/1.1 (it would have to come whole before
    the switch)."""
    srv = cg("h2_app:app", ["-k", "gthread", "--threads", "2", "--http2-cleartext", "both",
                            "--access-logfile", "-"])
    c = H2Client(h2lib, srv.port, upgrade="/upg?x=1")
    c.wait(lambda: c.done(1), "stream 1")
    st = c.streams[1]
    assert st["headers"][":status"] == "200"
    env = json.loads(bytes(st["data"]))
    assert env["protocol"] == "HTTP/2.0" and env["path"] == "/upg" and env["query"] == "x=1"
    assert c.get("/next")["headers"][":status"] == "200"  # stream 3, same connection
    c.close()
    srv.wait_log(r'"GET /upg\?x=1 HTTP/2.0" 200', source=srv.stdout)
    status, headers, body = cgtest.parse_response(srv.raw(
        b"POST /p HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, close\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\nContent-Length: 3\r\n\r\nabc"))
    assert status.split()[1] == "200" and json.loads(body)["protocol"] == "HTTP/1.1"
    c = client(h2lib, srv, "h2c", None)
    assert c.get("/pk")["headers"][":status"] == "200"
    c.close()


def curl_has_http2():
    try:
        out = subprocess.run(["curl", "-V"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return False
    return "HTTP2" in out


@pytest.mark.skipif(not curl_has_http2(), reason="curl without HTTP/2")
@pytest.mark.parametrize("mode", MODES)
def test_curl(cg, pki, mode):
    srv = start(cg, mode, pki)
    version, env = curl(srv, pki, mode, "-d", "x=1")
    assert version == b"2"
    assert env["protocol"] == "HTTP/2.0" and env["body_len"] == 3


def curl(srv, pki, mode, *more):
    """curl /curl over TLS (--http2), h2c prior knowledge, or http:// with
    --http2 (Upgrade: h2c): (the HTTP version it used, the JSON body)."""
    if mode == "tls":
        cmd = ["curl", "-sS", "--http2", "--cacert", pki["ca"],
               "https://localhost:%d/curl" % srv.port]
    elif mode == "h2c":
        cmd = ["curl", "-sS", "--http2-prior-knowledge", "http://127.0.0.1:%d/curl" % srv.port]
    else:
        cmd = ["curl", "-sS", "--http2", "http://127.0.0.1:%d/curl" % srv.port]
    out = subprocess.run(cmd + ["-w", "\\n%{http_version}"] + list(more), capture_output=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    body, version = out.stdout.rsplit(b"\n", 1)
    return version, json.loads(body)


@pytest.mark.skipif(not curl_has_http2(), reason="curl without HTTP/2")
def test_curl_h2c_upgrade(cg):
    """curl --http2 on http:// asks for Upgrade: h2c."""
    srv = cg("h2_app:app", ["-k", "gthread", "--http2-cleartext", "upgrade"])
    cmd = ["curl", "-sS", "--http2", "-w", "\\n%{http_version}",
           "http://127.0.0.1:%d/curl?u=1" % srv.port]
    out = subprocess.run(cmd, capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    body, version = out.stdout.rsplit(b"\n", 1)
    assert version == b"2"
    env = json.loads(body)
    assert env["protocol"] == "HTTP/2.0" and env["query"] == "u=1"


def test_many_short_connections(cg, h2lib, pki):
    """Connections that close as soon as their response is in, from several
    threads at once: the loop tears sessions down while pool threads still
    hand their streams back (early hints make that two hand-backs each)."""
    srv = start(cg, "tls", pki, threads=2)
    check_many_short_connections(srv, lambda: client(h2lib, srv, "tls", pki))


def check_many_short_connections(srv, connect):
    import threading
    bad = []

    def run():
        for _ in range(40):
            c = connect()
            st = c.get("/hints")
            if st["headers"] is None or st["headers"][":status"] != "200" or not st["info"]:
                bad.append(st)
            c.close()
    ths = [threading.Thread(target=run) for _ in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    assert not bad, bad[:3]
    assert "SIG" not in srv.log()


def test_max_requests_goaway(cg, h2lib, pki):
    """The request that reaches max_requests is answered, after a GOAWAY
    that tells the client to take the next ones elsewhere."""
    srv = start(cg, "h2c", pki, "--max-requests", "3")
    check_max_requests_goaway(srv, client(h2lib, srv, "h2c", pki))


def check_max_requests_goaway(srv, c):
    """srv has --max-requests 3; c is a connection to it."""
    pids = srv.worker_pids()
    for i in range(2):
        assert c.get("/%d" % i)["headers"][":status"] == "200"
    sid = c.request("GET", "/last")
    goaway = []
    data, ended, _ = raw_frames(c, sid, goaway)
    assert ended and json.loads(bytes(data))["path"] == "/last"
    assert goaway == [(0, sid)]
    c.close()
    srv.wait_log(r"Autorestarting worker after current request")
    srv.wait_workers(lambda now: now and not (set(now) & set(pids)), 30, "a new worker")
