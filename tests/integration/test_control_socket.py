"""The control socket (Gunicorn 25.1+, on by default) against a real master:
its path, directory and mode, --no-control-socket, every command with the
answer shapes of Gunicorn 26.1's handlers, the actions really taken (workers
added, removed, replaced; HUP; USR1; graceful and quick shutdown), its life
across HUP and USR2, hostile clients that must not stall the master, our
cgunicornc, and Gunicorn's own gunicornc."""

import json
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time

import pytest

import cgtest

LISTENING = r"\[INFO\] Control socket listening at %s$"
PYLIB = os.path.join(cgtest.REPO_ROOT, "pylib")

HOLD_APP = r'''
import os, sys, time

def app(environ, start_response):
    if environ["PATH_INFO"] == "/hold":
        sys.stderr.write("holding in pid %d\n" % os.getpid())
        sys.stderr.flush()
        deadline = time.monotonic() + 60
        while not os.path.exists(os.environ["CTL_RELEASE"]) and time.monotonic() < deadline:
            time.sleep(0.02)
        body = b"released"
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


# -- the wire, exactly as Gunicorn's ControlProtocol writes and reads it --------

def encode(message):
    payload = json.dumps(message).encode("utf-8")
    return struct.pack(">I", len(payload)) + payload


def recv_exactly(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def read_message(s):
    (n,) = struct.unpack(">I", recv_exactly(s, 4))
    return json.loads(recv_exactly(s, n).decode("utf-8"))


def connect(path, timeout=10.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def ctl(path, command, args=None, rid=1):
    """One request on a fresh connection; the whole answer."""
    with connect(path) as s:
        s.sendall(encode({"id": rid, "command": command, "args": args or []}))
        return read_message(s)


def ok(path, command, args=None):
    answer = ctl(path, command, args)
    assert answer["status"] == "ok", answer
    assert set(answer) == {"id", "status", "data"}
    return answer["data"]


def closed_by_peer(s, timeout=30.0):
    """Read until the server closes s; True when it did within timeout."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def start(cg, *args, workers=1, **kw):
    srv = cg("wsgiapp:app", args=["-w", str(workers)] + list(args), **kw)
    return srv


def wait_booted(path, n, timeout=30.0):
    """show workers, once n workers say they have booted (the heartbeat
    page's word, set after "Booting worker" is logged)."""
    deadline = time.monotonic() + timeout
    while True:
        w = ok(path, "show workers")
        if sum(1 for x in w["workers"] if x["booted"]) >= n:
            return w
        assert time.monotonic() < deadline, w
        time.sleep(0.05)


def default_path(srv):
    path = os.path.join(srv.tmpdir, "gunicorn.ctl")
    srv.wait_log(LISTENING % path)
    return path


# -- path, directory, mode ---------------------------------------------------

def test_default_path_mode_and_removal(cg):
    srv = start(cg)
    path = default_path(srv)
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert srv.stop() == 0
    assert not os.path.exists(path)


def test_home_default_creates_private_directory(cg, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    srv = start(cg, env={"XDG_RUNTIME_DIR": None, "HOME": str(home)})
    path = str(home / ".gunicorn" / "gunicorn.ctl")
    srv.wait_log(LISTENING % path)
    assert stat.S_IMODE(os.stat(home / ".gunicorn").st_mode) == 0o700
    assert ok(path, "show stats")["pid"] == srv.proc.pid


def test_explicit_path_and_mode(cg, tmp_path):
    path = str(tmp_path / "run" / "deep" / "app.ctl")
    srv = start(cg, "--control-socket", path, "--control-socket-mode", "0660")
    srv.wait_log(LISTENING % path)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o660
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert ok(path, "show config")["control_socket"] == path


def test_relative_path_is_made_absolute(cg, tmp_path):
    srv = start(cg, "--control-socket", "rel.ctl", cwd=str(tmp_path),
                env={"PYTHONPATH": cgtest.APPS_DIR})
    path = str(tmp_path / "rel.ctl")
    srv.wait_log(LISTENING % path)
    assert ok(path, "show stats")["pid"] == srv.proc.pid


def test_disabled(cg):
    srv = start(cg, "--no-control-socket", "--log-level", "debug")
    srv.wait_log(r"\[DEBUG\] Control socket disabled$")
    assert not os.path.exists(os.path.join(srv.tmpdir, "gunicorn.ctl"))
    assert "Control socket listening" not in srv.log()


def test_not_a_socket_is_left_alone(cg, tmp_path):
    path = tmp_path / "file.ctl"
    path.write_text("mine")
    srv = start(cg, "--control-socket", str(path))
    srv.wait_log(r"\[WARNING\] Failed to start control socket: .*is not a socket$")
    assert path.read_text() == "mine"
    assert srv.alive()


# -- commands and their answers ----------------------------------------------

def test_show_answers(cg):
    srv = start(cg, workers=2)
    path = default_path(srv)
    pids = srv.worker_pids()

    w = wait_booted(path, 2)
    assert w["count"] == 2 and {x["pid"] for x in w["workers"]} == pids
    for x in w["workers"]:
        assert set(x) == {"pid", "age", "booted", "aborted", "last_heartbeat"}
        assert x["booted"] is True and x["aborted"] is False
        assert isinstance(x["last_heartbeat"], float) and 0 <= x["last_heartbeat"] < 30
    assert [x["age"] for x in w["workers"]] == sorted(x["age"] for x in w["workers"])

    s = ok(path, "show stats")
    assert set(s) == {"uptime", "pid", "workers_current", "workers_target", "workers_spawned",
                      "workers_killed", "reloads", "dirty_arbiter_pid"}
    assert s["pid"] == srv.proc.pid and s["workers_current"] == 2 and s["workers_target"] == 2
    assert s["workers_spawned"] == 2 and s["reloads"] == 0 and s["dirty_arbiter_pid"] is None
    assert isinstance(s["uptime"], float) and s["uptime"] >= 0

    c = ok(path, "show config")
    assert list(c) == ["bind", "workers", "worker_class", "threads", "timeout",
                       "graceful_timeout", "keepalive", "max_requests", "max_requests_jitter",
                       "worker_connections", "preload_app", "daemon", "pidfile", "proc_name",
                       "reload", "dirty_workers", "dirty_apps", "dirty_timeout",
                       "control_socket", "control_socket_disable"]
    assert c["bind"] == srv.bind and c["workers"] == 2
    assert c["worker_class"] == "<class 'gunicorn.workers.sync.SyncWorker'>"
    assert c["pidfile"] is None and c["proc_name"] == "wsgiapp:app" and c["dirty_apps"] == []
    assert c["control_socket"] == path and c["control_socket_disable"] is False

    li = ok(path, "show listeners")
    assert li["count"] == 1
    (one,) = li["listeners"]
    assert one["address"] == "http://" + srv.bind[0] and one["type"] == "tcp"
    assert isinstance(one["fd"], int)

    a = ok(path, "SHOW ALL")  # words are lower-cased, as Gunicorn does
    assert a["arbiter"] == {"pid": srv.proc.pid, "type": "arbiter", "role": "master"}
    assert a["web_worker_count"] == 2
    assert {x["pid"] for x in a["web_workers"]} == pids
    assert set(a["web_workers"][0]) == {"pid", "type", "age", "booted", "last_heartbeat"}
    assert a["dirty_arbiter"] is None and a["dirty_workers"] == [] and a["dirty_worker_count"] == 0

    assert ok(path, "show dirty") == {"enabled": False, "pid": None, "workers": [], "apps": []}
    for cmd in ("dirty add", "dirty remove 2"):
        assert ok(path, cmd) == {"success": False, "error": "Dirty arbiter not running"}
    h = ok(path, "help")["commands"]
    assert "worker kill <PID>" in h and "shutdown [graceful|quick]" in h and len(h) == 15


def test_errors_keep_the_connection(cg):
    srv = start(cg)
    path = default_path(srv)
    cases = [
        ("", "Empty command"),
        ("bogus", "Invalid argument: Unknown command: bogus"),
        ("show", "Invalid argument: Missing show target "
                 "(all|workers|dirty|config|stats|listeners)"),
        ("show nope", "Invalid argument: Unknown show target: nope"),
        ("worker", "Invalid argument: Missing worker action (add|remove|kill)"),
        ("worker jump", "Invalid argument: Unknown worker action: jump"),
        ("worker kill", "Invalid argument: Missing PID for worker kill"),
        ("worker add x", "Invalid argument: invalid literal for int() with base 10: 'x'"),
        ("dirty", "Invalid argument: Missing dirty action (add|remove)"),
        ('show "workers', "Invalid argument: No closing quotation"),
    ]
    with connect(path) as s:
        for i, (cmd, msg) in enumerate(cases):
            s.sendall(encode({"id": i, "command": cmd, "args": []}))
            assert read_message(s) == {"id": i, "status": "error", "error": msg}
        s.sendall(encode({"id": "last", "command": "worker kill", "args": [1]}))
        assert read_message(s) == {"id": "last", "status": "ok",
                                   "data": {"success": False, "error": "Worker 1 not found"}}


@pytest.mark.timeout(90)
def test_worker_add_remove_kill(cg):
    srv = start(cg, workers=1)
    path = default_path(srv)
    assert ok(path, "worker add 2") == {"added": 2, "previous": 1, "total": 3}
    srv.wait_workers(lambda p: len(p) == 3, 30, "3 workers")
    # the count as args, as a client may send it
    assert ok(path, "worker remove", [1]) == {"removed": 1, "previous": 3, "total": 2}
    two = srv.wait_workers(lambda p: len(p) == 2, 30, "2 workers")
    # never below one
    assert ok(path, "worker remove 5") == {"removed": 1, "previous": 2, "total": 1}
    (left,) = srv.wait_workers(lambda p: len(p) == 1, 30, "1 worker")
    assert left in two
    assert ok(path, "worker remove") == {"removed": 0, "previous": 1, "total": 1}
    # kill PID: TERM to that worker, which the master replaces
    assert ok(path, "worker kill %d" % left) == {"success": True, "killed": left}
    (new,) = srv.wait_workers(lambda p: len(p) == 1 and left not in p, 30, "a successor")
    assert new != left
    s = ok(path, "show stats")
    assert s["workers_spawned"] == 4 and s["workers_target"] == 1 and s["workers_killed"] >= 3


@pytest.mark.timeout(90)
def test_reload_is_hup_and_reopen_is_usr1(cg):
    srv = start(cg, workers=2)
    path = default_path(srv)
    old = srv.worker_pids()
    assert ok(path, "reload") == {"status": "reloading"}
    srv.wait_log(r"\[INFO\] Handling signal: hup$")
    srv.wait_log(r"\[INFO\] Hang up: Master$")
    srv.wait_workers(lambda p: len(p) == 2 and not (p & old), 30, "a new generation")
    assert ok(path, "show stats")["reloads"] == 1
    assert ok(path, "reopen") == {"status": "reopening"}
    srv.wait_log(r"\[INFO\] Handling signal: usr1$")
    assert srv.alive()


@pytest.mark.timeout(90)
def test_shutdown_graceful_completes_the_request_in_flight(cg, tmp_path):
    (tmp_path / "holdapp.py").write_text(HOLD_APP)
    release = tmp_path / "release"
    srv = cg("holdapp:app", cwd=str(tmp_path), env={"CTL_RELEASE": str(release)},
             args=["-w", "1", "--graceful-timeout", "30"])
    path = default_path(srv)
    box = {}

    def get():
        box["r"] = srv.raw(b"GET /hold HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                           timeout=60)
    t = threading.Thread(target=get, daemon=True)
    t.start()
    srv.wait_log(r"^holding in pid \d+$", timeout=10)
    assert ok(path, "shutdown") == {"status": "shutting_down", "mode": "graceful"}
    srv.wait_log(r"\[INFO\] Handling signal: term$")
    # the control socket goes first (Gunicorn's halt), the request goes on
    wait_gone(path)
    assert srv.alive()
    release.write_text("")
    t.join(30)
    assert box["r"].startswith(b"HTTP/1.1 200") and box["r"].endswith(b"released")
    assert srv.wait_exit(30) == 0
    srv.wait_log(r"\[INFO\] Shutting down: Master$")


def test_shutdown_quick(cg):
    srv = start(cg)
    path = default_path(srv)
    assert ok(path, "shutdown quick") == {"status": "shutting_down", "mode": "quick"}
    assert srv.wait_exit(30) == 0
    srv.wait_log(r"\[INFO\] Handling signal: int$")
    assert not os.path.exists(path)


# -- life across HUP and USR2 ------------------------------------------------

@pytest.mark.timeout(90)
def test_hup_follows_a_changed_setting(cg, tmp_path):
    first, second = str(tmp_path / "one.ctl"), str(tmp_path / "two.ctl")
    conf = tmp_path / "conf.py"
    conf.write_text("control_socket = %r\n" % first)
    srv = start(cg, "-c", str(conf))
    srv.wait_log(LISTENING % first)
    conf.write_text("control_socket = %r\ncontrol_socket_mode = 0o640\n" % second)
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(LISTENING % second, timeout=15)
    assert not os.path.exists(first)
    assert stat.S_IMODE(os.lstat(second).st_mode) == 0o640
    assert ok(second, "show config")["control_socket"] == second
    conf.write_text("control_socket_disable = True\n")
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"\[INFO\] Hang up: Master$", count=2)
    wait_gone(second)


def usr2(cg):
    """A server, its socket's path, and its USR2 child once that listens on
    the control socket: Gunicorn's new master binds the same path (no ".2")."""
    srv = start(cg)
    path = default_path(srv)
    srv.send_signal(signal.SIGUSR2)
    new = cgtest.new_master(srv.proc.pid, srv.log)
    srv.wait_log(r"\[%d\] \[INFO\] Control socket listening at %s$" % (new.pid, path))
    return srv, path, new


def wait_gone(path, timeout=15.0):
    deadline = time.monotonic() + timeout
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(path)


@pytest.mark.timeout(120)
def test_usr2_new_master_takes_the_same_path(cg):
    srv, path, new = usr2(cg)
    assert ok(path, "show stats")["pid"] == new.pid
    # the old master leaving does not remove the new master's socket
    srv.send_signal(signal.SIGTERM)
    assert srv.wait_exit(30) == 0
    assert ok(path, "show stats")["pid"] == new.pid
    new.terminate()
    new.wait(30)
    assert not os.path.exists(path)


@pytest.mark.timeout(120)
def test_usr2_child_gone_old_master_takes_the_path_back(cg):
    srv, path, new = usr2(cg)
    new.terminate()
    new.wait(30)
    srv.wait_log(LISTENING % path, count=3, timeout=15)
    assert ok(path, "show stats")["pid"] == srv.proc.pid


# -- hostile clients ---------------------------------------------------------

@pytest.mark.timeout(120)
def test_hostile_clients_do_not_stall_the_master(cg):
    srv = start(cg, workers=1)
    path = default_path(srv)

    # garbage: answered with Gunicorn's error shape, then closed
    with connect(path) as s:
        s.sendall(struct.pack(">I", 9) + b"not json!")
        a = read_message(s)
        assert a["status"] == "error" and a["id"] is None and a["error"].startswith("Invalid")
        assert closed_by_peer(s)
    # a 16 MiB+ length prefix, and a full 4 GiB one
    for n in (16 * 1024 * 1024 + 1, 0xFFFFFFFF):
        with connect(path) as s:
            s.sendall(struct.pack(">I", n) + b"x" * 1000)
            assert read_message(s) == {"id": None, "status": "error",
                                       "error": "Message too large: %d" % n}
            assert closed_by_peer(s)

    # 50 idle clients and one stuck half-way through a frame
    idle = [connect(path) for _ in range(50)]
    half = connect(path)
    half.sendall(struct.pack(">I", 100) + b'{"id": 1, "comm')
    t0 = time.monotonic()
    # signals are still handled at once...
    srv.send_signal(signal.SIGTTIN)
    srv.wait_workers(lambda p: len(p) == 2, 30, "TTIN's worker")
    srv.send_signal(signal.SIGTTOU)
    srv.wait_workers(lambda p: len(p) == 1, 30, "TTOU's removal")
    # ...and a normal command still works (a newcomer replaces a quiet client)
    assert ok(path, "show stats")["workers_target"] == 1
    assert cgtest.parse_response(srv.raw(b"GET / HTTP/1.0\r\n\r\n"))[0].split()[1] == "200"
    # the half frame is dropped at its deadline (10 s), not left forever
    assert closed_by_peer(half, timeout=30)
    assert time.monotonic() - t0 < 25
    for s in idle + [half]:
        s.close()
    assert srv.alive()


# -- the clients ---------------------------------------------------------------

def cgunicornc(*args, env=None):
    """Our client as installed: the standalone build's launcher beside the
    binary, else the module run as a script."""
    launcher = os.path.join(os.path.dirname(cgtest.cg_bin()), "cgunicornc")
    cmd = [launcher] if os.access(launcher, os.X_OK) else \
        [sys.executable, os.path.join(PYLIB, "cgunicorn", "ctl.py")]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60,
                          env=cgtest.merged_env(env))


@pytest.mark.timeout(90)
def test_cgunicornc(cg):
    srv = start(cg, workers=1)
    path = default_path(srv)
    r = cgunicornc("--socket", path, "show", "workers")
    assert r.returncode == 0, r.stderr
    assert "PID" in r.stdout and "Total: 1 workers" in r.stdout
    # the default path, as Gunicorn's client finds it
    r = cgunicornc("--json", "show", "stats", env={"XDG_RUNTIME_DIR": srv.tmpdir})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pid"] == srv.proc.pid
    r = cgunicornc("-s", path, "-c", "worker add 2")
    assert r.returncode == 0 and json.loads(r.stdout)["total"] == 3
    srv.wait_workers(lambda p: len(p) == 3, 30, "3 workers")
    r = cgunicornc("-s", path, "worker", "remove")
    assert r.returncode == 0 and json.loads(r.stdout)["total"] == 2
    r = cgunicornc("-s", path, "nonsense")
    assert r.returncode == 1 and "Unknown command: nonsense" in r.stderr
    # interactive: commands from stdin, one connection
    p = subprocess.run([sys.executable, os.path.join(PYLIB, "cgunicorn", "ctl.py"), "-s", path],
                       input="show stats\nhelp\nquit\n", capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert "Workers target:   2" in p.stdout and "Available commands:" in p.stdout
    r = cgunicornc("-s", path, "shutdown")
    assert r.returncode == 0 and srv.wait_exit(30) == 0
    r = cgunicornc("-s", path, "show", "stats")
    assert r.returncode == 1 and "cannot connect" in r.stderr


@pytest.mark.timeout(180)
def test_gunicorns_own_gunicornc(cg, tmp_path_factory):
    site = cgtest.pinned_site(tmp_path_factory.mktemp("gunicorn-site"), "gunicorn", "packaging")
    srv = start(cg, workers=1)
    path = default_path(srv)

    def gunicornc(cmd):
        code = ("import sys; sys.path.insert(0, %r); from gunicorn.ctl.cli import main; "
                "sys.argv = ['gunicornc', '-s', %r, '-j', '-c', %r]; sys.exit(main())"
                % (str(site), path, cmd))
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    assert gunicornc("show workers")["count"] == 1
    assert gunicornc("worker add 2")["total"] == 3
    srv.wait_workers(lambda p: len(p) == 3, 30, "3 workers")
    assert gunicornc("worker remove 1")["total"] == 2
    srv.wait_workers(lambda p: len(p) == 2, 30, "2 workers")
    assert gunicornc("reload") == {"status": "reloading"}
    srv.wait_log(r"\[INFO\] Hang up: Master$")
    assert gunicornc("shutdown") == {"status": "shutting_down", "mode": "graceful"}
    assert srv.wait_exit(30) == 0


# -- under load ----------------------------------------------------------------

class Load:
    """Clients sending GET / on a new connection each (so a worker that
    leaves never strands an idle keep-alive connection mid-request), from
    threads, until stopped; every answer that is not a 200 is a failure."""

    def __init__(self, url, threads=4):
        self.url, self.ok, self.failed = url, 0, []
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self):
        import requests
        while not self.stop_ev.is_set():
            try:
                r = requests.get(self.url, headers={"Connection": "close"}, timeout=30)
                good = r.status_code == 200 and r.content
                err = None if good else "%d %r" % (r.status_code, r.content[:80])
            except requests.RequestException as e:
                err = repr(e)
            with self.lock:
                if err is None:
                    self.ok += 1
                else:
                    self.failed.append(err)

    def wait_more(self, n, timeout=60.0):
        """Until n more requests succeeded: the step had load on it."""
        with self.lock:
            target = self.ok + n
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if self.ok >= target:
                    return
            assert time.monotonic() < deadline, "the load stalled"
            time.sleep(0.02)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(60)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", ["cgunicornc", "gunicornc"])
def test_clients_drive_the_server_under_load(cg, tmp_path_factory, client):
    """The issue's yardstick: each client lists the workers, adds two,
    removes one, reloads and shuts the server down while requests flow,
    and none of those requests fails."""
    if client == "gunicornc":
        site = cgtest.pinned_site(tmp_path_factory.mktemp("gunicorn-site"), "gunicorn",
                                  "packaging")
    srv = start(cg, "-k", "gthread", "--threads", "4", "--graceful-timeout", "30", workers=2)
    path = default_path(srv)

    def run(cmd):
        if client == "cgunicornc":
            r = cgunicornc("-s", path, "--json", *cmd.split())
        else:
            code = ("import sys; sys.path.insert(0, %r); from gunicorn.ctl.cli import main; "
                    "sys.argv = ['gunicornc', '-s', %r, '-j', '-c', %r]; sys.exit(main())"
                    % (str(site), path, cmd))
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=60)
        assert r.returncode == 0, (cmd, r.stdout, r.stderr)
        return json.loads(r.stdout)

    load = Load(srv.url("/"))
    try:
        load.wait_more(50)
        assert len(run("show workers")["workers"]) == 2
        assert run("worker add 2")["total"] == 4
        srv.wait_workers(lambda p: len(p) == 4, 60, "4 workers")
        load.wait_more(50)
        assert run("worker remove 1")["total"] == 3
        srv.wait_workers(lambda p: len(p) == 3, 60, "3 workers")
        load.wait_more(50)
        before = set(srv.worker_pids())
        assert run("reload") == {"status": "reloading"}
        # a HUP replaces every worker, back to the configured number (as
        # Gunicorn's reload re-reads `workers`)
        srv.wait_workers(lambda p: len(p) == 2 and not (set(p) & before), 60,
                         "2 new workers")
        load.wait_more(50)
    finally:
        load.stop()
    assert load.failed == [], load.failed[:5]
    assert run("shutdown") == {"status": "shutting_down", "mode": "graceful"}
    assert srv.wait_exit(60) == 0
