"""App for test_tls_context.py: what gunicorn.socket says about the TLS
session (the client's certificate as ssl.SSLSocket.getpeercert() gives
it), and a request that waits for the test before it answers."""

import hashlib
import json
import os
import time


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/wait":
        # answer once the test created the file named by the query
        flag = environ["QUERY_STRING"]
        open(flag + ".started", "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(flag) and time.monotonic() < deadline:
            time.sleep(0.02)
    sock = environ["gunicorn.socket"]
    der = sock.getpeercert(binary_form=True)
    out = {
        "pid": os.getpid(),
        "peercert": sock.getpeercert(),
        "der_sha": hashlib.sha256(der).hexdigest() if der is not None else None,
        "cipher": sock.cipher(),
        "version": sock.version(),
        "alpn": sock.selected_alpn_protocol(),
        "scheme": environ["wsgi.url_scheme"],
    }
    data = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]
