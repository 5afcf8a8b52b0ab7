"""Gunicorn's request corpus (../shared/conformance/gunicorn-requests.json)
sent as raw bytes to a running server whose app echoes what it received.

Valid cases: the echoed request must match `expect` (only the first request
of pipelined cases: the sync worker closes after one response). Invalid
cases: Gunicorn's status/error page, or no response at all for body-framing
errors, and the worker must survive.
"""

import base64
import json
import re
import urllib.parse

import pytest

import cgtest
from cgtest import parse_response, split_head

# RFC 9112 exceptions: corpus cases whose expectation is Gunicorn's non-RFC
# behaviour. cgunicorn follows the RFC there (docs/compatibility.md, section
# "HTTP/1.1 request parsing"), so each is checked as an invalid case with the
# error named here. tests/unit/http/test_parser.c keeps the same list.
RFC9112_EXCEPTIONS = {
    ("valid", "009"): ("InvalidHeader",
                       "RFC 9112 6.3 item 4: Transfer-Encoding: identity does not end in chunked"),
    ("valid", "027"): ("InvalidRequestLine",
                       "RFC 9112 3.2: raw non-ASCII bytes in the request-target (Gunicorn 27 "
                       "moved this case to its invalid corpus)"),
}


def _as_tested(case):
    exc = RFC9112_EXCEPTIONS.get((case["group"], case["name"]))
    if exc is None:
        return case
    return dict(case, group="invalid", error=exc[0], name="%s-%s-rfc9112" % (
        case["group"], case["name"]))


CORPUS = cgtest.load_corpus()
assert all(any((c["group"], c["name"]) == key for c in CORPUS) for key in RFC9112_EXCEPTIONS), \
    "an RFC 9112 exception names no corpus case"
CASES = [_as_tested(c) for c in CORPUS]
VALID = [c for c in CASES if c["group"] == "valid"]
INVALID = [c for c in CASES if c["group"] == "invalid"]

# Gunicorn setting -> CLI flags (gunicorn-settings.json "cli").
FLAGS = {
    "limit_request_line": lambda v: ["--limit-request-line", str(v)],
    "limit_request_fields": lambda v: ["--limit-request-fields", str(v)],
    "limit_request_field_size": lambda v: ["--limit-request-field_size", str(v)],
    "permit_obsolete_folding": lambda v: ["--permit-obsolete-folding"] if v else [],
    "strip_header_spaces": lambda v: ["--strip-header-spaces"] if v else [],
    "permit_unconventional_http_method":
        lambda v: ["--permit-unconventional-http-method"] if v else [],
    "casefold_http_method": lambda v: ["--casefold-http-method"] if v else [],
    "forwarded_allow_ips": lambda v: ["--forwarded-allow-ips", str(v)],
    "header_map": lambda v: ["--header-map", str(v)],
    # --proxy-protocol takes an optional value: always give one, or it would
    # swallow the APP_MODULE argument. True means "auto" (validate_proxy_protocol).
    "proxy_protocol": lambda v: ["--proxy-protocol", "auto" if v is True else str(v)] if v else [],
}

# Exception -> (status, reason, start of the escaped message on the error page)
ERRORS = {
    "InvalidRequestLine": (400, "Bad Request", "Invalid Request Line &#x27;Invalid HTTP request line: "),
    "InvalidRequestMethod": (400, "Bad Request", "Invalid Method &#x27;Invalid HTTP method: "),
    "InvalidHTTPVersion": (400, "Bad Request", "Invalid HTTP Version &#x27;Invalid HTTP Version: "),
    "InvalidHeader": (400, "Bad Request", "Invalid HTTP Header: "),
    "InvalidHeaderName": (400, "Bad Request", "Invalid HTTP header name: "),
    "ObsoleteFolding": (400, "Bad Request", "Obsolete line folding is unacceptable: "),
    "LimitRequestLine": (414, "URI Too Long", "Request Line is too large ("),  # Gunicorn 27
    "LimitRequestHeaders": (431, "Request Header Fields Too Large", "Error parsing headers: &#x27;"),
    "InvalidSchemeHeaders": (400, "Bad Request", "Contradictory scheme headers"),
    "InvalidProxyLine": (400, "Bad Request", "&#x27;Invalid PROXY line: "),
    "ForbiddenProxyRequest": (403, "Forbidden", "Request forbidden"),
    "ExpectationFailed": (417, "Expectation Failed", "Unable to comply with expectation: "),
    "UnsupportedTransferCoding": (501, "Bad Request", "Unsupported transfer coding: "),
    # A broken chunked body: since Gunicorn 27 a client error answered 400
    # (before, the connection closed without a response).
    "InvalidChunkSize": (400, "Bad Request", "Invalid chunk size: "),
    "ChunkMissingTerminator": (400, "Bad Request", "Invalid chunk terminator is not "),
    "InvalidChunkExtension": (400, "Bad Request", "Invalid chunk extension: "),
}
# Premature EOF: Gunicorn answers nothing and just closes.
NO_RESPONSE = {"NoMoreData"}
# Of those, the ones raised while the app reads the body are logged (none now).
SOCKET_ERROR_LOGGED = NO_RESPONSE - {"NoMoreData"}
# How a build says a setting exists but is not implemented yet; anything
# else failing at start-up is a test failure, not a skip.
NOT_BUILT_RE = re.compile(r"not (yet )?(supported|implemented)|not yet", re.I)


def settings_key(case):
    return json.dumps(case["settings"], sort_keys=True)


def settings_args(settings):
    args = []
    for name, value in sorted(settings.items()):
        if name not in FLAGS:
            raise AssertionError("conformance case needs setting %r: no CLI mapping known" % name)
        args += FLAGS[name](value)
    return args


class Pool:
    """One echo server per distinct settings combination, started on first
    use, shared by the module. A non-default setting the binary refuses at
    start-up (not built yet) turns into a skip with the server's message."""

    def __init__(self, factory):
        self.factory = factory
        self.servers = {}

    def get(self, case):
        key = settings_key(case)
        if key not in self.servers:
            self.servers[key] = self._start(case["settings"])
        entry = self.servers[key]
        if isinstance(entry, str):
            pytest.skip(entry)
        if not entry.alive():
            pytest.fail("server for settings %s died earlier:\n%s" % (key, entry.log()))
        return entry

    def _start(self, settings):
        args = ["-w", "1"] + settings_args(settings)
        srv = self.factory("echo:app", args=args, start=False)
        try:
            srv.wait_ready()
        except AssertionError:
            if (settings and srv.returncode is not None and srv.returncode in (1, 2)
                    and NOT_BUILT_RE.search(srv.log())):
                reason = "settings %s not supported by this build: %s" % (
                    json.dumps(settings, sort_keys=True), _last_error_line(srv.log()))
                return reason
            raise
        srv.initial_pid = srv.get_json("/_pid")["pid"]
        return srv


def _last_error_line(log):
    lines = [x for x in log.strip().splitlines() if x.strip()]
    return lines[-1] if lines else "(no output)"


@pytest.fixture(scope="module")
def pool(cg_module):
    return Pool(cg_module)


def expected_environ_headers(exp_headers):
    """What environ should hold for the parser's header list: CONTENT-TYPE /
    CONTENT-LENGTH without HTTP_ (last one wins), the rest as HTTP_<NAME>
    with '-' -> '_' and duplicates joined with ','."""
    env = {}
    for name, value in exp_headers:
        if name == "CONTENT-TYPE":
            env["CONTENT_TYPE"] = value
            continue
        if name == "CONTENT-LENGTH":
            env["CONTENT_LENGTH"] = value
            continue
        key = "HTTP_" + name.replace("-", "_")
        env[key] = env[key] + "," + value if key in env else value
    return env


def expected_path_info(uri):
    """PATH_INFO as PEP 3333 defines it: the request path's bytes,
    percent-decoded, as a latin-1 "WSGI string". Gunicorn passes the
    latin-1-decoded str to unquote_to_bytes, which re-encodes it as UTF-8,
    so percent-decoded non-ASCII bytes would arrive doubly encoded; raw ones
    are refused since Gunicorn 27 (docs/compatibility.md)."""
    path = uri["path"]
    if uri["raw"].startswith("//"):
        # Gunicorn treats a leading "//" as part of an absolute path, not as
        # a netloc. The corpus converter split such targets with plain
        # urlsplit (case 100 says "/keeping_slashes"); Gunicorn 26.1 itself
        # gives PATH_INFO "///keeping_slashes" (checked by running it).
        path = re.split(r"[?#]", uri["raw"], maxsplit=1)[0]
    return urllib.parse.unquote_to_bytes(path.encode("latin-1")).decode("latin-1")


def check_echo(case, data):
    exp = case["expect"][0]
    status, headers, body = parse_response(data)
    assert status == "HTTP/1.1 200 OK" or status == "HTTP/1.0 200 OK", (status, body[:500])
    major, minor = exp["version"]
    assert status.startswith("HTTP/%d.%d " % (major, minor))
    got = json.loads(body)
    assert got["REQUEST_METHOD"] == exp["method"]
    assert got["RAW_URI"] == exp["uri"]["raw"]
    assert got["PATH_INFO"] == expected_path_info(exp["uri"])
    assert got["QUERY_STRING"] == exp["uri"]["query"]
    assert got["SERVER_PROTOCOL"] == "HTTP/%d.%d" % (major, minor)
    assert got["headers"] == expected_environ_headers(exp["headers"])
    assert base64.b64decode(got["body_b64"]) == base64.b64decode(exp["body_b64"])


def check_refusal(srv, case):
    """Send an invalid case to srv: the error page of its status, or no
    response at all (with the socket error logged where Gunicorn logs one).
    For the other workers' runs of the corpus (test_asgi.py, test_gevent.py)."""
    err = case["error"]
    before = len(srv.log())
    data = srv.raw(base64.b64decode(case["raw_b64"]), half_close=True)
    if err in NO_RESPONSE:
        assert data == b"", (err, data[:300])
        if err in SOCKET_ERROR_LOGGED:
            srv.wait_log(r"\[ERROR\] Socket error processing request\.",
                         source=lambda: srv.log()[before:])
    else:
        code, reason, mesg = ERRORS[err]
        status, headers, body = split_head(data)
        assert status == "HTTP/1.1 %d %s" % (code, reason), (status, body[:300])
        assert re.search(r"\n    " + re.escape(mesg), body.decode("latin-1"))


def split_points(raw):
    pts = {1, len(raw) // 2, len(raw) - 1}
    i = raw.find(b"\r\n")
    if i >= 0:
        pts.add(i + 1)
    j = raw.find(b"\r\n\r\n")
    if j >= 0:
        pts.add(j + 2)
        pts.add(j + 4)
    return sorted(p for p in pts if 0 < p < len(raw))


def ids(cases):
    return [c["name"] for c in cases]


@pytest.mark.parametrize("case", VALID, ids=ids(VALID))
def test_valid(pool, case):
    srv = pool.get(case)
    raw = base64.b64decode(case["raw_b64"])
    # Half-close after sending: case 099 announces more body than it
    # carries, and Gunicorn's parser hands the app what arrived before EOF.
    check_echo(case, srv.raw(raw, half_close=True))


@pytest.mark.parametrize("case", VALID, ids=ids(VALID))
def test_valid_split(pool, case):
    srv = pool.get(case)
    raw = base64.b64decode(case["raw_b64"])
    for p in split_points(raw):
        try:
            check_echo(case, srv.raw(raw, pieces=[p], delay=0.03, half_close=True))
        except AssertionError as e:
            raise AssertionError("split at byte %d of %d: %s" % (p, len(raw), e)) from e


@pytest.mark.parametrize("case", INVALID, ids=ids(INVALID))
def test_invalid(pool, case):
    srv = pool.get(case)
    raw = base64.b64decode(case["raw_b64"])
    err = case["error"]
    log_before = len(srv.log())
    data = srv.raw(raw, half_close=True)
    if err in NO_RESPONSE:
        assert data == b"", "%s: expected the connection closed without a response, got %r" % (
            err, data[:300])
        if err in SOCKET_ERROR_LOGGED:
            srv.wait_log(r"\[ERROR\] Socket error processing request\.",
                         source=lambda: srv.log()[log_before:])
    else:
        assert err in ERRORS, "no expected status known for %s" % err
        code, reason, mesg = ERRORS[err]
        status, headers, body = split_head(data)
        assert status == "HTTP/1.1 %d %s" % (code, reason), (status, body[:300])
        assert headers == [("Connection", "close"), ("Content-Type", "text/html"),
                           ("Content-Length", str(len(body)))]
        text = body.decode("latin-1")
        assert "<h1><p>%s</p></h1>" % reason in text
        assert re.search(r"\n    " + re.escape(mesg), text), text
    # the worker is still the same process and still serving
    assert srv.get_json("/_after")["pid"] == srv.initial_pid
    assert srv.alive()
