/*
 * asgi.c - the ASGI worker's loop driver. The loop is asyncio's own (or
 * uvloop's, asgi_loop): the worker runs it with the GIL held, in phases,
 * each one loop.run_until_complete() on a future:
 *
 *   lifespan startup -> watch the listeners (asgi_accept.c) -> serve until
 *   the stop future is set (TERM, max_requests, parent gone) -> stop
 *   accepting, close idle connections, wait for busy ones
 *   (graceful_timeout) -> lifespan shutdown -> cancel what is left, close
 *   the loop.
 *
 * Signals stay the worker's C handlers (worker.c): they write to the wake
 * pipe, which the loop watches (add_reader); QUIT/INT/ABRT also raise
 * SystemExit in whatever Python runs (w->in_app is set for the whole run),
 * which ends the current phase at once. The heartbeat is a call_later chain:
 * a loop blocked by the app stops beating, and the master's --timeout
 * catches it.
 */
#include "asgi.h"
#include "asgi_accept.h"

#include "../asgi/asgi.h"
#include "../metrics/statsd.h"
#include "../tls/tls.h"
#include "../python/python.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The driver's callbacks reach the state through a capsule. */
static cg_asgi_t *cg__state(PyObject *cap)
{
    return PyCapsule_GetPointer(cap, "cgunicorn.asgi.state");
}

static void cg__check_flags(cg_asgi_t *a)
{
    cg_worker_t *w = a->w;
    if (w->reopen_logs) {
        w->reopen_logs = 0;
        cg_log_reopen(w->log);
    }
    if (!w->alive)
        cg_asgi_resolve(a, a->stop, Py_None);
}

static PyObject *cg__on_wake(PyObject *self, PyObject *unused)
{
    cg_asgi_t *a = cg__state(self);
    if (a == NULL)
        return NULL;
    char sink[64];
    while (read(a->w->wake_pipe[0], sink, sizeof(sink)) > 0)
        ;
    cg__check_flags(a);
    Py_RETURN_NONE;
}

static PyObject *cg__on_tick(PyObject *self, PyObject *unused);
static PyMethodDef cg__on_tick_def = {"_heartbeat", cg__on_tick, METH_NOARGS, NULL};
static PyMethodDef cg__on_wake_def = {"_wake", cg__on_wake, METH_NOARGS, NULL};

/* The heartbeat's period: often enough for the master's --timeout, and for
 * batched statsd metrics to leave within statsd_flush_interval. */
static double cg__tick_s(const cg_worker_t *w)
{
    const cg_config_t *cfg = w->cfg;
    double t = cfg->timeout > 0 ? (double)cfg->timeout / 2.0 : 1.0;
    if (w->statsd_batch != NULL && cfg->statsd_flush_interval > 0 &&
        (double)cfg->statsd_flush_interval / 1000.0 < t)
        t = (double)cfg->statsd_flush_interval / 1000.0;
    return t > 1.0 ? 1.0 : t;
}

static int cg__tick_arm(PyObject *cap)
{
    cg_asgi_t *a = cg__state(cap);
    PyObject *fn = a ? cg_asgi_bind(&cg__on_tick_def, cap) : NULL; /* new */
    PyObject *h = fn ? PyObject_CallMethod(a->loop, "call_later", "dO", cg__tick_s(a->w), fn)
                     : NULL; /* new */
    Py_XDECREF(fn);
    Py_XDECREF(h);
    return h != NULL ? 0 : -1;
}

static PyObject *cg__on_tick(PyObject *self, PyObject *unused)
{
    cg_asgi_t *a = cg__state(self);
    if (a == NULL)
        return NULL;
    cg_worker_t *w = a->w;
    cg_heartbeat_notify(&w->hb);
    if (w->statsd_batch != NULL)
        (void)cg_statsd_batch_flush_due(w->statsd_batch, cg_monotonic_us());
    if (w->alive && getppid() != w->ppid) {
        cg_log_info(w->log, "Parent changed, shutting down: <Worker %d>", (int)w->pid);
        w->alive = 0;
    }
    cg__check_flags(a);
    cg_asgi_sweep(a); /* the connections' deadlines */
    if (cg__tick_arm(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Resolve the future `self` unless it is done: a graceful timeout's end. */
static PyObject *cg__on_deadline(PyObject *self, PyObject *unused)
{
    PyObject *r = PyObject_CallMethod(self, "done", NULL); /* new */
    if (r != NULL && !PyObject_IsTrue(r)) {
        PyObject *s = PyObject_CallMethod(self, "set_result", "O", Py_None); /* new */
        Py_XDECREF(s);
    }
    Py_XDECREF(r);
    PyErr_Clear();
    Py_RETURN_NONE;
}
static PyMethodDef cg__on_deadline_def = {"_deadline", cg__on_deadline, METH_NOARGS, NULL};

/* The event loop asgi_loop asks for, set as the thread's loop. New
 * reference, or NULL (logged). */
static PyObject *cg__new_loop(cg_worker_t *w)
{
    const char *want = w->cfg->asgi_loop ? w->cfg->asgi_loop : "auto";
    PyObject *loop = NULL;
    if (strcmp(want, "asyncio") != 0) {
        PyObject *uvloop = PyImport_ImportModule("uvloop"); /* new */
        if (uvloop != NULL) {
            loop = PyObject_CallMethod(uvloop, "new_event_loop", NULL);
            Py_DECREF(uvloop);
            if (loop == NULL)
                goto fail;
            cg_log_debug(w->log, "Using uvloop event loop");
        } else if (strcmp(want, "uvloop") == 0) {
            cg_py_log_exception(w->log, CG_LOG_ERROR,
                                "asgi_loop is uvloop, but uvloop cannot be imported");
            return NULL;
        } else {
            PyErr_Clear(); /* auto: asyncio's own */
        }
    }
    PyObject *asyncio = PyImport_ImportModule("asyncio"); /* new */
    if (asyncio == NULL)
        goto fail;
    if (loop == NULL) {
        loop = PyObject_CallMethod(asyncio, "new_event_loop", NULL);
        if (loop != NULL)
            cg_log_debug(w->log, "Using asyncio event loop");
    }
    PyObject *r = loop ? PyObject_CallMethod(asyncio, "set_event_loop", "O", loop) : NULL;
    Py_DECREF(asyncio);
    if (r == NULL)
        goto fail;
    Py_DECREF(r);
    return loop;
fail:
    Py_XDECREF(loop);
    cg_py_log_exception(w->log, CG_LOG_ERROR, "Exception in worker process");
    return NULL;
}

/* Run until fut is done. 0, or -1 with an exception set. */
static int cg__run(cg_asgi_t *a, PyObject *fut)
{
    PyObject *r = PyObject_CallMethod(a->loop, "run_until_complete", "O", fut); /* new */
    Py_XDECREF(r);
    return r != NULL ? 0 : -1;
}

/* TLS: the ssl.SSLContext of Gunicorn's default factory, through the
 * ssl_context hook when the configuration has one (cgunicorn._tls), which
 * asyncio's transports use; a->ssl stays NULL without TLS. 0 or -1 with an
 * exception set. */
static int cg__load_ssl(cg_asgi_t *a)
{
    const cg_config_t *cfg = a->cfg;
    if (!cg_tls_configured(cfg))
        return 0;
    /* http_protocols with h2: ALPN in the list's order (the server's
     * preference, as OpenSSL's selection under Python's
     * set_alpn_protocols), set by the default factory as Gunicorn's is;
     * the protocol the handshake selected decides each connection's
     * (h2.c) */
    a->h2_tls = cg_h2_wanted(cfg);
    PyObject *alpn = a->h2_tls ? PyList_New(0) : Py_NewRef(Py_None); /* new */
    for (size_t i = 0; a->h2_tls && alpn != NULL && i < cfg->http_protocols.n; i++) {
        const char *v = cfg->http_protocols.v[i];
        const char *name = strcmp(v, "h1") == 0 ? "http/1.1" : strcmp(v, "h2") == 0 ? "h2" : NULL;
        PyObject *n = name ? PyUnicode_FromString(name) : NULL; /* new */
        if (name != NULL && (n == NULL || PyList_Append(alpn, n) < 0))
            Py_CLEAR(alpn);
        Py_XDECREF(n);
    }
    PyObject *mod = alpn ? PyImport_ImportModule("cgunicorn._tls") : NULL; /* new */
    PyObject *conf = mod != NULL ? cg_py_config_object(cfg) : NULL;         /* new */
    PyObject *hook = cfg->ssl_context != NULL ? (PyObject *)cfg->ssl_context : Py_None; /* borrowed */
    a->ssl = conf != NULL ? PyObject_CallMethod(mod, "server_context", "OOO", conf, hook, alpn)
                          : NULL; /* new, kept in a */
    Py_XDECREF(conf);
    Py_XDECREF(mod);
    Py_XDECREF(alpn);
    return a->ssl != NULL ? 0 : -1;
}

/* Cancel the tasks still running (requests past the graceful timeout, the
 * app's own) and let them unwind, then close the loop. */
static void cg__finish_loop(cg_asgi_t *a)
{
    PyObject *asyncio = PyImport_ImportModule("asyncio"); /* new */
    PyObject *tasks = asyncio ? PyObject_CallMethod(asyncio, "all_tasks", "O", a->loop) : NULL;
    PyObject *list = tasks ? PySequence_List(tasks) : NULL; /* new */
    for (Py_ssize_t i = 0; list != NULL && i < PyList_GET_SIZE(list); i++) {
        PyObject *r = PyObject_CallMethod(PyList_GET_ITEM(list, i), "cancel", NULL);
        Py_XDECREF(r);
    }
    if (list != NULL && PyList_GET_SIZE(list) > 0) {
        /* at most graceful_timeout: a task that swallows its cancellation
         * (request_timeout's stuck request) must not hold the worker; what
         * is left is abandoned with the loop, as the gthread worker leaves
         * threads still in the app */
        PyObject *g = PyObject_CallMethod(asyncio, "wait", "Od", list,
                                          (double)a->cfg->graceful_timeout); /* new */
        if (g != NULL)
            cg__run(a, g);
        Py_XDECREF(g);
    }
    PyErr_Clear();
    PyObject *ag = PyObject_CallMethod(a->loop, "shutdown_asyncgens", NULL); /* new */
    if (ag != NULL)
        cg__run(a, ag);
    Py_XDECREF(ag);
    PyErr_Clear();
    PyObject *r = PyObject_CallMethod(a->loop, "close", NULL); /* new */
    Py_XDECREF(r);
    PyErr_Clear();
    Py_XDECREF(list);
    Py_XDECREF(tasks);
    Py_XDECREF(asyncio);
}

int cg_worker_asgi_run(cg_worker_t *w, PyObject *app)
{
    /* On the heap and never freed (the process ends after this): request
     * cycles an app kept alive (a traceback, a background task's frame) are
     * freed as late as the interpreter's end and read their a->board then
     * (cg_asgi_free leaves it NULL), so the state must outlive this frame. */
    cg_asgi_t *a = cg_xcalloc(1, sizeof(*a));
    int status = CG_WORKER_EXIT_OK;
    PyObject *cap = NULL;
    cg_asgi_acc_t *acc = NULL;
    PyObject *loop = cg__new_loop(w); /* new */
    if (loop == NULL) {
        Py_DECREF(app);
        return CG_WORKER_EXIT_BOOT_ERROR;
    }
    if (cg_asgi_init(a, w, app, loop) < 0 || cg__load_ssl(a) < 0) {
        cg_py_log_exception(w->log, CG_LOG_ERROR, "Exception in worker process");
        status = CG_WORKER_EXIT_BOOT_ERROR;
        goto out;
    }
    cap = PyCapsule_New(a, "cgunicorn.asgi.state", NULL); /* new */
    PyObject *wake = cap ? cg_asgi_bind(&cg__on_wake_def, cap) : NULL; /* new */
    PyObject *r = wake ? PyObject_CallMethod(loop, "add_reader", "iO", w->wake_pipe[0], wake)
                       : NULL; /* new */
    Py_XDECREF(wake);
    Py_XDECREF(r);
    if (r == NULL || cg__tick_arm(cap) < 0 ||
        (w->cfg->request_timeout > 0 && cg_asgi_rt_start(a) < 0)) {
        cg_py_log_exception(w->log, CG_LOG_ERROR, "Exception in worker process");
        status = CG_WORKER_EXIT_BOOT_ERROR;
        goto out;
    }
    /* QUIT/INT/ABRT raise SystemExit in whatever runs on the loop */
    w->in_app = 1;

    if (cg_asgi_lifespan_startup(a) < 0) {
        if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_SystemExit))
            cg_py_log_exception(w->log, CG_LOG_ERROR, "Exception in worker process");
        PyErr_Clear();
        status = w->quick || w->got_abort ? CG_WORKER_EXIT_OK : CG_WORKER_EXIT_BOOT_ERROR;
        goto out;
    }
    if ((a->stop = cg_asgi_future(a)) == NULL)
        goto crash;
    if ((acc = cg_asgi_accept_start(a)) == NULL) {
        cg_py_log_exception(w->log, CG_LOG_ERROR, "Exception in worker process");
        status = CG_WORKER_EXIT_BOOT_ERROR;
        goto out;
    }
    if (!w->alive)
        cg_asgi_resolve(a, a->stop, Py_None);
    if (cg__run(a, a->stop) < 0)
        goto interrupted;

    /* graceful: no new connections, idle ones closed, busy ones finish
     * their request (answered with Connection: close) */
    a->stopping = true;
    cg_asgi_accept_stop(acc);
    /* connections accepted just before the stop are still being
     * made (connection_made, then their set-up's end: loop passes): let them
     * arrive, so the drain below waits for their first request instead of
     * the final cancel cutting them off unread (a reset) */
    for (int i = 0; i < 4; i++) {
        PyObject *asyncio = PyImport_ImportModule("asyncio");                     /* new */
        PyObject *z = asyncio ? PyObject_CallMethod(asyncio, "sleep", "i", 0) : NULL; /* new */
        Py_XDECREF(asyncio);
        int zr = z != NULL ? cg__run(a, z) : -1;
        Py_XDECREF(z);
        if (zr < 0)
            goto interrupted;
    }
    cg_asgi_close_idle(a);
    if (a->nconns > 0) {
        PyObject *fn = NULL, *h = NULL;
        if ((a->drained = cg_asgi_future(a)) == NULL ||
            (fn = cg_asgi_bind(&cg__on_deadline_def, a->drained)) == NULL ||
            (h = PyObject_CallMethod(loop, "call_later", "lO", (long)w->cfg->graceful_timeout,
                                     fn)) == NULL) {
            Py_XDECREF(fn);
            goto crash;
        }
        Py_DECREF(fn);
        Py_DECREF(h);
        if (cg__run(a, a->drained) < 0)
            goto interrupted;
        if (a->nconns > 0)
            cg_log_warning(w->log, "Forcing close of %zu connections", a->nconns);
    }
    cg_asgi_lifespan_shutdown(a);
    cg__finish_loop(a);
    goto out;

interrupted:
    if (PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
        /* QUIT/INT: leave now; ABRT: Gunicorn's sys.exit(1) */
        PyErr_Clear();
        if (w->got_abort && !w->quick)
            status = 1;
        goto out;
    }
crash:
    cg_py_log_exception(w->log, CG_LOG_ERROR, "Worker exception");
    status = -1;
out:
    w->in_app = 0;
    if (status == CG_WORKER_EXIT_BOOT_ERROR || status == -1)
        cg__finish_loop(a);
    cg_asgi_accept_free(acc);
    cg_asgi_rt_free(a);
    cg_asgi_free(a);
    Py_XDECREF(cap);
    return status;
}
