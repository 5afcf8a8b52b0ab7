"""The fleet test's application (test_fleet.py): says which host served
the request (CG_FLEET_HOST, set per host namespace) and what the server made
of the client's address and scheme. ?sleep=S answers after S seconds: a
request still running when its worker is told to stop."""

import json
import os
import time
from urllib.parse import parse_qs

HOST = os.environ.get("CG_FLEET_HOST", "")


def app(environ, start_response):
    environ["wsgi.input"].read()
    sleep = parse_qs(environ.get("QUERY_STRING", "")).get("sleep")
    if sleep:
        time.sleep(float(sleep[0]))
    data = json.dumps({
        "host": HOST,
        "pid": os.getpid(),
        "remote_addr": environ.get("REMOTE_ADDR"),
        "scheme": environ.get("wsgi.url_scheme"),
        "xff": environ.get("HTTP_X_FORWARDED_FOR"),
    }).encode("ascii")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]
