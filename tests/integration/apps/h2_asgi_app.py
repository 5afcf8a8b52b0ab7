"""ASGI app for test_asgi_h2.py: the scope as the server presented it,
bodies of a given size, the request body streamed back, a slow stream,
an upload read slowly, early hints and trailers."""

import asyncio
import hashlib
import json


def _pattern(size):
    block = bytes(range(256)) * 64
    return (block * (size // len(block) + 1))[:size]


async def _body(receive):
    body = bytearray()
    while True:
        m = await receive()
        if m["type"] == "http.disconnect":
            return None
        body += m.get("body", b"")
        if not m.get("more_body"):
            return bytes(body)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif m["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    qs = scope["query_string"].decode()
    if path == "/big":
        size = int(qs or "0")
        data = _pattern(size)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(size).encode())]})
        # in pieces, so that streams of one connection interleave
        for i in range(0, size, 65536):
            await send({"type": "http.response.body", "body": data[i:i + 65536],
                        "more_body": i + 65536 < size})
        if size == 0:
            await send({"type": "http.response.body"})
        return
    if path == "/slow":
        await asyncio.sleep(float(qs or "3"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"slow"})
        return
    if path == "/echo":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        while True:
            m = await receive()
            if m["type"] == "http.disconnect":
                return
            if m.get("body"):
                await send({"type": "http.response.body", "body": m["body"], "more_body": True})
            if not m.get("more_body"):
                break
        await send({"type": "http.response.body"})
        return
    if path == "/lazy":
        # reads nothing until told: the client's window must stay shut
        await asyncio.sleep(float(qs or "2"))
    if path == "/hints":
        await send({"type": "http.response.informational", "status": 103,
                    "headers": [(b"link", b"</style.css>; rel=preload")]})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if path == "/trailers":
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"part1", "more_body": True})
        await send({"type": "http.response.body", "body": b"part2"})
        await send({"type": "http.response.trailers",
                    "headers": [(b"x-checksum", b"abc123"), (b"grpc-status", b"0")]})
        return
    if path == "/fail":
        raise RuntimeError("boom")
    body = await _body(receive)
    if body is None:
        return
    headers = {}
    for k, v in scope["headers"]:
        headers.setdefault(k.decode(), []).append(v.decode())
    out = {
        "type": scope["type"],
        "http_version": scope["http_version"],
        "scheme": scope["scheme"],
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode(),
        "query": qs,
        "headers": headers,
        "client": list(scope["client"]) if scope.get("client") else None,
        "extensions": sorted(scope.get("extensions") or {}),
        "body_len": len(body),
        "body_sha": hashlib.sha256(body).hexdigest(),
    }
    data = json.dumps(out).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()),
                            (b"x-served", b"Yes")]})
    await send({"type": "http.response.body", "body": data})
