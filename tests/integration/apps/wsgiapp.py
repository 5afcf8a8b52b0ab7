"""A routed WSGI app wrapped in wsgiref.validate, so any protocol slip by the
server (bad environ, bad input stream semantics, misuse of the iterable)
turns into an AssertionError -> 500."""

import hashlib
import os
import sys
import tempfile
import time
from urllib.parse import parse_qs
from wsgiref.validate import validator

BLOCK = 64 * 1024


def _qs(environ, name, default):
    return parse_qs(environ.get("QUERY_STRING", "")).get(name, [default])[0]


def _text(start_response, text, status="200 OK", extra=()):
    data = text.encode("utf-8")
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(data)))] + list(extra))
    return [data]


def _read_pieces(environ):
    """Read the body in odd-sized pieces and with readline, as frameworks do."""
    inp = environ["wsgi.input"]
    h = hashlib.sha256()
    total = 0
    first = inp.readline(100)
    h.update(first)
    total += len(first)
    while True:
        piece = inp.read(777)
        if not piece:
            break
        h.update(piece)
        total += len(piece)
    return total, h.hexdigest()


def _stream(mb):
    block = bytes(range(256)) * (BLOCK // 256)
    for _ in range(mb * 1024 * 1024 // BLOCK):
        yield block


def _file_content(size):
    return bytes((i * 7 + 3) % 251 for i in range(size))


def raw_app(environ, start_response):
    path = environ["PATH_INFO"]
    method = environ["REQUEST_METHOD"]

    if path == "/":
        return _text(start_response, "hello from %s" % method)

    if path == "/pid":
        return _text(start_response, str(os.getpid()))

    if path == "/upload":
        total, digest = _read_pieces(environ)
        return _text(start_response, "%d %s" % (total, digest))

    if path == "/stream":
        mb = int(_qs(environ, "mb", "1"))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _stream(mb)

    if path == "/file":
        size = int(_qs(environ, "size", "100000"))
        f = tempfile.TemporaryFile()
        f.write(_file_content(size))
        f.seek(0)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))])
        return environ["wsgi.file_wrapper"](f, 8192)

    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"by write()")
        return [b" and returned"]

    if path == "/exc_info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("changed my mind")
        except ValueError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")],
                           sys.exc_info())
        return [b"recovered via exc_info"]

    if path == "/error":
        raise RuntimeError("boom from the test app")

    if path == "/sleep":
        t = float(_qs(environ, "t", "1"))
        time.sleep(t)
        return _text(start_response, "slept %s" % t)

    return _text(start_response, "not found: %s" % path, status="404 Not Found")


app = validator(raw_app)
application = app
