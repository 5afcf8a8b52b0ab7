"""statsd_host: Gunicorn's Statsd metrics, received by real listeners on
loopback (UDP and a unix datagram socket). Workers batch their request
metrics, newline-separated, into few datagrams (statsd_flush_interval), a
timer line per request and the request counters summed per datagram; the
receivers split datagrams on newlines and add up counters as every StatsD
server does."""

import collections
import os
import re
import select
import socket
import threading
import time

import pytest
import requests

import cgtest

DURATION = r"gunicorn\.request\.duration:\d+\.\d+\|ms"


class Receiver:
    """A StatsD agent stand-in: a bound datagram socket read by a thread as
    fast as datagrams come (a unix datagram socket queues only
    net.unix.max_dgram_qlen of them, 10 by default; what the server cannot
    queue it drops rather than wait). `packets` keeps each datagram with
    when it arrived, `lines` the metrics, each datagram split on newlines."""

    def __init__(self, family=socket.AF_INET, path=None):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_UNIX:
            self.sock.bind(path)
            self.address = "unix:%s" % path
        else:
            self.sock.bind(("127.0.0.1", 0))
            self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.lines = []
        self.packets = []  # (time.monotonic(), datagram text)
        self.cond = threading.Condition()
        self.stop_r, self.stop_w = os.pipe()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            r, _, _ = select.select([self.sock, self.stop_r], [], [])
            if self.stop_r in r:
                return
            data = self.sock.recv(65536).decode("ascii")
            with self.cond:
                self.packets.append((time.monotonic(), data))
                self.lines.extend(data.split("\n"))
                self.cond.notify_all()

    def _wait(self, tally, want, timeout):
        """Wait until tally() reaches each count of want; returns it."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = tally()
                if all(got[k] >= n for k, n in want.items()):
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("statsd never got %r; got %r" % (want, self.lines))
                self.cond.wait(left)

    def wait_for(self, want, timeout=10.0):
        """Wait until each regex of want (pattern -> count) matched at least
        that many lines; returns the Counter of full-match counts."""
        return self._wait(lambda: self.counts(want), want, timeout)

    def counts(self, patterns):
        got = collections.Counter()
        for line in list(self.lines):
            for p in patterns:
                if re.fullmatch(p, line):
                    got[p] += 1
        return got

    def sums(self):
        """Counter lines summed by name (tags kept): what a StatsD agent
        adds up over its flush interval."""
        got = collections.Counter()
        for line in list(self.lines):
            m = re.fullmatch(r"([^:|]+):(\d+)\|c\|@1\.0(\|#.*)?", line)
            if m:
                got[m.group(1) + (m.group(3) or "")] += int(m.group(2))
        return got

    def wait_sums(self, want, timeout=10.0):
        """Wait until each counter of want (name -> total) added up to at
        least that; returns sums()."""
        return self._wait(self.sums, want, timeout)

    def settle(self, quiet=0.3):
        """Give a stray datagram the chance to arrive before a test asserts
        there is none: the expected ones have all been seen, so this only
        bounds how long an unexpected one may trail them."""
        deadline = time.monotonic() + quiet
        with self.cond:
            n = len(self.lines)
            while len(self.lines) == n and time.monotonic() < deadline:
                self.cond.wait(deadline - time.monotonic())

    def close(self):
        os.write(self.stop_w, b"x")
        self.thread.join(5)
        self.sock.close()
        os.close(self.stop_r)
        os.close(self.stop_w)


@pytest.fixture
def udp():
    r = Receiver()
    yield r
    r.close()


# per worker kind: an app, and a path it answers 200
APP = {"sync": ("wsgiapp:app", "/"), "gthread": ("wsgiapp:app", "/"),
       "asgi": ("asgi_basic:app", "/scope")}


def _mix(srv, ok="/"):
    for _ in range(3):
        assert requests.get(srv.url(ok), timeout=10).status_code == 200
    assert requests.get(srv.url("/nope"), timeout=10).status_code == 404


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker", ["sync", "gthread", "asgi"])
def test_udp_request_mix_prefix_and_tags(cg, udp, worker):
    app, ok = APP[worker]
    srv = cg(app, args=["-k", worker, "--statsd-host", udp.address,
                                   "--statsd-prefix", "web", "--dogstatsd-tags", "env:test,a:b"])
    _mix(srv, ok)
    t = "|#env:test,a:b"
    lines = {r"web\.gunicorn\.workers:1\|g" + re.escape(t): 1, r"web\." + DURATION + re.escape(t): 4}
    sums = {"web.gunicorn.requests" + t: 4, "web.gunicorn.request.status.200" + t: 3,
            "web.gunicorn.request.status.404" + t: 1}
    udp.wait_for(lines)
    udp.wait_sums(sums)
    udp.settle()
    assert udp.counts(lines) == lines
    assert udp.sums() == sums
    assert all(re.fullmatch(p, line) for line in udp.lines
               for p in [r"web\.gunicorn\.(workers:1\|g|request\.duration:.*\|ms|"
                         r"requests:\d+\|c\|@1\.0|request\.status\.\d+:\d+\|c\|@1\.0)"
                         + re.escape(t)]), udp.lines
    _timers_then_counters(udp)


def _timers_then_counters(rcv):
    """Within each datagram of request metrics, the timer lines (one per
    request) come first, the summed counters after them."""
    with rcv.cond:
        packets = [p for _, p in rcv.packets if "request" in p]
    assert packets
    for p in packets:
        kinds = ["t" if "|ms" in line else "c" for line in p.split("\n")]
        assert "".join(kinds) == "t" * kinds.count("t") + "c" * kinds.count("c"), p


@pytest.mark.timeout(60)
def test_unix_datagram_receiver_with_dotted_prefix(cg, tmp_path):
    rcv = Receiver(socket.AF_UNIX, str(tmp_path / "statsd.sock"))
    try:
        srv = cg("wsgiapp:app", args=["-k", "gthread", "--threads", "4", "-w", "2",
                                       "--statsd-host", rcv.address, "--statsd-prefix", "app.."])
        _mix(srv)
        lines = {r"app\.gunicorn\.workers:2\|g": 1, r"app\." + DURATION: 4}
        sums = {"app.gunicorn.requests": 4, "app.gunicorn.request.status.200": 3,
                "app.gunicorn.request.status.404": 1}
        rcv.wait_for(lines)
        rcv.wait_sums(sums)
        rcv.settle()
        assert rcv.counts(lines) == lines
        assert rcv.sums() == sums, rcv.lines
    finally:
        rcv.close()


@pytest.mark.timeout(60)
def test_workers_gauge_follows_ttin_ttou(cg, udp):
    import signal
    srv = cg("wsgiapp:app", args=["-w", "2", "--statsd-host", udp.address])
    udp.wait_for({r"gunicorn\.workers:2\|g": 1})
    srv.send_signal(signal.SIGTTIN)
    udp.wait_for({r"gunicorn\.workers:3\|g": 1})
    srv.send_signal(signal.SIGTTOU)
    udp.wait_for({r"gunicorn\.workers:2\|g": 2})


@pytest.mark.timeout(60)
def test_log_counters_and_hook_extras(cg, udp, tmp_path):
    conf = tmp_path / "c.py"
    conf.write_text(
        "def when_ready(server):\n"
        "    server.log.info('', extra={'metric': 'custom.ready', 'value': 7, 'mtype': 'gauge'})\n"
        "    server.log.debug('x', extra={'metric': 'custom.h', 'value': 1.5,"
        " 'mtype': 'histogram'})\n"
        "    server.log.log(20, 'y', extra={'metric': 'custom.c', 'value': 2,"
        " 'mtype': 'counter'})\n"
        "    server.log.info('t', extra={'metric': 'custom.t', 'value': 3, 'mtype': 'timer'})\n"
        "    server.log.info('n', extra={'metric': 'custom.none', 'value': 3, 'mtype': 'bogus'})\n"
        "    server.log.warning('careful')\n"
        "    server.log.error('bad')\n"
        "    server.log.critical('worse')\n"
        "    try:\n"
        "        1 / 0\n"
        "    except ZeroDivisionError:\n"
        "        server.log.exception('oops')\n")
    srv = cg("wsgiapp:app", args=["-c", str(conf), "--statsd-host", udp.address,
                                   "--statsd-prefix", "s", "--log-level", "critical"],
             workers=0)  # no "Booting worker" lines to wait for at this level
    # an exception in the app: Gunicorn's log.exception("Error handling
    # request ...") and a 500
    assert requests.get(srv.url("/error"), timeout=10).status_code == 500
    want = {
        r"scustom\.ready:7\|g": 1,
        r"scustom\.h:1\.5\|h": 1,
        r"scustom\.c:2\|c\|@1\.0": 1,
        r"scustom\.t:3\|ms": 1,
        r"sgunicorn\.log\.warning:1\|c\|@1\.0": 1,
        r"sgunicorn\.log\.error:1\|c\|@1\.0": 1,
        r"sgunicorn\.log\.critical:1\|c\|@1\.0": 1,
        r"sgunicorn\.log\.exception:1\|c\|@1\.0": 2,
        r"sgunicorn\.request\.status\.500:1\|c\|@1\.0": 1,
    }
    udp.wait_for(want)
    udp.settle()
    assert udp.counts(want) == want, udp.lines
    assert not any("custom.none" in line for line in udp.lines)
    # the level filters the records, not the counters; the one-character
    # prefix "s" gets no dot (Gunicorn's rule)
    log = srv.log()
    assert "worse" in log and "careful" not in log and "oops" not in log


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["udp", "unix"])
def test_absent_receiver_does_not_break_serving(cg, tmp_path, kind):
    if kind == "udp":
        host = "127.0.0.1:%d" % cgtest.free_port()  # nobody listens there
    else:
        host = "unix:%s" % (tmp_path / "nobody.sock")
    srv = cg("wsgiapp:app", args=["-k", "gthread", "--statsd-host", host])
    pids = set(srv.worker_pids())
    with requests.Session() as s:
        for _ in range(200):
            assert s.get(srv.url("/"), timeout=10).status_code == 200
    assert set(srv.worker_pids()) == pids
    assert "Traceback" not in srv.log() and "statsd" not in srv.log()


@pytest.mark.timeout(60)
def test_unresolvable_host_warns_and_serves(cg):
    srv = cg("wsgiapp:app", args=["--statsd-host", "no-such-host.invalid:8125"])
    srv.wait_log(r"\[WARNING\] statsd: cannot resolve no-such-host\.invalid:8125: .*"
                 r"no metrics will be sent")
    assert requests.get(srv.url("/"), timeout=10).status_code == 200


@pytest.mark.timeout(60)
def test_backlog_metric(cg, udp):
    srv = cg("wsgiapp:app", args=["--statsd-host", udp.address, "--enable-backlog-metric",
                                   "--log-level", "debug"])
    udp.wait_for({r"gunicorn\.backlog:\d+\|h": 2})
    srv.wait_log(r"\[DEBUG\] socket backlog: \d+")


# ---- batching (statsd_flush_interval) ------------------------------------------

def _request_lines(n):
    return {
        DURATION: n,
        r"gunicorn\.requests:1\|c\|@1\.0": n,
        r"gunicorn\.request\.status\.200:1\|c\|@1\.0": n,
    }


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["udp", "unix"])
def test_many_requests_batched_within_packet_size(cg, tmp_path, kind):
    rcv = (Receiver() if kind == "udp"
           else Receiver(socket.AF_UNIX, str(tmp_path / "statsd.sock")))
    # an agent on loopback (UDP or unix) has no MTU to respect: 8 KiB
    # datagrams (the 1432 bytes of UDP to another host: tests/unit)
    limit = 8192
    try:
        # a long interval: only the packet size splits them, however slowly
        # a loaded machine serves
        srv = cg("wsgiapp:app", args=["-k", "gthread", "--threads", "4", "--statsd-host",
                                       rcv.address, "--statsd-flush-interval", "10000",
                                       "--max-requests", "0"])
        n = 200
        with requests.Session() as s:
            for _ in range(n):
                assert s.get(srv.url("/"), timeout=10).status_code == 200
        srv.stop()  # the worker's exit sends the rest
        rcv.wait_for({DURATION: n})
        rcv.wait_sums({"gunicorn.requests": n, "gunicorn.request.status.200": n})
        assert rcv.counts({DURATION: n}) == {DURATION: n}
        assert rcv.sums() == {"gunicorn.requests": n, "gunicorn.request.status.200": n}
        with rcv.cond:
            packets = [p for _, p in rcv.packets if "request" in p]
        assert all(len(p.encode()) <= limit for p in packets), [len(p) for p in packets]
        # one timer line of about 40 bytes a request, the counters once a
        # datagram (three lines a request would need over 3 n / 10)
        assert len(packets) < n / 10, len(packets)
        _timers_then_counters(rcv)
    finally:
        rcv.close()


@pytest.mark.timeout(60)
def test_line_longer_than_a_packet_goes_alone(cg, udp):
    prefix = "p" * 1500  # each metric alone exceeds 1432 bytes
    srv = cg("wsgiapp:app", args=["-k", "gthread", "--statsd-host", udp.address,
                                   "--statsd-prefix", prefix])
    with requests.Session() as s:
        for _ in range(3):
            assert s.get(srv.url("/"), timeout=10).status_code == 200
    want = {prefix + r"\." + k: v for k, v in _request_lines(3).items()}
    udp.wait_for(want)
    with udp.cond:
        assert all("\n" not in p for _, p in udp.packets)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker", ["sync", "gthread", "asgi"])
def test_lone_request_sent_within_interval(cg, udp, worker):
    # the sync worker's idle wait would be timeout / 2 = 60 s, the gthread
    # and asgi loops' ticks 1 s: only the flush deadline sends these in time
    app, ok = APP[worker]
    srv = cg(app, args=["-k", worker, "--statsd-host", udp.address,
                        "--statsd-flush-interval", "300", "--timeout", "120"])
    assert requests.get(srv.url(ok), timeout=10).status_code == 200
    done = time.monotonic()
    udp.wait_for(_request_lines(1), timeout=5.0)
    with udp.cond:
        arrived = [t for t, p in udp.packets if "request.duration" in p][0]
    # 300 ms plus what a loaded 2-core machine may add
    assert arrived - done < 3.0, arrived - done


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["max_requests", "TERM", "QUIT"])
def test_buffered_metrics_sent_at_worker_exit(cg, udp, how):
    import signal
    args = ["-k", "gthread", "--statsd-host", udp.address, "--statsd-flush-interval", "10000"]
    if how == "max_requests":
        args += ["--max-requests", "1"]
    srv = cg("wsgiapp:app", args=args)
    assert requests.get(srv.url("/"), timeout=10).status_code == 200
    if how != "max_requests":
        srv.stop(getattr(signal, "SIG" + how))
    # well before the 10 s interval: the exiting worker sent them
    udp.wait_for(_request_lines(1), timeout=8.0)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_interval_zero_sends_one_metric_per_datagram(cg, udp, worker):
    srv = cg("wsgiapp:app", args=["-k", worker, "--statsd-host", udp.address,
                                   "--statsd-flush-interval", "0"])
    _mix(srv)
    want = _request_lines(3)
    want[r"gunicorn\.request\.status\.404:1\|c\|@1\.0"] = 1
    want[DURATION] = want[r"gunicorn\.requests:1\|c\|@1\.0"] = 4
    udp.wait_for(want)
    with udp.cond:
        assert all("\n" not in p for _, p in udp.packets), udp.packets
        assert len(udp.packets) == len(udp.lines)


# ---- beside Gunicorn itself ----------------------------------------------------

def _shape(line):
    """A metric line with its value blanked: name, type, rate and tags."""
    return re.sub(r":[0-9.]+\|", ":V|", line)


def _gunicorn_metrics(tmp_path, rcv):
    """Gunicorn (Debian's, where installed) serving wsgiapp:app with the
    request mix sent to rcv; skips where it is not installed."""
    import subprocess
    import sys
    try:
        import gunicorn  # noqa: F401  (only whether it is there)
    except ImportError:
        pytest.skip("Gunicorn is not installed beside the tests")
    port = cgtest.free_port()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-b", "127.0.0.1:%d" % port,
                             "--statsd-host", rcv.address, "wsgiapp:app"],
                            cwd=cgtest.APPS_DIR, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(str(tmp_path / "gunicorn.log"), "w"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get("http://127.0.0.1:%d/" % port, timeout=5)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
                assert time.monotonic() < deadline, "Gunicorn never answered"
                time.sleep(0.1)
        url = lambda p: "http://127.0.0.1:%d%s" % (port, p)  # noqa: E731
        for _ in range(2):  # with the probe above: three 200s
            assert requests.get(url("/"), timeout=10).status_code == 200
        assert requests.get(url("/nope"), timeout=10).status_code == 404
        rcv.wait_for({DURATION: 4})
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.timeout(120)
def test_same_metrics_as_gunicorn(cg, tmp_path):
    theirs = Receiver()
    try:
        _gunicorn_metrics(tmp_path, theirs)
        theirs.settle()
        g_lines = [x for x in theirs.lines if "request" in x]
        g_gauges = {_shape(x) for x in theirs.lines if "request" not in x}
        g_sums = theirs.sums()
    finally:
        theirs.close()
    # Gunicorn's exact datagrams, one metric each: the same lines
    per = Receiver()
    try:
        srv = cg("wsgiapp:app", args=["--statsd-host", per.address,
                                       "--statsd-flush-interval", "0"])
        _mix(srv)
        per.wait_for({DURATION: 4})
        per.settle()
        ours = [x for x in per.lines if "request" in x]
        assert collections.Counter(map(_shape, ours)) == \
            collections.Counter(map(_shape, g_lines))
        assert all("\n" not in p for _, p in per.packets)
        assert {_shape(x) for x in per.lines if "request" not in x} <= g_gauges
        assert per.sums() == g_sums
    finally:
        per.close()
    # batched (the default): the same names, types and totals
    bat = Receiver()
    try:
        srv = cg("wsgiapp:app", args=["--statsd-host", bat.address])
        _mix(srv)
        bat.wait_for({DURATION: 4})
        bat.wait_sums({"gunicorn.requests": 4})
        bat.settle()
        assert {_shape(x) for x in bat.lines if "request" in x} == set(map(_shape, g_lines))
        assert bat.sums() == g_sums
    finally:
        bat.close()
