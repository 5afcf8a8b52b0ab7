"""Process life of the master: hung-worker timeout with the app's stack,
systemd (socket activation + notifications + watchdog), daemon mode and
pidfile, process titles, --reuse-port, --user/--group, WINCH."""

import os
import pwd
import grp
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import psutil
import pytest
import requests

import cgtest


def _title(pid):
    return " ".join(psutil.Process(pid).cmdline())


@pytest.mark.timeout(60)
def test_hung_app_times_out_with_its_stack(cg):
    srv = cg("wsgiapp:app", args=["-w", "1", "--timeout", "2"])
    (victim,) = srv.worker_pids()
    t0 = time.monotonic()
    try:
        r = requests.get(srv.url("/sleep?t=10"), timeout=20)
        status = r.status_code
    except requests.ConnectionError:
        status = None       # a closed connection is also acceptable
    elapsed = time.monotonic() - t0
    assert status in (500, None), status
    assert elapsed < 8, elapsed
    srv.wait_log(r"\[CRITICAL\] WORKER TIMEOUT \(pid:%d\)$" % victim)
    log = srv.log()
    # the app's Python stack at the moment of the abort
    assert "aborted (SIGABRT) while the application was running" in log
    assert re.search(r'File ".*wsgiapp\.py", line \d+, in raw_app\n\s+time\.sleep\(t\)', log), log
    # a new worker serves the next request
    new = srv.wait_workers(lambda p: len(p) == 1 and victim not in p, 10)
    assert requests.get(srv.url("/pid"), timeout=10).text == str(min(new))


class Notifications:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, tmpdir):
        self.path = os.path.join(tmpdir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
            except OSError:
                return

    def wait(self, pred, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(list(self.messages)):
                return True
            time.sleep(0.05)
        return False

    def close(self):
        self._stop = True
        self._t.join(2)
        self.sock.close()


@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate (Debian package systemd) not installed")
def test_systemd_socket_activation_and_notify(tmp_path):
    port = cgtest.free_port()
    note = Notifications(str(tmp_path))
    env = dict(os.environ, NOTIFY_SOCKET=note.path, WATCHDOG_USEC="400000")
    log_path = str(tmp_path / "error.log")
    cmd = ["systemd-socket-activate", "-l", "127.0.0.1:%d" % port,
           "-E", "NOTIFY_SOCKET", "-E", "WATCHDOG_USEC"]
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if var in os.environ:      # systemd-socket-activate passes only -E variables
            cmd += ["-E", var]
    cmd += [
           cgtest.cg_bin(), "-w", "2", "-b", "127.0.0.1:1", "--error-logfile", log_path,
           "--log-level", "debug", "wsgiapp:app"]
    proc = subprocess.Popen(cmd, cwd=cgtest.APPS_DIR, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # systemd-socket-activate execs the server on the first connection
        deadline = time.monotonic() + 10
        while True:
            try:
                r = requests.get("http://127.0.0.1:%d/pid" % port, timeout=20)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert r.status_code == 200
        assert note.wait(lambda m: "READY=1\nSTATUS=Gunicorn arbiter booted" in m)
        log = open(log_path).read()
        assert "Listening at: http://127.0.0.1:%d (%d)" % (port, proc.pid) in log
        # the fd came from systemd: --bind was ignored (it shows only in the
        # debug configuration dump), LISTEN_* removed
        assert "http://127.0.0.1:1 " not in log
        assert note.wait(lambda m: "STATUS=Gunicorn arbiter: 2 workers" in m)
        assert note.wait(lambda m: m.count("WATCHDOG=1") >= 3, timeout=5)
        proc.send_signal(signal.SIGHUP)
        assert note.wait(lambda m: any(x.startswith("RELOADING=1\nMONOTONIC_USEC=") for x in m))
        assert note.wait(lambda m: any(x.startswith("READY=1\nSTATUS=Gunicorn arbiter: 2 workers")
                                       for x in m))
        assert requests.get("http://127.0.0.1:%d/" % port, timeout=10).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert note.wait(lambda m: "STOPPING=1" in m)
        m = note.messages
        assert m.index("STOPPING=1") > m.index("READY=1\nSTATUS=Gunicorn arbiter booted")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        note.close()
        stderr = proc.stderr.read().decode(errors="replace")
        assert not cgtest.sanitizer_lines(stderr), stderr


@pytest.mark.timeout(60)
def test_daemon_pidfile_and_winch(tmp_path):
    port = cgtest.free_port()
    pidfile = str(tmp_path / "d.pid")
    log_path = str(tmp_path / "error.log")
    r = subprocess.run([cgtest.cg_bin(), "-D", "--pid", pidfile, "-w", "2", "-b",
                        "127.0.0.1:%d" % port, "--error-logfile", log_path, "wsgiapp:app"],
                       cwd=cgtest.APPS_DIR, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=20)
    assert r.returncode == 0, r.stderr
    pid = None
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if os.path.exists(pidfile) and open(pidfile).read().strip():
                pid = int(open(pidfile).read())
                p = psutil.Process(pid)
                if len(p.children()) == 2:
                    break
            time.sleep(0.1)
        assert pid is not None
        p = psutil.Process(pid)
        # setsid() then a second fork: a new session the daemon does not lead
        assert os.getsid(pid) not in (pid, os.getsid(0))
        assert p.ppid() != os.getpid()        # ...and detached from us
        assert os.readlink("/proc/%d/fd/0" % pid) == "/dev/null"
        assert os.readlink("/proc/%d/fd/2" % pid) == "/dev/null"
        assert requests.get("http://127.0.0.1:%d/" % port, timeout=10).status_code == 200
        # WINCH in daemon mode: the workers stop, the master stays
        os.kill(pid, signal.SIGWINCH)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and p.children():
            time.sleep(0.1)
        assert p.children() == [] and p.is_running()
        assert "[INFO] graceful stop of workers" in open(log_path).read()
        os.kill(pid, signal.SIGTTIN)       # and come back on demand
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(p.children()) != 1:
            time.sleep(0.1)
        assert len(p.children()) == 1
        os.kill(pid, signal.SIGTERM)
        p.wait(15)
        pid = None
        assert not os.path.exists(pidfile)
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
    log = open(log_path).read()
    assert not cgtest.sanitizer_lines(log), log


@pytest.mark.timeout(60)
def test_process_titles(cg):
    srv = cg("wsgiapp:app", args=["-w", "2"])
    assert _title(srv.pid) == "cgunicorn: master [wsgiapp:app]"
    for w in srv.worker_pids():
        assert _title(w) == "cgunicorn: worker [wsgiapp:app]"
    named = cg("wsgiapp:app", args=["-w", "1", "-n", "shop"])
    assert _title(named.pid) == "cgunicorn: master [shop]"
    (w,) = named.worker_pids()
    assert _title(w) == "cgunicorn: worker [shop]"
    # the rewritten block did not break the environment the app sees
    assert requests.get(named.url("/"), timeout=10).status_code == 200


@pytest.mark.timeout(60)
def test_reuse_port_workers_bind_their_own_sockets(cg):
    srv = cg("wsgiapp:app", args=["-w", "2", "--reuse-port"])
    master = psutil.Process(srv.pid)
    assert [c for c in master.connections("inet") if c.status == "LISTEN"] == []
    for w in srv.worker_pids():
        ls = [c for c in psutil.Process(w).connections("inet") if c.status == "LISTEN"]
        assert [c.laddr.port for c in ls] == [srv.port]
    srv.wait_log(r"\[INFO\] Listening at:  \(%d\)$" % srv.pid)
    seen = set()
    for _ in range(40):
        seen.add(requests.get(srv.url("/pid"), timeout=10).text)
    assert seen <= {str(p) for p in srv.worker_pids()}


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_user_group_switch_in_workers(cg, tmp_path):
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    sock = str(tmp_path / "s.sock")
    os.chmod(str(tmp_path), 0o755)
    srv = cg("wsgiapp:app", args=["-w", "1", "-u", "nobody", "-g", group],
             bind=["127.0.0.1:%d" % cgtest.free_port(), "unix:" + sock])
    assert psutil.Process(srv.pid).uids().real == 0
    (w,) = srv.worker_pids()
    assert psutil.Process(w).uids().effective == nobody.pw_uid
    assert psutil.Process(w).gids().effective == nobody.pw_gid
    assert _groups(w) == {nobody.pw_gid}       # root's supplementary groups dropped
    st = os.stat(sock)
    assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert requests.get(srv.url("/"), timeout=10).status_code == 200
    # --initgroups: the user's own supplementary groups
    srv2 = cg("wsgiapp:app", args=["-w", "1", "-u", "nobody", "-g", group, "--initgroups"])
    (w2,) = srv2.worker_pids()
    want = {g.gr_gid for g in grp.getgrall() if "nobody" in g.gr_mem} | {nobody.pw_gid}
    assert _groups(w2) == want
    assert requests.get(srv2.url("/"), timeout=10).status_code == 200


def _groups(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("Groups:"):
            return {int(g) for g in line.split()[1:]}
    return set()


@pytest.mark.timeout(60)
def test_worker_ignores_winch_and_quits_on_quit(cg):
    srv = cg("wsgiapp:app", args=["-w", "1"])
    (w,) = srv.worker_pids()
    os.kill(w, signal.SIGWINCH)
    time.sleep(0.5)
    assert psutil.Process(w).is_running() and srv.worker_pids() == {w}
    os.kill(w, signal.SIGQUIT)
    srv.wait_workers(lambda p: len(p) == 1 and w not in p, 10)
    assert "Worker (pid:%d) exited" not in srv.log()   # quick exit is status 0
    assert requests.get(srv.url("/"), timeout=10).status_code == 200


@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate (Debian package systemd) not installed")
def test_systemd_usr2_passes_sockets_as_listen_fds(tmp_path):
    port = cgtest.free_port()
    log_path = str(tmp_path / "error.log")
    cmd = ["systemd-socket-activate", "-l", "127.0.0.1:%d" % port]
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if var in os.environ:
            cmd += ["-E", var]
    cmd += [cgtest.cg_bin(), "-w", "1", "--error-logfile", log_path, "wsgiapp:app"]
    proc = subprocess.Popen(cmd, cwd=cgtest.APPS_DIR, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    new = None
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get("http://127.0.0.1:%d/" % port, timeout=20)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        proc.send_signal(signal.SIGUSR2)
        new = cgtest.new_master(proc.pid, lambda: cgtest.read_text(log_path), workers=1)
        log = open(log_path).read()
        # the new master got the socket as LISTEN_FDS=1 at fd 3 and shows it
        assert "Listening at: http://127.0.0.1:%d (%d)" % (port, new.pid) in log
        assert [c.fd for c in new.connections("inet") if c.status == "LISTEN"] == [3]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "Master has been promoted." not in open(log_path).read():
            time.sleep(0.1)
        assert "Master has been promoted." in open(log_path).read()
        pid = int(requests.get("http://127.0.0.1:%d/pid" % port, timeout=10).text)
        assert pid in [c.pid for c in new.children()]
    finally:
        if proc.poll() is None:
            if new is None:
                # a failed test must not leave a new master (a child) running
                try:
                    kids = psutil.Process(proc.pid).children(recursive=True)
                except psutil.Error:
                    kids = []
                for k in kids:
                    try:
                        k.kill()
                    except psutil.Error:
                        pass
            proc.kill()
            proc.wait(15)
        if new is not None:
            try:
                new.terminate()
                new.wait(15)
            except psutil.Error:
                pass
    assert not cgtest.sanitizer_lines(open(log_path).read())
