"""bench/balance.sh's application: hello world that also counts the
requests each worker process serves. Every 32nd request (and the first) it
rewrites $BALANCE_DIR/<pid> with the count and the number of
different client ports it saw (its connections), so the same app measures the
spread under any server; the script reads the files after the run."""

import os

BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]
DIR = os.environ.get("BALANCE_DIR", "/tmp")
_count = [0, None]
_peers = set()  # the client ports seen: the connections this worker served


def _counted(port):
    _count[0] += 1
    _peers.add(port)
    n = _count[0]
    if n == 1 or n % 32 == 0:
        if _count[1] is None:
            _count[1] = os.open(os.path.join(DIR, str(os.getpid())), os.O_WRONLY | os.O_CREAT, 0o644)
        os.pwrite(_count[1], b"%12d %12d\n" % (n, len(_peers)), 0)


def app(environ, start_response):
    if environ["PATH_INFO"] == "/probe":  # the script's start-up probe: not counted
        pid = b"%d" % os.getpid()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(pid)))])
        return [pid]
    _counted(environ.get("REMOTE_PORT"))
    start_response("200 OK", HEADERS)
    return [BODY]


ASGI_START = {"type": "http.response.start", "status": 200,
              "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")]}
ASGI_END = {"type": "http.response.body", "body": BODY}


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/probe":
        pid = b"%d" % os.getpid()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"content-length", b"%d" % len(pid))]})
        await send({"type": "http.response.body", "body": pid})
        return
    _counted((scope.get("client") or ("", 0))[1])
    await send(ASGI_START)
    await send(ASGI_END)
