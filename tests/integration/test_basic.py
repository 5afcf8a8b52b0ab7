"""Basic behaviour of the server as Gunicorn 26.1 shows it: response framing
and headers, start-up options, exit codes, log lines, binds, access log."""

import base64
import json
import os
import re
import signal
import socket
import time
from email.utils import parsedate_to_datetime

import pytest
import requests

import cgtest
from cgtest import header, parse_response, split_head

LOG_PREFIX = r"^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}\] \[(\d+)\] \[(\w+)\] "
ACCESS_RE = (r'^127\.0\.0\.1 - (\S+) \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] '
             r'"(.*)" (\d{3}) (\S+) "(.*)" "(.*)"$')


def log_line(srv, level, text, timeout=5.0):
    """Wait for an error-log line `[date] [pid] [LEVEL] text`; returns the pid."""
    m = srv.wait_log(LOG_PREFIX.replace(r"\[(\w+)\]", r"\[" + level + r"\]") + re.escape(text) + "$",
                     timeout=timeout, source=lambda: srv.log().replace("\r", ""))
    return int(m[0].group(1))


def _multiline(pattern):
    return re.compile(pattern, re.M)


# -- responses --------------------------------------------------------------

def test_get_response_headers_in_gunicorn_order(cg):
    srv = cg("echo:app")
    status, headers, body = parse_response(srv.raw(b"GET /a/b?c=d HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status == "HTTP/1.1 200 OK"
    names = [k for k, _ in headers]
    assert names == ["Server", "Date", "Connection", "Content-Type", "Content-Length"]
    assert header(headers, "Server") == "gunicorn"
    # sync worker: never keep-alive, even for HTTP/1.1
    assert header(headers, "Connection") == "close"
    date = header(headers, "Date")
    assert re.fullmatch(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT", date), date
    assert abs(parsedate_to_datetime(date).timestamp() - time.time()) < 10
    got = json.loads(body)
    assert got["REQUEST_METHOD"] == "GET"
    assert got["PATH_INFO"] == "/a/b"
    assert got["QUERY_STRING"] == "c=d"
    assert got["RAW_URI"] == "/a/b?c=d"


def test_keep_alive_request_still_closed(cg):
    srv = cg("echo:app")
    data = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
    status, headers, _ = split_head(data)
    assert header(headers, "Connection") == "close"


def test_post_body_with_requests(cg):
    srv = cg("echo:app")
    payload = os.urandom(100000)
    r = requests.post(srv.url("/post"), data=payload, timeout=10,
                      headers={"Content-Type": "application/x-test"})
    assert r.status_code == 200
    got = r.json()
    assert base64.b64decode(got["body_b64"]) == payload
    assert got["headers"]["CONTENT_TYPE"] == "application/x-test"
    assert got["headers"]["CONTENT_LENGTH"] == str(len(payload))
    assert "HTTP_CONTENT_TYPE" not in got["headers"]
    assert "HTTP_CONTENT_LENGTH" not in got["headers"]


def test_duplicate_headers_joined_with_comma(cg):
    srv = cg("echo:app")
    data = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nX-Dup: a\r\nX-Dup: b, c\r\n\r\n")
    got = json.loads(parse_response(data)[2])
    assert got["headers"]["HTTP_X_DUP"] == "a,b, c"


def test_head_has_headers_but_no_body(cg):
    srv = cg("wsgiapp:app")
    get = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    _, get_headers, get_body = parse_response(get)
    assert get_body == b"hello from GET"
    data = srv.raw(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, rest = split_head(data)
    assert status == "HTTP/1.1 200 OK"
    assert header(headers, "Content-Length") == str(len(b"hello from HEAD"))
    assert rest == b""


def test_chunked_response_without_content_length(cg):
    srv = cg("wsgiapp:app")
    data = srv.raw(b"GET /write HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, rest = split_head(data)
    assert status == "HTTP/1.1 200 OK"
    assert [k for k, _ in headers] == ["Server", "Date", "Connection", "Transfer-Encoding",
                                       "Content-Type"]
    assert header(headers, "Transfer-Encoding") == "chunked"
    # chunk sizes in upper-case hex, one chunk per write, then the last chunk
    assert rest == (b"8\r\nwritten \r\nA\r\nby write()\r\nD\r\n and returned\r\n0\r\n\r\n")


def test_http10_request_gets_http10_status_line_and_no_chunking(cg):
    srv = cg("wsgiapp:app")
    data = srv.raw(b"GET /stream?mb=1 HTTP/1.0\r\n\r\n", timeout=20)
    status, headers, rest = split_head(data)
    assert status == "HTTP/1.0 200 OK"
    assert header(headers, "Transfer-Encoding") is None
    assert header(headers, "Connection") == "close"
    assert len(rest) == 1024 * 1024


def test_expect_100_continue(cg):
    srv = cg("echo:app")
    with srv.connect() as s:
        s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 5\r\n\r\n")
        assert cgtest.wait_readable(s, 5.0), "no 100 Continue before the body was sent"
        interim = s.recv(25)
        while len(interim) < 25 and cgtest.wait_readable(s, 2.0):
            more = s.recv(25 - len(interim))
            if not more:
                break
            interim += more
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        rest = cgtest.read_until_close(s)
    status, headers, body = parse_response(rest)
    assert status == "HTTP/1.1 200 OK"
    got = json.loads(body)
    assert base64.b64decode(got["body_b64"]) == b"hello"
    assert got["headers"]["HTTP_EXPECT"] == "100-continue"


def test_environ_basics(cg):
    srv = cg("echo:app")
    got = srv.get_json("/env")
    assert got["SERVER_SOFTWARE"] == "gunicorn/27.0.1"
    assert got["SERVER_NAME"] == "127.0.0.1"
    assert got["SERVER_PORT"] == str(srv.port)
    assert got["REMOTE_ADDR"] == "127.0.0.1"
    assert got["REMOTE_PORT"].isdigit()
    assert got["SCRIPT_NAME"] == ""
    assert got["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert got["wsgi.url_scheme"] == "http"
    assert got["wsgi.version"] == [1, 0]
    assert got["wsgi.multithread"] is False
    assert got["wsgi.multiprocess"] is False
    assert got["wsgi.run_once"] is False
    assert got["wsgi.input_terminated"] is True
    assert got["has_file_wrapper"] and got["errors_writable"]
    assert got["headers"] == {"HTTP_HOST": "t"}


def test_multiprocess_flag_with_two_workers(cg):
    srv = cg("echo:app", args=["-w", "2"])
    assert srv.get_json()["wsgi.multiprocess"] is True


def test_invalid_request_error_page(cg):
    srv = cg("echo:app")
    data = srv.raw(b"GET /foo FTP/1.1\r\n\r\n", half_close=True)
    mesg = "Invalid HTTP Version &#x27;Invalid HTTP Version: &#x27;FTP/1.1&#x27;&#x27;"
    page = ("<html>\n  <head>\n    <title>Bad Request</title>\n  </head>\n  <body>\n"
            "    <h1><p>Bad Request</p></h1>\n    %s\n  </body>\n</html>\n" % mesg).encode()
    assert data == (b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/html\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(page)) + page
    log_line(srv, "WARNING", "Invalid request from ip=127.0.0.1: Invalid HTTP Version: 'FTP/1.1'")


def test_app_exception_gives_500_and_traceback(cg):
    srv = cg("wsgiapp:app")
    data = srv.raw(b"GET /error HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = split_head(data)
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert [k for k, _ in headers] == ["Connection", "Content-Type", "Content-Length"]
    assert int(header(headers, "Content-Length")) == len(body) == 141
    assert b"<h1><p>Internal Server Error</p></h1>" in body
    log_line(srv, "ERROR", "Error handling request GET /error")
    srv.wait_log(r"Traceback \(most recent call last\):")
    srv.wait_log(r"RuntimeError: boom from the test app")
    # the worker survives an application exception
    assert srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 200 OK\r\n")


# -- application loading ------------------------------------------------------

@pytest.mark.timeout(60)
def test_import_error_exits_3_worker_failed_to_boot(run_cg):
    res = run_cg(["-b", "127.0.0.1:%d" % cgtest.free_port(), "broken_import:app"], timeout=40)
    assert res.returncode == 3, res.stderr
    assert re.search(LOG_PREFIX.replace(r"(\w+)", "ERROR") + r"Reason: Worker failed to boot\.$",
                     res.stderr, re.M), res.stderr
    assert "Shutting down: Master" in res.stderr
    assert "ModuleNotFoundError" in res.stderr or "ImportError" in res.stderr, res.stderr


@pytest.mark.timeout(60)
def test_missing_attribute_exits_4_app_failed_to_load(run_cg):
    res = run_cg(["-b", "127.0.0.1:%d" % cgtest.free_port(), "echo:no_such_app"], timeout=40)
    assert res.returncode == 4, res.stderr
    assert re.search(LOG_PREFIX.replace(r"(\w+)", "ERROR") + r"Reason: App failed to load\.$",
                     res.stderr, re.M), res.stderr
    assert "no_such_app" in res.stderr


@pytest.mark.timeout(60)
def test_not_callable_exits_4(run_cg):
    res = run_cg(["-b", "127.0.0.1:%d" % cgtest.free_port(), "factory:not_callable"], timeout=40)
    assert res.returncode == 4, res.stderr
    assert "App failed to load." in res.stderr


def test_check_config_ok(run_cg):
    res = run_cg(["--check-config", "echo:app"])
    assert res.returncode == 0, res.stderr
    assert "Booting worker" not in res.stderr


@pytest.mark.parametrize("app", ["echo:no_such_app", "broken_import:app"])
def test_check_config_failure(run_cg, app):
    res = run_cg(["--check-config", app])
    assert res.returncode == 1, res.stderr
    assert "Error while loading the application" in res.stderr + res.stdout


def test_no_app_module_is_a_usage_error(run_cg):
    res = run_cg([])
    assert res.returncode != 0
    assert "No application module specified." in res.stderr


def test_app_factory_call(cg):
    srv = cg("factory:create_app()")
    r = requests.get(srv.url(), timeout=10)
    assert r.status_code == 200 and r.text == "made by create_app"


def test_app_factory_with_arguments(cg):
    srv = cg("factory:factory('arg', key=1)")
    r = requests.get(srv.url(), timeout=10)
    assert r.status_code == 200 and r.text == "factory arg='arg' key=1"


def test_application_default_attribute(cg):
    srv = cg("echo")   # no ":attr" means "application"
    assert srv.get_json()["REQUEST_METHOD"] == "GET"


def test_chdir(cg, tmp_path):
    srv = cg("echo:app", args=["--chdir", cgtest.APPS_DIR], cwd=str(tmp_path))
    assert srv.get_json()["REQUEST_METHOD"] == "GET"


def test_pythonpath(cg, tmp_path):
    srv = cg("echo:app", args=["--pythonpath", cgtest.APPS_DIR], cwd=str(tmp_path))
    assert srv.get_json()["REQUEST_METHOD"] == "GET"


# -- binding ----------------------------------------------------------------

def test_unix_socket_bind(cg, tmp_path):
    path = os.path.join(str(tmp_path), "cg.sock")
    srv = cg("echo:app", bind=["unix:" + path])
    log_line(srv, "INFO", "Listening at: unix:%s (%d)" % (path, srv.pid))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        data = cgtest.exchange(s, b"GET /u HTTP/1.1\r\nHost: example.org:8080\r\n\r\n")
    status, _, body = parse_response(data)
    assert status == "HTTP/1.1 200 OK"
    got = json.loads(body)
    assert got["PATH_INFO"] == "/u"
    assert got["REMOTE_ADDR"] == ""
    assert got["SERVER_NAME"] == "example.org"
    assert got["SERVER_PORT"] == "8080"
    assert srv.stop() == 0
    assert not os.path.exists(path), "unix socket file left behind after a normal stop"


def test_two_binds(cg):
    p1, p2 = cgtest.free_port(), cgtest.free_port()
    while p2 == p1:
        p2 = cgtest.free_port()
    srv = cg("echo:app", bind=["127.0.0.1:%d" % p1, "127.0.0.1:%d" % p2])
    log_line(srv, "INFO", "Listening at: http://127.0.0.1:%d,http://127.0.0.1:%d (%d)"
             % (p1, p2, srv.pid))
    for p in (p1, p2):
        r = requests.get("http://127.0.0.1:%d/p" % p, timeout=10)
        assert r.status_code == 200
        assert r.json()["SERVER_PORT"] == str(p)


@pytest.mark.timeout(60)
def test_bind_failure_exits_1(run_cg):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        t0 = time.monotonic()
        res = run_cg(["-b", "127.0.0.1:%d" % port, "echo:app"], timeout=40)
        elapsed = time.monotonic() - t0
    assert res.returncode == 1, res.stderr
    addr = "('127.0.0.1', %d)" % port
    assert re.search(r"\[ERROR\] Connection in use: %s$" % re.escape(addr), res.stderr, re.M), res.stderr
    assert len(re.findall(r"\[ERROR\] Connection in use:", res.stderr)) == 5, res.stderr
    assert re.search(r"\[ERROR\] Can't connect to %s$" % re.escape(addr), res.stderr, re.M), res.stderr
    assert "Booting worker" not in res.stderr
    # five attempts one second apart
    assert 3.5 < elapsed < 20, elapsed


# -- logs -------------------------------------------------------------------

def test_access_log_default_format(cg):
    srv = cg("echo:app", args=["--access-logfile", "-"])
    auth = base64.b64encode(b"alice:secret").decode()
    data = srv.raw(("GET /x?y=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: ua/1.0\r\n"
                    "Referer: http://ref.example/\r\nAuthorization: Basic %s\r\n\r\n" % auth).encode())
    _, _, body = parse_response(data)
    srv.raw(b"POST /p HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi")
    m = srv.wait_log(ACCESS_RE, source=srv.stdout, count=2, timeout=5)
    lines = [x for x in srv.stdout().splitlines() if x.strip()]
    assert len(lines) == 2, lines
    m1 = re.match(ACCESS_RE, lines[0])
    assert m1, lines[0]
    assert m1.group(1) == "alice"
    assert m1.group(2) == "GET /x?y=1 HTTP/1.1"
    assert m1.group(3) == "200"
    assert m1.group(4) == str(len(body))
    assert m1.group(5) == "http://ref.example/"
    assert m1.group(6) == "ua/1.0"
    m2 = re.match(ACCESS_RE, lines[1])
    assert m2 and m2.group(1) == "-" and m2.group(2) == "POST /p HTTP/1.0"
    assert m2.group(5) == "-" and m2.group(6) == "-"
    assert m is not None
    # the access log does not go to the error log
    assert "GET /x?y=1" not in srv.log()


def test_startup_and_term_log_lines(cg):
    srv = cg("echo:app")
    master = srv.pid
    assert log_line(srv, "INFO", "Starting gunicorn 27.0.1") == master
    assert log_line(srv, "INFO", "Listening at: http://127.0.0.1:%d (%d)" % (srv.port, master)) == master
    assert log_line(srv, "INFO", "Using worker: sync") == master
    workers = srv.worker_pids()
    assert len(workers) == 1
    (wpid,) = workers
    assert log_line(srv, "INFO", "Booting worker with pid: %d" % wpid) == wpid
    # order: Starting, Listening, Using worker, Booting
    text = srv.log()
    order = [text.index(s) for s in ("Starting gunicorn", "Listening at:", "Using worker:",
                                     "Booting worker with pid")]
    assert order == sorted(order), text

    srv.send_signal(signal.SIGTERM)
    assert srv.wait_exit(15) == 0, srv.log()
    assert log_line(srv, "INFO", "Handling signal: term") == master
    assert log_line(srv, "INFO", "Worker exiting (pid: %d)" % wpid) == wpid
    assert log_line(srv, "INFO", "Shutting down: Master") == master


def test_every_error_log_line_has_gunicorn_format(cg):
    srv = cg("wsgiapp:app", args=["-w", "2"])
    srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert srv.stop() == 0
    line_re = re.compile(LOG_PREFIX + r".*$")
    for line in srv.log().splitlines():
        assert line_re.match(line), "not in Gunicorn's log format: %r" % line
