"""App for test_tls.py: the request as the server presented it (scheme,
port, body), and large bodies through wsgi.file_wrapper."""

import hashlib
import json
import os
import tempfile


def _pattern(size):
    block = bytes(range(256)) * 64
    return (block * (size // len(block) + 1))[:size]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/file":
        size = int(environ.get("QUERY_STRING") or "0")
        f = tempfile.TemporaryFile()
        f.write(_pattern(size))
        f.seek(0)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))])
        return environ["wsgi.file_wrapper"](f, 65536)
    if path == "/digest":
        size = int(environ.get("QUERY_STRING") or "0")
        data = hashlib.sha256(_pattern(size)).hexdigest().encode()
        start_response("200 OK", [("Content-Length", str(len(data)))])
        return [data]
    body = environ["wsgi.input"].read()
    out = {
        "scheme": environ["wsgi.url_scheme"],
        "method": environ["REQUEST_METHOD"],
        "server_port": environ["SERVER_PORT"],
        "remote_port": environ.get("REMOTE_PORT"),
        "body_len": len(body),
        "body_sha": hashlib.sha256(body).hexdigest(),
        "pid": os.getpid(),
    }
    data = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]
