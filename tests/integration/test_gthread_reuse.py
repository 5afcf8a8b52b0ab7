"""The gthread worker keeps the memory of closed connections for the next
ones (struct, buffer, header array): nothing of a connection's request may
show in a later connection's, whatever the earlier one did (a head that grew
the buffer, a body, pipelining, more connections at once than it keeps)."""

import socket
import threading

import pytest

import cgtest

APP = "gthread_app:app"
THREADS = [pytest.param(1, id="threads1"), pytest.param(4, id="threads4")]


def _hdrs_request(i, extra=()):
    """GET /hdrs closing, with X-N: i and the given extra headers."""
    lines = [b"GET /hdrs HTTP/1.1", b"Host: t", b"Connection: close", b"X-N: %d" % i]
    lines += [b"%s: %s" % (k, v) for k, v in extra]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _expected(i, extra=()):
    env = {"HTTP_CONNECTION": "close", "HTTP_X_N": str(i)}
    for k, v in extra:
        env["HTTP_" + k.decode().upper().replace("-", "_")] = v.decode()
    return " ".join("%s=%s" % (k, env[k]) for k in sorted(env))


def _get(srv, data):
    status, _, body = cgtest.parse_response(srv.raw(data, timeout=20.0))
    assert status.split()[1] == "200", (status, body)
    return body.decode()


def _extra(i):
    """A different set of headers per connection: none, one, or a head of
    about 6 KiB (beyond the buffer a connection starts with)."""
    if i % 3 == 0:
        return ()
    if i % 3 == 1:
        return ((b"X-Odd", b"%d" % i),)
    return tuple((b"X-Big-%d" % k, b"v%d-" % i + b"x" * 200) for k in range(30))


@pytest.mark.parametrize("threads", THREADS)
def test_sequential_connections_see_only_their_headers(cg, threads):
    srv = cg(APP, args=["-k", "gthread", "--threads", str(threads)])
    for i in range(150):
        assert _get(srv, _hdrs_request(i, _extra(i))) == _expected(i, _extra(i))


@pytest.mark.parametrize("threads", THREADS)
def test_after_bodies_and_pipelining(cg, threads):
    srv = cg(APP, args=["-k", "gthread", "--threads", str(threads)])
    for i in range(20):
        # a body spooled ahead of the app (larger than the buffer), then a
        # pipelined pair on one connection, then a plain one: each closes
        body = b"z" * (300 * 1024)
        status, _, got = cgtest.parse_response(srv.raw(
            b"POST /upload HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body, timeout=20.0))
        assert status.split()[1] == "200"
        assert got.split()[0] == str(len(body)).encode()
        s = srv.connect(20.0)
        try:
            s.sendall(b"GET /hdrs HTTP/1.1\r\nHost: t\r\nX-P: 1\r\n\r\n" + _hdrs_request(i))
            data = cgtest.read_until_close(s, timeout=20.0)
        finally:
            s.close()
        assert data.count(b"HTTP/1.1 200 OK") == 2, data
        assert b"HTTP_X_P=1" in data and data.count(b"HTTP_X_P") == 1, data
        assert _get(srv, _hdrs_request(i)) == _expected(i)


@pytest.mark.parametrize("threads", THREADS)
def test_many_connections_at_once(cg, threads):
    """More connections open together than the worker keeps once closed
    (64), three times over: every one answers with its own headers."""
    srv = cg(APP, args=["-k", "gthread", "--threads", str(threads)])
    n = 100
    for rnd in range(3):
        socks = []
        try:
            for i in range(n):
                socks.append(srv.connect(20.0))
            # all connected before any request: the worker holds them all
            for i, s in enumerate(socks):
                s.sendall(_hdrs_request(rnd * n + i, _extra(i)))
            results = [None] * n

            def read(i, s):
                results[i] = cgtest.read_until_close(s, timeout=30.0)

            ts = [threading.Thread(target=read, args=(i, s)) for i, s in enumerate(socks)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        finally:
            for s in socks:
                s.close()
        for i, data in enumerate(results):
            status, _, body = cgtest.parse_response(data)
            assert status.split()[1] == "200", (i, status)
            assert body.decode() == _expected(rnd * n + i, _extra(i)), i
