"""Dirty arbiters (dirty_apps, dirty_workers): Gunicorn's dirty-arbiter
examples served by a real server, called from gthread and asgi workers
(apps/dirty_app.py)."""
import json
import os
import re
import signal
import time
import urllib.request

import psutil
import pytest

import cgtest

CALL_TIMEOUT = 60.0


def call(srv, path, action, *args):
    url = srv.url("/%s/%s" % (path, action))
    if args:
        url += "?" + urllib.request.quote(json.dumps(list(args)))
    with urllib.request.urlopen(url, timeout=CALL_TIMEOUT) as r:
        return json.loads(r.read())


def dirty_arbiter_pid(srv):
    m = srv.wait_log(r"Spawned dirty arbiter \(pid: (\d+)\)", timeout=30)
    return int(m[-1].group(1))


def dirty_children(pid):
    try:
        return {p.pid for p in psutil.Process(pid).children()
                if p.status() != psutil.STATUS_ZOMBIE}
    except psutil.Error:
        return set()


def wait_loaded(srv, app, count, timeout=60):
    return srv.wait_log(r"Dirty worker (\d+) loaded %s$" % re.escape(app), timeout=timeout,
                        count=count)


def start(cg, args, app="dirty_app:app"):
    # the cg fixture stops the server and fails on any sanitizer report
    return cg(app, args=list(args))


COUNTER = "dirty_app:CounterApp"


@pytest.fixture
def gthread_server(cg):
    srv = start(cg, ["-k", "gthread", "--threads", "4", "--dirty-app", COUNTER,
                 "--dirty-workers", "1"])
    wait_loaded(srv, COUNTER, 1)
    yield srv
    srv.stop()


def test_state_kept_across_calls(gthread_server):
    first = call(gthread_server, COUNTER, "incr")["ok"]
    second = call(gthread_server, COUNTER, "incr", 5)["ok"]
    assert first["count"] == 1 and second["count"] == 6
    assert first["pid"] == second["pid"] != gthread_server.pid
    # the app runs in a dirty worker: a child of the dirty arbiter
    assert first["pid"] in dirty_children(dirty_arbiter_pid(gthread_server))


def test_errors_raised_in_the_caller(gthread_server):
    r = call(gthread_server, COUNTER, "boom")
    assert r == {"error": "DirtyAppError", "message": "boom from the dirty app"}
    r = call(gthread_server, COUNTER, "no_such_action")
    assert r["error"] == "DirtyAppError" and "Unknown action" in r["message"]
    r = call(gthread_server, "dirty_app:NotConfigured", "incr")
    assert r["error"] == "DirtyAppNotFoundError"
    # arguments and results of any picklable kind pass unchanged
    assert call(gthread_server, COUNTER, "echo", {"a": [1, 2.5, None, "é"]})["ok"] == \
        {"a": [1, 2.5, None, "é"]}


def test_streaming_results(gthread_server):
    assert call(gthread_server, COUNTER, "stream:tokens", 4)["ok"] == \
        ["tok0", "tok1", "tok2", "tok3"]
    assert call(gthread_server, COUNTER, "stream:atokens", 2)["ok"] == ["atok0", "atok1"]


def test_crashed_worker_is_replaced(gthread_server):
    srv = gthread_server
    before = call(srv, COUNTER, "incr")["ok"]["pid"]
    r = call(srv, COUNTER, "crash")
    assert r["error"] == "DirtyWorkerError"
    srv.wait_log(r"Worker \(pid:%d\) exited with code 1\." % before, timeout=30)
    after = call(srv, COUNTER, "incr")["ok"]
    # a fresh worker: new process, fresh state
    assert after["pid"] != before and after["count"] == 1


def test_timeout_then_next_call_works(cg):
    # two threads: the next call is served while the first still sleeps
    srv = start(cg, ["-k", "gthread", "--threads", "4", "--dirty-app", COUNTER,
                 "--dirty-workers", "1", "--dirty-threads", "2", "--dirty-timeout", "4"])
    try:
        wait_loaded(srv, COUNTER, 1)
        pid = call(srv, COUNTER, "incr")["ok"]["pid"]
        t0 = time.monotonic()
        r = call(srv, COUNTER, "sleep", 8)
        took = time.monotonic() - t0
        assert r["error"] == "DirtyTimeoutError", r
        assert 3.5 < took < 7.5
        # the worker still beats its heartbeat while the call runs (past
        # dirty_timeout): not killed, it serves the next call with its state
        r = call(srv, COUNTER, "incr")["ok"]
        assert r == {"count": 2, "pid": pid}
        # and once the long call is over too, the same worker serves
        while time.monotonic() - t0 < 9.0:
            r = call(srv, COUNTER, "incr")["ok"]
            assert r["pid"] == pid
            time.sleep(0.2)
        assert "WORKER TIMEOUT" not in srv.log()
    finally:
        srv.stop()


def test_per_app_allocation_path_n_and_workers_attribute(cg):
    srv = start(cg, ["-k", "gthread", "--threads", "4", "--dirty-workers", "4",
                 "--dirty-app", COUNTER, "--dirty-app", "dirty_app:HeavyApp:2",
                 "--dirty-app", "dirty_app:LimitedByAttr"])
    try:
        counter = {int(m.group(1)) for m in wait_loaded(srv, COUNTER, 4)}
        heavy = {int(m.group(1)) for m in wait_loaded(srv, "dirty_app:HeavyApp", 2)}
        single = {int(m.group(1)) for m in wait_loaded(srv, "dirty_app:LimitedByAttr", 1)}
        assert len(counter) == 4 and heavy < counter and single < counter
        assert len(heavy) == 2 and len(single) == 1
        seen = {call(srv, "dirty_app:HeavyApp", "pid")["ok"] for _ in range(12)}
        assert seen <= heavy
        assert {call(srv, "dirty_app:LimitedByAttr", "pid")["ok"] for _ in range(4)} == single
        # the worker holding the single place dies: its replacement takes it
        (victim,) = single
        os.kill(victim, signal.SIGKILL)
        m = srv.wait_log(r"Dirty worker (\d+) loaded dirty_app:LimitedByAttr$", count=2,
                         timeout=60)
        new = int(m[-1].group(1))
        assert new != victim
        assert call(srv, "dirty_app:LimitedByAttr", "pid")["ok"] == new
        assert "dirty_app:HeavyApp" in srv.log()
        assert len(srv.wait_log(r"loaded dirty_app:LimitedByAttr$", count=2)) == 2
    finally:
        srv.stop()


def test_ttin_ttou_on_the_dirty_arbiter(cg):
    srv = start(cg, ["-k", "gthread", "--dirty-app", COUNTER, "--dirty-workers", "2"])
    try:
        wait_loaded(srv, COUNTER, 2)
        darb = dirty_arbiter_pid(srv)
        deadline = time.monotonic() + 30
        while len(dirty_children(darb)) != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(dirty_children(darb)) == 2
        os.kill(darb, signal.SIGTTIN)
        wait_loaded(srv, COUNTER, 3)
        assert len(dirty_children(darb)) == 3
        # one at a time: two TTOU sent before the first is delivered merge
        for want in (2, 1):
            os.kill(darb, signal.SIGTTOU)
            deadline = time.monotonic() + 30
            while len(dirty_children(darb)) != want and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(dirty_children(darb)) == want
        # the HTTP workers were not touched
        assert len(srv.worker_pids() - {darb}) == 1
        assert call(srv, COUNTER, "incr")["ok"]["count"] >= 1
    finally:
        srv.stop()


def test_hooks_and_graceful_stop(cg, tmp_path):
    out = tmp_path / "hooks.txt"
    conf = tmp_path / "conf.py"
    conf.write_text(
        "import os\n"
        "OUT = %r\n"
        "def w(line):\n"
        "    with open(OUT, 'a') as f:\n"
        "        f.write(line + '\\n')\n"
        "def on_dirty_starting(arbiter):\n"
        "    w('on_dirty_starting %%d' %% os.getpid())\n"
        "def dirty_post_fork(arbiter, worker):\n"
        "    w('dirty_post_fork %%d %%d' %% (arbiter.pid, worker.pid))\n"
        "def dirty_worker_init(worker):\n"
        "    w('dirty_worker_init %%d %%d' %% (worker.pid, len(worker.apps)))\n"
        "def dirty_worker_exit(arbiter, worker):\n"
        "    w('dirty_worker_exit %%d' %% worker.pid)\n"
        "def post_fork(server, worker):\n"
        "    w('post_fork %%d' %% worker.pid)\n" % str(out))
    srv = start(cg, ["-c", str(conf), "-k", "gthread", "--dirty-app", COUNTER,
                 "--dirty-workers", "2"])
    wait_loaded(srv, COUNTER, 2)
    darb = dirty_arbiter_pid(srv)
    sock_dir = re.search(r"unix:(\S+)/0\.sock", srv.log()).group(1)
    assert os.path.isdir(sock_dir)
    srv.stop()
    lines = out.read_text().splitlines()
    assert lines.count("on_dirty_starting %d" % darb) == 1
    forks = [l for l in lines if l.startswith("dirty_post_fork %d " % darb)]
    inits = [l for l in lines if l.startswith("dirty_worker_init ")]
    exits = [l for l in lines if l.startswith("dirty_worker_exit ")]
    assert len(forks) == 2 and len(exits) == 2
    assert sorted(l.split()[1] for l in inits) == sorted(l.split()[2] for l in forks)
    assert all(l.split()[2] == "1" for l in inits)
    # the HTTP post_fork hook ran for the HTTP worker only
    assert len([l for l in lines if l.startswith("post_fork ")]) == 1
    assert not os.path.exists(sock_dir)


def test_asgi_caller(cg):
    srv = start(cg, ["-k", "asgi", "--dirty-app", COUNTER, "--dirty-workers", "1"],
                app="dirty_app:asgi_app")
    try:
        wait_loaded(srv, COUNTER, 1)
        assert call(srv, COUNTER, "incr")["ok"]["count"] == 1
        assert call(srv, COUNTER, "incr")["ok"]["count"] == 2
        assert call(srv, COUNTER, "stream:tokens", 3)["ok"] == ["tok0", "tok1", "tok2"]
        assert call(srv, COUNTER, "boom")["error"] == "DirtyAppError"
    finally:
        srv.stop()


def test_bad_dirty_app_stops_the_server(run_cg):
    res = run_cg(["-b", "127.0.0.1:%d" % cgtest.free_port(), "--dirty-workers", "1",
                         "--dirty-app", "dirty_app:Missing", "dirty_app:app"], timeout=60)
    assert res.returncode in (3, 4), res.stderr
    assert "Dirty" in res.stderr and "dirty_app:Missing" in res.stderr


def test_control_socket_show_dirty_and_scale(cg):
    from test_control_socket import ok
    srv = start(cg, ["-k", "gthread", "--dirty-app", COUNTER, "--dirty-app", "dirty_app:HeavyApp:1",
                 "--dirty-workers", "2"])
    try:
        wait_loaded(srv, COUNTER, 2)
        darb = dirty_arbiter_pid(srv)
        path = os.path.join(srv.tmpdir, "gunicorn.ctl")
        srv.wait_log(r"Control socket listening at %s" % re.escape(path))
        d = ok(path, "show dirty")
        assert d["enabled"] is True and d["pid"] == darb
        assert {w["pid"] for w in d["workers"]} == dirty_children(darb)
        assert len(d["workers"]) == 2
        assert d["apps"] == [{"import_path": COUNTER, "worker_count": None},
                             {"import_path": "dirty_app:HeavyApp", "worker_count": 1}]
        assert ok(path, "show stats")["dirty_arbiter_pid"] == darb
        a = ok(path, "show all")
        assert a["dirty_arbiter"]["pid"] == darb and a["dirty_worker_count"] == 2
        # N at once: the master sends each next TTIN / TTOU once the dirty
        # arbiter has taken the one before (two pending would merge into
        # one), over its loop's next passes (docs/control.md)
        r = ok(path, "dirty add 2")
        assert r == {"success": True, "operation": "add", "requested": 2, "spawned": 2}
        wait_loaded(srv, COUNTER, 4)
        deadline = time.monotonic() + 30
        while len(dirty_children(darb)) != 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(dirty_children(darb)) == 4
        r = ok(path, "dirty remove 3")
        assert r == {"success": True, "operation": "remove", "requested": 3, "removed": 3}
        deadline = time.monotonic() + 30
        while len(dirty_children(darb)) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(dirty_children(darb)) == 1
        assert len(ok(path, "show dirty")["workers"]) == 1
    finally:
        srv.stop()


def test_dirty_tree_stops_when_the_master_dies(cg):
    srv = start(cg, ["--dirty-app", COUNTER, "--dirty-workers", "2"])
    try:
        wait_loaded(srv, COUNTER, 2)
        darb = dirty_arbiter_pid(srv)
        workers = dirty_children(darb)
        assert len(workers) == 2
        os.kill(srv.pid, signal.SIGKILL)
        gone, alive = psutil.wait_procs([psutil.Process(p) for p in workers | {darb}],
                                        timeout=60)
        assert not alive
        srv.wait_log(r"Parent changed, shutting down: Dirty arbiter", timeout=10)
        sock_dir = re.search(r"unix:(\S+)/0\.sock", srv.log()).group(1)
        assert not os.path.exists(sock_dir)
    finally:
        srv.stop()
        for p in [darb, *workers]:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
