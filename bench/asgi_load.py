"""A fixed number of hello-world requests for bench/asgi-callgrind.sh.

    asgi_load.py close PORT N C      N connections, one `Connection: close`
                                     request each, C at a time
    asgi_load.py keepalive PORT N C  C keep-alive connections, N/C requests
                                     each, one at a time per connection

Exits 1 unless every answer was a 200 (bench/hello_asgi.py's 13-byte body).
"""
import asyncio
import sys

CLOSE = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
KEEP = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


async def one_close(port, sem, bad):
    async with sem:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(CLOSE)
        data = await r.read()
        w.close()
        if not data.startswith(b"HTTP/1.1 200"):
            bad.append(data[:100])


async def keepalive(port, count, bad):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(count):
        w.write(KEEP)
        head = await r.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            bad.append(head[:100])
        await r.readexactly(13)
    w.close()


async def main(mode, port, n, c):
    bad = []
    if mode == "close":
        sem = asyncio.Semaphore(c)
        await asyncio.gather(*(one_close(port, sem, bad) for _ in range(n)))
    else:
        await asyncio.gather(*(keepalive(port, n // c, bad) for _ in range(c)))
    return bad


if __name__ == "__main__":
    bad = asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
    if bad:
        print("asgi_load: %d bad answers, first %r" % (len(bad), bad[0]), file=sys.stderr)
    sys.exit(1 if bad else 0)
