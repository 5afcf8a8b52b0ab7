/*
 * hooks.c - Gunicorn's server hooks from a configuration file, behind the C
 * table of src/arbiter/hooks.h.
 *
 * The master holds the GIL only while it runs Python (threads a
 * configuration file started run while it idles); workers run their loop
 * without it. Every entry therefore takes it with PyGILState_Ensure(),
 * which nests where it is already held. A hook that raises is logged with
 * its traceback ("Exception in <hook> hook") and the caller carries on: one
 * broken hook must not take the server down.
 */
#include "python.h"

#include "../arbiter/arbiter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Call fn(*args) (args stolen); log its exception. GIL held. */
static int cg__invoke(cg_py_hooks_t *h, const char *name, PyObject *fn, PyObject *args)
{
    if (fn == NULL) {
        Py_XDECREF(args);
        return 0;
    }
    if (args == NULL) {
        cg_py_log_exception(h->log, CG_LOG_ERROR, "Exception preparing a server hook");
        return -1;
    }
    PyObject *r = PyObject_Call(fn, args, NULL); /* new */
    Py_DECREF(args);
    if (r == NULL) {
        char prefix[96];
        snprintf(prefix, sizeof(prefix), "Exception in %s hook", name);
        cg_py_log_exception(h->log, CG_LOG_ERROR, prefix);
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static PyObject *cg__server(cg_py_hooks_t *h, cg_arbiter_t *a)
{
    if (a != NULL)
        h->arbiter = a;
    if (h->server == NULL)
        h->server = PyObject_CallMethod(h->mod, "Server", NULL);
    return h->server; /* borrowed */
}

/* A fresh snapshot of a worker seen from the master. New reference. */
static PyObject *cg__worker_snapshot(cg_py_hooks_t *h, const cg_worker_t *w)
{
    int ppid = h->arbiter ? (int)h->arbiter->pid : (int)getpid();
    return PyObject_CallMethod(h->mod, "Worker", "iiiOlO", (int)w->pid, ppid, w->age,
                               w->alive ? Py_True : Py_False, (long)w->nr,
                               w->booted ? Py_True : Py_False);
}

/* This worker process's own object: the one pre_fork saw (so attributes a
 * hook set there survive the fork, as in Gunicorn), kept for the process's
 * lifetime, its live fields refreshed. Borrowed reference or NULL. */
static PyObject *cg__self_worker(cg_py_hooks_t *h, const cg_worker_t *w)
{
    pid_t me = getpid();
    if (h->worker_live && h->worker_for == w && h->worker_pid == me)
        return h->worker_obj; /* a Python worker's instance keeps its own state */
    if (h->worker_obj == NULL || h->worker_for != w ||
        (h->worker_pid != 0 && h->worker_pid != me)) {
        Py_CLEAR(h->worker_obj);
        h->worker_obj = cg__worker_snapshot(h, w);
        if (h->worker_obj == NULL)
            return NULL;
        h->worker_for = w;
    }
    h->worker_pid = me;
    PyObject *o = h->worker_obj;
    PyObject *pid = PyLong_FromLong((long)me), *ppid = PyLong_FromLong((long)w->ppid);
    PyObject *nr = PyLong_FromUnsignedLongLong(w->nr);
    if (pid == NULL || ppid == NULL || nr == NULL || PyObject_SetAttrString(o, "pid", pid) < 0 ||
        (w->ppid != 0 && PyObject_SetAttrString(o, "ppid", ppid) < 0) ||
        PyObject_SetAttrString(o, "nr", nr) < 0 ||
        PyObject_SetAttrString(o, "alive", w->alive ? Py_True : Py_False) < 0 ||
        PyObject_SetAttrString(o, "booted", w->booted ? Py_True : Py_False) < 0)
        o = NULL;
    Py_XDECREF(pid);
    Py_XDECREF(ppid);
    Py_XDECREF(nr);
    return o;
}

#define CG__CTX cg_py_hooks_t *h = ctx
#define CG__FN(name) ((PyObject *)h->cfg->name)

/* master-side hooks taking only the server */
#define CG__SERVER_HOOK(name)                                                                    \
    static void cg__hook_##name(void *ctx, cg_arbiter_t *a)                                      \
    {                                                                                            \
        CG__CTX;                                                                                 \
        if (CG__FN(name) == NULL)                                                                \
            return;                                                                              \
        PyGILState_STATE g = PyGILState_Ensure();                                                \
        PyObject *s = cg__server(h, a);                                                          \
        cg__invoke(h, #name, CG__FN(name), s ? PyTuple_Pack(1, s) : NULL);                       \
        PyGILState_Release(g);                                                                   \
    }
CG__SERVER_HOOK(on_starting)
CG__SERVER_HOOK(on_reload)
CG__SERVER_HOOK(when_ready)
CG__SERVER_HOOK(pre_exec)
CG__SERVER_HOOK(on_exit)
CG__SERVER_HOOK(on_dirty_starting)

static void cg__hook_pre_fork(void *ctx, cg_arbiter_t *a, cg_worker_t *w)
{
    CG__CTX;
    if (CG__FN(pre_fork) == NULL)
        return;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *s = cg__server(h, a);
    /* Made here and adopted by the child in post_fork (worker_pid 0). */
    Py_CLEAR(h->worker_obj);
    h->worker_obj = cg__worker_snapshot(h, w);
    h->worker_for = w;
    h->worker_pid = 0;
    PyObject *wo = h->worker_obj;
    cg__invoke(h, "pre_fork", CG__FN(pre_fork), s && wo ? PyTuple_Pack(2, s, wo) : NULL);
    PyGILState_Release(g);
}

static void cg__hook_child_exit(void *ctx, cg_arbiter_t *a, cg_worker_t *w)
{
    CG__CTX;
    if (CG__FN(child_exit) == NULL)
        return;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *s = cg__server(h, a), *wo = cg__worker_snapshot(h, w);
    cg__invoke(h, "child_exit", CG__FN(child_exit), s && wo ? PyTuple_Pack(2, s, wo) : NULL);
    Py_XDECREF(wo);
    PyGILState_Release(g);
}

static void cg__hook_nworkers_changed(void *ctx, cg_arbiter_t *a, int new_value, int old_value)
{
    CG__CTX;
    if (CG__FN(nworkers_changed) == NULL)
        return;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *s = cg__server(h, a);
    /* A negative old value is the arbiter's "none yet" (Gunicorn: None). */
    PyObject *old = old_value < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(old_value);
    cg__invoke(h, "nworkers_changed", CG__FN(nworkers_changed),
               s && old ? Py_BuildValue("(OiO)", s, new_value, old) : NULL);
    Py_XDECREF(old);
    PyGILState_Release(g);
}

/* worker-process hooks: (server, worker) */
#define CG__SERVER_WORKER_HOOK(name)                                                             \
    static void cg__hook_##name(void *ctx, cg_arbiter_t *a, cg_worker_t *w)                      \
    {                                                                                            \
        CG__CTX;                                                                                 \
        if (CG__FN(name) == NULL || !Py_IsInitialized())                                         \
            return;                                                                              \
        PyGILState_STATE g = PyGILState_Ensure();                                                \
        PyObject *s = cg__server(h, a), *wo = cg__self_worker(h, w);                             \
        cg__invoke(h, #name, CG__FN(name), s && wo ? PyTuple_Pack(2, s, wo) : NULL);             \
        PyGILState_Release(g);                                                                   \
    }
CG__SERVER_WORKER_HOOK(worker_exit)

/* Every worker passes here first, hook set or not: from now on this
 * process's threads may read its settings (see objects.c). */
static void cg__hook_post_fork(void *ctx, cg_arbiter_t *a, cg_worker_t *w)
{
    CG__CTX;
    h->in_worker = true;
    if (CG__FN(post_fork) == NULL || !Py_IsInitialized())
        return;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *s = cg__server(h, a), *wo = cg__self_worker(h, w);
    cg__invoke(h, "post_fork", CG__FN(post_fork), s && wo ? PyTuple_Pack(2, s, wo) : NULL);
    PyGILState_Release(g);
}

/* worker-process hooks: (worker) */
#define CG__WORKER_HOOK(name)                                                                    \
    static void cg__hook_##name(void *ctx, cg_worker_t *w)                                       \
    {                                                                                            \
        CG__CTX;                                                                                 \
        if (CG__FN(name) == NULL || !Py_IsInitialized())                                         \
            return;                                                                              \
        PyGILState_STATE g = PyGILState_Ensure();                                                \
        PyObject *wo = cg__self_worker(h, w);                                                    \
        cg__invoke(h, #name, CG__FN(name), wo ? PyTuple_Pack(1, wo) : NULL);                     \
        PyGILState_Release(g);                                                                   \
    }
CG__WORKER_HOOK(post_worker_init)
CG__WORKER_HOOK(worker_int)
CG__WORKER_HOOK(worker_abort)

/* PyOS_BeforeFork() and the PyOS_AfterFork_*() calls need the GIL, and
 * holding it across fork is what makes the child's interpreter consistent:
 * no other thread is inside Python while the process is copied. Each side
 * then goes back to what the forking thread had before (for the master:
 * not holding it), so a daemonized or USR2-forked master idles without it;
 * a worker takes it for good in cg_py_init(). The hold is kept in h, which
 * the child has a copy of. */
static void cg__fork_prepare(void *ctx)
{
    cg_py_hooks_t *h = ctx;
    h->fork_gil = PyGILState_Ensure();
    /* Else the child inherits what sys.stdout holds: printed twice by a
     * worker, or lost with the parent that daemonizing _exit()s. */
    cg_py_flush_stdio();
    PyOS_BeforeFork();
}

static void cg__fork_parent(void *ctx)
{
    cg_py_hooks_t *h = ctx;
    PyOS_AfterFork_Parent();
    PyGILState_Release(h->fork_gil);
}

static void cg__fork_child(void *ctx)
{
    cg_py_hooks_t *h = ctx;
    cg_py_after_fork_child();
    PyGILState_Release(h->fork_gil);
}

int cg_py_hooks_init(cg_py_hooks_t *h, cg_config_t *cfg, cg_log_t *log, char *err,
                     size_t errlen)
{
    memset(h, 0, sizeof(*h));
    h->cfg = cfg;
    h->log = log;
    h->mod = cg_py_helper_module();
    if (h->mod == NULL) {
        char *tb = cg_py_format_exception();
        snprintf(err, errlen, "cannot set up server hooks:\n%s", tb ? tb : "");
        free(tb);
        return -1;
    }
    cg_py_helper_bind(h->mod, h);
    cg_hooks_t *t = &h->table;
    t->ctx = h;
    /* Every entry, set or not: a reload (HUP) may add or remove hooks, and
     * each entry looks its callable up when called. */
#define CG__SET(name) t->name = cg__hook_##name;
    CG__SET(on_starting)
    CG__SET(on_reload)
    CG__SET(when_ready)
    CG__SET(pre_fork)
    CG__SET(pre_exec)
    CG__SET(child_exit)
    CG__SET(nworkers_changed)
    CG__SET(on_exit)
    CG__SET(on_dirty_starting)
    CG__SET(post_fork)
    CG__SET(post_worker_init)
    CG__SET(worker_int)
    CG__SET(worker_abort)
    CG__SET(worker_exit)
#undef CG__SET
    t->fork_prepare = cg__fork_prepare;
    t->fork_parent = cg__fork_parent;
    t->fork_child = cg__fork_child;
    t->config_loader = cg_py_config_loader; /* HUP reads the file again */
    t->config_loader_ctx = NULL;
    t->tls_context = cg_py_tls_context;
    if (cfg->app_object != NULL)
        t->config_reload = cg_py_api_config_reload; /* HUP calls app.reload() */
    cfg->hooks = t;
    return 0;
}

void cg_py_hooks_free(cg_py_hooks_t *h, cg_config_t *cfg)
{
    if (cfg->hooks == &h->table)
        cfg->hooks = NULL;
    if (!Py_IsInitialized())
        return;
    if (h->mod != NULL)
        cg_py_helper_bind(h->mod, NULL);
    Py_CLEAR(h->worker_obj);
    Py_CLEAR(h->server);
    Py_CLEAR(h->mod);
}

static cg_py_hooks_t *cg__hooks_of_cfg(const cg_config_t *cfg)
{
    return cfg->hooks != NULL ? cfg->hooks->ctx : NULL;
}

int cg_py_hooks_adopt_worker(const cg_config_t *cfg, const cg_worker_t *w, PyObject *obj)
{
    cg_py_hooks_t *h = cg__hooks_of_cfg(cfg);
    if (h == NULL)
        return 0;
    if (h->worker_obj != NULL && h->worker_for == w && h->worker_pid == 0) {
        /* In Gunicorn pre_fork gets the very instance the worker runs; here
         * it got a snapshot, so what the hook set there is carried over. */
        PyObject *d = PyObject_GetAttrString(h->worker_obj, "__dict__"); /* new */
        PyObject *key, *val; /* borrowed */
        Py_ssize_t pos = 0;
        int rc = d != NULL && PyDict_Check(d) ? 0 : -1;
        while (rc == 0 && PyDict_Next(d, &pos, &key, &val)) {
            /* the instance's own attributes (pid, alive, ...) win */
            if (!PyObject_HasAttr(obj, key))
                rc = PyObject_SetAttr(obj, key, val);
        }
        Py_XDECREF(d);
        if (rc < 0)
            return -1;
    }
    Py_XSETREF(h->worker_obj, Py_NewRef(obj));
    h->worker_for = w;
    h->worker_pid = getpid();
    h->worker_live = true;
    return 0;
}

int cg_py_hook_pre_request(const cg_config_t *cfg, cg_worker_t *w, PyObject *req)
{
    cg_py_hooks_t *h = cg__hooks_of_cfg(cfg);
    if (cfg->pre_request == NULL || h == NULL)
        return 0;
    PyObject *wo = cg__self_worker(h, w);
    if (wo == NULL)
        return -1;
    PyObject *r = PyObject_CallFunctionObjArgs((PyObject *)cfg->pre_request, wo, req, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

void cg_py_hook_post_request(const cg_config_t *cfg, cg_worker_t *w, PyObject *req,
                             PyObject *env, PyObject *resp)
{
    cg_py_hooks_t *h = cg__hooks_of_cfg(cfg);
    if (cfg->post_request == NULL || h == NULL)
        return;
    PyObject *wo = cg__self_worker(h, w);
    PyObject *r = wo ? PyObject_CallFunctionObjArgs((PyObject *)cfg->post_request, wo, req,
                                                    env, resp ? resp : Py_None, NULL)
                     : NULL;
    if (r == NULL)
        cg_py_log_exception(h->log, CG_LOG_ERROR, "Exception in post_request hook");
    Py_XDECREF(r);
}
