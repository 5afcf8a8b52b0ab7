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
    return cgtest.live_children(pid)


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
    # until the replacement has taken the app, a call is refused at once
    # (DirtyNoWorkersAvailableError, test_no_workers_available)
    wait_loaded(srv, COUNTER, 2)
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
        # the master lists the dirty arbiter's children from /proc, where
        # the ones stopped stay (zombies) until the dirty arbiter reaps them
        deadline = time.monotonic() + 30
        while len(ok(path, "show dirty")["workers"]) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
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


STASH = "dirty_app:StashApp"


def test_stash_tables_shared_by_every_worker(cg):
    srv = start(cg, ["-k", "gthread", "--threads", "2", "--dirty-app", STASH,
                     "--dirty-workers", "2"])
    try:
        loaded = {int(m.group(1)) for m in wait_loaded(srv, STASH, 2)}
        # `stashes` made the declared tables, init() put a counter
        assert call(srv, STASH, "tables")["ok"] == ["counters", "sessions"]
        assert call(srv, "stash", "get", "counters", "requests")["ok"] == 0
        # a dirty worker writes, the HTTP worker reads, and the other way
        pid = call(srv, STASH, "login", 7, {"name": "Alice"})["ok"]
        assert pid in loaded
        assert call(srv, "stash", "get", "sessions", "user:7")["ok"] == \
            {"data": {"name": "Alice"}, "pid": pid}
        call(srv, "stash", "put", "sessions", "user:8", {"data": "from http", "pid": 0})
        assert call(srv, STASH, "session", 8)["ok"] == {"data": "from http", "pid": 0}
        assert call(srv, STASH, "session", 9)["ok"] is None
        assert call(srv, "stash", "get", "sessions", "nope", "dflt")["ok"] == "dflt"
        assert sorted(call(srv, "stash", "keys", "sessions", "user:*")["ok"]) == \
            ["user:7", "user:8"]
        assert call(srv, "stash", "keys", "sessions", "*8")["ok"] == ["user:8"]
        # the dict-like view
        call(srv, "stash", "table_set", "cache", "k1", [1, 2])
        assert call(srv, STASH, "view", "cache")["ok"] == \
            {"len": 1, "keys": ["k1"], "items": [["k1", [1, 2]]]}
        assert call(srv, "stash", "table_get", "cache", "k2")["ok"] == "KeyError"
        assert call(srv, "stash", "info", "cache")["ok"] == {"size": 1, "table": "cache"}
        assert call(srv, "stash", "info", "none")["ok"] == "StashTableNotFoundError: none"
        assert call(srv, "stash", "exists", "cache", "k1")["ok"] is True
        assert call(srv, "stash", "delete", "cache", "k1")["ok"] is True
        assert call(srv, "stash", "delete", "cache", "k1")["ok"] is False
        assert call(srv, "stash", "exists", "cache")["ok"] is True
        call(srv, "stash", "clear", "sessions")
        assert call(srv, "stash", "info", "sessions")["ok"]["size"] == 0
        call(srv, "stash", "delete_table", "cache")
        assert call(srv, STASH, "tables")["ok"] == ["counters", "sessions"]
        sock_dir = re.search(r"unix:(\S+)/0\.sock", srv.log()).group(1)
        assert os.path.isdir(os.path.join(sock_dir, "stash"))
    finally:
        srv.stop()
    # the tables go with the server
    assert not os.path.exists(sock_dir)


def wait_status(pid, status, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == status:
                if status != psutil.STATUS_ZOMBIE:
                    return
                # the main thread is a zombie before the other threads have
                # closed the process's files (and so released its locks)
                if len(os.listdir("/proc/%d/task" % pid)) <= 1:
                    return
        except (psutil.NoSuchProcess, FileNotFoundError):
            if status == psutil.STATUS_ZOMBIE:
                return
        time.sleep(0.02)
    raise AssertionError("pid %d never %s" % (pid, status))


def test_no_workers_available(cg):
    single = "dirty_app:LimitedByAttr"
    srv = start(cg, ["-k", "gthread", "--dirty-app", COUNTER, "--dirty-app", single,
                     "--dirty-workers", "2"])
    darb = workers = None
    try:
        wait_loaded(srv, COUNTER, 2)
        (holder,) = {int(m.group(1)) for m in wait_loaded(srv, single, 1)}
        darb = dirty_arbiter_pid(srv)
        workers = dirty_children(darb)
        (other,) = workers - {holder}
        # nothing may replace the holder or take its place: the dirty
        # arbiter and the other worker are stopped, then the holder dies
        os.kill(darb, signal.SIGSTOP)
        os.kill(other, signal.SIGSTOP)
        wait_status(other, psutil.STATUS_STOPPED)
        os.kill(holder, signal.SIGKILL)
        wait_status(holder, psutil.STATUS_ZOMBIE)
        t0 = time.monotonic()
        r = call(srv, single, "pid")
        assert r == {"error": "DirtyNoWorkersAvailableError",
                     "message": "No workers available for app: %s" % single}
        assert time.monotonic() - t0 < 10  # at once, not after the call's timeout
        # no dirty worker at all: Gunicorn's plain DirtyError
        os.kill(other, signal.SIGKILL)
        wait_status(other, psutil.STATUS_ZOMBIE)
        r = call(srv, COUNTER, "incr")
        assert r == {"error": "DirtyError", "message": "No dirty workers available"}
        os.kill(darb, signal.SIGCONT)
        # replacements serve again
        wait_loaded(srv, single, 2)
        assert call(srv, single, "pid")["ok"] not in (holder, other)
    finally:
        if darb is not None:
            os.kill(darb, signal.SIGCONT)
        srv.stop()


@pytest.mark.parametrize("spec", ["dirty_app:PairByAttr", "dirty_app:HeavyApp:2"])
def test_ttou_floor_is_the_largest_app_limit(cg, spec):
    # the class's `workers` = 2, or `:2` in dirty_apps
    srv = start(cg, ["-k", "gthread", "--dirty-app", COUNTER, "--dirty-app", spec,
                     "--dirty-app", "dirty_app:LimitedByAttr", "--dirty-workers", "3"])
    try:
        wait_loaded(srv, COUNTER, 3)
        wait_loaded(srv, spec.rsplit(":", 1)[0] if spec.endswith(":2") else spec, 2)
        darb = dirty_arbiter_pid(srv)
        os.kill(darb, signal.SIGTTOU)
        deadline = time.monotonic() + 30
        while len(dirty_children(darb)) != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(dirty_children(darb)) == 2
        # no lower than the largest limit, as Gunicorn; the warning is
        # logged instead of stopping a worker
        os.kill(darb, signal.SIGTTOU)
        srv.wait_log(r"SIGTTOU: Cannot decrease below 2 workers \(required by app specs\)")
        assert len(dirty_children(darb)) == 2
        assert "Cannot decrease below 1 " not in srv.log()
        # the control socket's `dirty remove` answers what it removed, as
        # Gunicorn's: none at the floor
        from test_control_socket import ok
        path = os.path.join(srv.tmpdir, "gunicorn.ctl")
        srv.wait_log(r"Control socket listening at %s" % re.escape(path))
        assert ok(path, "dirty remove 2") == {"success": True, "operation": "remove",
                                              "requested": 2, "removed": 0}
        assert ok(path, "dirty add") == {"success": True, "operation": "add",
                                         "requested": 1, "spawned": 1}
        deadline = time.monotonic() + 30
        while len(dirty_children(darb)) != 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(dirty_children(darb)) == 3
        assert ok(path, "dirty remove 5") == {"success": True, "operation": "remove",
                                              "requested": 5, "removed": 1}
        deadline = time.monotonic() + 30
        while len(dirty_children(darb)) != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(dirty_children(darb)) == 2
    finally:
        srv.stop()


def test_gunicorn_dirty_shims_where_gunicorn_is_absent(cg, tmp_path):
    # Debian's Gunicorn (dist-packages) shadows the compatibility package
    # here; a venv without the system's site-packages leaves it out of the
    # standalone executable's interpreter (which takes VIRTUAL_ENV's), so
    # `import gunicorn` finds cgunicorn's shims, as where Gunicorn is absent
    if cgtest.front_end() != "standalone":
        pytest.skip("the console script's interpreter is its own venv's")
    import subprocess
    import sys
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    srv = cg("dirty_shim_app:app", args=["-k", "gthread", "--dirty-app", "dirty_shim_app:ShimApp",
                                         "--dirty-workers", "1"],
             env={"VIRTUAL_ENV": str(venv), "PYTHONPATH": None, "PYTHONHOME": None})
    try:
        wait_loaded(srv, "dirty_shim_app:ShimApp", 1)
        with urllib.request.urlopen(srv.url("/"), timeout=CALL_TIMEOUT) as r:
            out = json.loads(r.read())
        assert out["real_gunicorn_on_path"] is False
        assert os.sep.join(["cgunicorn", "_compat", "gunicorn", "__init__.py"]) in \
            out["gunicorn_file"]
        assert out["same_app_class"] is True
        assert out["worker_class"] == "cgunicorn.dirty._worker"
        assert out["names"] == ["DirtyClient", "DirtyError", "DirtyNoWorkersAvailableError",
                                "StashClient", "StashKeyNotFoundError", "StashTable"]
        assert out["result"].startswith("hello shim from ")
        assert out["stash"] == "shim"
        assert out["tables"] == ["shim"]
        for name, msg in out["not_provided"].items():
            assert msg and msg.startswith("gunicorn.dirty.%s is not provided" % name), msg
    finally:
        srv.stop()


def test_hup_applies_changed_dirty_settings(cg, tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("dirty_apps = [%r]\ndirty_workers = 1\n" % COUNTER)
    srv = start(cg, ["-c", str(conf), "-k", "gthread"])
    try:
        wait_loaded(srv, COUNTER, 1)
        old = dirty_arbiter_pid(srv)
        old_dir = re.search(r"unix:(\S+)/0\.sock", srv.log()).group(1)
        assert call(srv, COUNTER, "incr")["ok"]["count"] == 1
        # unchanged: the same dirty arbiter replaces its workers
        os.kill(srv.pid, signal.SIGHUP)
        wait_loaded(srv, COUNTER, 2)
        assert dirty_arbiter_pid(srv) == old
        assert "Dirty settings changed" not in srv.log()
        # changed: a new dirty tree on the new settings, the old one stops
        conf.write_text("dirty_apps = [%r, 'dirty_app:HeavyApp:1']\ndirty_workers = 2\n"
                        "dirty_timeout = 120\n" % COUNTER)
        os.kill(srv.pid, signal.SIGHUP)
        srv.wait_log(r"Dirty settings changed: replacing the dirty arbiter")
        m = srv.wait_log(r"Spawned dirty arbiter \(pid: (\d+)\)", count=2, timeout=30)
        new = int(m[-1].group(1))
        assert new != old
        srv.wait_log(r"Replaced dirty arbiter \(pid:%d\) exited" % old, timeout=60)
        assert not os.path.exists(old_dir)
        wait_loaded(srv, COUNTER, 4)
        wait_loaded(srv, "dirty_app:HeavyApp", 1)
        deadline = time.monotonic() + 30
        while len(dirty_children(new)) != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(dirty_children(new)) == 2
        # the HTTP workers started by the HUP call the new tree
        assert call(srv, "dirty_app:HeavyApp", "pid")["ok"] in dirty_children(new)
        assert call(srv, COUNTER, "incr")["ok"]["count"] == 1  # fresh state
        # dirty settings removed: no dirty tree any more
        conf.write_text("")
        os.kill(srv.pid, signal.SIGHUP)
        srv.wait_log(r"Replaced dirty arbiter \(pid:%d\) exited" % new, timeout=60)
        assert call(srv, COUNTER, "incr")["error"] == "DirtyAppNotFoundError"
        # and back on: a dirty tree again
        conf.write_text("dirty_apps = [%r]\ndirty_workers = 1\n" % COUNTER)
        os.kill(srv.pid, signal.SIGHUP)
        m = srv.wait_log(r"Spawned dirty arbiter \(pid: (\d+)\)", count=3, timeout=30)
        third = int(m[-1].group(1))
        wait_loaded(srv, COUNTER, 5)
        r = call(srv, COUNTER, "incr")["ok"]
        assert r["count"] == 1 and r["pid"] in dirty_children(third)
    finally:
        srv.stop()


def test_gunicorn_dirty_pidfile_and_socket_env(cg):
    # Gunicorn's docs find the dirty arbiter in $TMPDIR/gunicorn-dirty-NAME.pid
    # (a short $TMPDIR: the dirty sockets' paths must fit in sun_path)
    import pathlib
    import shutil
    import tempfile
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="cgd-", dir="/tmp"))
    srv = cg("dirty_app:app", args=["-k", "gthread", "-n", "my app/x", "--dirty-app", STASH,
                                    "--dirty-workers", "1"],
             env={"TMPDIR": str(tmp_path)})
    pidfile = tmp_path / "gunicorn-dirty-my_app_x.pid"
    try:
        wait_loaded(srv, STASH, 1)
        darb = dirty_arbiter_pid(srv)
        assert pidfile.read_text() == "%d\n" % darb
        assert oct(pidfile.stat().st_mode & 0o777) == "0o600"
        # GUNICORN_DIRTY_SOCKET names the dirty directory, which the
        # clients take (DirtyClient(path), StashClient(path))
        sock = call(srv, "env", "GUNICORN_DIRTY_SOCKET")["ok"]
        assert sock == call(srv, "env", "CGUNICORN_DIRTY_DIR")["ok"]
        assert os.path.dirname(sock) == str(tmp_path)
        assert call(srv, STASH, "env", "GUNICORN_DIRTY_SOCKET")["ok"] == sock
        # a dirty arbiter that died is restarted, and the file follows
        os.kill(darb, signal.SIGKILL)
        m = srv.wait_log(r"Spawned dirty arbiter \(pid: (\d+)\)", count=2, timeout=30)
        again = int(m[-1].group(1))
        deadline = time.monotonic() + 30
        while pidfile.exists() and pidfile.read_text() != "%d\n" % again and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert pidfile.read_text() == "%d\n" % again
    finally:
        srv.stop()
    try:
        assert not pidfile.exists()
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_stop_while_a_replaced_dirty_tree_finishes_a_call(cg, tmp_path):
    import threading
    conf = tmp_path / "conf.py"
    conf.write_text("dirty_apps = [%r]\ndirty_workers = 1\ndirty_graceful_timeout = 60\n"
                    % STASH)
    srv = start(cg, ["-c", str(conf), "-k", "gthread", "--threads", "4"])
    stopped = False
    try:
        wait_loaded(srv, STASH, 1)
        old = dirty_arbiter_pid(srv)
        old_dir = re.search(r"unix:(\S+)/0\.sock", srv.log()).group(1)
        result = {}
        t = threading.Thread(target=lambda: result.update(r=call(srv, STASH, "hold", 6)))
        t.start()
        deadline = time.monotonic() + 30
        while call(srv, "stash", "get", "state", "holding")["ok"] is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        conf.write_text("dirty_apps = [%r]\ndirty_workers = 2\n" % STASH)
        os.kill(srv.pid, signal.SIGHUP)
        srv.wait_log(r"Dirty settings changed: replacing the dirty arbiter")
        m = srv.wait_log(r"Spawned dirty arbiter \(pid: (\d+)\)", count=2, timeout=30)
        new_dir = None
        deadline = time.monotonic() + 30
        while new_dir is None and time.monotonic() < deadline:
            dirs = set(re.findall(r"unix:(\S+)/0\.sock", srv.log())) - {old_dir}
            new_dir = dirs.pop() if dirs else None
            time.sleep(0.05)
        assert new_dir is not None
        # the master stops while the old tree still finishes its call: it
        # waits for both trees, and the call in progress completes
        assert "Replaced dirty arbiter (pid:%d) exited" % old not in srv.log()
        srv.stop()
        stopped = True
        t.join(60)
        assert result.get("r") == {"ok": "held"}
        assert "Replaced dirty arbiter (pid:%d) exited" % old in srv.log()
        assert int(m[-1].group(1)) != old
        assert not os.path.exists(old_dir) and not os.path.exists(new_dir)
        assert not psutil.pid_exists(old) or \
            psutil.Process(old).status() == psutil.STATUS_ZOMBIE
    finally:
        if not stopped:
            srv.stop()
