/*
 * h2.c - HTTP/2 on the ASGI worker. A connection whose TLS ALPN chose h2,
 * whose first bytes are the h2c preface (http2_cleartext prior-knowledge),
 * or whose first request asked for Upgrade: h2c, is driven by the sans-I/O
 * session of src/h2/ (the one gthread drives) from the protocol's
 * data_received; each stream the session hands over is one ASGI http
 * request cycle (http.c) on the loop, served through the stream's view
 * (cg_h2_stream_conn): the scope from the view's parsed request, receive()
 * reading the stream's DATA, send() writing the response head and body
 * into the stream's spool, which nghttp2 drains as the client's window
 * opens.
 *
 * Everything runs on the loop's thread with the GIL held. The view's
 * transport never waits here: a read with nothing there answers CG_EAGAIN
 * (receive() then waits on a future, woken after the next bytes are fed),
 * the spool takes writes (send() waits while more than CG_ASGI_READ_HIGH of
 * the stream's response is not taken by the client). The session's wake
 * (work after a stream's read or write) is a loop.call_soon, so no nghttp2
 * call ever runs inside another one.
 *
 * Flow control inward: the window is given back only as the app reads
 * (the session sends no automatic WINDOW_UPDATE), so an app that does not
 * call receive() stops the client after http2_initial_window_size.
 */
#include "asgi.h"

#include "../python/python.h"

#include <stdlib.h>
#include <string.h>

struct cg_asgi_h2 {
    cg_h2_session_t *s;      /* NULL once closed */
    cg_h2_session_t *wake_s; /* a sync is scheduled for it (call_soon) */
    cg_asgi_cycle_t *cycles; /* the live streams' cycles, a reference each */
    bool feeding;            /* inside nghttp2's receive: no sending now */
};

static void cg__pump(cg_asgi_proto_t *p);

/* The stream's body reader: what was fed, never waiting. */
static ssize_t cg__body_recv(void *conn, char *dst, size_t cap)
{
    cg_conn_t *c = conn;
    return c->ops->recv(c, dst, cap);
}

/* ---- the session's hooks ---- */

static PyObject *cg__on_sync(PyObject *self, PyObject *unused)
{
    cg_asgi_proto_t *p = (cg_asgi_proto_t *)self;
    cg_asgi_h2_t *h = p->h2;
    if (h == NULL)
        Py_RETURN_NONE;
    cg_h2_session_t *s = h->wake_s;
    h->wake_s = NULL;
    /* false: the connection went meanwhile, and this dropped the wake's
     * reference to the closed session */
    if (s != NULL && cg_h2_session_sync(s) && h->s == s)
        cg__pump(p);
    Py_RETURN_NONE;
}
static PyMethodDef cg__on_sync_def = {"_h2_sync", cg__on_sync, METH_NOARGS, NULL};

/* A stream's read or write left work for nghttp2 (window to give back, a
 * response to submit, data to resume): done on the loop's next pass. */
static void cg__wake(void *ctx, cg_h2_session_t *s)
{
    cg_asgi_proto_t *p = ctx;
    p->h2->wake_s = s;
    PyObject *fn = cg_asgi_bind(&cg__on_sync_def, (PyObject *)p); /* new */
    PyObject *h = fn ? PyObject_CallMethod(p->a->loop, "call_soon", "O", fn) : NULL; /* new */
    Py_XDECREF(fn);
    if (h != NULL) {
        Py_DECREF(h);
        return;
    }
    /* the loop is closing: nothing will be sent, but the wake's reference
     * must go */
    PyErr_Clear();
    p->h2->wake_s = NULL;
    (void)cg_h2_session_sync(s);
}

static void cg__link(cg_asgi_h2_t *h, cg_asgi_cycle_t *cy)
{
    cy->h2_prev = NULL;
    cy->h2_next = h->cycles;
    if (h->cycles != NULL)
        h->cycles->h2_prev = cy;
    h->cycles = cy;
}

static void cg__unlink(cg_asgi_h2_t *h, cg_asgi_cycle_t *cy)
{
    if (cy->h2_prev != NULL)
        cy->h2_prev->h2_next = cy->h2_next;
    else if (h->cycles == cy)
        h->cycles = cy->h2_next;
    if (cy->h2_next != NULL)
        cy->h2_next->h2_prev = cy->h2_prev;
    cy->h2_prev = cy->h2_next = NULL;
}

/* A stream is ready (its head parsed, its body in or filling the window):
 * one ASGI request cycle on the loop. Inside the session's feed or sync. */
static void cg__dispatch(void *owner, cg_h2_stream_t *st)
{
    cg_asgi_proto_t *p = owner;
    cg_asgi_t *a = p->a;
    cg_conn_t *c = cg_h2_stream_conn(st);
    c->body.recv = cg__body_recv;
    cg_worker_count_request(a->w);
    if (!a->w->alive) {
        /* max_requests: this stream still runs, the client takes the next
         * ones elsewhere */
        cg_asgi_resolve(a, a->stop, Py_None);
        cg_h2_session_goaway(p->h2->s);
    }
    p->nreq++;
    cg_asgi_cycle_t *cy = cg_asgi_cycle_new(p); /* new: the list's */
    if (cy == NULL) {
        cg_py_log_exception(a->log, CG_LOG_ERROR, "Error handling request (no URI read)");
        cg_h2_stream_served(st, -ENOMEM);
        return;
    }
    cy->c = c;
    cy->st = st;
    cg__link(p->h2, cy);
    cg_asgi_cycle_start(cy);
}

/* ---- the connection ---- */

/* Bytes the client sent, to nghttp2. A fatal error queues a GOAWAY: the
 * pump sends it and closes. */
static void cg__feed(cg_asgi_proto_t *p, const char *data, size_t len)
{
    cg_asgi_h2_t *h = p->h2;
    if (h->s == NULL || len == 0)
        return;
    h->feeding = true;
    (void)cg_h2_session_feed(h->s, (const uint8_t *)data, len);
    h->feeding = false;
}

/* What the response's spool could not take yet, as room comes. */
static void cg__flush_rest(cg_asgi_cycle_t *cy)
{
    while (cy->rest_len > 0) {
        ssize_t n = cg_conn_write_nowait(cy->c, cy->rest + cy->rest_off, cy->rest_len);
        if (n <= 0)
            break; /* no room yet; or the stream is gone, which the walk sees */
        cy->rest_off += (size_t)n;
        cy->rest_len -= (size_t)n;
    }
    if (cy->rest_len == 0)
        cy->rest_off = 0;
}

static bool cg__tx_ready(cg_asgi_cycle_t *cy)
{
    if (cy->st == NULL || cy->p == NULL || cy->p->closed)
        return true;
    cg_h2_stream_state_t ss;
    cg_h2_stream_state(cy->st, &ss);
    return ss.reset || (cy->rest_len == 0 && ss.out_pending <= CG_ASGI_READ_HIGH &&
                        !cy->p->write_paused);
}

static void cg__tx_wake(cg_asgi_cycle_t *cy)
{
    if (cy->tx_waiter == NULL)
        return;
    PyObject *w = cy->tx_waiter;
    cy->tx_waiter = NULL;
    cg_asgi_resolve(cy->a, w, Py_None);
    Py_DECREF(w);
}

/* The cycle leaves the connection's list and gives its stream back
 * (rc < 0: reset it). The list's reference is the caller's to drop. */
static void cg__release(cg_asgi_proto_t *p, cg_asgi_cycle_t *cy, int rc)
{
    cg__unlink(p->h2, cy);
    cg_h2_stream_t *st = cy->st;
    cy->st = NULL;
    cy->c = NULL; /* the view goes with the stream */
    free(cy->rest);
    cy->rest = NULL;
    cy->rest_off = cy->rest_len = 0;
    cy->final_pending = false;
    cg__tx_wake(cy);
    if (st != NULL)
        cg_h2_stream_served(st, rc);
}

/* The stream was reset (or its connection went) while the app had it: as
 * a lost HTTP/1.1 connection, receive() says http.disconnect and the task
 * is cancelled after asgi_disconnect_grace_period. */
static void cg__lost(cg_asgi_proto_t *p, cg_asgi_cycle_t *cy)
{
    cg__release(p, cy, -ECONNRESET);
    cg_asgi_cycle_lost(cy); /* drops cy's reference to p */
    Py_DECREF(cy);          /* the list's */
}

/* After bytes moved: wake the streams' waiters, push out what waited for
 * spool room, notice resets. */
static void cg__walk(cg_asgi_proto_t *p)
{
    cg_asgi_cycle_t *cy = p->h2->cycles;
    if (cy != NULL)
        Py_INCREF(cy);
    while (cy != NULL) {
        cg_asgi_cycle_t *next = cy->h2_next;
        if (next != NULL)
            Py_INCREF(next);
        if (cy->st != NULL) {
            cg_h2_stream_state_t ss;
            cg_h2_stream_state(cy->st, &ss);
            if (ss.reset) {
                cg__lost(p, cy);
            } else {
                cg__flush_rest(cy);
                if (cy->final_pending && cy->rest_len == 0) {
                    cg_asgi_h2_done(cy, true);
                } else {
                    if (cy->rx_waiter != NULL && ss.readable)
                        cg_asgi_cycle_wake(cy);
                    if (cy->tx_waiter != NULL && cg__tx_ready(cy))
                        cg__tx_wake(cy);
                }
            }
        }
        Py_DECREF(cy);
        cy = next;
    }
}

/* Send what nghttp2 has (unless the transport is over its high-water mark:
 * resume_writing comes back here), then wake the streams; close once the
 * session is over. */
static void cg__pump(cg_asgi_proto_t *p)
{
    cg_asgi_h2_t *h = p->h2;
    if (h->s == NULL || h->feeding)
        return;
    Py_INCREF(p);
    if (!p->closed && !p->write_paused) {
        /* the connection's transport collects the frames in p->out */
        int r = cg_h2_session_send(h->s);
        cg_asgi_proto_flush(p);
        if (r < 0 && r != CG_EAGAIN) {
            cg_log_debug(p->a->log, "HTTP/2: %s", strerror(-r));
            cg_asgi_proto_close(p);
        }
    }
    if (h->s != NULL)
        cg__walk(p);
    if (!p->closed && h->s != NULL && cg_h2_session_finished(h->s))
        cg_asgi_proto_close(p); /* asyncio sends what it holds first */
    Py_DECREF(p);
}

/* The connection speaks HTTP/2 from now on: a session with our SETTINGS
 * queued. 0, or -1 (logged). */
static int cg__begin(cg_asgi_proto_t *p)
{
    cg_asgi_t *a = p->a;
    cg_asgi_h2_t *h = cg_xcalloc(1, sizeof(*h));
    cg_h2_hooks_t hooks = {.dispatch = cg__dispatch, .wake = cg__wake, .wake_ctx = p};
    if (cg_h2_session_new(&h->s, &a->h2cfg, &a->pol, a->log, &p->c, p, &hooks) < 0) {
        free(h);
        return -1;
    }
    p->h2 = h;
    p->state = CG_ASGI_H2;
    cg_asgi_proto_deadline(p, a->head_ms);
    if (a->stopping) /* TERM came while it was being made: no stream for it */
        cg_h2_session_goaway(h->s);
    return 0;
}

/* Feed what the connection holds: the buffer from `from`, what waits in
 * p->in, and the rest of data_received's bytes. */
static void cg__take_buffered(cg_asgi_proto_t *p, size_t from)
{
    cg_conn_t *c = &p->c;
    if (c->buf.len > from)
        cg__feed(p, c->buf.data + from, c->buf.len - from);
    c->buf.off = c->buf.len = c->buf.keep = 0;
    if (p->in_len > p->in_off)
        cg__feed(p, p->in + p->in_off, p->in_len - p->in_off);
    p->in_off = p->in_len = 0;
    if (p->view_len > p->view_off)
        cg__feed(p, p->view + p->view_off, p->view_len - p->view_off);
    p->view_off = p->view_len;
}

int cg_asgi_h2_alpn(cg_asgi_proto_t *p)
{
    cg_asgi_t *a = p->a;
    PyObject *name = PyUnicode_FromString("ssl_object"); /* new */
    PyObject *so = name ? PyObject_CallMethodOneArg(p->transport, a->s[CG_AS_A_GET_EXTRA_INFO],
                                                    name)
                        : NULL; /* new */
    Py_XDECREF(name);
    PyObject *proto = so != NULL && so != Py_None
                          ? PyObject_CallMethod(so, "selected_alpn_protocol", NULL)
                          : Py_XNewRef(so); /* new */
    Py_XDECREF(so);
    if (proto == NULL) {
        cg_py_log_exception(a->log, CG_LOG_ERROR, "Error handling connection");
        return -1;
    }
    bool h2 = PyUnicode_Check(proto) && PyUnicode_CompareWithASCIIString(proto, "h2") == 0;
    Py_DECREF(proto);
    if (!h2)
        return 0;
    if (cg__begin(p) < 0)
        return -1;
    cg__pump(p); /* our SETTINGS */
    return 0;
}

int cg_asgi_h2_preface(cg_asgi_proto_t *p)
{
    cg_conn_t *c = &p->c;
    int m = cg_h2_preface_match(c->buf.data + c->buf.off, c->buf.len - c->buf.off);
    if (m <= 0)
        return m;
    if (cg__begin(p) < 0) {
        cg_asgi_proto_close(p);
        return 1;
    }
    cg__take_buffered(p, c->buf.off);
    cg__pump(p);
    return 1;
}

bool cg_asgi_h2_upgrade(cg_asgi_proto_t *p)
{
    static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             "Upgrade: h2c\r\n\r\n";
    cg_conn_t *c = &p->c;
    cg_str_t settings;
    if (!p->a->h2c_upgrade || c->tls || !cg_h2_upgrade_wanted(&c->req, &settings))
        return false;
    if (cg__begin(p) < 0) {
        cg_asgi_proto_close(p);
        return true;
    }
    /* the request becomes stream 1 (dispatched in there: its task runs
     * later, and what it writes waits in the stream's spool until after
     * the 101 below) */
    size_t head_len = c->req.head_len;
    if (cg_h2_session_upgrade(p->h2->s, c->buf.data, head_len,
                              cg_str_eq(c->req.method, "HEAD", 4), settings) < 0) {
        /* HTTP2-Settings that do not decode: the upgrade is ignored */
        cg_h2_session_close(p->h2->s);
        free(p->h2);
        p->h2 = NULL;
        p->state = CG_ASGI_HEAD;
        return false;
    }
    if (cg_asgi_proto_write(p, sw, sizeof(sw) - 1) < 0) {
        PyErr_Clear();
        cg_asgi_proto_close(p);
        return true;
    }
    cg__take_buffered(p, head_len); /* the preface and SETTINGS that followed */
    cg__pump(p);
    return true;
}

void cg_asgi_h2_data(cg_asgi_proto_t *p)
{
    cg_asgi_t *a = p->a;
    cg_asgi_h2_t *h = p->h2;
    cg__take_buffered(p, 0);
    if (h->s == NULL)
        return;
    /* silence: an idle connection has keepalive; one with streams open
     * has --timeout without bytes, unless a stream is with the app */
    cg_asgi_proto_deadline(p, cg_h2_session_streams(h->s) > 0 || a->keepalive_ms == 0
                                  ? a->head_ms
                                  : a->keepalive_ms);
    cg__pump(p);
}

void cg_asgi_h2_writable(cg_asgi_proto_t *p)
{
    cg__pump(p);
}

void cg_asgi_h2_goaway(cg_asgi_proto_t *p)
{
    if (p->h2 == NULL || p->h2->s == NULL)
        return;
    cg_h2_session_goaway(p->h2->s);
    cg__pump(p);
}

bool cg_asgi_h2_keep(cg_asgi_proto_t *p)
{
    if (p->h2 == NULL || p->h2->s == NULL)
        return false;
    /* a stream whose app only waits for the client to take its response
     * (a zero window) does not count: silent that long, the connection
     * goes, and its streams' apps hear http.disconnect */
    for (cg_asgi_cycle_t *cy = p->h2->cycles; cy != NULL; cy = cy->h2_next)
        if (cy->tx_waiter == NULL && cy->rest_len == 0 && !cy->final_pending)
            return true;
    return false;
}

void cg_asgi_h2_lost(cg_asgi_proto_t *p)
{
    cg_asgi_h2_t *h = p->h2;
    if (h == NULL || h->s == NULL)
        return;
    /* streams the app holds see their I/O fail; each is freed when handed
     * back below */
    cg_h2_session_close(h->s);
    h->s = NULL;
    while (h->cycles != NULL) {
        cg_asgi_cycle_t *cy = h->cycles;
        Py_INCREF(cy);
        cg__lost(p, cy);
        Py_DECREF(cy);
    }
}

void cg_asgi_h2_free(cg_asgi_proto_t *p)
{
    if (p->h2 == NULL)
        return;
    if (p->h2->s != NULL) /* never connected to a loop that ended it */
        cg_h2_session_close(p->h2->s);
    free(p->h2);
    p->h2 = NULL;
}

cg_asgi_cycle_t *cg_asgi_h2_cycles(cg_asgi_proto_t *p)
{
    return p->h2 != NULL ? p->h2->cycles : NULL;
}

/* ---- a stream's request cycle (http.c) ---- */

int cg_asgi_h2_write(cg_asgi_cycle_t *cy, const char *data, size_t len)
{
    if (cy->st == NULL)
        return 0;
    while (cy->rest_len == 0 && len > 0) {
        ssize_t n = cg_conn_write_nowait(cy->c, data, len);
        if (n == CG_EAGAIN)
            break;
        if (n == -EPROTO) {
            PyErr_SetString(PyExc_RuntimeError, "Response head not valid on HTTP/2.");
            return -1;
        }
        if (n < 0)
            return 0; /* the stream is gone: quietly, as on a closed transport */
        data += n;
        len -= (size_t)n;
    }
    if (len == 0)
        return 0;
    /* the spool is full (the client that far behind): the rest waits here,
     * and send() until it is in */
    if (cy->rest_off > 0 && cy->rest_len > 0)
        memmove(cy->rest, cy->rest + cy->rest_off, cy->rest_len);
    cy->rest_off = 0;
    cy->rest = cg_xrealloc(cy->rest, cy->rest_len + len);
    memcpy(cy->rest + cy->rest_len, data, len);
    cy->rest_len += len;
    return 0;
}

bool cg_asgi_h2_gone(cg_asgi_cycle_t *cy)
{
    if (cy->st == NULL)
        return true;
    cg_h2_stream_state_t ss;
    cg_h2_stream_state(cy->st, &ss);
    return ss.reset;
}

void cg_asgi_h2_done(cg_asgi_cycle_t *cy, bool ok)
{
    cg_asgi_proto_t *p = cy->p;
    if (p == NULL || cy->st == NULL)
        return;
    if (ok && cy->rest_len > 0) {
        cy->final_pending = true; /* the walk finishes it once the rest is in */
        return;
    }
    cg_asgi_access(cy, p);
    cg__release(p, cy, ok ? 0 : -ECONNABORTED);
    cy->p = NULL;
    cg_asgi_cycle_wake(cy); /* receive() now answers http.disconnect */
    Py_DECREF(p);           /* the cycle's; the caller holds one */
    Py_DECREF(cy);          /* the list's; so does the caller */
}

static int cg__tx_poll(PyObject *owner, PyObject **out)
{
    cg_asgi_cycle_t *cy = (cg_asgi_cycle_t *)owner;
    if (cg__tx_ready(cy)) {
        *out = Py_NewRef(Py_None);
        return 1;
    }
    if (cy->tx_waiter == NULL && (cy->tx_waiter = cg_asgi_future(cy->a)) == NULL)
        return -1;
    *out = Py_NewRef(cy->tx_waiter);
    return 0;
}

PyObject *cg_asgi_h2_send_done(cg_asgi_cycle_t *cy)
{
    return cg__tx_ready(cy) ? cg_asgi_done_awaitable(cy->a)
                            : cg_asgi_awaitable_new(cy->a, cg__tx_poll, (PyObject *)cy);
}

int cg_asgi_h2_trailers(cg_asgi_cycle_t *cy, const cg_str_t *fields, size_t npairs)
{
    if (cy->st == NULL || cy->c->ops->trailers == NULL)
        return 0;
    int r = cy->c->ops->trailers(cy->c, fields, npairs);
    if (r == -EINVAL) {
        PyErr_SetString(PyExc_RuntimeError, "Trailers sent twice.");
        return -1;
    }
    return 0; /* -ECONNRESET: the stream is gone, the walk sees it */
}
