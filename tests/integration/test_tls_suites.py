"""The HTTP conformance corpus (test_conformance.py: Gunicorn's request
corpus) and our own RFC 9112 cases (test_rfc9112.py) again, over TLS, on
the sync worker and on gthread with 1 thread (app inline on the loop) and
with 4 (thread pool). The tests are the same functions, asserting the same
statuses, error pages and echoed requests as over plain TCP; only the
servers differ (--certfile/--keyfile) and the way bytes reach them: each
request goes over a fresh TLS connection, in the same writes (one TLS
record each) as the plain run, and "half-close" is our close_notify after
the data, TLS's end of stream (a bare TCP FIN instead is a ragged EOF,
which OpenSSL 3 answers with a fatal decode_error alert and no more
writes, under Gunicorn's Python ssl as here: no error page could follow). A PROXY header travels inside TLS,
as in Gunicorn (docs/tls.md).

Certificates come from trustme, made per test module."""

import json
import socket
import ssl
import time

import pytest
import trustme

import cgtest
import test_rfc9112
from test_conformance import Pool, test_invalid, test_valid, test_valid_split  # noqa: F401

# Every test of test_rfc9112.py, run here on its `srv`/`gthread_srv`
# fixtures, which this module redefines as TLS servers.
globals().update({name: fn for name, fn in vars(test_rfc9112).items()
                  if name.startswith("test_") and callable(fn)})

WORKERS = {
    "sync": ["-w", "1"],
    "gthread1": ["-w", "1", "-k", "gthread", "--threads", "1"],
    "gthread4": ["-w", "1", "-k", "gthread", "--threads", "4"],
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    files = {"ca": str(d / "ca.pem"), "cert": str(d / "cert.pem"), "key": str(d / "key.pem")}
    ca.cert_pem.write_to_path(files["ca"])
    cert.cert_chain_pems[0].write_to_path(files["cert"])
    cert.private_key_pem.write_to_path(files["key"])
    return files


def tls_exchange(ctx, port, data, half_close=False, timeout=10.0, pieces=None, delay=0.0):
    """cgtest.exchange over a fresh TLS connection: every byte received
    until the server ends the connection. half_close sends our
    close_notify after the data (TLS's end of stream; the TCP connection
    stays open both ways, so the server can still answer). The session is
    driven through memory BIOs: Python's SSLSocket cannot read on after
    sending its close_notify."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    deadline = time.monotonic() + timeout

    def flush():
        pending = out.read()
        if pending:
            sock.sendall(pending)

    def fill():
        """More bytes from the server into the session; False at TCP EOF."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("server did not end the TLS connection within %.1fs" % timeout)
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except ConnectionResetError:
            # the server closed with our unread bytes in its socket (an
            # early refusal): the kernel resets; what came before counts
            b = b""
        if not b:
            inc.write_eof()
            return False
        inc.write(b)
        return True

    try:
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                flush()
                if not fill():
                    raise AssertionError("server closed during the handshake")
        flush()
        try:
            last = 0
            for p in list(pieces or ()) + [len(data)]:
                if p > last:
                    obj.write(data[last:p])
                    flush()
                    last = p
                    if p < len(data) and delay:
                        time.sleep(delay)
            if half_close:
                try:
                    obj.unwrap()
                except ssl.SSLWantReadError:
                    pass  # close_notify sent; the server's comes later (or not)
                flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered (and closed) before it read all we sent
        chunks = []
        while True:
            try:
                b = obj.read(65536)
            except ssl.SSLWantReadError:
                if not fill():
                    break  # TCP FIN without close_notify after the answer
                continue
            except ssl.SSLZeroReturnError:
                break
            if not b:
                break  # the server's close_notify
            chunks.append(b)
        return b"".join(chunks)
    finally:
        sock.close()


def _over_tls(factory, kind, pki):
    ctx = ssl.create_default_context(cafile=pki["ca"])

    def start(app, args=(), **kw):
        args = list(args) + WORKERS[kind][2:] + ["--certfile", pki["cert"], "--keyfile", pki["key"]]
        srv = factory(app, args=args, **kw)

        def raw(data, half_close=False, timeout=10.0, pieces=None, delay=0.0):
            return tls_exchange(ctx, srv.port, data, half_close, timeout, pieces, delay)

        def get_json(path="/", timeout=10.0):
            # HTTP/1.0: the server closes after the answer, keep-alive or not
            status, headers, body = cgtest.parse_response(raw(
                b"GET " + path.encode() + b" HTTP/1.0\r\nHost: t\r\n\r\n", timeout=timeout))
            assert status.split()[1] == "200", (status, body)
            return json.loads(body)

        srv.raw = raw
        srv.get_json = get_json
        srv.ca = pki["ca"]
        return srv
    start.kind = kind
    return start


@pytest.fixture(scope="module", params=sorted(WORKERS))
def cg_module(cg_module, request, pki):
    return _over_tls(cg_module, request.param, pki)


@pytest.fixture(scope="module")
def pool(cg_module):
    return Pool(cg_module)


@pytest.fixture(scope="module")
def srv(cg_module):
    return cg_module("echo:app", args=["-w", "1", "--keep-alive", "5"])


@pytest.fixture(scope="module")
def gthread_srv(cg_module):
    if not cg_module.kind.startswith("gthread"):
        pytest.skip("keep-alive and pipelining need the gthread worker (sync closes after one)")
    return cg_module("echo:app", args=["-w", "1", "--keep-alive", "5"])


def test_scheme_is_https(srv):
    """The echo the corpus checks came over TLS: the server says https."""
    got = test_rfc9112.echo(srv.raw(b"GET /s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    assert got["wsgi.url_scheme"] == "https"


def ragged(srv, data):
    """data over TLS, then a bare TCP FIN (no close_notify: a ragged EOF);
    (bytes received, the TLS alert that ended them or None)."""
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s = ssl.create_default_context(cafile=srv.ca).wrap_socket(raw, server_hostname="localhost")
    try:
        s.sendall(data)
        socket.socket.shutdown(s, socket.SHUT_WR)  # under the session
        got = b""
        while True:
            try:
                b = s.recv(65536)
            except ssl.SSLError as e:
                return got, e.reason
            if not b:
                return got, None
            got += b
    finally:
        s.close()


def test_ragged_eof_after_a_whole_request_is_answered(srv):
    """The FIN comes once the request is complete: answered as over plain
    TCP (suppress_ragged_eofs, the default, takes it as the end)."""
    for _ in range(10):
        got, alert = ragged(srv, b"GET /r HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert test_rfc9112.echo(got)["RAW_URI"] == "/r"


def test_ragged_eof_mid_request_ends_without_a_response(srv):
    """The FIN cuts the head: over plain TCP Gunicorn answers nothing
    (NoMoreData); over TLS, OpenSSL 3 meets the EOF mid-record-stream and
    ends the session with a fatal decode_error alert (Gunicorn's Python ssl
    too), so nothing else comes; the worker goes on."""
    got, alert = ragged(srv, b"GET /foo/bar HTTP/1.0\r\nbaz")
    assert got == b"" and alert in (None, "TLSV1_ALERT_DECODE_ERROR"), (got, alert)
    assert test_rfc9112.echo(srv.raw(b"GET /after HTTP/1.0\r\n\r\n"))["RAW_URI"] == "/after"
