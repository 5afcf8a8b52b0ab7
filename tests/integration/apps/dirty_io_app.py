"""Large values through the dirty IPC, for test_dirty_io.py: a dirty app
that describes and echoes what it gets, and WSGI / ASGI callers that
build the values themselves (a query string cannot carry 10 MB) and
answer with descriptions the test compares."""
import hashlib
import json
import os
import threading
import time
from urllib.parse import unquote

from cgunicorn.dirty import DirtyApp, get_dirty_client, get_dirty_client_async
from cgunicorn.dirty.errors import DirtyError

APP = "dirty_io_app:IOApp"


def blob(mb, seed=0):
    """mb MiB of bytes whose content depends on seed."""
    n = int(mb * (1 << 20))
    s = seed % 256
    unit = bytes(range(s, 256)) + bytes(range(s))
    return unit * (n // 256) + unit[:n % 256]


def describe(v, received=False, seen=None):
    """A JSON picture of v: each buffer's type, length and digest, each
    container's type, a container met again as ["ref", n]. received: a
    memoryview as the other side gets it (bytes when read-only, else
    bytearray)."""
    seen = {} if seen is None else seen
    t = type(v)
    if t is memoryview:
        data = v.tobytes()
        name = ("bytes" if v.readonly else "bytearray") if received else "memoryview"
        return [name, len(data), hashlib.sha256(data).hexdigest()[:16]]
    if t in (bytes, bytearray):
        return [t.__name__, len(v), hashlib.sha256(v).hexdigest()[:16]]
    if t in (list, tuple, dict):
        if id(v) in seen:
            return ["ref", seen[id(v)]]
        seen[id(v)] = len(seen)
        if t is dict:
            return ["dict", {k: describe(x, received, seen) for k, x in v.items()}]
        return [t.__name__, [describe(x, received, seen) for x in v]]
    return [t.__name__, repr(v)]


def _nested():
    shared = [blob(1, 5)]
    return {"a": [blob(2, 6), {"b": (bytearray(blob(1, 7)), 1, "s")}],
            "s1": shared, "s2": shared, "small": b"tiny", "n": None}


def _cycle():
    lst = [blob(1, 8)]
    lst.append(lst)
    return lst


CASES = {
    "bytes": lambda: blob(10, 0),
    "bytearray": lambda: bytearray(blob(10, 1)),
    "memoryview": lambda: memoryview(blob(3, 2)),
    "memoryview_rw": lambda: memoryview(bytearray(blob(3, 3))),
    "memoryview_strided": lambda: memoryview(blob(4, 4))[::2],
    "nested": _nested,
    "cycle": _cycle,
    # more buffers than a frame carries out-of-band (1024): the rest in the pickle
    "many": lambda: [blob(0.02, i) for i in range(1100)],
    "small": lambda: [b"x" * 100, bytearray(b"y" * 10), (1, 2.5, "z")],
}


def _chunks(n, mb):
    """What IOApp.chunks yields: large chunks with small ones between."""
    for i in range(n):
        yield blob(mb, i)
        yield "small %d" % i
        yield bytearray(blob(mb / 2, i + 100))


class IOApp(DirtyApp):
    def describe(self, value):
        return describe(value)

    def describe_kw(self, **kwargs):
        return describe(kwargs)

    def echo(self, value):
        return value

    def size(self, value):
        return len(value)

    def chunks(self, n, mb):
        yield from _chunks(n, mb)

    def bad_stream(self):
        yield blob(2, 11)
        yield threading.Lock()  # cannot be pickled: the stream ends with an error

    def unpicklable(self):
        return threading.Lock()

    def slow_blob(self, mb, delay):
        time.sleep(delay)
        return blob(mb, 12)


    def pid(self):
        return os.getpid()


def _error(e):
    return {"error": type(e).__name__, "message": e.message}


def _case(client, name):
    if name == "kwargs":
        kw = {"data": blob(2, 9), "other": [bytearray(blob(1, 10))]}
        return {"seen": client.execute(APP, "describe_kw", **kw),
                "expected": describe(kw, received=True)}
    if name == "unpicklable_arg":
        try:
            client.execute(APP, "echo", threading.Lock())
        except DirtyError as e:
            return _error(e)
        return {"error": None}
    value = CASES[name]()
    return {"seen": client.execute(APP, "describe", value),
            "back": describe(client.execute(APP, "echo", value)),
            "expected": describe(value, received=True)}


def _stream(client, n, mb):
    got = []
    try:
        for chunk in client.stream(APP, "chunks", n, mb):
            got.append(describe(chunk))
    except DirtyError as e:
        return dict(_error(e), got=got)
    return {"got": got, "expected": [describe(c) for c in _chunks(n, mb)]}


def _call(client, action, args):
    got = []
    try:
        if action == "bad_stream":
            for chunk in client.stream(APP, action, *args):
                got.append(describe(chunk))
            return {"got": got}
        result = client.execute(APP, action, *args)
        if isinstance(result, (bytes, bytearray)):
            return {"ok": describe(result)}
        return {"ok": result}
    except DirtyError as e:
        return dict(_error(e), got=got)


def _route(path, qs):
    # /case/<name>, /stream/<n>/<mb>, /call/<action>?json-args, /bigarg/<mb>
    parts = path.strip("/").split("/")
    args = json.loads(unquote(qs)) if qs else []
    return parts, args


def app(environ, start_response):
    parts, args = _route(environ["PATH_INFO"], environ.get("QUERY_STRING", ""))
    client = get_dirty_client()
    if parts[0] == "case":
        out = _case(client, parts[1])
    elif parts[0] == "stream":
        out = _stream(client, int(parts[1]), float(parts[2]))
    elif parts[0] == "bigarg":
        out = _call(client, "size", [blob(float(parts[1]), 13)])
    else:
        out = _call(client, parts[1], args)
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    parts, args = _route(scope["path"], scope["query_string"].decode())
    client = await get_dirty_client_async()
    try:
        if parts[0] == "case":
            value = CASES[parts[1]]()
            out = {"seen": await client.execute_async(APP, "describe", value),
                   "back": describe(await client.execute_async(APP, "echo", value)),
                   "expected": describe(value, received=True)}
        elif parts[0] == "stream":
            n, mb = int(parts[1]), float(parts[2])
            out = {"got": [describe(c) async for c in client.stream_async(APP, "chunks", n, mb)],
                   "expected": [describe(c) for c in _chunks(n, mb)]}
        else:
            out = {"ok": await client.execute_async(APP, parts[1], *args)}
    except DirtyError as e:
        out = _error(e)
    body = json.dumps(out).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
