"""A Flask-SocketIO chat (tests/integration/test_gevent_websocket.py), served
as Flask-SocketIO's documentation serves it with Gunicorn:
`-k geventwebsocket.gunicorn.workers.GeventWebSocketWorker -w 1` or
`-k gevent -w 1`, app = this module's Flask app.

Events: "join" {room, name} puts the client in room and tells the room
"joined"; "chat" {room, text} goes to everyone in room as "chat"
{name, text, pid}; GET / answers the async mode Flask-SocketIO picked.
"""
import os

from flask import Flask, request
from flask_socketio import SocketIO, emit, join_room

app = Flask(__name__)
socketio = SocketIO(app)
names = {}


@app.route("/")
def index():
    return "chat on %s" % socketio.async_mode


@socketio.on("join")
def on_join(data):
    names[request.sid] = data["name"]
    join_room(data["room"])
    emit("joined", {"name": data["name"]}, to=data["room"])


@socketio.on("chat")
def on_chat(data):
    emit("chat", {"name": names.get(request.sid, "?"), "text": data["text"], "pid": os.getpid()},
         to=data["room"])
