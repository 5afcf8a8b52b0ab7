"""TLS for the sync and gthread workers, continued from test_tls.py: the
ssl_context hook (its SSLContext's settings, chain and ciphers are what the
C transport serves), the client's certificate through
environ['gunicorn.socket'] as Gunicorn's SSLSocket gives it (curl client
certificates, cert_reqs 0/1/2), and HUP with a request in flight on the
old certificate. Certificates come from trustme, made per module."""

import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest
import trustme

import cgtest

WORKERS = ["sync", "gthread"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    files = {"dir": d, "ca_obj": ca, "ca": str(d / "ca.pem")}
    ca.cert_pem.write_to_path(files["ca"])
    srv = ca.issue_cert("localhost", "127.0.0.1")
    files["cert"], files["key"] = str(d / "cert.pem"), str(d / "key.pem")
    srv.cert_chain_pems[0].write_to_path(files["cert"])
    srv.private_key_pem.write_to_path(files["key"])
    # a second server certificate under an intermediate CA: a chain
    mid = ca.create_child_ca()
    other = mid.issue_cert("localhost", "127.0.0.1")
    files["chain"] = str(d / "chain.pem")
    other.private_key_and_cert_chain_pem.write_to_path(files["chain"])
    files["chain_leaf_der"] = ssl.PEM_cert_to_DER_cert(other.cert_chain_pems[0].bytes().decode())
    files["cert_der"] = ssl.PEM_cert_to_DER_cert(srv.cert_chain_pems[0].bytes().decode())
    cli = ca.issue_cert("client@example.com", "client.example.com")
    files["client_cert"], files["client_key"] = str(d / "client.pem"), str(d / "client.key")
    cli.cert_chain_pems[0].write_to_path(files["client_cert"])
    cli.private_key_pem.write_to_path(files["client_key"])
    files["client_der"] = ssl.PEM_cert_to_DER_cert(cli.cert_chain_pems[0].bytes().decode())
    return files


def client_ctx(pki, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def handshake(srv, ctx):
    """(peer certificate DER, cipher name, version) of one handshake."""
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        return s.getpeercert(binary_form=True), s.cipher()[0], s.version()


def tls_json(srv, ctx, path="/"):
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=20, context=ctx)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        assert r.status == 200
        return json.loads(r.read())
    finally:
        conn.close()


def write_conf(tmp_path, body):
    conf = tmp_path / "conf.py"
    conf.write_text("import ssl\n" + body)
    return str(conf)


# ---- the ssl_context hook ----

@pytest.mark.parametrize("kind", WORKERS)
def test_hook_chain_and_minimum_version(cg, pki, tmp_path, kind):
    """The hook gets the config and Gunicorn's default factory; what it
    changes on the context (a TLS 1.3 minimum, another certificate chain,
    loaded after the factory's) is what clients meet. HUP calls it again."""
    conf = write_conf(tmp_path,
                      "def ssl_context(conf, default_ssl_context_factory):\n"
                      "    ctx = default_ssl_context_factory()\n"
                      "    ctx.minimum_version = ssl.TLSVersion.TLSv1_3\n"
                      "    ctx.load_cert_chain(%r)\n"
                      "    print('HOOK certfile=%%s' %% conf.certfile, flush=True)\n"
                      "    return ctx\n" % pki["chain"])
    srv = cg("tls_peer_app:app", ["-k", kind, "-c", conf, "--certfile", pki["cert"],
                                  "--keyfile", pki["key"], "--log-level", "debug"])
    srv.wait_log(r"HOOK certfile=%s" % pki["cert"], source=srv.stdout)
    # the chain's leaf, verified against the root alone: the intermediate was sent
    der, _, version = handshake(srv, client_ctx(pki))
    assert der == pki["chain_leaf_der"]
    assert version == "TLSv1.3"
    old = client_ctx(pki)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(srv, old)
    assert tls_json(srv, client_ctx(pki))["scheme"] == "https"
    pids = srv.worker_pids()
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"HOOK certfile=", source=srv.stdout, count=2, timeout=30)
    srv.wait_workers(lambda p: p and not (p & pids), timeout=30, what="new workers")
    assert handshake(srv, client_ctx(pki))[0] == pki["chain_leaf_der"]


@pytest.mark.parametrize("kind", WORKERS)
def test_hook_ciphers(cg, pki, tmp_path, kind):
    """TLS 1.2 only, one cipher suite: a client offering another fails."""
    conf = write_conf(tmp_path,
                      "def ssl_context(conf, factory):\n"
                      "    ctx = factory()\n"
                      "    ctx.maximum_version = ssl.TLSVersion.TLSv1_2\n"
                      "    ctx.set_ciphers('ECDHE-RSA-AES256-GCM-SHA384')\n"
                      "    return ctx\n")
    srv = cg("tls_peer_app:app", ["-k", kind, "-c", conf, "--certfile", pki["cert"],
                                  "--keyfile", pki["key"]])
    der, cipher, version = handshake(srv, client_ctx(pki))
    assert (der, cipher, version) == (pki["cert_der"], "ECDHE-RSA-AES256-GCM-SHA384", "TLSv1.2")
    info = tls_json(srv, client_ctx(pki))
    assert info["cipher"] == ["ECDHE-RSA-AES256-GCM-SHA384", "TLSv1.2", 256]
    assert info["version"] == "TLSv1.2"
    other = client_ctx(pki)
    other.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(srv, other)
    srv.wait_log(r"Invalid request from ip=127\.0\.0\.1: \[SSL: NO_SHARED_CIPHER\]")


@pytest.mark.parametrize("body,text", [
    ("def ssl_context(conf, factory):\n    raise RuntimeError('no context today')\n",
     "RuntimeError: no context today"),
    ("def ssl_context(conf, factory):\n    return None\n",
     "ssl_context must return an ssl.SSLContext, not NoneType"),
    ("def ssl_context(conf, factory):\n    return ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n",
     "ssl_context returned a context without a certificate"),
    ("def ssl_context(conf, factory):\n    ctx = factory()\n"
     "    ctx._msg_callback = lambda *a: None\n    return ctx\n",
     "_msg_callback is not supported by cgunicorn's C TLS transport"),
])
def test_hook_refusals(run_cg, pki, tmp_path, body, text):
    res = run_cg(["-c", write_conf(tmp_path, body), "--certfile", pki["cert"], "--keyfile",
                  pki["key"], "-b", "127.0.0.1:%d" % cgtest.free_port(), "tls_peer_app:app"])
    assert res.returncode == 1
    assert text in res.stderr


# ---- the client's certificate ----

def curl(srv, pki, path="/", cert=True):
    cmd = ["curl", "-sS", "--max-time", "20", "--cacert", pki["ca"]]
    if cert:
        cmd += ["--cert", pki["client_cert"], "--key", pki["client_key"]]
    res = subprocess.run(cmd + ["https://localhost:%d%s" % (srv.port, path)],
                         capture_output=True, text=True, timeout=30)
    return res


def expected_peercert(pki):
    # what ssl.SSLSocket.getpeercert() gives for it, through JSON
    return json.loads(json.dumps(ssl._ssl._test_decode_cert(pki["client_cert"])))


@pytest.mark.parametrize("kind", WORKERS)
def test_client_certificate_required(cg, pki, kind):
    srv = cg("tls_peer_app:app", ["-k", kind, "--certfile", pki["cert"], "--keyfile", pki["key"],
                                  "--cert-reqs", "2", "--ca-certs", pki["ca"]])
    res = curl(srv, pki)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["peercert"] == expected_peercert(pki)
    assert ["commonName", "client@example.com"] not in info["peercert"]["subject"]
    assert ["DNS", "client.example.com"] in info["peercert"]["subjectAltName"]
    assert info["der_sha"] == hashlib.sha256(pki["client_der"]).hexdigest()
    assert info["version"] == "TLSv1.3"
    assert info["cipher"][1] == "TLSv1.3"
    res = curl(srv, pki, cert=False)
    assert res.returncode != 0


@pytest.mark.parametrize("kind", WORKERS)
def test_client_certificate_optional(cg, pki, kind):
    srv = cg("tls_peer_app:app", ["-k", kind, "--certfile", pki["cert"], "--keyfile", pki["key"],
                                  "--cert-reqs", "1", "--ca-certs", pki["ca"]])
    res = curl(srv, pki)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["peercert"] == expected_peercert(pki)
    res = curl(srv, pki, cert=False)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["peercert"] is None and info["der_sha"] is None


def test_client_certificate_not_asked(cg, pki):
    """cert_reqs 0: no certificate is asked for, so none is seen."""
    srv = cg("tls_peer_app:app", ["-k", "gthread", "--certfile", pki["cert"],
                                  "--keyfile", pki["key"]])
    res = curl(srv, pki)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["peercert"] is None and info["alpn"] is None


# ---- HUP with a connection open ----

@pytest.mark.parametrize("kind", WORKERS)
def test_hup_request_in_flight_keeps_old_certificate(cg, pki, tmp_path, kind):
    """A request in flight on a connection made before HUP completes on the
    old certificate; new handshakes get the new one."""
    cert, key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    ca = pki["ca_obj"]
    first, second = ca.issue_cert("localhost"), ca.issue_cert("localhost")

    def install(c):
        c.cert_chain_pems[0].write_to_path(cert)
        c.private_key_pem.write_to_path(key)

    def der(c):
        return ssl.PEM_cert_to_DER_cert(c.cert_chain_pems[0].bytes().decode())

    install(first)
    args = ["-k", kind, "--certfile", cert, "--keyfile", key, "--graceful-timeout", "60"]
    if kind == "sync":
        args += ["--workers", "2"]
    srv = cg("tls_peer_app:app", args)
    conn = http.client.HTTPSConnection("localhost", srv.port, timeout=60,
                                       context=client_ctx(pki))
    if kind == "gthread":  # a keep-alive connection, used once before HUP
        conn.request("GET", "/")
        assert json.loads(conn.getresponse().read())["scheme"] == "https"
    else:  # the sync worker closes after each response
        conn.connect()
    assert conn.sock.getpeercert(binary_form=True) == der(first)
    flag = str(tmp_path / "go")
    conn.request("GET", "/wait?" + flag)
    deadline = time.monotonic() + 30
    while not os.path.exists(flag + ".started"):  # the old worker runs it
        assert time.monotonic() < deadline, "the request never reached the app"
        time.sleep(0.02)
    old = srv.worker_pids()
    install(second)
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"Booting worker with pid", count=len(old) * 2, timeout=30)
    deadline = time.monotonic() + 30
    while handshake(srv, client_ctx(pki))[0] != der(second):
        assert time.monotonic() < deadline, "the new certificate was never served"
        time.sleep(0.1)
    assert conn.sock.getpeercert(binary_form=True) == der(first)
    open(flag, "w").close()
    r = conn.getresponse()
    assert r.status == 200
    assert json.loads(r.read())["pid"] in old
    conn.close()
    srv.wait_workers(lambda p: p and not (p & old), timeout=60, what="old workers gone")


# ---- the gevent worker ----

SANITIZED = "ASAN_OPTIONS" in os.environ
# as test_gevent.py: greenlet's stack copies under ASan
GEVENT_ENV = ({"ASAN_OPTIONS": os.environ["ASAN_OPTIONS"]
               + ":detect_stack_use_after_return=1:replace_intrin=0"} if SANITIZED else None)


@pytest.fixture(scope="module")
def gsite(tmp_path_factory):
    return cgtest.pinned_site(tmp_path_factory.mktemp("gevent-site"), "gevent", "greenlet",
                              "zope.event", "zope.interface")


def test_gevent_tls(cg, pki, gsite):
    """Keep-alive and pipelined requests (two in one TLS record), a client
    stalled in its handshake not holding up the others, the client's
    certificate, on the gevent worker."""
    srv = cg("tls_peer_app:app", ["-k", "gevent", "--pythonpath", gsite, "--certfile",
                                  pki["cert"], "--keyfile", pki["key"], "--cert-reqs", "1",
                                  "--ca-certs", pki["ca"], "--log-level", "debug"],
             env=GEVENT_ENV)
    assert "Listening at: https://127.0.0.1:%d" % srv.port in srv.log()
    stalled = srv.connect()  # never says hello
    try:
        res = curl(srv, pki)
        assert res.returncode == 0, res.stderr
        info = json.loads(res.stdout)
        assert info["peercert"] == expected_peercert(pki) and info["scheme"] == "https"
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=20,
                                           context=client_ctx(pki))
        pids = set()
        for _ in range(3):
            conn.request("GET", "/")
            r = conn.getresponse()
            assert r.status == 200 and r.getheader("Connection", "").lower() != "close"
            info = json.loads(r.read())
            pids.add(info["pid"])
            assert info["peercert"] is None and info["version"] == "TLSv1.3"
        assert conn.sock.version() == "TLSv1.3"
        conn.close()
        raw = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
        with client_ctx(pki).wrap_socket(raw, server_hostname="localhost") as s:
            req = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
            s.sendall(req + req.replace(b"Host: x", b"Host: x\r\nConnection: close"))
            data = cgtest.read_until_close(s, timeout=20)
        assert data.count(b"HTTP/1.1 200 OK") == 2
    finally:
        stalled.close()
    assert srv.alive()


def test_gevent_tls_hook(cg, pki, tmp_path, gsite):
    conf = write_conf(tmp_path,
                      "def ssl_context(conf, factory):\n"
                      "    ctx = factory()\n"
                      "    ctx.load_cert_chain(%r)\n"
                      "    return ctx\n" % pki["chain"])
    srv = cg("tls_peer_app:app", ["-k", "gevent", "--pythonpath", gsite, "-c", conf,
                                  "--certfile", pki["cert"], "--keyfile", pki["key"]],
             env=GEVENT_ENV)
    assert handshake(srv, client_ctx(pki))[0] == pki["chain_leaf_der"]
    assert tls_json(srv, client_ctx(pki))["scheme"] == "https"
