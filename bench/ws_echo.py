#!/usr/bin/env python3
"""bench/ws_echo.py - WebSocket echo throughput: bench/ws_echo_asgi.py under cgunicorn -k asgi,
Uvicorn (uvloop, `websockets` protocol) and Granian's ASGI mode, one worker each, one run.

The load client is this script: CONNS connections (default 100), each keeping WINDOW (64) text
messages of SIZE (32) bytes in flight, no permessage-deflate offered. Frames are made once
(masked with a fixed key) and echoes are counted by their byte size, so the client spends
little per message; it runs on CPU CLIENT_CPU (1), the server on SERVER_CPU (0). Measured over
DURATION seconds (8) after WARMUP (2): messages echoed per second, and server CPU
microseconds per message (utime+stime of the server's processes from /proc, as bench/run.sh).
Environment: CGUNICORN, BENCH_VENV (with uvicorn, websockets, granian), SERVERS.
"""
import asyncio
import base64
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402

CONNS = int(os.environ.get("CONNS", "100"))
WINDOW = int(os.environ.get("WINDOW", "64"))
SIZE = int(os.environ.get("SIZE", "32"))
DURATION = float(os.environ.get("DURATION", "8"))
WARMUP = float(os.environ.get("WARMUP", "2"))
SERVER_CPU = os.environ.get("SERVER_CPU", "0")
CLIENT_CPU = int(os.environ.get("CLIENT_CPU", "1"))
CGUNICORN = os.environ.get("CGUNICORN", "/work/main/build/cgunicorn")
VENV = os.environ.get("BENCH_VENV", os.path.join(HERE, "..", "build", "bench-venv"))
SERVERS = os.environ.get("SERVERS", "cgunicorn-asgi uvicorn granian-asgi").split()


def frame(payload):
    """One masked text frame (client to server), payload < 126 bytes."""
    key = b"\x11\x22\x33\x44"
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + key + masked


class Counter:
    def __init__(self):
        self.n = 0


async def client(port, counter, stop):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n" % (port, key)).encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError("handshake refused: %r" % head[:100])
    out = frame(b"x" * SIZE)
    echo = 2 + SIZE  # server frames are not masked
    writer.write(out * WINDOW)
    pending = 0
    while not stop.is_set():
        data = await reader.read(65536)
        if not data:
            raise RuntimeError("server closed the connection")
        pending += len(data)
        k, pending = divmod(pending, echo)
        counter.n += k
        writer.write(out * k)
    writer.close()


async def load(port):
    counter, stop = Counter(), asyncio.Event()
    tasks = [asyncio.ensure_future(client(port, counter, stop)) for _ in range(CONNS)]
    await asyncio.sleep(WARMUP)
    if any(t.done() for t in tasks):
        for t in tasks:
            if t.done():
                t.result()
    return counter, stop, tasks


def measure(port, pid):
    loop = asyncio.new_event_loop()
    counter, stop, tasks = loop.run_until_complete(load(port))
    n0, c0, t0 = counter.n, benchlib.cpu_ticks(pid), time.monotonic()
    loop.run_until_complete(asyncio.sleep(DURATION))
    n1, c1, t1 = counter.n, benchlib.cpu_ticks(pid), time.monotonic()
    stop.set()
    for t in tasks:
        t.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.close()
    msgs = n1 - n0
    return msgs, msgs / (t1 - t0), (c1 - c0) * 1e6 / benchlib.CLK_TCK / max(msgs, 1)


def command(name, port):
    site = next(iter(sorted(
        os.path.join(VENV, "lib", d, "site-packages")
        for d in os.listdir(os.path.join(VENV, "lib")) if d.startswith("python3"))), "")
    if name == "cgunicorn-asgi":
        return (["env", "PYTHONPATH=" + site, CGUNICORN, "-w", "1", "-k", "asgi", "--asgi-loop",
                 "uvloop", "-b", "127.0.0.1:%d" % port, "--chdir", HERE, "ws_echo_asgi:app"])
    if name == "uvicorn":
        return ([os.path.join(VENV, "bin", "uvicorn"), "--workers", "1", "--loop", "uvloop",
                 "--http", "httptools", "--ws", "websockets", "--no-access-log", "--host",
                 "127.0.0.1", "--port", str(port), "--app-dir", HERE, "ws_echo_asgi:app"])
    if name == "granian-asgi":
        return ([os.path.join(VENV, "bin", "granian"), "--interface", "asgi", "--workers", "1",
                 "--host", "127.0.0.1", "--port", str(port), "--working-dir", HERE,
                 "ws_echo_asgi:app"])
    raise SystemExit("unknown server " + name)


def main():
    os.sched_setaffinity(0, {CLIENT_CPU})
    rows = []
    for name in SERVERS:
        port = benchlib.free_port()
        cmd = ["taskset", "-c", SERVER_CPU] + command(name, port)
        print("== %s: %s" % (name, " ".join(cmd)), file=sys.stderr)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)
        try:
            if benchlib.wait_ready(port, proc.pid, 15) != 0:
                print("skip %s: not ready" % name, file=sys.stderr)
                continue
            msgs, rate, us = measure(port, proc.pid)
            print("  %d messages, %.0f/s, %.2f us server CPU each" % (msgs, rate, us),
                  file=sys.stderr)
            rows.append((name, rate, us))
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    base = dict((r[0], r) for r in rows).get("cgunicorn-asgi")
    print("\nWebSocket echo, %d connections x %d in flight, %d-byte text, 1 worker, server on CPU %s,"
          " client on CPU %d, %gs after %gs warm-up (%s)\n"
          % (CONNS, WINDOW, SIZE, SERVER_CPU, CLIENT_CPU, DURATION, WARMUP,
             time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())))
    print("| server | messages/s | server CPU µs/message | cgunicorn-asgi's CPU per message ÷ this one's |")
    print("|---|---:|---:|---:|")
    for name, rate, us in rows:
        ratio = "%.2f×" % (base[2] / us) if base and us else "-"
        print("| %s | %.0f | %.2f | %s |" % (name, rate, us, ratio))
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
