/*
 * test_errors.c - exact texts (str(exc)) and error pages (util.write_error)
 * of Gunicorn, plus the PROXY protocol parser, the date and a few parser
 * details the corpus does not cover. The expected bytes were produced with
 * Python's own repr() and html.escape() applied to Gunicorn's formats.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "src/http/http.h"

typedef struct expect_err {
    const char *id, *text, *page;
} expect_err_t;

static const expect_err_t expected[] = {
    {"line",
     "Invalid HTTP request line: 'GET HTTP/1.1'",
     "HTTP/1.1 400 Bad Request\x0d""\x0a""Connection: close\x0d""\x0a""Content-Type: text/html\x0d""\x0a""Content-Length: 205\x0d""\x0a""\x0d""\x0a""<html>\x0a""  <head>\x0a""    <title>Bad Request</title>\x0a""  </head>\x0a""  <body>\x0a""    <h1><p>Bad Request</p></h1>\x0a""    Invalid Request Line &#x27;Invalid HTTP request line: &#x27;GET HTTP/1.1&#x27;&#x27;\x0a""  </body>\x0a""</html>\x0a"""},
    {"lrh",
     "max buffer headers",
     "HTTP/1.1 431 Request Header Fields Too Large\x0d""\x0a""Connection: close\x0d""\x0a""Content-Type: text/html\x0d""\x0a""Content-Length: 214\x0d""\x0a""\x0d""\x0a""<html>\x0a""  <head>\x0a""    <title>Request Header Fields Too Large</title>\x0a""  </head>\x0a""  <body>\x0a""    <h1><p>Request Header Fields Too Large</p></h1>\x0a""    Error parsing headers: &#x27;max buffer headers&#x27;\x0a""  </body>\x0a""</html>\x0a"""},
    {"ver",
     "Invalid HTTP Version: (2, 0)",
     "HTTP/1.1 400 Bad Request\x0d""\x0a""Connection: close\x0d""\x0a""Content-Type: text/html\x0d""\x0a""Content-Length: 182\x0d""\x0a""\x0d""\x0a""<html>\x0a""  <head>\x0a""    <title>Bad Request</title>\x0a""  </head>\x0a""  <body>\x0a""    <h1><p>Bad Request</p></h1>\x0a""    Invalid HTTP Version &#x27;Invalid HTTP Version: (2, 0)&#x27;\x0a""  </body>\x0a""</html>\x0a"""},
    {"pp",
     "Invalid PROXY line: \"protocol 'UNKNOWN' not supported\"",
     "HTTP/1.1 400 Bad Request\x0d""\x0a""Connection: close\x0d""\x0a""Content-Type: text/html\x0d""\x0a""Content-Length: 207\x0d""\x0a""\x0d""\x0a""<html>\x0a""  <head>\x0a""    <title>Bad Request</title>\x0a""  </head>\x0a""  <body>\x0a""    <h1><p>Bad Request</p></h1>\x0a""    &#x27;Invalid PROXY line: &quot;protocol &#x27;UNKNOWN&#x27; not supported&quot;&#x27;\x0a""  </body>\x0a""</html>\x0a"""},
    {"ppv2",
     "Invalid PROXY header: unsupported version 3",
     "HTTP/1.1 500 Internal Server Error\x0d""\x0a""Connection: close\x0d""\x0a""Content-Type: text/html\x0d""\x0a""Content-Length: 141\x0d""\x0a""\x0d""\x0a""<html>\x0a""  <head>\x0a""    <title>Internal Server Error</title>\x0a""  </head>\x0a""  <body>\x0a""    <h1><p>Internal Server Error</p></h1>\x0a""    \x0a""  </body>\x0a""</html>\x0a"""},
    {"hdr",
     "Invalid HTTP Header: \"caf\xc3""\xa9""\\x01\\x85\\xad\xc2""\xa1""'\\\\\\t\"",
     "HTTP/1.1 400 Bad Request\x0d""\x0a""Connection: close\x0d""\x0a""Content-Type: text/html\x0d""\x0a""Content-Length: 181\x0d""\x0a""\x0d""\x0a""<html>\x0a""  <head>\x0a""    <title>Bad Request</title>\x0a""  </head>\x0a""  <body>\x0a""    <h1><p>Bad Request</p></h1>\x0a""    Invalid HTTP Header: &quot;caf\xe9""\\x01\\x85\\xad\xa1""&#x27;\\\\\\t&quot;\x0a""  </body>\x0a""</html>\x0a"""},
    {"te",
     "Unsupported transfer coding: 'x<y>&\"'",
     "HTTP/1.1 501 Bad Request\x0d""\x0a""Connection: close\x0d""\x0a""Content-Type: text/html\x0d""\x0a""Content-Length: 183\x0d""\x0a""\x0d""\x0a""<html>\x0a""  <head>\x0a""    <title>Bad Request</title>\x0a""  </head>\x0a""  <body>\x0a""    <h1><p>Bad Request</p></h1>\x0a""    Unsupported transfer coding: &#x27;x&lt;y&gt;&amp;&quot;&#x27;\x0a""  </body>\x0a""</html>\x0a"""},
    {"lrl",
     "Request Line is too large (5000 > 4094)",
     "HTTP/1.1 414 URI Too Long\x0d""\x0a""Connection: close\x0d""\x0a""Content-Type: text/html\x0d""\x0a""Content-Length: 165\x0d""\x0a""\x0d""\x0a""<html>\x0a""  <head>\x0a""    <title>URI Too Long</title>\x0a""  </head>\x0a""  <body>\x0a""    <h1><p>URI Too Long</p></h1>\x0a""    Request Line is too large (5000 &gt; 4094)\x0a""  </body>\x0a""</html>\x0a"""},
    {"cp",
     "Configuration problem: Request path '/foo' does not start with SCRIPT_NAME '/bar'",
     "HTTP/1.1 500 Bad Request\x0d""\x0a""Connection: close\x0d""\x0a""Content-Type: text/html\x0d""\x0a""Content-Length: 222\x0d""\x0a""\x0d""\x0a""<html>\x0a""  <head>\x0a""    <title>Bad Request</title>\x0a""  </head>\x0a""  <body>\x0a""    <h1><p>Bad Request</p></h1>\x0a""    Configuration problem: Request path &#x27;/foo&#x27; does not start with SCRIPT_NAME &#x27;/bar&#x27;\x0a""  </body>\x0a""</html>\x0a"""},};

static cg_http_error_t make(const char *id)
{
    cg_http_error_t e = {0};
    if (!strcmp(id, "line")) {
        e.code = CG_HTTP_E_INVALID_REQUEST_LINE;
        e.arg = CG_STR_LIT("GET HTTP/1.1");
    } else if (!strcmp(id, "lrh")) {
        e.code = CG_HTTP_E_LIMIT_REQUEST_HEADERS;
        e.lit = "max buffer headers";
    } else if (!strcmp(id, "ver")) {
        e.code = CG_HTTP_E_INVALID_HTTP_VERSION;
        e.n1 = 2;
        e.n2 = 0;
    } else if (!strcmp(id, "pp")) {
        e.code = CG_HTTP_E_INVALID_PROXY_LINE;
        e.lit = "protocol '%s' not supported";
        e.arg = CG_STR_LIT("UNKNOWN");
    } else if (!strcmp(id, "ppv2")) {
        e.code = CG_HTTP_E_INVALID_PROXY_HEADER;
        e.lit = "unsupported version %d";
        e.n1 = 3;
    } else if (!strcmp(id, "hdr")) {
        e.code = CG_HTTP_E_INVALID_HEADER;
        e.arg = CG_STR_LIT("caf\xe9\x01\x85\xad\xa1'\\\t");
    } else if (!strcmp(id, "te")) {
        e.code = CG_HTTP_E_UNSUPPORTED_TRANSFER_CODING;
        e.arg = CG_STR_LIT("x<y>&\"");
    } else if (!strcmp(id, "lrl")) {
        e.code = CG_HTTP_E_LIMIT_REQUEST_LINE;
        e.n1 = 5000;
        e.n2 = 4094;
    } else if (!strcmp(id, "cp")) {
        e.code = CG_HTTP_E_CONFIGURATION_PROBLEM;
        e.arg = CG_STR_LIT("/foo");
        e.arg2 = CG_STR_LIT("/bar");
    }
    return e;
}

static void test_texts_and_pages(void **state)
{
    (void)state;
    char buf[4096];
    for (size_t i = 0; i < CG_ARRAY_SIZE(expected); i++) {
        cg_http_error_t e = make(expected[i].id);
        size_t n = cg_http_error_text(&e, buf, sizeof(buf));
        assert_string_equal(buf, expected[i].text);
        assert_int_equal(n, strlen(expected[i].text));
        n = cg_http_error_response(&e, buf, sizeof(buf));
        assert_int_equal(n, strlen(expected[i].page));
        assert_memory_equal(buf, expected[i].page, n);
        if (!strcmp(expected[i].id, "ppv2")) { /* the generic 500 page */
            char page[1024];
            assert_int_equal(cg_http_error_page(500, "Internal Server Error", "", page,
                                                sizeof(page)),
                             n);
            assert_memory_equal(page, buf, n);
        }
        /* too small a buffer: nothing rather than a truncated page */
        assert_int_equal(cg_http_error_response(&e, buf, n - 1), 0);
    }
}

static void test_body_error_texts(void **state)
{
    (void)state;
    char buf[256];
    cg_http_error_t e = {.code = CG_HTTP_E_INVALID_CHUNK_SIZE, .arg = CG_STR_LIT("5 ")};
    cg_http_error_text(&e, buf, sizeof(buf));
    assert_string_equal(buf, "Invalid chunk size: b'5 '");
    /* Gunicorn 27: a broken chunked body is a client error, answered 400 */
    size_t n = cg_http_error_response(&e, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "HTTP/1.1 400 Bad Request\r\n"));
    assert_non_null(strstr(buf, "\n    Invalid chunk size: b&#x27;5 &#x27;\n"));
    assert_int_equal(cg_http_error_status(CG_HTTP_E_CHUNK_MISSING_TERMINATOR), 400);
    assert_int_equal(cg_http_error_status(CG_HTTP_E_INVALID_CHUNK_EXTENSION), 400);
    e = (cg_http_error_t){.code = CG_HTTP_E_CHUNK_MISSING_TERMINATOR, .arg = CG_STR_LIT("ab")};
    cg_http_error_text(&e, buf, sizeof(buf));
    assert_string_equal(buf, "Invalid chunk terminator is not '\\r\\n': b'ab'");
    e = (cg_http_error_t){.code = CG_HTTP_E_NO_MORE_DATA};
    cg_http_error_text(&e, buf, sizeof(buf));
    assert_string_equal(buf, "No more data after: None");
    e = (cg_http_error_t){.code = CG_HTTP_E_FORBIDDEN_PROXY_REQUEST, .arg = CG_STR_LIT("10.0.0.1")};
    cg_http_error_text(&e, buf, sizeof(buf));
    assert_string_equal(buf, "Proxy request from '10.0.0.1' not allowed");
    /* truncation keeps the NUL */
    assert_int_equal(cg_http_error_text(&e, buf, 6), 5);
    assert_string_equal(buf, "Proxy");
    assert_string_equal(cg_http_error_name(CG_HTTP_E_INVALID_CHUNK_EXTENSION),
                        "InvalidChunkExtension");
    assert_int_equal(cg_http_error_status(CG_HTTP_E_UNSUPPORTED_TRANSFER_CODING), 501);
}

static void test_proxy(void **state)
{
    (void)state;
    cg_http_proxy_t px;
    cg_http_error_t e;
    const char v1[] = "PROXY TCP6 ::1 2001:db8::2 65535 0\r\nGET";
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_V1, v1, sizeof(v1) - 1, true, &px, &e),
                     36);
    assert_string_equal(px.protocol, "TCP6");
    assert_string_equal(px.client_addr, "::1");
    assert_string_equal(px.proxy_addr, "2001:db8::2");
    assert_int_equal(px.client_port, 65535);
    assert_int_equal(px.proxy_port, 0);
    /* v2-only mode ignores a v1 line; short input waits for 12 bytes */
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_V2, v1, sizeof(v1) - 1, true, &px, &e), 0);
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_AUTO, v1, 11, true, &px, &e), CG_EAGAIN);
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_AUTO, v1, 20, true, &px, &e), CG_EAGAIN);
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_AUTO, v1, sizeof(v1) - 1, false, &px, &e),
                     -EPROTO);
    assert_int_equal(e.code, CG_HTTP_E_FORBIDDEN_PROXY_REQUEST);

    const char bad[] = "PROXY UNKNOWN 1.2.3.4 1.2.3.5 1 2\r\n";
    char text[256];
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_AUTO, bad, sizeof(bad) - 1, true, &px, &e),
                     -EPROTO);
    cg_http_error_text(&e, text, sizeof(text));
    assert_string_equal(text, "Invalid PROXY line: \"protocol 'UNKNOWN' not supported\"");
    const char port[] = "PROXY TCP4 1.2.3.4 1.2.3.5 1_0 70000\r\n";
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_AUTO, port, sizeof(port) - 1, true, &px, &e),
                     -EPROTO);
    cg_http_error_text(&e, text, sizeof(text));
    assert_string_equal(text, "Invalid PROXY line: 'invalid port PROXY TCP4 1.2.3.4 1.2.3.5 1_0 70000'");

    /* v2: LOCAL with a TLV, then an UDP PROXY, then a bad version */
    char v2[40] = "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x03xyz";
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_AUTO, v2, 18, true, &px, &e), CG_EAGAIN);
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_AUTO, v2, 19, true, &px, &e), 19);
    assert_string_equal(px.protocol, "LOCAL");
    v2[12] = 0x21;
    v2[13] = 0x12;
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_AUTO, v2, 19, true, &px, &e), -EPROTO);
    cg_http_error_text(&e, text, sizeof(text));
    assert_string_equal(text, "Invalid PROXY header: only TCP protocol is supported");
    v2[12] = 0x31;
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_AUTO, v2, 19, true, &px, &e), -EPROTO);
    cg_http_error_text(&e, text, sizeof(text));
    assert_string_equal(text, "Invalid PROXY header: unsupported version 3");
}

static void test_date(void **state)
{
    (void)state;
    char d[30];
    cg_http_date(784111777, d);
    assert_string_equal(d, "Sun, 06 Nov 1994 08:49:37 GMT");
}

static ssize_t parse(cg_http_settings_t *s, const char *text, bool trusted,
                     cg_http_request_t *req, char *store)
{
    static cg_http_header_t hdrs[128];
    cg_http_parser_t p = {0};
    strcpy(store, text);
    req->headers = hdrs;
    req->headers_cap = 128;
    return cg_http_parse_request(s, &p, store, strlen(store), trusted, req);
}

static void test_request_details(void **state)
{
    (void)state;
    cg_http_settings_t s;
    cg_http_request_t r;
    char b[1024];
    cg_http_settings_init(&s, 4094, 100, 8190);

    assert_true(parse(&s, "GET / HTTP/1.1\r\nExpect: 100-Continue\r\nConnection: Upgrade\r\n\r\n",
                      true, &r, b) > 0);
    assert_true(r.expect_continue);
    assert_true(r.keep_alive);
    assert_true(r.connection_upgrade);
    assert_true(parse(&s, "GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", true, &r, b) > 0);
    assert_false(r.expect_continue);
    assert_false(r.keep_alive);
    assert_int_equal(parse(&s, "GET / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", true, &r, b), -EPROTO);
    assert_int_equal(r.error.code, CG_HTTP_E_EXPECTATION_FAILED);
    assert_int_equal(cg_http_error_status(r.error.code), 417);

    /* scheme headers: trusted only; first decides, a contradiction fails */
    assert_true(parse(&s, "GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\n\r\n", true, &r, b) > 0);
    assert_int_equal(r.scheme_https, 1);
    assert_true(parse(&s, "GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\n\r\n", false, &r, b) > 0);
    assert_int_equal(r.scheme_https, -1);
    assert_int_equal(parse(&s, "GET / HTTP/1.1\r\nX-Forwarded-Ssl: on\r\nX-Forwarded-Proto: http\r\n\r\n",
                           true, &r, b),
                     -EPROTO);
    assert_int_equal(r.error.code, CG_HTTP_E_INVALID_SCHEME_HEADERS);

    /* SCRIPT_NAME: kept from a trusted peer, dropped otherwise */
    assert_true(parse(&s, "GET /a/b HTTP/1.1\r\nScript_Name: /a\r\n\r\n", true, &r, b) > 0);
    assert_int_equal(r.script_name.len, 2);
    assert_true(parse(&s, "GET /a/b HTTP/1.1\r\nScript_Name: /a\r\n\r\n", false, &r, b) > 0);
    assert_null(r.script_name.ptr);
    assert_int_equal(r.nheaders, 1);
    assert_true(r.headers[0].flags & CG_HTTP_HF_DROPPED);

    /* gzip forces close; unknown coding is a 501 */
    assert_true(parse(&s, "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", true, &r,
                      b) > 0);
    assert_true(r.force_close);
    assert_false(r.keep_alive);
    assert_int_equal(r.body_kind, CG_HTTP_BODY_CHUNKED);
    assert_int_equal(parse(&s, "POST / HTTP/1.1\r\nTransfer-Encoding: br\r\n\r\n", true, &r, b),
                     -EPROTO);
    assert_int_equal(r.error.code, CG_HTTP_E_UNSUPPORTED_TRANSFER_CODING);

    /* version tuple error, request line limit while still reading */
    assert_int_equal(parse(&s, "GET / HTTP/2.0\r\n\r\n", true, &r, b), -EPROTO);
    assert_int_equal(r.error.code, CG_HTTP_E_INVALID_HTTP_VERSION);
    cg_http_settings_init(&s, 10, 100, 8190);
    assert_int_equal(parse(&s, "GET /0123456789", true, &r, b), -EPROTO);
    assert_int_equal(r.error.code, CG_HTTP_E_LIMIT_REQUEST_LINE);
    assert_int_equal(parse(&s, "GET /012345", true, &r, b), CG_EAGAIN);

    /* clamping */
    cg_http_settings_init(&s, 0, 0, 0);
    assert_int_equal(s.limit_request_line, 0);
    assert_int_equal(s.limit_request_fields, 32768);
    assert_int_equal(s.limit_request_field_size, 8190);
    cg_http_settings_init(&s, 9000, 40000, 10);
    assert_int_equal(s.limit_request_line, 8190);
    assert_int_equal(s.limit_request_fields, 32768);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_texts_and_pages), cmocka_unit_test(test_body_error_texts),
        cmocka_unit_test(test_proxy),           cmocka_unit_test(test_date),
        cmocka_unit_test(test_request_details),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
