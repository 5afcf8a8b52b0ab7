"""syslog: error-log and access records sent as Gunicorn's SysLogHandler
sends them ("<PRI>gunicorn.<prefix>.<error|access>: [pid] message" and a
NUL) to real receivers on loopback -- UDP, TCP, a unix datagram socket --
and serving that goes on when the receiver is absent or goes away."""

import os
import re
import signal
import socket
import tempfile
import threading
import time

import pytest
import requests

import cgtest

APP = "wsgiapp:app"


@pytest.fixture(autouse=True)
def env_clean(monkeypatch):
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)


class Receiver:
    """A syslog daemon stand-in: collects records (split on the NUL each
    one ends with) on a background thread."""

    def __init__(self, kind):
        self.kind = kind
        self.records = []
        self.cond = threading.Condition()
        self.stop = False
        self.conns = []
        if kind == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            self.addr = "udp://127.0.0.1:%d" % self.sock.getsockname()[1]
        elif kind == "tcp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", 0))
            self.sock.listen(16)
            self.addr = "tcp://127.0.0.1:%d" % self.sock.getsockname()[1]
        else:
            self.dir = tempfile.mkdtemp(prefix="cgsyslog-")
            self.path = os.path.join(self.dir, "log")
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(self.path)
            self.addr = "unix://" + self.path
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _add(self, data):
        with self.cond:
            self.records.append(data)
            self.cond.notify_all()

    def _run(self):
        bufs = {}
        while not self.stop:
            if self.kind == "tcp":
                try:
                    c, _ = self.sock.accept()
                    c.settimeout(0.01)
                    self.conns.append(c)
                    bufs[c] = b""
                except (socket.timeout, OSError):
                    pass
                for c in list(self.conns):
                    try:
                        data = c.recv(65536)
                    except socket.timeout:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        self.conns.remove(c)
                        c.close()
                        continue
                    bufs[c] += data
                    *whole, bufs[c] = bufs[c].split(b"\0")
                    for r in whole:
                        self._add(r + b"\0")
            else:
                try:
                    self._add(self.sock.recv(65536))
                except (socket.timeout, OSError):
                    pass

    def wait(self, pattern, timeout=15.0, count=1):
        """Records (decoded) matching the regex, once count of them came."""
        rx = re.compile(pattern, re.S)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [r.decode("utf-8", "replace") for r in self.records
                         if rx.search(r.decode("utf-8", "replace"))]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %d syslog records matching %r within %.0fs; got:\n%s"
                                         % (count, pattern, timeout,
                                            "\n".join(map(repr, self.records))))
                self.cond.wait(left)

    def texts(self):
        with self.cond:
            return [r.decode("utf-8", "replace") for r in self.records]

    def close(self):
        self.stop = True
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def receiver(request):
    r = Receiver(request.param)
    yield r
    r.close()


ACCESS_RE = (r'^<14>gunicorn\.web\.access: \[(\d+)\] 127\.0\.0\.1 - - \[[^]]+\] '
             r'"GET /pid\?q=1 HTTP/1\.1" 200 \d+ "-" "syslog-test"\x00$')


@pytest.mark.parametrize("receiver", ["udp", "tcp", "unix"], indirect=True)
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_error_and_access_records(receiver, worker):
    srv = cgtest.Server(APP, ["--log-syslog", "--log-syslog-to", receiver.addr,
                              "--log-syslog-prefix", "web", "-k", worker]).start()
    try:
        master = srv.proc.pid
        receiver.wait(r"^<14>gunicorn\.web\.error: \[%d\] Starting gunicorn [\d.]+\x00$" % master)
        wpid = srv.booted_pids()[0]
        receiver.wait(r"^<14>gunicorn\.web\.error: \[%d\] Booting worker with pid: %d\x00$"
                      % (wpid, wpid))
        r = requests.get(srv.url("/pid?q=1"), headers={"User-Agent": "syslog-test"},
                         timeout=10)
        assert r.status_code == 200
        (line,) = receiver.wait(ACCESS_RE)
        assert int(re.match(ACCESS_RE, line).group(1)) == wpid
        # the error log itself is still written
        assert "Booting worker with pid: %d" % wpid in srv.log()
        # without --access-logfile there is no access log on stdout
        assert "syslog-test" not in srv.stdout()
    finally:
        srv.stop()
    receiver.wait(r"^<14>gunicorn\.web\.error: \[%d\] Shutting down: Master\x00$" % master)


@pytest.mark.parametrize("receiver", ["unix"], indirect=True)
def test_facility_proc_name_and_no_access(receiver):
    srv = cgtest.Server(APP, ["--log-syslog", "--log-syslog-to", receiver.addr,
                              "--log-syslog-facility", "LOCAL3", "-n", "my:site",
                              "--disable-redirect-access-to-syslog",
                              "--access-logfile", "-"]).start()
    try:
        wpid = srv.booted_pids()[0]
        # local3 (19) * 8 + info (6) = 158; ':' in proc_name becomes '.'
        receiver.wait(r"^<158>gunicorn\.my\.site\.error: \[%d\] Booting worker" % wpid)
        for _ in range(3):
            assert requests.get(srv.url("/pid"), timeout=10).status_code == 200
        srv.wait_log(r'"GET /pid HTTP/1\.1" 200', count=3, source=srv.stdout)
    finally:
        srv.stop()
    # the worker's own last record comes after its access lines
    receiver.wait(r"^<158>gunicorn\.my\.site\.error: \[%d\] Worker exiting" % wpid)
    assert not [t for t in receiver.texts() if ".access:" in t or "GET /pid" in t]


def test_debug_records_and_levels():
    rx = Receiver("udp")
    try:
        srv = cgtest.Server(APP, ["--log-syslog", "--log-syslog-to", rx.addr,
                                  "--log-level", "debug"]).start()
        try:
            # debug (7) under user (1): <15>; the default prefix is the app
            rx.wait(r"^<15>gunicorn\.wsgiapp\.app\.error: \[%d\] " % srv.proc.pid)
        finally:
            srv.stop()
    finally:
        rx.close()


@pytest.mark.parametrize("addr", [
    "udp://127.0.0.1:{port}", "tcp://127.0.0.1:{port}", "unix:///nonexistent/cg/log"])
def test_absent_receiver_does_not_stop_serving(addr):
    srv = cgtest.Server(APP, ["--log-syslog", "--log-syslog-to",
                              addr.format(port=cgtest.free_port()), "--threads", "2"]).start()
    try:
        workers = set(srv.worker_pids())
        for _ in range(50):
            assert requests.get(srv.url("/pid"), timeout=10).status_code == 200
        assert set(srv.worker_pids()) == workers
    finally:
        srv.stop()
    assert srv.returncode == 0


def test_tcp_receiver_that_goes_away_and_comes_back():
    rx = Receiver("tcp")
    port = int(rx.addr.rsplit(":", 1)[1])
    srv = cgtest.Server(APP, ["--log-syslog", "--log-syslog-to", rx.addr]).start()
    try:
        wpid = srv.booted_pids()[0]
        assert requests.get(srv.url("/pid?one"), timeout=10).status_code == 200
        rx.wait(r'\[%d\] .*"GET /pid\?one ' % wpid)
        rx.close()  # the daemon stops: listener and connections closed
        for _ in range(30):
            assert requests.get(srv.url("/pid?gone"), timeout=10).status_code == 200
        assert srv.worker_pids() == {wpid}
        # a new daemon on the same port: the worker connects again (at most
        # one attempt a second), and its records arrive
        back = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        back.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        back.bind(("127.0.0.1", port))
        back.listen(16)
        back.settimeout(0.2)
        deadline = time.monotonic() + 15
        got = b""
        conn = None
        while b"GET /pid?back" not in got:
            assert time.monotonic() < deadline, got
            requests.get(srv.url("/pid?back"), timeout=10)
            if conn is None:
                try:
                    conn, _ = back.accept()
                    conn.settimeout(0.2)
                except socket.timeout:
                    continue
            try:
                got += conn.recv(65536)
            except socket.timeout:
                pass
        if conn:
            conn.close()
        back.close()
        assert srv.worker_pids() == {wpid}
    finally:
        srv.stop()


@pytest.mark.parametrize("args, message", [
    (["--log-syslog-facility", "nosuch"], "unknown facility name"),
    (["--log-syslog-to", "syslog://host"], "invalid syslog address"),
    (["--log-syslog-to", "udp://host:12x"], "'12x' is not a valid port number."),
])
def test_bad_settings_exit_1(args, message):
    res = cgtest.run_cg(["--log-syslog"] + args + ["-b", "127.0.0.1:%d" % cgtest.free_port(),
                                                   APP])
    assert res.returncode == 1
    assert message in res.stderr


# ---- syslog with logconfig, logconfig_dict, logconfig_json ----------------------
#
# Gunicorn's Logger.setup adds its syslog handlers to gunicorn.error and (unless
# disable_redirect_access_to_syslog) gunicorn.access, then runs the logging
# configuration: a logger the configuration names gets the handlers it lists
# instead, one it does not name keeps Gunicorn's handlers, syslog included.

def _logconfig(tmp_path, kind, named, logfile):
    """Arguments configuring `named` (gunicorn.error or gunicorn.access) to
    write "<logger name> <message>" lines to logfile, through a
    logconfig_dict, a logconfig_json or a logconfig (ini) file."""
    if kind == "ini":
        path = tmp_path / "log.ini"
        path.write_text(
            "[loggers]\nkeys=root,named\n\n[handlers]\nkeys=file\n\n"
            "[formatters]\nkeys=plain\n\n"
            "[logger_root]\nlevel=WARNING\nhandlers=\n\n"
            "[logger_named]\nlevel=INFO\nhandlers=file\npropagate=0\nqualname=%s\n\n"
            "[handler_file]\nclass=FileHandler\nformatter=plain\nargs=(%r,)\n\n"
            "[formatter_plain]\nformat=%%(name)s %%(message)s\n" % (named, str(logfile)))
        return ["--log-config", str(path)]
    config = {
        "version": 1,
        "root": {"level": "WARNING", "handlers": []},
        "loggers": {named: {"level": "INFO", "handlers": ["file"], "propagate": False}},
        "handlers": {"file": {"class": "logging.FileHandler", "formatter": "plain",
                              "filename": str(logfile)}},
        "formatters": {"plain": {"format": "%(name)s %(message)s"}},
    }
    if kind == "json":
        import json
        path = tmp_path / "log.json"
        path.write_text(json.dumps(config))
        return ["--log-config-json", str(path)]
    conf = tmp_path / "conf.py"
    conf.write_text("logconfig_dict = %r\n" % (config,))
    return ["-c", str(conf)]


def _wait_file(srv, path, pattern):
    """The file's text once pattern is in it."""
    srv.wait_log(pattern, timeout=10.0,
                 source=lambda: path.read_text() if path.exists() else "")
    return path.read_text()


def _drained(rx):
    """The records, once everything sent before now has been read: UDP on
    loopback keeps order, so a marker sent now arrives after them all."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"<0>marker\x00", ("127.0.0.1", int(rx.addr.rsplit(":", 1)[1])))
    rx.wait(r"^<0>marker\x00$")
    return [t for t in rx.texts() if t != "<0>marker\x00"]


@pytest.mark.parametrize("kind", ["dict", "json", "ini"])
@pytest.mark.parametrize("named", ["gunicorn.access", "gunicorn.error"])
def test_syslog_with_logconfig_keeps_unnamed_loggers(tmp_path, kind, named):
    rx = Receiver("udp")
    logfile = tmp_path / "app.log"
    try:
        # workers=0: the error log may not show "Booting worker" to wait for
        srv = cgtest.Server(APP, _logconfig(tmp_path, kind, named, logfile) + [
            "--log-syslog", "--log-syslog-to", rx.addr, "--log-syslog-prefix", "web"],
            workers=0).start()
        try:
            r = requests.get(srv.url("/pid?q=1"), headers={"User-Agent": "syslog-test"},
                             timeout=10)
            assert r.status_code == 200
            wpid = int(r.text)
            if named == "gunicorn.access":
                # access lines: the configured file only
                text = _wait_file(srv, logfile, r'^gunicorn\.access 127\.0\.0\.1 - - \[[^]]+\] '
                                           r'"GET /pid\?q=1 HTTP/1\.1" 200 ')
                assert "gunicorn.error" not in text
                # error records: Gunicorn's syslog handler kept
                rx.wait(r"^<14>gunicorn\.web\.error: \[(\d+)\] Booting worker with pid: \1\x00$")
            else:
                text = _wait_file(srv, logfile, r"^gunicorn\.error Booting worker with pid: \d+$")
                assert "gunicorn.access" not in text
                (line,) = rx.wait(ACCESS_RE)
                assert int(re.match(ACCESS_RE, line).group(1)) == wpid
        finally:
            srv.stop()
        records = _drained(rx)
        other = ".access:" if named == "gunicorn.access" else ".error:"
        assert not [t for t in records if other in t], records
        if named == "gunicorn.access":
            assert any(re.match(r"<14>gunicorn\.web\.error: \[%d\] Shutting down: Master\x00$"
                                % srv.proc.pid, t) for t in records), records
    finally:
        rx.close()


@pytest.mark.parametrize("case", ["defaults", "no-redirect"])
def test_syslog_dropped_where_logconfig_names_the_loggers(tmp_path, case):
    rx = Receiver("udp")
    logfile = tmp_path / "app.log"
    try:
        if case == "defaults":
            # no "loggers": CONFIG_DEFAULTS' configure both gunicorn loggers
            conf = tmp_path / "conf.py"
            conf.write_text("logconfig_dict = {'root': {'level': 'INFO', 'handlers': []}}\n")
            args = ["-c", str(conf)]
        else:
            # gunicorn.error configured; gunicorn.access has no syslog handler
            args = _logconfig(tmp_path, "dict", "gunicorn.error", logfile) + [
                "--disable-redirect-access-to-syslog"]
        srv = cgtest.Server(APP, args + ["--log-syslog", "--log-syslog-to", rx.addr],
                            workers=0).start()
        try:
            assert requests.get(srv.url("/pid"), timeout=10).status_code == 200
            if case == "defaults":
                srv.wait_log(r"Booting worker with pid")
                srv.wait_log(r'"GET /pid HTTP/1\.1" 200', source=srv.stdout)
            else:
                _wait_file(srv, logfile, r"^gunicorn\.error Booting worker with pid: \d+$")
        finally:
            srv.stop()
        assert _drained(rx) == []
    finally:
        rx.close()
