/*
 * ggevent.c - the gevent worker's connections (-k gevent): the Python type
 * cgunicorn._core.GeventServer, whose serve(fd, listener) runs one accepted
 * connection on the calling greenlet from its first byte to its close with
 * the C every worker uses: the head step (PROXY header, parser, refusal
 * pages), cg_wsgi_handle() (environ, the app, the response, sendfile, the
 * access log and metrics), keep-alive, the lingering close.
 *
 * The transport is plain TCP on the non-blocking descriptor, so reads and
 * writes stay one syscall each in C; only its wait op differs. (With
 * certfile it is the TLS transport of src/tls/ on the master's context, as
 * for sync and gthread, with this wait and close in place of its own.) When
 * a syscall would block, wait calls gevent.socket.wait() on the connection's
 * io watcher, which switches to gevent's hub until the descriptor is ready:
 * the other greenlets run meanwhile. That call needs the GIL, so it is held
 * throughout (the WSGI contexts are cooperative, cg_wsgi_set_cooperative).
 *
 * A WSGI context (cg_wsgi_t: the recycled request objects, the cork buffer)
 * serves one request at a time; a greenlet takes one from the server's free
 * list per request and gives it back, so there are as many as requests were
 * ever in the app at once. An idle keep-alive connection holds no context
 * and no buffer (cg_conn_idle): only its cg_conn_t and its greenlet.
 *
 * The Python half (monkey-patching, the accept loop with its pool, the
 * heartbeat, signals, the graceful stop) is pylib/cgunicorn/workers/ggevent.py.
 */
#include "ggevent.h"

#include "../python/python.h"
#include "../tls/tls.h"
#include "../wsgi/wsgi.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A connection's buffer when bytes come (a typical head fits), and the size
 * over which it shrinks back between requests. */
#define CG__BUF_INITIAL 8192
#define CG__BUF_SHRINK 65536
/* What the app left unread of a body is skipped up to this much and this
 * long before the connection is reused (as the gthread worker). */
#define CG__DRAIN_MAX 65536
#define CG__DRAIN_MS 5000

typedef struct cg_gserver {
    PyObject_HEAD
    cg_worker_t *w;
    cg_conn_policy_t pol;
    bool pol_up;
    PyObject *app;         /* the WSGI callable (owned) */
    PyObject *loop_io;     /* hub.loop.io (owned) */
    PyObject *wait;        /* gevent.socket.wait (owned) */
    PyObject *sleep;       /* gevent.sleep (owned) */
    PyObject *timeout_exc; /* what wait() raises when its timeout passes (owned) */
    PyObject **lio;        /* a read watcher per listener, made on first accept (owned) */
    cg_wsgi_t **idle;      /* contexts no request holds */
    size_t nidle, idle_cap, nctx;
    int keepalive_ms; /* the whole head must come within this (Gunicorn's timeout_ctx) */
    int timeout_ms;   /* a body read or response write without progress (0: none) */
    uint64_t nconns;  /* open connections, for the metrics */
    /* even load (balance.h): accepted connections whose greenlet has not
     * started serve() yet, and the gate before each accept */
    uint64_t pending;
    cg_balance_gate_t gate;
    /* a refused accept() rests on this gevent.event.Event (owned), set when
     * a connection of the worker's own closes: it may be below its share
     * again then, and looks at once */
    PyObject *rest_ev;
    int resting; /* accept() calls resting on it */
    /* request_timeout (0: off): every context ever made (they are only
     * freed with the server), greenlet.getcurrent, hub.loop.run_callback */
    uint64_t rt_timeout_us;
    cg_wsgi_t **all;
    size_t nall, all_cap;
    PyObject *getcurrent, *run_callback, *throw_if;
} cg_gserver_t;

/* One connection, on the heap (not on the greenlet's stack, which gevent
 * copies away whenever the greenlet waits). */
typedef struct cg_gconn {
    cg_conn_t c;
    cg_gserver_t *srv;
    PyObject *io[2]; /* read / write watchers, made on first wait (owned) */
    PyObject *exc;   /* what ended the greenlet's waiting (owned), re-raised by serve() */
    /* Set when exc is: every I/O after fails with -EINTR at once (c->quit). */
    volatile sig_atomic_t abort;
    PyObject *glet; /* request_timeout: the greenlet serving it (owned); NULL: off */
} cg_gconn_t;

/* This worker's row in the workers' load table: the connections it holds
 * (served, or accepted and about to be), and whether it accepts. */
static void cg__publish(cg_gserver_t *s)
{
    cg_balance_publish(s->w->balance, s->w->balance_slot, s->w->alive != 0,
                       (uint32_t)(s->nconns + s->pending));
}

/* A connection closed: a resting accept() looks again now. */
static void cg__closed(cg_gserver_t *s)
{
    cg__publish(s);
    if (s->resting == 0 || s->rest_ev == NULL)
        return;
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb); /* new (each may be NULL) */
    PyObject *r = PyObject_CallMethod(s->rest_ev, "set", NULL); /* new */
    if (r == NULL)
        PyErr_Clear(); /* then it looks at its rest's end */
    Py_XDECREF(r);
    PyErr_Restore(et, ev, etb);
}

/* Keep the pending exception (with its traceback) in gc and abort its I/O. */
static void cg__stash(cg_gconn_t *gc)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb); /* new (each may be NULL) */
    PyErr_NormalizeException(&t, &v, &tb);
    if (v != NULL && tb != NULL)
        PyException_SetTraceback(v, tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    if (gc->exc == NULL)
        gc->exc = v;
    else
        Py_XDECREF(v);
    gc->abort = 1;
}

/* ---- the transport: plain TCP whose waiting switches to the hub ---- */

static cg_conn_ops_t cg__ops;     /* cg_conn_tcp with the two ops below */
static cg_conn_ops_t cg__tls_ops; /* cg_tls_ops with the same two */

/* c is the first member of its cg_gconn_t: c->transport is the TLS
 * transport's own on a TLS connection. */
static cg_gconn_t *cg__gconn(cg_conn_t *c)
{
    return (cg_gconn_t *)(void *)((char *)c - offsetof(cg_gconn_t, c));
}

static int cg__wait(cg_conn_t *c, int want, int timeout_ms)
{
    cg_gconn_t *gc = cg__gconn(c);
    cg_gserver_t *s = gc->srv;
    if (gc->abort)
        return -EINTR;
    if (c->ops == &cg__tls_ops) /* OpenSSL may need to write to read, or the reverse */
        want = cg_tls_wait_direction(c, want);
    int k = want == CG_CONN_WANT_READ ? 0 : 1;
    /* the connection layer may wait with an error set (a refusal while
     * the app's exception is being reported): kept aside for the call */
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb); /* new (each may be NULL) */
    if (gc->io[k] == NULL) /* libev's EV_READ 1, EV_WRITE 2 */
        gc->io[k] = PyObject_CallFunction(s->loop_io, "ii", c->fd, k == 0 ? 1 : 2); /* new */
    PyObject *secs = timeout_ms < 0 ? Py_NewRef(Py_None)
                                    : PyFloat_FromDouble(timeout_ms / 1000.0); /* new */
    PyObject *r = gc->io[k] != NULL && secs != NULL
                      ? PyObject_CallFunctionObjArgs(s->wait, gc->io[k], secs, s->timeout_exc, NULL)
                      : NULL; /* new */
    Py_XDECREF(secs);
    int rc = 0;
    if (r == NULL && PyErr_ExceptionMatches((PyObject *)Py_TYPE(s->timeout_exc))) {
        PyErr_Clear();
        /* raised again next time: its traceback would keep growing */
        PyException_SetTraceback(s->timeout_exc, Py_None);
        rc = -ETIMEDOUT;
    } else if (r == NULL) {
        /* GreenletExit (the pool killed us), SystemExit (a signal handler
         * ran while we waited), a watcher that could not be made */
        cg__stash(gc);
        rc = -EINTR;
    }
    Py_XDECREF(r);
    PyErr_Restore(et, ev, etb);
    return rc;
}

/* Close and drop an io watcher (*slot may be NULL: nothing to do). */
static void cg__watcher_drop(PyObject **slot)
{
    if (*slot == NULL)
        return;
    PyObject *r = PyObject_CallMethod(*slot, "close", NULL); /* new */
    if (r == NULL)
        PyErr_Clear();
    Py_XDECREF(r);
    Py_CLEAR(*slot);
}

static void cg__close(cg_conn_t *c)
{
    cg_gconn_t *gc = cg__gconn(c);
    /* watchers go before the descriptor: libev must not watch a number
     * the next accept may reuse */
    cg__watcher_drop(&gc->io[0]);
    cg__watcher_drop(&gc->io[1]);
    if (c->ops == &cg__tls_ops)
        cg_tls_ops.close(c);
    else
        cg_conn_tcp.close(c);
}

/* ---- WSGI contexts ---- */

static cg_wsgi_t *cg__ctx_take(cg_gserver_t *s)
{
    if (s->nidle > 0)
        return s->idle[--s->nidle];
    cg_wsgi_t *ws = cg_xmalloc(sizeof(*ws));
    if (cg_wsgi_init(ws, s->w, Py_NewRef(s->app)) < 0 || cg_wsgi_set_cooperative(ws, s->sleep) < 0) {
        cg_wsgi_free(ws);
        free(ws);
        return NULL;
    }
    /* requests overlap on this one thread: its board counts them in and
     * out (cg_board_enter) */
    ws->board = cg_board_thread(s->w->board, 0);
    s->nctx++;
    if (s->rt_timeout_us > 0) {
        if (s->nall == s->all_cap) {
            s->all_cap = s->all_cap ? s->all_cap * 2 : 16;
            s->all = cg_xrealloc(s->all, s->all_cap * sizeof(*s->all));
        }
        s->all[s->nall++] = ws;
        ws->rt_on = true;
    }
    return ws;
}

static void cg__ctx_give(cg_gserver_t *s, cg_wsgi_t *ws)
{
    if (s->nidle == s->idle_cap) {
        s->idle_cap = s->idle_cap ? s->idle_cap * 2 : 16;
        s->idle = cg_xrealloc(s->idle, s->idle_cap * sizeof(*s->idle));
    }
    s->idle[s->nidle++] = ws;
}

/* ---- one connection ---- */

/* Read a request head (the first of the connection or the next one kept
 * alive), the whole of it within the keep-alive time as Gunicorn's
 * timeout_ctx. Returns 1 with c->req parsed, or 0 when the connection must
 * close (logged; a refusal page is out). */
static int cg__read_head(cg_gconn_t *gc)
{
    cg_conn_t *c = &gc->c;
    cg_gserver_t *s = gc->srv;
    cg_log_t *log = s->w->log;
    c->io_timeout_ms = 0;
    c->deadline_ms = s->keepalive_ms > 0 ? cg_monotonic_ms() + (uint64_t)s->keepalive_ms : 0;
    if (c->buf.data == NULL) {
        /* idle, nothing buffered: the buffers come back with the first byte
         * (which TLS may hold decrypted already: no wait then) */
        bool ready = c->ops->pending != NULL && c->ops->pending(c) > 0;
        int w = ready ? 0
                      : c->ops->wait(c, CG_CONN_WANT_READ, s->keepalive_ms > 0 ? s->keepalive_ms : -1);
        if (w < 0) {
            if (w == -ETIMEDOUT || w == -EINTR)
                cg_log_debug(log, "Closing connection. ");
            else
                cg_conn_log_read_end(c, log, w);
            return 0;
        }
        cg_conn_wake(c, &s->pol, CG__BUF_INITIAL);
    }
    for (;;) {
        int h = cg_conn_head_step(c, &s->pol, log);
        if (h != 0)
            return h > 0;
        ssize_t n = cg_conn_fill(c);
        if (n == -ENOBUFS) {
            cg_http_error_t e = {.code = CG_HTTP_E_LIMIT_REQUEST_HEADERS, .lit = "max buffer headers"};
            cg_conn_refuse(c, &s->pol, log, &e);
            return 0;
        }
        if (n <= 0) {
            if (n == -EINTR && gc->exc != NULL)
                return 0;
            cg_conn_log_read_end(c, log, n);
            return 0;
        }
    }
}

/* Serve requests on gc until the connection ends. Returns whether the last
 * request was read whole with nothing after it (no lingering needed). */
static bool cg__serve_conn(cg_gconn_t *gc)
{
    cg_conn_t *c = &gc->c;
    cg_gserver_t *s = gc->srv;
    cg_worker_t *w = s->w;
    for (;;) {
        if (cg__read_head(gc) == 0)
            return false;
        cg_conn_begin_body(c, &s->pol);
        c->io_timeout_ms = s->timeout_ms;
        cg_worker_count_request(w);
        /* TERM or max_requests: this response says Connection: close */
        c->must_close = !w->alive || s->keepalive_ms == 0;
        cg_wsgi_t *ws = cg__ctx_take(s);
        if (ws == NULL) {
            cg_py_log_exception(w->log, CG_LOG_ERROR, "Error handling request (no URI read)");
            return false;
        }
        int rc = cg_wsgi_handle(ws, c);
        if (ws->exit_exc != NULL && gc->exc == NULL) {
            gc->exc = ws->exit_exc; /* the greenlet's end: serve() re-raises it */
            ws->exit_exc = NULL;
            gc->abort = 1;
        }
        Py_CLEAR(ws->exit_exc);
        cg__ctx_give(s, ws);
        bool keep = rc == 0 && c->keep_alive && !gc->abort;
        if (keep && !cg_conn_body_done(c))
            keep = cg_conn_skip_body(c, CG__DRAIN_MAX, CG__DRAIN_MS);
        bool done = rc == 0 && cg_conn_body_done(c) && !c->body.truncated;
        if (!keep)
            return done && c->buf.off == c->buf.len;
        cg_conn_next_request(c, CG__BUF_INITIAL, CG__BUF_SHRINK);
        if (c->buf.len == 0)
            cg_conn_idle(c);
    }
}

/* serve(fd, listener): serve the accepted connection fd (taken over: it is
 * closed before this returns) that came in on w->listeners[listener]. Runs
 * on the caller's greenlet until the connection ends; re-raises what ended
 * the greenlet's waiting (GreenletExit, SystemExit). */
static PyObject *cg__serve(PyObject *self, PyObject *args)
{
    cg_gserver_t *s = (cg_gserver_t *)self;
    int fd, li;
    if (!PyArg_ParseTuple(args, "ii:serve", &fd, &li))
        return NULL;
    if (s->pending > 0) /* accept() counted it: nconns does from here */
        s->pending--;
    if (li < 0 || (size_t)li >= s->w->nlisteners) {
        close(fd);
        return PyErr_Format(PyExc_ValueError, "no listener %d", li);
    }
    cg_gconn_t *gc = cg_xcalloc(1, sizeof(*gc));
    cg_conn_t *c = &gc->c;
    gc->srv = s;
    Py_INCREF(self); /* the connection's server: a kill cannot free it under us */
    c->peerlen = sizeof(c->peer);
    if (getpeername(fd, (struct sockaddr *)&c->peer, &c->peerlen) < 0) {
        /* the client left already */
        cg_log_debug(s->w->log, "getpeername: %s", strerror(errno));
        cg__closed(s);
        close(fd);
        free(gc);
        Py_DECREF(self);
        Py_RETURN_NONE;
    }
    cg_conn_init(c, &s->pol, CG__BUF_INITIAL);
    cg_conn_accepted(c, &s->pol, fd, &s->w->listeners[li], true);
    c->ops = &cg__ops;
    c->transport = gc;
    c->quit = &gc->abort;
    if (s->rt_timeout_us > 0 && (gc->glet = PyObject_CallNoArgs(s->getcurrent)) == NULL)
        PyErr_Clear(); /* then its requests are answered 504 but not interrupted */
    cg_board_conns_open(s->pol.board, ++s->nconns);
    cg__publish(s);

    bool done = false;
    if (s->w->tls != NULL) {
        /* the handshake first, on this greenlet, within --timeout (as
         * the gthread worker); Gunicorn's gevent worker runs it on its
         * first read of the wrapped socket */
        int r = cg_tls_attach(c, s->w->tls);
        if (r < 0) {
            cg_log_error(s->w->log, "Cannot set up TLS for a connection: %s", strerror(-r));
            goto close;
        }
        c->ops = &cg__tls_ops;
        c->deadline_ms = s->timeout_ms > 0 ? cg_monotonic_ms() + (uint64_t)s->timeout_ms : 0;
        r = cg_conn_handshake(c);
        c->deadline_ms = 0;
        if (r < 0) {
            if (!(r == -EINTR && gc->exc != NULL))
                cg_conn_log_read_end(c, s->w->log, r);
            done = true; /* no response went out: nothing to linger for */
            goto close;
        }
    }
    done = cg__serve_conn(gc);

close:

    cg_conn_close_graceful(c, done || gc->abort);
    if (c->app_sock != NULL) {
        /* the app's gunicorn.socket of a connection the loop closed */
        cg_wsgi_orphans_t q = {0};
        cg_wsgi_orphans_add(&q, c);
        cg_wsgi_orphans_release(&q);
    }
    cg_board_conns_open(s->pol.board, --s->nconns);
    cg__closed(s);
    cg_conn_release(c);
    PyObject *exc = gc->exc;
    Py_XDECREF(gc->glet);
    free(gc);
    Py_DECREF(self);
    if (exc == NULL)
        Py_RETURN_NONE;
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
    return NULL;
}

/* accept(listener) -> the descriptor of a connection accepted on
 * w->listeners[listener] (non-blocking, close-on-exec), waiting on the hub
 * until one comes and the workers' load table lets this worker take it
 * (balance.h: above its share it sleeps a few milliseconds and looks
 * again, leaving the connection to the others); None after an error that a
 * pause may cure (EMFILE ..., logged). Accepting here rather than in
 * gevent's StreamServer keeps each connection's greenlet shallow: its run
 * is serve() itself, so what gevent copies away while it waits is a few C
 * frames. The caller's serve() must follow for each descriptor (it is
 * counted as held until then). */
static PyObject *cg__accept(PyObject *self, PyObject *arg)
{
    cg_gserver_t *s = (cg_gserver_t *)self;
    cg_worker_t *w = s->w;
    long li = PyLong_AsLong(arg);
    if (li == -1 && PyErr_Occurred())
        return NULL;
    if (li < 0 || (size_t)li >= w->nlisteners)
        return PyErr_Format(PyExc_ValueError, "no listener %ld", li);
    int lfd = w->listeners[li].fd;
    bool ready = true; /* try at once; after EAGAIN or a refusal, wait for the listener */
    for (;;) {
        if (!ready) {
            if (s->lio[li] == NULL) {
                s->lio[li] = PyObject_CallFunction(s->loop_io, "ii", lfd, 1); /* new */
                if (s->lio[li] == NULL)
                    return NULL;
            }
            PyObject *r = PyObject_CallFunctionObjArgs(s->wait, s->lio[li], NULL); /* new */
            if (r == NULL)
                return NULL; /* GreenletExit: the worker stops accepting */
            Py_DECREF(r);
        }
        ready = true;
        unsigned rest = cg_balance_gate_take(&s->gate, w->balance, w->balance_slot,
                                             (uint32_t)(s->nconns + s->pending), cg_monotonic_ms());
        if (rest > 0) {
            /* the hub runs meanwhile: this worker's greenlets, and the
             * others take the connection */
            PyObject *r = PyObject_CallMethod(s->rest_ev, "clear", NULL); /* new */
            Py_XDECREF(r);
            s->resting++;
            r = r != NULL ? PyObject_CallMethod(s->rest_ev, "wait", "d", rest / 1000.0) : NULL;
            s->resting--;
            if (r == NULL)
                return NULL;
            Py_DECREF(r);
            ready = false;
            continue;
        }
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            s->pending++;
            cg__publish(s);
            return PyLong_FromLong(fd);
        }
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            cg_log_error(w->log, "accept() failed: %s", strerror(errno));
            Py_RETURN_NONE;
        }
        cg_balance_gate_reset(&s->gate); /* whatever waited is taken */
        ready = false;
    }
}

/* contexts() -> the number of WSGI contexts made (requests in the app at
 * once, at most). */
/* ---- request_timeout ---- */

static bool cg__rt_raw(const cg_conn_t *c)
{
    /* one thread: a request whose head is not out has nothing on the wire */
    return c->ops == &cg__ops && c->fd >= 0;
}

/* still(): whether the request a TimeoutError is meant for is still the
 * one in the app. self: (capsule of the context, its start). The throw
 * itself is the Python helper's (ggevent.py _throw_if), on the hub, so no
 * C frame of ours is on the stack across the switch into the greenlet. */
static PyObject *cg__rt_still(PyObject *self, PyObject *unused)
{
    CG_UNUSED(unused);
    cg_wsgi_t *ws = PyCapsule_GetPointer(PyTuple_GET_ITEM(self, 0), "cgunicorn.gevent.ctx");
    unsigned long long since = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(self, 1));
    if (ws == NULL || PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(ws->rt.since_us == since);
}

static PyMethodDef cg__rt_still_def = {"_request_timeout_still", cg__rt_still, METH_NOARGS, NULL};

static void cg__rt_fire(cg_gserver_t *s, cg_wsgi_t *ws, uint64_t since)
{
    char what[160];
    int answered = cg_wsgi_rt_expire(ws, since, cg__rt_raw, what, sizeof(what));
    if (answered < 0)
        return;
    cg_gconn_t *gc = ws->rt.conn->transport;
    PyObject *glet = gc->glet;
    PyObject *frame = glet ? PyObject_GetAttrString(glet, "gr_frame") : NULL; /* new */
    if (frame == NULL)
        PyErr_Clear();
    cg_wsgi_rt_log(s->w->log, (long)(s->rt_timeout_us / 1000000u), what, answered > 0,
                   frame != Py_None ? frame : NULL);
    Py_XDECREF(frame);
    if (glet == NULL)
        return;
    PyObject *cap = PyCapsule_New(ws, "cgunicorn.gevent.ctx", NULL);            /* new */
    PyObject *self = cap ? Py_BuildValue("(OK)", cap, (unsigned long long)since) : NULL;
    PyObject *fn = self ? PyCFunction_New(&cg__rt_still_def, self) : NULL; /* new */
    PyObject *h = fn ? PyObject_CallFunctionObjArgs(s->run_callback, s->throw_if, fn, glet,
                                                    PyExc_TimeoutError, NULL)
                     : NULL; /* new */
    if (h == NULL)
        cg_py_log_exception(s->w->log, CG_LOG_ERROR, "request_timeout: cannot interrupt");
    Py_XDECREF(h);
    Py_XDECREF(fn);
    Py_XDECREF(self);
    Py_XDECREF(cap);
}

/* watch_requests() -> the seconds until it wants to be called again, or
 * None when request_timeout is off. Answers, logs and interrupts the
 * requests past the timeout; past as long again, asks for a successor. */
static PyObject *cg__watch_requests(PyObject *self, PyObject *unused)
{
    cg_gserver_t *s = (cg_gserver_t *)self;
    if (s->rt_timeout_us == 0)
        Py_RETURN_NONE;
    uint64_t now = cg_monotonic_us();
    for (size_t i = 0; i < s->nall; i++) {
        cg_wsgi_t *ws = s->all[i];
        uint64_t since = ws->rt.since_us;
        if (since == 0 || since > now || now - since < s->rt_timeout_us)
            continue;
        if (ws->rt.fired != since) {
            cg__rt_fire(s, ws, since);
        } else if (now - since >= 2 * s->rt_timeout_us && !ws->rt.replace_asked) {
            ws->rt.replace_asked = true;
            cg_log_warning(s->w->log,
                           "A request is still in the application %lld s after its "
                           "request_timeout: asking for a successor to this worker (pid:%d), "
                           "which then stops gracefully",
                           (long long)(s->rt_timeout_us / 1000000u), (int)getpid());
            cg_heartbeat_ask_replace(&s->w->hb);
        }
    }
    double tick = (double)s->rt_timeout_us / 1e7;
    return PyFloat_FromDouble(tick < 0.2 ? tick : 0.2);
}

static PyObject *cg__contexts(PyObject *self, PyObject *unused)
{
    return PyLong_FromSize_t(((cg_gserver_t *)self)->nctx);
}

/* GeventServer(app, loop_io, wait, sleep): app the WSGI callable,
 * loop_io the hub loop's io(fd, events), wait gevent.socket.wait, sleep
 * gevent.sleep. Only in a worker process. */
static int cg__init(PyObject *self, PyObject *args, PyObject *kwds)
{
    cg_gserver_t *s = (cg_gserver_t *)self;
    PyObject *app, *loop_io, *wait, *sleep;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) > 0) {
        PyErr_SetString(PyExc_TypeError, "GeventServer() takes no keyword arguments");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "OOOO:GeventServer", &app, &loop_io, &wait, &sleep))
        return -1;
    if (s->w != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "GeventServer is made once");
        return -1;
    }
    cg_worker_t *w = cg_py_worker_self();
    if (w == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "not in a cgunicorn worker process");
        return -1;
    }
    PyObject *cls = PyErr_NewException("cgunicorn._core.GeventWaitTimeout", NULL, NULL); /* new */
    s->timeout_exc = cls != NULL ? PyObject_CallNoArgs(cls) : NULL;                       /* new */
    Py_XDECREF(cls);
    if (s->timeout_exc == NULL)
        return -1;
    if (cg_conn_policy_init(&s->pol, w->cfg, w->log) < 0) {
        cg_conn_policy_free(&s->pol);
        PyErr_SetString(PyExc_RuntimeError, "invalid trust lists (see the log)");
        return -1;
    }
    s->pol_up = true;
    s->pol.board = w->board;
    s->w = w;
    s->lio = cg_xcalloc(w->nlisteners, sizeof(*s->lio));
    for (size_t i = 0; i < w->nlisteners; i++) {
        /* accept() must never block the process (the master's descriptor
         * may be blocking; the flag is the open file's, shared) */
        int fl = fcntl(w->listeners[i].fd, F_GETFL);
        if (fl < 0 || fcntl(w->listeners[i].fd, F_SETFL, fl | O_NONBLOCK) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
    }
    PyObject *gev = PyImport_ImportModule("gevent.event"); /* new */
    s->rest_ev = gev != NULL ? PyObject_CallMethod(gev, "Event", NULL) : NULL;
    Py_XDECREF(gev);
    if (s->rest_ev == NULL)
        return -1;
    s->app = Py_NewRef(app);
    s->loop_io = Py_NewRef(loop_io);
    s->wait = Py_NewRef(wait);
    s->sleep = Py_NewRef(sleep);
    const cg_config_t *cfg = w->cfg;
    s->keepalive_ms = (int)cfg->keepalive * 1000;
    /* every wait is bounded: a client that stops sending or reading for
     * --timeout loses its connection, as in the gthread worker (Gunicorn's
     * gevent worker has no bound there) */
    s->timeout_ms = (int)cfg->timeout * 1000;
    if (cfg->request_timeout > 0) {
        PyObject *gl = PyImport_ImportModule("greenlet"); /* new */
        s->getcurrent = gl ? PyObject_GetAttrString(gl, "getcurrent") : NULL;
        Py_XDECREF(gl);
        PyObject *ghub = s->getcurrent ? PyImport_ImportModule("gevent.hub") : NULL;
        PyObject *hub = ghub ? PyObject_CallMethod(ghub, "get_hub", NULL) : NULL;
        PyObject *loop = hub ? PyObject_GetAttrString(hub, "loop") : NULL;
        s->run_callback = loop ? PyObject_GetAttrString(loop, "run_callback") : NULL;
        Py_XDECREF(loop);
        Py_XDECREF(hub);
        Py_XDECREF(ghub);
        PyObject *mod = s->run_callback ? PyImport_ImportModule("cgunicorn.workers.ggevent") : NULL;
        s->throw_if = mod ? PyObject_GetAttrString(mod, "_throw_if") : NULL;
        Py_XDECREF(mod);
        if (s->throw_if == NULL)
            return -1;
        s->rt_timeout_us = (uint64_t)cfg->request_timeout * 1000000u;
    }
    return 0;
}

static void cg__dealloc(PyObject *self)
{
    cg_gserver_t *s = (cg_gserver_t *)self;
    for (size_t i = 0; i < s->nidle; i++) {
        cg_wsgi_free(s->idle[i]);
        free(s->idle[i]);
    }
    free(s->idle);
    free(s->all);
    Py_CLEAR(s->getcurrent);
    Py_CLEAR(s->run_callback);
    Py_CLEAR(s->throw_if);
    if (s->pol_up)
        cg_conn_policy_free(&s->pol);
    for (size_t i = 0; s->lio != NULL && s->w != NULL && i < s->w->nlisteners; i++)
        cg__watcher_drop(&s->lio[i]);
    free(s->lio);
    Py_CLEAR(s->app);
    Py_CLEAR(s->loop_io);
    Py_CLEAR(s->wait);
    Py_CLEAR(s->sleep);
    Py_CLEAR(s->timeout_exc);
    Py_CLEAR(s->rest_ev);
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef cg__methods[] = {
    {"serve", cg__serve, METH_VARARGS,
     "serve(fd, listener): serve an accepted connection on this greenlet until it ends"},
    {"accept", cg__accept, METH_O,
     "accept(listener): a connection's descriptor, waiting on the hub; None after EMFILE ..."},
    {"contexts", cg__contexts, METH_NOARGS, "contexts(): WSGI contexts made so far"},
    {"watch_requests", cg__watch_requests, METH_NOARGS,
     "watch_requests(): time out requests past request_timeout; seconds until the next "
     "call, None when it is off"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot cg__slots[] = {
    {Py_tp_init, cg__init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, cg__dealloc},
    {Py_tp_methods, cg__methods},
    {Py_tp_doc, "The gevent worker's connections, served in C on greenlets."},
    {0, NULL},
};

static PyType_Spec cg__spec = {
    .name = "cgunicorn._core.GeventServer",
    .basicsize = sizeof(cg_gserver_t),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = cg__slots,
};

int cg_worker_gevent_add_type(PyObject *module)
{
    cg__ops = cg_conn_tcp;
    cg__ops.name = "gevent";
    cg__ops.wait = cg__wait;
    cg__ops.close = cg__close;
    cg__tls_ops = cg_tls_ops;
    cg__tls_ops.name = "gevent-tls";
    cg__tls_ops.wait = cg__wait;
    cg__tls_ops.close = cg__close;
    PyObject *t = PyType_FromSpec(&cg__spec); /* new */
    if (t == NULL)
        return -1;
    if (PyModule_AddObject(module, "GeventServer", t) < 0) { /* steals t only on success */
        Py_DECREF(t);
        return -1;
    }
    return 0;
}
