/*
 * body.c - request body reader over the connection buffer and transport.
 *
 * Content-Length bodies are read straight into the caller's memory once the
 * buffered bytes are used up, and never past the body's end: whatever follows
 * on the connection belongs to the next request. Chunked bodies are decoded
 * in the connection buffer (their framing bytes are not the caller's business)
 * and bytes after the final CRLF stay there for the next pipelined request.
 */
#include "http.h"

#include <string.h>

void cg_http_body_init(cg_http_body_t *b, const cg_http_request_t *req,
                       const cg_http_settings_t *s, cg_http_buf_t *buf, cg_http_recv_fn recv,
                       void *recv_ctx)
{
    memset(b, 0, sizeof(*b));
    b->kind = req->body_kind;
    b->remaining = req->body_kind == CG_HTTP_BODY_LENGTH ? req->content_length : 0;
    b->settings = s;
    b->buf = buf;
    b->recv = recv;
    b->recv_ctx = recv_ctx;
    cg_http_chunked_init(&b->chunked);
    b->done = b->kind == CG_HTTP_BODY_NONE || (b->kind == CG_HTTP_BODY_LENGTH && !b->remaining);
}

static void consume(cg_http_buf_t *buf, size_t n)
{
    buf->off += n;
    if (buf->off == buf->len)
        buf->off = buf->len = buf->keep;
}

static ssize_t read_length(cg_http_body_t *b, char *dst, size_t cap)
{
    cg_http_buf_t *buf = b->buf;
    size_t want = cap;
    if (want > b->remaining)
        want = (size_t)b->remaining;
    size_t avail = buf->len - buf->off;
    if (avail > 0) {
        size_t n = avail < want ? avail : want;
        memcpy(dst, buf->data + buf->off, n);
        consume(buf, n);
        b->remaining -= n;
        b->done = b->remaining == 0;
        return (ssize_t)n;
    }
    ssize_t r = b->recv(b->recv_ctx, dst, want);
    if (r == 0) { /* Gunicorn gives the app what came: a short body */
        b->truncated = true;
        b->done = true;
        return 0;
    }
    if (r < 0)
        return r;
    b->remaining -= (size_t)r;
    b->done = b->remaining == 0;
    return r;
}

static ssize_t read_chunked(cg_http_body_t *b, char *dst, size_t cap)
{
    cg_http_buf_t *buf = b->buf;
    cg_http_chunked_t *d = &b->chunked;

    for (;;) {
        if (d->done) {
            b->done = true;
            return 0;
        }
        size_t avail = buf->len - buf->off;
        if (avail > 0) {
            char *src = buf->data + buf->off;
            size_t in = avail, o = 0;
            d->out_max = cap;
            int rc = cg_http_chunked_decode(b->settings, d, src, &in, &o, &b->error);
            if (rc < 0)
                return -EPROTO;
            if (o > 0)
                memcpy(dst, src, o);
            consume(buf, in);
            if (o > 0)
                return (ssize_t)o;
            if (rc == 1) {
                b->done = true;
                return 0;
            }
            if (in > 0)
                continue;
        }
        /* need more input: make all the free space contiguous, then receive */
        if (buf->off > buf->keep) {
            memmove(buf->data + buf->keep, buf->data + buf->off, buf->len - buf->off);
            buf->len -= buf->off - buf->keep;
            buf->off = buf->keep;
        }
        if (buf->len == buf->cap) {
            /* a size line or trailer section bigger than the whole buffer */
            memset(&b->error, 0, sizeof(b->error));
            if (d->trailer_len > 0) { /* stuck inside the trailer section */
                b->error.code = CG_HTTP_E_LIMIT_REQUEST_HEADERS;
                b->error.lit = "max buffer headers";
            } else {
                b->error.code = CG_HTTP_E_INVALID_CHUNK_SIZE;
                b->error.arg = (cg_str_t){buf->data, buf->len < 64 ? buf->len : 64};
            }
            return -EPROTO;
        }
        ssize_t r = b->recv(b->recv_ctx, buf->data + buf->len, buf->cap - buf->len);
        if (r == 0) {
            if (cg_http_chunked_eof(d, buf->data + buf->off, buf->len - buf->off, &b->error) < 0)
                return -EPROTO;
            b->done = true;
            return 0;
        }
        if (r < 0)
            return r;
        buf->len += (size_t)r;
    }
}

ssize_t cg_http_body_read(cg_http_body_t *b, char *dst, size_t cap)
{
    if (b->error.code != CG_HTTP_E_NONE)
        return -EPROTO;
    if (b->done || cap == 0)
        return 0;
    if (b->kind == CG_HTTP_BODY_LENGTH)
        return read_length(b, dst, cap);
    return read_chunked(b, dst, cap);
}
