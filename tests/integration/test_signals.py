"""Master signals: TERM (graceful), INT (quick), a killed worker is
replaced, TTIN/TTOU change the number of workers."""

import os
import signal
import threading
import time

import pytest
import requests


def _background_get(url, timeout=30):
    box = {}

    def run():
        try:
            box["response"] = requests.get(url, timeout=timeout)
        except requests.RequestException as e:
            box["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


@pytest.mark.timeout(60)
def test_term_is_graceful_for_inflight_request(cg):
    srv = cg("wsgiapp:app", args=["-w", "1"])
    t, box = _background_get(srv.url("/sleep?t=2"))
    time.sleep(0.7)     # the request is now inside the app
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    t.join(20)
    assert not t.is_alive()
    assert "error" not in box, box.get("error")
    r = box["response"]
    assert r.status_code == 200 and r.text == "slept 2.0"
    rc = srv.wait_exit(20)
    assert rc == 0, srv.log()
    assert time.monotonic() - t0 < 15
    srv.wait_log(r"\[INFO\] Handling signal: term$")
    srv.wait_log(r"\[INFO\] Shutting down: Master$")


@pytest.mark.timeout(60)
def test_int_is_quick(cg):
    srv = cg("wsgiapp:app", args=["-w", "2"])
    t, box = _background_get(srv.url("/sleep?t=20"))
    time.sleep(0.7)
    t0 = time.monotonic()
    srv.send_signal(signal.SIGINT)
    rc = srv.wait_exit(10)
    elapsed = time.monotonic() - t0
    assert rc == 0, srv.log()
    assert elapsed < 5, elapsed
    t.join(10)
    r = box.get("response")
    assert r is None or r.text != "slept 20.0", "quick shutdown waited for the request"
    srv.wait_log(r"\[INFO\] Handling signal: int$")
    srv.wait_log(r"\[INFO\] Shutting down: Master$")


@pytest.mark.timeout(60)
def test_killed_worker_is_replaced(cg):
    srv = cg("wsgiapp:app", args=["-w", "2"])
    before = srv.worker_pids()
    assert len(before) == 2
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    after = srv.wait_workers(lambda p: len(p) == 2 and victim not in p, 2.0,
                             "replacement of a SIGKILLed worker")
    (new,) = after - before
    srv.wait_log(r"\[ERROR\] Worker \(pid:%d\) was sent SIGKILL! Perhaps out of memory\?$" % victim)
    srv.wait_log(r"\[%d\] \[INFO\] Booting worker with pid: %d$" % (new, new))
    for _ in range(6):
        assert requests.get(srv.url("/"), timeout=10).status_code == 200
    assert srv.alive()


@pytest.mark.timeout(60)
def test_ttin_ttou(cg):
    srv = cg("wsgiapp:app", args=["-w", "2"])
    first = srv.booted_pids()
    assert len(first) == 2
    srv.send_signal(signal.SIGTTIN)
    three = srv.wait_workers(lambda p: len(p) == 3, 5.0, "3 workers after TTIN")
    srv.wait_log(r"\[INFO\] Handling signal: ttin$")
    srv.wait_log(r"Booting worker with pid", count=3)
    srv.send_signal(signal.SIGTTOU)
    two = srv.wait_workers(lambda p: len(p) == 2, 5.0, "2 workers after TTOU")
    srv.wait_log(r"\[INFO\] Handling signal: ttou$")
    # the oldest worker is the one retired
    oldest = first[0]
    assert oldest not in two
    assert two < three
    srv.wait_log(r"\[%d\] \[INFO\] Worker exiting \(pid: %d\)$" % (oldest, oldest))
    # TTOU never goes below one worker
    srv.send_signal(signal.SIGTTOU)
    srv.wait_workers(lambda p: len(p) == 1, 5.0, "1 worker after a second TTOU")
    srv.send_signal(signal.SIGTTOU)
    srv.wait_log(r"\[INFO\] Handling signal: ttou$", count=3)
    time.sleep(1.0)
    assert len(srv.worker_pids()) == 1
    assert requests.get(srv.url("/"), timeout=10).status_code == 200
