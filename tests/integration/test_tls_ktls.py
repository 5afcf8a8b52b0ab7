"""kTLS for sendfile responses (wsgi.file_wrapper) on the C TLS transport
(sync, gthread, gevent): where the kernel has its tls module, OpenSSL is
asked for kTLS and a file body goes out with SSL_sendfile; where it has
not, the master says so at debug and the body is encrypted in user space.
Either way the body is byte-exact (sha256). Which branch runs depends on
the machine: the test finds out as cgunicorn does (TCP_ULP "tls" on a
fresh socket) and checks the log lines of that branch."""

import errno
import hashlib
import os
import socket

import pytest
import requests
import trustme

import cgtest

WORKERS = ["sync", "gthread", "gevent"]
SANITIZED = "ASAN_OPTIONS" in os.environ
GEVENT_ENV = ({"ASAN_OPTIONS": os.environ["ASAN_OPTIONS"]
               + ":detect_stack_use_after_return=1:replace_intrin=0"} if SANITIZED else None)
TCP_ULP = 31


def kernel_has_ktls():
    s = socket.socket()
    try:
        s.setsockopt(socket.IPPROTO_TCP, TCP_ULP, b"tls")
        return True
    except OSError as e:
        return e.errno == errno.ENOTCONN
    finally:
        s.close()


KTLS = kernel_has_ktls()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    files = {"ca": str(d / "ca.pem"), "cert": str(d / "cert.pem")}
    ca.cert_pem.write_to_path(files["ca"])
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        files["cert"])
    return files


@pytest.fixture(scope="module")
def gsite(tmp_path_factory):
    return cgtest.pinned_site(tmp_path_factory.mktemp("gevent-site"), "gevent", "greenlet",
                              "zope.event", "zope.interface")


def start(cg, pki, gsite, kind, *more):
    args = ["-k", kind, "--certfile", pki["cert"], "--log-level", "debug"] + list(more)
    env = None
    if kind == "gthread":
        args += ["--threads", "2"]
    if kind == "gevent":
        args += ["--pythonpath", gsite]
        env = GEVENT_ENV
    return cg("tls_app:app", args, env=env)


def fetch_file(srv, pki, size):
    url = "https://127.0.0.1:%d/file" % srv.port
    r = requests.get(url, params=str(size), verify=pki["ca"], timeout=60)
    assert r.status_code == 200 and len(r.content) == size
    want = requests.get("https://127.0.0.1:%d/digest" % srv.port, params=str(size),
                        verify=pki["ca"], timeout=30).text
    assert hashlib.sha256(r.content).hexdigest() == want


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", WORKERS)
def test_file_body_over_tls(cg, pki, gsite, kind):
    srv = start(cg, pki, gsite, kind)
    if KTLS:
        srv.wait_log(r"\[DEBUG\] kTLS on: file bodies are sent with SSL_sendfile", timeout=30)
    else:
        srv.wait_log(r"\[DEBUG\] kTLS off: the kernel has no tls module", timeout=30)
    size = 8 * 1024 * 1024 + 321
    fetch_file(srv, pki, size)
    line = srv.wait_log(r"Sending a file of %d bytes over TLS (.*)$" % size, timeout=30)[0][1]
    if KTLS:
        # OpenSSL 3 turns kTLS on for the ciphers the kernel has (AES-GCM,
        # ChaCha20-Poly1305 on recent kernels): TLS 1.3's default suite
        assert "with kTLS (SSL_sendfile)" in line, line
    else:
        assert "encrypted in user space (no kTLS)" in line, line


@pytest.mark.timeout(120)
def test_no_sendfile_no_ktls(cg, pki, gsite):
    srv = start(cg, pki, gsite, "sync", "--no-sendfile")
    srv.wait_log(r"\[DEBUG\] kTLS off: sendfile is off", timeout=30)
    fetch_file(srv, pki, 3 * 1024 * 1024 + 7)
