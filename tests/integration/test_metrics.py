"""metrics_bind: the master's Prometheus endpoint, read with
prometheus_client's own parser, against requests the test sent."""

import os
import signal
import socket
import sys
import threading
import time

import pytest
import requests

import cgtest


@pytest.fixture(scope="module")
def parser(tmp_path_factory):
    site = cgtest.pinned_site(tmp_path_factory.mktemp("prom"), "prometheus-client")
    sys.path.insert(0, str(site))
    try:
        from prometheus_client.parser import text_string_to_metric_families
    finally:
        sys.path.remove(str(site))
    return text_string_to_metric_families


class Scraper:
    def __init__(self, parse, url):
        self.parse = parse
        self.url = url

    def families(self):
        res = requests.get(self.url, timeout=10)
        assert res.status_code == 200, res.text
        assert res.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return {f.name: f for f in self.parse(res.text)}

    def samples(self, family, name=None, **labels):
        """{label tuple: value} of one family's samples (name: a sample name
        such as X_bucket; default the family's own)."""
        f = self.families()[family]
        out = {}
        for s in f.samples:
            if s.name != (name or family) and not (name is None and s.name == family + "_total"):
                continue
            if any(s.labels.get(k) != v for k, v in labels.items()):
                continue
            out[tuple(sorted(s.labels.items()))] = s.value
        return out

    def total(self, family, name=None, **labels):
        return sum(self.samples(family, name, **labels).values())

    def wait(self, pred, what, timeout=15.0):
        deadline = time.monotonic() + timeout
        while True:
            got = pred()
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError("metrics never showed " + what)
            time.sleep(0.05)


def start(cg, parser, args=(), app="wsgiapp:app", **kw):
    port = cgtest.free_port()
    srv = cg(app, args=list(args) + ["--metrics-bind", "127.0.0.1:%d" % port], **kw)
    srv.wait_log(r"Metrics at: http://127\.0\.0\.1:%d/metrics" % port)
    return srv, Scraper(parser, "http://127.0.0.1:%d/metrics" % port)


def _mix(srv):
    codes = []
    for path in ["/", "/", "/", "/nope", "/error", "/exc_info"]:
        codes.append(requests.get(srv.url(path), timeout=10).status_code)
    assert codes == [200, 200, 200, 404, 500, 503]
    # refused by the parser, before the app
    resp = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 400 "), resp


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_counters_add_up_to_what_was_sent(cg, parser, worker):
    args = ["-k", worker, "-w", "2"] + (["--threads", "3"] if worker == "gthread" else [])
    srv, m = start(cg, parser, args)
    # the harness's own readiness probes are connections too: count from
    # when every one of them has been accepted and closed
    m.wait(lambda: m.total("cgunicorn_listener_backlog") == 0 and
           m.total("cgunicorn_worker_connections_open") == 0, "the probes gone")
    conns0 = m.total("cgunicorn_worker_connections_accepted")
    _mix(srv)
    # a request is counted once its response is out, so possibly just after
    # the client has it
    m.wait(lambda: m.total("cgunicorn_requests") == 7, "seven requests")
    fams = m.families()
    assert fams["cgunicorn_requests"].type == "counter"
    assert fams["cgunicorn_request_duration_seconds"].type == "histogram"
    assert fams["cgunicorn_workers"].samples[0].value == 2
    by_class = {}
    for s in fams["cgunicorn_requests"].samples:
        by_class[s.labels["status"]] = by_class.get(s.labels["status"], 0) + s.value
    assert by_class == {"other": 0, "1xx": 0, "2xx": 3, "3xx": 0, "4xx": 2, "5xx": 2}
    workers = {s.labels["worker"] for s in fams["cgunicorn_requests"].samples}
    assert workers == {"1", "2"}
    hist = {s.labels.get("le"): s.value for s in fams["cgunicorn_request_duration_seconds"].samples
            if s.name.endswith("_bucket")}
    count = [s.value for s in fams["cgunicorn_request_duration_seconds"].samples
             if s.name.endswith("_count")][0]
    # the app's six; the parser's 400 never reached it
    assert count == 6 and hist["+Inf"] == 6
    assert hist["0.005"] <= hist["10.0"] <= hist["+Inf"]
    conns = sum(s.value for s in fams["cgunicorn_worker_connections_accepted"].samples)
    assert conns == conns0 + 7
    assert [s.value for s in fams["cgunicorn_worker_connections_open"].samples] == [0, 0]
    threads = {s.labels["worker"]: s.value for s in fams["cgunicorn_worker_threads"].samples}
    assert threads == {"1": 3 if worker == "gthread" else 1, "2": 3 if worker == "gthread" else 1}
    pids = {int(s.value) for s in fams["cgunicorn_worker_pid"].samples}
    assert pids == set(srv.worker_pids())
    rss = [s.value for s in fams["cgunicorn_worker_resident_memory_bytes"].samples]
    assert len(rss) == 2 and all(v > 1 << 20 for v in rss)
    backlog = fams["cgunicorn_listener_backlog"].samples
    assert [(s.labels["listener"], s.value) for s in backlog] == [("http://" + srv.bind[0], 0)]
    limit = fams["cgunicorn_listener_backlog_limit"].samples
    assert limit[0].value == 2048


@pytest.mark.timeout(60)
def test_busy_time_and_in_flight_of_a_slow_request(cg, parser):
    srv, m = start(cg, parser, ["-k", "gthread", "--threads", "2"])
    done = []
    t = threading.Thread(target=lambda: done.append(
        requests.get(srv.url("/sleep?t=1.5"), timeout=30).status_code))
    t.start()
    m.wait(lambda: m.total("cgunicorn_requests_in_flight") == 1, "a request in flight")
    # the request in progress already counts as busy time, and it grows
    first = m.total("cgunicorn_worker_busy_seconds")
    m.wait(lambda: m.total("cgunicorn_worker_busy_seconds") > first, "busy time growing")
    t.join(30)
    assert done == [200]
    m.wait(lambda: m.total("cgunicorn_requests_in_flight") == 0, "no request in flight")
    busy = m.samples("cgunicorn_worker_busy_seconds")
    assert len(busy) == 2  # one series per thread
    assert 1.5 <= max(busy.values()) < 10 and min(busy.values()) < 0.5
    assert m.total("cgunicorn_request_duration_seconds", "cgunicorn_request_duration_seconds_sum") >= 1.5
    assert m.total("cgunicorn_request_duration_seconds", "cgunicorn_request_duration_seconds_bucket",
                   le="1.0") == 0


@pytest.mark.timeout(90)
def test_a_dead_worker_loses_nothing(cg, parser):
    srv, m = start(cg, parser, ["-w", "1"])
    for _ in range(5):
        assert requests.get(srv.url("/"), timeout=10).status_code == 200
    before = m.wait(lambda: m.total("cgunicorn_requests", status="2xx") == 5 and 5, "five")
    cpu_before = m.total("cgunicorn_worker_cpu_seconds")
    (old,) = srv.worker_pids()
    os.kill(old, signal.SIGKILL)
    srv.wait_workers(lambda p: len(p) == 1 and old not in p, 20, "a new worker")
    new = m.wait(lambda: [int(v) for v in m.samples("cgunicorn_worker_pid").values() if v
                          and int(v) != old], "the new worker's pid")
    assert set(new) == set(srv.worker_pids())
    assert m.total("cgunicorn_requests", status="2xx") == before
    assert m.total("cgunicorn_worker_restarts") == 1
    assert m.total("cgunicorn_worker_cpu_seconds") >= cpu_before
    assert requests.get(srv.url("/"), timeout=10).status_code == 200
    # counted once the response is out, so possibly just after the client has it
    m.wait(lambda: m.total("cgunicorn_requests", status="2xx") == before + 1, "one more")
    assert set(m.samples("cgunicorn_requests")) == set(
        m.samples("cgunicorn_requests", worker="1"))  # the same slot


@pytest.mark.timeout(90)
def test_timeouts_are_counted(cg, parser):
    srv, m = start(cg, parser, ["-w", "1", "--timeout", "1", "--graceful-timeout", "1"])
    (old,) = srv.worker_pids()
    try:
        requests.get(srv.url("/sleep?t=20"), timeout=30)
    except requests.RequestException:
        pass
    srv.wait_log(r"WORKER TIMEOUT \(pid:%d\)" % old, timeout=20)
    m.wait(lambda: m.total("cgunicorn_worker_timeouts") == 1, "one timeout")
    srv.wait_workers(lambda p: len(p) == 1 and old not in p, 20, "a new worker")
    m.wait(lambda: m.total("cgunicorn_worker_restarts") == 1, "one restart")
    assert m.total("cgunicorn_requests_in_flight") == 0


@pytest.mark.timeout(60)
def test_other_paths_and_methods(cg, parser):
    srv, m = start(cg, parser)
    base = m.url.rsplit("/", 1)[0]
    assert requests.get(base + "/", timeout=10).status_code == 404
    assert requests.get(m.url + "?name[]=x", timeout=10).status_code == 200
    r = requests.post(m.url, data=b"x", timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    r = requests.head(m.url, timeout=10)
    assert r.status_code == 200 and r.content == b"" and int(r.headers["Content-Length"]) > 100
    host, port = base[len("http://"):].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"\x16\x03\x01garbage\r\n\r\n")
        assert cgtest.read_until_close(s).startswith(b"HTTP/1.1 400 ")


@pytest.mark.timeout(60)
def test_idle_scrapers_do_not_hold_the_master(cg, parser):
    """Connections to the endpoint that never send a request cost the
    master nothing: it keeps managing workers (TTIN) and serves others."""
    srv, m = start(cg, parser, ["-w", "1"])
    host, port = m.url[len("http://"):].split("/")[0].split(":")
    idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(4)]
    try:
        srv.send_signal(signal.SIGTTIN)
        srv.wait_workers(lambda p: len(p) == 2, 20, "two workers")
        m.wait(lambda: m.total("cgunicorn_workers") == 2, "two workers in the metrics")
    finally:
        for s in idle:
            s.close()


@pytest.mark.timeout(60)
def test_unix_socket_endpoint_and_unix_listener(cg, parser, tmp_path):
    path = tmp_path / "metrics.sock"
    app_sock = tmp_path / "app.sock"
    srv = cg("wsgiapp:app", bind=["unix:%s" % app_sock], args=["--metrics-bind", "unix:%s" % path])
    srv.wait_log(r"Metrics at: unix:%s$" % path)
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        data = cgtest.read_until_close(s)
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK")
    fams = {f.name: f for f in parser(body.decode())}
    assert fams["cgunicorn_workers"].samples[0].value == 1
    assert fams["cgunicorn_listener_backlog"].samples == []  # no such figure for unix sockets
    srv.stop()
    assert not path.exists()


@pytest.mark.timeout(60)
def test_bad_and_busy_addresses(run_cg, cg, parser):
    res = run_cg(["--metrics-bind", "127.0.0.1:notaport", "--check-config", "echo:app"])
    assert res.returncode != 0
    assert "metrics_bind: 'notaport' is not a valid port number." in res.stderr
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        res = run_cg(["-b", "127.0.0.1:%d" % cgtest.free_port(), "--metrics-bind",
                      "127.0.0.1:%d" % taken.getsockname()[1], "echo:app"])
        assert res.returncode == 1
        assert "Connection in use: ('127.0.0.1', %d)" % taken.getsockname()[1] in res.stderr
    finally:
        taken.close()


@pytest.mark.timeout(120)
def test_endpoint_survives_usr2(cg, parser):
    srv, m = start(cg, parser, ["-w", "1"])
    assert requests.get(srv.url("/"), timeout=10).status_code == 200
    srv.send_signal(signal.SIGUSR2)
    new = cgtest.new_master(srv.pid, srv.log)
    os.kill(srv.pid, signal.SIGTERM)
    srv.wait_log(r"Master has been promoted\.", timeout=30)
    # the new master answers on the same endpoint, with its own counts
    m.wait(lambda: m.samples("cgunicorn_worker_pid") and
           set(int(v) for v in m.samples("cgunicorn_worker_pid").values())
           == {c.pid for c in new.children()}, "the new master's workers")
    assert m.total("cgunicorn_requests") == 0
    new.terminate()
    new.wait(30)


@pytest.mark.timeout(60)
def test_asgi_worker_counts_concurrent_requests(cg, parser):
    """-k asgi: one event loop serves many requests at once; in-flight counts
    each, and busy time runs while any is in progress."""
    srv, m = start(cg, parser, ["-k", "asgi"], app="asgi_basic:app")
    done = []

    def slow():
        done.append(requests.get(srv.url("/slow?s=1.5"), timeout=30).status_code)

    threads = [threading.Thread(target=slow) for _ in range(3)]
    for t in threads:
        t.start()
    m.wait(lambda: m.total("cgunicorn_requests_in_flight") == 3, "three requests in flight")
    for t in threads:
        t.join(30)
    assert done == [200, 200, 200]
    assert requests.get(srv.url("/raise"), timeout=10).status_code == 500
    m.wait(lambda: m.total("cgunicorn_requests") == 4, "four requests")
    assert m.total("cgunicorn_requests", status="2xx") == 3
    assert m.total("cgunicorn_requests", status="5xx") == 1
    m.wait(lambda: m.total("cgunicorn_requests_in_flight") == 0, "none in flight")
    # the loop was busy for the overlapping 1.5 s, not three times that
    busy = m.total("cgunicorn_worker_busy_seconds")
    assert 1.5 <= busy < 4.0, busy
    assert m.total("cgunicorn_worker_connections_accepted") >= 4
