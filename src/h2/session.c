/*
 * session.c - an HTTP/2 server session over nghttp2's callbacks API: frames
 * in (cg_h2_session_feed), frames out (cg_h2_session_send), streams handed
 * to the owner as requests, and the limits against the known attacks.
 * The stream's transport (what the app thread sees) is stream.c.
 */
#include "h2_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Frames out are gathered up to this much before one write: one TLS
 * record (or syscall) for many small frames. */
#define CG_H2_WBUF 32768
/* A header block decoding to this many times max_header_list_size is an
 * HPACK bomb (or a CONTINUATION flood with content): GOAWAY, not a 431. */
#define CG_H2_BOMB_FACTOR 4

static uint64_t cg__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int cg_h2_preface_match(const char *p, size_t len)
{
    size_t cmp = len < CG_H2_PREFACE_LEN ? len : CG_H2_PREFACE_LEN;
    if (memcmp(p, CG_H2_PREFACE, cmp) != 0)
        return -1;
    return len >= CG_H2_PREFACE_LEN ? 1 : 0;
}

bool cg_h2_wanted(const cg_config_t *cfg)
{
    for (size_t i = 0; i < cfg->http_protocols.n; i++)
        if (strcmp(cfg->http_protocols.v[i], "h2") == 0)
            return true;
    return false;
}

void cg_h2_config_init(cg_h2_config_t *hc, const cg_config_t *cfg)
{
    /* RFC 9113 section 6.5.2: the window at most 2^31-1, the frame size
     * within [2^14, 2^24-1] (the validator already checks the latter). */
    long win = cfg->http2_initial_window_size;
    long frame = cfg->http2_max_frame_size;
    *hc = (cg_h2_config_t){
        .max_concurrent_streams = cfg->http2_max_concurrent_streams > 0
                                      ? (uint32_t)cfg->http2_max_concurrent_streams
                                      : 1,
        .initial_window_size = win < 1 ? 1 : win > 0x7fffffffL ? 0x7fffffffu : (uint32_t)win,
        .max_frame_size = frame < 16384 ? 16384 : frame > 16777215 ? 16777215 : (uint32_t)frame,
        .max_header_list_size = cfg->http2_max_header_list_size > 0
                                    ? (uint32_t)cfg->http2_max_header_list_size
                                    : 65536,
        .max_resets_per_sec = 100,
        .tmp_dir = cfg->worker_tmp_dir,
    };
}

/* ---- references: the owner holds one, each stream in an app thread one,
 * each pending wake one. The last one frees. ---- */

static void cg__session_free(cg_h2_session_t *s)
{
    pthread_mutex_destroy(&s->mu);
    free(s->wbuf);
    free(s);
}

/* Drop one reference; s->mu held on entry, released here. */
static void cg__unref_locked(cg_h2_session_t *s)
{
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        cg__session_free(s);
}

bool cg_h2__stream_post(cg_h2_stream_t *st)
{
    cg_h2_session_t *s = st->s;
    /* s->mu held by the caller */
    if (!st->dirty) {
        st->dirty = true;
        st->dirty_next = s->dirty;
        s->dirty = st;
    }
    if (s->wake_pending || s->dead)
        return false; /* a sync is coming anyway, or never will */
    s->wake_pending = true;
    s->refs++; /* the wake's, dropped by that sync */
    return true;
}

void cg_h2__wake(cg_h2_session_t *s)
{
    s->hooks.wake(s->hooks.wake_ctx, s);
}

/* ---- streams ---- */

static cg_h2_stream_t *cg__stream_new(cg_h2_session_t *s, int32_t id)
{
    cg_h2_stream_t *st = cg_xcalloc(1, sizeof(*st));
    st->s = s;
    st->id = id;
    /* waits are bounded on the monotonic clock, as every other wait */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cv, &ca);
    pthread_condattr_destroy(&ca);
    cg_spool_init(&st->out, CG_H2_OUT_MEM, CG_H2_OUT_MAX, s->cfg.tmp_dir);
    cg_h2__stream_view_init(st, s->conn, s->pol);
    st->all_next = s->all;
    if (s->all != NULL)
        s->all->all_prev = st;
    s->all = st;
    s->nstreams++;
    return st;
}

static void cg__stream_free(cg_h2_stream_t *st)
{
    cg_h2__stream_view_release(st);
    cg_spool_clear(&st->out);
    pthread_cond_destroy(&st->cv);
    free(st->in);
    free(st->rh);
    free(st->cookie);
    cg_h2_head_t *h = st->heads;
    while (h != NULL) {
        cg_h2_head_t *n = h->next;
        free(h);
        h = n;
    }
    free(st->trailers);
    free(st);
}

/* Owner thread: forget a stream neither nghttp2 nor an app thread holds. */
static void cg__stream_unlink(cg_h2_session_t *s, cg_h2_stream_t *st)
{
    if (st->all_prev != NULL)
        st->all_prev->all_next = st->all_next;
    else
        s->all = st->all_next;
    if (st->all_next != NULL)
        st->all_next->all_prev = st->all_prev;
    s->nstreams--;
    pthread_mutex_lock(&s->mu);
    if (st->dirty) { /* drop it from the list the next sync would walk */
        cg_h2_stream_t **pp = &s->dirty;
        while (*pp != NULL && *pp != st)
            pp = &(*pp)->dirty_next;
        if (*pp == st)
            *pp = st->dirty_next;
    }
    pthread_mutex_unlock(&s->mu);
    cg__stream_free(st);
}

static void cg__dispatch_more(cg_h2_session_t *s);

/* Owner thread: the request is complete enough to run. At most
 * max_concurrent_streams of a connection run at once: a peer that opens
 * and resets streams faster than the app answers (rapid reset) queues
 * them here, where a reset one is dropped before it costs a thread. */
static void cg__stream_ready(cg_h2_session_t *s, cg_h2_stream_t *st)
{
    if (st->ready)
        return;
    st->ready = true;
    st->qnext = NULL;
    if (s->qtail != NULL)
        s->qtail->qnext = st;
    else
        s->qhead = st;
    s->qtail = st;
    cg__dispatch_more(s);
}

static void cg__dispatch_more(cg_h2_session_t *s)
{
    while (s->qhead != NULL && s->napp < s->cfg.max_concurrent_streams && !s->dead) {
        cg_h2_stream_t *st = s->qhead;
        s->qhead = st->qnext;
        if (s->qhead == NULL)
            s->qtail = NULL;
        st->queued_out = true;
        st->in_app = true;
        s->napp++;
        pthread_mutex_lock(&s->mu);
        s->refs++;
        pthread_mutex_unlock(&s->mu);
        s->hooks.dispatch(s->owner, st);
    }
}

/* Drop a stream from the dispatch queue (it was reset before running). */
static void cg__queue_remove(cg_h2_session_t *s, cg_h2_stream_t *st)
{
    cg_h2_stream_t *prev = NULL;
    for (cg_h2_stream_t *q = s->qhead; q != NULL; prev = q, q = q->qnext) {
        if (q != st)
            continue;
        if (prev != NULL)
            prev->qnext = q->qnext;
        else
            s->qhead = q->qnext;
        if (s->qtail == q)
            s->qtail = prev;
        return;
    }
}

/* ---- nghttp2 callbacks (owner thread) ---- */

static int cg__on_begin_headers(nghttp2_session *ns, const nghttp2_frame *frame, void *user)
{
    cg_h2_session_t *s = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    cg_h2_stream_t *st = cg__stream_new(s, frame->hd.stream_id);
    int r = nghttp2_session_set_stream_user_data(ns, frame->hd.stream_id, st);
    if (r != 0) {
        cg_log_debug(s->log, "HTTP/2: cannot attach stream %d: %s", frame->hd.stream_id,
                     nghttp2_strerror(r));
        cg__stream_unlink(s, st);
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    st->nghttp2_open = true;
    return 0;
}

static int cg__on_header(nghttp2_session *ns, const nghttp2_frame *frame, const uint8_t *name,
                         size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                         void *user)
{
    cg_h2_session_t *s = user;
    cg_h2_stream_t *st = nghttp2_session_get_stream_user_data(ns, frame->hd.stream_id);
    if (st == NULL)
        return 0;
    /* RFC 9113 section 6.5.2: a field counts its name and value plus 32.
     * Trailers count against the same limit (and are not given to the
     * app yet). */
    st->hsize += namelen + valuelen + 32;
    if (st->hsize > (uint64_t)s->cfg.max_header_list_size * CG_H2_BOMB_FACTOR) {
        s->calm = "header list far beyond http2_max_header_list_size";
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (st->hsize > s->cfg.max_header_list_size) {
        st->too_large = true; /* answered 431 once the block ends */
        return 0;
    }
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST || st->too_large)
        return 0;
    cg_h2__head_field(st, (const char *)name, namelen, (const char *)value, valuelen);
    return 0;
}

/* The request head is complete: parse it as the HTTP/1.1 parser would. */
/* The head was refused: the page went through the view into st's queues;
 * it is answered as if served. */
static void cg__stream_refused(cg_h2_session_t *s, cg_h2_stream_t *st)
{
    pthread_mutex_lock(&s->mu);
    st->served = true;
    st->rc = 0;
    st->out_end = true;
    bool wake = cg_h2__stream_post(st);
    pthread_mutex_unlock(&s->mu);
    if (wake)
        cg_h2__wake(s);
}

static void cg__headers_done(cg_h2_session_t *s, cg_h2_stream_t *st, bool end_stream)
{
    st->remote_ended = end_stream;
    if (end_stream) {
        pthread_mutex_lock(&s->mu);
        st->in_eof = true;
        pthread_mutex_unlock(&s->mu);
    }
    if (cg_h2__head_parse(st, end_stream) < 0) {
        cg__stream_refused(s, st);
        return;
    }
    /* Run it now when nothing more is to come or the client waits for our
     * word (100-continue); otherwise once the body is in, or once it fills
     * the window we granted (then the app's reads make room for the rest),
     * so that a slow uploader costs no thread for small bodies. */
    if (end_stream || st->c.req.expect_continue || s->cfg.dispatch_at_head)
        cg__stream_ready(s, st);
}

/* The peer's END_STREAM after the head: the app's reads see EOF, and a
 * stream that waited for its whole body runs. */
static void cg__body_ended(cg_h2_session_t *s, cg_h2_stream_t *st)
{
    st->remote_ended = true;
    pthread_mutex_lock(&s->mu);
    st->in_eof = true;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&s->mu);
    if (!st->ready && st->parsed)
        cg__stream_ready(s, st);
}

static int cg__on_frame_recv(nghttp2_session *ns, const nghttp2_frame *frame, void *user)
{
    cg_h2_session_t *s = user;
    int32_t id = frame->hd.stream_id;
    cg_h2_stream_t *st = id != 0 ? nghttp2_session_get_stream_user_data(ns, id) : NULL;
    bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (st == NULL)
            break;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST)
            cg__headers_done(s, st, end);
        else if (end) /* trailers end the body */
            cg__body_ended(s, st);
        break;
    case NGHTTP2_DATA:
        if (st != NULL && end)
            cg__body_ended(s, st);
        break;
    case NGHTTP2_RST_STREAM: {
        /* CVE-2023-44487: count resets per second */
        uint64_t now = cg__now_ms();
        if (now - s->reset_window >= 1000) {
            s->reset_window = now;
            s->resets = 0;
        }
        if (++s->resets > s->cfg.max_resets_per_sec) {
            s->calm = "too many RST_STREAM frames (rapid reset)";
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
    }
    case NGHTTP2_PING:
        /* nghttp2 answers pings and bounds the answers it queues
         * (max_outbound_ack); a peer pinging faster than it reads is
         * flooded out there. */
        break;
    default:
        break;
    }
    return 0;
}

static int cg__on_data_chunk(nghttp2_session *ns, uint8_t flags, int32_t id, const uint8_t *data,
                             size_t len, void *user)
{
    cg_h2_session_t *s = user;
    cg_h2_stream_t *st = nghttp2_session_get_stream_user_data(ns, id);
    int r;
    if (st == NULL || !st->parsed || st->served_seen) {
        /* nobody will read it: give the window back at once */
        r = st == NULL ? nghttp2_session_consume_connection(ns, len)
                       : nghttp2_session_consume(ns, id, len);
        if (r != 0)
            cg_log_debug(s->log, "HTTP/2: consume: %s", nghttp2_strerror(r));
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    if (st->in_len + len > st->in_cap) {
        size_t live = st->in_len - st->in_off;
        if (st->in_off > 0 && live + len <= st->in_cap) {
            memmove(st->in, st->in + st->in_off, live);
        } else {
            st->in_cap = (live + len) * 2;
            char *n = cg_xmalloc(st->in_cap);
            if (live > 0)
                memcpy(n, st->in + st->in_off, live);
            free(st->in);
            st->in = n;
        }
        st->in_off = 0;
        st->in_len = live;
    }
    memcpy(st->in + st->in_len, data, len);
    st->in_len += len;
    size_t buffered = st->in_len - st->in_off;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&s->mu);
    /* the window we granted is full: nothing more comes until the app
     * reads, so it must run now */
    if (!st->ready && buffered >= s->cfg.initial_window_size)
        cg__stream_ready(s, st);
    return 0;
}

static int cg__on_stream_close(nghttp2_session *ns, int32_t id, uint32_t error_code, void *user)
{
    cg_h2_session_t *s = user;
    cg_h2_stream_t *st = nghttp2_session_get_stream_user_data(ns, id);
    if (st == NULL)
        return 0;
    st->nghttp2_open = false;
    pthread_mutex_lock(&s->mu);
    size_t unread = st->in_len - st->in_off + st->consumed;
    st->consumed = 0;
    st->in_off = st->in_len = 0;
    if (!st->out_end || cg_spool_pending(&st->out) > 0 || error_code != NGHTTP2_NO_ERROR)
        st->reset = true; /* the app's reads and writes fail from now on */
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&s->mu);
    if (unread > 0) {
        /* bytes the app will never read: the connection's window back */
        int r = nghttp2_session_consume_connection(ns, unread);
        if (r != 0)
            cg_log_debug(s->log, "HTTP/2: consume: %s", nghttp2_strerror(r));
    }
    if (st->ready && !st->queued_out) {
        cg__queue_remove(s, st);
        st->ready = false;
    }
    if (!st->in_app)
        cg__stream_unlink(s, st);
    return 0;
}

static int cg__on_frame_send(nghttp2_session *ns, const nghttp2_frame *frame, void *user)
{
    cg_h2_session_t *s = user;
    int32_t id = frame->hd.stream_id;
    if ((frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    cg_h2_stream_t *st = nghttp2_session_get_stream_user_data(ns, id);
    if (st != NULL && !st->remote_ended) {
        /* RFC 9113 section 8.1: the response is complete while the client
         * still sends a body nobody will read: tell it to stop */
        int r = nghttp2_submit_rst_stream(ns, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
        if (r != 0)
            cg_log_debug(s->log, "HTTP/2: RST_STREAM: %s", nghttp2_strerror(r));
    }
    return 0;
}

/* nghttp2 allocates through these: the same abort-on-exhaustion policy as
 * the rest of the worker. */
static void *cg__malloc(size_t size, void *ud)
{
    return cg_xmalloc(size ? size : 1);
}
static void cg__free(void *ptr, void *ud)
{
    free(ptr);
}
static void *cg__calloc(size_t n, size_t size, void *ud)
{
    return cg_xcalloc(n ? n : 1, size ? size : 1);
}
static void *cg__realloc(void *ptr, size_t size, void *ud)
{
    return cg_xrealloc(ptr, size ? size : 1);
}

/* ---- response data (owner thread) ---- */

static ssize_t cg__data_read(nghttp2_session *ns, int32_t id, uint8_t *buf, size_t length,
                             uint32_t *flags, nghttp2_data_source *src, void *user)
{
    cg_h2_session_t *s = user;
    cg_h2_stream_t *st = src->ptr;
    pthread_mutex_lock(&s->mu);
    ssize_t n = cg_spool_read(&st->out, (char *)buf, length);
    if (n < 0) {
        pthread_mutex_unlock(&s->mu);
        cg_log_debug(s->log, "HTTP/2: response spool: %s", strerror((int)-n));
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    }
    if (n > 0)
        pthread_cond_broadcast(&st->cv); /* room for a writer waiting */
    bool end = st->out_end && cg_spool_pending(&st->out) == 0;
    if (n == 0 && !end) {
        st->deferred = true;
        pthread_mutex_unlock(&s->mu);
        return NGHTTP2_ERR_DEFERRED;
    }
    cg_h2_head_t *trailers = end ? st->trailers : NULL;
    if (trailers != NULL)
        st->trailers = NULL;
    pthread_mutex_unlock(&s->mu);
    if (end)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (trailers != NULL) {
        /* the body ends without END_STREAM; the trailers' HEADERS carry it
         * (nghttp2 copies the fields) */
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        int r = nghttp2_submit_trailer(ns, id, trailers->nv, trailers->nnv);
        free(trailers);
        if (r != 0) {
            cg_log_debug(s->log, "HTTP/2: trailers: %s", nghttp2_strerror(r));
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
    }
    return n;
}

/* Submit what one stream's app thread queued. */
static void cg__stream_sync(cg_h2_session_t *s, cg_h2_stream_t *st)
{
    pthread_mutex_lock(&s->mu);
    st->dirty = false;
    size_t consumed = st->consumed;
    st->consumed = 0;
    cg_h2_head_t *heads = st->heads;
    st->heads = st->heads_tail = NULL;
    bool served = st->served && !st->served_seen;
    bool ended = st->out_end && cg_spool_pending(&st->out) == 0 && st->trailers == NULL;
    bool resume = st->deferred && (cg_spool_pending(&st->out) > 0 || st->out_end);
    if (resume)
        st->deferred = false;
    int rc = st->rc;
    pthread_mutex_unlock(&s->mu);

    nghttp2_session *ns = s->ns;
    int r = 0;
    if (consumed > 0) {
        r = st->nghttp2_open ? nghttp2_session_consume(ns, st->id, consumed)
                             : nghttp2_session_consume_connection(ns, consumed);
        if (r != 0)
            cg_log_debug(s->log, "HTTP/2: consume: %s", nghttp2_strerror(r));
    }
    while (heads != NULL) {
        cg_h2_head_t *h = heads;
        heads = h->next;
        if (st->nghttp2_open && h->status < 200) {
            r = nghttp2_submit_headers(ns, NGHTTP2_FLAG_NONE, st->id, NULL, h->nv, h->nnv, NULL);
        } else if (st->nghttp2_open && !st->submitted) {
            nghttp2_data_provider prd = {.source = {.ptr = st}, .read_callback = cg__data_read};
            /* a response already complete and empty (HEAD, 204, ...):
             * END_STREAM on the HEADERS frame */
            r = nghttp2_submit_response(ns, st->id, h->nv, h->nnv,
                                        served && ended && rc == 0 ? NULL : &prd);
            st->submitted = true;
        }
        if (r != 0)
            cg_log_debug(s->log, "HTTP/2: HEADERS: %s", nghttp2_strerror(r));
        free(h);
    }
    if (resume && st->submitted && st->nghttp2_open) {
        r = nghttp2_session_resume_data(ns, st->id);
        if (r != 0 && r != NGHTTP2_ERR_INVALID_ARGUMENT)
            cg_log_debug(s->log, "HTTP/2: resume: %s", nghttp2_strerror(r));
    }
    if (!served)
        return;
    st->served_seen = true;
    if (st->nghttp2_open && (rc < 0 || !st->submitted)) {
        /* the response could not be completed: the client must not take
         * what it got for all of it */
        cg_log_debug(s->log, "HTTP/2: resetting stream %d (%s)", st->id,
                     rc < 0 ? strerror(-rc) : "no response");
        r = nghttp2_submit_rst_stream(ns, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        if (r != 0)
            cg_log_debug(s->log, "HTTP/2: RST_STREAM: %s", nghttp2_strerror(r));
    }
    if (st->in_app) {
        st->in_app = false;
        s->napp--;
        pthread_mutex_lock(&s->mu);
        s->refs--; /* the app's reference; the owner's keeps it alive */
        pthread_mutex_unlock(&s->mu);
    }
    if (!st->nghttp2_open)
        cg__stream_unlink(s, st);
}

bool cg_h2_session_sync(cg_h2_session_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->wake_pending = false;
    if (s->dead) {
        cg__unref_locked(s);
        return false;
    }
    cg_h2_stream_t *list = s->dirty;
    s->dirty = NULL;
    pthread_mutex_unlock(&s->mu);
    while (list != NULL) {
        cg_h2_stream_t *st = list;
        list = st->dirty_next;
        /* cg__stream_unlink may free st: next is read first */
        cg__stream_sync(s, st);
    }
    /* Streams that waited for a slot, once the walk is over: the dispatch
     * hook may make the owner stop and send (max_requests), which can close
     * streams still on the list. */
    cg__dispatch_more(s);
    pthread_mutex_lock(&s->mu);
    s->refs--; /* the wake's; the owner's reference remains */
    pthread_mutex_unlock(&s->mu);
    return true;
}

void cg_h2_stream_served(cg_h2_stream_t *st, int rc)
{
    cg_h2_session_t *s = st->s;
    pthread_mutex_lock(&s->mu);
    if (s->dead) {
        /* the connection went while the app ran: nobody else holds it */
        cg__stream_free(st);
        cg__unref_locked(s);
        return;
    }
    st->served = true;
    st->rc = rc;
    if (rc == 0)
        st->out_end = true;
    bool wake = cg_h2__stream_post(st);
    pthread_mutex_unlock(&s->mu);
    /* from here on the owner may free st (and, the connection gone, s
     * once the wake's sync has run) */
    if (wake)
        cg_h2__wake(s);
}

/* ---- the session ---- */

int cg_h2_session_new(cg_h2_session_t **out, const cg_h2_config_t *hc, const cg_conn_policy_t *pol,
                      cg_log_t *log, cg_conn_t *conn, void *owner, const cg_h2_hooks_t *hooks)
{
    *out = NULL;
    cg_h2_session_t *s = cg_xcalloc(1, sizeof(*s));
    s->cfg = *hc;
    s->pol = pol;
    s->log = log;
    s->conn = conn;
    s->owner = owner;
    s->hooks = *hooks;
    s->refs = 1;
    s->wbuf = cg_xmalloc(CG_H2_WBUF);
    pthread_mutex_init(&s->mu, NULL);

    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    int r = nghttp2_session_callbacks_new(&cb);
    if (r == 0)
        r = nghttp2_option_new(&opt);
    if (r != 0) {
        cg_log_error(log, "HTTP/2: cannot set up a session: %s", nghttp2_strerror(r));
        nghttp2_session_callbacks_del(cb);
        cg__session_free(s);
        return -ENOMEM;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, cg__on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, cg__on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, cg__on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, cg__on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, cg__on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, cg__on_frame_send);
    /* The peer's window grows as the app reads, not as bytes arrive. */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    /* Closed streams are not kept for the priority tree (memory). */
    nghttp2_option_set_no_closed_streams(opt, 1);
    /* Floods nghttp2 bounds itself: queued PING/SETTINGS acks, SETTINGS
     * entries per frame, CONTINUATION frames per header block, and its own
     * reset-rate bucket behind ours. */
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_continuations(opt, 8);
    nghttp2_option_set_max_send_header_block_length(opt, 1u << 20);
    nghttp2_mem mem = {.mem_user_data = NULL,
                       .malloc = cg__malloc,
                       .free = cg__free,
                       .calloc = cg__calloc,
                       .realloc = cg__realloc};
    r = nghttp2_session_server_new3(&s->ns, cb, s, opt, &mem);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    if (r != 0) {
        cg_log_error(log, "HTTP/2: cannot set up a session: %s", nghttp2_strerror(r));
        cg__session_free(s);
        return -ENOMEM;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, hc->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, hc->initial_window_size},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, hc->max_frame_size},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, hc->max_header_list_size},
        /* no server push (RFC 9113 section 8.4): a server never needs
         * this, but it tells the client not to expect any */
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    r = nghttp2_submit_settings(s->ns, NGHTTP2_FLAG_NONE, iv, CG_ARRAY_SIZE(iv));
    if (r != 0) {
        cg_log_error(log, "HTTP/2: SETTINGS: %s", nghttp2_strerror(r));
        nghttp2_session_del(s->ns);
        cg__session_free(s);
        return -EINVAL;
    }
    *out = s;
    return 0;
}

/* A fatal error while reading: GOAWAY with the code it deserves. */
static int cg__fatal(cg_h2_session_t *s, ssize_t r)
{
    uint32_t code = NGHTTP2_PROTOCOL_ERROR;
    if (s->calm != NULL) {
        cg_log_warning(s->log, "HTTP/2: closing the connection of %s: %s", s->conn->peer_ip,
                       s->calm);
        code = NGHTTP2_ENHANCE_YOUR_CALM;
    } else if (r == NGHTTP2_ERR_FLOODED) {
        cg_log_warning(s->log, "HTTP/2: closing the connection of %s: flooded",
                       s->conn->peer_ip);
        code = NGHTTP2_ENHANCE_YOUR_CALM;
    } else {
        cg_log_debug(s->log, "HTTP/2: closing the connection: %s", nghttp2_strerror((int)r));
    }
    int t = nghttp2_session_terminate_session(s->ns, code);
    if (t != 0 && t != NGHTTP2_ERR_INVALID_STATE) /* already going away: fine */
        cg_log_debug(s->log, "HTTP/2: GOAWAY: %s", nghttp2_strerror(t));
    s->failed = true;
    return -EPROTO;
}

/* The header's comma-separated tokens include `tok` (case-insensitive). */
static bool cg__has_token(cg_str_t v, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i < v.len;) {
        while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t' || v.ptr[i] == ','))
            i++;
        size_t j = i;
        while (j < v.len && v.ptr[j] != ',')
            j++;
        size_t e = j;
        while (e > i && (v.ptr[e - 1] == ' ' || v.ptr[e - 1] == '\t'))
            e--;
        if (e - i == tl && strncasecmp(v.ptr + i, tok, tl) == 0)
            return true;
        i = j;
    }
    return false;
}

bool cg_h2_upgrade_wanted(const cg_http_request_t *req, cg_str_t *settings)
{
    if (req->version_major != 1 || req->version_minor != 1 ||
        (req->body_kind == CG_HTTP_BODY_LENGTH ? req->content_length != 0
                                               : req->body_kind != CG_HTTP_BODY_NONE))
        return false; /* a body would have to come whole before the switch */
    bool up = false, conn_up = false, conn_settings = false;
    int nsettings = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const cg_http_header_t *h = &req->headers[i];
        if (cg_str_caseeq(h->name, "UPGRADE"))
            up = up || cg__has_token(h->value, "h2c");
        else if (cg_str_caseeq(h->name, "CONNECTION")) {
            conn_up = conn_up || cg__has_token(h->value, "upgrade");
            conn_settings = conn_settings || cg__has_token(h->value, "http2-settings");
        } else if (cg_str_caseeq(h->name, "HTTP2-SETTINGS")) {
            nsettings++;
            *settings = h->value;
        }
    }
    return up && conn_up && conn_settings && nsettings == 1;
}

/* base64url without padding (RFC 7540 section 3.2.1) into out (room for
 * len * 3 / 4 bytes). Length, or -1. */
static ssize_t cg__b64url(const char *in, size_t len, uint8_t *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = in[i];
        int v = ch >= 'A' && ch <= 'Z'   ? ch - 'A'
                : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26
                : ch >= '0' && ch <= '9' ? ch - '0' + 52
                : ch == '-'              ? 62
                : ch == '_'              ? 63
                                         : -1;
        if (v < 0)
            return ch == '=' && i + 2 >= len ? (ssize_t)n : -1; /* padding: tolerated */
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return (ssize_t)n;
}

int cg_h2_session_upgrade(cg_h2_session_t *s, const char *head, size_t head_len, bool head_request,
                          cg_str_t settings)
{
    uint8_t stack[512] = {0}; /* an empty value decodes to no settings */
    uint8_t *buf = settings.len * 3 / 4 + 1 <= sizeof(stack) ? stack
                                                               : cg_xmalloc(settings.len * 3 / 4 + 1);
    ssize_t n = cg__b64url(settings.ptr, settings.len, buf);
    int r = n < 0 ? NGHTTP2_ERR_INVALID_ARGUMENT
                  : nghttp2_session_upgrade2(s->ns, buf, (size_t)n, head_request, NULL);
    if (buf != stack)
        free(buf);
    if (r != 0) {
        cg_log_debug(s->log, "HTTP/2: h2c upgrade refused: %s", nghttp2_strerror(r));
        return -EPROTO;
    }
    /* stream 1, half-closed (remote): the request came whole over HTTP/1.1 */
    cg_h2_stream_t *st = cg__stream_new(s, 1);
    r = nghttp2_session_set_stream_user_data(s->ns, 1, st);
    if (r != 0) { /* cannot happen: nghttp2 just made stream 1 */
        cg_log_error(s->log, "HTTP/2: h2c upgrade: %s", nghttp2_strerror(r));
        cg__stream_unlink(s, st);
        return -EPROTO;
    }
    st->nghttp2_open = true;
    cg_h2__head_text(st, head, head_len);
    st->remote_ended = true;
    st->in_eof = true;
    if (cg_h2__head_run(st, true) < 0)
        cg__stream_refused(s, st); /* the page is queued on stream 1 */
    else
        cg__stream_ready(s, st);
    return 0;
}

int cg_h2_session_feed(cg_h2_session_t *s, const uint8_t *data, size_t len)
{
    if (s->failed)
        return -EPROTO;
    ssize_t r = nghttp2_session_mem_recv(s->ns, data, len);
    if (r < 0)
        return cg__fatal(s, r);
    return 0;
}

int cg_h2_session_on_readable(cg_h2_session_t *s)
{
    cg_conn_t *c = s->conn;
    uint8_t buf[16384];
    for (;;) {
        ssize_t n = c->ops->recv(c, (char *)buf, sizeof(buf));
        if (n == CG_EAGAIN)
            return 0;
        if (n == -EINTR)
            continue;
        if (n == 0)
            return -EPIPE;
        if (n < 0)
            return (int)n;
        int r = cg_h2_session_feed(s, buf, (size_t)n);
        if (r < 0)
            return r;
        /* a short read means the socket is empty, unless TLS holds
         * decrypted bytes no poll would report */
        if ((size_t)n < sizeof(buf) && (c->ops->pending == NULL || c->ops->pending(c) == 0))
            return 0;
    }
}

int cg_h2_session_send(cg_h2_session_t *s)
{
    for (;;) {
        while (s->wlen < CG_H2_WBUF) {
            if (s->pend_len == 0) {
                const uint8_t *p;
                ssize_t n = nghttp2_session_mem_send(s->ns, &p);
                if (n < 0) {
                    cg_log_debug(s->log, "HTTP/2: send: %s", nghttp2_strerror((int)n));
                    return -EPROTO;
                }
                if (n == 0)
                    break;
                s->pend = p;
                s->pend_len = (size_t)n;
            }
            size_t take = CG_H2_WBUF - s->wlen < s->pend_len ? CG_H2_WBUF - s->wlen : s->pend_len;
            memcpy(s->wbuf + s->wlen, s->pend, take);
            s->wlen += take;
            s->pend += take;
            s->pend_len -= take;
        }
        if (s->wlen == 0)
            return 0;
        ssize_t n = cg_conn_write_nowait(s->conn, s->wbuf, s->wlen);
        if (n < 0)
            return (int)n; /* CG_EAGAIN included */
        memmove(s->wbuf, s->wbuf + n, s->wlen - (size_t)n);
        s->wlen -= (size_t)n;
    }
}

void cg_h2_session_goaway(cg_h2_session_t *s)
{
    if (s->goaway || s->failed)
        return;
    s->goaway = true;
    int r = nghttp2_submit_goaway(s->ns, NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(s->ns),
                                  NGHTTP2_NO_ERROR, NULL, 0);
    if (r != 0)
        cg_log_debug(s->log, "HTTP/2: GOAWAY: %s", nghttp2_strerror(r));
}

bool cg_h2_session_finished(const cg_h2_session_t *s)
{
    return s->wlen == 0 && s->pend_len == 0 && !nghttp2_session_want_write(s->ns) &&
           (!nghttp2_session_want_read(s->ns) || (s->failed && s->nstreams == 0));
}

size_t cg_h2_session_streams(const cg_h2_session_t *s)
{
    return s->nstreams;
}

void *cg_h2_session_owner(const cg_h2_session_t *s)
{
    return s->owner;
}

size_t cg_h2_session_running(const cg_h2_session_t *s)
{
    return s->napp;
}

void cg_h2_session_close(cg_h2_session_t *s)
{
    nghttp2_session_del(s->ns); /* calls no callbacks */
    s->ns = NULL;
    pthread_mutex_lock(&s->mu);
    s->dead = true;
    s->dirty = NULL;
    cg_h2_stream_t *st = s->all;
    s->all = NULL;
    while (st != NULL) {
        cg_h2_stream_t *next = st->all_next;
        if (st->in_app && !st->served) {
            /* its thread finds out at its next read or write, and frees
             * it in cg_h2_stream_served() */
            st->reset = true;
            pthread_cond_broadcast(&st->cv);
        } else {
            if (st->in_app)
                s->refs--; /* served, not synced yet: the app's reference */
            cg__stream_free(st);
        }
        st = next;
    }
    cg__unref_locked(s); /* the owner's */
}

cg_conn_t *cg_h2_stream_conn(cg_h2_stream_t *st)
{
    return &st->c;
}

void cg_h2_stream_state(cg_h2_stream_t *st, cg_h2_stream_state_t *out)
{
    cg_h2_session_t *s = st->s;
    pthread_mutex_lock(&s->mu);
    out->reset = st->reset;
    out->readable = st->in_len > st->in_off || st->in_eof;
    out->out_pending = cg_spool_pending(&st->out);
    pthread_mutex_unlock(&s->mu);
}
