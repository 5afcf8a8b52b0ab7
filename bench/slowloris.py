#!/usr/bin/python3
"""bench/slowloris.py - the gthread worker under idle and slowloris connections.

Default mode, for each --threads value (1: app on the loop thread; 4: pool):
one cgunicorn worker (-k gthread, --worker-connections 4000, --keep-alive
3600 so parked connections outlive the run) serving bench/hello.py, pinned to
CPU $SERVER_CPU; wrk -t1 -c$CONNS pinned to CPU $CLIENT_CPU. After a wrk
warm-up, --pairs times:
  1. an unloaded wrk run;
  2. 2,000 idle connections (half after one keep-alive request, half that
     never sent a byte) and 200 slowloris clients that send one byte of an
     endless request head per client per second, all from one asyncio loop
     in this process; a loaded wrk run;
  3. every idle and slowloris connection must still be open (checked from
     this side and by counting the worker's descriptors), and (last pair)
     every idle one must still answer a request; then they are closed.
Other work on a shared machine steals CPU from the server in bursts, which
only ever lowers a run. So unloaded and loaded runs alternate; a run during
which other processes used more than --max-noise (5%) of the CPUs (from
/proc/stat, minus the server, wrk and this process) is measured again (at
most --attempts times) and its pair does not count; of the clean pairs the
best run of each state counts. ratio = best loaded / best unloaded (the
median of the per-pair ratios is printed too). Exit status 1 when a ratio is
under --min-ratio (0.80), wrk saw errors under load, or a connection was
lost; 2 when fewer than --min-clean (2) pairs were clean (no verdict). The
server's CPU time per request (median of each state, from /proc) is printed
beside it.

--observe-deadline S: after the last loaded run keep the slowloris clients
trickling for up to S seconds and report when the server closes them (the
head deadline).

--pipeline mode: a correctness check under load. 50 connections each send
16 pipelined GETs with distinct paths in one write, read the 16 answers and
check each body is its own path, in order, over and over for $DURATION
seconds, against a path-echo app; then wrk pipelines 16 deep on $CONNS
connections for the throughput. Exit status 1 on any missing, extra or
out-of-order answer, or a wrk error.

Environment: CGUNICORN (default <repo>/build/cgunicorn), DURATION (3 s per wrk run),
WARMUP (2), CONNS (50), SERVER_CPU (0), CLIENT_CPU (1).
"""

import argparse
import asyncio
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402

CGUNICORN = os.environ.get("CGUNICORN") or os.path.join(os.path.dirname(HERE), "build", "cgunicorn")
DURATION = int(os.environ.get("DURATION", "3"))
WARMUP = int(os.environ.get("WARMUP", "2"))
CONNS = int(os.environ.get("CONNS", "50"))
SERVER_CPU = os.environ.get("SERVER_CPU", "0")
CLIENT_CPU = os.environ.get("CLIENT_CPU", "1")

ADDR = "127.0.0.1"
GET = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
# A head that never ends: the request line and Host, then one header value
# that grows by a byte per second (far from any size limit within a run).
SLOW_HEAD = b"GET /slow HTTP/1.1\r\nHost: bench\r\nX-Slow: "

# wrk sends `depth` requests per write and counts every answer; a missing
# one would show as a timeout.
PIPE_LUA = '''\
init = function(args)
  local r = {}
  for i = 1, %d do r[i] = wrk.format(nil, "/p" .. i) end
  req = table.concat(r)
end
request = function() return req end
'''

PIPE_APP = '''\
def app(environ, start_response):
    body = environ["PATH_INFO"].encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def say(*a):
    print(*a, file=sys.stderr, flush=True)


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < need:
        sys.exit("slowloris: RLIMIT_NOFILE is %d, %d descriptors are needed" % (soft, need))
    return soft


class Server:
    def __init__(self, workdir, args, chdir, app, name):
        self.port = benchlib.free_port()
        self.err_path = os.path.join(workdir, name + ".err")
        cmd = ["taskset", "-c", SERVER_CPU, CGUNICORN, "-w", "1", "-b", "%s:%d" % (ADDR, self.port),
               "--chdir", chdir] + args + [app]
        say("== %s" % " ".join(cmd))
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.err, stderr=self.err)

    def wait(self, probe):
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with socket.create_connection((ADDR, self.port), timeout=2) as s:
                    s.sendall(probe)
                    if s.recv(100).startswith(b"HTTP/1.1 200"):
                        return True
            except OSError:
                time.sleep(0.1)
        say("server did not come up; its log ends:\n" + self.log()[-2000:])
        return False

    def worker(self):
        kids = [p for p in benchlib.descendants(self.proc.pid) if p != self.proc.pid]
        return kids[0] if len(kids) == 1 else None

    def fds(self):
        pid = self.worker()
        try:
            return len(os.listdir("/proc/%d/fd" % pid)) if pid else -1
        except OSError:
            return -1

    def rss(self):
        """The worker's resident set, KiB."""
        pid = self.worker()
        return benchlib.rss_kib(pid) if pid else 0

    def log(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        pids = benchlib.descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            say("  server did not stop on TERM; killing %s" % pids)
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            self.proc.wait(5)
        self.err.close()


async def run_wrk(port, seconds, out, extra=()):
    cmd = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", "-c%d" % CONNS, "-d%ds" % seconds] + \
        list(extra) + ["http://%s:%d/" % (ADDR, port)]
    with open(out, "wb") as f:
        p = await asyncio.create_subprocess_exec(*cmd, stdout=f, stderr=subprocess.STDOUT)
        await p.wait()
    return benchlib.parse_wrk(out)  # (requests, rps, errors)


def is_open(s):
    """Whether the peer has not closed s (nothing is consumed)."""
    try:
        return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


async def read_response(loop, s, buf=b""):
    """One Content-Length-framed response from s; returns (head, body, rest)."""
    while b"\r\n\r\n" not in buf:
        d = await loop.sock_recv(s, 65536)
        if not d:
            raise ConnectionError("server closed before the response head")
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(rest) < n:
        d = await loop.sock_recv(s, 65536)
        if not d:
            raise ConnectionError("server closed inside the response body")
        rest += d
    return head, rest[:n], rest[n:]


async def open_conns(loop, port, n, send_request, limit=64):
    """n connections; with send_request each has had one keep-alive GET
    answered (so it is parked by the server); without, it never sent a byte."""
    sem = asyncio.Semaphore(limit)

    async def one():
        async with sem:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            await loop.sock_connect(s, (ADDR, port))
            if send_request:
                await loop.sock_sendall(s, GET)
                head, _, _ = await read_response(loop, s)
                if not head.startswith(b"HTTP/1.1 200") or b"keep-alive" not in head.lower():
                    raise ConnectionError("idle setup: unexpected answer %r" % head[:200])
            return s

    return list(await asyncio.gather(*(one() for _ in range(n))))


class Slowloris:
    """n clients, each sending the next byte of an endless head once a
    second; the sends are spread over the second in 20 slices."""

    SLICES = 20

    def __init__(self, socks):
        self.socks = socks
        self.first = [None] * len(socks)   # loop time of each one's first byte
        self.closed = [None] * len(socks)  # loop time the server's close was seen
        self.sent = [0] * len(socks)
        self.task = None

    def _byte(self, i):
        k = self.sent[i]
        return SLOW_HEAD[k:k + 1] if k < len(SLOW_HEAD) else b"a"

    async def _run(self):
        loop = asyncio.get_running_loop()
        tick = 0
        while True:
            t0 = loop.time()
            for i in range(tick % self.SLICES, len(self.socks), self.SLICES):
                if self.closed[i] is not None:
                    continue
                s = self.socks[i]
                if not is_open(s):
                    self.closed[i] = t0
                    continue
                try:
                    s.send(self._byte(i))
                except OSError:
                    self.closed[i] = t0
                    continue
                if self.first[i] is None:
                    self.first[i] = t0
                self.sent[i] += 1
            tick += 1
            await asyncio.sleep(max(0.0, 1.0 / self.SLICES - (loop.time() - t0)))

    def start(self):
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self):
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass

    def check(self):
        now = asyncio.get_running_loop().time()
        for i, s in enumerate(self.socks):
            if self.closed[i] is None and not is_open(s):
                self.closed[i] = now
        return sum(c is not None for c in self.closed)


async def ask_each(loop, socks):
    """One GET on every socket (concurrently); returns how many got a 200."""
    sem = asyncio.Semaphore(64)

    async def one(s):
        async with sem:
            try:
                await loop.sock_sendall(s, GET)
                head, _, _ = await asyncio.wait_for(read_response(loop, s), 10)
                return head.startswith(b"HTTP/1.1 200")
            except (OSError, ConnectionError, asyncio.TimeoutError):
                return False

    return sum(await asyncio.gather(*(one(s) for s in socks)))


def busy_ticks():
    """Ticks the CPUs spent on anything but idling, summed over CPUs:
    user, nice, system, irq and steal (softirq is left out: loopback traffic
    of the run itself lands there, not in any task's time)."""
    total = 0
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:9]]
                total += v[0] + v[1] + v[2] + v[5] + v[7]
    return total


def own_ticks():
    """CPU ticks of this process and its reaped children (wrk)."""
    t = os.times()
    return round((t.user + t.system + t.children_user + t.children_system) * benchlib.CLK_TCK)


async def measure_clean(srv, out, args, discarded):
    """measure() until a run sees at most --max-noise of other load (at most
    --attempts runs); the disturbed ones are added to `discarded`. Returns the
    last run (disturbed too when every attempt was)."""
    for i in range(args.attempts):
        r = await measure(srv, "%s-%d.txt" % (out, i))
        if r["noise"] <= args.max_noise:
            break
        discarded.append(r)
    return r


async def measure(srv, out):
    """One wrk run; returns requests, req/s, errors, the server's CPU
    microseconds per request (master and worker, from /proc) and `noise`:
    the share of the machine's CPUs that went to processes other than the
    server, wrk and this one during the run."""
    c0, b0, o0, t0 = benchlib.cpu_ticks(srv.proc.pid), busy_ticks(), own_ticks(), time.monotonic()
    reqs, rps, errors = await run_wrk(srv.port, DURATION, out)
    server = benchlib.cpu_ticks(srv.proc.pid) - c0
    busy, own, secs = busy_ticks() - b0, own_ticks() - o0, time.monotonic() - t0
    us = server * 1e6 / benchlib.CLK_TCK / reqs if reqs else float("nan")
    noise = max(0, busy - server - own) / (secs * benchlib.CLK_TCK * os.cpu_count())
    return {"reqs": reqs, "rps": rps, "errors": errors, "us": us, "noise": noise,
            "server": server / (secs * benchlib.CLK_TCK), "client": own / (secs * benchlib.CLK_TCK)}


def fmt_runs(runs, verbose=False):
    if verbose:
        return ", ".join("%.0f (%.1f us, %.0f%%, server %.0f%% client %.0f%%)" % (
            r["rps"], r["us"], r["noise"] * 100, r["server"] * 100, r["client"] * 100)
            for r in runs)
    return ", ".join("%.0f (%.1f us, %.0f%%)" % (r["rps"], r["us"], r["noise"] * 100) for r in runs)


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else float("nan")


class Load:
    """The idle and slowloris connections of one loaded run."""

    def __init__(self):
        self.idle, self.slow = [], None

    async def open(self, loop, port, nidle, nslow):
        half = nidle // 2
        self.idle = await open_conns(loop, port, half, True)
        self.idle += await open_conns(loop, port, nidle - half, False)
        self.slow = Slowloris(await open_conns(loop, port, nslow, False))
        self.slow.start()

    async def close(self):
        if self.slow is not None:
            await self.slow.stop()
        for s in self.idle + (self.slow.socks if self.slow else []):
            s.close()
        self.idle, self.slow = [], None


async def slowloris_case(threads, workdir, args, rnd):
    loop = asyncio.get_running_loop()
    name = "gthread%d" % threads
    srv = Server(workdir, ["-k", "gthread", "--threads", str(threads), "--worker-connections", "4000",
                           "--keep-alive", "3600"], HERE, "hello:app", "%s-r%d" % (name, rnd))
    res = {"name": name, "ok": False}
    load = Load()
    try:
        if not srv.wait(GET):
            return res
        out = os.path.join(workdir, "%s-r%d" % (name, rnd))
        await run_wrk(srv.port, WARMUP, out + "-warm.txt")
        unloaded, loaded, problems, discarded = [], [], [], []
        extra = args.idle + args.slow
        deadline = None
        for i in range(args.pairs):
            await asyncio.sleep(0.5)  # the last run's connections are gone from the worker
            unloaded.append(await measure_clean(srv, out + "-unloaded%d" % i, args, discarded))
            await asyncio.sleep(0.5)
            fds0, rss0 = srv.fds(), srv.rss()
            t = time.monotonic()
            await load.open(loop, srv.port, args.idle, args.slow)
            await asyncio.sleep(0.5)
            t_open = time.monotonic() - t
            fds1, rss1 = srv.fds(), srv.rss()
            loaded.append(await measure_clean(srv, out + "-loaded%d" % i, args, discarded))
            fds2 = srv.fds()
            idle_closed = sum(not is_open(s) for s in load.idle)
            slow_closed = load.slow.check()
            if idle_closed or slow_closed or fds1 - fds0 < extra or fds2 - fds0 < extra:
                problems.append("pair %d: %d/%d idle and %d/%d slowloris closed by the server;"
                                " worker descriptors %d before, %d with the load (+%d expected),"
                                " %d after wrk" % (i, idle_closed, args.idle, slow_closed,
                                                   args.slow, fds0, fds1, extra, fds2))
            if i == args.pairs - 1:
                sent = load.slow.sent
                firsts = [f for f in load.slow.first if f is not None]
                say("    last pair: load opened in %.1fs; slowloris sent %d..%d bytes each, the"
                    " first %.1fs before the check; worker descriptors %d -> %d -> %d; worker"
                    " RSS %.1f MiB -> %.1f MiB with the load"
                    % (t_open, min(sent) if sent else 0, max(sent) if sent else 0,
                       loop.time() - min(firsts) if firsts else 0.0, fds0, fds1, fds2,
                       rss0 / 1024, rss1 / 1024))
                if args.observe_deadline:
                    deadline = await observe(load.slow, load.idle, args.observe_deadline)
                answered = await ask_each(loop, load.idle)
                if answered != args.idle:
                    problems.append("only %d/%d idle connections answered a GET after the run"
                                    % (answered, args.idle))
            await load.close()

        # Only pairs where both runs had the machine to themselves count.
        clean = [(u, l) for u, l in zip(unloaded, loaded)
                 if u["noise"] <= args.max_noise and l["noise"] <= args.max_noise]
        cu = [u for u, _ in clean] or unloaded
        cl = [l for _, l in clean] or loaded
        best_u = max(r["rps"] for r in cu)
        best_l = max(r["rps"] for r in cl)
        ratio = best_l / best_u if best_u else 0.0
        pair_ratio = median([l["rps"] / u["rps"] for u, l in zip(cu, cl) if u["rps"]])
        us_u = median([r["us"] for r in cu])
        us_l = median([r["us"] for r in cl])
        errors_l = sum(r["errors"] for r in loaded)
        res.update(best_u=best_u, best_l=best_l, ratio=ratio, pair_ratio=pair_ratio, us_u=us_u,
                   us_l=us_l, unloaded=unloaded, loaded=loaded, problems=problems,
                   deadline=deadline, clean=len(clean), discarded=len(discarded))
        say("  %s round %d: best unloaded %.0f req/s, best loaded %.0f req/s -> ratio %.3f"
            " (median pair ratio %.3f); server CPU %.1f -> %.1f us/req (medians); %d/%d pairs"
            " clean, %d disturbed runs" % (name, rnd, best_u, best_l, ratio, pair_ratio,
                                                     us_u, us_l, len(clean), args.pairs,
                                                     len(discarded)))
        say("    unloaded runs, req/s (server CPU/req, other load): %s" % fmt_runs(unloaded, args.verbose))
        say("    loaded runs:                                      %s" % fmt_runs(loaded, args.verbose))
        if discarded:
            say("    disturbed runs: %s" % fmt_runs(discarded))
        for p in problems:
            say("    FAIL: " + p)
        if errors_l:
            say("    FAIL: wrk saw %d errors under load" % errors_l)
        res["inconclusive"] = len(clean) < args.min_clean
        if res["inconclusive"]:
            say("    INCONCLUSIVE: only %d clean pairs (--min-clean %d): the machine is too busy"
                " for a throughput verdict" % (len(clean), args.min_clean))
        elif ratio < args.min_ratio:
            say("    FAIL: ratio %.3f < %.2f" % (ratio, args.min_ratio))
        res["ok"] = not problems and not errors_l and (res["inconclusive"] or
                                                         ratio >= args.min_ratio)
        return res
    finally:
        await load.close()
        srv.stop()


async def observe(slow, idle, limit):
    """Keep trickling until every slowloris client is closed or `limit`
    seconds pass; returns (seconds from first byte to close for each closed
    client, idle connections closed meanwhile)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while loop.time() < end and slow.check() < len(slow.socks):
        await asyncio.sleep(0.2)
    lives = sorted(c - f for c, f in zip(slow.closed, slow.first) if c is not None and f is not None)
    idle_closed = sum(not is_open(s) for s in idle)
    if lives:
        say("    head deadline: %d/%d slowloris closed, %.1f..%.1fs (median %.1f) after their first"
            " byte; %d idle closed meanwhile" % (len(lives), len(slow.socks), lives[0], lives[-1],
                                                 lives[len(lives) // 2], idle_closed))
    else:
        say("    head deadline: no slowloris client closed within %.0fs more; %d idle closed"
            % (limit, idle_closed))
    return lives, idle_closed


async def pipeline_client(loop, port, cid, depth, stop_at, stats):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    await loop.sock_connect(s, (ADDR, port))
    buf = b""
    batch = 0
    try:
        while loop.time() < stop_at:
            paths = [b"/c%d/b%d/r%d" % (cid, batch, i) for i in range(depth)]
            await loop.sock_sendall(s, b"".join(b"GET " + p + b" HTTP/1.1\r\nHost: b\r\n\r\n"
                                                for p in paths))
            for p in paths:
                head, body, buf = await asyncio.wait_for(read_response(loop, s, buf), 10)
                if not head.startswith(b"HTTP/1.1 200") or body != p:
                    stats["bad"] += 1
                    if len(stats["examples"]) < 5:
                        stats["examples"].append((p, head[:40], body[:60]))
                else:
                    stats["ok"] += 1
            if buf:
                stats["extra"] += 1  # bytes nobody asked for
                buf = b""
            batch += 1
    except (OSError, ConnectionError, asyncio.TimeoutError) as e:
        stats["errors"].append("client %d batch %d: %r" % (cid, batch, e))
    finally:
        s.close()


async def pipeline_case(threads, workdir, depth):
    loop = asyncio.get_running_loop()
    appdir = os.path.join(workdir, "pipeapp")
    os.makedirs(appdir, exist_ok=True)
    with open(os.path.join(appdir, "pipe_app.py"), "w") as f:
        f.write(PIPE_APP)
    name = "gthread%d" % threads
    srv = Server(workdir, ["-k", "gthread", "--threads", str(threads), "--keep-alive", "30"],
                 appdir, "pipe_app:app", name + "-pipe")
    try:
        if not srv.wait(b"GET /probe HTTP/1.1\r\nHost: b\r\n\r\n"):
            return False
        stats = {"ok": 0, "bad": 0, "extra": 0, "errors": [], "examples": []}
        t0 = loop.time()
        await asyncio.gather(*(pipeline_client(loop, srv.port, c, depth, t0 + DURATION, stats)
                               for c in range(CONNS)))
        secs = loop.time() - t0
        good = stats["bad"] == 0 and stats["extra"] == 0 and not stats["errors"] and stats["ok"] > 0
        say("  %s pipelined %d deep on %d connections for %.1fs: %d answers in order (%.0f/s),"
            " %d wrong, %d batches with extra bytes, %d connection errors -> %s"
            % (name, depth, CONNS, secs, stats["ok"], stats["ok"] / secs, stats["bad"],
               stats["extra"], len(stats["errors"]), "ok" if good else "FAIL"))
        for e in stats["examples"] + stats["errors"][:5]:
            say("    %r" % (e,))
        lua = os.path.join(workdir, "pipeline.lua")
        with open(lua, "w") as f:
            f.write(PIPE_LUA % depth)
        reqs, rps, errors = await run_wrk(srv.port, DURATION, os.path.join(workdir, name + "-pipe.txt"),
                                          ["-s", lua])
        say("  %s wrk pipelined %d deep, -c%d: %d answers, %.0f req/s, %d errors -> %s"
            % (name, depth, CONNS, reqs, rps, errors, "ok" if errors == 0 and reqs else "FAIL"))
        return good and errors == 0 and reqs > 0
    finally:
        srv.stop()


async def main_async(args):
    workdir = tempfile.mkdtemp(prefix="cg-slowloris.")
    ok = True
    try:
        if args.pipeline:
            for t in args.threads:
                ok &= await pipeline_case(t, workdir, args.depth)
            return 0 if ok else 1
        results = []
        for rnd in range(1, args.rounds + 1):
            for t in args.threads:
                r = await slowloris_case(t, workdir, args, rnd)
                results.append(r)
                ok &= r["ok"]
        print()
        print("gthread, 1 worker, server on CPU %s, wrk -t1 -c%d on CPU %s, %d pairs of %ds runs;"
              " loaded = %d idle + %d slowloris connections (%s, %s)"
              % (SERVER_CPU, CONNS, CLIENT_CPU, args.pairs, DURATION, args.idle, args.slow,
                 time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), os.uname().release))
        print()
        print("| worker | best unloaded req/s | best loaded req/s | ratio | median pair ratio "
              "| server CPU us/req unloaded -> loaded | clean pairs | held open |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        for r in results:
            if "ratio" not in r:
                print("| %s | failed to run | | | | | | |" % r["name"])
                continue
            print("| %s | %.0f | %.0f | %.3f%s | %.3f | %.1f -> %.1f | %d/%d | %s |" % (
                r["name"], r["best_u"], r["best_l"], r["ratio"],
                " (inconclusive)" if r["inconclusive"] else "", r["pair_ratio"], r["us_u"],
                r["us_l"], r["clean"], args.pairs, "yes" if not r["problems"] else "NO"))
        if ok and any(r.get("inconclusive") for r in results):
            return 2
        return 0 if ok else 1
    finally:
        if args.keep:
            say("work directory kept: %s" % workdir)
        else:
            subprocess.run(["rm", "-rf", workdir])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--slow", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=1, help="repeat everything, new server each time")
    ap.add_argument("--pairs", type=int, default=5,
                    help="unloaded/loaded wrk run pairs; the best run of each state counts")
    ap.add_argument("--min-ratio", type=float, default=0.80)
    ap.add_argument("--max-noise", type=float, default=0.05,
                    help="a run during which other processes used more than this share of the"
                         " CPUs is disturbed: measured again, and its pair does not count")
    ap.add_argument("--attempts", type=int, default=3, help="runs per measurement at most")
    ap.add_argument("--min-clean", type=int, default=2,
                    help="fewer clean pairs than this: no verdict (exit status 2)")
    ap.add_argument("--observe-deadline", type=float, default=0.0, metavar="S")
    ap.add_argument("--pipeline", action="store_true", help="run the pipelined load check instead")
    ap.add_argument("--depth", type=int, default=16)
    ap.add_argument("--verbose", action="store_true",
                    help="per run, also the CPU share of the server and of wrk plus this process")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, wrk output)")
    args = ap.parse_args()
    for tool in ("wrk", "taskset"):
        if subprocess.run(["sh", "-c", "command -v " + tool], stdout=subprocess.DEVNULL).returncode:
            sys.exit("slowloris: %s is required" % tool)
    if not os.access(CGUNICORN, os.X_OK):
        sys.exit("slowloris: %s is not an executable (set CGUNICORN)" % CGUNICORN)
    # The worker closes a head that is not complete --timeout (30) seconds after
    # its first byte: the slowloris clients only need to live through the
    # loaded runs of one pair.
    if not args.pipeline and 2 + args.attempts * (DURATION + 0.5) >= 30:
        say("slowloris: warning: %d attempts of %ds may outlast the 30 s head deadline;"
            " slowloris clients would then be closed (and reported)" % (args.attempts, DURATION))
    raise_nofile(args.idle + args.slow + CONNS + 200)
    # This process only trickles bytes: keep it off the server's CPU.
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
