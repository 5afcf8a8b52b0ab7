"""Every path answers the serving process's pid: `app` for the WSGI workers,
`asgi_app` for -k asgi (test_balance.py counts connections per worker)."""

import os


def app(environ, start_response):
    pid = b"%d" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(pid)))])
    return [pid]


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    pid = b"%d" % os.getpid()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", b"%d" % len(pid))]})
    await send({"type": "http.response.body", "body": pid})
