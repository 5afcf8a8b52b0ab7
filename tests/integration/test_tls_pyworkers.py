"""TLS for Python worker classes, as Gunicorn gives it to them: a class of
one's own wraps each connection with gunicorn.sock.ssl_wrap_socket (the
ssl_context hook's context, or the default factory's), gevent's pywsgi and
Tornado's HTTPServer get the context of gunicorn.sock.ssl_context. The
classes are apps/pyworkers.py's; gevent and tornado come from the pinned
test-site. Certificates from trustme, per module."""

import hashlib
import http.client
import json
import os
import socket
import ssl

import pytest
import trustme

import cgtest

CLASSES = ["pyworkers.GunicornBaseWorker", "pyworkers.CgBaseWorker"]
# a server is ready before its worker imported the app (and gevent or
# tornado): the first request waits for that (a loaded machine, ASan)
FIRST = 60.0
SANITIZED = "ASAN_OPTIONS" in os.environ
# as test_gevent.py: greenlet's stack copies under ASan
GEVENT_ENV = ({"ASAN_OPTIONS": os.environ["ASAN_OPTIONS"]
               + ":detect_stack_use_after_return=1:replace_intrin=0"} if SANITIZED else None)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    files = {"ca": str(d / "ca.pem")}
    ca.cert_pem.write_to_path(files["ca"])
    srv = ca.issue_cert("localhost", "127.0.0.1")
    files["cert"], files["key"] = str(d / "cert.pem"), str(d / "key.pem")
    srv.cert_chain_pems[0].write_to_path(files["cert"])
    srv.private_key_pem.write_to_path(files["key"])
    files["cert_der"] = ssl.PEM_cert_to_DER_cert(srv.cert_chain_pems[0].bytes().decode())
    other = ca.issue_cert("localhost", "127.0.0.1")
    files["other"] = str(d / "other.pem")
    other.private_key_and_cert_chain_pem.write_to_path(files["other"])
    files["other_der"] = ssl.PEM_cert_to_DER_cert(other.cert_chain_pems[0].bytes().decode())
    return files


@pytest.fixture(scope="module")
def gsite(tmp_path_factory):
    return cgtest.pinned_site(tmp_path_factory.mktemp("gevent-site"), "gevent", "greenlet",
                              "zope.event", "zope.interface")


@pytest.fixture(scope="module")
def tsite(tmp_path_factory):
    return cgtest.pinned_site(tmp_path_factory.mktemp("tornado-site"), "tornado")


def tls_args(pki, *more):
    return ["--certfile", pki["cert"], "--keyfile", pki["key"], "--log-level", "debug"] + list(more)


def client_ctx(pki):
    return ssl.create_default_context(cafile=pki["ca"])


def request(srv, pki, path="/", timeout=FIRST):
    """(status, body, server certificate DER, TLS version) of one request
    on a fresh connection, checked against the test CA."""
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=timeout,
                                       context=client_ctx(pki))
    try:
        conn.connect()
        der, version = conn.sock.getpeercert(binary_form=True), conn.sock.version()
        conn.request("GET", path, headers={"Connection": "close"})
        r = conn.getresponse()
        return r.status, r.read(), der, version
    finally:
        conn.close()


def plain_http_gets_no_answer(srv):
    """Plain HTTP on the TLS port is never answered in clear."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = cgtest.read_until_close(s, timeout=20)
    assert not data.startswith(b"HTTP/1.1 200"), data[:200]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("cls", CLASSES, ids=["gunicorn_base", "cgunicorn_base"])
def test_own_class_serves_https(cg, pki, cls):
    srv = cg("pyworkers:app", args=["-k", cls] + tls_args(pki))
    status, body, der, version = request(srv, pki, "/info")
    assert status == 200 and der == pki["cert_der"] and version == "TLSv1.3"
    info = json.loads(body)
    assert info["is_ssl"] is True and info["tls_version"] == "TLSv1.3"
    assert info["sockets"] == ["https://127.0.0.1:%d" % srv.port]
    status, body, _, _ = request(srv, pki, "/")
    assert status == 200 and body.startswith(b"hello (1, 0) ")
    plain_http_gets_no_answer(srv)
    # the worker went on after the failed handshake
    assert request(srv, pki, "/")[0] == 200
    assert srv.alive()


@pytest.mark.timeout(120)
def test_own_class_calls_the_ssl_context_hook_per_connection(cg, pki, tmp_path):
    """As Gunicorn's sock.ssl_wrap_socket: the hook runs for every
    connection, in the worker, with the default factory."""
    calls = tmp_path / "calls"
    conf = tmp_path / "conf.py"
    conf.write_text(
        "import os\n"
        "def ssl_context(conf, factory):\n"
        "    ctx = factory()\n"
        "    ctx.load_cert_chain(%r)\n"
        "    with open(%r, 'a') as f:\n"
        "        f.write('%%d\\n' %% os.getpid())\n"
        "    return ctx\n" % (pki["other"], str(calls)))
    srv = cg("pyworkers:app", args=["-k", "pyworkers.CgBaseWorker", "-c", str(conf)]
             + tls_args(pki))
    assert request(srv, pki, "/")[0] == 200
    # (the test harness's readiness probe was a connection too)
    before = len(calls.read_text().split())
    for _ in range(3):
        status, _, der, _ = request(srv, pki, "/")
        assert status == 200 and der == pki["other_der"]
    pids = calls.read_text().split()
    assert len(pids) == before + 3 and set(int(p) for p in pids) <= set(srv.worker_pids())


@pytest.mark.timeout(120)
def test_gevent_pywsgi_serves_https(cg, pki, gsite):
    srv = cg("tls_app:app", args=["-k", "gevent_pywsgi", "--pythonpath", gsite] + tls_args(pki),
             env=GEVENT_ENV)
    status, body, der, version = request(srv, pki, "/")
    assert status == 200 and der == pki["cert_der"] and version == "TLSv1.3"
    assert json.loads(body)["scheme"] == "https"
    size = 3 * 1024 * 1024 + 17
    status, body, _, _ = request(srv, pki, "/file?%d" % size)
    want = request(srv, pki, "/digest?%d" % size)[1].decode()
    assert status == 200 and len(body) == size and hashlib.sha256(body).hexdigest() == want
    plain_http_gets_no_answer(srv)
    assert request(srv, pki, "/")[0] == 200


@pytest.mark.timeout(120)
@pytest.mark.parametrize("app", ["tornado_app:app", "tls_app:app"])
def test_tornado_serves_https(cg, pki, tsite, app):
    srv = cg(app, args=["-k", "tornado", "--pythonpath", tsite] + tls_args(pki))
    status, body, der, version = request(srv, pki, "/")
    assert status == 200 and der == pki["cert_der"] and version == "TLSv1.3"
    if app == "tornado_app:app":
        assert body == b"hello from tornado"
    else:  # a WSGI app in Tornado's WSGIContainer
        assert json.loads(body)["scheme"] == "https"
    plain_http_gets_no_answer(srv)
    assert request(srv, pki, "/")[0] == 200
