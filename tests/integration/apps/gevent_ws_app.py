"""A WSGI app for Gunicorn's pywsgi gevent workers
(tests/integration/test_gevent_websocket.py).

/ws           a WebSocket echo over gevent-websocket's wsgi.websocket
              (only the GeventWebSocketWorker puts it there): each message
              comes back prefixed with "echo:"
/info         JSON: SERVER_SOFTWARE, wsgi.multithread, whether
              wsgi.websocket, gunicorn.sock and RAW_URI are in the environ
/sleep?S      gevent.sleep(S), then "slept"
/echo         the request body
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
    elif path == "/sleep":
        gevent.sleep(float(environ["QUERY_STRING"] or "1"))
        body = b"slept"
    elif path == "/echo":
        body = environ["wsgi.input"].read()
    else:
        body = b"hello"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
