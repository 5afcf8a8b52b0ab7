"""Even load across workers, and what a client sees when every worker is
busy (docs/load-balancing.md). Figures come from the master's Prometheus
endpoint (--metrics-bind), read as plain text."""

import re
import socket
import time

import pytest
import requests

import cgtest

SAMPLE_RE = re.compile(r'^(\w+)(?:\{([^}]*)\})? (\S+)$')


class Metrics:
    def __init__(self, port):
        self.url = "http://127.0.0.1:%d/metrics" % port

    def samples(self, name):
        """[(labels dict, value)] of the samples called `name`."""
        text = requests.get(self.url, timeout=10).text
        out = []
        for line in text.splitlines():
            m = SAMPLE_RE.match(line)
            if m and m.group(1) == name:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
                out.append((labels, float(m.group(3))))
        return out

    def by_worker(self, name):
        out = {}
        for labels, value in self.samples(name):
            out[labels["worker"]] = out.get(labels["worker"], 0) + value
        return out

    def total(self, name):
        return sum(v for _, v in self.samples(name))

    def wait(self, pred, what, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            got = pred()
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError("metrics never showed " + what)
            time.sleep(0.02)


def start(cg, args, app="wsgiapp:app"):
    port = cgtest.free_port()
    srv = cg(app, args=list(args) + ["--metrics-bind", "127.0.0.1:%d" % port])
    srv.wait_log(r"Metrics at: http://127\.0\.0\.1:%d/metrics" % port)
    return srv, Metrics(port)


def all_workers_serving(srv, n, timeout=30.0):
    """Until n different workers have answered /pid on fresh connections: a
    worker that logged "Booting" may still be importing the app."""
    seen = set()
    deadline = time.monotonic() + timeout
    while len(seen) < n:
        assert time.monotonic() < deadline, "only %s answered" % sorted(seen)
        seen.add(int(requests.get(srv.url("/pid"), timeout=10).text))
    return seen


def request_on(s, path="/"):
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, "closed before the answer"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, "closed inside the body"
        body += chunk
    assert head.startswith(b"HTTP/1.1 200 "), head
    return body


@pytest.mark.timeout(120)
@pytest.mark.parametrize("threads", [1, 4])
def test_keepalive_burst_spreads_over_gthread_workers(cg, threads):
    """64 keep-alive connections opened at once (wrk's start) land about a
    quarter on each of 4 workers, and so do the requests sent on them; each
    worker holds at least 12% (the shared accept loop used to give one
    worker nearly all of them)."""
    nconn = 64
    srv, m = start(cg, ["-k", "gthread", "-w", "4", "--threads", str(threads),
                        "--keep-alive", "30"])
    all_workers_serving(srv, 4)
    m.wait(lambda: m.total("cgunicorn_listener_backlog") == 0
           and m.total("cgunicorn_worker_connections_open") == 0, "the probes gone")
    before = m.by_worker("cgunicorn_requests_total")
    socks = []
    try:
        # the burst: every connect issued before any request is sent
        for _ in range(nconn):
            s = socket.socket()
            s.setblocking(False)
            assert s.connect_ex(("127.0.0.1", srv.port)) in (0, 115)  # EINPROGRESS
            socks.append(s)
        for s in socks:
            s.setblocking(True)
            s.settimeout(20)
        for rnd in range(5):
            for s in socks:
                request_on(s, "/")
        open_ = m.by_worker("cgunicorn_worker_connections_open")
        assert sum(open_.values()) == nconn, open_
        after = m.by_worker("cgunicorn_requests_total")
        served = {w: after[w] - before.get(w, 0) for w in after}
        assert sum(served.values()) == 5 * nconn, served
        print("\nconnections per worker %s, requests %s" % (open_, served))
        for w, n in open_.items():
            assert n >= 0.12 * nconn, open_
        for w, n in served.items():
            assert n >= 0.12 * 5 * nconn, served
    finally:
        for s in socks:
            s.close()


def _pid_probe(port):
    """The pid answering on a fresh connection, closed after the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    return int(body)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return cgtest.pinned_site(tmp_path_factory.mktemp("balance-site"), "gevent", "greenlet",
                              "zope.event", "zope.interface", "uvloop")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", ["asgi-asyncio", "asgi-uvloop", "gevent"])
def test_keepalive_burst_spreads_over_asgi_and_gevent_workers(cg, site, kind):
    """The same burst against 4 asgi workers (asyncio's loop and uvloop)
    and 4 gevent workers: each worker holds at least 12% of the 64
    keep-alive connections and serves at least 12% of the requests, each
    connection staying with its worker (asyncio's create_server took a
    burst whole, uvloop's too, and the gevent worker's accept loop gave one
    worker all 64)."""
    import test_gevent
    nconn, rounds = 64, 5
    args = ["-w", "4", "--keep-alive", "30", "--pythonpath", site]
    env = None
    if kind == "gevent":
        args += ["-k", "gevent"]
        app = "pidapp:app"
        env = test_gevent.ENV
    else:
        args += ["-k", "asgi", "--asgi-loop", kind.split("-")[1]]
        app = "pidapp:asgi_app"
    srv = cg(app, args=args, env=env)
    seen = set()
    deadline = time.monotonic() + 60
    while len(seen) < 4:
        assert time.monotonic() < deadline, "only %s answered" % sorted(seen)
        seen.add(_pid_probe(srv.port))
    socks = []
    try:
        for _ in range(nconn):
            s = socket.socket()
            s.setblocking(False)
            assert s.connect_ex(("127.0.0.1", srv.port)) in (0, 115)  # EINPROGRESS
            socks.append(s)
        for s in socks:
            s.setblocking(True)
            s.settimeout(30)
        owner = [None] * nconn
        served = {}
        for rnd in range(rounds):
            for i, s in enumerate(socks):
                pid = int(request_on(s, "/pid"))
                assert owner[i] in (None, pid), "a kept-alive connection changed worker"
                owner[i] = pid
                served[pid] = served.get(pid, 0) + 1
        held = {pid: owner.count(pid) for pid in set(owner)}
        print("\n%s: connections per worker %s, requests %s" % (kind, held, served))
        assert set(held) <= seen and len(held) == 4, (held, seen)
        for pid, n in held.items():
            assert n >= 0.12 * nconn, held
        for pid, n in served.items():
            assert n >= 0.12 * rounds * nconn, served
    finally:
        for s in socks:
            s.close()


def _connect(port):
    s = socket.socket()
    s.settimeout(10)
    t0 = time.monotonic()
    s.connect(("127.0.0.1", port))
    return s, time.monotonic() - t0


@pytest.mark.timeout(120)
def test_full_accept_queue_is_answered_503_fast(cg):
    """One sync worker stuck in a request, --backlog 4: connections queue up
    to the master's keep mark, the master answers the oldest beyond it 503
    at once (no client waits out SYN retransmissions), logs the depth at
    debug level and counts them; those kept are served once the worker is
    free."""
    sleep_s = 15
    srv, m = start(cg, ["-k", "sync", "-w", "1", "--backlog", "4", "--log-level", "debug",
                        "--timeout", "120"])
    all_workers_serving(srv, 1)
    m.wait(lambda: m.total("cgunicorn_listener_backlog") == 0, "the probes gone")
    limit = m.total("cgunicorn_listener_backlog_limit")
    assert limit == 4
    busy, _ = _connect(srv.port)
    t_busy = time.monotonic()
    busy.settimeout(sleep_s + 30)
    busy.sendall(b"GET /sleep?t=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % sleep_s)
    m.wait(lambda: m.total("cgunicorn_requests_in_flight") == 1, "the worker busy")

    clients = []
    for i in range(12):
        s, took = _connect(srv.port)
        # a dropped SYN is retried after a second: the queue had room
        assert took < 0.9, "connect %d took %.2fs" % (i, took)
        s.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        clients.append((s, time.monotonic()))
        # the next client once the master has made room again
        m.wait(lambda: m.total("cgunicorn_listener_backlog") < limit, "room in the queue")

    refused, kept = [], []
    for s, t0 in clients:
        # the kept ones wait for the worker: look at them later
        if cgtest.wait_readable(s, 1.0):
            data = cgtest.read_until_close(s, timeout=10)
            refused.append((data, time.monotonic() - t0))
        else:
            kept.append(s)
    assert time.monotonic() - t_busy < sleep_s, "the load took longer than the busy request"
    assert len(refused) >= 12 - 3, [d[:12] for d, _ in refused]
    for data, took in refused:
        assert data.startswith(b"HTTP/1.1 503 "), data
        assert b"Connection: close" in data
        assert took < 5, took
    m.wait(lambda: m.total("cgunicorn_listener_refused_total") == len(refused), "the count")
    srv.wait_log(r"\[DEBUG\] Accept queue of http://127\.0\.0\.1:%d: \d+ connections waiting "
                 r"for a worker \(backlog 4\)" % srv.port)
    srv.wait_log(r"\[WARNING\] Every worker is busy and the accept queue of "
                 r"http://127\.0\.0\.1:%d is nearly full" % srv.port)
    # the busy request ends; the kept ones are served in turn
    assert cgtest.read_until_close(busy, timeout=sleep_s + 30).startswith(b"HTTP/1.1 200 ")
    for s in kept:
        assert cgtest.read_until_close(s, timeout=30).startswith(b"HTTP/1.1 200 ")
    busy.close()
    for s, _ in clients:
        s.close()
