"""Steady load for test_fleet.py, run inside the client network namespace
(`ip netns exec NS python3 fleet_load.py ...`): THREADS threads, each on its
own keep-alive HTTP/1.1 connection to the balancer, GET after GET (the first
thread's take half a second each: requests in flight when a worker is told to
stop, which it must finish) until a
line "stop" (or EOF) arrives on stdin. Every answer is checked against the
expectations (the host's REMOTE_ADDR, the scheme, X-Forwarded-For); anything
else, a connection error included, is a failure. Prints "ready" once the
balancer has answered one request, answers "served HOST" lines with a
count, and at the end writes a JSON report to
OUT: counts, failures by kind with samples, and per thread the monotonic
time and host of every success, from which the test computes the gaps a
client saw (CLOCK_MONOTONIC is the same in every network namespace).

    fleet_load.py HOST PORT THREADS OUT EXPECT_JSON
"""

import http.client
import json
import sys
import threading
import time


def main():
    host, port, nthreads, out, expect = sys.argv[1:6]
    port, nthreads, expect = int(port), int(nthreads), json.loads(expect)
    stop = threading.Event()
    lock = threading.Lock()
    stats = {"sent": 0, "ok": 0, "failures": {}, "samples": []}
    times = [[] for _ in range(nthreads)]

    def fail(kind, detail):
        with lock:
            stats["failures"][kind] = stats["failures"].get(kind, 0) + 1
            if len(stats["samples"]) < 20:
                stats["samples"].append([round(time.monotonic(), 3), kind, detail[:300]])

    def check(body):
        try:
            d = json.loads(body)
        except ValueError:
            return "not json: %r" % body[:100]
        want = expect["remote_addr"].get(d.get("host"))
        if want is None:
            return "unknown host %r" % d.get("host")
        if d.get("remote_addr") != want:
            return "host %s REMOTE_ADDR %r, want %r" % (d["host"], d.get("remote_addr"), want)
        if d.get("scheme") != expect["scheme"]:
            return "host %s scheme %r, want %r" % (d["host"], d.get("scheme"), expect["scheme"])
        if "xff" in expect and d.get("xff") != expect["xff"]:
            return "host %s X-Forwarded-For %r, want %r" % (d["host"], d.get("xff"), expect["xff"])
        return d["host"]

    def get(conn, i, slow=False):
        conn.request("GET", "/?n=%d&sleep=0.5" % i if slow else "/?n=%d" % i)
        resp = conn.getresponse()
        return resp.status, resp.read()

    # The balancer may still be starting: wait for its first answer (not
    # counted) before the load and the clock start.
    deadline = time.monotonic() + 60
    while True:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        try:
            status, body = get(conn, 0)
            if status == 200:
                break
        except OSError:
            pass
        finally:
            conn.close()
        if time.monotonic() > deadline:
            print("balancer never answered", flush=True)
            return 1
        time.sleep(0.1)

    def run(k):
        conn = None
        i = 0
        while not stop.is_set():
            i += 1
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=30)
            with lock:
                stats["sent"] += 1
            try:
                status, body = get(conn, i, slow=k == 0)
            except (OSError, http.client.HTTPException) as e:
                fail(type(e).__name__, repr(e))
                conn.close()
                conn = None
                continue
            if status != 200:
                fail("status %d" % status, body.decode("latin-1"))
                continue
            got = check(body)
            if got not in expect["remote_addr"]:
                fail("wrong", got)
                continue
            with lock:
                stats["ok"] += 1
            times[k].append((round(time.monotonic(), 4), got))
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(nthreads)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    # "served HOST": how many answers HOST gave so far (the test waits on
    # it for a host to be back in the balancer's rotation)
    for line in sys.stdin:
        words = line.split()
        if words == ["stop"]:
            break
        if len(words) == 2 and words[0] == "served":
            with lock:
                n = sum(1 for ts in times for _, h in ts if h == words[1])
            print(n, flush=True)
    stop.set()
    for t in threads:
        t.join(60)
    stats["times"] = times
    stats["stuck_threads"] = sum(t.is_alive() for t in threads)
    with open(out, "w") as f:
        json.dump(stats, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
