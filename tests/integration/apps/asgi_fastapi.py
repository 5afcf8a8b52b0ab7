"""A FastAPI app for the ASGI worker's framework tests: a route with a
dependency, a background task, a StreamingResponse, a file upload, the
lifespan's state, a FastAPI WebSocket route (/ws/{room}) and a Starlette
WebSocketEndpoint (/starlette-ws)."""
import asyncio
import contextlib
import os
import sys

from fastapi import (BackgroundTasks, Depends, FastAPI, File, Header, Request, UploadFile,
                     WebSocket, WebSocketDisconnect)
from fastapi.responses import StreamingResponse
from starlette.endpoints import WebSocketEndpoint


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"db": "connected", "pid": os.getpid()}
    print("fastapi lifespan shutdown", file=sys.stderr, flush=True)


app = FastAPI(lifespan=lifespan)


def token(x_token: str = Header("anonymous")):
    return x_token.upper()


@app.get("/items/{item_id}")
async def item(item_id: int, request: Request, who: str = Depends(token)):
    return {"item_id": item_id, "who": who, "db": request.state.db,
            "loop": type(asyncio.get_running_loop()).__module__}


def note(text):
    print("background task: %s" % text, file=sys.stderr, flush=True)


@app.post("/notify")
async def notify(text: str, tasks: BackgroundTasks):
    tasks.add_task(note, text)
    return {"queued": text}


@app.get("/stream")
async def stream(n: int = 3):
    async def gen():
        for i in range(n):
            yield b"part-%d\n" % i
            await asyncio.sleep(0)
    return StreamingResponse(gen(), media_type="text/plain")


@app.post("/upload")
async def upload(file: UploadFile = File(...)):
    data = await file.read()
    return {"name": file.filename, "size": len(data), "head": data[:8].decode("latin-1")}


@app.websocket("/ws/{room}")
async def ws_room(websocket: WebSocket, room: str, who: str = Depends(token)):
    await websocket.accept(subprotocol="chat" if "chat" in websocket.scope["subprotocols"] else None)
    try:
        while True:
            data = await websocket.receive_json()
            await websocket.send_json({"room": room, "who": who, "got": data,
                                       "db": websocket.state.db})
    except WebSocketDisconnect as e:
        print("fastapi ws disconnect %s" % e.code, file=sys.stderr, flush=True)


class Upper(WebSocketEndpoint):
    encoding = "text"

    async def on_receive(self, websocket, data):
        if data == "bye":
            await websocket.close(code=4000)
            return
        await websocket.send_text(data.upper())


app.add_websocket_route("/starlette-ws", Upper)
