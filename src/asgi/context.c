/*
 * context.c - the ASGI worker's per-process state, and the small pieces the
 * protocol and the lifespan share: a C awaitable, futures on the loop, and
 * logging an exception object.
 */
#include "asgi.h"

#include "../python/python.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
/*
 * Python 3.11's _asyncio registers each new task by calling
 * asyncio.tasks._all_tasks.add(task), a weakref.WeakSet's Python method,
 * and the weak reference it makes calls WeakSet._remove, Python too, when
 * the task dies: two Python frames per request task, an eighth of a
 * keep-alive hello-world request. The set is given the same two methods in
 * C (an instance attribute comes before the class's method in _asyncio's
 * lookup): the same weak references in the same `data` set, removals put
 * off while the set is iterated (all_tasks()) as WeakSet does. 3.12 keeps
 * its tasks elsewhere; other versions are left alone.
 *
 * The state: (data, _pending_removals, _iterating, the WeakSet, remove).
 */
enum { CG__WS_DATA, CG__WS_PENDING, CG__WS_ITERATING, CG__WS_SET, CG__WS_REMOVE, CG__WS_N };

/* WeakSet._remove(ref) */
static PyObject *cg__ws_remove(PyObject *st, PyObject *ref)
{
    PyObject *iterating = PyTuple_GET_ITEM(st, CG__WS_ITERATING);
    if (PySet_GET_SIZE(iterating) > 0) {
        if (PyList_Append(PyTuple_GET_ITEM(st, CG__WS_PENDING), ref) < 0)
            return NULL;
    } else if (PySet_Discard(PyTuple_GET_ITEM(st, CG__WS_DATA), ref) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* WeakSet.add(item) */
static PyObject *cg__ws_add(PyObject *st, PyObject *item)
{
    if (PyList_GET_SIZE(PyTuple_GET_ITEM(st, CG__WS_PENDING)) > 0) {
        PyObject *r = PyObject_CallMethod(PyTuple_GET_ITEM(st, CG__WS_SET), "_commit_removals",
                                          NULL); /* new */
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    PyObject *ref = PyWeakref_NewRef(item, PyTuple_GET_ITEM(st, CG__WS_REMOVE)); /* new */
    if (ref == NULL)
        return NULL;
    int rc = PySet_Add(PyTuple_GET_ITEM(st, CG__WS_DATA), ref);
    Py_DECREF(ref);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef cg__ws_add_def = {"add", cg__ws_add, METH_O,
                                     "WeakSet.add for asyncio's tasks, in C."};
static PyMethodDef cg__ws_remove_def = {"_remove", cg__ws_remove, METH_O,
                                        "WeakSet._remove for asyncio's tasks, in C."};

/* Install the C add on asyncio.tasks._all_tasks when it is the plain
 * WeakSet 3.11 has. Anything else (or a failure: this only saves time)
 * leaves it as it is, with no exception set. */
static void cg__fast_all_tasks(void)
{
    PyObject *tasks = PyImport_ImportModule("asyncio.tasks");   /* new */
    PyObject *wrs = tasks ? PyImport_ImportModule("_weakrefset") : NULL; /* new */
    PyObject *ws = wrs ? PyObject_GetAttrString(tasks, "_all_tasks") : NULL; /* new */
    PyObject *cls = ws ? PyObject_GetAttrString(wrs, "WeakSet") : NULL; /* new */
    PyObject *dict = cls ? PyObject_GetAttrString(ws, "__dict__") : NULL; /* new */
    PyObject *st = NULL, *add = NULL;
    int rc = dict != NULL ? 0 : -1;
    if (rc == 0 && (PyObject *)Py_TYPE(ws) == cls && PyDict_Check(dict)) {
        PyObject *data = PyDict_GetItemString(dict, "data");               /* borrowed */
        PyObject *pending = PyDict_GetItemString(dict, "_pending_removals"); /* borrowed */
        PyObject *iterating = PyDict_GetItemString(dict, "_iterating");    /* borrowed */
        bool plain = PyDict_GetItemString(dict, "add") == NULL; /* not done already */
        if (plain && data && PySet_CheckExact(data) && pending && PyList_CheckExact(pending) &&
            iterating && PySet_CheckExact(iterating)) {
            st = PyTuple_Pack(CG__WS_N, data, pending, iterating, ws, Py_None); /* new */
            PyObject *remove = st ? PyCFunction_New(&cg__ws_remove_def, st) : NULL; /* new */
            if (remove != NULL) {
                /* st holds remove, which holds st: both live as long as
                 * the interpreter, as the WeakSet does */
                PyTuple_SET_ITEM(st, CG__WS_REMOVE, remove);
                Py_DECREF(Py_None);
                add = PyCFunction_New(&cg__ws_add_def, st); /* new */
            }
            rc = add != NULL && PyObject_SetAttrString(ws, "add", add) == 0 ? 0 : -1;
        }
    }
    Py_XDECREF(add);
    Py_XDECREF(st);
    Py_XDECREF(dict);
    Py_XDECREF(cls);
    Py_XDECREF(ws);
    Py_XDECREF(wrs);
    Py_XDECREF(tasks);
    if (rc < 0)
        PyErr_Clear();
}
#endif

int cg_asgi_init(cg_asgi_t *a, cg_worker_t *w, PyObject *app, PyObject *loop)
{
    memset(a, 0, sizeof(*a));
    a->w = w;
    a->log = w->log;
    a->cfg = w->cfg;
    a->app = app;
    a->loop = loop;
    a->keepalive_ms = (uint64_t)w->cfg->keepalive * 1000;
    /* as the gthread loop: a head has --timeout from its first byte */
    a->head_ms = w->cfg->timeout > 0 ? (uint64_t)w->cfg->timeout * 1000 : 30000;
    a->grace_s = (int)w->cfg->asgi_disconnect_grace_period;
    const char *h2c = w->cfg->http2_cleartext != NULL ? w->cfg->http2_cleartext : "off";
    a->h2c = strcmp(h2c, "prior-knowledge") == 0 || strcmp(h2c, "both") == 0;
    a->h2c_upgrade = strcmp(h2c, "upgrade") == 0 || strcmp(h2c, "both") == 0;
    cg_h2_config_init(&a->h2cfg, w->cfg);
    a->h2cfg.dispatch_at_head = true; /* a stream costs a task, not a thread */
    a->spare_open = true;
    if (cg_asgi_types_ready() < 0)
        return -1;
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    cg__fast_all_tasks();
#endif
#define CG__AS_INIT(id, str)                                                                       \
    if ((a->s[CG_AS_##id] = PyUnicode_InternFromString(str)) == NULL)                            \
        return -1;
    CG_ASGI_STRS(CG__AS_INIT)
#undef CG__AS_INIT
    a->asgi_version = Py_BuildValue("{s:s,s:s}", "version", "3.0", "spec_version", "2.4");
    a->root_path = PyUnicode_DecodeLatin1(w->cfg->root_path ? w->cfg->root_path : "",
                                          w->cfg->root_path ? (Py_ssize_t)strlen(w->cfg->root_path)
                                                            : 0,
                                          NULL);
    if (a->asgi_version == NULL || a->root_path == NULL)
        return -1;
    PyObject *asyncio = PyImport_ImportModule("asyncio"); /* new */
    if (asyncio == NULL)
        return -1;
    a->cancelled_error = PyObject_GetAttrString(asyncio, "CancelledError"); /* new */
    a->iscoroutine = PyObject_GetAttrString(asyncio, "iscoroutine");        /* new */
    a->task_type = PyObject_GetAttrString(asyncio, "Task");                 /* new */
    Py_DECREF(asyncio);
    a->kw_task = Py_BuildValue("(sss)", "loop", "name", "context"); /* new */
    a->kw_context = Py_BuildValue("(s)", "context");        /* new */
    a->context = PyContext_CopyCurrent();                   /* new */
    if (a->cancelled_error == NULL || a->iscoroutine == NULL || a->task_type == NULL ||
        a->kw_task == NULL || a->kw_context == NULL || a->context == NULL)
        return -1;
    if (cg_conn_policy_init(&a->pol, w->cfg, w->log) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "invalid forwarded_allow_ips or proxy_allow_ips");
        return -1;
    }
    a->pol_up = true;
    a->pol.board = w->board;
    a->board = cg_board_thread(w->board, 0);
    return 0;
}

void cg_asgi_free(cg_asgi_t *a)
{
    if (a->pol_up)
        cg_conn_policy_free(&a->pol);
    a->pol_up = false;
    a->board = NULL; /* cycles freed later (interpreter teardown) leave it alone */
    cg_asgi_spares_free(a);
    Py_CLEAR(a->server);
    Py_CLEAR(a->scope_base);
    Py_CLEAR(a->app);
    Py_CLEAR(a->loop);
    Py_CLEAR(a->asgi_version);
    Py_CLEAR(a->root_path);
    Py_CLEAR(a->state);
    Py_CLEAR(a->lifespan);
    Py_CLEAR(a->done);
    Py_CLEAR(a->cancelled_error);
    Py_CLEAR(a->iscoroutine);
    Py_CLEAR(a->task_type);
    Py_CLEAR(a->kw_task);
    Py_CLEAR(a->kw_context);
    Py_CLEAR(a->context);
    Py_CLEAR(a->drained);
    Py_CLEAR(a->stop);
    Py_CLEAR(a->ssl);
    for (int i = 0; i < CG_AS__COUNT; i++)
        Py_CLEAR(a->s[i]);
}

/* A Python function whose code is `async def`. */
static bool cg__async_def(PyObject *f)
{
    if (PyMethod_Check(f))
        f = PyMethod_GET_FUNCTION(f);
    return PyFunction_Check(f) &&
           (((PyCodeObject *)PyFunction_GET_CODE(f))->co_flags & CO_COROUTINE) != 0;
}

int cg_asgi_is_app(PyObject *app, bool thorough)
{
    if (cg__async_def(app))
        return 1;
    if (!PyFunction_Check(app) && !PyMethod_Check(app)) {
        /* an instance with an async __call__ (Starlette, FastAPI, most
         * middlewares) */
        PyObject *call = PyObject_GetAttrString(app, "__call__"); /* new */
        if (call == NULL) {
            PyErr_Clear();
            return 0;
        }
        bool yes = cg__async_def(call);
        Py_DECREF(call);
        if (yes)
            return 1;
    }
    if (!thorough)
        return 0;
    /* what only inspect knows: functools.partial, markcoroutinefunction */
    PyObject *inspect = PyImport_ImportModule("inspect"); /* new */
    if (inspect == NULL)
        return -1;
    PyObject *r = PyObject_CallMethod(inspect, "iscoroutinefunction", "O", app); /* new */
    int rc = r != NULL ? PyObject_IsTrue(r) : -1;
    Py_XDECREF(r);
    if (rc == 0) {
        PyObject *call = PyObject_GetAttrString(app, "__call__"); /* new */
        PyErr_Clear();
        r = call ? PyObject_CallMethod(inspect, "iscoroutinefunction", "O", call) : NULL;
        rc = r != NULL ? PyObject_IsTrue(r) : (call != NULL ? -1 : 0);
        Py_XDECREF(r);
        Py_XDECREF(call);
    }
    Py_DECREF(inspect);
    return rc;
}

PyObject *cg_asgi_future(cg_asgi_t *a)
{
    return PyObject_CallMethodNoArgs(a->loop, a->s[CG_AS_A_CREATE_FUTURE]);
}

void cg_asgi_resolve(cg_asgi_t *a, PyObject *fut, PyObject *value)
{
    if (fut == NULL)
        return;
    PyObject *done = PyObject_CallMethodNoArgs(fut, a->s[CG_AS_A_DONE]); /* new */
    if (done != NULL && !PyObject_IsTrue(done)) {
        PyObject *r = PyObject_CallMethodOneArg(fut, a->s[CG_AS_A_SET_RESULT], value); /* new */
        Py_XDECREF(r);
    }
    Py_XDECREF(done);
    PyErr_Clear();
}

void cg_asgi_log_exc(cg_asgi_t *a, cg_log_level_t level, const char *prefix, PyObject *exc)
{
    /* cg_py_log_exception reads the error indicator: put exc there */
    PyObject *tb = PyException_GetTraceback(exc); /* new or NULL */
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), Py_NewRef(exc), tb);
    cg_py_log_exception(a->log, level, prefix);
    PyErr_Clear();
}

int cg_asgi_get(PyObject *msg, PyObject *key, PyObject **out)
{
    if (PyDict_CheckExact(msg)) {
        /* the usual message: a missing optional key (more_body) costs no
         * KeyError */
        PyObject *v = PyDict_GetItemWithError(msg, key); /* borrowed */
        *out = Py_XNewRef(v);
        return v != NULL ? 1 : PyErr_Occurred() ? -1 : 0;
    }
    if (!PyMapping_Check(msg)) {
        *out = NULL;
        PyErr_Format(PyExc_TypeError, "ASGI messages are dicts, not %.100s", Py_TYPE(msg)->tp_name);
        return -1;
    }
    *out = PyObject_GetItem(msg, key); /* new */
    if (*out != NULL)
        return 1;
    if (!PyErr_ExceptionMatches(PyExc_KeyError))
        return -1;
    PyErr_Clear();
    return 0;
}

PyObject *cg_asgi_take_exc(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL)
        return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* "Request-N", N counting this worker's request tasks: asyncio's own
 * "Task-N" costs a PyUnicode_FromFormat per task on 3.11 (3.12 formats it
 * lazily), a twentieth of a keep-alive request. New reference or NULL. */
static PyObject *cg__task_name(cg_asgi_t *a)
{
    char buf[32] = "Request-";
    size_t n = 8;
    char digits[24];
    size_t nd = 0;
    uint64_t v = ++a->ntasks;
    do {
        digits[nd++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (nd > 0)
        buf[n++] = digits[--nd];
    PyObject *s = PyUnicode_New((Py_ssize_t)n, 127); /* new */
    if (s != NULL)
        memcpy(PyUnicode_1BYTE_DATA(s), buf, n);
    return s;
}

PyObject *cg_asgi_create_task(cg_asgi_t *a, PyObject *coro)
{
    PyObject *factory = PyObject_CallMethodNoArgs(a->loop, a->s[CG_AS_A_GET_TASK_FACTORY]); /* new */
    PyObject *ctx = factory ? PyContext_Copy(a->context) : NULL;                          /* new */
    PyObject *task = NULL;
    if (ctx != NULL && factory == Py_None) {
        /* what loop.create_task() does with no task factory set, without
         * uvloop's keyword dict or asyncio's Python-level method around it */
        PyObject *name = cg__task_name(a); /* new */
        if (name != NULL) {
            PyObject *args[4] = {coro, a->loop, name, ctx};
            task = PyObject_Vectorcall(a->task_type, args, 1, a->kw_task);
            Py_DECREF(name);
        }
    } else if (ctx != NULL) {
        /* a factory's tasks keep the names it gives them */
        PyObject *args[3] = {a->loop, coro, ctx};
        task = PyObject_VectorcallMethod(a->s[CG_AS_A_CREATE_TASK], args,
                                         2, a->kw_context);
    }
    Py_XDECREF(factory);
    Py_XDECREF(ctx);
    return task;
}

PyObject *cg_asgi_bind(PyMethodDef *def, PyObject *self)
{
    return PyCFunction_New(def, self);
}

/* ---- the awaitable ---- */

/*
 * `await x` on one of these calls __await__ (ourselves), then send(None)
 * (am_send, or __next__ on interpreters that take that way) until it
 * returns: each time poll() either has the result (returned: the await is
 * over, without a StopIteration made on the am_send path) or names a
 * future, which is yielded to the task with _asyncio_future_blocking set,
 * exactly what awaiting the future itself would do. The task resumes us
 * when the future is done, and we poll again. A cancellation is thrown
 * into the app's frame at its await (we have no throw()), and the future
 * it cancelled is simply never polled again.
 */
typedef struct {
    PyObject_HEAD
    cg_asgi_t *a;
    cg_asgi_poll_fn poll;
    PyObject *owner;
} cg__await_t;

static PyTypeObject *cg__await_type;

PyObject *cg_asgi_awaitable_new(cg_asgi_t *a, cg_asgi_poll_fn poll, PyObject *owner)
{
    cg__await_t *o = PyObject_New(cg__await_t, cg__await_type); /* new */
    if (o == NULL)
        return NULL;
    o->a = a;
    o->poll = poll;
    o->owner = Py_XNewRef(owner);
    return (PyObject *)o;
}

static void cg__await_dealloc(PyObject *self)
{
    cg__await_t *o = (cg__await_t *)self;
    PyTypeObject *tp = Py_TYPE(self);
    Py_XDECREF(o->owner);
    PyObject_Free(self);
    Py_DECREF(tp); /* instances of heap types hold their type */
}

static PyObject *cg__await_await(PyObject *self)
{
    return Py_NewRef(self);
}

static PySendResult cg__await_send(PyObject *self, PyObject *arg, PyObject **result)
{
    cg__await_t *o = (cg__await_t *)self;
    PyObject *out = NULL;
    int r = o->poll(o->owner, &out);
    if (r < 0) {
        *result = NULL;
        return PYGEN_ERROR;
    }
    if (r == 1) {
        *result = out;
        return PYGEN_RETURN;
    }
    if (PyObject_SetAttr(out, o->a->s[CG_AS_A_BLOCKING], Py_True) < 0) {
        Py_DECREF(out);
        *result = NULL;
        return PYGEN_ERROR;
    }
    *result = out;
    return PYGEN_NEXT;
}

static PyObject *cg__await_next(PyObject *self)
{
    PyObject *out = NULL;
    PySendResult r = cg__await_send(self, Py_None, &out);
    if (r == PYGEN_NEXT || r == PYGEN_ERROR)
        return out;
    /* finished: StopIteration(value); a tuple must be wrapped so that it
     * is not taken for the exception's arguments */
    if (out != Py_None) {
        PyObject *exc = PyObject_CallOneArg(PyExc_StopIteration, out); /* new */
        if (exc != NULL) {
            PyErr_SetObject(PyExc_StopIteration, exc);
            Py_DECREF(exc);
        }
    }
    Py_DECREF(out);
    return NULL;
}

static PyObject *cg__await_send_meth(PyObject *self, PyObject *arg)
{
    return cg__await_next(self);
}

static PyMethodDef cg__await_methods[] = {
    {"send", cg__await_send_meth, METH_O, "Resume the await (the value is ignored)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot cg__await_slots[] = {
    {Py_tp_dealloc, (void *)cg__await_dealloc},
    {Py_am_await, (void *)cg__await_await},
    {Py_am_send, (void *)cg__await_send},
    {Py_tp_iter, (void *)cg__await_await},
    {Py_tp_iternext, (void *)cg__await_next},
    {Py_tp_methods, cg__await_methods},
    {0, NULL},
};

static PyType_Spec cg__await_spec = {
    .name = "cgunicorn.asgi.Awaitable",
    .basicsize = sizeof(cg__await_t),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = cg__await_slots,
};

static int cg__done_poll(PyObject *owner, PyObject **out)
{
    *out = Py_NewRef(Py_None);
    return 1;
}

PyObject *cg_asgi_done_awaitable(cg_asgi_t *a)
{
    if (a->done == NULL)
        a->done = cg_asgi_awaitable_new(a, cg__done_poll, NULL);
    return Py_XNewRef(a->done);
}

PyTypeObject *cg_asgi_type(PyTypeObject **slot, PyType_Spec *spec)
{
    if (*slot == NULL)
        *slot = (PyTypeObject *)PyType_FromSpec(spec); /* new, kept */
    return *slot;
}

/* ---- the app's coroutine, for its task ---- */

typedef struct {
    PyObject_HEAD
    cg_asgi_t *a;
    PyObject *coro;  /* owned until it ended */
    PyObject *owner; /* owned until coro ended */
    cg_asgi_done_fn done;
} cg__runner_t;

static PyTypeObject *cg__runner_type;

PyObject *cg_asgi_runner_new(cg_asgi_t *a, PyObject *coro, PyObject *owner, cg_asgi_done_fn done)
{
    if (!PyCoro_CheckExact(coro)) {
        /* a Cython coroutine is one too; anything else gets create_task's
         * own refusal */
        PyObject *r = PyObject_CallOneArg(a->iscoroutine, coro); /* new */
        int yes = r != NULL ? PyObject_IsTrue(r) : -1;
        Py_XDECREF(r);
        if (yes < 0)
            return NULL;
        if (yes == 0) {
            PyErr_Format(PyExc_TypeError, "a coroutine was expected, got %R", coro);
            return NULL;
        }
    }
    cg__runner_t *o = PyObject_New(cg__runner_t, cg__runner_type); /* new */
    if (o == NULL)
        return NULL;
    o->a = a;
    o->coro = Py_NewRef(coro);
    o->owner = Py_NewRef(owner);
    o->done = done;
    return (PyObject *)o;
}

static void cg__runner_dealloc(PyObject *self)
{
    cg__runner_t *o = (cg__runner_t *)self;
    PyTypeObject *tp = Py_TYPE(self);
    Py_XDECREF(o->coro);
    Py_XDECREF(o->owner);
    PyObject_Free(self);
    Py_DECREF(tp);
}

/* Put exc (a reference taken over) back as the pending exception. */
static void cg__raise(PyObject *exc)
{
    PyObject *tb = PyException_GetTraceback(exc); /* new or NULL */
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, tb);
}

/* coro ended: PYGEN_RETURN with *result its value, or PYGEN_ERROR with its
 * exception set. What the task gets instead. */
static PySendResult cg__runner_end(cg__runner_t *o, PySendResult r, PyObject **result)
{
    PyObject *owner = o->owner;
    o->owner = NULL;
    Py_CLEAR(o->coro);
    if (owner == NULL) /* cannot be: ended once */
        return r;
    if (r == PYGEN_RETURN) {
        o->done(owner, NULL, false);
        Py_DECREF(owner);
        return r;
    }
    PyObject *exc = cg_asgi_take_exc(); /* new */
    if (exc == NULL) {
        Py_DECREF(owner);
        *result = NULL;
        return PYGEN_ERROR;
    }
    bool cancelled = PyObject_TypeCheck(exc, (PyTypeObject *)o->a->cancelled_error);
    o->done(owner, cancelled ? NULL : exc, cancelled);
    Py_DECREF(owner);
    if (cancelled || !PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_Exception)) {
        cg__raise(exc);
        *result = NULL;
        return PYGEN_ERROR;
    }
    Py_DECREF(exc); /* reported by done: the task ends with None */
    *result = Py_NewRef(Py_None);
    return PYGEN_RETURN;
}

static PySendResult cg__runner_send(PyObject *self, PyObject *arg, PyObject **result)
{
    cg__runner_t *o = (cg__runner_t *)self;
    if (o->coro == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
        *result = NULL;
        return PYGEN_ERROR;
    }
    PySendResult r = PyIter_Send(o->coro, arg, result);
    return r == PYGEN_NEXT ? r : cg__runner_end(o, r, result);
}

/* The Python face of a finished step: the value, or StopIteration(value)
 * (a tuple wrapped so that it is not taken for the exception's args). */
static PyObject *cg__step_result(PySendResult r, PyObject *out)
{
    if (r == PYGEN_NEXT || r == PYGEN_ERROR)
        return out;
    if (out != Py_None) {
        PyObject *exc = PyObject_CallOneArg(PyExc_StopIteration, out); /* new */
        if (exc != NULL) {
            PyErr_SetObject(PyExc_StopIteration, exc);
            Py_DECREF(exc);
        }
    } else {
        PyErr_SetNone(PyExc_StopIteration);
    }
    Py_DECREF(out);
    return NULL;
}

static PyObject *cg__runner_send_meth(PyObject *self, PyObject *arg)
{
    PyObject *out = NULL;
    PySendResult r = cg__runner_send(self, arg, &out);
    return cg__step_result(r, out);
}

static PyObject *cg__runner_next(PyObject *self)
{
    return cg__runner_send_meth(self, Py_None);
}

/* throw(): how the task cancels the app (CancelledError at its await). */
static PyObject *cg__runner_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    cg__runner_t *o = (cg__runner_t *)self;
    if (o->coro == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
        return NULL;
    }
    PyObject *meth = PyObject_GetAttrString(o->coro, "throw"); /* new */
    PyObject *out = meth ? PyObject_Vectorcall(meth, args, (size_t)nargs, NULL) : NULL; /* new */
    Py_XDECREF(meth);
    if (out != NULL)
        return out; /* it awaits again */
    PySendResult r = PYGEN_ERROR;
    if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
        /* it returned */
        PyObject *stop = cg_asgi_take_exc();                                     /* new */
        out = stop ? PyObject_GetAttrString(stop, "value") : NULL;               /* new */
        Py_XDECREF(stop);
        r = out != NULL ? PYGEN_RETURN : PYGEN_ERROR;
    }
    r = cg__runner_end(o, r, &out);
    return cg__step_result(r, out);
}

static PyObject *cg__runner_close(PyObject *self, PyObject *unused)
{
    cg__runner_t *o = (cg__runner_t *)self;
    if (o->coro == NULL)
        Py_RETURN_NONE;
    return PyObject_CallMethod(o->coro, "close", NULL);
}

/* cr_frame and the like, for task.get_stack() and reprs: the app's. */
static PyObject *cg__runner_attr(PyObject *self, void *name)
{
    cg__runner_t *o = (cg__runner_t *)self;
    if (o->coro == NULL)
        Py_RETURN_NONE;
    return PyObject_GetAttrString(o->coro, name);
}

static PyMethodDef cg__runner_methods[] = {
    {"send", cg__runner_send_meth, METH_O, "Step the app's coroutine."},
    {"throw", (PyCFunction)(void (*)(void))cg__runner_throw, METH_FASTCALL,
     "Raise an exception at the app's await."},
    {"close", cg__runner_close, METH_NOARGS, "Close the app's coroutine."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef cg__runner_getset[] = {
    {"cr_frame", cg__runner_attr, NULL, NULL, "cr_frame"},
    {"cr_await", cg__runner_attr, NULL, NULL, "cr_await"},
    {"cr_code", cg__runner_attr, NULL, NULL, "cr_code"},
    {"cr_running", cg__runner_attr, NULL, NULL, "cr_running"},
    {"__qualname__", cg__runner_attr, NULL, NULL, "__qualname__"},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot cg__runner_slots[] = {
    {Py_tp_dealloc, (void *)cg__runner_dealloc},
    {Py_am_await, (void *)cg__await_await},
    {Py_am_send, (void *)cg__runner_send},
    {Py_tp_iter, (void *)cg__await_await},
    {Py_tp_iternext, (void *)cg__runner_next},
    {Py_tp_methods, cg__runner_methods},
    {Py_tp_getset, cg__runner_getset},
    {0, NULL},
};

static PyType_Spec cg__runner_spec = {
    .name = "cgunicorn.asgi.AppCoroutine",
    .basicsize = sizeof(cg__runner_t),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = cg__runner_slots,
};

int cg_asgi_types_ready(void)
{
    return cg_asgi_type(&cg__await_type, &cg__await_spec) != NULL &&
                   cg_asgi_type(&cg__runner_type, &cg__runner_spec) != NULL
               ? 0
               : -1;
}
