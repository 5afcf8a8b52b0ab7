"""WSGI protocol through wsgiref.validate: any slip by the server in environ,
wsgi.input, write(), exc_info or iterable handling becomes an
AssertionError in the app (-> 500)."""

import hashlib
import os
import socket

import pytest
import requests

import cgtest
from cgtest import header, parse_response, split_head


@pytest.fixture(scope="module")
def srv(cg_module):
    return cg_module("wsgiapp:app", args=["-w", "2"])


def test_get(srv):
    r = requests.get(srv.url("/"), timeout=10)
    assert r.status_code == 200
    assert r.text == "hello from GET"


def test_post_read_in_pieces(srv):
    payload = os.urandom(300001)
    r = requests.post(srv.url("/upload"), data=payload, timeout=20)
    assert r.status_code == 200, r.text
    assert r.text == "%d %s" % (len(payload), hashlib.sha256(payload).hexdigest())


def test_post_lines(srv):
    payload = b"".join(b"line %d\n" % i for i in range(5000))
    r = requests.post(srv.url("/upload"), data=payload, timeout=20)
    assert r.text == "%d %s" % (len(payload), hashlib.sha256(payload).hexdigest())


def test_chunked_upload(srv):
    payload = os.urandom(200000)

    def gen():
        for i in range(0, len(payload), 7001):
            yield payload[i:i + 7001]
    r = requests.post(srv.url("/upload"), data=gen(), timeout=20)
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.status_code == 200, r.text
    assert r.text == "%d %s" % (len(payload), hashlib.sha256(payload).hexdigest())


def test_empty_post(srv):
    r = requests.post(srv.url("/upload"), data=b"", timeout=10)
    assert r.text == "0 %s" % hashlib.sha256(b"").hexdigest()


def test_head(srv):
    data = srv.raw(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, rest = split_head(data)
    assert status == "HTTP/1.1 200 OK"
    assert header(headers, "Content-Length") == "15"
    assert rest == b""


@pytest.mark.timeout(90)
def test_streamed_50mb_response(srv):
    total = 0
    h = hashlib.sha256()
    with requests.get(srv.url("/stream?mb=50"), stream=True, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers.get("Transfer-Encoding") == "chunked"
        for chunk in r.iter_content(1 << 20):
            total += len(chunk)
            h.update(chunk)
    assert total == 50 * 1024 * 1024
    block = bytes(range(256)) * 256
    expect = hashlib.sha256()
    for _ in range(800):
        expect.update(block)
    assert h.hexdigest() == expect.hexdigest()


def test_file_wrapper(srv):
    size = 1000003
    r = requests.get(srv.url("/file?size=%d" % size), timeout=20)
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(size)
    assert r.content == bytes((i * 7 + 3) % 251 for i in range(size))


def test_write_callable(srv):
    r = requests.get(srv.url("/write"), timeout=10)
    assert r.status_code == 200
    assert r.text == "written by write() and returned"


def test_exc_info_replaces_unsent_headers(srv):
    r = requests.get(srv.url("/exc_info"), timeout=10)
    assert r.status_code == 503
    assert r.text == "recovered via exc_info"


def test_app_error_is_500(srv):
    r = requests.get(srv.url("/error"), timeout=10)
    assert r.status_code == 500


def test_http10_keeps_body_until_close(srv):
    data = srv.raw(b"GET /write HTTP/1.0\r\n\r\n")
    status, headers, body = parse_response(data)
    assert status == "HTTP/1.0 200 OK"
    assert body == b"written by write() and returned"


def test_client_gone_mid_stream_does_not_kill_worker(srv):
    before = srv.worker_pids()
    with srv.connect() as s:
        s.sendall(b"GET /stream?mb=50 HTTP/1.1\r\nHost: x\r\n\r\n")
        got = 0
        while got < 1 << 20:
            b = s.recv(65536)
            assert b
            got += len(b)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # the workers that served it are still the same processes, and serve
    for _ in range(4):
        assert requests.get(srv.url("/"), timeout=10).status_code == 200
    assert srv.worker_pids() == before
    assert cgtest.sanitizer_lines(srv.log()) == []
