/*
 * stream.c - an HTTP/2 stream as a cg_conn_t the WSGI layer serves: the
 * request head rebuilt as HTTP/1.1 text and parsed by the one parser, and a
 * transport whose recv reads the stream's DATA and whose writev turns the
 * HTTP/1.1 response the WSGI layer writes into HEADERS plus spooled body
 * bytes (see h2.h for why).
 *
 * The transport ops run on the app's thread and never call nghttp2: they
 * move bytes under the session's mutex and post the stream for the owner's
 * cg_h2_session_sync().
 */
#include "h2_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the request head ---- */

static void cg__buf_put(cg_conn_t *c, const char *p, size_t n)
{
    if (c->buf.len + n > c->buf.cap) {
        size_t cap = c->buf.cap * 2 > c->buf.len + n ? c->buf.cap * 2 : c->buf.len + n + 256;
        c->buf.data = cg_xrealloc(c->buf.data, cap);
        c->buf.cap = cap;
    }
    memcpy(c->buf.data + c->buf.len, p, n);
    c->buf.len += n;
}

void cg_h2__head_text(cg_h2_stream_t *st, const char *text, size_t len)
{
    cg__buf_put(&st->c, text, len);
}

static char *cg__dup(const char *p, size_t n)
{
    char *d = cg_xmalloc(n + 1);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

/* "METHOD target HTTP/1.1", then Host from :authority. RFC 9113 section
 * 8.3.1: CONNECT has no :path, its target is the authority. */
static void cg__line(cg_h2_stream_t *st)
{
    cg_conn_t *c = &st->c;
    if (st->line_done)
        return;
    st->line_done = true;
    cg__buf_put(c, st->method ? st->method : "", st->method_len);
    cg__buf_put(c, " ", 1);
    if (st->path != NULL)
        cg__buf_put(c, st->path, st->path_len);
    else if (st->authority != NULL)
        cg__buf_put(c, st->authority, st->authority_len);
    cg__buf_put(c, " HTTP/1.1\r\n", 11);
    if (st->authority != NULL) {
        /* :authority stands for Host, and wins over a Host field (as
         * Gunicorn's HTTP2Request does) */
        cg__buf_put(c, "host: ", 6);
        cg__buf_put(c, st->authority, st->authority_len);
        cg__buf_put(c, "\r\n", 2);
    }
}

void cg_h2__head_field(cg_h2_stream_t *st, const char *name, size_t namelen, const char *value,
                       size_t valuelen)
{
    cg_conn_t *c = &st->c;
    /* nghttp2 has checked the pseudo-headers (RFC 9113 section 8.3: each
     * once, before the regular fields, the required ones present) and
     * refused connection-specific fields (section 8.2.2), upper-case
     * names, and CR/LF/NUL or edge whitespace in values (section 8.2.1) */
    if (namelen > 0 && name[0] == ':') {
        if (namelen == 7 && memcmp(name, ":method", 7) == 0) {
            st->method = cg__dup(value, valuelen);
            st->method_len = valuelen;
        } else if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
            st->path = cg__dup(value, valuelen);
            st->path_len = valuelen;
        } else if (namelen == 10 && memcmp(name, ":authority", 10) == 0) {
            st->authority = cg__dup(value, valuelen);
            st->authority_len = valuelen;
        }
        /* :scheme: the connection says it (TLS or not), as for HTTP/1.1 */
        return;
    }
    cg__line(st);
    if (namelen == 4 && memcmp(name, "host", 4) == 0 && st->authority != NULL)
        return;
    if (namelen == 6 && memcmp(name, "cookie", 6) == 0) {
        /* RFC 9113 section 8.2.3: split cookies are joined with "; "
         * before reaching an HTTP/1.1 application */
        st->cookie = cg_xrealloc(st->cookie, st->cookie_len + valuelen + 2);
        if (st->cookie_len > 0) {
            memcpy(st->cookie + st->cookie_len, "; ", 2);
            st->cookie_len += 2;
        }
        memcpy(st->cookie + st->cookie_len, value, valuelen);
        st->cookie_len += valuelen;
        return;
    }
    cg__buf_put(c, name, namelen);
    cg__buf_put(c, ": ", 2);
    cg__buf_put(c, value, valuelen);
    cg__buf_put(c, "\r\n", 2);
}

int cg_h2__head_parse(cg_h2_stream_t *st, bool end_stream)
{
    cg_h2_session_t *s = st->s;
    cg_conn_t *c = &st->c;
    if (st->too_large) {
        /* RFC 9113 section 10.5.1: a 431 rather than a reset, as HTTP/1.1
         * answers LimitRequestHeaders */
        cg_http_error_t err = {.code = CG_HTTP_E_LIMIT_REQUEST_HEADERS,
                               .arg = CG_STR_LIT("HTTP/2 header list too large")};
        cg_conn_refuse(c, s->pol, s->log, &err);
        return -1;
    }
    cg__line(st);
    if (st->cookie != NULL) {
        cg__buf_put(c, "cookie: ", 8);
        cg__buf_put(c, st->cookie, st->cookie_len);
        cg__buf_put(c, "\r\n", 2);
    }
    cg__buf_put(c, "\r\n", 2);
    return cg_h2__head_run(st, end_stream);
}

int cg_h2__head_run(cg_h2_stream_t *st, bool end_stream)
{
    cg_h2_session_t *s = st->s;
    cg_conn_t *c = &st->c;
    int h = cg_conn_head_step(c, s->pol, s->log);
    if (h == 0) { /* cannot happen on a complete head; refuse all the same */
        cg_http_error_t err = {.code = CG_HTTP_E_INVALID_HEADER, .arg = CG_STR_LIT("")};
        cg_conn_refuse(c, s->pol, s->log, &err);
        h = -1;
    }
    if (h < 0)
        return -1;
    cg_http_request_t *req = &c->req;
    /* SERVER_PROTOCOL and the access log say HTTP/2.0, as Gunicorn's
     * HTTP2Request (version (2, 0)) */
    req->version_major = 2;
    req->version_minor = 0;
    req->keep_alive = true;
    if (!end_stream && req->body_kind == CG_HTTP_BODY_NONE) {
        /* a body without Content-Length: it ends with the stream
         * (END_STREAM reads as EOF) */
        req->body_kind = CG_HTTP_BODY_LENGTH;
        req->content_length = UINT64_MAX;
    }
    c->buf.off = c->buf.keep = req->head_len;
    cg_http_body_init(&c->body, req, &s->pol->hs, &c->buf, cg_conn_recv, c);
    st->parsed = true;
    return 1;
}

/* ---- the response head ---- */

/* Fields HTTP/2 forbids in a response (RFC 9113 section 8.2.2) that the
 * HTTP/1.1 head may carry. */
static bool cg__conn_specific(const char *n, size_t len)
{
    static const char *const names[] = {"connection", "keep-alive", "proxy-connection",
                                        "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < CG_ARRAY_SIZE(names); i++) {
        size_t l = strlen(names[i]);
        if (len == l && strncasecmp(n, names[i], l) == 0)
            return true;
    }
    return false;
}

/* A block for nnv fields of `bytes` bytes of names and values in all. */
static cg_h2_head_t *cg__head_alloc(int status, size_t nnv, size_t bytes)
{
    cg_h2_head_t *h = cg_xmalloc(sizeof(*h) + nnv * sizeof(nghttp2_nv) + bytes);
    h->next = NULL;
    h->status = status;
    h->nnv = 0;
    h->nv = (nghttp2_nv *)(h + 1);
    return h;
}

/* Append one field at *out (the block's bytes): its name lower-cased (RFC
 * 9113 section 8.2.1), unless HTTP/2 forbids it. */
static void cg__head_add(cg_h2_head_t *h, uint8_t **out, const char *n, size_t nl, const char *v,
                         size_t vl)
{
    if (nl == 0 || cg__conn_specific(n, nl))
        return;
    uint8_t *o = *out;
    for (size_t i = 0; i < nl; i++) {
        char ch = n[i];
        o[i] = (uint8_t)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    memcpy(o + nl, v, vl);
    h->nv[h->nnv++] = (nghttp2_nv){o, o + nl, nl, vl, NGHTTP2_NV_FLAG_NONE};
    *out = o + nl + vl;
}

/* One HTTP/1.1 response head (ours: status line, "Name: value" lines,
 * CRLF CRLF) as HTTP/2 fields. NULL when it is not one. */
static cg_h2_head_t *cg__head_convert(const char *p, size_t len)
{
    size_t eol = cg_http_find_crlf(p, len);
    const char *sp = memchr(p, ' ', eol);
    if (sp == NULL || (size_t)(sp - p) + 4 > eol)
        return NULL;
    int status = 0;
    for (int i = 1; i <= 3; i++) {
        char d = sp[i];
        if (d < '0' || d > '9')
            return NULL;
        status = status * 10 + (d - '0');
    }
    /* RFC 9113 section 8.6: no 101 (Switching Protocols) in HTTP/2 */
    if (status < 100 || status == 101)
        return NULL;
    /* two passes: count and size, then fill one block */
    size_t nnv = 1, bytes = 3;
    for (size_t pos = eol + 2; pos < len;) {
        size_t e = pos + cg_http_find_crlf(p + pos, len - pos);
        if (e == pos)
            break;
        nnv++;
        bytes += e - pos;
        pos = e + 2;
    }
    cg_h2_head_t *h = cg__head_alloc(status, nnv, bytes);
    uint8_t *out = (uint8_t *)(h->nv + nnv);
    memcpy(out, sp + 1, 3);
    h->nv[h->nnv++] = (nghttp2_nv){(uint8_t *)":status", out, 7, 3, NGHTTP2_NV_FLAG_NO_COPY_NAME};
    out += 3;
    for (size_t pos = eol + 2; pos < len;) {
        size_t e = pos + cg_http_find_crlf(p + pos, len - pos);
        if (e == pos)
            break;
        const char *line = p + pos;
        const char *colon = memchr(line, ':', e - pos);
        pos = e + 2;
        if (colon == NULL)
            continue;
        size_t nl = (size_t)(colon - line);
        const char *v = colon + 1;
        while (v < p + e && (*v == ' ' || *v == '\t'))
            v++;
        cg__head_add(h, &out, line, nl, v, (size_t)(p + e - v));
    }
    return h;
}

/* Head bytes of the response (s->mu held). Returns how many of p[0..len)
 * belonged to the head (the rest is body, or the next head after a 1xx),
 * or -EPROTO. */
static ssize_t cg__head_take(cg_h2_stream_t *st, const char *p, size_t len)
{
    size_t old = st->rhlen;
    if (old + len > CG_H2_HEAD_MAX)
        return -EPROTO;
    if (old + len > st->rhcap) {
        st->rhcap = (old + len) * 2 > 1024 ? (old + len) * 2 : 1024;
        st->rh = cg_xrealloc(st->rh, st->rhcap);
    }
    memcpy(st->rh + old, p, len);
    st->rhlen = old + len;
    size_t from = old > 3 ? old - 3 : 0;
    size_t at = from + cg_http_find_crlfcrlf(st->rh + from, st->rhlen - from);
    if (at == st->rhlen)
        return (ssize_t)len; /* all head, more to come */
    size_t head_len = at + 4;
    cg_h2_head_t *h = cg__head_convert(st->rh, head_len);
    st->rhlen = 0;
    if (h == NULL)
        return -EPROTO;
    if (st->heads_tail != NULL)
        st->heads_tail->next = h;
    else
        st->heads = h;
    st->heads_tail = h;
    if (h->status >= 200)
        st->head_done = true;
    return (ssize_t)(head_len - old);
}

/* ---- the transport ---- */

static ssize_t cg__recv(cg_conn_t *c, char *dst, size_t cap)
{
    cg_h2_stream_t *st = c->transport;
    cg_h2_session_t *s = st->s;
    bool wake = false;
    pthread_mutex_lock(&s->mu);
    ssize_t n;
    size_t avail = st->in_len - st->in_off;
    if (st->reset) {
        n = -ECONNRESET;
    } else if (avail > 0) {
        n = (ssize_t)(avail < cap ? avail : cap);
        memcpy(dst, st->in + st->in_off, (size_t)n);
        st->in_off += (size_t)n;
        /* what the app took, the peer may send again: the owner gives it
         * back as window */
        st->consumed += (size_t)n;
        wake = cg_h2__stream_post(st);
    } else {
        n = st->in_eof ? 0 : CG_EAGAIN;
    }
    pthread_mutex_unlock(&s->mu);
    if (wake)
        cg_h2__wake(s);
    return n;
}

static ssize_t cg__writev(cg_conn_t *c, const struct iovec *iov, int iovcnt)
{
    cg_h2_stream_t *st = c->transport;
    cg_h2_session_t *s = st->s;
    ssize_t taken = 0, err = CG_EAGAIN; /* what to say when nothing is taken */
    pthread_mutex_lock(&s->mu);
    if (st->reset) {
        pthread_mutex_unlock(&s->mu);
        return -ECONNRESET;
    }
    for (int i = 0; i < iovcnt; i++) {
        const char *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        while (len > 0) {
            if (!st->head_done) {
                ssize_t used = cg__head_take(st, p, len);
                if (used < 0) {
                    err = used;
                    goto out;
                }
                p += used;
                len -= (size_t)used;
                taken += used;
                continue;
            }
            size_t n = len < CG_H2_OUT_PIECE ? len : CG_H2_OUT_PIECE;
            int r = cg_spool_add(&st->out, p, n);
            if (r < 0) {
                /* -ENOSPC: the peer is that far behind, wait for it */
                err = r == -ENOSPC ? CG_EAGAIN : r;
                goto out;
            }
            p += n;
            len -= n;
            taken += (ssize_t)n;
        }
    }
out:;
    bool wake = taken > 0 && cg_h2__stream_post(st);
    pthread_mutex_unlock(&s->mu);
    if (wake)
        cg_h2__wake(s);
    return taken > 0 ? taken : err;
}

static ssize_t cg__sendfile(cg_conn_t *c, int in_fd, off_t *offset, size_t count)
{
    cg_h2_stream_t *st = c->transport;
    cg_h2_session_t *s = st->s;
    bool wake = false;
    pthread_mutex_lock(&s->mu);
    ssize_t n;
    if (st->reset) {
        n = -ECONNRESET;
    } else if (!st->head_done) {
        n = -EPROTO; /* the head goes first, by writev */
    } else {
        /* by reference: the data provider reads the file as the peer's
         * window opens, nothing is copied before */
        int r = cg_spool_add_file(&st->out, in_fd, *offset, count);
        n = r == -ENOSPC ? CG_EAGAIN : r < 0 ? r : (ssize_t)count;
        if (n > 0) {
            *offset += (off_t)count;
            wake = cg_h2__stream_post(st);
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (wake)
        cg_h2__wake(s);
    return n;
}

/* Whether what the waiter wants is there (s->mu held). */
static bool cg__wait_done(const cg_h2_stream_t *st, int want)
{
    if (st->reset)
        return true;
    if (want & CG_CONN_WANT_READ)
        return st->in_len > st->in_off || st->in_eof;
    /* room for a piece (what cg__writev's spool refused) */
    return st->out.file_used + CG_H2_OUT_PIECE <= st->out.file_max;
}

static int cg__wait(cg_conn_t *c, int want, int timeout_ms)
{
    cg_h2_stream_t *st = c->transport;
    cg_h2_session_t *s = st->s;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    if (timeout_ms >= 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    } else {
        until.tv_sec += 3600;
    }
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    while (!cg__wait_done(st, want)) {
        int e = pthread_cond_timedwait(&st->cv, &s->mu, &until);
        if (e == ETIMEDOUT) {
            rc = cg__wait_done(st, want) ? 0 : timeout_ms >= 0 ? -ETIMEDOUT : -EINTR;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int cg__trailers(cg_conn_t *c, const cg_str_t *f, size_t npairs)
{
    cg_h2_stream_t *st = c->transport;
    cg_h2_session_t *s = st->s;
    size_t bytes = 0;
    for (size_t i = 0; i < 2 * npairs; i++)
        bytes += f[i].len;
    cg_h2_head_t *h = cg__head_alloc(0, npairs, bytes);
    uint8_t *out = (uint8_t *)(h->nv + npairs);
    for (size_t i = 0; i < npairs; i++)
        cg__head_add(h, &out, f[2 * i].ptr, f[2 * i].len, f[2 * i + 1].ptr, f[2 * i + 1].len);
    pthread_mutex_lock(&s->mu);
    if (st->reset || st->trailers != NULL) {
        pthread_mutex_unlock(&s->mu);
        free(h);
        return st->reset ? -ECONNRESET : -EINVAL;
    }
    st->trailers = h; /* the data provider sends them after the last byte */
    bool wake = cg_h2__stream_post(st);
    pthread_mutex_unlock(&s->mu);
    if (wake)
        cg_h2__wake(s);
    return 0;
}

static int cg__shutdown(cg_conn_t *c)
{
    return 0; /* the stream ends with the response (END_STREAM) */
}

static void cg__close(cg_conn_t *c)
{
    c->fd = -1;
}

static const cg_conn_ops_t cg__stream_ops = {
    .name = "h2",
    .recv = cg__recv,
    .writev = cg__writev,
    .sendfile = cg__sendfile,
    .wait = cg__wait,
    .shutdown = cg__shutdown,
    .close = cg__close,
    .trailers = cg__trailers,
};

void cg_h2__stream_view_init(cg_h2_stream_t *st, const cg_conn_t *parent,
                             const cg_conn_policy_t *pol)
{
    cg_conn_t *c = &st->c;
    cg_conn_init(c, pol, 512);
    c->ops = &cg__stream_ops;
    c->transport = st;
    c->fd = -1; /* no gunicorn.socket: the socket carries other streams */
    c->nonblocking = true;
    c->framed = true;
    c->tls = parent->tls;
    c->listener = parent->listener;
    c->peer = parent->peer;
    c->peerlen = parent->peerlen;
    memcpy(c->peer_ip, parent->peer_ip, sizeof(c->peer_ip));
    memcpy(c->peer_port, parent->peer_port, sizeof(c->peer_port));
    c->trusted = parent->trusted;
    c->has_proxy = parent->has_proxy;
    c->proxy = parent->proxy;
    c->proxy_checked = true; /* a PROXY header, if any, came before the preface */
    c->io_timeout_ms = parent->io_timeout_ms;
    c->quit = parent->quit;
    c->must_close = true; /* nothing of HTTP/1.1's keep-alive applies */
}

void cg_h2__stream_view_release(cg_h2_stream_t *st)
{
    cg_conn_release(&st->c);
    free(st->method);
    free(st->path);
    free(st->authority);
}
