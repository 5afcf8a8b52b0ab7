"""Where cgunicorn's request parsing follows RFC 9112 (and, where noted,
Gunicorn 27's fixes of it; docs/compatibility.md, "HTTP/1.1 request
parsing"), checked on the real binary with the sync and the gthread worker:
control characters and raw non-ASCII bytes in the request-target, a
Transfer-Encoding not ending in chunked, OWS other than SP/HTAB around
codings, chunk extensions, one empty line before a request line, bare LF,
414 for a long request line, and a Content-Length that does not fit in 63
bits."""

import json
import re

import pytest

import cgtest
from cgtest import parse_response, split_head

WORKERS = {
    "sync": ["-w", "1"],
    "gthread": ["-w", "1", "-k", "gthread", "--threads", "2", "--keep-alive", "5"],
}


@pytest.fixture(scope="module", params=sorted(WORKERS))
def srv(request, cg_module):
    return cg_module("echo:app", args=WORKERS[request.param])


def error_page(data, code, reason, mesg):
    """Gunicorn's error response: status, headers, and the escaped message."""
    status, headers, body = split_head(data)
    assert status == "HTTP/1.1 %d %s" % (code, reason), (status, body[:300])
    assert ("Connection", "close") in headers
    assert re.search(r"\n    " + re.escape(mesg), body.decode("latin-1")), body


def echo(data):
    status, headers, body = parse_response(data)
    assert status.split()[1] == "200", (status, body[:300])
    return json.loads(body)


def responses(data):
    """Every response in data, as (status line, body)."""
    out = []
    while data:
        status, headers, rest = split_head(data)
        cl = int(dict((k.lower(), v) for k, v in headers)["content-length"])
        out.append((status, rest[:cl]))
        data = rest[cl:]
    return out


def get(srv, target):
    """A plain GET on its own connection (closed after, keep-alive or not)."""
    return echo(srv.raw(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))


def still_serving(srv):
    assert get(srv, b"/_after")["RAW_URI"] == "/_after"


# -- RFC 9112 3.2: no control characters in a request-target ---------------

@pytest.mark.parametrize("ctl", [0x00, 0x01, 0x09, 0x0a, 0x0b, 0x0d, 0x1b, 0x1f, 0x7f])
def test_control_character_in_target_is_400(srv, ctl):
    raw = b"GET /a" + bytes([ctl]) + b"b HTTP/1.1\r\nHost: t\r\n\r\n"
    error_page(srv.raw(raw, half_close=True), 400, "Bad Request",
               "Invalid Request Line &#x27;Invalid HTTP request line: ")
    still_serving(srv)


def test_forged_log_line_is_refused_and_logged_escaped(srv):
    raw = b'GET /x\r127.0.0.1 - - "GET /admin HTTP/1.1" 200 HTTP/1.1\r\nHost: t\r\n\r\n'
    error_page(srv.raw(raw, half_close=True), 400, "Bad Request",
               "Invalid Request Line &#x27;Invalid HTTP request line: ")
    srv.wait_log(re.escape("Invalid request from ip=127.0.0.1: Invalid HTTP request line: "
                           "'GET /x\\r127.0.0.1"))


def test_lf_in_request_line_is_a_bare_lf(srv):
    # Gunicorn 27 names the bare LF rather than the line it cut short
    raw = b'GET /x\n127.0.0.1 - - "GET /admin HTTP/1.1" 200 HTTP/1.1\r\nHost: t\r\n\r\n'
    error_page(srv.raw(raw, half_close=True), 400, "Bad Request",
               "Invalid Request Line &#x27;Invalid HTTP request line: "
               "&#x27;bare LF as line terminator&#x27;&#x27;")


def test_percent_encoded_controls_still_reach_the_app(srv):
    got = get(srv, b"/a%00%0d%0ab")
    assert got["RAW_URI"] == "/a%00%0d%0ab"
    assert got["PATH_INFO"] == "/a\x00\r\nb"


# -- RFC 9112 6.3 item 4: the final coding must be chunked -----------------

@pytest.mark.parametrize("coding", [b"identity", b"gzip", b"deflate", b"compress",
                                    b"chunked, gzip"])
def test_transfer_encoding_not_ending_in_chunked_is_400(srv, coding):
    raw = (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: " + coding
           + b"\r\nContent-Length: 5\r\n\r\nhello")
    error_page(srv.raw(raw, half_close=True), 400, "Bad Request",
               "Invalid HTTP Header: &#x27;TRANSFER-ENCODING&#x27;")
    still_serving(srv)


def test_transfer_encoding_ending_in_chunked_still_works(srv):
    raw = (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n"
           b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    got = echo(srv.raw(raw, half_close=True))
    assert got["body_b64"] == "aGVsbG8="


# -- RFC 9110 5.6.1: only SP and HTAB around list elements ------------------

@pytest.mark.parametrize("value", [b"\xa0chunked\xa0", b"chunked\x85", b"gzip,\xa0chunked"])
def test_non_ows_space_around_chunked_is_not_chunked(srv, value):
    raw = (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: " + value
           + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    error_page(srv.raw(raw, half_close=True), 501, "Bad Request", "Unsupported transfer coding: ")
    still_serving(srv)


def test_sp_htab_around_chunked_is_chunked(srv):
    raw = (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: \t chunked \t\r\n"
           b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert echo(srv.raw(raw, half_close=True))["body_b64"] == "aGVsbG8="


# -- RFC 9112 7.1.1: chunk extensions need a name and balanced quotes ------

@pytest.mark.parametrize("ext", [b";", b";=x", b"; ;a", b';a="open', b";a=", b";a b"])
def test_malformed_chunk_extension_is_400(srv, ext):
    raw = (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1" + ext
           + b"\r\nx\r\n0\r\n\r\n")
    # Gunicorn 27: a client error answered 400 (26 closed without a response)
    error_page(srv.raw(raw, half_close=True), 400, "Bad Request", "Invalid chunk extension: ")
    still_serving(srv)


@pytest.mark.parametrize("body,mesg", [
    (b"5\r\nhelloXX0\r\n\r\n", "Invalid chunk terminator is not &#x27;\\r\\n&#x27;: b&#x27;XX&#x27;"),
    (b"zz\r\nhello\r\n0\r\n\r\n", "Invalid chunk size: "),
    (b"+5\r\nhello\r\n0\r\n\r\n", "Invalid chunk size: "),
], ids=["terminator", "size", "sign"])
def test_broken_chunked_body_is_400(srv, body, mesg):
    # the app reads the body (echo): the error reaches it before any response
    raw = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    error_page(srv.raw(raw, half_close=True), 400, "Bad Request", mesg)
    still_serving(srv)


def test_wellformed_chunk_extensions_are_ignored(srv):
    raw = (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: close\r\n\r\n"
           b'2 ; a ; b = c ; q="x \\" y"\r\nhe\r\n3;z\r\nllo\r\n0;last\r\n\r\n')
    assert echo(srv.raw(raw, half_close=True))["body_b64"] == "aGVsbG8="


# -- RFC 9112 2.2: one empty line before a request line (Gunicorn 27) -----

def test_one_empty_line_before_request_line_is_ignored(srv):
    raw = b"\r\nGET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    assert echo(srv.raw(raw, half_close=True))["RAW_URI"] == "/x"


def test_empty_line_arriving_byte_by_byte(srv):
    raw = b"\r\nGET /y HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    got = echo(srv.raw(raw, pieces=[1, 1, 3, 5], half_close=True))
    assert got["RAW_URI"] == "/y"


@pytest.mark.parametrize("lines", [2, 3, 2048])
def test_a_second_empty_line_is_an_empty_request_line(srv, lines):
    # no half-close: the answer must not wait for more bytes
    raw = b"\r\n" * lines + b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    error_page(srv.raw(raw), 400, "Bad Request",
               "Invalid Request Line &#x27;Invalid HTTP request line: &#x27;&#x27;&#x27;")
    still_serving(srv)


def test_one_empty_line_then_close_gets_no_response(srv):
    assert srv.raw(b"\r\n", half_close=True) == b""
    still_serving(srv)


# -- RFC 9112 2.2: a bare LF is refused at once (Gunicorn 27) --------------

@pytest.mark.parametrize("raw", [
    b"GET / HTTP/1.1\nHost: t\n",                   # request line, no CRLF anywhere
    b"GET / HTTP/1.1\r\nHost: t\nX: 1\r\n",          # a header line, head unfinished
    b"GET / HTTP/1.1\r\nHost: t\n\n",                # the whole head ended by LFs
], ids=["request-line", "header", "head-end"])
def test_bare_lf_is_400_without_waiting(srv, raw):
    # No half-close and no CRLF CRLF: before Gunicorn 27 this waited for the
    # timeout; the answer must come from these bytes alone.
    data = srv.raw(raw)
    status, _, body = split_head(data)
    assert status == "HTTP/1.1 400 Bad Request", (status, body)
    assert b"bare LF as line terminator" in body
    still_serving(srv)


# -- RFC 9112 3.2 / RFC 3986 2.1: raw non-ASCII bytes in the target (Gunicorn 27)

@pytest.mark.parametrize("target", [b"/\xc3\xa0", b"/api/\xe9esource/456", b"/a?q=\xff",
                                    b"http://h/\x80"])
def test_raw_non_ascii_in_target_is_400(srv, target):
    raw = b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n"
    error_page(srv.raw(raw, half_close=True), 400, "Bad Request",
               "Invalid Request Line &#x27;Invalid HTTP request line: &#x27;GET ")
    still_serving(srv)


def test_percent_encoded_non_ascii_still_reaches_the_app(srv):
    got = get(srv, b"/%C3%A0?q=%FF")
    assert got["RAW_URI"] == "/%C3%A0?q=%FF"
    assert got["PATH_INFO"] == "/\xc3\xa0"  # PEP 3333: the bytes as latin-1


# -- RFC 9112 3: 414 for a request line over limit_request_line (Gunicorn 27)

@pytest.mark.parametrize("prefix", [b"", b"\r\n"], ids=["plain", "after-empty-line"])
def test_request_line_too_long_is_414(srv, prefix):
    line = b"GET /" + b"a" * 4090 + b" HTTP/1.1"  # 4104 > 4094
    error_page(srv.raw(prefix + line + b"\r\nHost: t\r\n\r\n"), 414, "URI Too Long",
               "Request Line is too large (4104 &gt; 4094)")
    still_serving(srv)


def test_request_line_at_the_limit_is_served(srv):
    target = b"/" + b"a" * (4094 - 14)  # "GET " + target + " HTTP/1.1" is 4094
    assert get(srv, target)["RAW_URI"] == target.decode()


@pytest.fixture(scope="module")
def gthread_srv(cg_module):
    """Keep-alive and pipelining need the gthread worker (sync closes after one)."""
    return cg_module("echo:app", args=WORKERS["gthread"])


def test_empty_line_between_pipelined_requests(gthread_srv):
    srv = gthread_srv
    raw = (b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx\r\n"
           b"POST /b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\ny\r\n0\r\n\r\n"
           b"\r\nGET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    got = responses(srv.raw(raw))
    assert [s for s, _ in got] == ["HTTP/1.1 200 OK"] * 3
    assert [json.loads(b)["RAW_URI"] for _, b in got] == ["/a", "/b", "/c"]
    assert [json.loads(b)["body_b64"] for _, b in got] == ["eA==", "eQ==", ""]


# -- RFC 9112 6.3 item 5: a Content-Length we cannot represent -------------

@pytest.mark.parametrize("cl", [b"9223372036854775808", b"18446744073709551615",
                                b"99999999999999999999999"])
def test_content_length_beyond_int64_is_400_before_the_body(srv, cl):
    # No body and no half-close: the answer must come from the head alone.
    raw = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: " + cl + b"\r\n\r\n"
    error_page(srv.raw(raw), 400, "Bad Request",
               "Invalid HTTP Header: &#x27;CONTENT-LENGTH&#x27;")
    still_serving(srv)


def test_content_length_int64_max_is_a_length(srv):
    # accepted as a length: the app reads what comes until EOF
    raw = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 9223372036854775807\r\n\r\nshort"
    assert echo(srv.raw(raw, half_close=True))["body_b64"] == "c2hvcnQ="


# -- RFC 9931 8: nothing after a CONNECT is served as a request (Gunicorn 27)

def test_connect_closes_the_connection(gthread_srv):
    raw = (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
           b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n")
    got = responses(gthread_srv.raw(raw))
    assert len(got) == 1 and json.loads(got[0][1])["REQUEST_METHOD"] == "CONNECT"
    status, headers, _ = split_head(gthread_srv.raw(raw))
    assert ("Connection", "close") in headers
    # other methods still keep the connection
    keep = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    assert len(responses(gthread_srv.raw(keep))) == 2
