"""10,000 malformed, truncated and oversized requests over many connections:
the workers must neither die, nor leak descriptors, nor grow."""

import base64
import json
import os
import random
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

import cgtest

CASES = cgtest.load_corpus()
COUNT = int(os.environ.get("CG_HOSTILE_COUNT", "10000"))
THREADS = 16
MAX_FD_GROWTH = 3
MAX_RSS_GROWTH = 10 * 1024 * 1024
SANITIZED = "ASAN_OPTIONS" in os.environ

VALID_RAW = [base64.b64decode(c["raw_b64"]) for c in CASES
             if c["group"] == "valid" and not c["settings"]]
INVALID_RAW = [base64.b64decode(c["raw_b64"]) for c in CASES
               if c["group"] == "invalid" and not c["settings"]]


def _oversize(rng):
    kind = rng.randrange(7)
    if kind == 0:
        return b"GET /" + b"a" * rng.randrange(4000, 20000) + b" HTTP/1.1\r\n\r\n"
    if kind == 1:
        return b"GET / HTTP/1.1\r\nX-Big: " + b"v" * rng.randrange(8000, 30000) + b"\r\n\r\n"
    if kind == 2:
        return (b"GET / HTTP/1.1\r\n"
                + b"".join(b"H%d: x\r\n" % i for i in range(rng.randrange(101, 400))) + b"\r\n")
    if kind == 3:
        return (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"F" * rng.randrange(10, 200) + b"\r\nabc\r\n0\r\n\r\n")
    if kind == 4:
        return b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\nshort"
    if kind == 5:
        return b"GET / HTTP/1.1\r\n" + b"\r\n" * rng.randrange(1, 5000)
    return (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"1;" + b"e" * rng.randrange(1, 300) + b"\r\nx\r\n"
                       for _ in range(rng.randrange(1, 200))))


def payload(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 3000))
    if kind == 1:
        raw = rng.choice(VALID_RAW)
        return raw[:rng.randrange(1, len(raw))]
    if kind == 2:
        return rng.choice(INVALID_RAW)
    if kind == 3:
        return _oversize(rng)
    if kind == 4:
        # a valid request followed by garbage on the same connection
        return rng.choice(VALID_RAW) + rng.randbytes(rng.randrange(1, 500))
    # a valid request with a few bytes flipped
    raw = bytearray(rng.choice(VALID_RAW))
    for _ in range(rng.randrange(1, 4)):
        raw[rng.randrange(len(raw))] = rng.randrange(256)
    return bytes(raw)


LINGER_RESET = struct.pack("ii", 1, 0)


def hit(port, data, timeout=10.0):
    """Send data, half-close, read until the server closes. Returns True, or
    False if the server kept the connection open past the timeout."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # reset on close: 10,000 TIME_WAIT sockets would eat the port range
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            return True     # the server answered and closed before reading it all
        try:
            cgtest.read_until_close(s, timeout)
        except TimeoutError:
            return False
        except OSError:
            pass
        return True
    finally:
        s.close()


def worker_stats(pids):
    out = {}
    for pid in pids:
        p = psutil.Process(pid)
        out[pid] = (p.num_fds(), p.memory_info().rss)
    return out


@pytest.mark.timeout(180)
def test_hostile_traffic(cg):
    srv = cg("echo:app", args=["-w", "2"])
    rng = random.Random(20261126)
    warm = [payload(random.Random(i)) for i in range(300)]
    with ThreadPoolExecutor(THREADS) as ex:
        list(ex.map(lambda d: hit(srv.port, d), warm))
        for _ in range(20):
            assert srv.get_json()["REQUEST_METHOD"] == "GET"
    time.sleep(0.5)
    pids = srv.worker_pids()
    assert len(pids) == 2
    before = worker_stats(pids)

    datas = [payload(rng) for _ in range(COUNT)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(THREADS) as ex:
        results = list(ex.map(lambda d: hit(srv.port, d), datas))
    elapsed = time.monotonic() - t0
    hung = results.count(False)
    assert hung == 0, "%d connections were never closed by the server" % hung

    time.sleep(0.5)
    assert srv.alive(), srv.log()[-3000:]
    assert srv.worker_pids() == pids, "workers died or were replaced:\n%s" % srv.log()[-3000:]
    after = worker_stats(pids)
    for pid in pids:
        fds0, rss0 = before[pid]
        fds1, rss1 = after[pid]
        assert fds1 - fds0 <= MAX_FD_GROWTH, "worker %d fds %d -> %d" % (pid, fds0, fds1)
        if not SANITIZED:
            # ASan keeps freed memory in quarantine: RSS says nothing there.
            assert rss1 - rss0 < MAX_RSS_GROWTH, "worker %d RSS %d -> %d" % (pid, rss0, rss1)
    log = srv.log()
    rejected = log.count("[WARNING] Invalid request from ip=127.0.0.1:")
    # proof the traffic reached the workers: most payloads are 4xx material
    assert rejected > COUNT // 6, "only %d requests were rejected with a 4xx" % rejected
    assert "Exception in worker process" not in log
    assert "was sent" not in srv.log()
    got = srv.get_json("/still-fine")
    assert got["PATH_INFO"] == "/still-fine" and got["pid"] in pids
    print("hostile: %d connections in %.1fs, %d rejected; workers %s"
          % (COUNT, elapsed, rejected, json.dumps({str(k): v for k, v in after.items()})))
    assert elapsed < 60, "hostile traffic took %.1fs" % elapsed
