"""Requests that outlive request_timeout (tests/integration/test_request_timeout.py).

/sleep?s=N     time.sleep(N), then 200 "slept"
/spin?s=N      a pure-Python loop for N seconds (no blocking call)
/swallow?s=N   time.sleep(N), but a TimeoutError is caught and the sleep
               goes on: the request keeps its thread for the whole N seconds
/pid          200 with the worker's pid
/              200 "ok" at once (the worker's other requests)

app is WSGI (sync, gthread); asgi_app the same for -k asgi (asyncio.sleep,
CancelledError swallowed), gevent_app for -k gevent (gevent.sleep).
"""
import os
import time
from urllib.parse import parse_qs


def _seconds(environ, default):
    q = parse_qs(environ.get("QUERY_STRING", ""))
    return float(q.get("s", [default])[0])


def _swallowing_sleep(s):
    end = time.monotonic() + s
    caught = 0
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return caught
        try:
            time.sleep(left)
        except TimeoutError:
            caught += 1


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/sleep":
        time.sleep(_seconds(environ, 60))
        body = b"slept"
    elif path == "/spin":
        end = time.monotonic() + _seconds(environ, 60)
        n = 0
        while time.monotonic() < end:
            n += 1
        body = b"spun"
    elif path == "/swallow":
        body = b"swallowed %d" % _swallowing_sleep(_seconds(environ, 60))
    elif path == "/pid":
        body = str(os.getpid()).encode()
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi_app(scope, receive, send):
    """The same paths for the asgi worker (asyncio.sleep; /swallow catches
    the CancelledError and sleeps on)."""
    import asyncio

    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return
    path = scope["path"]
    q = parse_qs(scope.get("query_string", b"").decode())
    s = float(q.get("s", ["60"])[0])
    if path == "/sleep":
        await asyncio.sleep(s)
        body = b"slept"
    elif path == "/swallow":
        end = time.monotonic() + s
        caught = 0
        while time.monotonic() < end:
            try:
                await asyncio.sleep(end - time.monotonic())
            except asyncio.CancelledError:
                caught += 1
        body = b"swallowed %d" % caught
    elif path == "/pid":
        body = str(os.getpid()).encode()
    else:
        body = b"ok"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def gevent_app(environ, start_response):
    """The same paths for the gevent worker: gevent.sleep (time.sleep is
    gevent's after monkey.patch_all() anyway; this says it)."""
    import gevent

    path = environ.get("PATH_INFO", "/")
    if path == "/sleep":
        gevent.sleep(_seconds(environ, 60))
        body = b"slept"
    elif path == "/swallow":
        end = time.monotonic() + _seconds(environ, 60)
        caught = 0
        while time.monotonic() < end:
            try:
                gevent.sleep(end - time.monotonic())
            except TimeoutError:
                caught += 1
        body = b"swallowed %d" % caught
    else:
        return app(environ, start_response)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
