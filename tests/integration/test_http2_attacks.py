"""HTTP/2 on gthread over TLS under the known attacks (docs/http2.md,
"Attacks bounded"), each repeated on many connections, checking what the
worker's memory does: rapid reset (CVE-2023-44487), CONTINUATION flood
(CVE-2024-27316/28182), HPACK bomb, SETTINGS flood, zero-window stall. For
each: the server ends the abusive connection (or survives it), the worker
is the same process afterwards and still serves, and its RSS stays
bounded: what the first rounds grew it by may not grow further with
every round (a leak or an unbounded queue would). Also the memory one open
stream costs, measured with 0, 100 and 1000 streams held open across 10
connections (printed with -s/-rP; docs/http2.md quotes it).

Under ASan, freed memory sits in the quarantine before it is reused: the
servers get a 16 MiB one (ASAN_OPTIONS quarantine_size_mb), which the
bounds allow for.

Certificates come from trustme, made per test module."""

import os
import socket
import ssl
import time

import psutil
import pytest

from test_http2 import ENHANCE_YOUR_CALM, H2Client, h2lib, pki  # noqa: F401 (fixtures)

ASAN = "ASAN_OPTIONS" in os.environ
ENV = {"ASAN_OPTIONS": os.environ["ASAN_OPTIONS"] + ":quarantine_size_mb=16"} if ASAN else None
MIB = 1 << 20
ROUNDS = 30
# RSS the rounds after the first few may add, all together: allocator
# slack and the quarantine, not a per-round cost
SLACK = (48 if ASAN else 8) * MIB


def start(cg, pki, *more):
    return cg("h2_app:app", ["-k", "gthread", "--threads", "2", "-w", "1",
                             "--certfile", pki["cert"], "--keyfile", pki["key"],
                             "--http-protocols", "h2,h1"] + list(more), env=ENV)


def worker(srv):
    pids = srv.worker_pids()
    assert len(pids) == 1, pids
    return psutil.Process(pids.pop())


def rss(proc):
    return proc.memory_info().rss


def tls_sock(srv, pki, rcvbuf=None):
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.settimeout(30)
    raw.connect(("127.0.0.1", srv.port))
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ctx.set_alpn_protocols(["h2"])
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    assert s.selected_alpn_protocol() == "h2"
    return s


def read_to_end(s, timeout=30.0):
    """Read (and drop) until the server ends the connection; the bytes
    read, or raise if it does not within timeout."""
    deadline = time.monotonic() + timeout
    got = bytearray()
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "the server did not end the connection within %.0fs" % timeout
        s.settimeout(left)
        try:
            b = s.recv(65536)
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            return bytes(got)
        except socket.timeout:
            continue
        if not b:
            return bytes(got)
        got += b


def goaway_codes(data):
    """Error codes of the GOAWAY frames in a server's byte stream."""
    import hyperframe.frame as hf
    codes = []
    buf = memoryview(data)
    while len(buf) >= 9:
        n = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + n:
            break
        frame, length = hf.Frame.parse_frame_header(buf[:9])
        if isinstance(frame, hf.GoAwayFrame):
            frame.parse_body(buf[9:9 + length])
            codes.append(frame.error_code)
        buf = buf[9 + n:]
    return codes


def preface():
    import hyperframe.frame as hf
    return b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + hf.SettingsFrame(0).serialize()


def warm_up(srv, pki, h2):
    """Requests on both threads first, so that what the app, the
    interpreter and the threads take once is not counted as the attack's."""
    c = H2Client(h2, srv.port, pki)
    sids = [c.request("GET", "/big?%d" % (256 * 1024)) for _ in range(8)]
    c.wait(lambda: all(c.done(s) for s in sids), "the warm-up responses")
    c.close()


def bounded(srv, pki, h2, attack, rounds=ROUNDS):
    """Run attack() rounds times; the worker must survive, serve, and not
    grow by more than SLACK after the first rounds. Returns the RSS
    figures, printed."""
    proc = worker(srv)
    warm_up(srv, pki, h2)
    before = rss(proc)
    warm = None
    for i in range(rounds):
        attack()
        if i == 2:
            warm = rss(proc)
    after = rss(proc)
    assert worker(srv).pid == proc.pid, "the worker was replaced"
    c = H2Client(h2, srv.port, pki)
    assert c.get("/after")["headers"][":status"] == "200"
    c.close()
    print("\n[rss] %s: %.1f MiB before, %.1f after 3 rounds, %.1f after %d"
          % (attack.__name__, before / MIB, warm / MIB, after / MIB, rounds))
    assert after - warm <= SLACK, (
        "worker RSS grew by %.1f MiB over rounds 4-%d of %s (%.1f -> %.1f MiB)"
        % ((after - warm) / MIB, rounds, attack.__name__, warm / MIB, after / MIB))
    return before, warm, after


def test_rapid_reset_rss_bounded(cg, h2lib, pki):
    srv = start(cg, pki)

    def rapid_reset():
        c = H2Client(h2lib, srv.port, pki)
        for _ in range(400):
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, [(":method", "GET"), (":path", "/"), (":scheme", "https"),
                                      (":authority", "localhost")], end_stream=True)
            c.conn.reset_stream(sid, error_code=8)  # CANCEL
        c.flush()
        c.wait(lambda: c.goaway is not None, "GOAWAY")
        assert c.goaway.error_code == ENHANCE_YOUR_CALM
        c.close()

    bounded(srv, pki, h2lib, rapid_reset)
    srv.wait_log(r"rapid reset", count=ROUNDS)


def test_continuation_flood_rss_bounded(cg, h2lib, pki):
    """HEADERS without END_HEADERS, then CONTINUATION frames (each with a
    valid literal field) that never end the block: nghttp2's limit of 8 per
    block ends the connection at once."""
    import hyperframe.frame as hf
    srv = start(cg, pki)
    import hpack
    enc = hpack.Encoder()
    first = enc.encode([(":method", "GET"), (":path", "/"), (":scheme", "https"),
                        (":authority", "localhost")])
    field = hpack.Encoder().encode([("x-flood", "y" * 1000)])  # never indexed twice

    def continuation_flood():
        s = tls_sock(srv, pki)
        frames = [hf.HeadersFrame(1, first)]
        frames += [hf.ContinuationFrame(1, field) for _ in range(500)]
        try:
            s.sendall(preface() + b"".join(f.serialize() for f in frames))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # cut off mid-flood: what matters is below
        read_to_end(s)
        s.close()

    bounded(srv, pki, h2lib, continuation_flood)


def test_hpack_bomb_rss_bounded(cg, h2lib, pki):
    """One 4000-byte field put in the HPACK dynamic table, then referenced
    by its 1-byte index 1000 times: 6 KB on the wire decoding to 4 MB.
    GOAWAY ENHANCE_YOUR_CALM once the decoded list is 4x beyond
    http2_max_header_list_size, before it is all decoded."""
    srv = start(cg, pki)

    def hpack_bomb():
        c = H2Client(h2lib, srv.port, pki)
        c.request("GET", "/bomb", headers=[("x-bomb", "b" * 4000)] * 1000)
        c.wait(lambda: c.goaway is not None, "GOAWAY")
        assert c.goaway.error_code == ENHANCE_YOUR_CALM
        c.close()

    bounded(srv, pki, h2lib, hpack_bomb)
    srv.wait_log(r"header list far beyond", count=ROUNDS)


def test_settings_flood_rss_bounded(cg, h2lib, pki):
    """SETTINGS frames (and PINGs) sent as fast as the socket takes them by
    a client that reads nothing, through a small receive buffer: the ACKs
    the server owes pile up until nghttp2's bound (1000 queued) ends the
    session; the server's memory does not follow the flood."""
    import hyperframe.frame as hf
    srv = start(cg, pki)
    flood = b"".join(hf.SettingsFrame(0, settings={hf.SettingsFrame.MAX_CONCURRENT_STREAMS: 100})
                     .serialize() + hf.PingFrame(0, opaque_data=b"12345678").serialize()
                     for _ in range(2000))

    def settings_flood():
        s = tls_sock(srv, pki, rcvbuf=4096)
        s.settimeout(30)
        sent = 0
        try:
            s.sendall(preface())
            for _ in range(50):  # 50 x 2000 SETTINGS and PINGs at most
                s.sendall(flood)
                sent += 1
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the server ended it mid-flood
        except socket.timeout:
            pytest.fail("the server neither read the flood nor ended the connection")
        data = read_to_end(s)
        s.close()
        assert ENHANCE_YOUR_CALM in goaway_codes(data), (sent, data[:200])

    bounded(srv, pki, h2lib, settings_flood, rounds=10)
    srv.wait_log(r"flood", count=1)


def test_zero_window_stall_rss_bounded(cg, h2lib, pki):
    """A client that opens no window (SETTINGS_INITIAL_WINDOW_SIZE 0) for
    20 responses of 1 MiB: each response waits in its stream's spool (256
    KiB in memory, the rest in a temporary file), the threads are free,
    and the connection ends after --timeout without progress."""
    srv = start(cg, pki, "--timeout", "3", "--log-level", "debug")

    def zero_window():
        c = H2Client(h2lib, srv.port, pki,
                     settings={h2lib.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        sids = [c.request("GET", "/big?%d" % MIB) for _ in range(20)]
        c.wait(lambda: all(c.streams[s]["headers"] for s in sids), "the response heads")
        # no DATA can come; the server gives up on the connection
        t0 = time.monotonic()
        while not c.closed and c.goaway is None:
            c.pump()
        assert time.monotonic() - t0 < 30
        c.close()

    before, warm, after = bounded(srv, pki, h2lib, zero_window, rounds=5)
    # and while they stall, 20 spools cost at most their memory part
    assert warm - before <= 20 * 256 * 1024 + SLACK
    srv.wait_log(r"Closing connection: HTTP/2 connection idle", count=5, timeout=30)


def test_memory_per_open_stream(cg, h2lib, pki):
    """RSS of the worker with 0, 100 and 1000 streams held open on 10
    connections (10 and 100 per connection, within the default
    http2_max_concurrent_streams of 100): POSTs whose body has not come,
    so each stream waits on the loop (no thread). A PING answered after
    the HEADERS says the server has taken them all."""
    srv = start(cg, pki, "--timeout", "120", "--keep-alive", "120")
    proc = worker(srv)
    conns = [H2Client(h2lib, srv.port, pki) for _ in range(10)]
    for c in conns:
        assert c.get("/warm")["headers"][":status"] == "200"

    def settle():
        for c in conns:
            pongs = []
            c.conn.ping(b"rssprobe")
            c.flush()
            while not pongs:
                for ev in c.conn.receive_data(c.sock.recv(65536)):
                    if type(ev).__name__ == "PingAckReceived":
                        pongs.append(ev)
                c.flush()
        time.sleep(0.2)
        return rss(proc)

    figures = {0: settle()}
    held = 0
    for target in (100, 1000):
        per_conn = (target - held) // len(conns)
        for c in conns:
            for _ in range(per_conn):
                sid = c.conn.get_next_available_stream_id()
                c.conn.send_headers(sid, [(":method", "POST"), (":path", "/hold"),
                                          (":scheme", "https"), (":authority", "localhost"),
                                          ("content-type", "application/octet-stream")],
                                    end_stream=False)
            c.flush()
        held = target
        figures[target] = settle()
    per_stream = (figures[1000] - figures[0]) / 1000
    print("\n[rss] worker with 10 HTTP/2 connections: %s; about %.1f KiB per open stream"
          % (", ".join("%d streams %.1f MiB" % (n, v / MIB) for n, v in sorted(figures.items())),
             per_stream / 1024))
    for c in conns:
        c.close()
    assert per_stream <= (64 if ASAN else 16) * 1024, per_stream
