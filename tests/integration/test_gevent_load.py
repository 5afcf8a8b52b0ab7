"""-k gevent under load while the master reloads (HUP) and scales
(TTIN/TTOU): test_arbiter_load.py's claims for the gevent worker. 64
concurrent connections on loopback for 20 s (CG_LOAD_SECONDS) against 4
gevent workers; no request may be lost (refused, reset, timed out, or not
a 200). gevent comes from the test-site (tests/requirements.txt)."""

import os
import re
import signal
import time

import pytest
import requests

import cgtest
from cgtest import Load

LOAD_SECONDS = float(os.environ.get("CG_LOAD_SECONDS", "20"))
CONNS = 64
WORKERS = "4"
HUPS = 10
SCALINGS = 20

# as in test_gevent.py: greenlet's stack copies under ASan
ENV = ({"ASAN_OPTIONS": os.environ["ASAN_OPTIONS"]
        + ":detect_stack_use_after_return=1:replace_intrin=0"}
       if "ASAN_OPTIONS" in os.environ else None)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return cgtest.pinned_site(tmp_path_factory.mktemp("gevent-load-site"), "gevent", "greenlet",
                              "zope.event", "zope.interface")


def gevent_server(cg, site, *more):
    return cg("wsgiapp:app", args=["-k", "gevent", "-w", WORKERS, "--pythonpath", site]
              + list(more), env=ENV)


def _run_load(srv, name, during):
    load = Load(srv.port, conns=CONNS).start()
    time.sleep(1.0)
    t0 = time.monotonic()
    during()
    left = LOAD_SECONDS - (time.monotonic() - t0)
    if left > 0:
        time.sleep(left)
    load.stop()
    load.report(name)
    assert load.ok > 100, "the load generator made no progress"
    return load


@pytest.mark.timeout(LOAD_SECONDS + 300)
def test_gevent_hup_under_load_loses_nothing(cg, site):
    srv = gevent_server(cg, site)
    before = srv.worker_pids()

    def hups():
        gap = (LOAD_SECONDS - 2) / HUPS
        old = set(before)
        for i in range(HUPS):
            srv.send_signal(signal.SIGHUP)
            srv.wait_log(r"\[INFO\] Hang up: Master$", count=i + 1, timeout=20)
            # the next HUP once the new generation serves: the old one stops
            # accepting at once, and HUPs coming faster than a gevent worker
            # boots (monkey-patching, the app's import: seconds under ASan
            # on a loaded machine) would retire each generation before it
            # accepts, leaving the backlog to wait (as in Gunicorn)
            deadline = time.monotonic() + 60
            while int(requests.get(srv.url("/pid"), timeout=60).text) in old:
                assert time.monotonic() < deadline, "no new worker answers"
            old |= srv.worker_pids()
            time.sleep(gap)

    load = _run_load(srv, "gevent HUP x%d" % HUPS, hups)
    assert load.failed == 0, load.failures
    after = srv.wait_workers(lambda p: len(p) == 4 and not (p & before), 30)
    assert not (after & before)
    assert len(re.findall(r"\[INFO\] Hang up: Master$", srv.log(), re.M)) == HUPS


@pytest.mark.timeout(LOAD_SECONDS + 90)
def test_gevent_ttin_ttou_under_load_loses_nothing(cg, site):
    srv = gevent_server(cg, site)
    sigs = [signal.SIGTTIN, signal.SIGTTIN, signal.SIGTTOU, signal.SIGTTOU] * (SCALINGS // 4)

    def scale():
        gap = (LOAD_SECONDS - 2) / len(sigs)
        for i, sig in enumerate(sigs):
            srv.send_signal(sig)
            # one at a time: two alike sent while the master has signals
            # blocked would be merged by the kernel
            srv.wait_log(r"Handling signal: tt(in|ou)$", count=i + 1, timeout=20)
            time.sleep(gap)

    load = _run_load(srv, "gevent TTIN/TTOU x%d" % len(sigs), scale)
    assert load.failed == 0, load.failures
    srv.wait_workers(lambda p: len(p) == 4, 30)
    assert len(re.findall(r"Handling signal: tt(in|ou)$", srv.log(), re.M)) == SCALINGS
