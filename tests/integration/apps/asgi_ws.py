"""WebSocket ASGI app for tests/integration/test_asgi_websocket.py (no
framework). By path:

/echo        accepts (the subprotocol "chat" when offered, and an x-app
             header), echoes text and bytes; the text "close:CODE:REASON"
             makes it close with that code; "scope" answers the scope as
             JSON; "size" answers the size of the next message. Its
             disconnect is logged as "disconnect CODE REASON".
/deny        refuses with its own HTTP response (denial-response extension)
/reject      websocket.close before accepting (403)
/badsub      accepts with a subprotocol the client did not offer (500)
/raise       raises before accepting (500)
/raise-after accepts, then raises at the first message (close 1011)
/return      accepts, then returns at the first message (close 1000)
/gated       accepts, then does not receive until GET /release (HTTP) is
             made; then counts what came: "count N bytes M" after "end"
HTTP /release opens the gate; any other HTTP path answers 200 "http".
"""
import asyncio
import json
import sys

from asgi_basic import _jsonable

_gate = None


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def gate():
    global _gate
    if _gate is None:
        _gate = asyncio.Event()
    return _gate


async def http(scope, receive, send):
    if scope["path"] == "/release":
        gate().set()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"4")]})
    await send({"type": "http.response.body", "body": b"http"})


async def echo(scope, receive, send):
    sub = "chat" if "chat" in scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": sub,
                "headers": [(b"x-app", b"yes")]})
    want_size = False
    while True:
        m = await receive()
        if m["type"] == "websocket.disconnect":
            log("disconnect", m["code"], m.get("reason", ""))
            return
        text, data = m.get("text"), m.get("bytes")
        if want_size:
            want_size = False
            n = len(text.encode()) if text is not None else len(data)
            await send({"type": "websocket.send", "text": "size %d" % n})
        elif text == "scope":
            s = {k: v for k, v in scope.items() if k != "state"}
            await send({"type": "websocket.send", "text": json.dumps(_jsonable(s))})
        elif text == "size":
            want_size = True
        elif text is not None and text.startswith("close:"):
            _, code, reason = text.split(":", 2)
            await send({"type": "websocket.close", "code": int(code), "reason": reason})
        elif text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": data})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return  # no lifespan support
    if scope["type"] == "http":
        return await http(scope, receive, send)
    assert scope["type"] == "websocket"
    m = await receive()
    assert m["type"] == "websocket.connect", m
    path = scope["path"]
    if path == "/echo":
        return await echo(scope, receive, send)
    if path == "/deny":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"x-denied", b"1")]})
        await send({"type": "websocket.http.response.body", "body": b"go ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"away"})
        return
    if path == "/reject":
        await send({"type": "websocket.close"})
        return
    if path == "/badsub":
        await send({"type": "websocket.accept", "subprotocol": "never-offered"})
        return
    if path == "/raise":
        raise ValueError("boom before accept")
    await send({"type": "websocket.accept"})
    if path == "/raise-after":
        await receive()
        raise ValueError("boom after accept")
    if path == "/return":
        await receive()
        return
    if path == "/gated":
        await gate().wait()
        count = size = 0
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                return
            if m.get("text") == "end":
                break
            count += 1
            size += len(m.get("bytes") or b"")
        await send({"type": "websocket.send", "text": "count %d bytes %d" % (count, size)})
        await send({"type": "websocket.close"})
        return
