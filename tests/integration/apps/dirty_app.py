"""Dirty apps from Gunicorn's dirty arbiter docs and examples, and WSGI /
ASGI callers, for test_dirty.py. Only the import line differs from
Gunicorn's (cgunicorn.dirty; Debian's older Gunicorn is first on this machine's path)."""
import json
import os
import time
from urllib.parse import unquote

from cgunicorn.dirty import DirtyApp, get_dirty_client, get_dirty_client_async, stash
from cgunicorn.dirty.errors import DirtyError


class CounterApp(DirtyApp):
    """State kept across calls (Gunicorn's examples' counter)."""

    def init(self):
        self.count = 0

    def incr(self, by=1):
        self.count += by
        return {"count": self.count, "pid": os.getpid()}

    def echo(self, data):
        return data

    def noop(self):
        return None

    def boom(self):
        raise ValueError("boom from the dirty app")

    def crash(self):
        os._exit(1)

    def sleep(self, seconds):
        time.sleep(seconds)
        return "slept"

    def tokens(self, n):
        for i in range(n):
            yield "tok%d" % i

    async def atokens(self, n):
        for i in range(n):
            yield "atok%d" % i

    def close(self):
        pass


class HeavyApp(DirtyApp):
    """Loaded on two workers only (dirty_apps "dirty_app:HeavyApp:2")."""

    def pid(self):
        return os.getpid()


class LimitedByAttr(DirtyApp):
    workers = 1

    def pid(self):
        return os.getpid()


class PairByAttr(DirtyApp):
    workers = 2

    def pid(self):
        return os.getpid()


class StashApp(DirtyApp):
    """Gunicorn's stash example: tables shared by every worker."""
    stashes = ["sessions", "counters"]

    def init(self):
        if not stash.exists("counters", "requests"):
            stash.put("counters", "requests", 0)

    def login(self, user_id, data):
        stash.put("sessions", "user:%s" % user_id, {"data": data, "pid": os.getpid()})
        return os.getpid()

    def session(self, user_id):
        return stash.get("sessions", "user:%s" % user_id)

    def tables(self):
        return sorted(stash.tables())

    def env(self, name):
        return os.environ.get(name)

    def hold(self, seconds):
        # a call in progress, which the caller can see start in the stash
        stash.put("state", "holding", os.getpid())
        time.sleep(seconds)
        return "held"

    def view(self, table):
        t = stash.table(table)
        return {"len": len(t), "keys": sorted(t), "items": sorted(t.items())}


def _stash_op(op, args):
    # the HTTP worker's side of the same tables
    if op == "table_set":
        table, key, value = args
        stash.table(table)[key] = value
        return None
    if op == "table_get":
        table, key = args
        try:
            return stash.table(table)[key]
        except KeyError:
            return "KeyError"
    if op == "info":
        try:
            return stash.info(*args)
        except stash.StashTableNotFoundError as e:
            return "StashTableNotFoundError: %s" % e.table_name
    return getattr(stash, op)(*args)


def _call(path, action, args):
    if path == "env":
        return {"ok": os.environ.get(action)}
    if path == "stash":
        return {"ok": _stash_op(action, args)}
    client = get_dirty_client()
    try:
        if action.startswith("stream:"):
            return {"ok": list(client.stream(path, action[7:], *args))}
        return {"ok": client.execute(path, action, *args)}
    except DirtyError as e:
        return {"error": type(e).__name__, "message": e.message}


def app(environ, start_response):
    # /<module:Class>/<action>?json-args
    _, path, action = environ["PATH_INFO"].split("/", 2)
    qs = environ.get("QUERY_STRING", "")
    args = json.loads(unquote(qs)) if qs else []
    body = json.dumps(_call(path, action, args)).encode()
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
    _, path, action = scope["path"].split("/", 2)
    qs = scope["query_string"].decode()
    args = json.loads(unquote(qs)) if qs else []
    client = await get_dirty_client_async()
    try:
        if action.startswith("stream:"):
            out = {"ok": [c async for c in client.stream_async(path, action[7:], *args)]}
        else:
            out = {"ok": await client.execute_async(path, action, *args)}
    except DirtyError as e:
        out = {"error": type(e).__name__, "message": e.message}
    body = json.dumps(out).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
