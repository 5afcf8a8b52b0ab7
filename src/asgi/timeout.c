/*
 * timeout.c - request_timeout on the asgi worker. Every request runs on the
 * one event loop, so the watch is a call_later chain on that loop (a tenth
 * of the timeout, at most 200 ms) reading the start time each request cycle
 * keeps already (cy->start_us): nothing is armed per request. A request past
 * the timeout gets a 504 if nothing was sent yet (else its connection is
 * closed), its task's stack is logged and the task cancelled. A task that
 * is still running as long again (it swallowed the CancelledError) makes
 * the worker ask the master for a successor (the heartbeat page), then it
 * stops gracefully. WebSocket connections are not timed: they are meant
 * to last. A loop blocked by the app runs no chain at all: that is
 * --timeout's case (the heartbeat stops too). See docs/request-timeout.md.
 */
#include "asgi.h"

#include "../python/python.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cg_asgi_rt {
    uint64_t timeout_us, grace_us;
    double tick_s;
    cg_asgi_cycle_t **fired; /* owned: cut short, their task still running */
    size_t nfired, cap;
    bool *asked; /* per fired cycle: a successor was asked for */
};

static PyObject *cg__rt_on_tick(PyObject *self, PyObject *unused);
static PyMethodDef cg__rt_on_tick_def = {"_request_timeout", cg__rt_on_tick, METH_NOARGS, NULL};

static int cg__rt_arm(cg_asgi_t *a, PyObject *cap)
{
    PyObject *fn = cg_asgi_bind(&cg__rt_on_tick_def, cap); /* new */
    PyObject *h = fn ? PyObject_CallMethod(a->loop, "call_later", "dO", a->rt->tick_s, fn)
                     : NULL; /* new */
    Py_XDECREF(fn);
    Py_XDECREF(h);
    return h != NULL ? 0 : -1;
}

/* "  File ..." lines of the task's coroutine chain, new reference or NULL
 * (no exception set). */
static PyObject *cg__rt_stack(PyObject *task)
{
    PyObject *text = NULL;
    PyObject *frames = PyObject_CallMethod(task, "get_stack", NULL); /* new */
    PyObject *tb = frames ? PyImport_ImportModule("traceback") : NULL;
    PyObject *parts = tb ? PyList_New(0) : NULL;
    Py_ssize_t n = parts ? PyList_Size(frames) : -1;
    for (Py_ssize_t i = 0; i < n && parts != NULL; i++) {
        /* a suspended coroutine's frame has no f_back: one entry each */
        PyObject *one = PyObject_CallMethod(tb, "format_stack", "O", PyList_GET_ITEM(frames, i));
        if (one == NULL || PyList_SetSlice(parts, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, one) < 0)
            Py_CLEAR(parts);
        Py_XDECREF(one);
    }
    PyObject *sep = parts ? PyUnicode_FromString("") : NULL;
    if (sep != NULL)
        text = PyUnicode_Join(sep, parts);
    Py_XDECREF(sep);
    Py_XDECREF(parts);
    Py_XDECREF(tb);
    Py_XDECREF(frames);
    if (text == NULL)
        PyErr_Clear();
    return text;
}

static void cg__rt_fire(cg_asgi_t *a, cg_asgi_cycle_t *cy)
{
    struct cg_asgi_rt *rt = a->rt;
    const cg_http_request_t *req = &cy->c->req;
    char what[160];
    snprintf(what, sizeof(what), "%.*s %.*s", req->method.len < 16 ? (int)req->method.len : 16,
             req->method.ptr, req->path.len < 120 ? (int)req->path.len : 120, req->path.ptr);
    cy->rt_fired = true;
    PyObject *task = Py_NewRef(cy->task);
    PyObject *stack = cg__rt_stack(task);
    const char *st = stack ? PyUnicode_AsUTF8(stack) : NULL;
    if (st == NULL)
        PyErr_Clear();
    bool answered = cg_asgi_cycle_timeout(cy);
    cg_log_error(a->log, "Request timeout (request_timeout %lld s): %s in worker (pid:%d)%s%s%s",
                 (long long)(rt->timeout_us / 1000000u), what, (int)getpid(),
                 answered ? ", answered 504" : ", its connection closed",
                 st ? ":\nTraceback (most recent call last):\n" : "", st ? st : "");
    Py_XDECREF(stack);
    PyObject *r = PyObject_CallMethod(task, "cancel", NULL); /* new */
    if (r == NULL)
        PyErr_Clear();
    Py_XDECREF(r);
    Py_DECREF(task);
    if (rt->nfired == rt->cap) {
        rt->cap = rt->cap ? rt->cap * 2 : 4;
        rt->fired = cg_xrealloc(rt->fired, rt->cap * sizeof(*rt->fired));
        rt->asked = cg_xrealloc(rt->asked, rt->cap * sizeof(*rt->asked));
    }
    rt->asked[rt->nfired] = false;
    rt->fired[rt->nfired++] = (cg_asgi_cycle_t *)Py_NewRef((PyObject *)cy);
}

static PyObject *cg__rt_on_tick(PyObject *self, PyObject *unused)
{
    CG_UNUSED(unused);
    cg_asgi_t *a = PyCapsule_GetPointer(self, "cgunicorn.asgi.rt");
    if (a == NULL)
        return NULL;
    struct cg_asgi_rt *rt = a->rt;
    if (rt == NULL) /* the worker is done with it: the chain ends */
        Py_RETURN_NONE;
    uint64_t now = cg_monotonic_us();
    /* firing closes connections, which leave a->conns: collect first (an
     * HTTP/2 connection's requests are its streams' cycles) */
    size_t n = 0, cap = 0;
    cg_asgi_cycle_t **due = NULL;
    for (cg_asgi_proto_t *p = a->conns; p != NULL; p = p->next) {
        cg_asgi_cycle_t *cy = p->cy != NULL ? p->cy : cg_asgi_h2_cycles(p);
        for (; cy != NULL; cy = cy->st != NULL ? cy->h2_next : NULL) {
            if (cy->task == NULL || cy->ws != NULL || cy->rt_fired || cy->complete ||
                cy->start_us <= 0 || (uint64_t)cy->start_us > now ||
                now - (uint64_t)cy->start_us < rt->timeout_us)
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                due = cg_xrealloc(due, cap * sizeof(*due));
            }
            due[n++] = (cg_asgi_cycle_t *)Py_NewRef((PyObject *)cy);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (due[i]->p != NULL && due[i]->task != NULL && !due[i]->complete)
            cg__rt_fire(a, due[i]);
        Py_DECREF((PyObject *)due[i]);
    }
    free(due);
    /* the ones cut short: gone once their task ended (task_done clears it) */
    size_t k = 0;
    for (size_t i = 0; i < rt->nfired; i++) {
        cg_asgi_cycle_t *cy = rt->fired[i];
        if (cy->task == NULL) {
            Py_DECREF((PyObject *)cy);
            continue;
        }
        if (!rt->asked[i] && now - (uint64_t)cy->start_us >= rt->timeout_us + rt->grace_us) {
            rt->asked[i] = true;
            cg_log_warning(a->log,
                           "A request is still in the application %lld s after its "
                           "request_timeout: asking for a successor to this worker (pid:%d), "
                           "which then stops gracefully",
                           (long long)(rt->grace_us / 1000000u), (int)getpid());
            cg_heartbeat_ask_replace(&a->w->hb);
        }
        rt->asked[k] = rt->asked[i];
        rt->fired[k++] = cy;
    }
    rt->nfired = k;
    if (cg__rt_arm(a, self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

int cg_asgi_rt_start(cg_asgi_t *a)
{
    struct cg_asgi_rt *rt = cg_xcalloc(1, sizeof(*rt));
    rt->timeout_us = (uint64_t)a->cfg->request_timeout * 1000000u;
    rt->grace_us = rt->timeout_us;
    rt->tick_s = (double)a->cfg->request_timeout / 10.0;
    if (rt->tick_s > 0.2)
        rt->tick_s = 0.2;
    a->rt = rt;
    PyObject *cap = PyCapsule_New(a, "cgunicorn.asgi.rt", NULL); /* new */
    int rc = cap != NULL ? cg__rt_arm(a, cap) : -1;
    Py_XDECREF(cap);
    if (rc < 0)
        cg_asgi_rt_free(a);
    return rc;
}

void cg_asgi_rt_free(cg_asgi_t *a)
{
    struct cg_asgi_rt *rt = a->rt;
    if (rt == NULL)
        return;
    a->rt = NULL;
    for (size_t i = 0; i < rt->nfired; i++)
        Py_DECREF((PyObject *)rt->fired[i]);
    free(rt->fired);
    free(rt->asked);
    free(rt);
}
