"""TLS on the listeners (certfile/keyfile) for the sync and gthread workers:
requests over https with Python's ssl, requests and curl as clients,
Gunicorn's log lines for failed handshakes, client certificates
(cert_reqs), a stalled handshake on gthread, file_wrapper bodies, HUP with
a new certificate, start-up errors, and hostile bytes mid-handshake.

Certificates come from trustme, made per test module."""

import hashlib
import http.client
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import time

import pytest
import requests
import trustme

import cgtest

WORKERS = ["sync", "gthread"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for localhost/127.0.0.1 and a client
    certificate, as files."""
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    srv = ca.issue_cert("localhost", "127.0.0.1")
    cli = ca.issue_cert("client@example.com")
    files = {"dir": d, "ca_obj": ca}
    files["ca"] = str(d / "ca.pem")
    ca.cert_pem.write_to_path(files["ca"])
    files["cert"] = str(d / "cert.pem")
    files["key"] = str(d / "key.pem")
    srv.cert_chain_pems[0].write_to_path(files["cert"])
    srv.private_key_pem.write_to_path(files["key"])
    files["client"] = str(d / "client.pem")
    cli.private_key_and_cert_chain_pem.write_to_path(files["client"])
    files["cert_der"] = ssl.PEM_cert_to_DER_cert(srv.cert_chain_pems[0].bytes().decode())
    return files


def tls_args(pki, kind, *more):
    args = ["-k", kind, "--certfile", pki["cert"], "--keyfile", pki["key"], "--log-level", "debug"]
    if kind == "gthread":
        args += ["--threads", "2"]
    return args + list(more)


def client_ctx(pki, cert=None):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    if cert:
        ctx.load_cert_chain(cert)
    return ctx


def https(srv, path="/"):
    return "https://127.0.0.1:%d%s" % (srv.port, path)


def tls_get(srv, pki, path="/", cert=None, timeout=10.0):
    """One request over a fresh TLS connection; (status, body)."""
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=timeout,
                                       context=client_ctx(pki, cert))
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def client_hello():
    """The first flight of a real TLS client, for hostile partial handshakes."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ssl.create_default_context().wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


@pytest.mark.parametrize("kind", WORKERS)
def test_get_and_post(cg, pki, kind):
    srv = cg("tls_app:app", tls_args(pki, kind))
    assert "Listening at: https://127.0.0.1:%d" % srv.port in srv.log()
    r = requests.get(https(srv), verify=pki["ca"], timeout=10)
    assert r.status_code == 200
    info = r.json()
    assert info["scheme"] == "https"
    assert info["server_port"] == str(srv.port)
    body = os.urandom(200000)
    r = requests.post(https(srv, "/up"), data=body, verify=pki["ca"], timeout=10)
    info = r.json()
    assert info["method"] == "POST"
    assert info["body_len"] == len(body)
    assert info["body_sha"] == hashlib.sha256(body).hexdigest()
    # chunked upload
    r = requests.post(https(srv, "/up"), data=iter([b"a" * 1000, b"b" * 70000]),
                      verify=pki["ca"], timeout=10)
    assert r.json()["body_len"] == 71000


def test_gthread_keepalive(cg, pki):
    srv = cg("tls_app:app", tls_args(pki, "gthread"))
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=10, context=client_ctx(pki))
    ports = set()
    for i in range(5):
        conn.request("POST", "/", body=b"x" * (i * 30000))
        r = conn.getresponse()
        assert r.status == 200
        assert r.getheader("Connection", "").lower() != "close"
        info = json.loads(r.read())
        assert info["body_len"] == i * 30000
        ports.add(info["remote_port"])
    conn.close()
    assert len(ports) == 1  # one connection served them all


@pytest.mark.parametrize("threads", ["1", "4"])
def test_gthread_pipelined(cg, pki, threads):
    """Requests pipelined in one TLS write, one with a body larger than the
    connection buffer: OpenSSL holds decrypted bytes no poll reports, and
    the loop reads them on; every answer comes, in order."""
    srv = cg("tls_app:app", tls_args(pki, "gthread")[:-2] + ["--threads", threads])
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
    s = client_ctx(pki).wrap_socket(raw, server_hostname="127.0.0.1")
    body = b"z" * 100000
    reqs = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3))
    reqs += b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    reqs += b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    s.sendall(reqs)
    data = cgtest.read_until_close(s, timeout=20)
    s.close()
    assert data.count(b"HTTP/1.1 200 OK") == 5
    assert b'"body_len": %d' % len(body) in data


def test_curl(cg, pki):
    srv = cg("tls_app:app", tls_args(pki, "gthread"))
    res = subprocess.run(["curl", "-sS", "--cacert", pki["ca"], https(srv, "/a"), https(srv, "/b"),
                          "-w", "\\n%{num_connects}\\n"],
                         capture_output=True, timeout=30)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split(b"\n")
    assert json.loads(lines[0].split(b"}")[0] + b"}")["scheme"] == "https"
    # curl reused the connection for the second URL (keep-alive over TLS)
    assert lines[-2] in (b"0", b"1")


@pytest.mark.parametrize("kind", WORKERS)
def test_plain_http_to_tls_port(cg, pki, kind):
    srv = cg("tls_app:app", tls_args(pki, kind))
    _, body = tls_get(srv, pki)
    pid = json.loads(body)["pid"]
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = cgtest.read_until_close(s)
        except ConnectionResetError:
            data = b""
        assert b"HTTP/1.1 200" not in data
    srv.wait_log(r"\[WARNING\] Invalid request from ip=127\.0\.0\.1: "
                 r"\[SSL: HTTP_REQUEST\] http request")
    assert "[DEBUG] Error processing SSL request." in srv.log()
    status, body = tls_get(srv, pki)
    assert status == 200 and json.loads(body)["pid"] == pid  # the same worker goes on


@pytest.mark.parametrize("kind", WORKERS)
def test_client_certificates(cg, pki, kind):
    srv = cg("tls_app:app", tls_args(pki, kind, "--cert-reqs", "2", "--ca-certs", pki["ca"]))
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
        tls_get(srv, pki)
    srv.wait_log(r"Invalid request from ip=127\.0\.0\.1: \[SSL: "
                 r"PEER_DID_NOT_RETURN_A_CERTIFICATE\] peer did not return a certificate")
    status, body = tls_get(srv, pki, cert=pki["client"])
    assert status == 200 and json.loads(body)["scheme"] == "https"
    # a certificate from another CA is refused
    other = trustme.CA().issue_cert("intruder")
    path = str(pki["dir"] / "intruder.pem")
    other.private_key_and_cert_chain_pem.write_to_path(path)
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
        tls_get(srv, pki, cert=path)
    srv.wait_log(r"CERTIFICATE_VERIFY_FAILED\] certificate verify failed")


def test_stalled_handshake_does_not_block_gthread(cg, pki):
    """--threads 1: connections stuck half-way through their handshake cost
    a slot each, never the loop; others are served meanwhile."""
    srv = cg("tls_app:app", tls_args(pki, "gthread")[:-2] + ["--threads", "1"])
    hello = client_hello()
    stalled = []
    for _ in range(5):
        s = srv.connect()
        s.sendall(hello[: len(hello) // 2])
        stalled.append(s)
    t0 = time.monotonic()
    for _ in range(3):
        status, _ = tls_get(srv, pki, timeout=5)
        assert status == 200
    assert time.monotonic() - t0 < 5
    for s in stalled:
        s.close()


def test_handshake_deadline_gthread(cg, pki):
    """A handshake that never completes is closed after the head deadline
    (--timeout)."""
    srv = cg("tls_app:app", tls_args(pki, "gthread", "--timeout", "2"))
    with srv.connect() as s:
        s.sendall(client_hello()[:20])
        s.settimeout(15)
        assert cgtest.read_until_close(s, timeout=15) == b""
    srv.wait_log(r"Closing connection: TLS handshake not complete in time")


@pytest.mark.parametrize("kind", WORKERS)
def test_large_file_wrapper(cg, pki, kind):
    srv = cg("tls_app:app", tls_args(pki, kind))
    size = 5 * 1024 * 1024 + 123
    r = requests.get(https(srv, "/file"), params=str(size), verify=pki["ca"], timeout=30)
    assert r.status_code == 200
    assert len(r.content) == size
    want = requests.get(https(srv, "/digest"), params=str(size), verify=pki["ca"], timeout=10).text
    assert hashlib.sha256(r.content).hexdigest() == want


def test_slow_reader_large_response_gthread(cg, pki):
    """A client that reads a large TLS response slowly: the write-behind
    spool retries OpenSSL's records with other segment sizes; every byte
    arrives once, in order."""
    srv = cg("tls_app:app", tls_args(pki, "gthread"))
    size = 3 * 1024 * 1024
    ctx = client_ctx(pki)
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    s.sendall(b"GET /file?%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    assert b" 200 " in head.split(b"\r\n")[0]
    while len(body) < size:
        chunk = s.recv(7000)
        assert chunk
        body += chunk
        if len(body) < 256 * 1024:
            time.sleep(0.001)
    s.close()
    want = requests.get(https(srv, "/digest"), params=str(size), verify=pki["ca"], timeout=10).text
    assert hashlib.sha256(body).hexdigest() == want


@pytest.mark.parametrize("kind", WORKERS)
def test_hup_reloads_certificate(cg, pki, tmp_path, kind):
    cert, key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    ca = pki["ca_obj"]
    first = ca.issue_cert("localhost", "127.0.0.1")
    first.cert_chain_pems[0].write_to_path(cert)
    first.private_key_pem.write_to_path(key)
    args = ["-k", kind, "--certfile", cert, "--keyfile", key]
    srv = cg("tls_app:app", args)

    def served_cert():
        raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        with client_ctx(pki).wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.getpeercert(binary_form=True)

    def der(c):
        return ssl.PEM_cert_to_DER_cert(c.cert_chain_pems[0].bytes().decode())

    assert served_cert() == der(first)
    second = ca.issue_cert("localhost", "127.0.0.1")
    second.cert_chain_pems[0].write_to_path(cert)
    second.private_key_pem.write_to_path(key)
    old = set(srv.worker_pids())
    srv.send_signal(signal.SIGHUP)
    srv.wait_workers(lambda pids: pids and not (set(pids) & old), timeout=30,
                     what="a new generation of workers")
    srv.wait_log(r"Booting worker with pid", count=2)
    deadline = time.monotonic() + 20
    while served_cert() != der(second):
        assert time.monotonic() < deadline, "the new certificate was never served"
        time.sleep(0.1)

    # a broken certificate on HUP: logged, the previous one stays
    with open(cert, "w") as f:
        f.write("not a certificate\n")
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"Reloading the TLS certificate failed, keeping the previous one")
    assert served_cert() == der(second)
    assert srv.alive()


@pytest.mark.parametrize("which", ["certfile", "keyfile"])
def test_missing_file_refused(run_cg, pki, which):
    args = ["--certfile", pki["cert"], "--keyfile", pki["key"], "-b", "127.0.0.1:%d" % cgtest.free_port()]
    args[args.index("--" + which) + 1] = "/nonexistent/%s.pem" % which
    res = run_cg(args + ["tls_app:app"])
    assert res.returncode == 1
    assert 'ValueError: %s "/nonexistent/%s.pem" does not exist' % (which, which) in res.stderr
    assert "Starting gunicorn" in res.stderr


def test_key_not_matching_refused(run_cg, pki, tmp_path):
    other = str(tmp_path / "other.pem")
    pki["ca_obj"].issue_cert("localhost").private_key_pem.write_to_path(other)
    res = run_cg(["--certfile", pki["cert"], "--keyfile", other,
                  "-b", "127.0.0.1:%d" % cgtest.free_port(), "tls_app:app"])
    assert res.returncode == 1
    assert "KEY_VALUES_MISMATCH" in res.stderr


@pytest.mark.parametrize("kind", WORKERS)
def test_hostile_bytes_mid_handshake(cg, pki, kind):
    """Random bytes after a partial handshake, an early close, a reset:
    the worker survives every one and serves the next client."""
    srv = cg("tls_app:app", tls_args(pki, kind, "--timeout", "5"))
    _, body = tls_get(srv, pki)
    pid = json.loads(body)["pid"]
    hello = client_hello()
    rng = random.Random(1717)
    for i in range(40):
        s = srv.connect()
        try:
            s.sendall(hello[: rng.randrange(len(hello) + 1)])
            s.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))))
            if i % 3 == 0:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            else:
                s.shutdown(socket.SHUT_WR)
                cgtest.read_until_close(s, timeout=10)
        except OSError:
            pass
        finally:
            s.close()
    status, body = tls_get(srv, pki)
    assert status == 200 and json.loads(body)["pid"] == pid
    assert "Worker exiting" not in srv.log() and "WORKER TIMEOUT" not in srv.log()


# ---- the asgi worker: asyncio's SSL transports with Gunicorn's default context ----

def test_asgi_over_tls(cg, pki):
    srv = cg("asgi_basic:app", ["-k", "asgi", "--certfile", pki["cert"], "--keyfile", pki["key"]])
    assert "Listening at: https://127.0.0.1:%d" % srv.port in srv.log()
    r = requests.get(https(srv, "/scope"), verify=pki["ca"], timeout=10)
    assert r.status_code == 200
    scope = r.json()
    assert scope["scheme"] == "https"
    assert scope["server"] == ["127.0.0.1", srv.port]
    # keep-alive over one TLS session
    with requests.Session() as s:
        for _ in range(3):
            assert s.get(https(srv, "/scope"), verify=pki["ca"], timeout=10).json()["scheme"] == "https"
    # plain HTTP to the TLS port does not hurt the worker
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        cgtest.read_until_close(sock)
    assert requests.get(https(srv, "/scope"), verify=pki["ca"], timeout=10).status_code == 200


def test_asgi_client_certificates(cg, pki):
    srv = cg("asgi_basic:app", ["-k", "asgi", "--certfile", pki["cert"], "--keyfile", pki["key"],
                                "--cert-reqs", "2", "--ca-certs", pki["ca"]])
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
        tls_get(srv, pki, "/scope")
    status, body = tls_get(srv, pki, "/scope", cert=pki["client"])
    assert status == 200 and json.loads(body)["scheme"] == "https"


def test_asgi_ssl_context_hook(cg, pki, tmp_path):
    """The asgi worker calls the hook as Gunicorn does: with the config and
    the default factory, and serves with the context it returns."""
    conf = tmp_path / "c.py"
    conf.write_text(
        "import ssl\n"
        "def ssl_context(conf, default_ssl_context_factory):\n"
        "    ctx = default_ssl_context_factory()\n"
        "    ctx.minimum_version = ssl.TLSVersion.TLSv1_3\n"
        "    print('HOOK certfile=%s' % conf.certfile, flush=True)\n"
        "    return ctx\n")
    srv = cg("asgi_basic:app", ["-k", "asgi", "-c", str(conf), "--certfile", pki["cert"],
                                "--keyfile", pki["key"]])
    srv.wait_log(r"HOOK certfile=%s" % pki["cert"], source=srv.stdout)
    assert requests.get(https(srv, "/scope"), verify=pki["ca"], timeout=10).status_code == 200
    # TLS 1.2 is refused by the context the hook returned
    ctx = client_ctx(pki)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises((ssl.SSLError, ConnectionError)):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            with ctx.wrap_socket(sock, server_hostname="localhost"):
                pass
