"""A WSGI app for Gunicorn's pywsgi gevent workers
(tests/integration/test_gevent_websocket.py).

/ws           a WebSocket echo over gevent-websocket's wsgi.websocket
              (only the GeventWebSocketWorker puts it there): each message
              comes back prefixed with "echo:"
/info         JSON: SERVER_SOFTWARE, wsgi.multithread, whether
              wsgi.websocket, gunicorn.sock and RAW_URI are in the environ
/sleep?S      gevent.sleep(S), then "slept"
/slow?S       writes SLOW-START to wsgi.errors, then as /sleep
/echo         the request body
/compat       JSON: what cgunicorn's gunicorn.workers.ggevent compatibility
              module (served where no real Gunicorn is installed) gives,
              loaded from its file
anything else "hello"
"""
import json

import gevent


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/ws":
        ws = environ.get("wsgi.websocket")
        if ws is None:
            start_response("400 Bad Request", [("Content-Length", "12")])
            return [b"no websocket"]
        while True:
            message = ws.receive()
            if message is None:
                break
            ws.send("echo:" + (message if isinstance(message, str) else message.decode()))
        return []
    if path == "/info":
        body = json.dumps({
            "server_software": environ["SERVER_SOFTWARE"],
            "multithread": environ["wsgi.multithread"],
            "websocket": "wsgi.websocket" in environ,
            "has_sock": "gunicorn.sock" in environ,
            "raw_uri": environ.get("RAW_URI"),
        }).encode()
    elif path in ("/sleep", "/slow"):
        if path == "/slow":
            environ["wsgi.errors"].write("SLOW-START\n")
        gevent.sleep(float(environ["QUERY_STRING"] or "1"))
        body = b"slept"
    elif path == "/compat":
        body = json.dumps(_compat()).encode()
    elif path == "/echo":
        body = environ["wsgi.input"].read()
    else:
        body = b"hello"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _compat():
    import importlib.util
    import os

    import cgunicorn
    from cgunicorn.workers import ggevent

    where = os.path.join(os.path.dirname(cgunicorn.__file__), "_compat", "gunicorn", "workers",
                         "ggevent.py")
    spec = importlib.util.spec_from_file_location("compat_ggevent", where)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {name: getattr(mod, name) is getattr(ggevent, name)
            for name in ("GeventWorker", "GeventPyWSGIWorker", "PyWSGIHandler", "PyWSGIServer",
                         "GeventResponse")}
