"""ASGI echo app for the conformance corpus under -k asgi: the request as
the scope presents it, and the body read message by message."""
import base64
import json
import os


async def app(scope, receive, send):
    if scope["type"] != "http":
        return  # no lifespan support: asgi_lifespan auto serves without it
    body = b""
    while True:
        m = await receive()
        if m["type"] == "http.disconnect":
            return
        body += m["body"]
        if not m["more_body"]:
            break
    out = {
        "pid": os.getpid(),
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "http_version": scope["http_version"],
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
        "body_b64": base64.b64encode(body).decode("ascii"),
    }
    data = json.dumps(out).encode("ascii")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
