/*
 * test_proxy.c - PROXY protocol v1/v2 headers (src/http/proxy.c): detection
 * per mode, addresses and ports, every incomplete prefix (more bytes needed,
 * never a verdict), trust, and Gunicorn's errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/http/http.h"

static const char SIG[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};

/* A v2 header: signature, ver/cmd, fam/proto, then `alen` address bytes. */
static size_t v2(char *out, unsigned char vercmd, unsigned char famproto, const void *addr,
                 size_t alen)
{
    memcpy(out, SIG, 12);
    out[12] = (char)vercmd;
    out[13] = (char)famproto;
    out[14] = (char)(alen >> 8);
    out[15] = (char)(alen & 0xff);
    memcpy(out + 16, addr, alen);
    return 16 + alen;
}

/* Each prefix shorter than the header asks for more; the whole gives hlen. */
static void check_prefixes(cg_http_proxy_mode_t mode, const char *buf, size_t hlen)
{
    cg_http_proxy_t px;
    cg_http_error_t err;
    for (size_t k = 0; k < hlen; k++) {
        ssize_t r = cg_http_parse_proxy(mode, buf, k, true, &px, &err);
        if (r != CG_EAGAIN)
            fail_msg("prefix of %zu bytes: %zd", k, r);
    }
}

static void test_v1(void **state)
{
    (void)state;
    const char *s = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n\r\n";
    size_t hl = strlen("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
    cg_http_proxy_t px;
    cg_http_error_t err;
    for (int m = 0; m < 2; m++) {
        cg_http_proxy_mode_t mode = m ? CG_HTTP_PROXY_AUTO : CG_HTTP_PROXY_V1;
        check_prefixes(mode, s, hl);
        for (size_t extra = 0; extra <= strlen(s) - hl; extra++) {
            assert_int_equal(cg_http_parse_proxy(mode, s, hl + extra, true, &px, &err),
                             (ssize_t)hl);
            assert_string_equal(px.protocol, "TCP4");
            assert_string_equal(px.client_addr, "192.168.0.1");
            assert_string_equal(px.proxy_addr, "192.168.0.11");
            assert_int_equal(px.client_port, 56324);
            assert_int_equal(px.proxy_port, 443);
        }
    }
    const char *s6 = "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n";
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_V1, s6, strlen(s6), true, &px, &err),
                     (ssize_t)strlen(s6));
    assert_string_equal(px.protocol, "TCP6");
    assert_string_equal(px.client_addr, "2001:db8::1");
    assert_string_equal(px.proxy_addr, "::1");
    assert_int_equal(px.client_port, 1);
    assert_int_equal(px.proxy_port, 65535);
}

/* A line of exactly the longest length accepted: the same verdict whether
 * its CRLF arrives whole or split after the CR (found by fuzz_proxy). */
static void test_v1_longest_line_split(void **state)
{
    (void)state;
    char line[600];
    const char *head = "PROXY TCP4 1.2.3.4 5.6.7.8 80 ";
    size_t n = strlen(head);
    memcpy(line, head, n);
    while (n < 536 - 3)
        line[n++] = '0';
    memcpy(line + n, "443\r\n", 5);
    n += 5; /* 536 bytes of line, then CRLF */
    assert_int_equal(n, 538);
    cg_http_proxy_t px;
    cg_http_error_t err;
    check_prefixes(CG_HTTP_PROXY_AUTO, line, n);
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_AUTO, line, n, true, &px, &err), 538);
    assert_int_equal(px.proxy_port, 443);
    /* one byte longer: refused, and already before the CRLF comes */
    char longer[600];
    memcpy(longer, line, 536);
    longer[536] = '0';
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_AUTO, longer, 537, true, &px, &err),
                     -EPROTO);
    assert_int_equal(err.code, CG_HTTP_E_INVALID_PROXY_LINE);
}

static void test_v1_invalid(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        const char *lit; /* NULL: the whole line is the argument */
    } bad[] = {
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", NULL},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", NULL},
        {"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "protocol '%s' not supported"},
        {"PROXY UNKNOWN\r\n", NULL},
        {"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", NULL},
        {"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", NULL},
        {"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", NULL},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "invalid port %s"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 -1\r\n", "invalid port %s"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 x 2\r\n", "invalid port %s"},
    };
    cg_http_proxy_t px;
    cg_http_error_t err;
    for (size_t i = 0; i < CG_ARRAY_SIZE(bad); i++) {
        ssize_t r = cg_http_parse_proxy(CG_HTTP_PROXY_V1, bad[i].line, strlen(bad[i].line), true,
                                        &px, &err);
        if (r != -EPROTO || err.code != CG_HTTP_E_INVALID_PROXY_LINE)
            fail_msg("%s: %zd %s", bad[i].line, r, cg_http_error_name(err.code));
        if (bad[i].lit)
            assert_string_equal(err.lit, bad[i].lit);
    }
    /* Python's int() for ports: surrounding spaces and '_' between digits */
    const char *ok = "PROXY TCP4 1.2.3.4 5.6.7.8 1_0 2\r\n";
    assert_true(cg_http_parse_proxy(CG_HTTP_PROXY_V1, ok, strlen(ok), true, &px, &err) > 0);
    assert_int_equal(px.client_port, 10);

    /* a line that does not end within 536 bytes */
    static char longline[600];
    memset(longline, 'x', sizeof(longline));
    memcpy(longline, "PROXY ", 6);
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_V1, longline, 536, true, &px, &err),
                     CG_EAGAIN);
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_V1, longline, 537, true, &px, &err),
                     -EPROTO);
    assert_int_equal(err.code, CG_HTTP_E_INVALID_PROXY_LINE);
}

static void test_v2(void **state)
{
    (void)state;
    char buf[128];
    cg_http_proxy_t px;
    cg_http_error_t err;
    const unsigned char a4[12] = {192, 168, 1, 10, 192, 168, 1, 1, 0xdb, 0xf0, 0x01, 0xbb};
    size_t hl = v2(buf, 0x21, 0x11, a4, sizeof(a4));
    for (int m = 0; m < 2; m++) {
        cg_http_proxy_mode_t mode = m ? CG_HTTP_PROXY_AUTO : CG_HTTP_PROXY_V2;
        check_prefixes(mode, buf, hl);
        assert_int_equal(cg_http_parse_proxy(mode, buf, hl, true, &px, &err), (ssize_t)hl);
        assert_string_equal(px.protocol, "TCP4");
        assert_string_equal(px.client_addr, "192.168.1.10");
        assert_string_equal(px.proxy_addr, "192.168.1.1");
        assert_int_equal(px.client_port, 56304);
        assert_int_equal(px.proxy_port, 443);
    }
    /* TLVs after the addresses are skipped with the header */
    unsigned char a4t[16];
    memcpy(a4t, a4, 12);
    memcpy(a4t + 12, "\x04\x00\x01Z", 4);
    hl = v2(buf, 0x21, 0x11, a4t, sizeof(a4t));
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_V2, buf, hl, true, &px, &err), (ssize_t)hl);

    unsigned char a6[36] = {0};
    a6[0] = 0x20, a6[1] = 0x01, a6[2] = 0x0d, a6[3] = 0xb8, a6[15] = 1;
    a6[31] = 1;
    a6[32] = 0x30, a6[33] = 0x39, a6[34] = 0x00, a6[35] = 0x50;
    hl = v2(buf, 0x21, 0x21, a6, sizeof(a6));
    check_prefixes(CG_HTTP_PROXY_V2, buf, hl);
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_V2, buf, hl, true, &px, &err), (ssize_t)hl);
    assert_string_equal(px.protocol, "TCP6");
    assert_string_equal(px.client_addr, "2001:db8::1");
    assert_string_equal(px.proxy_addr, "::1");
    assert_int_equal(px.client_port, 12345);
    assert_int_equal(px.proxy_port, 80);

    /* LOCAL (health check) and UNSPEC carry no addresses */
    hl = v2(buf, 0x20, 0x00, "", 0);
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_V2, buf, hl, true, &px, &err), 16);
    assert_string_equal(px.protocol, "LOCAL");
    assert_int_equal(px.client_port, -1);
    hl = v2(buf, 0x21, 0x01, "", 0);
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_V2, buf, hl, true, &px, &err), 16);
    assert_string_equal(px.protocol, "UNSPEC");
    assert_string_equal(px.client_addr, "");
}

static void test_v2_invalid(void **state)
{
    (void)state;
    char buf[128];
    cg_http_proxy_t px;
    cg_http_error_t err;
    const unsigned char a4[12] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
    static const struct {
        unsigned char vercmd, famproto;
        size_t alen;
        const char *lit;
    } bad[] = {
        {0x11, 0x11, 12, "unsupported version %d"},
        {0x22, 0x11, 12, "unsupported command %d"},
        {0x21, 0x12, 12, "only TCP protocol is supported"},
        {0x21, 0x11, 11, "insufficient address data for IPv4"},
        {0x21, 0x21, 12, "insufficient address data for IPv6"},
        {0x21, 0x31, 12, "unsupported address family %d"},
    };
    for (size_t i = 0; i < CG_ARRAY_SIZE(bad); i++) {
        size_t hl = v2(buf, bad[i].vercmd, bad[i].famproto, a4, bad[i].alen);
        assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_V2, buf, hl, true, &px, &err),
                         -EPROTO);
        assert_int_equal(err.code, CG_HTTP_E_INVALID_PROXY_HEADER);
        assert_string_equal(err.lit, bad[i].lit);
    }
}

static void test_detection(void **state)
{
    (void)state;
    cg_http_proxy_t px;
    cg_http_error_t err;
    char buf[64];
    const unsigned char a4[12] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
    size_t hl = v2(buf, 0x21, 0x11, a4, sizeof(a4));
    const char *v1 = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    const char *get = "GET / HTTP/1.1\r\n\r\n";

    /* off: never a header */
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_OFF, v1, strlen(v1), true, &px, &err), 0);
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_OFF, "", 0, true, &px, &err), 0);
    /* a request is no header, in every mode, once 12 bytes decide */
    for (int m = CG_HTTP_PROXY_V1; m <= CG_HTTP_PROXY_AUTO; m++) {
        assert_int_equal(cg_http_parse_proxy(m, get, 11, true, &px, &err), CG_EAGAIN);
        assert_int_equal(cg_http_parse_proxy(m, get, strlen(get), true, &px, &err), 0);
    }
    /* each version only in its own mode (or auto) */
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_V1, buf, hl, true, &px, &err), 0);
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_V2, v1, strlen(v1), true, &px, &err), 0);
    /* from a peer not in proxy_allow_ips: refused, the caller names the peer */
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_AUTO, v1, strlen(v1), false, &px, &err),
                     -EPROTO);
    assert_int_equal(err.code, CG_HTTP_E_FORBIDDEN_PROXY_REQUEST);
    assert_null(err.arg.ptr);
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_AUTO, buf, hl, false, &px, &err), -EPROTO);
    assert_int_equal(err.code, CG_HTTP_E_FORBIDDEN_PROXY_REQUEST);
    /* but a request from that peer is fine */
    assert_int_equal(cg_http_parse_proxy(CG_HTTP_PROXY_AUTO, get, strlen(get), false, &px, &err),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_v1_invalid),
        cmocka_unit_test(test_v1_longest_line_split),
        cmocka_unit_test(test_v2),
        cmocka_unit_test(test_v2_invalid),
        cmocka_unit_test(test_detection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
