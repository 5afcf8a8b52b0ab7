/*
 * test_chunked.c - the chunked decoder (src/http/chunked.c): framing, chunk
 * extensions (RFC 9112 7.1.1), trailers, errors and EOF verdicts. Every case
 * is fed whole, byte by byte and split at every position; each way of cutting
 * must give the same body, trailers, rest and verdict.
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

#define MAXBUF 32768

typedef struct outcome {
    int rc;                 /* 1 complete, 0 input ended first, -EPROTO */
    cg_http_errcode_t code; /* error of the decoder, or of cg_http_chunked_eof() when rc == 0 */
    const char *lit;
    char body[MAXBUF];
    size_t nbody;
    char rest[MAXBUF]; /* unconsumed bytes after the body */
    size_t nrest;
    char trailers[1024]; /* "NAME=value;" */
} outcome_t;

static cg_http_settings_t settings;

/* Feed in[0..n) in pieces ending at cuts[]; `out_max` as the body reader sets it. */
static void decode(const char *in, size_t n, const size_t *cuts, size_t ncuts, size_t out_max,
                   outcome_t *r)
{
    static char buf[MAXBUF];
    cg_http_header_t trl[16];
    cg_http_chunked_t d;
    cg_http_error_t err;
    size_t have = 0, pos = 0, ci = 0;

    memset(r, 0, sizeof(*r));
    cg_http_chunked_init(&d);
    d.trailers = trl;
    d.trailers_cap = 16;
    d.out_max = out_max;
    while (pos < n) {
        size_t lim = ci < ncuts ? cuts[ci++] : n;
        memcpy(buf + have, in + pos, lim - pos);
        have += lim - pos;
        pos = lim;
        for (;;) {
            size_t len = have, out = 0;
            int rc = cg_http_chunked_decode(&settings, &d, buf, &len, &out, &err);
            assert_true(out <= len && len <= have);
            memcpy(r->body + r->nbody, buf, out);
            r->nbody += out;
            if (rc < 0) {
                assert_int_equal(rc, -EPROTO);
                r->rc = rc;
                r->code = err.code;
                r->lit = err.lit;
                return;
            }
            if (rc == 1) {
                assert_true(d.done);
                for (size_t i = 0; i < d.ntrailers; i++) {
                    size_t l = strlen(r->trailers);
                    snprintf(r->trailers + l, sizeof(r->trailers) - l, "%.*s=%.*s;",
                             (int)trl[i].name.len, trl[i].name.ptr, (int)trl[i].value.len,
                             trl[i].value.ptr);
                }
                memcpy(r->rest, buf + len, have - len);
                memcpy(r->rest + have - len, in + pos, n - pos);
                r->nrest = have - len + n - pos;
                r->rc = 1;
                return;
            }
            memmove(buf, buf + len, have - len);
            have -= len;
            if (len == 0 && out == 0)
                break; /* needs more input */
        }
    }
    r->rc = 0;
    int e = cg_http_chunked_eof(&d, buf, have, &err);
    r->code = e < 0 ? err.code : CG_HTTP_E_NONE;
    r->lit = e < 0 ? err.lit : NULL;
}

/* the input, escaped, for failure messages */
static const char *esc(const char *in, size_t n)
{
    static char out[512];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < sizeof(out); i++) {
        unsigned char c = (unsigned char)in[i];
        const char *fmt = c < 0x20 || c >= 0x7f ? "\\x%02x" : "%c";
        o += (size_t)snprintf(out + o, sizeof(out) - o, fmt, c);
    }
    out[o] = '\0';
    return out;
}

static void differs(const char *how, size_t k, const char *in, size_t n, const outcome_t *a,
                    const outcome_t *b)
{
    fail_msg("%s %zu differs for \"%s\": rc %d %s body %zu rest %zu / rc %d %s body %zu rest %zu",
             how, k, esc(in, n), a->rc, cg_http_error_name(a->code), a->nbody, a->nrest, b->rc,
             cg_http_error_name(b->code), b->nbody, b->nrest);
}

/* After an error, how much body came out first depends on the split (a
 * failing call reports nothing): only the verdict must agree. */
static bool same(const outcome_t *a, const outcome_t *b)
{
    if (a->rc == -EPROTO || b->rc == -EPROTO)
        return a->rc == b->rc && a->code == b->code &&
               ((a->lit == NULL) == (b->lit == NULL)) && (!a->lit || !strcmp(a->lit, b->lit));
    return a->rc == b->rc && a->code == b->code && a->nbody == b->nbody &&
           !memcmp(a->body, b->body, a->nbody) && a->nrest == b->nrest &&
           !memcmp(a->rest, b->rest, a->nrest) && !strcmp(a->trailers, b->trailers) &&
           ((a->lit == NULL) == (b->lit == NULL)) && (!a->lit || !strcmp(a->lit, b->lit));
}

/* Decode whole, byte by byte, in two pieces at every position and with a
 * small out_max; all must agree. Returns the whole-input outcome. */
static void decode_all_ways(const char *in, size_t n, outcome_t *whole)
{
    static outcome_t other;
    static size_t cuts[MAXBUF];
    decode(in, n, NULL, 0, 0, whole);
    for (size_t k = 1; k < n; k++)
        cuts[k - 1] = k;
    decode(in, n, cuts, n ? n - 1 : 0, 0, &other);
    if (!same(whole, &other))
        differs("byte by byte", 0, in, n, whole, &other);
    for (size_t k = 1; k < n; k++) {
        decode(in, n, &k, 1, 0, &other);
        if (!same(whole, &other))
            differs("split at", k, in, n, whole, &other);
    }
    decode(in, n, cuts, n ? n - 1 : 0, 3, &other);
    if (!same(whole, &other))
        differs("out_max 3", 0, in, n, whole, &other);
}

static void ok_case(const char *in, const char *body, const char *rest, const char *trailers)
{
    static outcome_t r;
    decode_all_ways(in, strlen(in), &r);
    if (r.rc != 1)
        fail_msg("not complete (rc %d, %s) for %s", r.rc, cg_http_error_name(r.code),
                 esc(in, strlen(in)));
    assert_int_equal(r.nbody, strlen(body));
    assert_memory_equal(r.body, body, r.nbody);
    assert_int_equal(r.nrest, strlen(rest));
    assert_memory_equal(r.rest, rest, r.nrest);
    assert_string_equal(r.trailers, trailers);
}

static void bad_case_n(const char *in, size_t n, cg_http_errcode_t code, const char *lit)
{
    static outcome_t r;
    decode_all_ways(in, n, &r);
    if (r.rc != -EPROTO || r.code != code)
        fail_msg("expected %s, got rc %d %s for %s", cg_http_error_name(code), r.rc,
                 cg_http_error_name(r.code), esc(in, n));
    if (lit)
        assert_string_equal(r.lit, lit);
}

static void bad_case(const char *in, cg_http_errcode_t code, const char *lit)
{
    bad_case_n(in, strlen(in), code, lit);
}

static int setup(void **state)
{
    (void)state;
    cg_http_settings_init(&settings, 4094, 100, 8190);
    return 0;
}

static void test_framing(void **state)
{
    (void)state;
    ok_case("5\r\nhello\r\n0\r\n\r\n", "hello", "", "");
    ok_case("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", "hello world",
            "GET / HTTP/1.1\r\n\r\n", "");
    ok_case("0\r\n\r\n", "", "", "");
    ok_case("000A\r\n0123456789\r\n0\r\n\r\n", "0123456789", "", "");
    ok_case("a\r\n0123456789\r\nB\r\n0123456789a\r\n00\r\n\r\n", "01234567890123456789a", "",
            "");
    /* data may hold CRLFs and anything else */
    ok_case("4\r\n\r\n\r\n\r\n0\r\n\r\nX", "\r\n\r\n", "X", "");
    /* trailers: upper-cased names, SP/HTAB trimmed values */
    ok_case("1\r\nx\r\n0\r\nX-A: 1\r\nx-b:\t two \r\n\r\nrest", "x", "rest", "X-A=1;X-B=two;");
}

/* RFC 9112 7.1.1: chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ) */
static void test_extensions_valid(void **state)
{
    (void)state;
    ok_case("5;a\r\nhello\r\n0\r\n\r\n", "hello", "", "");
    ok_case("5 ;a\r\nhello\r\n0;last\r\n\r\n", "hello", "", "");
    ok_case("5; some; parameters=stuff\r\nhello\r\n0\r\n\r\n", "hello", "", "");
    ok_case("5\t;\ta\t=\tb ; c = d\r\nhello\r\n0\r\n\r\n", "hello", "", "");
    ok_case("5;foo=\"bar baz\"\r\nhello\r\n0\r\n\r\n", "hello", "", "");
    ok_case("5;q=\"\"\r\nhello\r\n0\r\n\r\n", "hello", "", "");
    ok_case("5;q=\"a\\\"b;c=d\\\\\";e\r\nhello\r\n0\r\n\r\n", "hello", "", "");
    ok_case("5;q=\"tab\there \xe9\"\r\nhello\r\n0\r\n\r\n", "hello", "", "");
    ok_case("5;q=\"\\\t\\\xff\"\r\nhello\r\n0\r\n\r\n", "hello", "", "");
    ok_case("5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~\r\nhello\r\n0\r\n\r\n", "hello", "", "");
    ok_case("5;a \r\nhello\r\n0\r\n\r\n", "hello", "", ""); /* trailing BWS is tolerated */
}

/* Gunicorn accepts all of these; a nameless extension or an open quoted
 * string lets two parsers disagree about the chunk (RFC 9112 7.1.1). */
static void test_extensions_invalid(void **state)
{
    (void)state;
    const cg_http_errcode_t E = CG_HTTP_E_INVALID_CHUNK_EXTENSION;
    bad_case("1;\r\nx\r\n0\r\n\r\n", E, "missing extension name");
    bad_case("1;=x\r\nx\r\n0\r\n\r\n", E, "missing extension name");
    bad_case("1; \r\nx\r\n0\r\n\r\n", E, "missing extension name");
    bad_case("1;a;\r\nx\r\n0\r\n\r\n", E, "missing extension name");
    bad_case("1;a;;b\r\nx\r\n0\r\n\r\n", E, "missing extension name");
    bad_case("0;\r\n\r\n", E, "missing extension name");
    bad_case("1;a=\r\nx\r\n0\r\n\r\n", E, "missing extension value");
    bad_case("1;a=;b\r\nx\r\n0\r\n\r\n", E, "missing extension value");
    bad_case("1;a=\"x\r\nx\r\n0\r\n\r\n", E, "unterminated quoted string");
    bad_case("1;a=\"x\\\"\r\nx\r\n0\r\n\r\n", E, "unterminated quoted string");
    bad_case("1;a=\"x\\\r\nx\r\n0\r\n\r\n", E, "unterminated quoted string");
    bad_case("1;a=\"\"\"\r\nx\r\n0\r\n\r\n", E, "expected ';'");
    bad_case("1;a b\r\nx\r\n0\r\n\r\n", E, "expected ';'");
    bad_case("1;a=b c\r\nx\r\n0\r\n\r\n", E, "expected ';'");
    bad_case("1;a\nb\r\nx\r\n0\r\n\r\n", E, "expected ';'");
    bad_case("1;a=\xe9\r\nx\r\n0\r\n\r\n", E, "missing extension value");
    bad_case("1;\xe9\r\nx\r\n0\r\n\r\n", E, "missing extension name");
    bad_case_n("1;a=\"\0\"\r\nx\r\n0\r\n\r\n", 17, E, "control character in quoted string");
    bad_case("1;a=\"\x7f\"\r\nx\r\n0\r\n\r\n", E, "control character in quoted string");
    bad_case("1;a=\"\\\x01\"\r\nx\r\n0\r\n\r\n", E, "control character in quoted string");
    /* Gunicorn's own rule, unchanged */
    bad_case("1;a=x\ry\r\nx\r\n0\r\n\r\n", E, "bare CR not allowed");
    /* a bad size is reported before a bad extension, as Gunicorn does */
    bad_case("x;\r\nx\r\n0\r\n\r\n", CG_HTTP_E_INVALID_CHUNK_SIZE, NULL);
}

static void test_errors(void **state)
{
    (void)state;
    const cg_http_errcode_t S = CG_HTTP_E_INVALID_CHUNK_SIZE;
    bad_case("\r\nx\r\n0\r\n\r\n", S, NULL);
    bad_case("x\r\nx\r\n0\r\n\r\n", S, NULL);
    bad_case("-1\r\nx\r\n0\r\n\r\n", S, NULL);
    bad_case("+1\r\nx\r\n0\r\n\r\n", S, NULL);
    bad_case("0x1\r\nx\r\n0\r\n\r\n", S, NULL);
    bad_case("1 \r\nx\r\n0\r\n\r\n", S, NULL); /* BWS only before an extension */
    bad_case(" 1\r\nx\r\n0\r\n\r\n", S, NULL);
    bad_case("1\n\r\nx\r\n0\r\n\r\n", S, NULL);
    bad_case("10000000000000000\r\n", S, NULL); /* 2^64: does not fit */
    bad_case("1\r\nxy\r\n0\r\n\r\n", CG_HTTP_E_CHUNK_MISSING_TERMINATOR, NULL);
    bad_case("1\r\nx\n0\r\n\r\n", CG_HTTP_E_CHUNK_MISSING_TERMINATOR, NULL);
    /* RFC 9110 6.5.1: framing and routing fields may not be trailers */
    bad_case("0\r\nHost: a\r\n\r\n", CG_HTTP_E_INVALID_HEADER_NAME, NULL);
    bad_case("0\r\nContent-Length: 1\r\n\r\n", CG_HTTP_E_INVALID_HEADER_NAME, NULL);
    bad_case("0\r\nTransfer-Encoding: chunked\r\n\r\n", CG_HTTP_E_INVALID_HEADER_NAME, NULL);
    bad_case("0\r\nX: a\x01\r\n\r\n", CG_HTTP_E_INVALID_HEADER, NULL);
    bad_case("0\r\nno colon\r\n\r\n", CG_HTTP_E_INVALID_HEADER, NULL);

    /* a size line that never ends */
    static char longline[9000];
    memset(longline, '0', sizeof(longline));
    bad_case_n(longline, sizeof(longline), S, NULL);
}

/* What an EOF means where the input stops. */
static void test_eof(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        cg_http_errcode_t code;
    } eofs[] = {
        {"", CG_HTTP_E_NO_MORE_DATA},
        {"5", CG_HTTP_E_NO_MORE_DATA},
        {"5;a=\"x", CG_HTTP_E_NO_MORE_DATA},
        {"5\r\nhel", CG_HTTP_E_NO_MORE_DATA},
        {"5\r\nhello", CG_HTTP_E_CHUNK_MISSING_TERMINATOR},
        {"5\r\nhello\r", CG_HTTP_E_CHUNK_MISSING_TERMINATOR},
        {"5\r\nhello\r\n", CG_HTTP_E_NO_MORE_DATA},
        {"5\r\nhello\r\n0\r\n", CG_HTTP_E_CHUNK_MISSING_TERMINATOR},
        {"5\r\nhello\r\n0\r\nX: y\r\n", CG_HTTP_E_CHUNK_MISSING_TERMINATOR},
    };
    for (size_t i = 0; i < CG_ARRAY_SIZE(eofs); i++) {
        static outcome_t r;
        decode_all_ways(eofs[i].in, strlen(eofs[i].in), &r);
        if (r.rc != 0 || r.code != eofs[i].code)
            fail_msg("EOF after %s: rc %d %s", esc(eofs[i].in, strlen(eofs[i].in)), r.rc,
                     cg_http_error_name(r.code));
    }
    /* a complete body needs nothing more */
    cg_http_chunked_t d;
    cg_http_error_t err;
    cg_http_chunked_init(&d);
    char buf[] = "0\r\n\r\n";
    size_t len = 5, out = 0;
    assert_int_equal(cg_http_chunked_decode(&settings, &d, buf, &len, &out, &err), 1);
    assert_int_equal(cg_http_chunked_eof(&d, buf + len, 0, &err), 0);
}

/* out_max bounds what one call produces; the rest waits in place. */
static void test_out_max(void **state)
{
    (void)state;
    cg_http_chunked_t d;
    cg_http_error_t err;
    cg_http_chunked_init(&d);
    d.out_max = 4;
    char buf[] = "a\r\n0123456789\r\n0\r\n\r\n";
    size_t len = strlen(buf), out = 0;
    assert_int_equal(cg_http_chunked_decode(&settings, &d, buf, &len, &out, &err), 0);
    assert_int_equal(out, 4);
    assert_memory_equal(buf, "0123", 4);
    assert_int_equal(len, 3 + 4);
    char *rest = buf + len;
    size_t n2 = strlen(rest), out2 = 0;
    assert_int_equal(cg_http_chunked_decode(&settings, &d, rest, &n2, &out2, &err), 0);
    assert_int_equal(out2, 4);
    assert_memory_equal(rest, "4567", 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_extensions_valid),
        cmocka_unit_test(test_extensions_invalid),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_eof),
        cmocka_unit_test(test_out_max),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
