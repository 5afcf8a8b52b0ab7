/*
 * test_body.c - the request body reader (src/http/body.c) over a connection
 * buffer and a scripted transport: Content-Length and chunked bodies, what
 * is left for the next pipelined request, truncation, transport errors and
 * framing errors. Each case runs with the transport cutting the bytes at
 * every position and with every read size from 1 up.
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

/* ------------------------------------------------------------ scripted peer */

typedef struct peer {
    const char *data;
    size_t len, pos;
    size_t cut;      /* deliver at most up to here first (0: none) */
    ssize_t at_end;  /* what recv returns once data is used up: 0 EOF, or -errno */
    size_t nrecv;    /* calls made */
    size_t maxwant;  /* largest cap asked for */
} peer_t;

static ssize_t peer_recv(void *ctx, char *dst, size_t cap)
{
    peer_t *p = ctx;
    p->nrecv++;
    if (cap > p->maxwant)
        p->maxwant = cap;
    if (p->pos >= p->len)
        return p->at_end;
    size_t lim = p->cut && p->pos < p->cut ? p->cut : p->len;
    size_t n = lim - p->pos;
    if (n > cap)
        n = cap;
    memcpy(dst, p->data + p->pos, n);
    p->pos += n;
    return (ssize_t)n;
}

static cg_http_settings_t settings;

typedef struct run {
    ssize_t last;            /* 0 at the end of the body, or the error */
    cg_http_errcode_t code;  /* b->error on -EPROTO */
    bool truncated;
    char body[8192];
    size_t nbody;
    char left[8192];         /* buffered + not yet received: the next request */
    size_t nleft;
    size_t maxwant;          /* the largest recv the reader asked for */
} run_t;

/*
 * The head was `head` (pinned in the buffer); `buffered` bytes of the
 * stream already came with it; the peer sends the rest of `stream`.
 */
static void read_body(cg_http_body_kind_t kind, uint64_t cl, const char *stream, size_t n,
                      size_t buffered, size_t cut, size_t readsz, ssize_t at_end, run_t *r)
{
    static char storage[4096];
    const char *head = "POST / HTTP/1.1\r\n\r\n";
    size_t hl = strlen(head);
    memcpy(storage, head, hl);
    memcpy(storage + hl, stream, buffered);
    cg_http_buf_t buf = {storage, hl, hl + buffered, sizeof(storage), hl};
    peer_t peer = {stream + buffered, n - buffered, 0, cut, at_end, 0, 0};
    cg_http_request_t req = {.body_kind = kind, .content_length = cl};
    cg_http_body_t b;
    cg_http_body_init(&b, &req, &settings, &buf, peer_recv, &peer);

    memset(r, 0, sizeof(*r));
    char chunk[4096];
    for (;;) {
        ssize_t k = cg_http_body_read(&b, chunk, readsz);
        if (k <= 0) {
            r->last = k;
            break;
        }
        assert_true((size_t)k <= readsz);
        memcpy(r->body + r->nbody, chunk, (size_t)k);
        r->nbody += (size_t)k;
    }
    if (r->last == -EPROTO) {
        r->code = b.error.code;
        /* the error sticks */
        assert_int_equal(cg_http_body_read(&b, chunk, readsz), -EPROTO);
    }
    if (r->last == 0) {
        assert_true(b.done);
        assert_int_equal(cg_http_body_read(&b, chunk, readsz), 0);
    }
    r->truncated = b.truncated;
    r->maxwant = peer.maxwant;
    /* the pinned head is never touched */
    assert_memory_equal(storage, head, hl);
    memcpy(r->left, buf.data + buf.off, buf.len - buf.off);
    r->nleft = buf.len - buf.off;
    memcpy(r->left + r->nleft, peer.data + peer.pos, peer.len - peer.pos);
    r->nleft += peer.len - peer.pos;
}

/* Every split of what was buffered vs received, every cut, read sizes 1..9
 * and 4096: the same body, rest and verdict. */
static void expect(cg_http_body_kind_t kind, uint64_t cl, const char *stream, size_t n,
                   ssize_t last, cg_http_errcode_t code, const char *body, const char *left,
                   bool truncated)
{
    static const size_t sizes[] = {1, 2, 3, 5, 9, 4096};
    for (size_t buffered = 0; buffered <= n; buffered++) {
        for (size_t cut = 0; cut + buffered <= n; cut += (n > 40 ? 7 : 1)) {
            for (size_t si = 0; si < CG_ARRAY_SIZE(sizes); si++) {
                run_t r;
                read_body(kind, cl, stream, n, buffered, cut, sizes[si], 0, &r);
                if (r.last != last || r.code != code || r.truncated != truncated)
                    fail_msg("buffered %zu cut %zu read %zu: last %zd %s truncated %d", buffered,
                             cut, sizes[si], r.last, cg_http_error_name(r.code), r.truncated);
                if (last == 0) {
                    assert_int_equal(r.nbody, strlen(body));
                    assert_memory_equal(r.body, body, r.nbody);
                    assert_int_equal(r.nleft, strlen(left));
                    assert_memory_equal(r.left, left, r.nleft);
                }
            }
        }
    }
}

static int setup(void **state)
{
    (void)state;
    cg_http_settings_init(&settings, 4094, 100, 8190);
    return 0;
}

/* ------------------------------------------------------------ tests */

static void test_length(void **state)
{
    (void)state;
    const char *s = "helloGET /next HTTP/1.1\r\n\r\n";
    /* never past the end: the next request stays with the connection */
    expect(CG_HTTP_BODY_LENGTH, 5, s, strlen(s), 0, CG_HTTP_E_NONE, "hello",
           "GET /next HTTP/1.1\r\n\r\n", false);
    expect(CG_HTTP_BODY_LENGTH, 1, "xy", 2, 0, CG_HTTP_E_NONE, "x", "y", false);
    /* an EOF first: the app gets a short body, as Gunicorn's LengthReader */
    expect(CG_HTTP_BODY_LENGTH, 10, "hello", 5, 0, CG_HTTP_E_NONE, "hello", "", true);
}

static void test_length_asks_no_more_than_left(void **state)
{
    (void)state;
    run_t r;
    /* nothing buffered: every recv asks for at most the remaining bytes */
    const char *s = "0123456789NEXT";
    read_body(CG_HTTP_BODY_LENGTH, 10, s, strlen(s), 0, 0, 4096, 0, &r);
    assert_int_equal(r.maxwant, 10);
    assert_int_equal(r.nbody, 10);
    assert_int_equal(r.nleft, 4);
    assert_memory_equal(r.left, "NEXT", 4);
}

static void test_empty(void **state)
{
    (void)state;
    /* no body, or Content-Length: 0: done without a recv */
    static char storage[64];
    cg_http_buf_t buf = {storage, 0, 0, sizeof(storage), 0};
    peer_t peer = {"GET", 3, 0, 0, 0, 0, 0};
    char dst[8];
    cg_http_body_t b;
    cg_http_request_t req = {.body_kind = CG_HTTP_BODY_NONE};
    cg_http_body_init(&b, &req, &settings, &buf, peer_recv, &peer);
    assert_true(b.done);
    assert_int_equal(cg_http_body_read(&b, dst, sizeof(dst)), 0);
    req = (cg_http_request_t){.body_kind = CG_HTTP_BODY_LENGTH, .content_length = 0};
    cg_http_body_init(&b, &req, &settings, &buf, peer_recv, &peer);
    assert_true(b.done);
    assert_int_equal(cg_http_body_read(&b, dst, sizeof(dst)), 0);
    /* a zero-sized read of a pending body is no EOF either */
    req = (cg_http_request_t){.body_kind = CG_HTTP_BODY_LENGTH, .content_length = 2};
    cg_http_body_init(&b, &req, &settings, &buf, peer_recv, &peer);
    assert_int_equal(cg_http_body_read(&b, dst, 0), 0);
    assert_false(b.done);
    assert_int_equal(peer.nrecv, 0);
}

static void test_chunked(void **state)
{
    (void)state;
    const char *s = "5\r\nhello\r\n6;x=\"y\"\r\n world\r\n0\r\nX-T: 1\r\n\r\n"
                    "GET / HTTP/1.1\r\n\r\n";
    expect(CG_HTTP_BODY_CHUNKED, 0, s, strlen(s), 0, CG_HTTP_E_NONE, "hello world",
           "GET / HTTP/1.1\r\n\r\n", false);
    expect(CG_HTTP_BODY_CHUNKED, 0, "0\r\n\r\n", 5, 0, CG_HTTP_E_NONE, "", "", false);
}

static void test_chunked_errors(void **state)
{
    (void)state;
    const char *s = "5\r\nhello\r\nzz\r\n";
    expect(CG_HTTP_BODY_CHUNKED, 0, s, strlen(s), -EPROTO, CG_HTTP_E_INVALID_CHUNK_SIZE, NULL,
           NULL, false);
    s = "1;\r\nx\r\n0\r\n\r\n"; /* RFC 9112 7.1.1: an extension needs a name */
    expect(CG_HTTP_BODY_CHUNKED, 0, s, strlen(s), -EPROTO, CG_HTTP_E_INVALID_CHUNK_EXTENSION,
           NULL, NULL, false);
    s = "1;a=\"open\r\nx\r\n0\r\n\r\n";
    expect(CG_HTTP_BODY_CHUNKED, 0, s, strlen(s), -EPROTO, CG_HTTP_E_INVALID_CHUNK_EXTENSION,
           NULL, NULL, false);
    s = "1\r\nxx";
    expect(CG_HTTP_BODY_CHUNKED, 0, s, strlen(s), -EPROTO, CG_HTTP_E_CHUNK_MISSING_TERMINATOR,
           NULL, NULL, false);
    /* EOF verdicts */
    expect(CG_HTTP_BODY_CHUNKED, 0, "5\r\nhel", 6, -EPROTO, CG_HTTP_E_NO_MORE_DATA, NULL, NULL,
           false);
    expect(CG_HTTP_BODY_CHUNKED, 0, "5\r\nhello", 8, -EPROTO, CG_HTTP_E_CHUNK_MISSING_TERMINATOR,
           NULL, NULL, false);
    expect(CG_HTTP_BODY_CHUNKED, 0, "0\r\nX: 1\r\n", 10, -EPROTO,
           CG_HTTP_E_CHUNK_MISSING_TERMINATOR, NULL, NULL, false);
}

/* A size line bigger than the whole connection buffer. */
static void test_chunked_buffer_full(void **state)
{
    (void)state;
    static char storage[256];
    static char line[600];
    memset(line, '0', sizeof(line));
    cg_http_buf_t buf = {storage, 0, 0, sizeof(storage), 0};
    peer_t peer = {line, sizeof(line), 0, 0, 0, 0, 0};
    cg_http_request_t req = {.body_kind = CG_HTTP_BODY_CHUNKED};
    cg_http_body_t b;
    cg_http_body_init(&b, &req, &settings, &buf, peer_recv, &peer);
    char dst[16];
    assert_int_equal(cg_http_body_read(&b, dst, sizeof(dst)), -EPROTO);
    assert_int_equal(b.error.code, CG_HTTP_E_INVALID_CHUNK_SIZE);
}

/* Transport errors and would-block pass through; the body goes on after. */
static void test_transport(void **state)
{
    (void)state;
    static const ssize_t errs[] = {-ECONNRESET, -EPIPE, CG_EAGAIN};
    for (size_t i = 0; i < CG_ARRAY_SIZE(errs); i++) {
        for (int chunked = 0; chunked < 2; chunked++) {
            static char storage[128];
            cg_http_buf_t buf = {storage, 0, 0, sizeof(storage), 0};
            const char *s = chunked ? "3\r\nab" : "ab";
            peer_t peer = {s, strlen(s), 0, 0, errs[i], 0, 0};
            cg_http_request_t req = {.body_kind = chunked ? CG_HTTP_BODY_CHUNKED
                                                          : CG_HTTP_BODY_LENGTH,
                                     .content_length = 3};
            cg_http_body_t b;
            cg_http_body_init(&b, &req, &settings, &buf, peer_recv, &peer);
            char dst[16];
            assert_int_equal(cg_http_body_read(&b, dst, sizeof(dst)), 2);
            assert_memory_equal(dst, "ab", 2);
            assert_int_equal(cg_http_body_read(&b, dst, sizeof(dst)), errs[i]);
            assert_false(b.done);
            /* the peer goes on */
            peer.data = chunked ? "3\r\nabc\r\n0\r\n\r\n" : "abc";
            peer.len = strlen(peer.data);
            assert_int_equal(cg_http_body_read(&b, dst, sizeof(dst)), 1);
            assert_int_equal(dst[0], 'c');
            assert_int_equal(cg_http_body_read(&b, dst, sizeof(dst)), 0);
            assert_true(b.done);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length),
        cmocka_unit_test(test_length_asks_no_more_than_left),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_chunked_errors),
        cmocka_unit_test(test_chunked_buffer_full),
        cmocka_unit_test(test_transport),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
