"""Helpers for the integration tests: start the real cgunicorn binary, talk
raw HTTP to it, read its logs.

Every wait here is bounded: a test that hangs is a test that lies.
"""

import errno
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
APPS_DIR = os.path.join(HERE, "apps")
# /work/shared sits beside the repository (../shared), in CI too.
SHARED_DIR = os.environ.get("CG_SHARED_DIR") or os.path.join(os.path.dirname(REPO_ROOT), "shared")
PYTHON = "/usr/bin/python3"

BOOT_TIMEOUT = float(os.environ.get("CG_BOOT_TIMEOUT", "15"))
STOP_TIMEOUT = 10.0

# Anything a sanitizer prints means the run failed, whatever the test saw.
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "SUMMARY: AddressSanitizer",
    "SUMMARY: UndefinedBehaviorSanitizer",
    "runtime error:",
)

BOOTING_RE = re.compile(r"Booting worker with pid: (\d+)")


def load_corpus():
    """The cases of ../shared/conformance/gunicorn-requests.json."""
    path = os.path.join(SHARED_DIR, "conformance", "gunicorn-requests.json")
    with open(path) as f:
        return json.load(f)["cases"]


def cg_bin():
    path = os.environ.get("CGUNICORN_BIN") or os.path.join(REPO_ROOT, "build", "cgunicorn")
    if not os.path.isabs(path):
        path = os.path.join(REPO_ROOT, path)
    return path


def front_end(path=None):
    """Which front end the cgunicorn under test is: "console" for the
    pip-installed console script (a Python script: its master is a Python
    process, workers fork from it, USR2 re-executes sys.executable), else
    "standalone" (the executable that embeds Python in its workers)."""
    path = path or cg_bin()
    try:
        with open(path, "rb") as f:
            return "console" if f.read(2) == b"#!" else "standalone"
    except OSError:
        return "standalone"


def console_python(path=None):
    """The interpreter of the console script (its #! line), None for the
    standalone executable."""
    path = path or cg_bin()
    if front_end(path) != "console":
        return None
    with open(path, "rb") as f:
        line = f.readline().decode().strip()
    return line[2:].split()[0]


def setting_names():
    """The names of the settings table in its (Gunicorn's definition) order,
    from the front end under test: the standalone's --dump-settings-json, or
    the installed package's cgunicorn._core.settings()."""
    py = console_python()
    if py is None:
        out = subprocess.run([cg_bin(), "--dump-settings-json"], check=True,
                             capture_output=True, text=True).stdout
        return [s["name"] for s in json.loads(out)]
    out = subprocess.run([py, "-c", "import json; from cgunicorn import _core; "
                          "print(json.dumps([r[0] for r in _core.settings()]))"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def live_children(pid):
    """The pids of `pid`'s children that are not zombies; empty when `pid` is
    gone. A child reaped between the listing and its status is left out
    rather than emptying the whole answer."""
    try:
        kids = psutil.Process(pid).children()
    except psutil.Error:
        return set()
    live = set()
    for k in kids:
        try:
            if k.status() != psutil.STATUS_ZOMBIE:
                live.add(k.pid)
        except psutil.Error:
            pass
    return live


def new_master(old_pid, log, workers=1, timeout=15.0):
    """After a USR2 to old_pid: the psutil.Process of the new master, found
    as the child of old_pid that logged "Starting gunicorn" in log() (a
    callable returning the error log's text), once it has `workers` live
    children. By the log, not the process title, so that the title stays
    something tests assert on."""
    deadline = time.monotonic() + timeout
    while True:
        text = log()
        try:
            kids = psutil.Process(old_pid).children()
        except psutil.Error:
            kids = []
        for k in kids:
            if "[%d] [INFO] Starting gunicorn" % k.pid not in text:
                continue
            if len(live_children(k.pid)) >= workers:
                return k
        if time.monotonic() > deadline:
            raise AssertionError("no new master with %d workers under %d within %.0fs\n"
                                 "--- log ---\n%s" % (workers, old_pid, timeout, text))
        time.sleep(0.05)


def make_wheel(outdir, name, version, files):
    """Write a pure-Python wheel of distribution `name` holding files
    ({path in site-packages: text}) into outdir and return its path: a
    package pip installs with --no-index and no build backend."""
    import base64
    import hashlib
    import zipfile
    dist = "%s-%s" % (name.replace("-", "_"), version)
    info = dist + ".dist-info"
    files = dict(files)
    files[info + "/METADATA"] = "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version)
    files[info + "/WHEEL"] = ("Wheel-Version: 1.0\nGenerator: cgtest\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n")
    record = []
    for path, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (path, digest, len(data)))
    record.append("%s/RECORD,," % info)
    files[info + "/RECORD"] = "\n".join(record) + "\n"
    whl = os.path.join(str(outdir), "%s-py3-none-any.whl" % dist)
    with zipfile.ZipFile(whl, "w", zipfile.ZIP_DEFLATED) as z:
        for path, text in files.items():
            z.writestr(path, text)
    return whl


def pinned_version(name):
    """The version tests/requirements.txt pins for the PyPI package name."""
    path = os.path.join(os.path.dirname(__file__), "..", "requirements.txt")
    with open(path) as f:
        for line in f:
            if line.split("==", 1)[0].strip().lower() == name.lower():
                return line.split("==", 1)[1].strip()
    raise AssertionError("%s is not pinned in tests/requirements.txt" % name)


def _has_dist(site, name):
    """Whether site holds the pinned version of the distribution name."""
    def norm(s):
        return re.sub(r"[-_.]+", "_", s).lower()
    want = (norm(name), pinned_version(name))
    for d in os.listdir(site):
        if d.endswith(".dist-info"):
            dist, _, ver = d[:-len(".dist-info")].rpartition("-")
            if (norm(dist), ver) == want:
                return True
    return False


def pinned_site(folder, *names):
    """A folder holding the pinned PyPI packages names (tests/requirements.txt
    from its "# test-site" line), for a server's --pythonpath or the test's
    own sys.path: `make test-site`'s (CG_TEST_SITE), which has them all, or
    else folder, where they are installed now (without their dependencies:
    name them all). Skips the test where PyPI cannot be reached."""
    site = os.environ.get("CG_TEST_SITE")
    if site and os.path.isfile(os.path.join(site, ".installed")) and \
            all(_has_dist(site, n) for n in names):
        return site
    res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--only-binary=:all:", "--disable-pip-version-check",
                          "--target", str(folder)] +
                         ["%s==%s" % (n, pinned_version(n)) for n in names],
                         capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        import pytest
        pytest.skip("%s could not be installed: %s" % (", ".join(names), res.stderr[-500:]))
    return folder


def free_port():
    """A TCP port nobody listens on right now (the usual small race applies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sanitizer_lines(text):
    return [line for line in text.splitlines()
            if any(m in line for m in SANITIZER_MARKERS)]


def _count_workers_flag(args):
    """The -w/--workers value among args, 1 when absent."""
    n = 1
    for i, a in enumerate(args):
        if a in ("-w", "--workers") and i + 1 < len(args):
            n = int(args[i + 1])
        elif a.startswith("--workers="):
            n = int(a.split("=", 1)[1])
        elif a.startswith("-w") and a[2:].isdigit():
            n = int(a[2:])
    return n


class Server:
    """One cgunicorn master started for a test.

    bind: list of addresses for -b; None means one TCP port on 127.0.0.1.
    The error log (stderr) and stdout (access log with `-`) go to files in
    tmpdir. start() returns once the first bound address accepts
    connections and the expected number of workers logged
    `Booting worker with pid`.
    """

    def __init__(self, app, args=(), bind=None, cwd=APPS_DIR, env=None,
                 tmpdir=None, workers=None, cli_bind=True, binary=None):
        self.app = app
        # binary: another cgunicorn than cg_bin() (tests of both front ends)
        self.binary = binary
        # cli_bind=False: the addresses come from elsewhere (a config file);
        # bind only says where to wait for the server.
        self.cli_bind = cli_bind
        self.args = list(args)
        self.cwd = cwd
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix="cgtest-")
        self.port = None
        if bind is None:
            self.port = free_port()
            bind = ["127.0.0.1:%d" % self.port]
        else:
            for b in bind:
                m = re.fullmatch(r"(?:tcp://)?127\.0\.0\.1:(\d+)", b)
                if m and self.port is None:
                    self.port = int(m.group(1))
        self.bind = list(bind)
        self.expected_workers = workers if workers is not None else _count_workers_flag(self.args)
        self.env = merged_env(env)
        if "XDG_RUNTIME_DIR" not in (env or {}):
            # the default control socket, $XDG_RUNTIME_DIR/gunicorn.ctl, is
            # then this server's own: parallel servers never take it over
            self.env["XDG_RUNTIME_DIR"] = self.tmpdir
        self.proc = None
        self.returncode = None
        self.log_path = os.path.join(self.tmpdir, "error.log")
        self.out_path = os.path.join(self.tmpdir, "stdout.log")
        self._known_children = set()

    # -- life cycle ---------------------------------------------------------

    def command(self):
        cmd = [self.binary or cg_bin()]
        for b in (self.bind if self.cli_bind else ()):
            cmd += ["-b", b]
        cmd += self.args
        if self.app is not None:
            cmd.append(self.app)
        return cmd

    def spawn(self):
        self._err = open(self.log_path, "wb")
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(self.command(), cwd=self.cwd, env=self.env,
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err)
        return self

    def start(self):
        self.spawn()
        self.wait_ready()
        return self

    def wait_ready(self, timeout=BOOT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self._finish(rc)
                raise AssertionError("cgunicorn exited with %d before it was ready\n"
                                     "command: %s\n--- error log ---\n%s"
                                     % (rc, " ".join(self.command()), self.log()))
            if (len(self.booted_pids()) >= self.expected_workers
                    and self._accepts()):
                break
            if time.monotonic() > deadline:
                raise AssertionError("cgunicorn not ready after %.0fs (%d/%d workers booted)\n"
                                     "command: %s\n--- error log ---\n%s"
                                     % (timeout, len(self.booted_pids()), self.expected_workers,
                                        " ".join(self.command()), self.log()))
            time.sleep(0.05)
        self._known_children.update(self.worker_pids())

    def _accepts(self):
        """Whether the first bound address takes a connection (which we
        close at once: a worker reads EOF and drops it silently)."""
        addr = self.bind[0]
        try:
            if addr.startswith("unix:"):
                path = addr[5:]
                if path.startswith("//"):
                    path = path[2:]
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                target = path
            else:
                host, port = addr.replace("tcp://", "").rsplit(":", 1)
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                target = (host, int(port))
            s.settimeout(1.0)
            try:
                s.connect(target)
            finally:
                s.close()
            return True
        except OSError:
            return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Wait for the master to exit; returns its exit status or None."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._finish(rc)
        return rc

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Stop the master (SIGTERM, then SIGKILL after timeout) and any
        worker it left behind. Returns the master's exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._known_children.update(self.worker_pids())
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self._finish(self.proc.returncode)
        self._kill_leftovers()
        return self.returncode

    def _kill_leftovers(self):
        for pid in self._known_children:
            try:
                p = psutil.Process(pid)
                if p.status() != psutil.STATUS_ZOMBIE and p.ppid() in (1, self.proc.pid, 0):
                    p.kill()
            except psutil.Error:
                pass

    def _finish(self, rc):
        self.returncode = rc
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f and not f.closed:
                f.close()

    # -- processes ------------------------------------------------------------

    @property
    def pid(self):
        return self.proc.pid

    def worker_pids(self):
        """Live (non-zombie) child processes of the master."""
        try:
            kids = psutil.Process(self.proc.pid).children()
        except psutil.Error:
            return set()
        pids = set()
        for k in kids:
            try:
                if k.status() != psutil.STATUS_ZOMBIE:
                    pids.add(k.pid)
            except psutil.Error:
                pass
        self._known_children.update(pids)
        return pids

    def wait_workers(self, pred, timeout, what="worker set"):
        """Poll worker_pids() until pred(pids) holds; returns the pids."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.worker_pids()
            if pred(pids):
                return pids
            if time.monotonic() > deadline:
                raise AssertionError("%s not reached within %.1fs; workers now %s\n--- log ---\n%s"
                                     % (what, timeout, sorted(pids), self.log()))
            time.sleep(0.05)

    def booted_pids(self):
        return [int(p) for p in BOOTING_RE.findall(self.log())]

    # -- logs -----------------------------------------------------------------

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stdout(self):
        try:
            with open(self.out_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=5.0, count=1, source=None):
        """Wait until regex pattern matches count times in the error log
        (or source(), e.g. self.stdout). Returns the list of matches."""
        source = source or self.log
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            found = list(rx.finditer(source()))
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError("log never matched %r (%d/%d) within %.1fs\n--- log ---\n%s"
                                     % (pattern, len(found), count, timeout, source()))
            time.sleep(0.05)

    def sanitizer_report(self):
        return sanitizer_lines(self.log()) + sanitizer_lines(self.stdout())

    # -- talking ------------------------------------------------------------

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def connect(self, timeout=10.0):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def raw(self, data, half_close=False, timeout=10.0, pieces=None, delay=0.0):
        """Send data on a fresh connection and return every byte received
        until the server closes. pieces: split positions to send data in
        several writes, delay seconds apart. half_close: shut our write side
        after sending, so a truncated request reaches EOF."""
        with self.connect(timeout) as s:
            return exchange(s, data, half_close=half_close, timeout=timeout,
                            pieces=pieces, delay=delay)

    def get_json(self, path="/", timeout=10.0):
        status, headers, body = parse_response(self.raw(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n", timeout=timeout))
        assert status.split()[1] == "200", (status, body)
        return json.loads(body)


def exchange(s, data, half_close=False, timeout=10.0, pieces=None, delay=0.0):
    s.settimeout(timeout)
    try:
        if pieces:
            last = 0
            for p in list(pieces) + [len(data)]:
                if p > last:
                    s.sendall(data[last:p])
                    last = p
                    if p < len(data) and delay:
                        time.sleep(delay)
        else:
            s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
    except TimeoutError:
        raise
    except OSError:
        # The server may answer (and close, or reset) before reading all we
        # send; what it did send is still read below.
        pass
    return read_until_close(s, timeout)


def read_until_close(s, timeout=10.0):
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("server did not close the connection within %.1fs; got %r"
                               % (timeout, b"".join(chunks)[:300]))
        s.settimeout(left)
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            break
        except socket.timeout:
            continue
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def split_head(data):
    """(status line, [(name, value)...], rest) of one response in data."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError("incomplete response head: %r" % data[:500])
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name, value.strip()))
    return lines[0], headers, rest


def header(headers, name, default=None):
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return default


def dechunk(body):
    """Decode a chunked body; returns (payload, complete)."""
    out = []
    while True:
        line, sep, body = body.partition(b"\r\n")
        if not sep:
            return b"".join(out), False
        size = int(line.split(b";")[0], 16)
        if size == 0:
            return b"".join(out), body.startswith(b"\r\n") or b"\r\n\r\n" in body
        if len(body) < size + 2:
            return b"".join(out) + body[:size], False
        out.append(body[:size])
        body = body[size + 2:]


def parse_response(data, head_request=False):
    """Parse the first response in data (interim 1xx responses skipped).
    Returns (status line, headers, body) with chunked bodies decoded."""
    while True:
        status, headers, rest = split_head(data)
        code = int(status.split()[1])
        if 100 <= code < 200 and code != 101:
            data = rest
            continue
        break
    if head_request or code in (204, 304):
        return status, headers, b""
    te = header(headers, "Transfer-Encoding")
    if te and "chunked" in te.lower():
        body, complete = dechunk(rest)
        assert complete, "chunked body not terminated: %r" % rest[-100:]
        return status, headers, body
    cl = header(headers, "Content-Length")
    if cl is not None:
        return status, headers, rest[:int(cl)]
    return status, headers, rest


def merged_env(env):
    """os.environ updated with env, where a value of None removes the
    variable."""
    e = dict(os.environ)
    for k, v in (env or {}).items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


def run_cg(args, cwd=APPS_DIR, timeout=30.0, env=None, binary=None):
    """Run cgunicorn to completion (for runs that must exit on their own).
    Returns CompletedProcess with text stdout/stderr; kills it on timeout
    and raises."""
    e = merged_env(env)
    proc = subprocess.Popen([binary or cg_bin()] + list(args), cwd=cwd, env=e,
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kids = []
        try:
            kids = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            pass
        proc.kill()
        for k in kids:
            try:
                k.kill()
            except psutil.Error:
                pass
        out, err = proc.communicate()
        raise AssertionError("cgunicorn %s did not exit within %.0fs\n--- stderr ---\n%s"
                             % (" ".join(args), timeout, err.decode("utf-8", "replace")))
    return subprocess.CompletedProcess(proc.args, proc.returncode,
                                       out.decode("utf-8", "replace"),
                                       err.decode("utf-8", "replace"))


def get_close(port, path="/"):
    """One `Connection: close` GET on a new connection: the raw answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode())
        return read_until_close(s, timeout=10)
    finally:
        s.close()


def wait_port_free(port, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                return True
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise
        time.sleep(0.05)
    return False


def wait_readable(s, timeout):
    r, _, _ = select.select([s], [], [], timeout)
    return bool(r)


class Load:
    """A load generator on loopback: `conns` threads, each sending one
    `GET path` per connection (Connection: close, as the sync worker answers)
    back to back until stop(). Counts successes and every kind of failure
    (refused, reset, timeout, non-200, short answer), so a test can assert
    that a reload or an upgrade lost nothing."""

    def __init__(self, port, conns=64, path="/", host="127.0.0.1", timeout=10.0):
        import threading
        self.port, self.conns, self.path, self.host = port, conns, path, host
        self.timeout = timeout
        self.ok = 0
        self.failures = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(conns)]
        self._req = ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                     % (path, host)).encode()

    def _fail(self, kind):
        with self._lock:
            self.failures[kind] = self.failures.get(kind, 0) + 1

    def _one(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect((self.host, self.port))
            s.sendall(self._req)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            self._fail("timeout")
            return
        except ConnectionRefusedError:
            self._fail("refused")
            return
        except ConnectionResetError:
            self._fail("reset")
            return
        except OSError as e:
            self._fail("oserror %s" % errno.errorcode.get(e.errno, e.errno))
            return
        finally:
            s.close()
        if not data.startswith(b"HTTP/1.1 200 "):
            self._fail("bad answer %r" % data[:20])
            return
        with self._lock:
            self.ok += 1

    def _run(self):
        while not self._stop.is_set():
            self._one()

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        return self

    @property
    def failed(self):
        return sum(self.failures.values())

    def report(self, name):
        print("\n[load] %s: %d ok, %d failed %s" % (name, self.ok, self.failed, self.failures))


# -- files tests watch -----------------------------------------------------

def read_text(path):
    """A log or evidence file's text so far ("" before it exists)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def read_records(path):
    """The JSON lines a test config or app appended to path ([] before any)."""
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def wait_records(path, pred, timeout=10.0, what="records"):
    """Poll path until pred(records) holds; fail with the records seen."""
    deadline = time.monotonic() + timeout
    while True:
        recs = read_records(path)
        if pred(recs):
            return recs
        if time.monotonic() > deadline:
            raise AssertionError("%s not seen within %.0fs; records:\n%s"
                                 % (what, timeout, "\n".join(json.dumps(r) for r in recs)))
        time.sleep(0.05)
