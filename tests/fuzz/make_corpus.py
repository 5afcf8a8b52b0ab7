#!/usr/bin/python3
"""Write the seed corpus of the fuzz targets, one folder per target.

usage: make_corpus.py OUTDIR [JSON]

The seeds are written out from this file alone, so a fresh clone fuzzes from
the same start everywhere (CI included). Given JSON, a request corpus such as
../shared/conformance/gunicorn-requests.json, its cases are added as well.

OUTDIR/parser/   fuzz_parser: two settings bytes, then a connection's bytes
OUTDIR/chunked/  fuzz_chunked: one split byte, then a chunked body
OUTDIR/proxy/    fuzz_proxy: one mode byte, then a connection's first bytes
OUTDIR/websocket/ fuzz_websocket: a mode/read-size byte, a limit byte, then a
                 client's frames (or a Sec-WebSocket-Extensions value)
OUTDIR/uwsgi/    fuzz_uwsgi: a read-size/table byte, then uwsgi packets
OUTDIR/ctl/      fuzz_ctl: control socket frames, as a client sends them
OUTDIR/h2/       fuzz_h2: a read-size/serving byte, then a client's HTTP/2
                 frames after the connection preface
"""
import base64
import json
import os
import struct
import sys
import zlib

# fuzz_parser's first byte: 8 obs-fold, 16 strip spaces, 32 unconventional
# method, 128 trusted peer; second byte: low 6 bits read size - 1, top 2 bits
# the header map and the PROXY mode (3: auto).
TRUSTED = 128
WHOLE = 0x3F
PROXY_AUTO = 0xC0

REQUESTS = {
    # valid
    "get": b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "get_query": b"GET /a/b?c=d&e=f#frag HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
    "get_absolute": b"GET http://example.com:8080/p?q HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "options_star": b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    "connect": b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    "head_http10": b"HEAD /x HTTP/1.0\r\n\r\n",
    "http10_keepalive": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                        b"GET /2 HTTP/1.0\r\n\r\n",
    "post_length": b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                   b"Content-Length: 11\r\n\r\nhello world",
    "post_empty": b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    "post_chunked": b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n6;ext=1;q=\"a;b\"\r\n world\r\n0\r\n\r\n",
    "chunked_trailers": b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
                        b"A\r\n0123456789\r\n0\r\nX-Sum: 45\r\n\r\n",
    "gzip_chunked": b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "expect_100": b"PUT /f HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 3\r\n\r\nabc",
    "pipelined": b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\n"
                 b"okGET /3 HTTP/1.1\r\nConnection: close\r\n\r\n",
    "upgrade": b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Version: 13\r\n\r\n",
    "forwarded": b"GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Ssl: on\r\n"
                 b"SCRIPT_NAME: /app\r\nPATH_INFO: /x\r\n\r\n",
    "obs_fold": b"GET / HTTP/1.1\r\nX-Long: a\r\n  b\r\n\tc\r\n\r\n",
    "many_headers": b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: %d\r\n" % (i, i) for i in range(20))
                    + b"\r\n",
    # invalid
    "cl_and_te": b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"0\r\n\r\n",
    "cl_twice": b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    "cl_plus": b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello",
    "cl_underscore": b"POST / HTTP/1.1\r\nContent-Length: 1_0\r\n\r\n0123456789",
    "te_chunked_twice": b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    "te_identity": b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
    "te_http10": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "chunk_bad_size": b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n",
    "chunk_no_crlf": b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX0\r\n\r\n",
    "chunk_bare_lf": b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
    "expect_other": b"GET / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n",
    "bad_version": b"GET / HTTP/1.10\r\n\r\n",
    "version_09": b"GET / HTTP/0.9\r\n\r\n",
    "lower_method": b"get / HTTP/1.1\r\n\r\n",
    "bare_cr": b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
    "bare_lf": b"GET / HTTP/1.1\nHost: x\n\n",
    "space_before_colon": b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    "nul_in_value": b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
    "underscore_name": b"GET / HTTP/1.1\r\nX_Forwarded_For: 1.2.3.4\r\n\r\n",
    "no_version": b"GET /\r\n\r\n",
    "long_line": b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n",
}

CHUNKED = {
    "simple": b"5\r\nhello\r\n0\r\n\r\n",
    "hex_upper": b"A\r\n0123456789\r\nf\r\n0123456789abcde\r\n0\r\n\r\n",
    "extensions": b"3;a=b;c\r\nabc\r\n2;name=\"q;uoted\"\r\nde\r\n0;last\r\n\r\n",
    "trailers": b"1\r\nx\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n",
    "zero_padded": b"0005\r\nhello\r\n000\r\n\r\n",
    "followed": b"2\r\nok\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    "bad_size": b"zz\r\nhello\r\n0\r\n\r\n",
    "huge_size": b"ffffffffffffffffff\r\nx\r\n",
    "missing_terminator": b"3\r\nabcd\r\n0\r\n\r\n",
    "space_before_ext": b"3 ;x\r\nabc\r\n0\r\n\r\n",
    "bare_lf": b"3\nabc\n0\n\n",
    "truncated": b"10\r\nabc",
}

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(ver_cmd, fam_proto, addr, extra=b"", length=None):
    body = addr + extra
    n = len(body) if length is None else length
    return V2_SIG + bytes([ver_cmd, fam_proto]) + struct.pack("!H", n) + body


IP4 = bytes([192, 168, 0, 1, 10, 0, 0, 2]) + struct.pack("!HH", 56324, 443)
IP6 = (bytes.fromhex("20010db8000000000000000000000001")
       + bytes.fromhex("00000000000000000000ffff0a000002") + struct.pack("!HH", 1, 65535))
TLV = b"\x04\x00\x05hello" + b"\x20\x00\x05\x01\x00\x00\x00\x00"

# (mode byte, bytes): mode byte bits 0-1 mode (1 v1, 2 v2, 3 auto), bit 2
# peer not allowed, bits 3-7 read size - 1.
V1, V2, AUTO, FORBID = 1, 2, 3, 4
WHOLE_READ = 31 << 3
REQ = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
PROXY = {
    # v1, valid
    "v1_tcp4": (AUTO, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n" + REQ),
    "v1_tcp6": (V1, b"PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n" + REQ),
    "v1_py_int": (AUTO | 8, b"PROXY TCP4 1.2.3.4 5.6.7.8 0_8_0 \t0443\r\n"),
    # v1, invalid
    "v1_unknown": (AUTO, b"PROXY UNKNOWN\r\n" + REQ),
    "v1_udp": (AUTO, b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"),
    "v1_fields_missing": (V1, b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n"),
    "v1_fields_extra": (V1, b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 x\r\n"),
    "v1_double_space": (V1, b"PROXY TCP4  1.2.3.4 5.6.7.8 80 443\r\n"),
    "v1_bad_ip": (AUTO, b"PROXY TCP4 256.1.1.1 5.6.7.8 80 443\r\n"),
    "v1_ip6_as_4": (AUTO, b"PROXY TCP4 ::1 ::1 80 443\r\n"),
    "v1_port_range": (AUTO, b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 443\r\n"),
    "v1_port_neg": (AUTO, b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 443\r\n"),
    "v1_lf_only": (AUTO, b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\n" + REQ),
    "v1_no_crlf": (AUTO | 8, b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443"),
    "v1_too_long": (AUTO | WHOLE_READ, b"PROXY TCP4 1.2.3.4 5.6.7.8 80 " + b"4" * 560 + b"\r\n"),
    # exactly the longest line, read one byte at a time (its verdict once
    # depended on a read ending between CR and LF)
    "v1_longest_split": (AUTO, b"PROXY TCP4 1.2.3.4 5.6.7.8 80 " + b"0" * 503 + b"443\r\n" + REQ),
    "v1_forbidden": (AUTO | FORBID, b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\r\n"),
    "v1_in_v2_mode": (V2, b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\r\n" + REQ),
    # v2, valid
    "v2_tcp4": (AUTO, v2(0x21, 0x11, IP4) + REQ),
    "v2_tcp6": (V2, v2(0x21, 0x21, IP6) + REQ),
    "v2_tlvs": (AUTO, v2(0x21, 0x11, IP4, TLV)),
    "v2_local": (AUTO, v2(0x20, 0x00, b"") + REQ),
    "v2_local_addr": (V2 | 16, v2(0x20, 0x11, IP4)),
    "v2_unspec": (AUTO, v2(0x21, 0x01, b"")),
    # v2, invalid
    "v2_version1": (AUTO, v2(0x11, 0x11, IP4)),
    "v2_command2": (AUTO, v2(0x22, 0x11, IP4)),
    "v2_udp": (AUTO, v2(0x21, 0x12, IP4)),
    "v2_unix": (AUTO, v2(0x21, 0x31, b"/a".ljust(216, b"\0"))),
    "v2_family4": (AUTO, v2(0x21, 0x41, IP4)),
    "v2_short_ip4": (AUTO, v2(0x21, 0x11, IP4[:8])),
    "v2_short_ip6": (AUTO, v2(0x21, 0x21, IP6[:20])),
    "v2_truncated": (AUTO, v2(0x21, 0x11, IP4[:6], length=12)),
    "v2_forbidden": (V2 | FORBID, v2(0x21, 0x11, IP4)),
    "v2_in_v1_mode": (V1, v2(0x21, 0x11, IP4) + REQ),
    # no header at all
    "plain_request": (AUTO, REQ),
    "short": (AUTO, b"PROXY"),
    "off": (0, b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\r\n"),
}


WS_MASK = bytes([0x37, 0xFA, 0x21, 0x3D])  # RFC 6455 5.7's masking key


def ws(b0, payload, form=None):
    """A masked client frame with first byte b0 (FIN, RSV1, opcode)."""
    n = len(payload)
    form = form or (0 if n < 126 else 126 if n < 65536 else 127)
    if form == 0:
        head = bytes([b0, 0x80 | n])
    elif form == 126:
        head = bytes([b0, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, 0x80 | 127]) + struct.pack("!Q", n)
    return head + WS_MASK + bytes(c ^ WS_MASK[i % 4] for i, c in enumerate(payload))


# (first byte, limit byte, bytes): first byte bits 0-1 mode (0 frames, 1
# deflate, 2 deflate without client context takeover, 3 an extensions
# header), bits 2-5 read size - 1 for the second pass; limit = byte * 64.
WS_PLAIN, WS_DEFLATE, WS_NCT, WS_EXT = 0, 1, 2, 3
def deflated(data, wbits=10):
    """What a client sends for data: raw deflate, sync flush, tail removed."""
    c = zlib.compressobj(wbits=-wbits)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


HELLO_Z = b"\xf2\x48\xcd\xc9\xc9\x07\x00"
WEBSOCKET = {
    "hello": (WS_PLAIN | 4, 4, ws(0x81, b"Hello")),
    "fragmented_ping": (WS_PLAIN | 8, 4, ws(0x01, b"Hel") + ws(0x89, b"ping") + ws(0x80, b"lo")),
    "binary_256": (WS_PLAIN | 60, 16, ws(0x82, bytes(range(256)))),
    "binary_len64": (WS_PLAIN, 16, ws(0x82, b"abc", form=127)),
    "close": (WS_PLAIN, 1, ws(0x88, b"\x03\xe8bye")),
    "close_empty": (WS_PLAIN, 1, ws(0x88, b"")),
    "close_bad_code": (WS_PLAIN, 1, ws(0x88, b"\x03\xed")),
    "pong": (WS_PLAIN, 1, ws(0x8A, b"Hello")),
    "utf8_split": (WS_PLAIN | 4, 1, ws(0x01, b"\xe2\x82") + ws(0x80, b"\xac")),
    "utf8_bad": (WS_PLAIN, 1, ws(0x81, b"\xed\xa0\x80")),
    "unmasked": (WS_PLAIN, 1, b"\x81\x05Hello"),
    "too_big": (WS_PLAIN, 1, ws(0x82, b"x" * 65)),
    "deflate_hello": (WS_DEFLATE | 4, 1, ws(0xC1, HELLO_Z)),
    "deflate_takeover": (WS_DEFLATE, 1, ws(0xC1, HELLO_Z) + ws(0xC1, b"\xf2\x00\x11\x00\x00")),
    "deflate_fragmented": (WS_DEFLATE | 8, 1, ws(0x41, HELLO_Z[:3]) + ws(0x80, HELLO_Z[3:])),
    "deflate_stored": (WS_NCT, 1, ws(0xC1, b"\x00\x05\x00\xfa\xffHello\x00")),
    "deflate_bfinal": (WS_NCT, 1, ws(0xC1, b"\xf3\x48\xcd\xc9\xc9\x07\x00") + ws(0xC1, HELLO_Z)),
    "deflate_bomb": (WS_DEFLATE, 1, ws(0xC2, deflated(bytes(100000)))),
    "ext_browser": (WS_EXT, 0, b"permessage-deflate; client_max_window_bits"),
    "ext_full": (WS_EXT, 0, b"x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover;"
                            b" client_no_context_takeover; server_max_window_bits=10;"
                            b' client_max_window_bits="9"'),
    "ext_bad": (WS_EXT, 1, b"permessage-deflate; server_max_window_bits=16, permessage-deflate; a=\"b"),
}


def write(out, sub, name, data):
    with open(os.path.join(out, sub, name), "wb") as fp:
        fp.write(data)


def head_end(raw):
    end = raw.find(b"\r\n\r\n")
    return end + 4 if end >= 0 else -1


def add_request(out, name, raw, f0, proxy=False):
    f1 = WHOLE | (PROXY_AUTO if proxy else 0)
    write(out, "parser", name, bytes([f0, f1]) + raw)
    write(out, "parser", name + "_split", bytes([f0, f1 & 0xC0]) + raw)  # one byte per read
    end = head_end(raw)
    if end > 0 and b"chunked" in raw[:end].lower():
        write(out, "chunked", "req_" + name, bytes([5]) + raw[end:])


def uwsgi_packet(variables, body=b"", modifier1=0):
    data = b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
                    for k, v in variables)
    return struct.pack("<BHB", modifier1, len(data), 0) + data + body


UWSGI = {
    "get": uwsgi_packet([(b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", b"/a/b"),
                         (b"QUERY_STRING", b"x=1"), (b"HTTP_HOST", b"example.com"),
                         (b"HTTP_X_FORWARDED_FOR", b"1.2.3.4"), (b"HTTPS", b"on")]),
    "post": uwsgi_packet([(b"REQUEST_METHOD", b"POST"), (b"CONTENT_TYPE", b"text/plain"),
                          (b"CONTENT_LENGTH", b" +1_0 "), (b"HTTP_CONNECTION", b"close")],
                         b"0123456789"),
    "dup": uwsgi_packet([(b"HTTP_A", b"1"), (b"HTTP_A", b"2"), (b"wsgi.url_scheme", b"https")]),
    "empty": uwsgi_packet([]),
    "modifier": uwsgi_packet([(b"PATH_INFO", b"/")], modifier1=5),
    "truncated": struct.pack("<BHB", 0, 9, 0) + b"\x05\x00HTTP_\x09",
}


def ctl_frame(payload):
    if not isinstance(payload, bytes):
        payload = json.dumps(payload).encode()
    return struct.pack(">I", len(payload)) + payload


CTL = {
    "show_workers": ctl_frame({"id": 1, "command": "show workers", "args": []}),
    "worker_add": ctl_frame({"id": 2, "command": "worker add", "args": [2]}),
    "args_kinds": ctl_frame({"id": "x", "command": "x", "args": ["a b", True, None, -1.5e3]}),
    "shlex": ctl_frame({"command": "show \"wor\\\"kers\" 'a\\b' c\\ d ''"}),
    "escapes": ctl_frame(b'{"command": "\\u0073how \\ud83d\\ude00", "id": {"k": [1, 2.5e-3]}}'),
    "pipelined": ctl_frame({"id": 1, "command": "help"}) + ctl_frame({"id": 2, "command": "reload"}),
    "garbage": ctl_frame(b"not json!"),
    "too_large": struct.pack(">I", 16 * 1024 * 1024 + 1) + b"xxxx",
    "half": struct.pack(">I", 100) + b'{"id": 1, "comm',
}


def h2_frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def hpack_literal(headers):
    """Literal fields without indexing, new names, no Huffman (RFC 7541
    section 6.2.2); names and values under 127 bytes."""
    out = b""
    for n, v in headers:
        out += b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v
    return out


def h2_request(sid, method=b"GET", path=b"/", extra=(), end=True):
    block = hpack_literal([(b":method", method), (b":path", path), (b":scheme", b"https"),
                           (b":authority", b"example.com")] + list(extra))
    return h2_frame(1, 0x4 | (0x1 if end else 0), sid, block)  # HEADERS, END_HEADERS


H2_SETTINGS = h2_frame(4, 0, 0, struct.pack(">HI", 4, 65535) + struct.pack(">HI", 3, 100))
H2 = {
    "get": H2_SETTINGS + h2_request(1),
    "two_gets": H2_SETTINGS + h2_request(1) + h2_request(3, path=b"/b?x=1"),
    "post": H2_SETTINGS + h2_request(1, b"POST", b"/up", [(b"content-length", b"5")], end=False)
            + h2_frame(0, 0x1, 1, b"hello"),
    "post_nolen": H2_SETTINGS + h2_request(1, b"PUT", b"/u", end=False)
                  + h2_frame(0, 0, 1, b"abc") + h2_frame(0, 0x1, 1, b"def"),
    "trailers": H2_SETTINGS + h2_request(1, b"POST", b"/t", end=False) + h2_frame(0, 0, 1, b"x")
                + h2_frame(1, 0x5, 1, hpack_literal([(b"x-trailer", b"1")])),
    "rapid_reset": H2_SETTINGS + b"".join(h2_request(i) + h2_frame(3, 0, i, struct.pack(">I", 8))
                                          for i in range(1, 60, 2)),
    "continuation": H2_SETTINGS + h2_frame(1, 0x1, 1, hpack_literal([(b":method", b"GET")]))
                    + h2_frame(9, 0, 1, hpack_literal([(b":path", b"/"), (b":scheme", b"http")]))
                    + h2_frame(9, 0x4, 1, hpack_literal([(b":authority", b"x")])),
    "ping_window": H2_SETTINGS + h2_frame(6, 0, 0, b"12345678") + h2_frame(8, 0, 0, struct.pack(">I", 1000))
                   + h2_request(1) + h2_frame(8, 0, 1, struct.pack(">I", 5000)),
    "priority_goaway": H2_SETTINGS + h2_frame(2, 0, 3, struct.pack(">IB", 1, 15)) + h2_request(1)
                       + h2_frame(7, 0, 0, struct.pack(">II", 1, 0)),
    "settings_ack": H2_SETTINGS + h2_frame(4, 1, 0) + h2_request(1, extra=[(b"cookie", b"a=1"), (b"cookie", b"b=2")]),
    "big_header": H2_SETTINGS + h2_request(1, extra=[(b"x-big", b"a" * 120)] * 40),
    "bad_header": H2_SETTINGS + h2_request(1, extra=[(b"Connection", b"close")]),
}


def main():
    out = sys.argv[1]
    for sub in ("parser", "chunked", "proxy", "websocket", "uwsgi", "ctl", "h2"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    for name, raw in REQUESTS.items():
        add_request(out, name, raw, TRUSTED | (8 if name == "obs_fold" else 0))
    for name, (mode, raw) in PROXY.items():
        write(out, "proxy", name, bytes([mode]) + raw)
        if mode & 3 == AUTO and not mode & FORBID:
            add_request(out, "proxy_" + name, raw, TRUSTED, proxy=True)
    for name, (mode, limit, raw) in WEBSOCKET.items():
        write(out, "websocket", name, bytes([mode, limit]) + raw)
    for name, raw in UWSGI.items():
        write(out, "uwsgi", name, bytes([255]) + raw)
        write(out, "uwsgi", name + "_split", bytes([2]) + raw)
    for name, raw in CTL.items():
        write(out, "ctl", name, raw)
    for name, frames in H2.items():
        write(out, "h2", name, bytes([0x3F]) + frames)
        write(out, "h2", name + "_split", bytes([0x40 | 6]) + frames)
        write(out, "h2", name + "_fail", bytes([0x80 | 0x3F]) + frames)
    for name, body in CHUNKED.items():
        write(out, "chunked", name, bytes([0]) + body)
        write(out, "chunked", name + "_split", bytes([7]) + body)
    if len(sys.argv) > 2:
        with open(sys.argv[2], encoding="utf-8") as fp:
            cases = json.load(fp)["cases"]
        for c in cases:
            st = c.get("settings", {})
            f0 = TRUSTED
            f0 |= 8 if st.get("permit_obsolete_folding") else 0
            f0 |= 16 if st.get("strip_header_spaces") else 0
            f0 |= 32 if st.get("permit_unconventional_http_method") else 0
            add_request(out, "%s_%s" % (c["group"], c["name"]), base64.b64decode(c["raw_b64"]),
                        f0, proxy=bool(st.get("proxy_protocol")))


if __name__ == "__main__":
    main()
