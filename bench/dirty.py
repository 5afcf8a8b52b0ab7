#!/usr/bin/python3
"""Dirty arbiters, cgunicorn beside Gunicorn 27 (issue 19's figures), one run.

  bench/dirty.py CGUNICORN_BIN GUNICORN_27_BIN [ROUNDS [NAME=CGUNICORN_BIN ...]]

For each server (-k gthread, 1 HTTP worker, 1 dirty worker, bench/dirty_app.py):
  - no-op execute() round trip: a request runs N calls in a loop and
    reports the wall time per call; the CPU of the whole process tree per
    call (/proc, utime+stime of every process) is read around the request;
  - 10 MB argument and result: execute("echo", 10 MB bytes) per call, wall
    time (the app gets a new bytes object and the caller another), and the
    CPU of the process tree per call, read the same way.
The baseline for the transfer: the same 10 MB sent to a forked echo
process over a unix socketpair and read back (sendall, then recv_into
into a buffer allocated once: the kernel's two copies each way and
nothing else, the cheapest a transfer between two processes can be),
wall time and the CPU of both processes (getrusage, wait4).
Rounds alternate between the servers and the baseline (interleaved); the
median is shown, and the range of the per-round ratios (each round's echo
over the same round's baseline). Extra NAME=BIN arguments add servers (an
older cgunicorn build, for an A/B of a change).
"""
import os
import resource
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
ECHO_CALLS = 20
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
    ticks0 = benchlib.cpu_ticks(p.pid)
    echo = get(port, "/echo?n=%d&mb=%d" % (ECHO_CALLS, MB))
    echo_cpu = (benchlib.cpu_ticks(p.pid) - ticks0) / benchlib.CLK_TCK / ECHO_CALLS
    return noop, cpu, echo, echo_cpu


def pipe_baseline(rounds=ECHO_CALLS):
    data = b"x" * (MB << 20)
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        a.close()
        buf = bytearray(len(data))
        view = memoryview(buf)
        for _ in range(rounds):
            got = 0
            while got < len(buf):
                got += b.recv_into(view[got:])
            b.sendall(buf)
        os._exit(0)
    b.close()
    buf = bytearray(len(data))
    view = memoryview(buf)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    for _ in range(rounds):
        a.sendall(data)
        got = 0
        while got < len(buf):
            got += a.recv_into(view[got:])
    took = (time.perf_counter() - t0) / rounds
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    _, _, child = os.wait4(pid, 0)
    a.close()
    cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
           + child.ru_utime + child.ru_stime) / rounds
    return took, cpu


def main():
    cg, gu = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 9
    binaries = [("cgunicorn", cg), ("gunicorn 27", gu)]
    binaries += [tuple(a.split("=", 1)) for a in sys.argv[4:]]
    logdir = tempfile.mkdtemp(prefix="dirty-bench-logs-")
    servers = {}
    for name, binary in binaries:
        port = benchlib.free_port()
        log = open(os.path.join(logdir, name.replace(" ", "_") + ".log"), "wb")
        servers[name] = (start(binary, port, log), port)
    res = {name: [] for name in servers}
    base = []
    try:
        for _ in range(rounds):
            for name, (p, port) in servers.items():
                res[name].append(measure(p, port))
            base.append(pipe_baseline())
    finally:
        for p, _ in servers.values():
            p.terminate()
        for p, _ in servers.values():
            p.wait(60)
    pipe = statistics.median(b[0] for b in base)
    pipe_cpu = statistics.median(b[1] for b in base)
    print("| server | no-op execute() wall/call | CPU of all processes/call | "
          "10 MB echo wall/call | / socketpair echo (median; per-round range) | "
          "10 MB echo CPU/call | / socketpair echo CPU |")
    print("|---|---|---|---|---|---|---|")
    for name, rows in res.items():
        noop = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        echo = statistics.median(r[2] for r in rows)
        echo_cpu = statistics.median(r[3] for r in rows)
        ratios = sorted(r[2] / b[0] for r, b in zip(rows, base))
        print("| %s | %.1f us | %.1f us | %.2f ms | %.2fx (%.2f-%.2fx) | %.2f ms | %.2fx |"
              % (name, noop * 1e6, cpu * 1e6, echo * 1e3, echo / pipe, ratios[0], ratios[-1],
                 echo_cpu * 1e3, echo_cpu / pipe_cpu))
    print("| socketpair echo of 10 MB, buffers allocated once (baseline) | | | %.2f ms | 1.00x "
          "| %.2f ms | 1.00x |" % (pipe * 1e3, pipe_cpu * 1e3))
    print("\nrounds: %d (interleaved, median); %d no-op calls and %d echo calls per "
          "round; logs in %s" % (rounds, NOOP_CALLS, ECHO_CALLS, logdir))


if __name__ == "__main__":
    main()
