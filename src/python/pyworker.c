/*
 * pyworker.c - a worker_class that is a Python class: a dotted path, an
 * "egg:DIST#NAME" entry point or a class object given in a configuration,
 * resolved as Gunicorn's util.load_class does, and run in a worker the C
 * arbiter forked, as Gunicorn's arbiter runs one (spawn_worker):
 *
 *   master   imports the class at start-up (and calls its setup()), so a
 *            bad name stops the server with Gunicorn's "class uri ...
 *            invalid or not found" before any worker starts;
 *   worker   makes the instance with Gunicorn's arguments (age, ppid,
 *            sockets, app, timeout / 2, cfg, log), runs post_fork with it,
 *            calls init_process() and leaves with the status Gunicorn's
 *            spawn_worker gives (SystemExit's code; 3 for an exception
 *            before boot, 4 for AppImportError, 255 after).
 *
 * The instance talks back through cgunicorn._core's _worker_* functions
 * below: notify() beats the heartbeat the master watches, the default log
 * writes to the C log. The Python half is pylib/cgunicorn/_pyworker.py;
 * the base class is pylib/cgunicorn/workers/base.py.
 */
#include "python.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The worker this process runs (set once the worker boots a Python class;
 * NULL in a master or a C worker), for the _worker_* functions. */
static cg_worker_t *cg__pw_self;

/* cgunicorn._pyworker (new reference), or NULL with an exception set. */
static PyObject *cg__pw_module(void)
{
    return PyImport_ImportModule("cgunicorn._pyworker");
}

int cg_py_worker_class_check(const cg_config_t *cfg)
{
    PyObject *mod = cg__pw_module(); /* new */
    PyObject *cls = mod != NULL ? PyObject_CallMethod(mod, "load", "sO", cfg->worker_class, Py_True)
                                : NULL; /* new */
    Py_XDECREF(mod);
    if (cls == NULL) {
        /* Gunicorn's BaseApplication.run(): "\nError: class uri ... invalid
         * or not found: ..." for load_class's RuntimeError, else Python's
         * report of the uncaught exception (a setup() that raised) */
        cg_py_print_startup_error();
        return 1;
    }
    Py_DECREF(cls);
    return 0;
}

/* [(fd, display), ...] of the worker's listeners: new reference or NULL
 * with an exception set. */
static PyObject *cg__pw_listeners(const cg_worker_t *w)
{
    PyObject *list = PyList_New((Py_ssize_t)w->nlisteners); /* new */
    for (size_t i = 0; list != NULL && i < w->nlisteners; i++) {
        const cg_listener_t *l = &w->listeners[i];
        PyObject *t = Py_BuildValue("(is)", l->fd, l->display ? l->display : ""); /* new */
        if (t == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, t); /* steals t */
    }
    return list;
}

int cg_py_worker_boot(cg_worker_t *w, PyObject **out)
{
    *out = NULL;
    cg__pw_self = w;
    PyObject *mod = cg__pw_module(); /* new */
    PyObject *socks = mod != NULL ? cg__pw_listeners(w) : NULL; /* new */
    PyObject *cfg_obj = socks != NULL ? cg_py_config_object(w->cfg) : NULL; /* new */
    PyObject *obj = NULL;
    if (cfg_obj != NULL) {
        PyObject *logger = cg_py_loggerclass_instance(w->log); /* borrowed or NULL */
        PyObject *app = w->cfg->app_object; /* borrowed or NULL */
        /* the request count after which this worker restarts, jitter
         * included, as the arbiter drew it (-1: never) */
        long long max_requests = w->max_requests == UINT64_MAX ? -1 : (long long)w->max_requests;
        /* Gunicorn's arbiter hands its workers half the timeout */
        obj = PyObject_CallMethod(mod, "make", "siiOdOOOOLi", w->cfg->worker_class, w->age,
                                  (int)w->ppid, socks, (double)w->cfg->timeout / 2.0, cfg_obj,
                                  logger != NULL ? logger : Py_None, app != NULL ? app : Py_None,
                                  w->log->to_sink ? Py_True : Py_False, max_requests, (int)w->pid); /* new */
    }
    Py_XDECREF(mod);
    Py_XDECREF(socks);
    Py_XDECREF(cfg_obj);
    if (obj == NULL || cg_py_hooks_adopt_worker(w->cfg, w, obj) < 0) {
        Py_XDECREF(obj);
        cg_py_log_exception(w->log, CG_LOG_ERROR, "Exception in worker process");
        return CG_WORKER_EXIT_BOOT_ERROR;
    }
    *out = obj;
    return CG_WORKER_EXIT_OK;
}

int cg_py_worker_run(cg_worker_t *w, PyObject *obj)
{
    PyObject *mod = cg__pw_module(); /* new */
    PyObject *r = mod != NULL ? PyObject_CallMethod(mod, "run", "O", obj) : NULL; /* new */
    Py_XDECREF(mod);
    long status = r != NULL ? PyLong_AsLong(r) : -1;
    Py_XDECREF(r);
    if (status == -1 && PyErr_Occurred()) {
        /* run() catches what init_process() raises: this is our own bug */
        cg_py_log_exception(w->log, CG_LOG_ERROR, "Exception in worker process");
        return CG_WORKER_EXIT_CRASH;
    }
    return (int)(status & 0xff); /* as the kernel keeps an exit status */
}

/* ---- cgunicorn._core._worker_*: what the instance calls ----------------- */

cg_worker_t *cg_py_worker_self(void)
{
    return cg__pw_self;
}

static cg_worker_t *cg__pw_need(void)
{
    if (cg__pw_self == NULL)
        PyErr_SetString(PyExc_RuntimeError, "not in a cgunicorn worker process");
    return cg__pw_self;
}

/* _worker_notify() -> bool: beat the heartbeat the master watches (False
 * outside a worker, where there is none: a class used on its own). */
static PyObject *cg__pw_notify(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    if (cg__pw_self == NULL)
        Py_RETURN_FALSE;
    cg_heartbeat_notify(&cg__pw_self->hb); /* one store in a shared page */
    /* Gunicorn's base classes notify only from run(), once the app is
     * loaded: the first beat is as good a sign of a booted worker as
     * there is for a class of someone else's */
    cg_heartbeat_set_booted(&cg__pw_self->hb);
    Py_RETURN_TRUE;
}

/* _worker_alive([value]) -> bool: the worker's `alive` flag, which the C
 * side reads too (a response's Connection header) and clears itself
 * (past --max-requests); with a value, set it first. None outside a
 * worker. */
static PyObject *cg__pw_alive(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "_worker_alive() takes at most 1 argument");
        return NULL;
    }
    if (cg__pw_self == NULL)
        Py_RETURN_NONE;
    if (nargs == 1) {
        int v = PyObject_IsTrue(args[0]);
        if (v < 0)
            return NULL;
        cg__pw_self->alive = v;
    }
    return PyBool_FromLong(cg__pw_self->alive);
}

/* _worker_requests() -> the requests the C side counted (Gunicorn's
 * worker.nr), or None outside a worker. */
static PyObject *cg__pw_requests(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    if (cg__pw_self == NULL)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(cg__pw_self->nr);
}

/* _worker_heartbeat_age() -> seconds since the last beat, or None. */
static PyObject *cg__pw_heartbeat_age(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    if (cg__pw_self == NULL)
        Py_RETURN_NONE;
    return PyFloat_FromDouble((double)cg_heartbeat_age_ms(&cg__pw_self->hb) / 1000.0);
}

/* _worker_log(level, text): one error-log record written by the C log. */
static PyObject *cg__pw_log(PyObject *mod, PyObject *args)
{
    int level;
    const char *text;
    Py_ssize_t len;
    (void)mod;
    if (!PyArg_ParseTuple(args, "is#:_worker_log", &level, &text, &len))
        return NULL;
    cg_worker_t *w = cg__pw_need();
    if (w == NULL)
        return NULL;
    /* text stays valid: args holds the str while the GIL is released */
    Py_BEGIN_ALLOW_THREADS
    cg_log_text(w->log, (cg_log_level_t)level, text, (size_t)len);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* _worker_access(line): one access-log line (without its newline). */
static PyObject *cg__pw_access(PyObject *mod, PyObject *args)
{
    const char *text;
    Py_ssize_t len;
    (void)mod;
    if (!PyArg_ParseTuple(args, "s#:_worker_access", &text, &len))
        return NULL;
    cg_worker_t *w = cg__pw_need();
    if (w == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    cg_log_access_text(w->log, text, (size_t)len);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* _worker_reopen_logs(): USR1's reopen of the C log's files. */
static PyObject *cg__pw_reopen(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    cg_worker_t *w = cg__pw_need();
    if (w == NULL)
        return NULL;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = cg_log_reopen(w->log);
    Py_END_ALLOW_THREADS
    if (r < 0) {
        errno = -r;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

/* _worker_load_app() -> the WSGI (or ASGI) callable, imported as the C
 * workers import it: --preload's, else APP_MODULE. Raises AppImportError
 * where Gunicorn's import_app does, and what the import raised otherwise. */
static PyObject *cg__pw_load_app(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    cg_worker_t *w = cg__pw_need();
    if (w == NULL)
        return NULL;
    if (cg_py_preloaded_app() != NULL)
        return Py_NewRef(cg_py_preloaded_app());
    PyObject *app = NULL; /* new */
    char *msg = NULL;
    int rc = cg_py_load_cfg_app(w->cfg, &app, &msg);
    if (rc == 0)
        return app;
    if (rc == CG_PY_APP_IMPORT_ERROR) {
        PyObject *errors = PyImport_ImportModule("cgunicorn.errors"); /* new */
        PyObject *exc = errors ? PyObject_GetAttrString(errors, "AppImportError") : NULL; /* new */
        if (exc != NULL)
            PyErr_SetString(exc, msg);
        Py_XDECREF(exc);
        Py_XDECREF(errors);
        free(msg);
    }
    return NULL;
}

/* _worker_kind_is_python(name) -> bool: whether the server runs
 * worker_class `name` as a Python class (not a C loop, not refused). */
static PyObject *cg__pw_kind_is_python(PyObject *mod, PyObject *arg)
{
    (void)mod;
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL)
        return NULL;
    return PyBool_FromLong(cg_config_worker_kind_of(name) == CG_WORKER_PYTHON);
}

/* _worker_python_class(name) -> the dotted path of our class that runs
 * worker_class `name` (Gunicorn's "gevent" ...), or None: the name is the
 * class. */
static PyObject *cg__pw_python_class(PyObject *mod, PyObject *arg)
{
    (void)mod;
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL)
        return NULL;
    const char *path = cg_config_worker_pyclass(name);
    if (path == NULL)
        Py_RETURN_NONE;
    return PyUnicode_FromString(path);
}

PyMethodDef cg_py_worker_methods[] = {
    {"_worker_python_class", cg__pw_python_class, METH_O, NULL},
    {"_worker_kind_is_python", cg__pw_kind_is_python, METH_O, NULL},
    {"_worker_notify", cg__pw_notify, METH_NOARGS, NULL},
    {"_worker_alive", (PyCFunction)(void (*)(void))cg__pw_alive, METH_FASTCALL, NULL},
    {"_worker_requests", cg__pw_requests, METH_NOARGS, NULL},
    {"_worker_heartbeat_age", cg__pw_heartbeat_age, METH_NOARGS, NULL},
    {"_worker_log", cg__pw_log, METH_VARARGS, NULL},
    {"_worker_access", cg__pw_access, METH_VARARGS, NULL},
    {"_worker_reopen_logs", cg__pw_reopen, METH_NOARGS, NULL},
    {"_worker_load_app", cg__pw_load_app, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};
