/*
 * timeout.c - request_timeout for the thread workers (sync, gthread): a
 * watchdog thread per worker that finds requests in the application for
 * longer than the timeout, answers them 504, logs their Python stack and
 * raises TimeoutError in their thread; a request still there after as long
 * again makes the worker ask the master for a successor.
 *
 * The serving threads publish when their request began (cg_wsgi_rt_begin,
 * a vDSO clock read and an uncontended mutex: no syscall on the hot path);
 * the watchdog wakes every tenth of the timeout (at most 200 ms) and reads
 * those stamps. The per-context mutex decides who writes the response head:
 * the app (cg_wsgi_rt_claim_head) or the watchdog's 504, never both. The
 * watchdog never waits for the GIL while holding a mutex a GIL holder may
 * want, and the GIL orders its TimeoutError against the end of the request
 * (cg_wsgi_rt_end clears one that came too late), so the exception never
 * lands in the next request. See docs/request-timeout.md.
 */
#include "wsgi.h"

#include "../http/http.h"
#include "../python/python.h"
#include "../workers/conn.h"
#include "../workers/spool.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { CG__RT_IDLE, CG__RT_RUNNING, CG__RT_SENT, CG__RT_EXPIRED };

struct cg_wsgi_rt {
    cg_worker_t *w;
    uint64_t timeout_us, grace_us, tick_ms;
    pthread_t tid;
    bool started;
    pthread_mutex_t lock; /* ctxs, stop */
    pthread_cond_t cond;  /* stop */
    bool stop;
    cg_wsgi_t **ctxs;
    size_t n, cap;
    cg_wsgi_t *main; /* the context on the main thread, whose app a signal interrupts */
    int signo;
};

/* The main thread's way out of a blocking call: the signal interrupts it
 * (EINTR) and CPython runs this handler there, which raises TimeoutError
 * if the watchdog asked for it and the request is still the same. */
static PyObject *cg__rt_on_signal(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    CG_UNUSED(args);
    CG_UNUSED(nargs);
    /* the worker, not the watch: the signal may be handled after the
     * watch is gone (w->rt NULL), on this same thread */
    cg_worker_t *w = PyCapsule_GetPointer(self, "cgunicorn.worker");
    if (w == NULL)
        return NULL;
    cg_wsgi_t *ws = w->rt != NULL ? w->rt->main : NULL;
    if (ws != NULL && __atomic_exchange_n(&ws->rt.raise, 0, __ATOMIC_ACQ_REL)) {
        PyErr_SetString(PyExc_TimeoutError, "request_timeout");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef cg__rt_on_signal_def = {
    "_cgunicorn_request_timeout", (PyCFunction)(void (*)(void))cg__rt_on_signal, METH_FASTCALL,
    "Raise TimeoutError in a request past request_timeout (signal handler)."};

static bool cg__rt_fd_writable(const cg_conn_t *c)
{
    return cg_spool_fd_writable(c);
}

int cg_wsgi_rt_expire(cg_wsgi_t *ws, uint64_t since, bool (*raw)(const cg_conn_t *c),
                      char *what, size_t whatlen)
{
    int answered = 0;
    pthread_mutex_lock(&ws->rt.lock);
    if (ws->rt.since_us != since || since == 0) { /* that request is over */
        pthread_mutex_unlock(&ws->rt.lock);
        return -1;
    }
    cg_conn_t *c = ws->rt.conn;
    snprintf(what, whatlen, "%.*s %.*s", c->req.method.len < 16 ? (int)c->req.method.len : 16,
             c->req.method.ptr, c->req.path.len < 120 ? (int)c->req.path.len : 120,
             c->req.path.ptr);
    if (ws->rt.state == CG__RT_RUNNING) {
        ws->rt.state = CG__RT_EXPIRED; /* the app's head will not go out now */
        /* Only where no other bytes can be in the way: a TLS session, an
         * HTTP/2 stream or an earlier response still being sent belong to
         * the serving side, so those connections are only closed once the
         * request returns. */
        char page[512];
        size_t n = cg_http_error_page(504, "Gateway Timeout",
                                      "The application did not answer in time.", page,
                                      sizeof(page));
        if (n > 0 && raw(c)) {
            ssize_t sent = send(c->fd, page, n, MSG_DONTWAIT | MSG_NOSIGNAL);
            answered = sent == (ssize_t)n;
            shutdown(c->fd, SHUT_WR); /* nothing the app writes can follow it */
        }
    }
    __atomic_store_n(&ws->rt.fired, since, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&ws->rt.lock);
    return answered;
}

void cg_wsgi_rt_log(cg_log_t *log, long timeout_s, const char *what, bool answered,
                    PyObject *frame)
{
    PyObject *text = NULL;
    PyObject *tb = frame != NULL ? PyImport_ImportModule("traceback") : NULL; /* new */
    PyObject *lines = tb ? PyObject_CallMethod(tb, "format_stack", "O", frame) : NULL;
    PyObject *sep = lines ? PyUnicode_FromString("") : NULL;
    if (sep != NULL)
        text = PyUnicode_Join(sep, lines);
    const char *st = text ? PyUnicode_AsUTF8(text) : NULL;
    if (st == NULL)
        PyErr_Clear();
    cg_log_error(log, "Request timeout (request_timeout %ld s): %s in worker (pid:%d)%s%s%s",
                 timeout_s, what, (int)getpid(),
                 answered ? ", answered 504" : ", the connection closes when it returns",
                 st ? ":\nTraceback (most recent call last):\n" : "", st ? st : "");
    Py_XDECREF(text);
    Py_XDECREF(sep);
    Py_XDECREF(lines);
    Py_XDECREF(tb);
}

/* The frame thread `id` runs (borrowed from `holder`, a new reference the
 * caller releases), or NULL. */
static PyObject *cg__rt_thread_frame(unsigned long id, PyObject **holder)
{
    PyObject *sys = PyImport_ImportModule("sys");                                     /* new */
    PyObject *frames = sys ? PyObject_CallMethod(sys, "_current_frames", NULL) : NULL; /* new */
    Py_XDECREF(sys);
    PyObject *key = frames ? PyLong_FromUnsignedLong(id) : NULL;          /* new */
    PyObject *frame = key ? PyDict_GetItemWithError(frames, key) : NULL; /* borrowed */
    Py_XDECREF(key);
    if (frame == NULL)
        PyErr_Clear();
    *holder = frames;
    return frame;
}

/* The request on ws has run `timeout`: answer it if nothing went out yet,
 * log where it is, interrupt it. Called without the GIL or any lock. */
static void cg__rt_fire(cg_wsgi_rt_t *rt, cg_wsgi_t *ws, uint64_t since)
{
    char what[160];
    int answered = cg_wsgi_rt_expire(ws, since, cg__rt_fd_writable, what, sizeof(what));
    if (answered < 0)
        return;
    PyGILState_STATE gs = PyGILState_Ensure();
    PyObject *holder = NULL;
    PyObject *frame = cg__rt_thread_frame(ws->thread_id, &holder);
    cg_wsgi_rt_log(rt->w->log, (long)(rt->timeout_us / 1000000u), what, answered > 0, frame);
    Py_XDECREF(holder);
    /* under the GIL, the request cannot end between this check and the
     * exception being queued (cg_wsgi_rt_end runs with the GIL) */
    pthread_mutex_lock(&ws->rt.lock);
    bool same = ws->rt.since_us == since;
    pthread_mutex_unlock(&ws->rt.lock);
    if (same && ws->on_main) {
        __atomic_store_n(&ws->rt.raise, 1, __ATOMIC_RELEASE);
        pthread_kill(rt->w->main_tid, rt->signo);
    } else if (same) {
        PyThreadState_SetAsyncExc(ws->thread_id, PyExc_TimeoutError);
    }
    PyGILState_Release(gs);
}

static void *cg__rt_main(void *arg)
{
    cg_wsgi_rt_t *rt = arg;
    /* signals are the main thread's */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_mutex_lock(&rt->lock);
    while (!rt->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + rt->tick_ms * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&rt->cond, &rt->lock, &ts);
        if (rt->stop)
            break;
        uint64_t now = cg_monotonic_us();
        for (size_t i = 0; i < rt->n; i++) {
            cg_wsgi_t *ws = rt->ctxs[i];
            uint64_t since = __atomic_load_n(&ws->rt.since_us, __ATOMIC_ACQUIRE);
            /* a request may have begun after `now` was read (firing takes
             * the GIL and logs): not due, and no unsigned wrap-around */
            if (since == 0 || since > now || now - since < rt->timeout_us)
                continue;
            if (__atomic_load_n(&ws->rt.fired, __ATOMIC_ACQUIRE) != since) {
                /* contexts leave the list without the GIL (cg_wsgi_rt_remove):
                 * the list's lock can be held while firing */
                cg__rt_fire(rt, ws, since);
            } else if (now - since >= rt->timeout_us + rt->grace_us &&
                       !__atomic_exchange_n(&ws->rt.replace_asked, true, __ATOMIC_RELAXED)) {
                cg_log_warning(rt->w->log,
                               "A request is still in the application %lld s after its "
                               "request_timeout: asking for a successor to this worker "
                               "(pid:%d), which then stops gracefully",
                               (long long)(rt->grace_us / 1000000u), (int)getpid());
                cg_heartbeat_ask_replace(&rt->w->hb);
            }
        }
    }
    pthread_mutex_unlock(&rt->lock);
    return NULL;
}

cg_wsgi_rt_t *cg_wsgi_rt_new(cg_worker_t *w)
{
    cg_wsgi_rt_t *rt = cg_xcalloc(1, sizeof(*rt));
    rt->w = w;
    rt->timeout_us = (uint64_t)w->cfg->request_timeout * 1000000u;
    rt->grace_us = rt->timeout_us;
    rt->tick_ms = rt->timeout_us / 10000u < 200u ? rt->timeout_us / 10000u : 200u;
    rt->signo = SIGRTMIN + 2;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        goto fail_free;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int r = pthread_cond_init(&rt->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (r != 0)
        goto fail_free;
    if (pthread_mutex_init(&rt->lock, NULL) != 0)
        goto fail_cond;

    /* the main thread's handler, installed by CPython (no SA_RESTART) */
    PyObject *mod = PyImport_ImportModule("signal");                     /* new */
    PyObject *cap = mod ? PyCapsule_New(w, "cgunicorn.worker", NULL) : NULL; /* new */
    PyObject *fn = cap ? PyCFunction_New(&cg__rt_on_signal_def, cap) : NULL;
    PyObject *res = fn ? PyObject_CallMethod(mod, "signal", "iO", rt->signo, fn) : NULL;
    Py_XDECREF(res);
    Py_XDECREF(fn);
    Py_XDECREF(cap);
    Py_XDECREF(mod);
    if (res == NULL) {
        cg_py_log_exception(w->log, CG_LOG_ERROR, "request_timeout: cannot install its signal");
        goto fail_lock;
    }
    r = pthread_create(&rt->tid, NULL, cg__rt_main, rt);
    if (r != 0) {
        cg_log_error(w->log, "request_timeout: cannot start its thread: %s", strerror(r));
        goto fail_lock;
    }
    rt->started = true;
    return rt;
fail_lock:
    pthread_mutex_destroy(&rt->lock);
fail_cond:
    pthread_cond_destroy(&rt->cond);
fail_free:
    free(rt);
    return NULL;
}

void cg_wsgi_rt_free(cg_wsgi_rt_t *rt)
{
    if (rt == NULL)
        return;
    pthread_mutex_lock(&rt->lock);
    rt->stop = true;
    pthread_cond_signal(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
    if (rt->started)
        pthread_join(rt->tid, NULL);
    pthread_mutex_destroy(&rt->lock);
    pthread_cond_destroy(&rt->cond);
    free(rt->ctxs);
    free(rt);
}

void cg_wsgi_rt_add(cg_wsgi_rt_t *rt, cg_wsgi_t *ws)
{
    if (rt == NULL)
        return;
    pthread_mutex_lock(&rt->lock);
    if (rt->n == rt->cap) {
        rt->cap = rt->cap ? rt->cap * 2 : 4;
        rt->ctxs = cg_xrealloc(rt->ctxs, rt->cap * sizeof(*rt->ctxs));
    }
    rt->ctxs[rt->n++] = ws;
    if (ws->on_main)
        rt->main = ws;
    ws->rt_on = true;
    pthread_mutex_unlock(&rt->lock);
}

void cg_wsgi_rt_remove(cg_wsgi_rt_t *rt, cg_wsgi_t *ws)
{
    if (rt == NULL)
        return;
    pthread_mutex_lock(&rt->lock);
    for (size_t i = 0; i < rt->n; i++)
        if (rt->ctxs[i] == ws) {
            rt->ctxs[i] = rt->ctxs[--rt->n];
            break;
        }
    if (rt->main == ws)
        rt->main = NULL;
    pthread_mutex_unlock(&rt->lock);
}

void cg_wsgi_rt_begin(cg_wsgi_t *ws, cg_conn_t *c)
{
    pthread_mutex_lock(&ws->rt.lock);
    ws->rt.conn = c;
    ws->rt.state = CG__RT_RUNNING;
    __atomic_store_n(&ws->rt.replace_asked, false, __ATOMIC_RELAXED);
    __atomic_store_n(&ws->rt.since_us, cg_monotonic_us(), __ATOMIC_RELEASE);
    pthread_mutex_unlock(&ws->rt.lock);
}

void cg_wsgi_rt_end(cg_wsgi_t *ws)
{
    pthread_mutex_lock(&ws->rt.lock);
    uint64_t fired = ws->rt.fired;
    bool expired = fired != 0 && fired == ws->rt.since_us;
    __atomic_store_n(&ws->rt.since_us, 0, __ATOMIC_RELEASE);
    ws->rt.conn = NULL;
    ws->rt.state = CG__RT_IDLE;
    pthread_mutex_unlock(&ws->rt.lock);
    if (expired) {
        /* a TimeoutError queued after the app had returned must not reach
         * the next request */
        __atomic_store_n(&ws->rt.raise, 0, __ATOMIC_RELEASE);
        if (!ws->on_main)
            PyThreadState_SetAsyncExc(ws->thread_id, NULL);
    }
}

int cg_wsgi_rt_claim_head(cg_wsgi_t *ws)
{
    pthread_mutex_lock(&ws->rt.lock);
    int rc = 0;
    if (ws->rt.state == CG__RT_EXPIRED)
        rc = -ETIMEDOUT;
    else if (ws->rt.state == CG__RT_RUNNING)
        ws->rt.state = CG__RT_SENT;
    pthread_mutex_unlock(&ws->rt.lock);
    return rc;
}
