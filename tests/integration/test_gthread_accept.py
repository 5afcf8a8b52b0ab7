"""gthread with a pool: idle pool threads accept plain connections
themselves, read the head, run the app and close, without the loop; what
must wait (a head not all in, a body, keep-alive) goes to the loop. These
check that the path serves and counts every request, that a slow head
still parks on the loop instead of holding a thread, that max_requests and
a graceful stop hold while threads wait on the listeners."""

import signal
import socket
import threading
import time

import cgtest

APP = "gthread_app:app"


def _code(data):
    return int(cgtest.parse_response(data)[0].split()[1])


def test_many_close_mode_requests_all_served_and_logged(cg, tmp_path):
    log = tmp_path / "access.log"
    srv = cg(APP, args=["-k", "gthread", "--threads", "4", "--access-logfile", str(log)])
    n_clients, per_client = 8, 40
    bodies, errors = [], []

    def client(k):
        for i in range(per_client):
            try:
                data = cgtest.get_close(srv.port, "/c%d-%d" % (k, i))
                bodies.append((_code(data), cgtest.parse_response(data)[2].split()[0]))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

    ts = [threading.Thread(target=client, args=(k,)) for k in range(n_clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    want = {("/c%d-%d" % (k, i)).encode() for k in range(n_clients) for i in range(per_client)}
    assert len(bodies) == len(want)
    assert {b for _, b in bodies} == want
    assert {s for s, _ in bodies} == {200}
    # each request has its access log line (written by the thread that ran it)
    total = n_clients * per_client
    deadline = time.monotonic() + 15
    while True:
        lines = [ln for ln in log.read_text().splitlines() if '"GET /c' in ln]
        if len(lines) >= total or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(lines) == total


def test_partial_heads_park_on_the_loop_not_on_threads(cg):
    """Two clients that send part of a head and go silent, with --threads 2:
    both threads stay free, so a normal request, and two slow ones side by
    side, are answered at once."""
    srv = cg(APP, args=["-k", "gthread", "--threads", "2", "--keep-alive", "10"])
    silent = []
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(b"GET /never HTTP/1.1\r\nHost: t\r\n")  # no end of head
        silent.append(s)
    try:
        time.sleep(0.3)  # the partial heads reach the worker
        t0 = time.monotonic()
        data = cgtest.get_close(srv.port, "/third")
        assert _code(data) == 200 and cgtest.parse_response(data)[2].split()[0] == b"/third"
        assert time.monotonic() - t0 < 3
        results = []
        ts = [threading.Thread(target=lambda: results.append(
            cgtest.parse_response(cgtest.get_close(srv.port, "/sleep?t=2"))[2])) for _ in range(2)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert results == [b"slept", b"slept"]
        # side by side on the two threads (one after the other takes 4 s)
        assert time.monotonic() - t0 < 3.6
        # the silent clients are still open and get their answer when they finish
        silent[0].sendall(b"Connection: close\r\n\r\n")
        data = cgtest.read_until_close(silent[0], timeout=10)
        assert _code(data) == 200 and cgtest.parse_response(data)[2].split()[0] == b"/never"
    finally:
        for s in silent:
            s.close()


def test_max_requests_on_thread_served_close_requests(cg):
    srv = cg(APP, args=["-k", "gthread", "--threads", "4", "--max-requests", "5"])
    first = None
    for i in range(5):
        data = cgtest.get_close(srv.port, "/r%d" % i)
        assert _code(data) == 200
        first = first or cgtest.parse_response(data)[2].split()[1]
    srv.wait_log(r"Autorestarting worker after current request\.")
    deadline = time.monotonic() + 15
    while True:
        try:
            pid = cgtest.parse_response(cgtest.get_close(srv.port, "/again"))[2].split()[1]
            if pid != first:
                break
        except (OSError, EOFError):
            pass
        assert time.monotonic() < deadline, "no new worker"
        time.sleep(0.2)


def test_graceful_stop_while_threads_wait_on_listeners(cg):
    """Threads idle on the listeners stop at once on TERM; a close-mode
    request a thread is running finishes first."""
    srv = cg(APP, args=["-k", "gthread", "--threads", "4", "--graceful-timeout", "20"])
    assert _code(cgtest.get_close(srv.port, "/warm")) == 200
    out = []
    t = threading.Thread(target=lambda: out.append(cgtest.get_close(srv.port, "/sleep?t=1.5&say=1")))
    t.start()
    srv.wait_log(r"app: sleeping", timeout=15)
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    t.join(15)
    assert _code(out[0]) == 200 and cgtest.parse_response(out[0])[2] == b"slept"
    assert srv.wait_exit(15) == 0
    assert time.monotonic() - t0 < 10  # not the graceful timeout's 20 s


def test_idle_threads_stop_at_once(cg):
    srv = cg(APP, args=["-k", "gthread", "--threads", "4", "--graceful-timeout", "20"])
    assert _code(cgtest.get_close(srv.port, "/warm")) == 200
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    assert srv.wait_exit(15) == 0
    assert time.monotonic() - t0 < 8


def test_proxy_protocol_on_thread_and_loop_paths(cg):
    """A PROXY v1 header read by the accepting thread (all in at once) and
    one whose head is finished on the loop (handed over part-way)."""
    srv = cg("echo:app", args=["-k", "gthread", "--threads", "4", "--proxy-protocol", "v1",
                               "--proxy-allow-from", "*"])
    head = b"GET /p HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    for addr, split in (("1.2.3.4", False), ("9.8.7.6", True)):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        try:
            s.sendall(b"PROXY TCP4 %s 5.6.7.8 111 222\r\n" % addr.encode())
            if split:
                s.sendall(head[:10])
                time.sleep(0.3)  # the thread hands the connection to the loop
                s.sendall(head[10:])
            else:
                s.sendall(head)
            data = cgtest.read_until_close(s, timeout=10)
        finally:
            s.close()
        assert _code(data) == 200
        assert b'"REMOTE_ADDR": "%s"' % addr.encode() in data
