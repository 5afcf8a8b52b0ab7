"""Hand-written ASGI 3 apps for tests/integration/test_asgi.py (no framework).

app      /scope      the scope as JSON (bytes as latin-1 text)
         /scope-mutate  changes its scope (headers, method, path...), answers
         /echo       the request body, read message by message; the sizes of
                     the messages in x-chunks
         /stream     ?n=N chunks of ?size=S bytes, more_body=True each
         /length     a Content-Length response in two messages
         /raise      raises before the response starts
         /raise-late raises after the response started
         /nostart    returns without a response
         /state      the lifespan state and a per-request counter
         /slow       waits ?s= seconds (an in-flight request for TERM)
         /disconnect answers, then waits for http.disconnect and logs it
         /listen     reads the body, logs, waits in receive() (no response
                     yet), logs what came and answers with it
         /big        ?size= bytes in 64 KiB messages (back-pressure)
         /head       a body on HEAD (must be dropped)
lifespan: sets state["started"]; raises at startup when CG_ASGI_FAIL is
"raise", sends startup.failed when it is "fail".
"""
import asyncio
import json
import os
import sys

STARTUP = os.environ.get("CG_ASGI_FAIL", "")


async def _lifespan(scope, receive, send):
    while True:
        m = await receive()
        if m["type"] == "lifespan.startup":
            if STARTUP == "raise":
                raise RuntimeError("startup exploded")
            if STARTUP == "fail":
                await send({"type": "lifespan.startup.failed", "message": "no database"})
                return
            scope["state"]["started"] = True
            scope["state"]["pid"] = os.getpid()
            await send({"type": "lifespan.startup.complete"})
        elif m["type"] == "lifespan.shutdown":
            print("lifespan shutdown ran", file=sys.stderr, flush=True)
            await send({"type": "lifespan.shutdown.complete"})
            return


def _q(scope):
    out = {}
    for part in scope["query_string"].decode().split("&"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


async def _respond(send, status, body, headers=()):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")] + list(headers)})
    await send({"type": "http.response.body", "body": body})


def _jsonable(v):
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await _lifespan(scope, receive, send)
    assert scope["type"] == "http"
    path = scope["path"]
    q = _q(scope)
    if path == "/scope":
        s = {k: v for k, v in scope.items() if k != "state"}
        s["state_keys"] = sorted(scope.get("state", {}))
        return await _respond(send, 200, json.dumps(_jsonable(s)).encode(),
                              [(b"x-tuple-client", str(type(scope["client"]).__name__).encode())])
    if path == "/scope-mutate":
        # what an app does to its scope stays in its own request
        scope["headers"].append((b"x-added", b"1"))
        scope["headers"][0] = (b"x-replaced", b"1")
        scope["method"] = "PUT"
        scope["query_string"] = b"changed"
        scope["path"] = "/elsewhere"
        scope["extra"] = True
        return await _respond(send, 200, b"mutated")
    if path == "/echo":
        body, sizes = b"", []
        while True:
            m = await receive()
            assert m["type"] == "http.request", m
            body += m["body"]
            sizes.append(len(m["body"]))
            if not m["more_body"]:
                break
        return await _respond(send, 200, body, [(b"x-chunks", str(len(sizes)).encode())])
    if path == "/stream":
        n, size = int(q.get("n", "3")), int(q.get("size", "5"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(n):
            await send({"type": "http.response.body", "body": bytes([97 + i % 26]) * size,
                        "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/length":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"01234", "more_body": True})
        await send({"type": "http.response.body", "body": b"56789"})
        return
    if path == "/raise":
        raise ValueError("boom before start")
    if path == "/raise-late":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("boom after start")
    if path == "/nostart":
        return
    if path == "/state":
        st = scope["state"]
        st["mine"] = st.get("mine", 0) + 1  # a per-request copy: always 1
        return await _respond(send, 200, json.dumps(
            {"started": st.get("started"), "mine": st["mine"], "pid": st.get("pid")}).encode())
    if path == "/slow":
        await asyncio.sleep(float(q.get("s", "1")))
        return await _respond(send, 200, b"slow done")
    if path == "/disconnect":
        await _respond(send, 200, b"bye")
        m = await receive()
        print("after response: %s" % m["type"], file=sys.stderr, flush=True)
        return
    if path == "/listen":
        n = 0
        while True:
            m = await receive()
            assert m["type"] == "http.request", m
            n += len(m["body"])
            if not m["more_body"]:
                break
        print("listen: %d body bytes, waiting" % n, file=sys.stderr, flush=True)
        m = await receive()
        print("listen: %s" % m["type"], file=sys.stderr, flush=True)
        return await _respond(send, 200, ("heard %s after %d bytes" % (m["type"], n)).encode())
    if path == "/big":
        size = int(q.get("size", str(8 << 20)))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(size).encode())]})
        piece = b"x" * 65536  # send() waits while the transport is paused
        for _ in range(size // len(piece)):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"x" * (size % len(piece))})
        print("big sent", file=sys.stderr, flush=True)
        return
    if path == "/hints":
        await send({"type": "http.response.informational", "status": 103,
                    "headers": [(b"link", b"</style.css>; rel=preload; as=style")]})
        return await _respond(send, 200, b"with early hints")
    if path == "/late-hints":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.informational", "status": 103, "headers": []})
        return
    if path == "/head":
        return await _respond(send, 200, b"no body on HEAD")
    return await _respond(send, 404, b"not found: " + path.encode("utf-8", "replace"))
