"""-k tornado: Gunicorn's tornado worker (cgunicorn.workers.gtornado): a
Tornado Application and a WSGI app on Tornado's HTTPServer, the Server
header Gunicorn marks, concurrency on the IOLoop, --max-requests, TERM and
HUP. Tornado comes from the test-site (tests/requirements.txt)."""

import asyncio
import time

import pytest

import cgtest
from cgtest import parse_response


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return cgtest.pinned_site(tmp_path_factory.mktemp("tornado-site"), "tornado")


def get(srv, path, body=b"", method=b"GET", timeout=10.0):
    req = (method + b" " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
           + (b"Content-Length: %d\r\n" % len(body) if body or method == b"POST" else b"")
           + b"\r\n" + body)
    return parse_response(srv.raw(req, timeout=timeout))


# a server is ready before its worker imported the app: the first request
# waits for that (a loaded machine, ASan)
FIRST = 60.0


@pytest.fixture(scope="module")
def tsrv(cg_module, site):
    return cg_module("tornado_app:app", args=["-k", "tornado", "--pythonpath", site])


def test_tornado_application(tsrv):
    tsrv.wait_log(r"Using worker: tornado")
    status, headers, body = get(tsrv, "/", timeout=FIRST)
    assert status == "HTTP/1.1 200 OK"
    assert body == b"hello from tornado"
    server = dict((k.lower(), v) for k, v in headers)["server"]
    # Tornado's own header, marked by the worker's setup() as Gunicorn does
    assert server.startswith("TornadoServer/")
    assert "(Gunicorn/" in server
    status, _, body = get(tsrv, "/echo", body=b"y" * 200000, method=b"POST")
    assert body == b"y" * 200000


@pytest.mark.timeout(60)
def test_concurrent_async_handlers(tsrv):
    get(tsrv, "/", timeout=FIRST)
    async def one():
        r, w = await asyncio.open_connection("127.0.0.1", tsrv.port)
        w.write(b"GET /sleep?1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = await r.read()
        w.close()
        return data

    async def many():
        t0 = time.monotonic()
        res = await asyncio.gather(*(one() for _ in range(100)))
        return time.monotonic() - t0, res

    took, res = asyncio.run(many())
    assert all(parse_response(d)[2] == b"slept" for d in res)
    # one worker: the sleeps overlap on the IOLoop
    assert took < 20, "100 concurrent 1 s sleeps took %.1fs" % took


@pytest.mark.parametrize("name", ["tornado", "gunicorn.workers.gtornado.TornadoWorker",
                                  "egg:gunicorn#tornado"])
def test_wsgi_app_in_a_container(cg, site, name):
    srv = cg("tornado_app:wsgi_app", args=["-k", name, "--pythonpath", site])
    assert get(srv, "/a/b?x=1", timeout=FIRST)[2] == b"GET /a/b x=1"
    assert get(srv, "/p", body=b"data", method=b"POST")[2] == b"POST /p  data"


@pytest.mark.timeout(90)
def test_max_requests_restarts_the_worker(cg, site):
    srv = cg("tornado_app:app", args=["-k", "tornado", "--pythonpath", site,
                                     "--max-requests", "3"])
    first = get(srv, "/pid", timeout=FIRST)[2]
    for _ in range(3):
        get(srv, "/")
    srv.wait_log(r"Autorestarting worker after current request", timeout=20)
    deadline = time.monotonic() + 60
    while True:
        try:
            pid = get(srv, "/pid")[2]
        except (OSError, ValueError):
            pid = first
        if pid != first:
            break
        assert time.monotonic() < deadline, "the worker was never replaced"
        time.sleep(0.2)


@pytest.mark.timeout(90)
def test_term_and_hup(cg, site):
    srv = cg("tornado_app:app", args=["-k", "tornado", "-w", "2", "--pythonpath", site])
    before = set(srv.worker_pids())
    srv.send_signal(1)  # HUP: new workers replace the old ones
    srv.wait_workers(lambda pids: len(pids) == 2 and not (set(pids) & before), 60,
                     "two new tornado workers")
    assert get(srv, "/", timeout=FIRST)[2] == b"hello from tornado"
    srv.stop()
    assert srv.returncode == 0
