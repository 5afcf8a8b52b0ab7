/* test_session.c - the HTTP/2 session (src/h2/): frames made with nghttp2's
 * client API fed to a server session over a fake transport; the stream
 * views served by the test itself (no threads, no Python): the request
 * head as the parser saw it, a response written in HTTP/1.1 syntax coming
 * out as HEADERS and DATA, a body larger than the window, the 431 for an
 * oversized header list, rapid reset, and a bad preface. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "src/h2/h2.h"
#include "tests/unit/h2/sink_conn.h"


/* ---- the client: what it got per stream ---- */

typedef struct got {
    int status;
    char headers[1024];
    char data[1 << 20];
    size_t data_len;
    uint64_t received; /* all DATA bytes (data keeps the first MiB) */
    bool closed;
    uint32_t close_code;
} got_t;

typedef struct fixture {
    cg_config_t cfg;
    cg_log_t log;
    cg_conn_policy_t pol;
    cg_h2_config_t hc;
    cg_conn_t c;
    sink_t f;
    cg_h2_session_t *s;
    cg_h2_stream_t *dispatched[512];
    size_t ndispatched;
    size_t unserved; /* dispatched[0..unserved) never served */
    int wakes;
    nghttp2_session *cli;
    got_t got[8];
    int goaway; /* error code + 1; 0: none */
    const uint8_t *upload;
    size_t upload_len, upload_off;
} fixture_t;

static void h_dispatch(void *owner, cg_h2_stream_t *st)
{
    fixture_t *x = owner;
    assert_true(x->ndispatched < CG_ARRAY_SIZE(x->dispatched));
    x->dispatched[x->ndispatched++] = st;
}

static void h_wake(void *ctx, cg_h2_session_t *s)
{
    ((fixture_t *)ctx)->wakes++;
}

static got_t *got_of(fixture_t *x, int32_t id)
{
    size_t i = (size_t)(id - 1) / 2;
    return i < CG_ARRAY_SIZE(x->got) ? &x->got[i] : NULL;
}

static int c_on_header(nghttp2_session *ns, const nghttp2_frame *frame, const uint8_t *name,
                       size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                       void *user)
{
    got_t *g = got_of(user, frame->hd.stream_id);
    if (g == NULL)
        return 0;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        g->status = atoi((const char *)value);
        return 0;
    }
    size_t l = strlen(g->headers);
    snprintf(g->headers + l, sizeof(g->headers) - l, "%.*s: %.*s\n", (int)namelen, name,
             (int)valuelen, value);
    return 0;
}

static int c_on_data(nghttp2_session *ns, uint8_t flags, int32_t id, const uint8_t *data,
                     size_t len, void *user)
{
    got_t *g = got_of(user, id);
    if (g != NULL)
        g->received += len;
    if (g != NULL && g->data_len + len <= sizeof(g->data)) {
        memcpy(g->data + g->data_len, data, len);
        g->data_len += len;
    }
    return 0;
}

static int c_on_close(nghttp2_session *ns, int32_t id, uint32_t code, void *user)
{
    got_t *g = got_of(user, id);
    if (g != NULL) {
        g->closed = true;
        g->close_code = code;
    }
    return 0;
}

static int c_on_frame(nghttp2_session *ns, const nghttp2_frame *frame, void *user)
{
    fixture_t *x = user;
    if (frame->hd.type == NGHTTP2_GOAWAY)
        x->goaway = (int)frame->goaway.error_code + 1;
    return 0;
}

static ssize_t c_upload(nghttp2_session *ns, int32_t id, uint8_t *buf, size_t length,
                        uint32_t *flags, nghttp2_data_source *src, void *user)
{
    fixture_t *x = user;
    size_t n = x->upload_len - x->upload_off < length ? x->upload_len - x->upload_off : length;
    memcpy(buf, x->upload + x->upload_off, n);
    x->upload_off += n;
    if (x->upload_off == x->upload_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* The next setup()'s dispatch_at_head (the asgi worker's). */
static bool g_at_head;

static fixture_t *setup(const char *max_header_list)
{
    fixture_t *x = calloc(1, sizeof(*x));
    char err[512];
    assert_int_equal(cg_config_init(&x->cfg, err, sizeof(err)), 0);
    if (max_header_list != NULL)
        assert_int_equal(cg_config_set_string(&x->cfg, "http2_max_header_list_size",
                                              max_header_list, CG_SRC_CLI, err, sizeof(err)),
                         0);
    assert_int_equal(cg_log_open(&x->log, "/dev/null", "critical", NULL, NULL, err, sizeof(err)),
                     0);
    assert_int_equal(cg_conn_policy_init(&x->pol, &x->cfg, &x->log), 0);
    cg_h2_config_init(&x->hc, &x->cfg);
    x->hc.dispatch_at_head = g_at_head;
    cg_conn_init(&x->c, &x->pol, 4096);
    x->c.ops = &sink_ops;
    x->c.transport = &x->f;
    strcpy(x->c.peer_ip, "127.0.0.1");
    cg_h2_hooks_t hooks = {.dispatch = h_dispatch, .wake = h_wake, .wake_ctx = x};
    assert_int_equal(cg_h2_session_new(&x->s, &x->hc, &x->pol, &x->log, &x->c, x, &hooks), 0);

    nghttp2_session_callbacks *cb;
    assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session_callbacks_set_on_header_callback(cb, c_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, c_on_frame);
    assert_int_equal(nghttp2_session_client_new(&x->cli, cb, x), 0);
    nghttp2_session_callbacks_del(cb);
    assert_int_equal(nghttp2_submit_settings(x->cli, NGHTTP2_FLAG_NONE, NULL, 0), 0);
    return x;
}

static void teardown(fixture_t *x)
{
    cg_h2_session_close(x->s);
    for (size_t i = 0; i < x->unserved; i++) /* the app threads' side, after the close */
        cg_h2_stream_served(x->dispatched[i], -ECONNRESET);
    nghttp2_session_del(x->cli);
    free(x->f.out);
    cg_conn_release(&x->c);
    cg_conn_policy_free(&x->pol);
    cg_log_close(&x->log);
    cg_config_free(&x->cfg);
    free(x);
}

/* Move frames both ways until neither side has more; the owner's syncs
 * run as the loop would. Returns the server's last feed result. */
static int pump(fixture_t *x)
{
    int fed = 0;
    for (int round = 0; round < 1000; round++) {
        bool moved = false;
        for (;;) {
            const uint8_t *p;
            ssize_t n = nghttp2_session_mem_send(x->cli, &p);
            assert_true(n >= 0);
            if (n == 0)
                break;
            moved = true;
            if (fed == 0)
                fed = cg_h2_session_feed(x->s, p, (size_t)n);
        }
        while (x->wakes > 0) {
            x->wakes--;
            (void)cg_h2_session_sync(x->s);
        }
        int r = cg_h2_session_send(x->s);
        assert_true(r == 0);
        if (x->f.out_len > 0) {
            moved = true;
            ssize_t n = nghttp2_session_mem_recv(x->cli, x->f.out, x->f.out_len);
            assert_int_equal(n, (ssize_t)x->f.out_len);
            x->f.out_len = 0;
        }
        if (!moved)
            break;
    }
    return fed;
}

static int32_t request(fixture_t *x, const char *method, const char *path, const nghttp2_nv *more,
                       size_t nmore, bool body)
{
    nghttp2_nv nv[16] = {
        {(uint8_t *)":method", (uint8_t *)method, 7, strlen(method), 0},
        {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
        {(uint8_t *)":scheme", (uint8_t *)"https", 7, 5, 0},
        {(uint8_t *)":authority", (uint8_t *)"example.com", 10, 11, 0},
    };
    if (nmore > 0) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(nv + 4, more, nmore * sizeof(*more));
    nghttp2_data_provider prd = {.read_callback = c_upload};
    int32_t id = nghttp2_submit_request(x->cli, NULL, nv, 4 + nmore, body ? &prd : NULL, NULL);
    assert_true(id > 0);
    return id;
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, 0}

static const cg_http_header_t *find(const cg_http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (cg_str_caseeq(req->headers[i].name, name))
            return &req->headers[i];
    return NULL;
}

static void test_get_round_trip(void **state)
{
    fixture_t *x = setup(NULL);
    nghttp2_nv more[] = {NV("cookie", "a=1"), NV("user-agent", "t"), NV("cookie", "b=2"),
                         NV("host", "ignored.example")};
    int32_t id = request(x, "GET", "/p/q?x=1", more, CG_ARRAY_SIZE(more), false);
    assert_int_equal(pump(x), 0);
    assert_int_equal(x->ndispatched, 1);
    cg_conn_t *v = cg_h2_stream_conn(x->dispatched[0]);
    const cg_http_request_t *req = &v->req;
    assert_true(cg_str_eq(req->method, "GET", 3));
    assert_true(cg_str_eq(req->path, "/p/q", 4));
    assert_true(cg_str_eq(req->query, "x=1", 3));
    assert_int_equal(req->version_major, 2);
    assert_int_equal(req->version_minor, 0);
    assert_true(v->framed);
    assert_int_equal(v->fd, -1);
    /* :authority wins over Host; cookies joined */
    assert_true(cg_str_eq(find(req, "HOST")->value, "example.com", 11));
    assert_true(cg_str_eq(find(req, "COOKIE")->value, "a=1; b=2", 8));
    assert_true(cg_conn_body_done(v));

    static const char resp[] = "HTTP/2.0 200 OK\r\nServer: gunicorn\r\nConnection: close\r\n"
                               "Content-Length: 5\r\nX-Thing: Yes\r\n\r\nhello";
    assert_int_equal(cg_conn_write_all(v, resp, sizeof(resp) - 1), 0);
    cg_h2_stream_served(x->dispatched[0], 0);
    pump(x);
    got_t *g = got_of(x, id);
    assert_int_equal(g->status, 200);
    assert_non_null(strstr(g->headers, "x-thing: Yes\n"));
    assert_non_null(strstr(g->headers, "content-length: 5\n"));
    assert_null(strstr(g->headers, "connection"));
    assert_int_equal(g->data_len, 5);
    assert_memory_equal(g->data, "hello", 5);
    assert_true(g->closed);
    assert_int_equal(g->close_code, NGHTTP2_NO_ERROR);
    assert_int_equal(cg_h2_session_streams(x->s), 0);
    teardown(x);
}

static void test_body_beyond_window(void **state)
{
    fixture_t *x = setup(NULL);
    static uint8_t body[200000];
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (uint8_t)(i * 7);
    x->upload = body;
    x->upload_len = sizeof(body);
    int32_t id = request(x, "POST", "/up", NULL, 0, true);
    pump(x);
    /* the window (65535) is full: dispatched before the body is all in */
    assert_int_equal(x->ndispatched, 1);
    cg_conn_t *v = cg_h2_stream_conn(x->dispatched[0]);
    static char in[sizeof(body)];
    size_t have = 0;
    for (int rounds = 0; rounds < 100; rounds++) {
        ssize_t n;
        while ((n = v->ops->recv(v, in + have, sizeof(in) - have)) > 0)
            have += (size_t)n;
        if (n == 0)
            break;
        assert_int_equal(n, CG_EAGAIN);
        assert_true(have < sizeof(body));
        pump(x); /* the window comes back: the client sends more */
    }
    assert_int_equal(have, sizeof(body));
    assert_memory_equal(in, body, sizeof(body));
    static const char resp[] = "HTTP/2.0 204 No Content\r\n\r\n";
    assert_int_equal(cg_conn_write_all(v, resp, sizeof(resp) - 1), 0);
    cg_h2_stream_served(x->dispatched[0], 0);
    pump(x);
    assert_int_equal(got_of(x, id)->status, 204);
    assert_true(got_of(x, id)->closed);
    teardown(x);
}

/* dispatch_at_head: a stream is handed over at its HEADERS, before its
 * body; cg_h2_stream_state says what a read or write would meet. */
static void test_dispatch_at_head_and_state(void **state)
{
    g_at_head = true;
    fixture_t *x = setup(NULL);
    g_at_head = false;
    static const uint8_t body[3000] = {1, 2, 3};
    x->upload = body;
    x->upload_len = sizeof(body);
    int32_t id = request(x, "POST", "/up", NULL, 0, true);
    /* frame by frame (nghttp2 serializes one per call): dispatched at
     * the HEADERS, before any DATA */
    const uint8_t *p;
    ssize_t n;
    while (x->ndispatched == 0 && (n = nghttp2_session_mem_send(x->cli, &p)) > 0)
        assert_int_equal(cg_h2_session_feed(x->s, p, (size_t)n), 0);
    assert_int_equal(x->ndispatched, 1);
    cg_h2_stream_state_t ss;
    cg_h2_stream_state(x->dispatched[0], &ss);
    assert_false(ss.reset);
    assert_false(ss.readable);
    pump(x); /* then the body */
    cg_h2_stream_state(x->dispatched[0], &ss);
    assert_true(ss.readable);
    cg_conn_t *v = cg_h2_stream_conn(x->dispatched[0]);
    char in[4096];
    size_t have = 0;
    while ((n = v->ops->recv(v, in + have, sizeof(in) - have)) > 0)
        have += (size_t)n;
    assert_int_equal(n, 0);
    assert_int_equal(have, sizeof(body));
    static const char resp[] = "HTTP/2.0 200 OK\r\ncontent-length: 5\r\n\r\nhello";
    assert_int_equal(cg_conn_write_all(v, resp, sizeof(resp) - 1), 0);
    cg_h2_stream_state(x->dispatched[0], &ss);
    assert_int_equal(ss.out_pending, 5); /* in the spool until the owner syncs */
    cg_h2_stream_served(x->dispatched[0], 0);
    pump(x);
    assert_int_equal(got_of(x, id)->status, 200);
    assert_int_equal(got_of(x, id)->data_len, 5);
    teardown(x);
    /* h2c prior knowledge */
    assert_int_equal(cg_h2_preface_match(CG_H2_PREFACE, CG_H2_PREFACE_LEN), 1);
    assert_int_equal(cg_h2_preface_match(CG_H2_PREFACE "x", CG_H2_PREFACE_LEN + 1), 1);
    assert_int_equal(cg_h2_preface_match("PRI * HT", 8), 0);
    assert_int_equal(cg_h2_preface_match("GET / HTTP/1.1\r\n", 16), -1);
}

static void test_header_list_too_large(void **state)
{
    fixture_t *x = setup("1024");
    static char big[2000];
    memset(big, 'a', sizeof(big) - 1);
    nghttp2_nv more[] = {{(uint8_t *)"x-big", (uint8_t *)big, 5, sizeof(big) - 1, 0}};
    int32_t id = request(x, "GET", "/", more, 1, false);
    assert_int_equal(pump(x), 0);
    assert_int_equal(x->ndispatched, 0); /* refused before any thread */
    assert_int_equal(got_of(x, id)->status, 431);
    assert_true(got_of(x, id)->closed);
    /* decoding to far more than the limit ends the connection */
    static char bigger[5000];
    memset(bigger, 'b', sizeof(bigger) - 1);
    nghttp2_nv bomb[] = {{(uint8_t *)"x-big", (uint8_t *)bigger, 5, sizeof(bigger) - 1, 0}};
    request(x, "GET", "/", bomb, 1, false);
    assert_int_equal(pump(x), -EPROTO);
    assert_int_equal(x->goaway, NGHTTP2_ENHANCE_YOUR_CALM + 1);
    assert_true(cg_h2_session_finished(x->s));
    teardown(x);
}

static void test_rapid_reset(void **state)
{
    fixture_t *x = setup(NULL);
    int fed = pump(x); /* SETTINGS both ways first */
    for (int i = 0; i < 300 && fed == 0; i++) {
        int32_t id = request(x, "GET", "/", NULL, 0, false);
        fed = pump(x); /* the HEADERS go out, then the reset */
        assert_int_equal(nghttp2_submit_rst_stream(x->cli, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL),
                         0);
        if (fed == 0)
            fed = pump(x);
    }
    assert_int_equal(fed, -EPROTO);
    assert_int_equal(x->goaway, NGHTTP2_ENHANCE_YOUR_CALM + 1);
    /* at most max_concurrent_streams ran at once; the rest never did */
    assert_true(x->ndispatched <= 100);
    x->unserved = x->ndispatched; /* never answered: teardown's part */
    teardown(x);
}

static void test_spool_full_waits(void **state)
{
    /* A client that does not read: the app's writes fill the stream's spool
     * (memory, then the temporary file) and then wait (no spinning: wait
     * says no room) until the client takes some. */
    fixture_t *x = setup(NULL);
    int32_t id = request(x, "GET", "/big", NULL, 0, false);
    pump(x);
    assert_int_equal(x->ndispatched, 1);
    cg_conn_t *v = cg_h2_stream_conn(x->dispatched[0]);
    static const char head[] = "HTTP/2.0 200 OK\r\n\r\n";
    assert_int_equal(cg_conn_write_all(v, head, sizeof(head) - 1), 0);
    static char block[1 << 20];
    memset(block, 'z', sizeof(block));
    size_t total = 0;
    for (;;) {
        struct iovec iov = {block, sizeof(block)};
        ssize_t n = v->ops->writev(v, &iov, 1);
        if (n == CG_EAGAIN)
            break;
        assert_true(n > 0);
        total += (size_t)n;
        assert_true(total < (100u << 20));
    }
    assert_true(total >= (64u << 20)); /* 256 KiB in memory, 64 MiB on file */
    assert_int_equal(v->ops->wait(v, CG_CONN_WANT_WRITE, 0), -ETIMEDOUT);
    /* the client reads (nghttp2 opens its windows as it does) */
    while (x->wakes > 0) {
        x->wakes--;
        (void)cg_h2_session_sync(x->s);
    }
    pump(x);
    assert_int_equal(v->ops->wait(v, CG_CONN_WANT_WRITE, 0), 0);
    struct iovec iov = {block, 1000};
    assert_int_equal(v->ops->writev(v, &iov, 1), 1000);
    cg_h2_stream_served(x->dispatched[0], 0);
    for (int i = 0; i < 10000 && !got_of(x, id)->closed; i++)
        pump(x);
    assert_true(got_of(x, id)->closed);
    assert_int_equal(got_of(x, id)->received, total + 1000);
    teardown(x);
}

/* Parse an HTTP/1.1 head into req (headers in hdrs). */
static void parse_h1(fixture_t *x, char *text, cg_http_request_t *req, cg_http_header_t *hdrs)
{
    cg_http_parser_t p = {0};
    memset(req, 0, sizeof(*req));
    req->headers = hdrs;
    req->headers_cap = 16;
    assert_true(cg_http_parse_request(&x->pol.hs, &p, text, strlen(text), true, req) > 0);
}

static void test_upgrade(void **state)
{
    fixture_t *x = setup(NULL);
    cg_http_request_t req;
    cg_http_header_t hdrs[16];
    cg_str_t settings;
    char ok[] = "GET /u?q HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";
    parse_h1(x, ok, &req, hdrs);
    assert_true(cg_h2_upgrade_wanted(&req, &settings));
    assert_true(cg_str_eq(settings, "AAMAAABkAAQCAAAAAAIAAAAA", 24));
    /* a body, no HTTP2-Settings in Connection, another protocol: no */
    char body[] = "POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                  "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\nContent-Length: 1\r\n\r\n";
    parse_h1(x, body, &req, hdrs);
    assert_false(cg_h2_upgrade_wanted(&req, &settings));
    char noconn[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
                    "HTTP2-Settings: AAMAAABk\r\n\r\n";
    parse_h1(x, noconn, &req, hdrs);
    assert_false(cg_h2_upgrade_wanted(&req, &settings));
    char ws[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                "Upgrade: websocket\r\nHTTP2-Settings: AAMAAABk\r\n\r\n";
    parse_h1(x, ws, &req, hdrs);
    assert_false(cg_h2_upgrade_wanted(&req, &settings));

    /* settings that do not decode: refused, nothing happened */
    assert_int_equal(cg_h2_session_upgrade(x->s, ok, strlen(ok), false, CG_STR_LIT("A*A")),
                     -EPROTO);
    assert_int_equal(x->ndispatched, 0);
    /* good ones: the request is stream 1, ready to run */
    parse_h1(x, ok, &req, hdrs);
    assert_true(cg_h2_upgrade_wanted(&req, &settings));
    assert_int_equal(cg_h2_session_upgrade(x->s, ok, strlen(ok), false, settings), 0);
    assert_int_equal(x->ndispatched, 1);
    cg_conn_t *v = cg_h2_stream_conn(x->dispatched[0]);
    assert_true(cg_str_eq(v->req.path, "/u", 2));
    assert_int_equal(v->req.version_major, 2);
    assert_true(cg_conn_body_done(v));
    x->unserved = 1;
    teardown(x);
}

static void test_bad_preface(void **state)
{
    fixture_t *x = setup(NULL);
    static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(cg_h2_session_feed(x->s, (const uint8_t *)junk, sizeof(junk) - 1), -EPROTO);
    assert_int_equal(cg_h2_session_send(x->s), 0);
    assert_true(cg_h2_session_finished(x->s));
    teardown(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_round_trip),
        cmocka_unit_test(test_body_beyond_window),
        cmocka_unit_test(test_dispatch_at_head_and_state),
        cmocka_unit_test(test_header_list_too_large),
        cmocka_unit_test(test_rapid_reset),
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_spool_full_waits),
        cmocka_unit_test(test_bad_preface),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
