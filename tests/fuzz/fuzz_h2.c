/*
 * fuzz_h2.c - libFuzzer target for the HTTP/2 session (src/h2/): a client's
 * bytes after the connection preface, fed to a server session over a fake
 * transport in reads of a chosen size. The first input byte picks the read
 * size (bits 0-5: 1..64 bytes, 63: all at once) and how streams are served
 * (bit 6: read their bodies first and end with trailers; bit 7: fail every
 * other one, which resets it). Served at once, on this thread, as a pool thread would: the
 * body read without waiting, a response written through the view in
 * HTTP/1.1 syntax, then cg_h2_stream_served; the owner's syncs and sends
 * follow every read, as the worker's loop does them.
 *
 * Checked besides memory safety: feeding returns 0 or -EPROTO and nothing
 * after -EPROTO; sending never fails on a transport that takes everything;
 * a session that ended (-EPROTO) has nothing left to do once its GOAWAY is
 * out; every stream is released on one path, whether served before or
 * after the connection closed (LeakSanitizer sees the rest).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/h2/h2.h"
#include "tests/unit/h2/sink_conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


typedef struct run {
    cg_h2_stream_t *pending[1024];
    size_t npending;
    int wakes;
    uint8_t mode;
    unsigned served;
} run_t;

static void h_dispatch(void *owner, cg_h2_stream_t *st)
{
    run_t *r = owner;
    if (r->npending < sizeof(r->pending) / sizeof(r->pending[0]))
        r->pending[r->npending++] = st;
    else
        cg_h2_stream_served(st, -ECONNRESET); /* cannot hold more: as a failed app */
}

static void h_wake(void *ctx, cg_h2_session_t *s)
{
    ((run_t *)ctx)->wakes++;
}

/* What a pool thread would do with each dispatched stream. */
static void serve(run_t *r)
{
    for (size_t i = 0; i < r->npending; i++) {
        cg_h2_stream_t *st = r->pending[i];
        cg_conn_t *v = cg_h2_stream_conn(st);
        if (r->mode & 0x40) {
            char sink[4096];
            for (int k = 0; k < 64 && v->ops->recv(v, sink, sizeof(sink)) > 0; k++)
                ;
        }
        int rc = 0;
        if ((r->mode & 0x80) && (r->served++ & 1)) {
            rc = -EIO;
        } else {
            static const char resp[] = "HTTP/2.0 200 OK\r\nServer: gunicorn\r\nConnection: close"
                                       "\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabc";
            static const cg_str_t trailers[] = {CG_STR_LIT("X-Sum"), CG_STR_LIT("1"),
                                                CG_STR_LIT("Connection"), CG_STR_LIT("x")};
            if (cg_conn_write_all(v, resp, sizeof(resp) - 1) < 0 ||
                ((r->mode & 0x40) && v->ops->trailers(v, trailers, 2) < 0))
                rc = -ECONNRESET;
        }
        cg_h2_stream_served(st, rc);
    }
    r->npending = 0;
}

/* The owner's part after each read: syncs, then everything out. */
static void owner_turn(cg_h2_session_t *s, run_t *r)
{
    serve(r);
    while (r->wakes > 0) {
        r->wakes--;
        if (!cg_h2_session_sync(s))
            abort();
    }
    if (cg_h2_session_send(s) != 0)
        abort();
}

typedef struct env {
    cg_config_t cfg;
    cg_log_t log;
    cg_conn_policy_t pol;
    cg_h2_config_t hc;
} env_t;

/* Settings, log and policy: read-only once made, so made once. */
static const env_t *env_get(void)
{
    static env_t e;
    static bool ready;
    if (!ready) {
        char err[512];
        if (cg_config_init(&e.cfg, err, sizeof(err)) != 0 ||
            cg_config_set_string(&e.cfg, "http2_max_header_list_size", "4096", CG_SRC_CLI, err,
                                 sizeof(err)) != 0 ||
            cg_config_set_string(&e.cfg, "http2_max_concurrent_streams", "8", CG_SRC_CLI, err,
                                 sizeof(err)) != 0 ||
            cg_log_open(&e.log, "/dev/null", "critical", NULL, NULL, err, sizeof(err)) != 0 ||
            cg_conn_policy_init(&e.pol, &e.cfg, &e.log) != 0)
            abort();
        cg_h2_config_init(&e.hc, &e.cfg);
        ready = true;
    }
    return &e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const env_t *e = env_get();
    run_t r = {.mode = data[0]};
    size_t step = (data[0] & 0x3F) == 0x3F ? size : (size_t)(data[0] & 0x3F) + 1;
    data++;
    size--;

    cg_conn_t c;
    memset(&c, 0, sizeof(c));
    cg_conn_init(&c, &e->pol, 1024);
    c.ops = &sink_ops; /* transport NULL: the client is not checked */
    strcpy(c.peer_ip, "127.0.0.1");
    cg_h2_hooks_t hooks = {.dispatch = h_dispatch, .wake = h_wake, .wake_ctx = &r};
    cg_h2_session_t *s;
    if (cg_h2_session_new(&s, &e->hc, &e->pol, (cg_log_t *)&e->log, &c, &r, &hooks) != 0)
        abort();
    int rc = cg_h2_session_feed(s, (const uint8_t *)CG_H2_PREFACE, CG_H2_PREFACE_LEN);
    for (size_t off = 0; rc == 0 && off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        rc = cg_h2_session_feed(s, data + off, n);
        if (rc != 0 && rc != -EPROTO)
            abort();
        owner_turn(s, &r);
    }
    owner_turn(s, &r);
    if (rc == -EPROTO && !cg_h2_session_finished(s) && cg_h2_session_streams(s) == 0)
        abort(); /* the GOAWAY is out, nothing else is to do */
    /* streams still in an app when the connection goes: served after */
    size_t n = r.npending;
    cg_h2_stream_t *late[1024];
    memcpy(late, r.pending, n * sizeof(*late));
    r.npending = 0;
    cg_h2_session_close(s);
    for (size_t i = 0; i < n; i++)
        cg_h2_stream_served(late[i], -ECONNRESET);
    cg_conn_release(&c);
    return 0;
}
