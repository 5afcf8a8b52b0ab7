"""TCP_DEFER_ACCEPT on the listening sockets of the sync and gthread
workers: a connection reaches accept() only once its first bytes are in, so
a silent client waits in the kernel (its side established, the server's in
SYN-RECV) for about a second, then is accepted and meets the worker's own
timeouts; a probe that only connects and closes is accepted at once (its
FIN counts) and dropped quietly."""

import socket
import time

import pytest

import cgtest

APP = "gthread_app:app"

KINDS = [
    pytest.param(["-k", "sync"], id="sync"),
    pytest.param(["-k", "gthread", "--threads", "1"], id="gthread1"),
    pytest.param(["-k", "gthread", "--threads", "4"], id="gthread4"),
]
# --reuse-port: each worker binds its own socket, and sets the option on it
KINDS_REUSE = KINDS + [
    pytest.param(["-k", "sync", "--reuse-port"], id="sync-reuse-port"),
    pytest.param(["-k", "gthread", "--reuse-port"], id="gthread1-reuse-port"),
]

SYN_RECV, ESTABLISHED = "03", "01"


def _tcp_states(port):
    """{(local port, remote port): state} of the IPv4 TCP sockets on
    127.0.0.1 that have `port` at one end (the kernel lists its pending
    connection requests, SYN-RECV, there too)."""
    states = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, st = fields[1], fields[2], fields[3]
            lport, rport = int(local.split(":")[1], 16), int(remote.split(":")[1], 16)
            if port in (lport, rport):
                states[(lport, rport)] = st
    return states


def _silent_connect(port):
    """Connect and send nothing; return the socket and the server side's
    state as seen at once (None when this process was held up so long that
    the kernel may already have given up waiting: the caller tries again)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    t0 = time.monotonic()
    mine = s.getsockname()[1]
    states = _tcp_states(port)
    if time.monotonic() - t0 > 0.8:
        return s, None
    assert states.get((mine, port)) == ESTABLISHED, states
    return s, states.get((port, mine))


def _get(port, path="/pid"):
    return cgtest.get_close(port, path)


@pytest.mark.parametrize("kind", KINDS_REUSE)
def test_silent_client_waits_in_the_kernel(cg, kind):
    """The server side of a connection that has sent nothing is still a
    pending request in the kernel, not a socket a worker accepted; once the
    client speaks, it is served at once."""
    srv = cg(APP, args=kind + ["--keep-alive", "1"])
    # each worker sets the option as it starts, which may be after the
    # server first answers: connections until then are accepted as before
    deadline = time.monotonic() + 30
    while True:
        s, state = _silent_connect(srv.port)
        if state == SYN_RECV:
            break
        s.close()
        assert time.monotonic() < deadline, "the server side was %s, not SYN-RECV" % state
        time.sleep(0.1)
    s.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert cgtest.read_until_close(s, timeout=10).startswith(b"HTTP/1.1 200 ")
    s.close()


@pytest.mark.parametrize("kind", KINDS)
def test_client_silent_past_the_defer_is_served(cg, kind):
    """A client quiet for longer than the kernel waits (about a second) is
    accepted anyway, and its request, when it comes, is answered."""
    srv = cg(APP, args=kind)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    mine = s.getsockname()[1]
    deadline = time.monotonic() + 30
    # the kernel hands it over after about a second of silence
    while _tcp_states(srv.port).get((srv.port, mine)) != ESTABLISHED:
        assert time.monotonic() < deadline, "never accepted"
        time.sleep(0.05)
    s.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert cgtest.read_until_close(s, timeout=10).startswith(b"HTTP/1.1 200 ")
    s.close()


@pytest.mark.parametrize("threads", [1, 4])
def test_gthread_closes_a_client_that_never_speaks(cg, threads):
    """Accepted after the kernel's wait, a client that still sends nothing is
    closed by the worker's first-byte timer (5 s + keep-alive), as it was
    without the option; the worker serves others meanwhile."""
    srv = cg(APP, args=["-k", "gthread", "--threads", str(threads), "--keep-alive", "1"])
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    t0 = time.monotonic()
    assert _get(srv.port).startswith(b"HTTP/1.1 200 ")
    s.settimeout(60)
    try:
        data = s.recv(1)
    except ConnectionResetError:
        data = b""
    took = time.monotonic() - t0
    assert data == b""
    # about 1 s in the kernel, then 5 s + keep-alive (1 s) on the worker's timer
    assert 6 <= took < 40, took
    s.close()


@pytest.mark.parametrize("kind", KINDS)
def test_tcp_probe_connect_close(cg, kind):
    """Health checks that only connect and close (TCP probes) succeed at
    once, cost no worker more than an EOF, and log nothing."""
    srv = cg(APP, args=kind)
    for _ in range(20):
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        assert time.monotonic() - t0 < 5
        s.close()
    assert _get(srv.port).startswith(b"HTTP/1.1 200 ")
    log = srv.log()
    assert "[ERROR]" not in log and "Traceback" not in log, log
