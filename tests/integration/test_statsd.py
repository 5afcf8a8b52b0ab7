"""statsd_host: Gunicorn's Statsd metrics, received by real listeners on
loopback (UDP and a unix datagram socket)."""

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
    queue it drops rather than wait)."""

    def __init__(self, family=socket.AF_INET, path=None):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_UNIX:
            self.sock.bind(path)
            self.address = "unix:%s" % path
        else:
            self.sock.bind(("127.0.0.1", 0))
            self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.lines = []
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
                self.lines.append(data)
                self.cond.notify_all()

    def wait_for(self, want, timeout=10.0):
        """Wait until each regex of want (pattern -> count) matched at least
        that many datagrams; returns the Counter of full-match counts."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = self.counts(want)
                if all(got[p] >= n for p, n in want.items()):
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("statsd never got %r; got %r" % (want, self.lines))
                self.cond.wait(left)

    def counts(self, patterns):
        got = collections.Counter()
        for line in list(self.lines):
            for p in patterns:
                if re.fullmatch(p, line):
                    got[p] += 1
        return got

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


def _mix(srv):
    for _ in range(3):
        assert requests.get(srv.url("/"), timeout=10).status_code == 200
    assert requests.get(srv.url("/nope"), timeout=10).status_code == 404


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_udp_request_mix_prefix_and_tags(cg, udp, worker):
    srv = cg("wsgiapp:app", args=["-k", worker, "--statsd-host", udp.address,
                                   "--statsd-prefix", "web", "--dogstatsd-tags", "env:test,a:b"])
    _mix(srv)
    t = r"\|#env:test,a:b"
    want = {
        r"web\.gunicorn\.workers:1\|g" + t: 1,
        r"web\." + DURATION + t: 4,
        r"web\.gunicorn\.requests:1\|c\|@1\.0" + t: 4,
        r"web\.gunicorn\.request\.status\.200:1\|c\|@1\.0" + t: 3,
        r"web\.gunicorn\.request\.status\.404:1\|c\|@1\.0" + t: 1,
    }
    udp.wait_for(want)
    udp.settle()
    assert udp.counts(want) == want
    assert len(udp.lines) == sum(want.values()), udp.lines
    # Gunicorn's order per request: duration, requests, status
    first = [i for i, line in enumerate(udp.lines) if "request.duration" in line][0]
    assert "gunicorn.requests:" in udp.lines[first + 1]
    assert "request.status." in udp.lines[first + 2]


@pytest.mark.timeout(60)
def test_unix_datagram_receiver_with_dotted_prefix(cg, tmp_path):
    rcv = Receiver(socket.AF_UNIX, str(tmp_path / "statsd.sock"))
    try:
        srv = cg("wsgiapp:app", args=["-k", "gthread", "--threads", "4", "-w", "2",
                                       "--statsd-host", rcv.address, "--statsd-prefix", "app.."])
        _mix(srv)
        want = {
            r"app\.gunicorn\.workers:2\|g": 1,
            r"app\." + DURATION: 4,
            r"app\.gunicorn\.requests:1\|c\|@1\.0": 4,
            r"app\.gunicorn\.request\.status\.200:1\|c\|@1\.0": 3,
            r"app\.gunicorn\.request\.status\.404:1\|c\|@1\.0": 1,
        }
        rcv.wait_for(want)
        rcv.settle()
        assert rcv.counts(want) == want
        assert len(rcv.lines) == sum(want.values()), rcv.lines
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
