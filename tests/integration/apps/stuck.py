"""Requests that outlive request_timeout (tests/integration/test_request_timeout.py).

/sleep?s=N     time.sleep(N), then 200 "slept"
/spin?s=N      a pure-Python loop for N seconds (no blocking call)
/swallow?s=N   time.sleep(N), but a TimeoutError is caught and the sleep
               goes on: the request keeps its thread for the whole N seconds
/              200 "ok" at once (the worker's other requests)
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
