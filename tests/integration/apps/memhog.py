"""An app whose memory grows on request (test_max_worker_memory.py)."""
import os
from urllib.parse import parse_qs

HELD = []


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/grow":
        mb = int(parse_qs(environ.get("QUERY_STRING", "")).get("mb", ["1"])[0])
        block = bytearray(mb << 20)
        for i in range(0, len(block), 4096):  # touch every page: resident
            block[i] = 1
        HELD.append(block)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
