/*
 * lifespan.c - the ASGI lifespan scope: lifespan.startup before the worker
 * serves, lifespan.shutdown when it stops gracefully, and the `state` dict
 * the app fills at startup, which each request's scope gets a shallow copy
 * of.
 *
 * asgi_lifespan "auto" treats an app that raises (or returns) before it has
 * answered the startup as one without lifespan support (Uvicorn's rule,
 * logged at info); "on" makes that a failed startup. A failed startup
 * (lifespan.startup.failed, or the above with "on") stops the worker with
 * the boot error code 3, so the master stops rather than respawn a worker
 * that can never serve (Gunicorn's asgi worker logs it and exits 0).
 */
#include "asgi.h"

#include "../python/python.h"

#include <string.h>

/* The lifespan's side of the conversation. */
typedef struct {
    PyObject_HEAD
    cg_asgi_t *a;
    bool startup_sent, shutdown_wanted, shutdown_sent, app_done;
    PyObject *rx_waiter; /* future receive() waits on */
    PyObject *startup;   /* future: 1 complete, 0 failed, -1 raised, -2 returned */
    PyObject *shutdown;  /* future: 1 complete, 0 failed, -1 raised, -2 returned */
    PyObject *message;   /* a *.failed message's "message", or NULL */
    PyObject *exc;       /* what the app raised, or NULL */
    PyObject *task;
} cg__ls_t;

static PyTypeObject *cg__ls_type;

static void cg__ls_dealloc(PyObject *self)
{
    cg__ls_t *ls = (cg__ls_t *)self;
    PyTypeObject *tp = Py_TYPE(self);
    Py_XDECREF(ls->rx_waiter);
    Py_XDECREF(ls->startup);
    Py_XDECREF(ls->shutdown);
    Py_XDECREF(ls->message);
    Py_XDECREF(ls->exc);
    Py_XDECREF(ls->task);
    PyObject_Free(self);
    Py_DECREF(tp);
}

static PyType_Slot cg__ls_slots[] = {
    {Py_tp_dealloc, (void *)cg__ls_dealloc},
    {0, NULL},
};

static PyType_Spec cg__ls_spec = {
    .name = "cgunicorn.asgi.Lifespan",
    .basicsize = sizeof(cg__ls_t),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = cg__ls_slots,
};

static void cg__settle(cg__ls_t *ls, PyObject *fut, long outcome)
{
    PyObject *v = PyLong_FromLong(outcome); /* new */
    if (v == NULL) {
        PyErr_Clear();
        return;
    }
    cg_asgi_resolve(ls->a, fut, v);
    Py_DECREF(v);
}

static int cg__receive_poll(PyObject *owner, PyObject **out)
{
    cg__ls_t *ls = (cg__ls_t *)owner;
    cg_asgi_t *a = ls->a;
    int which = !ls->startup_sent ? CG_AS_LS_STARTUP
                : ls->shutdown_wanted && !ls->shutdown_sent ? CG_AS_LS_SHUTDOWN
                                                            : -1;
    if (which < 0) {
        if (ls->rx_waiter == NULL && (ls->rx_waiter = cg_asgi_future(a)) == NULL)
            return -1;
        *out = Py_NewRef(ls->rx_waiter);
        return 0;
    }
    if (which == CG_AS_LS_STARTUP)
        ls->startup_sent = true;
    else
        ls->shutdown_sent = true;
    *out = Py_BuildValue("{O:O}", a->s[CG_AS_TYPE], a->s[which]);
    return *out ? 1 : -1;
}

static PyObject *cg__receive(PyObject *self, PyObject *unused)
{
    return cg_asgi_awaitable_new(((cg__ls_t *)self)->a, cg__receive_poll, self);
}

static PyObject *cg__send(PyObject *self, PyObject *msg)
{
    cg__ls_t *ls = (cg__ls_t *)self;
    cg_asgi_t *a = ls->a;
    PyObject *type = PyObject_GetItem(msg, a->s[CG_AS_TYPE]); /* new */
    if (type == NULL)
        return NULL;
    int which = -1;
    static const int known[] = {CG_AS_LS_STARTUP_COMPLETE, CG_AS_LS_STARTUP_FAILED,
                                CG_AS_LS_SHUTDOWN_COMPLETE, CG_AS_LS_SHUTDOWN_FAILED};
    for (size_t i = 0; i < CG_ARRAY_SIZE(known) && which < 0; i++)
        if (PyUnicode_Check(type) && PyUnicode_Compare(type, a->s[known[i]]) == 0)
            which = known[i];
    if (which < 0) {
        PyErr_Format(PyExc_RuntimeError, "Unexpected ASGI message %R sent on the lifespan scope.",
                     type);
        Py_DECREF(type);
        return NULL;
    }
    Py_DECREF(type);
    if (which == CG_AS_LS_STARTUP_FAILED || which == CG_AS_LS_SHUTDOWN_FAILED) {
        PyObject *m = PyMapping_Check(msg) ? PyObject_GetItem(msg, a->s[CG_AS_MESSAGE]) : NULL;
        PyErr_Clear();
        Py_XSETREF(ls->message, m);
    }
    bool startup = which == CG_AS_LS_STARTUP_COMPLETE || which == CG_AS_LS_STARTUP_FAILED;
    bool ok = which == CG_AS_LS_STARTUP_COMPLETE || which == CG_AS_LS_SHUTDOWN_COMPLETE;
    cg__settle(ls, startup ? ls->startup : ls->shutdown, ok ? 1 : 0);
    return cg_asgi_done_awaitable(a);
}

static PyObject *cg__task_done(PyObject *self, PyObject *task)
{
    cg__ls_t *ls = (cg__ls_t *)self;
    cg_asgi_t *a = ls->a;
    ls->app_done = true;
    Py_CLEAR(ls->task);
    PyObject *cancelled = PyObject_CallMethodNoArgs(task, a->s[CG_AS_A_CANCELLED]); /* new */
    int was_cancelled = cancelled ? PyObject_IsTrue(cancelled) : 1;
    Py_XDECREF(cancelled);
    PyErr_Clear();
    PyObject *exc = was_cancelled == 0 ? PyObject_CallMethodNoArgs(task, a->s[CG_AS_A_EXCEPTION])
                                       : NULL; /* new */
    PyErr_Clear();
    if (exc == Py_None)
        Py_CLEAR(exc);
    if (exc != NULL && ls->exc == NULL)
        ls->exc = Py_NewRef(exc);
    long outcome = exc != NULL ? -1 : -2;
    Py_XDECREF(exc);
    /* whichever phase is still waiting learns how the app ended */
    cg__settle(ls, ls->startup, outcome);
    cg__settle(ls, ls->shutdown, outcome);
    Py_RETURN_NONE;
}

static PyMethodDef cg__receive_def = {"receive", cg__receive, METH_NOARGS, NULL};
static PyMethodDef cg__send_def = {"send", cg__send, METH_O, NULL};
static PyMethodDef cg__task_done_def = {"_lifespan_done", cg__task_done, METH_O, NULL};

/* Run the loop until fut is done; its result as a long, or LONG_MIN when
 * the loop was left otherwise (an exception is set: SystemExit on QUIT). */
static long cg__run(cg_asgi_t *a, PyObject *fut)
{
    PyObject *r = PyObject_CallMethodOneArg(a->loop, a->s[CG_AS_A_RUN_UNTIL_COMPLETE], fut);
    if (r == NULL)
        return LONG_MIN;
    long v = PyLong_Check(r) ? PyLong_AsLong(r) : -2;
    Py_DECREF(r);
    return v;
}

static void cg__log_message(cg_asgi_t *a, cg__ls_t *ls)
{
    if (ls->message == NULL)
        return;
    PyObject *s = PyObject_Str(ls->message); /* new */
    const char *u = s ? PyUnicode_AsUTF8(s) : NULL;
    if (u != NULL && u[0] != '\0')
        cg_log_error(a->log, "%s", u);
    PyErr_Clear();
    Py_XDECREF(s);
}

int cg_asgi_lifespan_startup(cg_asgi_t *a)
{
    const char *mode = a->cfg->asgi_lifespan ? a->cfg->asgi_lifespan : "auto";
    /* every request's scope gets a copy of it, lifespan or not (Uvicorn) */
    if ((a->state = PyDict_New()) == NULL)
        goto error;
    if (strcmp(mode, "off") == 0)
        return 0;
    if (cg_asgi_type(&cg__ls_type, &cg__ls_spec) == NULL)
        goto error;
    cg__ls_t *ls = PyObject_New(cg__ls_t, cg__ls_type); /* new */
    if (ls == NULL)
        goto error;
    memset((char *)ls + sizeof(PyObject), 0, sizeof(*ls) - sizeof(PyObject));
    ls->a = a;
    a->lifespan = (PyObject *)ls;
    ls->startup = cg_asgi_future(a);
    ls->shutdown = ls->startup ? cg_asgi_future(a) : NULL;
    PyObject *scope = ls->shutdown ? Py_BuildValue("{O:O,O:O,O:O}", a->s[CG_AS_TYPE],
                                                   a->s[CG_AS_LIFESPAN], a->s[CG_AS_ASGI],
                                                   a->asgi_version, a->s[CG_AS_STATE], a->state)
                                   : NULL;                                       /* new */
    PyObject *recv = scope ? cg_asgi_bind(&cg__receive_def, (PyObject *)ls) : NULL; /* new */
    PyObject *send = recv ? cg_asgi_bind(&cg__send_def, (PyObject *)ls) : NULL;     /* new */
    if (send == NULL) {
        Py_XDECREF(scope);
        Py_XDECREF(recv);
        goto error;
    }
    PyObject *coro = PyObject_CallFunctionObjArgs(a->app, scope, recv, send, NULL); /* new */
    PyObject *task = coro ? PyObject_CallMethodOneArg(a->loop, a->s[CG_AS_A_CREATE_TASK], coro)
                          : NULL; /* new */
    PyObject *cb = task ? cg_asgi_bind(&cg__task_done_def, (PyObject *)ls) : NULL; /* new */
    PyObject *r = cb ? PyObject_CallMethodOneArg(task, a->s[CG_AS_A_ADD_DONE_CALLBACK], cb)
                     : NULL; /* new */
    Py_XDECREF(scope);
    Py_XDECREF(recv);
    Py_XDECREF(send);
    Py_XDECREF(coro);
    Py_XDECREF(cb);
    long outcome;
    if (r == NULL) {
        /* raised at once: as if its task had */
        ls->exc = cg_asgi_take_exc();
        Py_XDECREF(task);
        ls->app_done = true;
        outcome = -1;
    } else {
        Py_DECREF(r);
        ls->task = task;
        outcome = cg__run(a, ls->startup);
        if (outcome == LONG_MIN)
            return -1; /* QUIT/INT while starting: the caller sees w->quick */
    }
    if (outcome == 1) {
        cg_log_debug(a->log, "ASGI lifespan startup complete");
        return 0;
    }
    if (outcome == 0) {
        cg__log_message(a, ls);
        cg_log_error(a->log, "Application startup failed. Exiting.");
        return -1;
    }
    if (strcmp(mode, "auto") == 0) {
        /* no lifespan support: serve without it */
        if (ls->exc != NULL && cg_log_enabled(a->log, CG_LOG_DEBUG))
            cg_asgi_log_exc(a, CG_LOG_DEBUG, "Lifespan application raised", ls->exc);
        cg_log_info(a->log, "ASGI 'lifespan' protocol appears unsupported.");
        Py_CLEAR(a->lifespan);
        return 0;
    }
    if (ls->exc != NULL)
        cg_asgi_log_exc(a, CG_LOG_ERROR, "Exception in 'lifespan' protocol", ls->exc);
    else
        cg_log_error(a->log, "The application returned from the lifespan scope before "
                             "completing its startup");
    cg_log_error(a->log, "Application startup failed. Exiting.");
    return -1;

error:
    cg_py_log_exception(a->log, CG_LOG_ERROR, "Exception in 'lifespan' protocol");
    return -1;
}

void cg_asgi_lifespan_shutdown(cg_asgi_t *a)
{
    cg__ls_t *ls = (cg__ls_t *)a->lifespan;
    if (ls == NULL || ls->app_done) {
        if (ls != NULL)
            cg_log_debug(a->log, "ASGI lifespan already finished");
        return;
    }
    ls->shutdown_wanted = true;
    if (ls->rx_waiter != NULL) {
        PyObject *w = ls->rx_waiter;
        ls->rx_waiter = NULL;
        cg_asgi_resolve(a, w, Py_None);
        Py_DECREF(w);
    }
    /* at most graceful_timeout for the app's cleanup */
    PyObject *asyncio = PyImport_ImportModule("asyncio"); /* new */
    PyObject *wait = asyncio ? PyObject_CallMethod(asyncio, "wait_for", "Ol", ls->shutdown,
                                                   (long)a->cfg->graceful_timeout)
                             : NULL; /* new */
    Py_XDECREF(asyncio);
    long outcome = wait ? cg__run(a, wait) : LONG_MIN;
    Py_XDECREF(wait);
    if (outcome == LONG_MIN) {
        if (PyErr_ExceptionMatches(PyExc_TimeoutError))
            cg_log_warning(a->log, "ASGI lifespan shutdown timed out");
        else if (!PyErr_ExceptionMatches(PyExc_SystemExit))
            cg_py_log_exception(a->log, CG_LOG_ERROR, "Exception in 'lifespan' protocol");
        PyErr_Clear();
        return;
    }
    if (outcome == 1) {
        cg_log_debug(a->log, "ASGI lifespan shutdown complete");
    } else if (outcome == 0) {
        cg__log_message(a, ls);
        cg_log_error(a->log, "Application shutdown failed.");
    } else if (ls->exc != NULL) {
        cg_asgi_log_exc(a, CG_LOG_ERROR, "Exception in 'lifespan' protocol", ls->exc);
    }
}
