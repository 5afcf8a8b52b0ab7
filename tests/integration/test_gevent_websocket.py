"""Gunicorn's pywsgi gevent workers (-k gevent_pywsgi, -k gevent_wsgi),
gevent-websocket's worker (geventwebsocket.gunicorn.workers.
GeventWebSocketWorker) and Flask-SocketIO served by it and by -k gevent.
The packages come from the test-site (tests/requirements.txt)."""

import asyncio
import json
import os
import sys
import threading
import time

import pytest

import cgtest
from cgtest import parse_response

PACKAGES = ("gevent", "greenlet", "zope.event", "zope.interface", "gevent-websocket",
            "Flask-SocketIO", "python-socketio", "python-engineio", "simple-websocket",
            "wsproto", "h11", "bidict", "websocket-client", "websockets")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = cgtest.pinned_site(tmp_path_factory.mktemp("gevent-ws-site"), *PACKAGES)
    if folder not in sys.path:  # the clients (websockets, socketio) run here
        sys.path.append(str(folder))
    return folder


# as in test_gevent.py: greenlet's stack copies under ASan
SANITIZED = "ASAN_OPTIONS" in os.environ
ENV = ({"ASAN_OPTIONS": os.environ["ASAN_OPTIONS"]
        + ":detect_stack_use_after_return=1:replace_intrin=0"} if SANITIZED else None)

WS_WORKER = "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"


def get(srv, path, body=b"", method=b"GET", timeout=10.0):
    req = (method + b" " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
           + (b"Content-Length: %d\r\n" % len(body) if body else b"") + b"\r\n" + body)
    return parse_response(srv.raw(req, timeout=timeout))


# A server is ready once its listener accepts and its workers logged their
# boot, which is before a worker imported the app: the first request waits
# for that import (Flask and Socket.IO on a loaded machine, under ASan)
FIRST = 90.0


@pytest.fixture(scope="module")
def ws_srv(cg_module, site):
    return cg_module("gevent_ws_app:app", args=["-k", WS_WORKER, "--pythonpath", site,
                                               "--access-logfile", "-"], env=ENV)


@pytest.mark.parametrize("name", ["gevent_pywsgi", "gevent_wsgi",
                                  "gunicorn.workers.ggevent.GeventPyWSGIWorker"])
def test_pywsgi_worker_serves(cg, site, name):
    srv = cg("gevent_ws_app:app", args=["-k", name, "--pythonpath", site], env=ENV)
    srv.wait_log(r"Using worker: %s" % name)
    status, _, body = get(srv, "/info?x=1", timeout=FIRST)
    assert status == "HTTP/1.1 200 OK"
    info = json.loads(body)
    # Gunicorn's pywsgi environ: its SERVER_SOFTWARE, gunicorn.sock, RAW_URI
    assert info["server_software"].startswith("gevent/")
    assert " gunicorn/" in info["server_software"]
    assert info["multithread"] is True
    assert info["has_sock"] is True
    assert info["raw_uri"] == "/info?x=1"
    # plain pywsgi puts no websocket in the environ
    assert info["websocket"] is False
    status, _, body = get(srv, "/echo", body=b"x" * 100000, method=b"POST")
    assert body == b"x" * 100000


@pytest.mark.timeout(120)
def test_pywsgi_concurrency_and_graceful_stop(cg, site):
    """200 sleepers at once on one worker; TERM waits for one in flight."""
    srv = cg("gevent_ws_app:app", args=["-k", "gevent_pywsgi", "--pythonpath", site,
                                       "--graceful-timeout", "30"], env=ENV)
    get(srv, "/", timeout=FIRST)

    async def one(path):
        r, w = await asyncio.open_connection("127.0.0.1", srv.port)
        w.write(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = await r.read()
        w.close()
        return data

    async def many():
        t0 = time.monotonic()
        res = await asyncio.gather(*(one(b"/sleep?1") for _ in range(200)))
        return time.monotonic() - t0, res

    took, res = asyncio.run(many())
    assert all(parse_response(d)[2] == b"slept" for d in res)
    assert took < 20, "200 concurrent 1 s sleeps took %.1fs" % took

    result = {}

    def slow():
        result["r"] = srv.raw(b"GET /slow?2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                              timeout=30)
    t = threading.Thread(target=slow)
    t.start()
    srv.wait_log(r"^SLOW-START$", timeout=30)  # in the app when TERM comes
    srv.stop()
    t.join(30)
    assert parse_response(result["r"])[2] == b"slept"


def test_websocket_echo(ws_srv):
    from websockets.sync.client import connect
    ws_srv.wait_log(r"cgunicorn runs %s with its own "
                    r"cgunicorn\.workers\.gwebsocket\.GeventWebSocketWorker worker" % WS_WORKER)
    with connect("ws://127.0.0.1:%d/ws" % ws_srv.port, open_timeout=FIRST) as ws:
        for text in ("hello", "x" * 70000, "é"):
            ws.send(text)
            assert ws.recv(timeout=10) == "echo:" + text
    status, _, body = get(ws_srv, "/info")
    assert json.loads(body)["websocket"] is False  # no Upgrade, no socket


def test_compat_module_gives_our_classes(ws_srv):
    """gunicorn.workers.ggevent where no Gunicorn is installed (this machine
    may have one, so the module is loaded from its file)."""
    status, _, body = get(ws_srv, "/compat")
    assert status == "HTTP/1.1 200 OK", body
    assert json.loads(body) == dict.fromkeys(["GeventWorker", "GeventPyWSGIWorker",
                                              "PyWSGIHandler", "PyWSGIServer",
                                              "GeventResponse"], True)


def test_websocket_many_clients_at_once(ws_srv):
    from websockets.asyncio.client import connect

    async def client(i):
        async with connect("ws://127.0.0.1:%d/ws" % ws_srv.port, open_timeout=20) as ws:
            for j in range(5):
                await ws.send("%d-%d" % (i, j))
                assert await asyncio.wait_for(ws.recv(), 20) == "echo:%d-%d" % (i, j)
        return i

    async def run():
        return await asyncio.gather(*(client(i) for i in range(50)))

    assert asyncio.run(run()) == list(range(50))


def test_access_log_through_gunicorns_handler(cg, site):
    srv = cg("gevent_ws_app:app", args=["-k", "gevent_pywsgi", "--pythonpath", site,
                                       "--access-logfile", "-",
                                       "--access-logformat", "ACCESS %(r)s %(s)s %(b)s"],
             env=ENV)
    get(srv, "/hello?q=1", timeout=FIRST)
    # %(b)s is pywsgi's response_length: head and body (5) bytes, as Gunicorn logs it
    srv.wait_log(r"ACCESS GET /hello\?q=1 HTTP/1\.1 200 (\d\d+)$", timeout=10,
                 source=srv.stdout)


def _chat(port, transport, n_messages=5):
    """Two python-socketio clients in one room over `transport`: each line
    one sends reaches both, in order."""
    import socketio

    got = {"alice": [], "bob": []}
    done = {name: threading.Event() for name in got}
    clients = {}
    for name in got:
        client = socketio.Client(reconnection=False)

        def on_chat(data, name=name):
            got[name].append((data["name"], data["text"]))
            if len(got[name]) == 2 * n_messages:
                done[name].set()
        client.on("chat", on_chat)
        client.connect("http://127.0.0.1:%d" % port, transports=[transport], wait_timeout=20)
        assert client.transport() == transport
        client.call("join", {"room": "lobby", "name": name}, timeout=20)
        clients[name] = client
    try:
        for i in range(n_messages):
            for name, client in clients.items():
                client.emit("chat", {"room": "lobby", "text": "%s says %d" % (name, i)})
        for name in got:
            assert done[name].wait(30), (name, got)
        for name in got:
            for who in got:
                mine = [text for sender, text in got[name] if sender == who]
                assert mine == ["%s says %d" % (who, i) for i in range(n_messages)]
    finally:
        for client in clients.values():
            client.disconnect()


@pytest.fixture(scope="module")
def chat_ws(cg_module, site):
    return cg_module("socketio_chat:app", args=["-k", WS_WORKER, "-w", "1",
                                               "--pythonpath", site], env=ENV)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_flask_socketio_chat_on_websocket_worker(chat_ws, transport):
    assert get(chat_ws, "/", timeout=FIRST)[2] == b"chat on gevent"
    _chat(chat_ws.port, transport)


@pytest.mark.timeout(120)
def test_flask_socketio_chat_long_polling_on_gevent(cg, site):
    """-k gevent (the C HTTP path): long-polling. Its WebSocket transport
    needs wsgi.websocket, which only gevent-websocket's handler gives, as
    with Gunicorn's gevent worker."""
    srv = cg("socketio_chat:app", args=["-k", "gevent", "-w", "1", "--pythonpath", site],
             env=ENV)
    assert get(srv, "/", timeout=FIRST)[2] == b"chat on gevent"
    _chat(srv.port, "polling")
