/*
 * protocol.c - one client connection of the ASGI worker: an asyncio.Protocol
 * written as a C type. asyncio (or uvloop) owns the socket and calls us with
 * what arrives; we feed the same connection layer every worker uses
 * (src/workers/conn.c, policy.c: PROXY header, parser, refusal pages) through
 * a transport of our own whose recv takes the bytes asyncio handed us and
 * whose writes go to transport.write().
 *
 * States: HEAD (reading a request head, or idle between requests), BUSY (a
 * request is with the app: its body is read by receive(), its response
 * written by send(), see http.c), DRAIN (answered, skipping the body the app
 * left unread to keep the connection), WS (upgraded to a WebSocket: the
 * bytes go to websocket.c until the connection ends). Pipelined requests
 * wait in the buffer until the one before is answered.
 */
#include "asgi.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../os/os.h"
#include "../python/python.h"

/* The connection buffer's first size: a head of up to 8 KiB plus the room
 * cg_conn_begin_body() wants after it, so that a usual request never
 * reallocates (and copies) it. Over CG__BUF_SHRINK it shrinks back between
 * requests (as the gthread loop's). */
#define CG__BUF_INITIAL (CG_CONN_BODY_ROOM + 8192)
#define CG__BUF_SHRINK 65536
/* How long the body left unread may take to arrive before the connection is
 * closed instead (as the gthread loop's drain). */
#define CG__DRAIN_MS 5000

static PyTypeObject *cg__proto_type;

/* ---- the transport the connection layer sees ---- */

static ssize_t cg__t_recv(cg_conn_t *c, char *dst, size_t cap)
{
    cg_asgi_proto_t *p = c->transport;
    size_t n = 0;
    if (p->in_len > p->in_off) {
        n = p->in_len - p->in_off < cap ? p->in_len - p->in_off : cap;
        memcpy(dst, p->in + p->in_off, n);
        p->in_off += n;
        if (p->in_off == p->in_len)
            p->in_off = p->in_len = 0;
    } else if (p->view_len > p->view_off) {
        n = p->view_len - p->view_off < cap ? p->view_len - p->view_off : cap;
        memcpy(dst, p->view + p->view_off, n);
        p->view_off += n;
    } else {
        return p->eof || p->closed ? 0 : CG_EAGAIN;
    }
    return (ssize_t)n;
}

static ssize_t cg__t_writev(cg_conn_t *c, const struct iovec *iov, int iovcnt)
{
    /* collected, and handed to transport.write() by cg_asgi_proto_flush() */
    cg_asgi_proto_t *p = c->transport;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (p->out_len + iov[i].iov_len > p->out_cap) {
            p->out_cap = (p->out_len + iov[i].iov_len) * 2;
            p->out = cg_xrealloc(p->out, p->out_cap);
        }
        memcpy(p->out + p->out_len, iov[i].iov_base, iov[i].iov_len);
        p->out_len += iov[i].iov_len;
        total += iov[i].iov_len;
    }
    return (ssize_t)total;
}

static ssize_t cg__t_sendfile(cg_conn_t *c, int in_fd, off_t *offset, size_t count)
{
    return -ENOTSUP; /* responses go through send(), never here */
}

static int cg__t_wait(cg_conn_t *c, int want, int timeout_ms)
{
    return -ENOTSUP; /* nothing here waits: the loop calls us when bytes come */
}

static int cg__t_shutdown(cg_conn_t *c)
{
    return 0;
}

static void cg__t_close(cg_conn_t *c)
{
    c->fd = -1; /* the transport owns the socket */
}

static const cg_conn_ops_t cg__ops = {
    .name = "asyncio",
    .recv = cg__t_recv,
    .writev = cg__t_writev,
    .sendfile = cg__t_sendfile,
    .wait = cg__t_wait,
    .shutdown = cg__t_shutdown,
    .close = cg__t_close,
};

/* The body reader's recv: what has arrived, never waiting. */
static ssize_t cg__body_recv(void *conn, char *dst, size_t cap)
{
    cg_conn_t *c = conn;
    return c->ops->recv(c, dst, cap);
}

/* ---- output and closing ---- */

int cg_asgi_proto_write_obj(cg_asgi_proto_t *p, PyObject *bytes)
{
    if (p->closed || p->transport == NULL)
        return 0;
    PyObject *r = PyObject_CallMethodOneArg(p->transport, p->a->s[CG_AS_A_WRITE], bytes); /* new */
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

int cg_asgi_proto_write(cg_asgi_proto_t *p, const char *data, size_t len)
{
    PyObject *b = PyBytes_FromStringAndSize(data, (Py_ssize_t)len); /* new */
    if (b == NULL)
        return -1;
    int rc = cg_asgi_proto_write_obj(p, b);
    Py_DECREF(b);
    return rc;
}

/* What the connection layer wrote (a refusal page, HTTP/2 frames) goes out
 * now. */
void cg_asgi_proto_flush(cg_asgi_proto_t *p)
{
    if (p->out_len == 0)
        return;
    if (cg_asgi_proto_write(p, p->out, p->out_len) < 0) {
        cg_log_debug(p->a->log, "Failed to send error message.");
        PyErr_Clear();
    }
    p->out_len = 0;
}

void cg_asgi_proto_close(cg_asgi_proto_t *p)
{
    if (p->closed || p->transport == NULL)
        return;
    p->closed = true;
    /* asyncio sends what is buffered, then closes and calls connection_lost */
    PyObject *r = PyObject_CallMethodNoArgs(p->transport, p->a->s[CG_AS_A_CLOSE]); /* new */
    if (r == NULL)
        PyErr_Clear();
    Py_XDECREF(r);
}

/* ---- deadlines ---- */

/*
 * Set the connection's deadline `ms` from now (0: none). No timer per
 * connection: the worker's heartbeat tick (at most a second apart) sweeps
 * the connections (cg_asgi_sweep), so a deadline fires up to a tick late,
 * and making and closing a connection costs no TimerHandle.
 */
void cg_asgi_proto_deadline(cg_asgi_proto_t *p, uint64_t ms)
{
    p->deadline = ms == 0 ? 0 : cg_monotonic_ms() + ms;
}

/* p's deadline passed: say why at debug, and close. */
static void cg__expire(cg_asgi_proto_t *p)
{
    p->deadline = 0;
    if (p->state == CG_ASGI_H2 && cg_asgi_h2_keep(p)) {
        /* a stream is with the app: the heartbeat watches the loop */
        cg_asgi_proto_deadline(p, p->a->head_ms);
        return;
    }
    if (p->state == CG_ASGI_HEAD && p->c.buf.len > 0)
        cg_log_debug(p->a->log, "Closing connection: request head not complete in time");
    else if (p->state == CG_ASGI_DRAIN || p->state == CG_ASGI_BUSY)
        cg_log_debug(p->a->log, "Closing connection: request body not complete in time");
    else if (p->state == CG_ASGI_WS)
        cg_log_debug(p->a->log, "Closing WebSocket: no closing handshake from the client in time");
    cg_asgi_proto_close(p);
}

void cg_asgi_sweep(cg_asgi_t *a)
{
    if (a->nconns == 0)
        return;
    uint64_t now = cg_monotonic_ms();
    /* closing may end connections (and unlist them) as we go: collect the
     * expired ones, with a reference each, first */
    cg_asgi_proto_t *stack[64], **due = stack;
    if (a->nconns > 64)
        due = cg_xmalloc(a->nconns * sizeof(*due));
    size_t n = 0;
    for (cg_asgi_proto_t *p = a->conns; p != NULL && n < a->nconns; p = p->next) {
        if (p->deadline != 0 && now >= p->deadline && !p->closed) {
            Py_INCREF((PyObject *)p);
            due[n++] = p;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (due[i]->deadline != 0 && now >= due[i]->deadline && !due[i]->closed)
            cg__expire(due[i]);
        Py_DECREF((PyObject *)due[i]);
    }
    if (due != stack)
        free(due);
}

/* ---- requests ---- */

static void cg__process(cg_asgi_proto_t *p);

/* Stop reading while more than the bound waits for the app; go on when it
 * took enough. */
static void cg__flow(cg_asgi_proto_t *p)
{
    if (p->closed || p->transport == NULL)
        return;
    bool high = cg_asgi_pending(p) > CG_ASGI_READ_HIGH;
    if (high == p->read_paused)
        return;
    PyObject *r = PyObject_CallMethodNoArgs(
        p->transport, p->a->s[high ? CG_AS_A_PAUSE_READING : CG_AS_A_RESUME_READING]); /* new */
    if (r == NULL)
        PyErr_Clear();
    Py_XDECREF(r);
    p->read_paused = high;
}

void cg_asgi_proto_maybe_resume(cg_asgi_proto_t *p)
{
    if (p->read_paused)
        cg__flow(p);
}

/* A complete head is in c->req: hand the request to the app. */
static void cg__dispatch(cg_asgi_proto_t *p)
{
    cg_asgi_t *a = p->a;
    cg_conn_t *c = &p->c;
    if (cg_asgi_h2_upgrade(p))
        return; /* Upgrade: h2c, answered 101: stream 1 of a session now */
    cg_conn_begin_body(c, &a->pol);
    c->body.recv = cg__body_recv;
    cg_asgi_proto_deadline(p, 0); /* the app takes its time: the heartbeat watches the loop */
    cg_worker_count_request(a->w);
    if (!a->w->alive)
        cg_asgi_resolve(a, a->stop, Py_None); /* max_requests: stop after this one */
    c->must_close = !a->w->alive || a->keepalive_ms == 0 || a->stopping;
    p->nreq++;
    if (cg_asgi_ws_wanted(p)) {
        cg_asgi_ws_start(p);
        return;
    }
    cg_asgi_cycle_t *cy = cg_asgi_cycle_new(p); /* new */
    if (cy == NULL) {
        cg_py_log_exception(a->log, CG_LOG_ERROR, "Error handling request (no URI read)");
        cg_asgi_proto_close(p);
        return;
    }
    p->cy = cy;
    p->state = CG_ASGI_BUSY;
    cg_asgi_cycle_start(cy);
}

/* Read request heads from what has arrived, and dispatch the first complete
 * one. */
static void cg__process(cg_asgi_proto_t *p)
{
    cg_conn_t *c = &p->c;
    while (!p->closed && p->state == CG_ASGI_HEAD) {
        bool was_empty = c->buf.len == 0;
        ssize_t n = cg_conn_fill_nowait(c);
        if (n > 0 && was_empty)
            cg_asgi_proto_deadline(p, p->a->head_ms); /* a head started: it has --timeout */
        if (p->a->h2c && p->nreq == 0 && !c->tls && c->buf.len > c->buf.off) {
            /* h2c with prior knowledge: the preface instead of a request */
            int pk = cg_asgi_h2_preface(p);
            if (pk > 0 || (pk == 0 && n == CG_EAGAIN))
                return;
        }
        int h = cg_conn_head_step(c, &p->a->pol, p->a->log);
        if (h < 0) {
            cg_asgi_proto_flush(p);
            cg_asgi_proto_close(p);
            return;
        }
        if (h > 0) {
            cg__dispatch(p);
            return;
        }
        if (n == CG_EAGAIN)
            return;
        if (n <= 0) {
            /* the client ended its side mid-head (n 0), or the head outgrew
             * the buffer the limits allow (-ENOBUFS) */
            if (n == -ENOBUFS) {
                cg_http_error_t e = {.code = CG_HTTP_E_LIMIT_REQUEST_HEADERS,
                                     .lit = "max buffer headers"};
                cg_conn_refuse(c, &p->a->pol, p->a->log, &e);
                cg_asgi_proto_flush(p);
            } else {
                cg_conn_log_read_end(c, p->a->log, n);
            }
            cg_asgi_proto_close(p);
            return;
        }
    }
}

/* The request is answered and its body read: get ready for the next one. */
static void cg__next(cg_asgi_proto_t *p)
{
    cg_conn_t *c = &p->c;
    c->has_proxy = false; /* as the gthread loop: PROXY data belongs to the first request */
    cg_conn_next_request(c, CG__BUF_INITIAL, CG__BUF_SHRINK);
    p->state = CG_ASGI_HEAD;
    p->drained = 0;
    if (c->buf.len == 0 && cg_asgi_pending(p) == 0) {
        if (p->eof || p->a->stopping) {
            cg_asgi_proto_close(p);
            return;
        }
        cg_asgi_proto_deadline(p, p->a->keepalive_ms);
    } else {
        cg_asgi_proto_deadline(p, p->a->head_ms);
    }
    cg__process(p);
    cg__flow(p);
}

/* Skip what is left of a body the app did not read. Returns 1 when it is
 * all gone, 0 when more must arrive, -1 when the connection must close. */
static int cg__drain(cg_asgi_proto_t *p)
{
    cg_conn_t *c = &p->c;
    char sink[8192];
    while (!cg_conn_body_done(c)) {
        ssize_t n = cg_conn_body_read(c, sink, sizeof(sink));
        if (n == CG_EAGAIN)
            return p->drained > CG_ASGI_DRAIN_MAX ? -1 : 0;
        if (n <= 0)
            return n == 0 && !c->body.truncated ? 1 : -1;
        p->drained += (size_t)n;
        if (p->drained > CG_ASGI_DRAIN_MAX)
            return -1;
    }
    return c->body.truncated ? -1 : 1;
}

void cg_asgi_proto_response_done(cg_asgi_proto_t *p)
{
    cg_asgi_cycle_t *cy = p->cy;
    cg_asgi_access(cy, p);
    bool keep = cy->keep_alive && !p->closed;
    /* the request leaves the connection; its task may run on (background
     * work), and its receive() now answers http.disconnect */
    p->cy = NULL;
    cy->p = NULL;
    cg_asgi_cycle_wake(cy);
    Py_DECREF(p); /* the cycle's reference; the caller holds one */
    Py_DECREF(cy);
    if (!keep) {
        cg_asgi_proto_close(p);
        return;
    }
    int d = cg__drain(p);
    if (d < 0) {
        cg_asgi_proto_close(p);
        return;
    }
    if (d == 0) {
        p->state = CG_ASGI_DRAIN;
        cg_asgi_proto_deadline(p, CG__DRAIN_MS);
        cg__flow(p);
        return;
    }
    cg__next(p);
}

void cg_asgi_close_idle(cg_asgi_t *a)
{
    for (cg_asgi_proto_t *p = a->conns, *next; p != NULL; p = next) {
        next = p->next;
        /* a connection accepted just before the listeners closed has its
         * first request on the way: it is served (as by the gthread
         * worker), within its head deadline, not cut off */
        if (p->state == CG_ASGI_HEAD && p->nreq > 0 && p->c.buf.len == 0 &&
            cg_asgi_pending(p) == 0)
            cg_asgi_proto_close(p);
        else if (p->state == CG_ASGI_WS && p->cy != NULL)
            cg_asgi_ws_going_away(p->cy);
        else if (p->state == CG_ASGI_H2)
            cg_asgi_h2_goaway(p); /* closes once its streams are answered */
    }
}

/* ---- per-connection set-up, made cheap for Connection: close ---- */

/* A connection's buffers: a spare one a closed connection left (no malloc,
 * no zeroing of the header table), else new ones. */
static void cg__conn_setup(cg_asgi_t *a, cg_conn_t *c)
{
    if (a->nspare == 0) {
        cg_conn_init(c, &a->pol, CG__BUF_INITIAL);
        return;
    }
    struct cg_asgi_spare *sp = &a->spare[--a->nspare];
    c->fd = -1;
    c->buf_max = a->pol.buf_max;
    c->buf.data = sp->data;
    c->buf.cap = sp->cap;
    c->req.headers = sp->headers;
    c->req.headers_cap = sp->headers_cap;
}

/* The connection object goes: keep its buffers for the next connection
 * (a few, of the usual size), else free them. */
static void cg__conn_park(cg_asgi_t *a, cg_conn_t *c)
{
    if (a->spare_open && a->nspare < CG_ASGI_SPARE && c->buf.data != NULL &&
        c->buf.cap == CG__BUF_INITIAL && c->req.headers != NULL) {
        a->spare[a->nspare++] = (struct cg_asgi_spare){c->buf.data, c->buf.cap, c->req.headers,
                                                       c->req.headers_cap};
        c->buf.data = NULL;
        c->buf.cap = 0;
        c->req.headers = NULL;
        c->req.headers_cap = 0;
    }
    cg_conn_release(c);
}

void cg_asgi_spares_free(cg_asgi_t *a)
{
    a->spare_open = false; /* connections freed later release their own */
    while (a->nspare > 0) {
        struct cg_asgi_spare *sp = &a->spare[--a->nspare];
        free(sp->data);
        free(sp->headers);
    }
}

/* scope["server"] for a connection on l: the local address, as a tuple
 * shared by the connections that have the same one (a listener bound to
 * one address needs no getsockname for it). New reference or NULL. */
static PyObject *cg__server(cg_asgi_t *a, const cg_listener_t *l, int fd)
{
    if (l->family == AF_UNIX)
        return Py_BuildValue("(sO)", l->unix_path ? l->unix_path : "", Py_None);
    struct sockaddr_storage me;
    socklen_t melen = sizeof(me);
    bool any = l->addrlen == 0 || l->addrlen > sizeof(me) ||
               (l->family == AF_INET &&
                ((const struct sockaddr_in *)&l->addr)->sin_addr.s_addr == htonl(INADDR_ANY)) ||
               (l->family == AF_INET6 &&
                IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&l->addr)->sin6_addr));
    if (!any) {
        memcpy(&me, &l->addr, l->addrlen);
        melen = l->addrlen;
    } else if (getsockname(fd, (struct sockaddr *)&me, &melen) < 0) {
        return Py_BuildValue("(si)", l->server_name, atoi(l->server_port));
    }
    if (a->server != NULL && a->server_len == melen && memcmp(&a->server_addr, &me, melen) == 0)
        return Py_NewRef(a->server);
    char ip[64], port[8];
    cg_net_peer_text((struct sockaddr *)&me, ip, sizeof(ip), port, sizeof(port));
    PyObject *t = Py_BuildValue("(si)", ip, atoi(port)); /* new */
    if (t != NULL) {
        Py_XSETREF(a->server, Py_NewRef(t));
        memcpy(&a->server_addr, &me, melen);
        a->server_len = melen;
    }
    return t;
}

/* ---- asyncio.Protocol ---- */

static PyObject *cg__connection_made(PyObject *self, PyObject *transport)
{
    cg_asgi_proto_t *p = (cg_asgi_proto_t *)self;
    cg_asgi_t *a = p->a;
    p->transport = Py_NewRef(transport);
    /* the socket and the peer are those accept() gave (cg_asgi_proto_new):
     * no transport.get_extra_info('socket'), no getpeername() */
    int fd = p->fd;
    cg_conn_t *c = &p->c;
    cg__conn_setup(a, c);
    p->c_up = true;
    cg_conn_accepted(c, &a->pol, fd, p->l, true);
    c->ops = &cg__ops;
    c->tls = a->ssl != NULL; /* asyncio's transport decrypted it: the scheme is https */
    c->transport = p;

    p->server = cg__server(a, p->l, fd); /* new */
    if (p->server == NULL) {
        cg_py_log_exception(a->log, CG_LOG_ERROR, "Error handling connection");
        cg_asgi_proto_close(p);
        Py_RETURN_NONE;
    }
    p->next = a->conns;
    if (a->conns != NULL)
        a->conns->prev = p;
    a->conns = p;
    p->listed = true;
    a->nconns++;
    if (a->on_conns != NULL)
        a->on_conns(a->on_conns_arg);
    cg_asgi_proto_deadline(p, a->head_ms);
    if (a->h2_tls && a->ssl != NULL && cg_asgi_h2_alpn(p) < 0)
        cg_asgi_proto_close(p);
    Py_RETURN_NONE;
}

static PyObject *cg__data_received(PyObject *self, PyObject *data)
{
    cg_asgi_proto_t *p = (cg_asgi_proto_t *)self;
    if (p->closed || !p->c_up)
        Py_RETURN_NONE;
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Py_INCREF(self); /* what we call may drop the transport's reference */
    p->view = view.buf;
    p->view_off = 0;
    p->view_len = (size_t)view.len;
    if (p->state == CG_ASGI_HEAD) {
        cg__process(p);
    } else if (p->state == CG_ASGI_H2) {
        cg_asgi_h2_data(p);
    } else if (p->state == CG_ASGI_DRAIN) {
        int d = cg__drain(p);
        if (d < 0)
            cg_asgi_proto_close(p);
        else if (d > 0)
            cg__next(p);
    }
    /* what nobody took yet waits in `in` (a request's body until the app
     * asks for it, a pipelined request until this one is answered) */
    size_t rest = p->view_len - p->view_off;
    if (rest > 0 && !p->closed) {
        if (p->in_off > 0) {
            memmove(p->in, p->in + p->in_off, p->in_len - p->in_off);
            p->in_len -= p->in_off;
            p->in_off = 0;
        }
        if (p->in_len + rest > p->in_cap) {
            p->in_cap = p->in_len + rest > 2 * p->in_cap ? p->in_len + rest : 2 * p->in_cap;
            p->in = cg_xrealloc(p->in, p->in_cap);
        }
        memcpy(p->in + p->in_len, p->view + p->view_off, rest);
        p->in_len += rest;
    }
    p->view = NULL;
    p->view_off = p->view_len = 0;
    PyBuffer_Release(&view);
    if (p->state == CG_ASGI_BUSY && p->cy != NULL)
        cg_asgi_cycle_wake(p->cy);
    else if (p->state == CG_ASGI_WS && p->cy != NULL && !p->closed)
        cg_asgi_ws_data(p->cy);
    cg__flow(p);
    Py_DECREF(self);
    Py_RETURN_NONE;
}

static PyObject *cg__eof_received(PyObject *self, PyObject *unused)
{
    cg_asgi_proto_t *p = (cg_asgi_proto_t *)self;
    p->eof = true;
    if (p->state == CG_ASGI_BUSY) {
        /* a client may half-close once it has sent its request: keep the
         * transport open to answer it (the app hears http.disconnect all
         * the same when no pipelined request follows: a client that closed
         * looks the same until a write fails) */
        if (p->cy != NULL)
            cg_asgi_cycle_eof(p->cy);
        Py_RETURN_TRUE;
    }
    if (p->state == CG_ASGI_HEAD && p->c_up && !p->closed) {
        /* what is left can never become a request */
        Py_INCREF(self);
        cg__process(p);
        bool busy = p->state == CG_ASGI_BUSY;
        Py_DECREF(self);
        if (busy)
            Py_RETURN_TRUE;
    }
    Py_RETURN_NONE; /* asyncio closes the transport */
}

static PyObject *cg__connection_lost(PyObject *self, PyObject *exc)
{
    cg_asgi_proto_t *p = (cg_asgi_proto_t *)self;
    cg_asgi_t *a = p->a;
    p->closed = true;
    p->eof = true;
    if (p->cy != NULL) {
        cg_asgi_cycle_t *cy = p->cy;
        p->cy = NULL;
        cg_asgi_cycle_lost(cy); /* drops cy's reference to p */
        Py_DECREF(cy);
    }
    cg_asgi_h2_lost(p);
    cg_asgi_resolve(a, p->drain, Py_None);
    Py_CLEAR(p->drain);
    p->deadline = 0;
    if (p->listed) {
        if (p->prev != NULL)
            p->prev->next = p->next;
        else
            a->conns = p->next;
        if (p->next != NULL)
            p->next->prev = p->prev;
        p->prev = p->next = NULL;
        p->listed = false;
        a->nconns--;
        if (a->on_conns != NULL)
            a->on_conns(a->on_conns_arg);
        if (a->nconns == 0 && a->drained != NULL)
            cg_asgi_resolve(a, a->drained, Py_None);
    }
    Py_CLEAR(p->transport);
    Py_RETURN_NONE;
}

static PyObject *cg__pause_writing(PyObject *self, PyObject *unused)
{
    ((cg_asgi_proto_t *)self)->write_paused = true;
    Py_RETURN_NONE;
}

static PyObject *cg__resume_writing(PyObject *self, PyObject *unused)
{
    cg_asgi_proto_t *p = (cg_asgi_proto_t *)self;
    p->write_paused = false;
    if (p->state == CG_ASGI_H2)
        cg_asgi_h2_writable(p);
    if (p->drain != NULL) {
        PyObject *d = p->drain;
        p->drain = NULL;
        cg_asgi_resolve(p->a, d, Py_None);
        Py_DECREF(d);
    }
    Py_RETURN_NONE;
}

static void cg__proto_dealloc(PyObject *self)
{
    cg_asgi_proto_t *p = (cg_asgi_proto_t *)self;
    PyTypeObject *tp = Py_TYPE(self);
    Py_XDECREF(p->transport);
    Py_XDECREF(p->drain);
    Py_XDECREF((PyObject *)p->cy);
    Py_XDECREF(p->client);
    Py_XDECREF(p->server);
    Py_XDECREF(p->scope_tpl);
    Py_XDECREF(p->raw_path);
    Py_XDECREF(p->path);
    Py_XDECREF(p->hdrs);
    cg_asgi_h2_free(p);
    if (p->c_up)
        cg__conn_park(p->a, &p->c);
    free(p->in);
    free(p->out);
    PyObject_Free(self);
    Py_DECREF(tp);
}

static PyMethodDef cg__proto_methods[] = {
    {"connection_made", cg__connection_made, METH_O, NULL},
    {"data_received", cg__data_received, METH_O, NULL},
    {"eof_received", cg__eof_received, METH_NOARGS, NULL},
    {"connection_lost", cg__connection_lost, METH_O, NULL},
    {"pause_writing", cg__pause_writing, METH_NOARGS, NULL},
    {"resume_writing", cg__resume_writing, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* The protocol is its own factory (see cg_asgi_proto_new). */
static PyObject *cg__proto_call(PyObject *self, PyObject *args, PyObject *kw)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kw != NULL && PyDict_GET_SIZE(kw) != 0))
        return PyErr_Format(PyExc_TypeError, "the protocol factory takes no arguments");
    return Py_NewRef(self);
}

static PyType_Slot cg__proto_slots[] = {
    {Py_tp_dealloc, (void *)cg__proto_dealloc},
    {Py_tp_call, (void *)cg__proto_call},
    {Py_tp_methods, cg__proto_methods},
    {Py_tp_doc, "An HTTP/1.1 connection of cgunicorn's ASGI worker (asyncio.Protocol)."},
    {0, NULL},
};

static PyType_Spec cg__proto_spec = {
    .name = "cgunicorn.asgi.Protocol",
    .basicsize = sizeof(cg_asgi_proto_t),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = cg__proto_slots,
};

/* ---- a new connection ---- */

PyObject *cg_asgi_proto_new(cg_asgi_t *a, const cg_listener_t *l, int fd,
                            const struct sockaddr *peer, socklen_t peerlen)
{
    if (cg__proto_type == NULL && cg_asgi_type(&cg__proto_type, &cg__proto_spec) == NULL)
        return NULL;
    cg_asgi_proto_t *p = PyObject_New(cg_asgi_proto_t, cg__proto_type); /* new */
    if (p == NULL)
        return NULL;
    /* everything after the object header starts zeroed */
    memset((char *)p + sizeof(PyObject), 0, sizeof(*p) - sizeof(PyObject));
    p->a = a;
    p->l = l;
    p->fd = fd;
    p->c.fd = -1;
    if (peerlen > sizeof(p->c.peer))
        peerlen = sizeof(p->c.peer);
    memcpy(&p->c.peer, peer, peerlen);
    p->c.peerlen = peerlen;
    p->state = CG_ASGI_HEAD;
    return (PyObject *)p;
}
