"""Echo app: answers with a JSON description of the request as the server
presented it (method, raw URI, decoded path, headers as environ keys, body).

Reads wsgi.input to the end and lets any read error propagate, as a normal
application would, so body-framing errors surface the server's own way.
"""

import base64
import json
import os

KEYS = ("REQUEST_METHOD", "RAW_URI", "PATH_INFO", "QUERY_STRING", "SERVER_PROTOCOL",
        "SCRIPT_NAME", "SERVER_NAME", "SERVER_PORT", "REMOTE_ADDR", "REMOTE_PORT",
        "SERVER_SOFTWARE", "wsgi.url_scheme", "wsgi.multithread", "wsgi.multiprocess",
        "wsgi.run_once", "wsgi.input_terminated")


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    headers = {k: v for k, v in environ.items()
               if k.startswith("HTTP_") or k in ("CONTENT_TYPE", "CONTENT_LENGTH")}
    out = {k: environ.get(k) for k in KEYS}
    out.update({
        "pid": os.getpid(),
        "headers": headers,
        "body_b64": base64.b64encode(body).decode("ascii"),
        "has_remote_port": "REMOTE_PORT" in environ,
        "wsgi.version": list(environ.get("wsgi.version", ())),
        "has_file_wrapper": callable(environ.get("wsgi.file_wrapper")),
        "errors_writable": hasattr(environ.get("wsgi.errors"), "write"),
    })
    data = json.dumps(out).encode("ascii")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]


application = app
