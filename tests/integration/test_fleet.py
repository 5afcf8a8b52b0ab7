"""The fleet: three cgunicorn hosts behind a load balancer, each in its own
network namespace, under a steady load from a client in a fourth one.

    client ns  10.99.0.2 --- 10.99.0.1  balancer ns  10.99.N.1 --- 10.99.N.2  host N ns

The balancer is nginx (proxy_pass to keep-alive upstreams; again with one
host on a unix socket; then uwsgi_pass to --protocol uwsgi), then HAProxy
(send-proxy-v2 to --proxy-protocol v2): four runs.
While the load runs: a rolling upgrade (USR2, wait for the new master's
workers, TERM the old master; host after host), a rolling HUP, and one
host's master killed with SIGKILL and started again. The balancer is
configured to retry on another host, so the client must see zero failed
requests, and every answer must carry the REMOTE_ADDR and wsgi.url_scheme
the host's settings give (forwarded_allow_ips + secure_scheme_headers,
uwsgi's HTTPS, PROXY v2). The figures (requests sent, failed, the longest
gap a client thread saw during each step) are printed.

Needs root and network namespaces: skips with the reason otherwise.
The addresses only exist inside the run's own namespaces, which are named
uniquely per run and deleted, with every process in them, in every path.
"""

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

import cgtest

HERE = os.path.dirname(os.path.abspath(__file__))
HOSTS = 3
WORKERS = 2
PORT = 8000
LB_PORT = 8080
CLIENT_THREADS = 6
STEP_TIMEOUT = 90.0
LB_ADDR = "10.99.0.1"
CLIENT_ADDR = "10.99.0.2"


def host_addr(i):
    return "10.99.%d.2" % i


def lb_addr_to(i):
    """The balancer's address on host i's link: the peer each host sees."""
    return "10.99.%d.1" % i


def _run(cmd, check=True):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(cmd), res.returncode, res.stderr))
    return res


def _reap(pid):
    """Collect pid's exit status if it is our child and has exited (an
    orphaned master is our child: see subreaper())."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _gone(pid):
    """Whether pid has exited and, when it is our child, been reaped: a
    zombie still owns its pid, which a master restarted over its pidfile
    would take for a live one."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        pass
    try:
        # not ours: an exited process is as good as gone
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %.0fs" % (what, timeout))
        time.sleep(0.05)


class Net:
    """The namespaces of one run and the veth links between them."""

    def __init__(self):
        tag = "%d-%s" % (os.getpid(), secrets.token_hex(3))
        self.client = "cgfleet-%s-c" % tag
        self.lb = "cgfleet-%s-lb" % tag
        self.hosts = ["cgfleet-%s-h%d" % (tag, i) for i in range(1, HOSTS + 1)]
        self.created = []

    def all(self):
        return [self.client, self.lb] + self.hosts

    def up(self):
        for ns in self.all():
            _run(["ip", "netns", "add", ns])
            self.created.append(ns)
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        # each link is made inside the balancer's namespace, its other end
        # moved straight into the peer's: no name ever exists outside them
        self._link("c0", self.client, CLIENT_ADDR, "l0", LB_ADDR)
        for i, ns in enumerate(self.hosts, 1):
            self._link("eth0", ns, host_addr(i), "h%d" % i, lb_addr_to(i))

    def _link(self, far, far_ns, far_addr, near, near_addr):
        _run(["ip", "-n", self.lb, "link", "add", near, "type", "veth",
              "peer", "name", far, "netns", far_ns])
        _run(["ip", "-n", self.lb, "addr", "add", near_addr + "/24", "dev", near])
        _run(["ip", "-n", far_ns, "addr", "add", far_addr + "/24", "dev", far])
        _run(["ip", "-n", self.lb, "link", "set", near, "up"])
        _run(["ip", "-n", far_ns, "link", "set", far, "up"])

    def down(self):
        """Kill every process left in the namespaces, then delete them (which
        deletes the links)."""
        for ns in self.created:
            for _ in range(50):
                res = _run(["ip", "netns", "pids", ns], check=False)
                pids = [int(p) for p in res.stdout.split()]
                if not pids:
                    break
                for p in pids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.1)
                for p in pids:
                    _reap(p)
        for ns in self.created:
            _run(["ip", "netns", "del", ns], check=False)
        self.created = []

    def popen(self, ns, cmd, **kw):
        return subprocess.Popen(["ip", "netns", "exec", ns] + cmd, **kw)


def netns_unavailable():
    if os.geteuid() != 0:
        return "needs root (network namespaces and veth links)"
    if shutil.which("ip") is None:
        return "needs iproute2's ip"
    name = "cgfleet-probe-%d-%s" % (os.getpid(), secrets.token_hex(3))
    res = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if res.returncode != 0:
        return "cannot create a network namespace: %s" % res.stderr.strip()
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


PR_SET_CHILD_SUBREAPER = 36


def subreaper(on):
    """Make this process the reaper of the masters orphaned by an upgrade
    (the new master is the old one's child), as init is on a real host: a
    killed master's pid must really be gone, not a zombie nobody reaps (the
    restarted master would take its pidfile for a live one)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def sweep_stale():
    """Delete the namespaces (and their processes) of earlier runs whose
    pytest died without cleaning up (SIGKILL): their names carry its pid."""
    res = _run(["ip", "netns", "list"], check=False)
    stale = set()
    for line in res.stdout.splitlines():
        m = re.match(r"(cgfleet-(\d+)-[0-9a-f]+-\w+)", line)
        if m and not psutil.pid_exists(int(m.group(2))):
            stale.add(m.group(1))
    if stale:
        n = Net()
        n.created = sorted(stale)
        n.down()


@pytest.fixture
def net():
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    sweep_stale()
    n = Net()
    subreaper(True)
    try:
        n.up()
        yield n
    finally:
        n.down()
        subreaper(False)


class Host:
    """One cgunicorn host: its namespace, its command line, its current
    master (a pid: after an upgrade the master is no child of ours)."""

    def __init__(self, net, i, tmpdir, args, unix=False):
        self.net, self.i, self.ns = net, i, net.hosts[i - 1]
        self.name = "h%d" % i
        self.dir = os.path.join(tmpdir, self.name)
        os.makedirs(self.dir)
        self.log_path = os.path.join(self.dir, "error.log")
        # unix: a host on the balancer's own machine, reached by a unix
        # socket (a path: the network namespace does not matter to it)
        self.unix = os.path.join(self.dir, "app.sock") if unix else None
        bind = "unix:" + self.unix if unix else "%s:%d" % (host_addr(i), PORT)
        # how the balancer's configuration names this host
        self.upstream = bind
        self.pidfile = os.path.join(self.dir, "master.pid")
        self.args = ["-b", bind, "-w", str(WORKERS), "--pid", self.pidfile,
                     "--chdir", cgtest.APPS_DIR] + list(args) + ["fleet_app:app"]
        self.env = cgtest.merged_env({"CG_FLEET_HOST": self.name, "XDG_RUNTIME_DIR": self.dir})
        self.master = None
        self.procs = []
        self._err = open(self.log_path, "ab")

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def pidfile_says(self, pid):
        """Whether the pidfile names pid (what an operator's scripts and
        systemd's PIDFile= read)."""
        try:
            with open(self.pidfile) as f:
                return f.read().strip() == str(pid)
        except FileNotFoundError:
            return False

    def count(self, pattern):
        return len(re.findall(pattern, self.log()))

    def start(self):
        """Start a master and wait until it listens with its workers booted."""
        listening = self.count(r"Listening at: ")
        booted = self.count(r"Booting worker with pid")
        p = self.net.popen(self.ns, [cgtest.cg_bin()] + self.args, env=self.env,
                           stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err)
        self.procs.append(p)
        self.master = p.pid

        def ready():
            if p.poll() is not None:
                raise AssertionError("host %s exited with %s\n%s" % (self.name, p.returncode,
                                                                     self.log()))
            return (self.count(r"Listening at: ") > listening
                    and self.count(r"Booting worker with pid") >= booted + WORKERS
                    and len(self.workers()) >= WORKERS)
        self._wait(ready, "%s boots" % self.name)
        self._wait(lambda: self.pidfile_says(p.pid), "%s: pidfile names %d" % (self.name, p.pid))

    def workers(self):
        return cgtest.live_children(self.master)

    def _wait(self, pred, what):
        try:
            _wait(pred, STEP_TIMEOUT, what)
        except AssertionError as e:
            raise AssertionError("%s\n--- %s log ---\n%s" % (e, self.name, self.log()))

    def _reap(self, pid):
        for p in self.procs:
            if p.pid == pid:
                p.wait(STEP_TIMEOUT)

    def upgrade(self):
        """USR2, the new master's workers up, TERM to the old master."""
        old = self.master
        promoted = self.count(r"Master has been promoted")
        os.kill(old, signal.SIGUSR2)
        new = cgtest.new_master(old, self.log, workers=WORKERS, timeout=STEP_TIMEOUT)
        os.kill(old, signal.SIGTERM)
        self._reap(old)
        self._wait(lambda: _gone(old), "%s: old master %d exits" % (self.name, old))
        self._wait(lambda: self.count(r"Master has been promoted") > promoted,
                   "%s: new master %d promoted" % (self.name, new.pid))
        self._wait(lambda: self.pidfile_says(new.pid),
                   "%s: pidfile names the new master %d" % (self.name, new.pid))
        self.master = new.pid

    def hup(self):
        """HUP, then wait until only new workers are left."""
        old = self.workers()
        os.kill(self.master, signal.SIGHUP)

        def renewed():
            now = self.workers()
            return len(now) >= WORKERS and not (now & old)
        self._wait(renewed, "%s: workers replaced after HUP" % self.name)

    def kill_and_restart(self):
        """SIGKILL the master (its workers notice and leave), then start a
        new one with the same command line."""
        old = self.master
        os.kill(old, signal.SIGKILL)
        self._reap(old)
        self._wait(lambda: _gone(old), "%s: killed master %d gone" % (self.name, old))
        self.start()


# -- the balancers ------------------------------------------------------------

NGINX_HTTP = """\
    upstream fleet {
%(servers)s
        keepalive 16;
        # below the hosts' --keep-alive (2 s): nginx, not the host, closes
        # an idle upstream connection, so a request never races a close
        keepalive_timeout 1s;
    }
    server {
        listen %(lb)s:%(port)d;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
        location / {
            proxy_pass http://fleet;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries %(hosts)d;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
            proxy_buffering off;
        }
    }
"""

NGINX_UWSGI = """\
    upstream fleet {
%(servers)s
    }
    server {
        listen %(lb)s:%(port)d;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
        location / {
            include /etc/nginx/uwsgi_params;
            uwsgi_param HTTPS on;
            uwsgi_pass fleet;
            uwsgi_next_upstream error timeout http_503;
            uwsgi_next_upstream_tries %(hosts)d;
            uwsgi_connect_timeout 2s;
            uwsgi_read_timeout 60s;
            uwsgi_buffering off;
        }
    }
"""

NGINX_MAIN = """\
daemon off;
user root root;
worker_processes 1;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    uwsgi_temp_path %(dir)s/uwsgi;
    fastcgi_temp_path %(dir)s/fastcgi;
    scgi_temp_path %(dir)s/scgi;
%(body)s}
"""

HAPROXY = """\
global
    maxconn 512
    pidfile %(dir)s/haproxy.pid

defaults
    mode http
    timeout connect 2s
    timeout client 300s
    timeout server 60s
    timeout http-keep-alive 300s
    # a request that failed on one host is sent again, to another one
    retries 3
    option redispatch 1
    retry-on all-retryable-errors

frontend fe
    bind %(lb)s:%(port)d
    http-request set-header X-Forwarded-Proto https
    default_backend fleet

backend fleet
    balance roundrobin
    # one request per server connection, so each carries its PROXY header:
    # like Gunicorn's gthread worker, cgunicorn's applies a connection's
    # PROXY header to its first request only; the keep-alive requests after
    # it would see the balancer's address
    option http-server-close
%(servers)s
"""


def nginx_conf(kind, d, hosts):
    servers = "\n".join("        server %s max_fails=1 fail_timeout=2s;" % h.upstream
                        for h in hosts)
    body = (NGINX_HTTP if kind == "http" else NGINX_UWSGI) % {
        "servers": servers, "lb": LB_ADDR, "port": LB_PORT, "hosts": HOSTS}
    return NGINX_MAIN % {"dir": d, "body": body}


def haproxy_conf(d, hosts):
    servers = "\n".join("    server %s %s send-proxy-v2 check inter 500ms fall 1 rise 2"
                        % (h.name, h.upstream) for h in hosts)
    return HAPROXY % {"dir": d, "lb": LB_ADDR, "port": LB_PORT, "servers": servers}


def start_balancer(net, kind, d, hosts):
    if kind == "haproxy":
        exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not os.path.exists(exe):
            pytest.fail("haproxy is not installed (tools/deps.sh installs it)")
        conf = os.path.join(d, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(haproxy_conf(d, hosts))
        cmd = [exe, "-db", "-f", conf]
    else:
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(exe):
            pytest.fail("nginx is not installed (tools/deps.sh installs nginx-light)")
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_conf(kind, d, hosts))
        cmd = [exe, "-c", conf, "-p", d]
    with open(os.path.join(d, "balancer.out"), "wb") as log:
        return net.popen(net.lb, cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)


def balancer_output(d):
    out = []
    for name in ("balancer.out", "error.log"):
        try:
            with open(os.path.join(d, name), "rb") as f:
                out.append(f.read().decode("utf-8", "replace")[-3000:])
        except FileNotFoundError:
            pass
    return "\n".join(out)


# -- the load and its figures -------------------------------------------------

class Load:
    def __init__(self, net, d, expect, balancer):
        self.out = os.path.join(d, "load.json")
        self.proc = net.popen(net.client,
                              [sys.executable, os.path.join(HERE, "fleet_load.py"), LB_ADDR,
                               str(LB_PORT), str(CLIENT_THREADS), self.out, json.dumps(expect)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the client never got an answer from the balancer: %r\n"
                                 "balancer %s, its output:\n%s"
                                 % (line, "exited %s" % balancer.poll()
                                    if balancer.poll() is not None else "running",
                                    balancer_output(d)))

    def served(self, host):
        self.proc.stdin.write("served %s\n" % host)
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def stop(self):
        self.proc.stdin.write("stop\n")
        self.proc.stdin.close()
        assert self.proc.wait(STEP_TIMEOUT) == 0
        with open(self.out) as f:
            return json.load(f)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def longest_gap(times, start, end):
    """The longest time one client thread waited between two successful
    answers, over the pairs that overlap [start, end]. Thread 0's requests
    take half a second by design: the figure is the other threads'."""
    worst = 0.0
    for ts in times[1:]:
        prev = None
        for t, _ in ts:
            if prev is not None and t >= start and prev <= end:
                worst = max(worst, t - prev)
            prev = t
        # a thread still waiting at the end of the step
        if prev is not None and prev < end:
            worst = max(worst, end - max(prev, start))
    return worst


def served_between(times, start, end):
    hosts = {}
    for ts in times:
        for t, h in ts:
            if start <= t <= end:
                hosts[h] = hosts.get(h, 0) + 1
    return hosts


UNTRUSTED_GET = """\
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], %d, timeout=30)
c.request("GET", "/", headers={"X-Forwarded-Proto": "https"})
r = c.getresponse()
sys.stdout.write(r.read().decode())
""" % PORT


def untrusted_view(net, h):
    """What host h makes of a request claiming https that comes from its own
    address, which its forwarded_allow_ips does not list."""
    res = subprocess.run(["ip", "netns", "exec", h.ns, sys.executable, "-c", UNTRUSTED_GET,
                          host_addr(h.i)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def gthread_forwarded(i):
    return ["-k", "gthread", "--threads", "4", "--forwarded-allow-ips", lb_addr_to(i)]


RUNS = {
    # name: (balancer, worker args of host i, expected REMOTE_ADDR of host i,
    #        the X-Forwarded-For the app sees, the host on a unix socket)
    "nginx-http": ("http", gthread_forwarded, lb_addr_to, CLIENT_ADDR, None),
    # host 1 on the balancer's machine behind a unix socket, and the one
    # killed: its restart finds the socket file of the dead master. A unix
    # peer has no address (REMOTE_ADDR "", as in Gunicorn) and is always
    # trusted with X-Forwarded-Proto.
    "nginx-http-unix": ("http", gthread_forwarded,
                        lambda i: "" if i == 1 else lb_addr_to(i), CLIENT_ADDR, 1),
    "nginx-uwsgi": ("uwsgi", lambda i: ["-k", "sync", "--protocol", "uwsgi",
                                        "--uwsgi-allow-from", lb_addr_to(i)],
                    lb_addr_to, None, None),
    "haproxy-proxy-v2": ("haproxy", lambda i: ["-k", "gthread", "--threads", "4",
                                               "--proxy-protocol", "v2",
                                               "--proxy-allow-from", lb_addr_to(i),
                                               "--forwarded-allow-ips", lb_addr_to(i)],
                         lambda i: CLIENT_ADDR, None, None),
}


@pytest.mark.timeout(420)
@pytest.mark.parametrize("run", list(RUNS))
def test_fleet(net, tmp_path, capsys, run):
    kind, host_args, remote_of, xff, unix = RUNS[run]
    d = str(tmp_path)
    hosts = [Host(net, i, d, host_args(i), unix=i == unix) for i in range(1, HOSTS + 1)]
    balancer = load = None
    try:
        for h in hosts:
            h.start()
        if kind == "http":
            # the https the balancer's answers carry comes from the trust
            # list, not from any client's say-so
            for h in hosts:
                if h.unix:
                    continue
                seen = untrusted_view(net, h)
                assert (seen["scheme"], seen["remote_addr"]) == ("http", host_addr(h.i)), seen
        balancer = start_balancer(net, kind, d, hosts)
        expect = {"remote_addr": {h.name: remote_of(h.i) for h in hosts}, "scheme": "https"}
        if xff is not None:
            expect["xff"] = xff
        load = Load(net, d, expect, balancer)
        steps = []

        def step(name, action):
            t0 = time.monotonic()
            for h in hosts:
                action(h)
            steps.append((name, t0, time.monotonic()))

        # some load before, between and after the steps: every host in use
        settle = 1.0
        time.sleep(settle)
        step("rolling upgrade (USR2 + TERM)", Host.upgrade)
        time.sleep(settle)
        step("rolling HUP", Host.hup)
        time.sleep(settle)
        victim = hosts[unix - 1] if unix else hosts[1]
        step("SIGKILL %s's master + restart" % victim.name,
             lambda h: h.kill_and_restart() if h is victim else None)
        t_back = time.monotonic()
        # the restarted host must be back in the balancer's rotation
        before = load.served(victim.name)
        _wait(lambda: load.served(victim.name) > before + 10, STEP_TIMEOUT,
              "%s serves again after its restart" % victim.name)
        report = load.stop()
        load = None
    finally:
        if load is not None:
            load.kill()
        if balancer is not None:
            balancer.kill()
            balancer.wait()

    failed = sum(report["failures"].values())
    lines = ["fleet %s: %d requests sent, %d ok, %d failed%s, per host %s"
             % (run, report["sent"], report["ok"], failed, " %s" % report["failures"] if failed else "",
                served_between(report["times"], 0, float("inf")))]
    for name, t0, t1 in steps:
        lines.append("  %-34s %5.1f s, longest gap a client saw %.3f s"
                     % (name, t1 - t0, longest_gap(report["times"], t0, t1)))
    with capsys.disabled():
        print("\n" + "\n".join(lines))

    for h in hosts:
        bad = cgtest.sanitizer_lines(h.log())
        assert not bad, "%s: sanitizer report\n%s" % (h.name, h.log())
    assert report["stuck_threads"] == 0
    assert failed == 0, "%s\nsamples: %s" % (lines[0], report["samples"])
    assert report["ok"] > 0
    after = served_between(report["times"], t_back, float("inf"))
    assert after.get(victim.name, 0) > 0, \
        "the restarted host took no request after it was back: %s" % after
