"""A WSGI app for -k gevent (tests/integration/test_gevent.py). Imported
after gevent's monkey-patching, so `socket`, `time.sleep` and `requests`
cooperate with the hub.

/sleep?S      gevent.sleep(S), then "slept"
/fetch?URL    requests.get(URL): the body it got
/echo         the request body (read through wsgi.input, in pieces)
/stream?N     N chunks of "chunk-i\\n" with a gevent.sleep(0.05) between
/file?PATH    wsgi.file_wrapper over the file
/spin         a CPU loop that never yields (the hub is blocked)
/slow?S       logs SLOW-START, sleeps S, answers "slow done"
/info         JSON: pid, REMOTE_PORT, wsgi.multithread, socket's module
anything else "hello"
"""
import json
import os
import socket
import sys

import gevent
import requests


def _answer(start_response, body, ctype="text/plain"):
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    qs = environ.get("QUERY_STRING", "")
    if path == "/sleep":
        gevent.sleep(float(qs or 1))
        return _answer(start_response, b"slept")
    if path == "/fetch":
        return _answer(start_response, requests.get(qs, timeout=30).content)
    if path == "/echo":
        inp = environ["wsgi.input"]
        parts = []
        while True:
            piece = inp.read(65536)
            if not piece:
                break
            parts.append(piece)
        return _answer(start_response, b"".join(parts))
    if path == "/stream":
        def gen():
            for i in range(int(qs or 3)):
                yield b"chunk-%d\n" % i
                gevent.sleep(0.05)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/file":
        f = open(qs, "rb")
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(os.fstat(f.fileno()).st_size))])
        return environ["wsgi.file_wrapper"](f, 65536)
    if path == "/spin":
        while True:
            pass
    if path == "/slow":
        print("SLOW-START", file=sys.stderr, flush=True)
        gevent.sleep(float(qs or 1))
        return _answer(start_response, b"slow done")
    if path == "/info":
        return _answer(start_response, json.dumps({
            "pid": os.getpid(),
            "remote_port": environ.get("REMOTE_PORT"),
            "multithread": environ["wsgi.multithread"],
            "socket_module": socket.socket.__module__,
        }).encode(), "application/json")
    return _answer(start_response, b"hello")
