"""The dirty IPC with large values (docs/dirty.md, "IPC"): bytes,
bytearray, memoryview and containers of them as arguments, results and
stream chunks, from gthread and asgi callers; a value that does not pickle
and a dirty worker killed in the middle of a transfer give the caller a
DirtyError and the next call works (apps/dirty_io_app.py)."""
import json
import os
import signal
import threading
import time
import urllib.request

import psutil
import pytest

APP = "dirty_io_app:IOApp"
CALL_TIMEOUT = 120.0


def get(srv, path, args=None):
    url = srv.url(path)
    if args is not None:
        url += "?" + urllib.request.quote(json.dumps(list(args)))
    with urllib.request.urlopen(url, timeout=CALL_TIMEOUT) as r:
        return json.loads(r.read())


def start(cg, kind, *extra):
    app = "dirty_io_app:asgi_app" if kind == "asgi" else "dirty_io_app:app"
    args = ["-k", kind, "--dirty-app", APP, "--dirty-workers", "1", *extra]
    if kind == "gthread":
        args += ["--threads", "4"]
    srv = cg(app, args=args)
    srv.wait_log(r"Dirty worker \d+ loaded %s$" % APP, timeout=60)
    return srv


@pytest.fixture(scope="module", params=["gthread", "asgi"])
def server(request, cg_module):
    srv = start(cg_module, request.param)
    yield request.param, srv
    srv.stop()


CASES = ["bytes", "bytearray", "memoryview", "memoryview_rw", "memoryview_strided", "nested",
         "cycle", "many", "small"]


@pytest.mark.parametrize("case", CASES)
def test_large_values_both_ways(server, case):
    kind, srv = server
    r = get(srv, "/case/" + case)
    # what the dirty app got, and what came back to the caller, is what was
    # sent: types (a memoryview arrives as bytes, or bytearray when it was
    # writable), lengths, content digests, shared and cyclic containers
    assert r["seen"] == r["expected"], r
    assert r["back"] == r["expected"], r


def test_large_values_types(server):
    _, srv = server
    t, n, _ = get(srv, "/case/bytes")["back"]
    assert (t, n) == ("bytes", 10 << 20)
    assert get(srv, "/case/bytearray")["back"][:2] == ["bytearray", 10 << 20]
    assert get(srv, "/case/memoryview")["back"][:2] == ["bytes", 3 << 20]
    assert get(srv, "/case/memoryview_rw")["back"][:2] == ["bytearray", 3 << 20]
    assert get(srv, "/case/memoryview_strided")["back"][:2] == ["bytes", 2 << 20]
    nested = get(srv, "/case/nested")["back"]
    # s1 and s2 were one list: still one on the other side
    assert nested[1]["s1"][0] == "list" and nested[1]["s2"][0] == "ref"
    cycle = get(srv, "/case/cycle")["back"]
    assert cycle == ["list", [cycle[1][0], ["ref", 0]]]


def test_streaming_large_chunks(server):
    _, srv = server
    r = get(srv, "/stream/3/4")
    assert len(r["got"]) == 9
    assert r["got"] == r["expected"]
    assert [c[0] for c in r["got"][:3]] == ["bytes", "str", "bytearray"]


def test_keyword_arguments(cg):
    srv = start(cg, "gthread")
    try:
        r = get(srv, "/case/kwargs")
        assert r["seen"] == r["expected"]
        assert r["seen"][1]["data"][:2] == ["bytes", 2 << 20]
    finally:
        srv.stop()


def test_values_that_do_not_pickle(cg):
    srv = start(cg, "gthread")
    try:
        pid = get(srv, "/call/pid")["ok"]
        r = get(srv, "/call/unpicklable")
        assert r["error"] == "DirtyAppError" and "pickle" in r["message"], r
        r = get(srv, "/case/unpicklable_arg")
        assert r["error"] == "DirtyProtocolError" and "pickle" in r["message"], r
        # a stream whose second chunk does not pickle: the first arrives whole
        r = get(srv, "/call/bad_stream")
        assert r["error"] == "DirtyAppError", r
        assert [c[:2] for c in r["got"]] == [["bytes", 2 << 20]]
        # nothing was left half-sent: the same worker serves the next calls
        assert get(srv, "/call/pid")["ok"] == pid
        r = get(srv, "/case/bytes")
        assert r["back"] == r["expected"]
    finally:
        srv.stop()


def threads_waiting_in(pid, what):
    """Whether a thread of pid sleeps in a kernel function whose name holds
    what (/proc/PID/task/TID/wchan)."""
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return False
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/wchan" % (pid, tid)) as f:
                if what in f.read():
                    return True
        except OSError:
            pass
    return False


def wait_for(pred, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.005)
    raise AssertionError("timed out waiting for " + what)


class Call(threading.Thread):
    """An HTTP request in the background."""

    def __init__(self, srv, path, args=None):
        super().__init__(daemon=True)
        self.srv, self.path, self.args, self.result = srv, path, args, None

    def run(self):
        self.result = get(self.srv, self.path, self.args)


def http_worker(srv, dirty_worker):
    dirty_arbiter = psutil.Process(dirty_worker).ppid()
    (pid,) = srv.worker_pids() - {dirty_arbiter}
    return pid


def test_dirty_worker_killed_while_sending_a_result(cg):
    srv = start(cg, "gthread")
    try:
        victim = get(srv, "/call/pid")["ok"]
        caller = http_worker(srv, victim)
        call = Call(srv, "/call/slow_blob", [64, 2.0])
        call.start()
        # once the request is sent the caller waits for the answer in poll()
        # (its gthread loop waits in epoll); stopped there, it reads nothing,
        # so the 64 MB answer fills the socket and the dirty worker blocks
        # sending it
        wait_for(lambda: threads_waiting_in(caller, "poll_schedule"), timeout=20,
                 what="the caller waiting for the answer")
        os.kill(caller, signal.SIGSTOP)
        try:
            # (less than the HTTP worker's timeout, 30 s: stopped, it does
            # not beat its heartbeat)
            wait_for(lambda: threads_waiting_in(victim, "send"), timeout=20,
                     what="the dirty worker blocked sending")
            os.kill(victim, signal.SIGKILL)
        finally:
            os.kill(caller, signal.SIGCONT)
        call.join(CALL_TIMEOUT)
        assert call.result["error"] == "DirtyWorkerError", call.result
        srv.wait_log(r"Dirty worker \d+ loaded %s$" % APP, count=2, timeout=60)
        new = get(srv, "/call/pid")["ok"]
        assert new != victim
        r = get(srv, "/case/bytes")
        assert r["back"] == r["expected"]
    finally:
        srv.stop()


def test_dirty_worker_killed_with_a_large_argument_queued(cg):
    srv = start(cg, "gthread")
    try:
        victim = get(srv, "/call/pid")["ok"]
        caller = http_worker(srv, victim)
        # the dirty worker is stopped: the call's connection waits in the
        # app socket's accept queue and the caller blocks sending its 64 MB
        # argument into it (in poll(): its socket has a timeout; 64 MB
        # cannot all fit in the socket's buffer)
        os.kill(victim, signal.SIGSTOP)
        try:
            call = Call(srv, "/bigarg/64")
            call.start()
            wait_for(lambda: threads_waiting_in(caller, "poll_schedule"), timeout=20,
                     what="the caller blocked sending")
        finally:
            os.kill(victim, signal.SIGKILL)
        # the socket belongs to the app, not to the dead worker: its
        # replacement accepts the call and reads the whole argument
        call.join(CALL_TIMEOUT)
        assert call.result == {"ok": 64 << 20}, call.result
        assert get(srv, "/call/pid")["ok"] != victim
    finally:
        srv.stop()
