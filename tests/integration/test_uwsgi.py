"""--protocol uwsgi: the uwsgi binary protocol, from a raw client (exact
packets, malformed ones) and from nginx's uwsgi_pass."""

import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest
import requests

import cgtest


def packet(variables, body=b"", modifier1=0, datasize=None):
    data = b""
    for k, v in variables.items():
        kb, vb = k.encode("latin-1"), v.encode("latin-1")
        data += struct.pack("<H", len(kb)) + kb + struct.pack("<H", len(vb)) + vb
    size = len(data) if datasize is None else datasize
    return struct.pack("<BHB", modifier1, size, 0) + data + body


def request_vars(**extra):
    v = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": "", "SERVER_PROTOCOL":
         "HTTP/1.1", "REMOTE_ADDR": "203.0.113.9", "SERVER_NAME": "ignored"}
    v.update(extra)
    return v


def exchange(srv, data, keep=False):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(data)
    if keep:
        return s
    with s:
        return cgtest.read_until_close(s)


def read_response(s):
    """One Content-Length response from s, without waiting for a close."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    n = int(cgtest.header(cgtest.split_head(head + b"\r\n\r\n")[1], "content-length"))
    while len(body) < n:
        chunk = s.recv(65536)
        assert chunk, data
        body += chunk
    return head + b"\r\n\r\n" + body


def echo_json(resp):
    head, body = resp.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), resp
    return json.loads(body)


@pytest.fixture(params=["sync", "gthread"])
def srv(cg, request):
    return cg("echo:app", args=["--protocol", "uwsgi", "-k", request.param])


@pytest.mark.timeout(60)
def test_request_from_vars(srv):
    body = b"x=1&y=2"
    resp = exchange(srv, packet(request_vars(
        REQUEST_METHOD="POST", PATH_INFO="/a b/%2F", QUERY_STRING="q=1&r=%20",
        CONTENT_TYPE="application/x-www-form-urlencoded", CONTENT_LENGTH=str(len(body)),
        HTTP_HOST="example.com", HTTP_X_FORWARDED_FOR="198.51.100.1",
        HTTP_CONNECTION="close"), body))
    e = echo_json(resp)
    assert e["REQUEST_METHOD"] == "POST"
    assert e["RAW_URI"] == "/a b/%2F?q=1&r=%20"  # PATH_INFO?QUERY_STRING, as Gunicorn makes it
    assert e["PATH_INFO"] == "/a b//"             # and decoded again, as Gunicorn does
    assert e["QUERY_STRING"] == "q=1&r=%20"
    assert e["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert e["wsgi.url_scheme"] == "http"
    # REMOTE_ADDR and SERVER_NAME come from the connection, not the vars
    assert e["REMOTE_ADDR"] == "127.0.0.1"
    assert e["SERVER_NAME"] == "127.0.0.1"  # the listener's, as for HTTP
    assert base64.b64decode(e["body_b64"]) == body
    assert e["headers"] == {"HTTP_HOST": "example.com", "HTTP_X_FORWARDED_FOR": "198.51.100.1",
                            "HTTP_CONNECTION": "close",
                            "CONTENT_TYPE": "application/x-www-form-urlencoded",
                            "CONTENT_LENGTH": str(len(body))}


@pytest.mark.timeout(60)
def test_defaults_https_and_split_packets(srv):
    data = packet({"HTTPS": "on", "HTTP_CONNECTION": "close"})
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    with s:
        for i in range(len(data)):  # byte by byte
            s.sendall(data[i:i + 1])
        e = echo_json(cgtest.read_until_close(s))
    assert (e["REQUEST_METHOD"], e["RAW_URI"], e["PATH_INFO"]) == ("GET", "/", "/")
    assert e["wsgi.url_scheme"] == "https"


@pytest.mark.timeout(60)
def test_keep_alive_unless_connection_close(cg):
    srv = cg("echo:app", args=["--protocol", "uwsgi", "-k", "gthread"])
    s = exchange(srv, packet(request_vars(PATH_INFO="/one")), keep=True)
    with s:
        first = read_response(s)
        s.sendall(packet(request_vars(PATH_INFO="/two", HTTP_CONNECTION="close")))
        rest = cgtest.read_until_close(s)
    assert json.loads(first.split(b"\r\n\r\n", 1)[1])["PATH_INFO"] == "/one"
    assert echo_json(rest)["PATH_INFO"] == "/two"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("data, status, log", [
    (packet(request_vars(), modifier1=5), b"501 Not Implemented",
     "Unsupported uWSGI modifier1: 5"),
    (struct.pack("<BHB", 0, 4, 0) + b"\x09\x00ab", b"400 Bad Request",
     "Invalid uWSGI header: truncated key"),
    (struct.pack("<BHB", 0, 5, 0) + b"\x01\x00a\x05\x00", b"400 Bad Request",
     "Invalid uWSGI header: truncated value"),
    (struct.pack("<BHB", 0, 1, 0) + b"\x01", b"400 Bad Request",
     "Invalid uWSGI header: truncated key size"),
    (packet({"HTTP_X%d" % i: "v" for i in range(200)}), b"400 Bad Request",
     "Invalid uWSGI header: too many headers"),
    (struct.pack("<BHB", 0, 4004, 0) + b"\x00\x00\x00\x00" * 1001, b"400 Bad Request",
     "Invalid uWSGI header: too many variables"),
])
def test_malformed_packets(srv, data, status, log):
    resp = exchange(srv, data)
    assert resp.startswith(b"HTTP/1.1 " + status), resp
    srv.wait_log(r"Invalid request from ip=127\.0\.0\.1: " + log.replace(".", r"\."))
    # the worker is fine
    assert echo_json(exchange(srv, packet(request_vars(HTTP_CONNECTION="close"))))


@pytest.mark.timeout(60)
def test_plain_http_is_not_uwsgi(srv):
    resp = exchange(srv, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    # 'G' is modifier1 71
    assert resp.startswith(b"HTTP/1.1 501 Not Implemented"), resp


@pytest.mark.timeout(60)
def test_allow_list(cg, tmp_path):
    srv = cg("echo:app", args=["--protocol", "uwsgi", "--uwsgi-allow-from", "10.1.2.3"])
    resp = exchange(srv, packet(request_vars()))
    assert resp.startswith(b"HTTP/1.1 403 Forbidden"), resp
    srv.wait_log(r"Invalid request from ip=127\.0\.0\.1: uWSGI request from '127\.0\.0\.1' "
                 r"not allowed")
    # a unix socket has no address to check
    path = tmp_path / "u.sock"
    usrv = cg("echo:app", bind=["unix:%s" % path],
              args=["--protocol", "uwsgi", "--uwsgi-allow-from", "10.1.2.3"])
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(packet(request_vars(HTTP_CONNECTION="close")))
        assert echo_json(cgtest.read_until_close(s))["REMOTE_ADDR"] == ""
    assert usrv.alive()
    star = cg("echo:app", args=["--protocol", "uwsgi", "--uwsgi-allow-from", "*"])
    assert echo_json(exchange(star, packet(request_vars(HTTP_CONNECTION="close"))))


NGINX_CONF = """\
daemon off;
worker_processes 1;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log;
events { worker_connections 64; }
http {
    access_log off;
    # bodies and responses in memory: no temp files (the workers may not
    # be allowed to write into the test's directory)
    client_body_buffer_size 16m;
    client_max_body_size 16m;
    uwsgi_buffering off;
    client_body_temp_path %(dir)s/body;
    uwsgi_temp_path %(dir)s/uwsgi;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    scgi_temp_path %(dir)s/scgi;
    server {
        listen 127.0.0.1:%(port)d;
        location / {
            include /etc/nginx/uwsgi_params;
            uwsgi_pass 127.0.0.1:%(upstream)d;
        }
    }
}
"""


@pytest.fixture
def nginx(tmp_path):
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                    else None)
    if exe is None:
        pytest.fail("nginx is not installed (tools/deps.sh installs nginx-light)")
    procs = []

    def start(upstream):
        port = cgtest.free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(NGINX_CONF % {"dir": tmp_path, "port": port, "upstream": upstream})
        p = subprocess.Popen([exe, "-c", str(conf), "-p", str(tmp_path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(p)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return port
            except OSError:
                assert p.poll() is None, p.stderr.read().decode()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)

    yield start
    for p in procs:
        p.send_signal(signal.SIGQUIT)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_behind_nginx_uwsgi_pass(cg, nginx, worker):
    srv = cg("wsgiapp:app", args=["--protocol", "uwsgi", "-k", worker])
    port = nginx(srv.port)
    base = "http://127.0.0.1:%d" % port
    r = requests.get(base + "/", timeout=10)
    assert r.status_code == 200 and r.text == "hello from GET"
    assert requests.get(base + "/nope", timeout=10).status_code == 404
    payload = os.urandom(300000)
    r = requests.post(base + "/upload", data=payload, timeout=20)
    import hashlib
    assert r.text == "%d %s" % (len(payload), hashlib.sha256(payload).hexdigest())
    r = requests.get(base + "/stream?mb=2", timeout=20)
    assert len(r.content) == 2 * 1024 * 1024
    r = requests.get(base + "/file?size=500000", timeout=20)
    assert len(r.content) == 500000
    e = requests.get(base + "/pid", timeout=10)
    assert e.status_code == 200 and int(e.text) in srv.worker_pids()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_flask_behind_nginx_uwsgi_pass(cg, nginx, worker):
    """The issue's yardstick: a Flask app through nginx's uwsgi_pass, a GET,
    a POST of 10 MB and a streamed response."""
    import hashlib
    srv = cg("flaskapp:app", args=["--protocol", "uwsgi", "-k", worker])
    base = "http://127.0.0.1:%d" % nginx(srv.port)
    r = requests.get(base + "/hello/uwsgi", timeout=30)
    assert r.status_code == 200 and r.text == "Hello, uwsgi!"
    payload = os.urandom(10 << 20)
    r = requests.post(base + "/sha", data=payload, timeout=60)
    assert r.status_code == 200, r.text[:300]
    assert r.text == "%d %s" % (len(payload), hashlib.sha256(payload).hexdigest())
    r = requests.get(base + "/stream?mb=4", timeout=60)
    assert r.status_code == 200 and r.content == b"s" * (4 << 20)
    assert requests.get(base + "/nope", timeout=10).status_code == 404
