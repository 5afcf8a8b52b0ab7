"""Apps that do what real apps sometimes do and servers must survive: a
file_wrapper without Content-Length or without start_response, closing
gunicorn.socket, promising more body than they give, hanging in a syscall,
ignoring what the client sends."""

import os
import socket
import tempfile
import threading
import time

CONTENT = bytes((i * 7 + 3) % 251 for i in range(50000))
MARK_DIR = os.environ.get("ODD_MARK_DIR", tempfile.gettempdir())


def _file():
    f = tempfile.TemporaryFile()
    f.write(CONTENT)
    f.seek(0)
    return f


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/":
        body = b"pid %d" % os.getpid()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/fw_nolen":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](_file(), 8192)
    if path == "/fw_empty":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](tempfile.TemporaryFile(), 8192)
    if path == "/fw_nostart":
        return environ["wsgi.file_wrapper"](_file(), 8192)
    if path == "/sockclose":
        environ["gunicorn.socket"].close()
        start_response("200 OK", [("Content-Length", "6")])
        return [b"closed"]
    if path == "/sockdetach":
        os.close(environ["gunicorn.socket"].detach())
        start_response("200 OK", [("Content-Length", "8")])
        return [b"detached"]
    if path == "/latin1_header":
        start_response("200 OK", [("Content-Length", "0"), ("X-Name", "caf\u00e9")])
        return [b""]
    if path == "/short":
        start_response("200 OK", [("Content-Length", "10")])
        return [b"12345"]
    if path == "/big":
        mb = int(environ.get("QUERY_STRING") or "8")
        start_response("200 OK", [("Content-Length", str(mb << 20))])
        block = b"x" * 65536
        return (block for _ in range(mb << 4))
    if path == "/upload":
        data = environ["wsgi.input"].read()
        body = b"%d" % len(data)
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/readhuge":
        data = environ["wsgi.input"].read(1 << 40)
        body = b"%d" % len(data)
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/hang_recv":
        a, b = socket.socketpair()
        a.recv(1)  # never comes: only a signal gets the app out
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]
    if path == "/spin":
        # a pure-Python busy loop; leaves a mark when SystemExit reaches it
        mark = os.path.join(MARK_DIR, "spin-%d" % os.getpid())
        with open(mark + ".started", "w"):
            pass
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                pass
        except SystemExit:
            with open(mark + ".exit", "w"):
                pass
            raise
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]
    if path == "/late_input":
        return _late_input(environ, start_response)
    if path == "/late_result":
        for t, done, result in APP_THREADS:
            done.wait(10)
        body = ",".join(r.get("r", "?") for _, _, r in APP_THREADS).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/header":
        # one response header, name and value from the query (percent-decoded
        # as latin-1); what start_response raised is the body.
        from urllib.parse import parse_qsl
        q = dict(parse_qsl(environ["QUERY_STRING"], encoding="latin-1"))
        try:
            start_response("200 OK", [(q["n"], q["v"]), ("Content-Length", "0")])
        except (TypeError, ValueError) as e:
            body = ("%s: %s" % (type(e).__name__, e)).encode("utf-8", "backslashreplace")
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [body]
        return [b""]
    if path == "/status":
        # the status the query names, percent-decoded (as latin-1); "int"
        # passes a non-str. What start_response raised is the body.
        from urllib.parse import unquote
        want = unquote(environ["QUERY_STRING"], encoding="latin-1")
        try:
            start_response(200 if want == "int" else want, [("Content-Length", "0")])
        except (TypeError, ValueError) as e:
            body = ("%s: %s" % (type(e).__name__, e)).encode("utf-8", "backslashreplace")
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [body]
        return [b""]
    start_response("404 Not Found", [("Content-Length", "0")])
    return [b""]


APP_THREADS = []


def _late_input(environ, start_response):
    """A thread of the app's own reads wsgi.input after the response."""
    inp = environ["wsgi.input"]
    result = {}
    done = threading.Event()

    def later():
        time.sleep(0.2)
        try:
            inp.read(10)
            result["r"] = "read"
        except Exception as e:  # noqa: BLE001 - reported to the test
            result["r"] = type(e).__name__
        done.set()
    t = threading.Thread(target=later)
    t.start()
    start_response("200 OK", [("Content-Length", "2")])
    yield b"ok"
    APP_THREADS.append((t, done, result))
