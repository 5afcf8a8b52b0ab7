"""App for the gthread worker tests: which thread and process served, the
request body read in fixed pieces, a slow handler."""

import hashlib
import os
import sys
import threading
import time
from urllib.parse import parse_qs


def _qs(environ, name, default):
    return parse_qs(environ.get("QUERY_STRING", "")).get(name, [default])[0]


# gunicorn.socket objects an app kept past their request (/sock?keep=1)
_kept = []


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path.endswith("/environ"):
        import json
        if _qs(environ, "keep", "0") == "1":
            _kept.append((environ["wsgi.input"], environ["wsgi.early_hints"]))
        kept_same = bool(_kept) and isinstance(_kept[-1], tuple) and (
            _kept[-1][0] is environ["wsgi.input"])
        body = json.dumps({k: environ.get(k) for k in (
            "wsgi.url_scheme", "SCRIPT_NAME", "PATH_INFO", "SERVER_NAME", "SERVER_PORT")}
            | {"body": environ["wsgi.input"].read().decode(), "kept_same": kept_same})
    elif path == "/sock":
        sock = environ["gunicorn.socket"]
        same = int(bool(_kept) and _kept[-1] is sock)
        if _qs(environ, "keep", "0") == "1":
            _kept.append(sock)
        body = "%d %d %d" % (same, sock.fileno(), sock.getpeername()[1])
    elif path == "/kept":
        body = " ".join(str(s.fileno()) for s in _kept if not isinstance(s, tuple))
    elif path == "/upload":
        # Read in 64 KiB pieces and report the largest piece the server gave.
        inp = environ["wsgi.input"]
        h = hashlib.sha256()
        total = pieces = largest = 0
        while True:
            b = inp.read(65536)
            if not b:
                break
            h.update(b)
            total += len(b)
            pieces += 1
            largest = max(largest, len(b))
        body = "%d %d %d %s" % (total, pieces, largest, h.hexdigest())
    elif path == "/sleep":
        if _qs(environ, "say", "0") == "1":
            # lets a test wait until the request is really running
            print("app: sleeping", file=sys.stderr, flush=True)
        time.sleep(float(_qs(environ, "t", "1")))
        body = "slept"
    elif path == "/hdrs":
        # the request's own headers, to tell one connection's from another's
        body = " ".join("%s=%s" % (k, environ[k]) for k in sorted(environ)
                        if k.startswith("HTTP_") and k != "HTTP_HOST")
    elif path == "/env":
        body = "%r %r %s %s" % (environ["wsgi.multithread"], environ["wsgi.multiprocess"],
                                os.getpid(), threading.get_ident())
    else:
        body = "%s %s" % (path, os.getpid())
    data = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
