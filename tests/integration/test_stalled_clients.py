"""The hardening issue's yardstick: 200 clients that stall half-way through
an upload or never read their response, against `-k gthread --threads 1`.
Bodies are read and responses sent by the event loop (the spool), so the
one thread that runs the app is never theirs: a normal client is answered
at once, and the stalled ones are dropped at their deadline."""

import socket
import statistics
import time

import pytest

import cgtest

STALLERS = 100  # of each kind
TIMEOUT = 3     # --timeout: the deadline for a stalled body or response


def _close_seen(s, budget):
    """Read what the server sent until it closes; True when it closed (EOF
    or reset) within budget seconds."""
    deadline = time.monotonic() + budget
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        s.settimeout(left)
        try:
            if not s.recv(1 << 20):
                return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


@pytest.mark.parametrize("threads", ["1", "4"])
def test_stalled_clients_cost_no_thread(cg, threads):
    srv = cg("oddapp:app", args=["-k", "gthread", "--threads", threads,
                                 "--timeout", str(TIMEOUT), "--worker-connections", "1000"])
    stalled = []
    try:
        for _ in range(STALLERS):
            s = srv.connect(timeout=30)
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n"
                      + b"u" * 100000)
            stalled.append(s)
        for _ in range(STALLERS):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", srv.port))
            s.sendall(b"GET /big?1 HTTP/1.1\r\nHost: t\r\n\r\n")
            stalled.append(s)
        t_stalled = time.monotonic()

        # the app has 100 big responses to make first (inline, one thread):
        # once a normal request got through, they all hang on the loop
        status, _, _ = cgtest.parse_response(
            srv.raw(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
        assert status.endswith("200 OK")

        # a normal client, again and again, while all of them hang on
        times = []
        for _ in range(20):
            t0 = time.monotonic()
            status, _, body = cgtest.parse_response(
                srv.raw(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
            times.append(time.monotonic() - t0)
            assert status.endswith("200 OK") and body.startswith(b"pid ")
        assert statistics.median(times) < 0.1, times
        assert max(times) < 1.0, times

        # and every stalled one is dropped at its deadline (+ slack for a
        # loaded machine), none served, none left hanging
        budget = t_stalled + TIMEOUT * 3 - time.monotonic()
        for s in stalled:
            assert _close_seen(s, max(budget, 1.0)), "a stalled client was never dropped"
    finally:
        for s in stalled:
            s.close()
    srv.wait_log(r"Booting worker")
    assert "WORKER TIMEOUT" not in srv.log()
    assert len(srv.booted_pids()) == 1, srv.log()
