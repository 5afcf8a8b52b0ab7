#!/usr/bin/python3
"""Helpers for bench/run.sh: ports, readiness, /proc accounting, wrk parsing, the table.

Usage:
  benchlib.py port                         print a free TCP port on 127.0.0.1
  benchlib.py wait PORT PID TIMEOUT        wait until GET / answers "Hello, World!" (exit 1: no)
  benchlib.py cpu PID                      CPU ticks (utime+stime) of PID and its descendants,
                                           plus PID's cutime+cstime (reaped workers)
  benchlib.py rss PID                      sum of VmRSS (KiB) of PID and its descendants
  benchlib.py mem PID                      "pid rss_kib pss_kib" of PID and each descendant
                                           (VmRSS; Pss from /proc/PID/smaps_rollup)
  benchlib.py pids PID                     PID and its descendants
  benchlib.py wrk FILE                     "requests rps errors" parsed from wrk output
  benchlib.py table TSV                    markdown table from run.sh's results
  benchlib.py ftable TSV MEM_TSV           frontends.sh's tables (CPU per request, memory)
  benchlib.py cpu2 PID                     like cpu, as "user system" ticks
  benchlib.py sink PORT                    a StatsD agent stand-in: read UDP datagrams on
                                           127.0.0.1:PORT until killed
  benchlib.py otable TSV                   observability.sh's table (CPU per request per variant)
"""
import http.client
import os
import re
import socket
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    # the command name may hold spaces or parentheses: split after the last ')'
    rest = data[data.rindex(")") + 2:].split()
    return rest  # rest[0] is field 3 (state)


def descendants(root):
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(stat_fields(int(d))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_split(root):
    """(user, system) ticks of root and its descendants, plus root's reaped
    children."""
    user = system = 0
    for pid in descendants(root):
        try:
            f = stat_fields(pid)
        except OSError:
            continue
        # fields 14..17 (utime stime cutime cstime) are rest[11..14]
        user += int(f[11])
        system += int(f[12])
        if pid == root:
            user += int(f[13])
            system += int(f[14])
    return user, system


def cpu_ticks(root):
    return sum(cpu_split(root))


def sink(port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind(("127.0.0.1", port))
        while True:
            s.recv(65536)


def otable(tsv):
    """observability.sh: per variant, server CPU per request (user, system,
    total) over all rounds, and the difference to off, overall and per
    round."""
    runs = {}
    order = []
    for line in open(tsv):
        f = line.rstrip("\n").split("\t")
        if len(f) != 7:
            continue
        var, rnd, reqs, rps, user, system, errors = f
        if var not in runs:
            order.append(var)
        runs.setdefault(var, []).append(
            (int(rnd), int(reqs), float(rps), int(user), int(system), int(errors)))

    def us(rows, idx):
        reqs = sum(r[1] for r in rows)
        if not reqs:
            return float("nan")
        return sum(sum(r[i] for i in idx) for r in rows) * 1e6 / CLK_TCK / reqs

    base = runs.get("off", [])
    print("| metrics | requests | req/s (mean) | user us/req | system us/req | total us/req "
          "| vs off | vs off per round | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|")
    for var in order:
        rows = runs[var]
        diff = per_round = ""
        if var != "off" and base:
            diff = "%+.2f" % (us(rows, (3, 4)) - us(base, (3, 4)))
            by_round = {r[0]: r for r in base}
            per_round = " ".join("%+.2f" % (us([r], (3, 4)) - us([by_round[r[0]]], (3, 4)))
                                 for r in rows if r[0] in by_round)
        print("| %s | %d | %.0f | %.2f | %.2f | %.2f | %s | %s | %d |" % (
            var, sum(r[1] for r in rows), sum(r[2] for r in rows) / len(rows),
            us(rows, (3,)), us(rows, (4,)), us(rows, (3, 4)), diff, per_round,
            sum(r[5] for r in rows)))
    print()
    print("us/req = utime/stime of master and worker (plus reaped children) over all rounds "
          "/ requests; clock tick = %d us." % (1000000 // CLK_TCK))


def rss_kib(root):
    total = 0
    for pid in descendants(root):
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def mem(root):
    """[(pid, rss KiB, pss KiB)] of root and its descendants."""
    out = []
    for pid in descendants(root):
        rss = pss = None
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1])
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss = int(line.split()[1])
        except OSError:
            continue
        if rss is not None and pss is not None:
            out.append((pid, rss, pss))
    return out


def wait_ready(port, pid, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return 1
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/")
            r = c.getresponse()
            body = r.read()
            c.close()
            # bench/hello.py answers without a newline, examples/hello.py with one
            if r.status == 200 and body.rstrip(b"\n") == b"Hello, World!":
                return 0
            print("unexpected answer: %d %r" % (r.status, body[:80]), file=sys.stderr)
            return 1
        except OSError:
            time.sleep(0.1)
    return 1


def parse_wrk(path):
    text = open(path).read()
    m = re.search(r"(\d+) requests in", text)
    reqs = int(m.group(1)) if m else 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    rps = float(m.group(1)) if m else 0.0
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m.group(1))
    return reqs, rps, errors


def parse_p99(path):
    """wrk --latency's 99th percentile in ms; NaN when the run printed none."""
    m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", open(path).read(), re.M)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


def table(tsv):
    rows = []
    for line in open(tsv):
        f = line.rstrip("\n").split("\t")
        if len(f) not in (8, 9):
            continue
        server, scen, reqs, rps, ticks, rss, errors, conns = f[:8]
        p99 = float(f[8]) if len(f) == 9 else float("nan")
        reqs, rps, ticks, rss, errors = int(reqs), float(rps), int(ticks), int(rss), int(errors)
        us = ticks * 1e6 / CLK_TCK / reqs if reqs else float("nan")
        rows.append((server, scen, rps, us, rss, errors, reqs, conns, p99))
    # Each row is compared with Gunicorn running the same worker: cgunicorn-gthread4
    # with gunicorn-gthread4, everything else with gunicorn (sync).
    base = {(r[0], r[1]): r for r in rows if r[0].startswith("gunicorn")}

    def base_of(server, scen):
        same = server.replace("cgunicorn", "gunicorn", 1)
        return base.get((same, scen)) or base.get(("gunicorn", scen))

    def ratio(a, b):
        return "%.2fx" % (a / b) if b and a == a and b == b else "n/a"

    # yardsticks in the same run: nginx's `return 200`, and Uvicorn for ASGI
    other = {(r[0], r[1]): r for r in rows if r[0] in ("nginx", "uvicorn")}
    extra = [n for n in ("nginx", "uvicorn") if any(k[0] == n for k in other)]
    print("| server | scenario | req/s | req/s vs gunicorn | CPU us/req | CPU vs gunicorn "
          "| RSS MiB (master+worker) | requests | errors |" +
          "".join(" CPU vs %s |" % n for n in extra) + " p99 ms |" +
          (" p99 vs nginx |" if "nginx" in extra else ""))
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(extra) + "---:|" +
          ("---:|" if "nginx" in extra else ""))
    for server, scen, rps, us, rss, errors, reqs, conns, p99 in rows:
        b = base_of(server, scen)
        cells = "".join(" %s |" % (ratio(us, other[(n, scen)][3]) if (n, scen) in other else "n/a")
                        for n in extra)
        cells += " %.2f |" % p99
        if "nginx" in extra:
            ng = other.get(("nginx", scen))
            cells += " %s |" % (ratio(p99, ng[8]) if ng else "n/a")
        print("| %s | %s | %.0f | %s | %.1f | %s | %.1f | %d | %d |%s" % (
            server, scen + " (c=%s)" % conns, rps, ratio(rps, b[2]) if b else "n/a", us,
            ratio(us, b[3]) if b else "n/a", rss / 1024.0, reqs, errors, cells))
    print()
    print("CPU us/req = (utime+stime of master and workers, plus reaped children) / requests; "
          "clock tick = %d us. Ratios (against Gunicorn with the same worker class and threads): "
          "req/s higher is better, CPU lower is better. p99: wrk --latency's 99th percentile "
          "of the measured run." % (1000000 // CLK_TCK))


def ftable(tsv, mem_tsv):
    """frontends.sh: per scenario, each front end's CPU per request over all
    its rounds, the console script's ratio to the standalone (overall and per
    round), then memory."""
    runs = {}
    for line in open(tsv):
        f = line.rstrip("\n").split("\t")
        if len(f) != 7:
            continue
        front, scen, rnd, reqs, rps, ticks, errors = f
        runs.setdefault((scen, front), []).append(
            (int(rnd), int(reqs), float(rps), int(ticks), int(errors)))

    def us(rows):
        reqs = sum(r[1] for r in rows)
        return sum(r[3] for r in rows) * 1e6 / CLK_TCK / reqs if reqs else float("nan")

    print("| traffic | front end | requests | req/s (mean) | server CPU us/req | "
          "console / standalone | per round | errors |")
    print("|---|---|---:|---:|---:|---:|---|---:|")
    for scen in ("keepalive", "close"):
        std = runs.get((scen, "standalone"), [])
        con = runs.get((scen, "console"), [])
        for front, rows in (("standalone", std), ("console script", con)):
            if not rows:
                continue
            ratio = per_round = ""
            if front == "console script" and std:
                ratio = "%.3f" % (us(con) / us(std))
                by_round = {r[0]: r for r in std}
                per_round = " ".join("%.2f" % (us([r]) / us([by_round[r[0]]]))
                                     for r in con if r[0] in by_round)
            print("| %s | %s | %d | %.0f | %.2f | %s | %s | %d |" % (
                "keep-alive" if scen == "keepalive" else "`Connection: close`", front,
                sum(r[1] for r in rows), sum(r[2] for r in rows) / len(rows), us(rows),
                ratio, per_round, sum(r[4] for r in rows)))
    print()
    print("| front end | master RSS | worker RSS | RSS master+worker | master PSS | worker PSS "
          "| PSS master+worker |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for line in open(mem_tsv):
        f = line.rstrip("\n").split("\t")
        if len(f) != 5:
            continue
        front, mrss, mpss, wrss, wpss = f[0], int(f[1]), int(f[2]), int(f[3]), int(f[4])
        mib = lambda k: "%.1f MiB" % (k / 1024.0)  # noqa: E731
        print("| %s | %s | %s | %s | %s | %s | %s |" % (
            front, mib(mrss), mib(wrss), mib(mrss + wrss), mib(mpss), mib(wpss),
            mib(mpss + wpss)))
    print()
    print("CPU us/req = (utime+stime of master and worker, plus reaped children) over all "
          "rounds / requests; clock tick = %d us. The ratio is the console script's CPU per "
          "request over the standalone's (goal: <= 1.05); `per round` compares runs made "
          "back to back. RSS: VmRSS; PSS: Pss of /proc/PID/smaps_rollup (shared pages "
          "split between the processes mapping them), after warm-up." % (1000000 // CLK_TCK))


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "port":
        print(free_port())
    elif cmd == "wait":
        return wait_ready(int(argv[2]), int(argv[3]), float(argv[4]))
    elif cmd == "cpu":
        print(cpu_ticks(int(argv[2])))
    elif cmd == "cpu2":
        print("%d %d" % cpu_split(int(argv[2])))
    elif cmd == "sink":
        sink(int(argv[2]))
    elif cmd == "otable":
        otable(argv[2])
    elif cmd == "rss":
        print(rss_kib(int(argv[2])))
    elif cmd == "pids":
        print(" ".join(str(p) for p in descendants(int(argv[2]))))
    elif cmd == "wrk":
        print("%d %.2f %d" % parse_wrk(argv[2]))
    elif cmd == "p99":
        print("%.3f" % parse_p99(argv[2]))
    elif cmd == "mem":
        for pid, rss, pss in mem(int(argv[2])):
            print("%d %d %d" % (pid, rss, pss))
    elif cmd == "table":
        table(argv[2])
    elif cmd == "ftable":
        ftable(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
