"""Odd apps and hostile clients, for the sync worker and gthread with 1 and
4 threads: each gets the right answer or a clean close, the worker stays
alive (no signal death, no WORKER TIMEOUT) and the next client is served
at once."""

import os
import re
import signal
import socket
import threading
import time

import pytest

import cgtest
from cgtest import dechunk, header, read_until_close, split_head

MODES = {
    "sync": ["-k", "sync"],
    "gthread1": ["-k", "gthread", "--threads", "1"],
    "gthread4": ["-k", "gthread", "--threads", "4"],
}
CONTENT = bytes((i * 7 + 3) % 251 for i in range(50000))
# The I/O timeouts derive from --timeout: gthread waits that long for a
# stalled peer, the sync worker half of it (the master's kill comes later).
TIMEOUT = 4
SANITIZED = "ASAN_OPTIONS" in os.environ
DEATH = re.compile(r"WORKER TIMEOUT|was sent SIG|exited with code|Perhaps out of memory")


@pytest.fixture(params=list(MODES), scope="module")
def srv(request, cg_module):
    return cg_module("oddapp:app", args=MODES[request.param] + ["--timeout", str(TIMEOUT),
                                                              "--log-level", "debug"])


def get(srv, path, version=b"1.1", extra=b""):
    return srv.raw(b"GET " + path.encode() + b" HTTP/" + version + b"\r\nHost: t\r\n"
                   b"Connection: close\r\n" + extra + b"\r\n")


def assert_healthy(srv, pids_before=None):
    """The next client is answered within a second, by the same worker."""
    t0 = time.monotonic()
    status, headers, body = cgtest.parse_response(get(srv, "/"))
    assert status.endswith("200 OK"), status
    assert time.monotonic() - t0 < 1.0
    if pids_before is not None:
        assert body == b"pid %d" % next(iter(pids_before)), (body, pids_before)
    assert not DEATH.search(srv.log()), srv.log()


def test_file_wrapper_without_length_is_chunked(srv):
    status, headers, rest = split_head(get(srv, "/fw_nolen"))
    assert status == "HTTP/1.1 200 OK"
    assert header(headers, "Transfer-Encoding") == "chunked"
    assert header(headers, "Content-Length") is None
    body, complete = dechunk(rest)
    assert complete and body == CONTENT


def test_file_wrapper_empty_file_chunked(srv):
    status, headers, rest = split_head(get(srv, "/fw_empty"))
    assert header(headers, "Transfer-Encoding") == "chunked"
    assert rest == b"0\r\n\r\n"


def test_file_wrapper_http10_closes_to_frame(srv):
    status, headers, rest = split_head(get(srv, "/fw_nolen", version=b"1.0"))
    assert header(headers, "Transfer-Encoding") is None
    assert rest == CONTENT


def test_file_wrapper_keepalive_next_request_intact(srv):
    # two requests on one connection: the second response must start
    # exactly where the first (chunked) one ends
    with srv.connect() as s:
        s.sendall(b"GET /fw_nolen HTTP/1.1\r\nHost: t\r\n\r\n"
                  b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = read_until_close(s)
    status, headers, rest = split_head(data)
    body, complete = dechunk(rest)
    assert complete and body == CONTENT
    tail = rest[rest.index(b"\r\n0\r\n\r\n") + 7:]
    if tail:  # keep-alive worker: the second answer follows, well framed
        assert tail.startswith(b"HTTP/1.1 200 OK\r\n"), tail[:100]


def test_file_wrapper_without_start_response_is_500(srv):
    pids = srv.worker_pids()
    status, headers, body = cgtest.parse_response(get(srv, "/fw_nostart"))
    assert status == "HTTP/1.1 500 Internal Server Error"
    srv.wait_log(r"Error handling request GET /fw_nostart")
    assert "start_response" in srv.log()
    assert_healthy(srv, pids)


def test_app_closes_gunicorn_socket(srv):
    pids = srv.worker_pids()
    # many at once, next to ordinary requests, so that a reused descriptor
    # number would show as a crash or a mixed-up answer
    errors = []

    def hammer(path, n):
        for _ in range(n):
            try:
                data = get(srv, path)
                if path == "/":
                    st, _, body = cgtest.parse_response(data)
                    if not body.startswith(b"pid "):
                        errors.append((path, data[:200]))
                elif data:
                    st, _, body = cgtest.parse_response(data)
                    if body not in (b"closed", b"detached"):
                        errors.append((path, data[:200]))
            except (OSError, AssertionError) as e:
                if path == "/":
                    errors.append((path, repr(e)))
    threads = [threading.Thread(target=hammer, args=(p, 30))
               for p in ("/sockclose", "/sockdetach", "/", "/")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    assert_healthy(srv, pids)


def test_short_body_closes_connection(srv):
    pids = srv.worker_pids()
    with srv.connect() as s:
        s.sendall(b"GET /short HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
        data = read_until_close(s, timeout=10)
    status, headers, rest = split_head(data)
    assert header(headers, "Content-Length") == "10"
    # the promised rest never comes, and no second response hides in it
    assert rest == b"12345"
    srv.wait_log(r"Response body shorter than its Content-Length \(5 of 10 bytes\)")
    assert_healthy(srv, pids)


def test_read_huge_size_allocates_what_comes(srv):
    body = b"a" * 1000
    data = srv.raw(b"POST /readhuge HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                   b"Content-Length: 1000\r\n\r\n" + body)
    assert cgtest.parse_response(data)[2] == b"1000"


def test_stalled_upload_dropped_at_deadline(srv):
    pids = srv.worker_pids()
    s = srv.connect(timeout=30)
    # more than is read before the app runs: the app waits for the rest
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n"
              + b"u" * 200000)
    t0 = time.monotonic()
    data = read_until_close(s, timeout=TIMEOUT * 3)
    waited = time.monotonic() - t0
    s.close()
    # dropped (no answer, or the app's short-read answer), not held forever
    assert waited < TIMEOUT * 2.5, waited
    assert not data or b"HTTP/1.1" in data
    assert_healthy(srv, pids)


def test_slow_reader_dropped_at_deadline(srv):
    pids = srv.worker_pids()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", srv.port))
    gave_up = r"Ignoring socket error: Connection timed out|response not taken in time"
    before = len(re.findall(gave_up, srv.log()))
    s.sendall(b"GET /big?32 HTTP/1.1\r\nHost: t\r\n\r\n")
    # never read: the server's writes stall (sync), or what the socket does
    # not take waits in the spool (gthread); either way it gives up
    srv.wait_log(gave_up, count=before + 1, timeout=TIMEOUT * 3)
    s.close()
    assert_healthy(srv, pids)


def test_sync_silent_client_dropped(srv, request):
    """The sync worker drops a client that sends half a head and goes quiet
    after half of --timeout, before the master would kill the worker."""
    if request.node.callspec.id != "sync":
        pytest.skip("gthread parks a silent connection on the loop (test_gthread.py)")
    pids = srv.worker_pids()
    s = srv.connect(timeout=30)
    s.sendall(b"GET / HTTP/1.1\r\nHost")
    t0 = time.monotonic()
    assert read_until_close(s, timeout=TIMEOUT * 3) == b""
    assert TIMEOUT / 2 - 0.5 < time.monotonic() - t0 < TIMEOUT
    s.close()
    srv.wait_log(r"Closing connection: request head not complete in time")
    assert_healthy(srv, pids)


def test_other_client_served_while_one_stalls(srv, request):
    if request.node.callspec.id == "sync":
        pytest.skip("the sync worker serves one client at a time by design")
    s = srv.connect(timeout=30)
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n"
              + b"u" * 200000)
    try:
        t0 = time.monotonic()
        st, _, _ = cgtest.parse_response(get(srv, "/"))
        assert st.endswith("200 OK")
        assert time.monotonic() - t0 < 1.0
    finally:
        s.close()


# ---- signals and threads: a server of their own each ----

def test_quit_leaves_a_half_sent_head(cg):
    """QUIT interrupts a sync worker blocked on a client that sent half a
    request head: the master stops at once, not after graceful_timeout."""
    srv = cg("oddapp:app", args=["--graceful-timeout", "30", "--timeout", "60"])
    s = srv.connect(timeout=30)
    s.sendall(b"GET / HTTP/1.1\r\nHost:")
    srv.wait_log(r"Booting worker")
    time.sleep(0.2)  # let the worker block in its read (nothing to wait on)
    t0 = time.monotonic()
    srv.send_signal(signal.SIGQUIT)
    assert srv.wait_exit(10) == 0, srv.log()
    assert time.monotonic() - t0 < 5
    s.close()


def test_timeout_interrupts_app_hung_in_recv(cg):
    """A hung recv(2) in the app: the master's SIGABRT at --timeout reaches
    it (no SA_RESTART), its Python stack is logged, the client gets a 500."""
    srv = cg("oddapp:app", args=["--timeout", "2"])
    data = srv.raw(b"GET /hang_recv HTTP/1.1\r\nHost: t\r\n\r\n", timeout=20)
    assert data.startswith(b"HTTP/1.1 500"), data[:200]
    srv.wait_log(r"WORKER TIMEOUT")
    log = srv.wait_log(r"aborted \(SIGABRT\) while the application was running")
    assert "a.recv(1)" in srv.log()


def test_quit_raises_systemexit_in_pool_threads(cg, tmp_path):
    """QUIT: an app busy on a pool thread gets SystemExit, as on the main
    thread."""
    srv = cg("oddapp:app", args=["-k", "gthread", "--threads", "4"],
             env={"ODD_MARK_DIR": str(tmp_path)})
    s = srv.connect(timeout=30)
    s.sendall(b"GET /spin HTTP/1.1\r\nHost: t\r\n\r\n")
    pid = next(iter(srv.worker_pids()))
    started = tmp_path / ("spin-%d.started" % pid)
    deadline = time.monotonic() + 10
    while not started.exists():
        assert time.monotonic() < deadline, srv.log()
        time.sleep(0.02)
    srv.send_signal(signal.SIGQUIT)
    assert srv.wait_exit(10) is not None
    assert (tmp_path / ("spin-%d.exit" % pid)).exists(), srv.log()
    s.close()


def test_wsgi_input_after_request_refused(cg):
    """A thread of the app's reading wsgi.input after the request ended gets
    a Python exception, not freed memory."""
    srv = cg("oddapp:app", args=["-k", "gthread", "--threads", "2"])
    with srv.connect() as s:
        s.sendall(b"POST /late_input HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde"
                  b"GET /late_result HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = read_until_close(s)
    first, _, rest = data.partition(b"ok")
    st, _, body = cgtest.parse_response(rest)
    assert body == b"ValueError", data


def test_access_log_non_ascii_response_header(cg, tmp_path):
    """{name}o shows a latin-1 response header value as the text it is (as
    Gunicorn logs str values), not encoded twice."""
    access = tmp_path / "access.log"
    srv = cg("oddapp:app", args=["--access-logfile", str(access),
                                 "--access-logformat", "%(U)s %({x-name}o)s"])
    cgtest.parse_response(get(srv, "/latin1_header"))
    srv.wait_log(r"/latin1_header caf\u00e9$",
                 source=lambda: access.read_bytes().decode("utf-8") if access.exists() else "")


def test_graceful_timeout_with_busy_pool_threads(cg, tmp_path):
    """A worker leaving gracefully (here: --max-requests) while a pool thread
    is deep in the app past --graceful-timeout: it exits cleanly (status 0,
    no crash finalizing the interpreter under the running thread), says so,
    and the master replaces it."""
    srv = cg("oddapp:app", args=["-k", "gthread", "--threads", "2", "--graceful-timeout", "1",
                                 "--max-requests", "1"],
             env={"ODD_MARK_DIR": str(tmp_path)})
    s = srv.connect(timeout=30)
    s.sendall(b"GET /spin HTTP/1.1\r\nHost: t\r\n\r\n")
    srv.wait_log(r"Worker exiting with 1 request\(s\) still in the application", timeout=20)
    srv.wait_log(r"Booting worker with pid", count=2, timeout=20)
    st, _, body = cgtest.parse_response(get(srv, "/"))
    assert st.endswith("200 OK")
    assert not DEATH.search(srv.log()), srv.log()
    s.close()


# Gunicorn 27 (RFC 9112 section 4): three digits, then optionally one space
# and a reason of HTAB / SP / VCHAR / obs-text; anything else is refused by
# start_response with Gunicorn's message.
@pytest.mark.parametrize("status,ok", [
    ("200%20OK", True), ("200", True), ("404%20", True), ("299%20Odd%09reason%E9", True),
    ("200OK", False), ("%20200%20OK", False), ("2000%20OK", False), ("20%20OK", False),
    ("abc%20OK", False), ("200%20OK%0D%0AX:%201", False), ("200%09OK", False), ("", False),
])
def test_status_rule(srv, status, ok):
    status_line, _, body = split_head(get(srv, "/status?" + status))
    from urllib.parse import unquote
    want = unquote(status, encoding="latin-1")
    if ok:
        assert status_line == "HTTP/1.1 " + want.rstrip(" ") or status_line == "HTTP/1.1 " + want
        assert body == b""
    else:
        assert status_line == "HTTP/1.1 200 OK"
        assert body.decode() == "ValueError: Invalid status %r" % want


def test_status_not_a_string(srv):
    _, _, body = split_head(get(srv, "/status?int"))
    assert body == b"TypeError: 200 is not a string"


# Gunicorn 27: the app's invalid response header is reported by name, its
# value left out of the error (it can carry what the app was tricked into).
@pytest.mark.parametrize("query,error", [
    ("n=X-A&v=a%0D%0ASet-Cookie:%20x", "Invalid response header from the application: 'X-A'"),
    ("n=X-A&v=a%00b", "Invalid response header from the application: 'X-A'"),
    ("n=X%20A&v=b", "Invalid response header name from the application: 'X A'"),
    ("n=X:A&v=b", "Invalid response header name from the application: 'X:A'"),
])
def test_invalid_response_header_message(srv, query, error):
    _, _, body = split_head(get(srv, "/header?" + query))
    assert body.decode() == "ValueError: " + error


def test_valid_response_header_passes(srv):
    status, headers, body = split_head(get(srv, "/header?n=X-A&v=a%09b%20c%E9"))
    assert status == "HTTP/1.1 200 OK" and body == b""
    assert ("X-A", "a\tb c\xe9") in headers
