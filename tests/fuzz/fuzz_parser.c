/*
 * fuzz_parser.c - libFuzzer target: PROXY header, request heads, bodies and
 * error rendering over one connection's bytes. The first two input bytes
 * pick settings and how the transport splits the rest.
 */
#include <stdint.h>
#include <stdio.h>

#include "guard.h"
#include "src/http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct feed {
    const char *p;
    size_t len, pos, step;
} feed_t;

static ssize_t feed_recv(void *ctx, char *dst, size_t cap)
{
    feed_t *f = ctx;
    size_t n = f->len - f->pos;
    if (n > f->step)
        n = f->step;
    if (n > cap)
        n = cap;
    memcpy(dst, f->p + f->pos, n);
    f->pos += n;
    return (ssize_t)n;
}

static void check_error(const cg_http_error_t *e)
{
    char text[256], page[1024];
    cg_http_error_text(e, text, sizeof(text));
    if (strlen(text) >= sizeof(text))
        abort();
    cg_http_error_response(e, page, sizeof(page));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t f0 = data[0], f1 = data[1];
    guarded_t g;
    char *in = guard_copy(&g, data + 2, size - 2);
    feed_t feed = {in, size - 2, 0, (size_t)(f1 & 0x3f) + 1};

    cg_http_settings_t s;
    cg_http_settings_init(&s, (f0 & 1) ? 64 : 4094, (f0 & 2) ? 4 : 100, (f0 & 4) ? 40 : 8190);
    s.permit_obsolete_folding = f0 & 8;
    s.strip_header_spaces = f0 & 16;
    s.permit_unconventional_http_method = f0 & 32;
    s.casefold_http_method = f0 & 32;
    s.permit_unconventional_http_version = f0 & 64;
    s.header_map = (cg_http_header_map_t)((f1 >> 6) % 3);
    bool trusted = f0 & 128;
    cg_http_proxy_mode_t pm = (cg_http_proxy_mode_t)((f1 >> 6) & 3);

    /* the connection buffer is small so compaction and "buffer full" happen */
    static char store[2048];
    cg_http_buf_t buf = {store, 0, 0, sizeof(store), 0};
    cg_http_header_t hdrs[128], trl[16];
    cg_http_request_t req = {.headers = hdrs, .headers_cap = 128};
    cg_http_error_t err;

    for (int nreq = 0; nreq < 64; nreq++) {
        if (nreq == 0) {
            for (;;) {
                cg_http_proxy_t px;
                ssize_t r = cg_http_parse_proxy(pm, buf.data + buf.off, buf.len - buf.off, trusted,
                                                &px, &err);
                if (r > 0) {
                    buf.off += (size_t)r;
                    break;
                }
                if (r == 0)
                    break;
                if (r < 0 && r != CG_EAGAIN) {
                    check_error(&err);
                    goto out;
                }
                if (buf.off) {
                    memmove(buf.data, buf.data + buf.off, buf.len - buf.off);
                    buf.len -= buf.off;
                    buf.off = 0;
                }
                ssize_t n = feed_recv(&feed, buf.data + buf.len, buf.cap - buf.len);
                if (n <= 0)
                    goto out;
                buf.len += (size_t)n;
            }
        }
        cg_http_parser_t p = {0};
        ssize_t rc;
        for (;;) {
            rc = cg_http_parse_request(&s, &p, buf.data + buf.off, buf.len - buf.off, trusted, &req);
            if (rc != CG_EAGAIN)
                break;
            if (buf.off) {
                memmove(buf.data, buf.data + buf.off, buf.len - buf.off);
                buf.len -= buf.off;
                buf.off = 0;
            }
            ssize_t n = feed_recv(&feed, buf.data + buf.len, buf.cap - buf.len);
            if (n <= 0)
                goto out;
            buf.len += (size_t)n;
        }
        if (rc < 0) {
            check_error(&req.error);
            goto out;
        }
        if ((size_t)rc != req.head_len || req.head_len > buf.len - buf.off)
            abort();
        for (size_t i = 0; i < req.nheaders; i++)
            if (req.headers[i].name.ptr < buf.data || req.headers[i].value.ptr + req.headers[i].value.len > buf.data + buf.len)
                abort();
        buf.off += (size_t)rc;
        cg_http_body_t body;
        cg_http_body_init(&body, &req, &s, &buf, feed_recv, &feed);
        body.chunked.trailers = trl;
        body.chunked.trailers_cap = 16;
        char chunk[97];
        ssize_t n;
        size_t rd = (size_t)(f1 % 97) + 1;
        while ((n = cg_http_body_read(&body, chunk, rd)) > 0)
            if ((size_t)n > rd)
                abort();
        if (n < 0) {
            check_error(&body.error);
            goto out;
        }
        if (!req.keep_alive)
            break;
    }
out:
    guard_free(&g);
    return 0;
}
