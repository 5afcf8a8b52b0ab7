"""App for test_http2.py: the request as the server presented it, bodies
of a given size, the request body streamed back, and early hints."""

import hashlib
import json
import tempfile


def _pattern(size):
    block = bytes(range(256)) * 64
    return (block * (size // len(block) + 1))[:size]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/big":
        size = int(environ.get("QUERY_STRING") or "0")
        data = _pattern(size)
        start_response("200 OK", [("Content-Length", str(size))])
        # in pieces, so that streams of one connection interleave
        return [data[i:i + 65536] for i in range(0, size, 65536)]
    if path == "/file":
        size = int(environ.get("QUERY_STRING") or "0")
        f = tempfile.TemporaryFile()
        f.write(_pattern(size))
        f.seek(0)
        start_response("200 OK", [("Content-Length", str(size))])
        return environ["wsgi.file_wrapper"](f, 65536)
    if path == "/echo":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        inp = environ["wsgi.input"]

        def gen():
            while True:
                chunk = inp.read(16384)
                if not chunk:
                    return
                yield chunk
        return gen()
    if path == "/trailers":
        send = environ.get("gunicorn.http2.send_trailers")
        if send is None:  # HTTP/1.1: no trailers offered
            start_response("200 OK", [("Content-Length", "5")])
            return [b"no h2"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        send([("X-Checksum", "abc123"), (b"grpc-status", b"0")])
        if environ.get("QUERY_STRING") == "file":
            f = tempfile.TemporaryFile()
            f.write(b"part1part2")
            f.seek(0)
            return environ["wsgi.file_wrapper"](f)
        return [b"part1", b"part2"] if environ.get("QUERY_STRING") != "empty" else []
    if path == "/hints":
        environ["wsgi.early_hints"]([("Link", "</style.css>; rel=preload")])
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    body = environ["wsgi.input"].read()
    out = {
        "protocol": environ["SERVER_PROTOCOL"],
        "http_version": environ.get("HTTP_VERSION"),
        "scheme": environ["wsgi.url_scheme"],
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "host": environ.get("HTTP_HOST"),
        "cookie": environ.get("HTTP_COOKIE"),
        "x_test": environ.get("HTTP_X_TEST"),
        "content_length": environ.get("CONTENT_LENGTH"),
        "socket": "gunicorn.socket" in environ,
        "body_len": len(body),
        "body_sha": hashlib.sha256(body).hexdigest(),
    }
    data = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data))), ("X-Served", "Yes")])
    return [data]
