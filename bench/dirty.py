#!/usr/bin/python3
"""Dirty arbiters, cgunicorn beside Gunicorn 27 (issue 19's figures), one run.

  bench/dirty.py CGUNICORN_BIN GUNICORN_27_BIN [ROUNDS]

For each server (-k gthread, 1 HTTP worker, 1 dirty worker, bench/dirty_app.py):
  - no-op execute() round trip: a request runs N calls in a loop and
    reports the wall time per call; the CPU of the whole process tree per
    call (/proc, utime+stime of every process) is read around the request;
  - 10 MB argument and result: execute("echo", 10 MB) per call, wall time.
Baselines for the transfer: the same 10 MB sent to a forked echo process
over a socketpair and read back (sendall / recv_into), in this process,
with buffers reused, and with a fresh receive buffer for each transfer
(as a call that hands new bytes objects to the app and back must have).
Rounds alternate between the servers (A/B interleaved); the median is shown.
"""
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402

NOOP_CALLS = 2000
ECHO_CALLS = 5
MB = 10


def start(binary, port, log):
    cmd = [binary, "-b", "127.0.0.1:%d" % port, "-k", "gthread", "--threads", "2", "-w", "1",
           "--dirty-app", "dirty_app:Bench", "--dirty-workers", "1", "--chdir", HERE,
           "--no-control-socket" if "cgunicorn" in binary else "--no-control-socket",
           "dirty_app:app"]
    env = dict(os.environ, XDG_RUNTIME_DIR=tempfile.mkdtemp(prefix="dirty-bench-"))
    p = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, cwd=HERE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            get(port, "/noop?n=1")
            return p
        except OSError:
            time.sleep(0.2)
    p.kill()
    raise SystemExit("%s did not start (see %s)" % (binary, log.name))


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=300) as r:
        return float(r.read())


def measure(p, port):
    ticks0 = benchlib.cpu_ticks(p.pid)
    noop = get(port, "/noop?n=%d" % NOOP_CALLS)
    ticks = benchlib.cpu_ticks(p.pid) - ticks0
    cpu = ticks / benchlib.CLK_TCK / NOOP_CALLS
    echo = get(port, "/echo?n=%d&mb=%d" % (ECHO_CALLS, MB))
    return noop, cpu, echo


def pipe_baseline(rounds=ECHO_CALLS, fresh=False):
    data = b"x" * (MB << 20)
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        a.close()
        buf = bytearray(len(data))
        view = memoryview(buf)
        for _ in range(rounds):
            if fresh:
                buf = bytearray(len(data))
                view = memoryview(buf)
            got = 0
            while got < len(buf):
                got += b.recv_into(view[got:])
            b.sendall(buf)
        os._exit(0)
    b.close()
    buf = bytearray(len(data))
    view = memoryview(buf)
    t0 = time.perf_counter()
    for _ in range(rounds):
        if fresh:
            buf = bytearray(len(data))
            view = memoryview(buf)
        a.sendall(data)
        got = 0
        while got < len(buf):
            got += a.recv_into(view[got:])
    took = (time.perf_counter() - t0) / rounds
    os.waitpid(pid, 0)
    a.close()
    return took


def main():
    cg, gu = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    logdir = tempfile.mkdtemp(prefix="dirty-bench-logs-")
    servers = {}
    for name, binary in (("cgunicorn", cg), ("gunicorn 27", gu)):
        port = benchlib.free_port()
        log = open(os.path.join(logdir, name.replace(" ", "_") + ".log"), "wb")
        servers[name] = (start(binary, port, log), port)
    res = {name: [] for name in servers}
    base, fresh = [], []
    try:
        for _ in range(rounds):
            for name, (p, port) in servers.items():
                res[name].append(measure(p, port))
            base.append(pipe_baseline())
            fresh.append(pipe_baseline(fresh=True))
    finally:
        for p, _ in servers.values():
            p.terminate()
        for p, _ in servers.values():
            p.wait(60)
    pipe = statistics.median(base)
    pipe_fresh = statistics.median(fresh)
    print("| server | no-op execute() wall/call | CPU of all processes/call | "
          "10 MB echo wall/call | echo / socketpair echo | echo / same, fresh buffers |")
    print("|---|---|---|---|---|---|")
    for name, rows in res.items():
        noop = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        echo = statistics.median(r[2] for r in rows)
        print("| %s | %.1f us | %.1f us | %.2f ms | %.2fx | %.2fx |"
              % (name, noop * 1e6, cpu * 1e6, echo * 1e3, echo / pipe, echo / pipe_fresh))
    print("| socketpair echo of 10 MB, buffers reused (baseline) | | | %.2f ms | 1.00x | |"
          % (pipe * 1e3))
    print("| socketpair echo of 10 MB, a fresh receive buffer per transfer | | | %.2f ms | "
          "| 1.00x |" % (pipe_fresh * 1e3))
    print("\nrounds: %d (A/B interleaved, median); %d no-op calls and %d echo calls per "
          "round; logs in %s" % (rounds, NOOP_CALLS, ECHO_CALLS, logdir))


if __name__ == "__main__":
    main()
