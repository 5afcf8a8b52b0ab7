/*
 * loggerclass.c - Gunicorn's logger_class setting for a class other than
 * its default Logger.
 *
 * The default keeps the C log (src/log) and nothing here runs. A custom
 * class (a dotted path, or a class object from a configuration file or the
 * API) is instantiated in the master as Gunicorn's arbiter does,
 * logger_class(cfg), with a cgunicorn.config.Config holding the settings;
 * the master starts the interpreter for it. The C log is then given a sink
 * that hands every record to the instance: error records to its
 * debug/info/warning/error/critical methods, exceptions to exception() with
 * the exception being handled, and each request to access(resp, req,
 * environ, request_time) with the request's objects. USR1 calls
 * reopen_files(), HUP setup(cfg) with the new settings. Workers are forked
 * from the master and inherit the instance.
 *
 * The Python half is pylib/cgunicorn/_loggerclass.py. Every entry takes
 * the GIL with PyGILState_Ensure(): records come from the master's loop
 * and the workers' loops, which do not hold it, and from code that does.
 */
#include "python.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cg_py_loggerclass_wanted(const cg_config_t *cfg)
{
    const char *c = cfg->logger_class;
    return c != NULL && strcmp(c, "gunicorn.glogging.Logger") != 0 && strcmp(c, "simple") != 0;
}

/* The threshold of the C log: records below it are not worth a call. GIL
 * held. Returns false with an exception set. */
static bool cg__lc_gate(cg_py_loggerclass_t *lc, cg_log_t *log)
{
    PyObject *g = PyObject_CallMethod(lc->mod, "gate", "O", lc->instance); /* new */
    long level = g != NULL ? PyLong_AsLong(g) : -1;
    Py_XDECREF(g);
    if (level == -1 && PyErr_Occurred())
        return false;
    __atomic_store_n(&log->level, (cg_log_level_t)level, __ATOMIC_RELAXED);
    return true;
}

/* fn(instance, level, text) for a record's text (bytes that are not UTF-8,
 * a raw request line say, show as \xNN); a failure is reported, not
 * raised. GIL held. */
static void cg__lc_call(cg_py_loggerclass_t *lc, PyObject *fn, cg_log_level_t level,
                        const char *msg, size_t len)
{
    PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)len, "backslashreplace"); /* new */
    PyObject *r = text != NULL ? PyObject_CallFunction(fn, "OiO", lc->instance, (int)level, text)
                               : NULL; /* new */
    if (r == NULL)
        cg_py_report_logging_error("");
    Py_XDECREF(r);
    Py_XDECREF(text);
}

static bool cg__lc_error(void *ctx, cg_log_level_t level, const char *msg, size_t len)
{
    cg_py_loggerclass_t *lc = ctx;
    if (!Py_IsInitialized() || lc->instance == NULL)
        return false;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb); /* a caller may log while an exception is pending */
    cg__lc_call(lc, lc->error_fn, level, msg, len);
    PyErr_Restore(et, ev, etb);
    PyGILState_Release(g);
    return true;
}

static PyObject *cg__lc_text(cg_str_t s)
{
    PyObject *u = PyUnicode_DecodeUTF8(s.ptr ? s.ptr : "", (Py_ssize_t)s.len, NULL);
    if (u == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        u = PyUnicode_DecodeLatin1(s.ptr ? s.ptr : "", (Py_ssize_t)s.len, NULL);
    }
    return u;
}

static bool cg__lc_access(void *ctx, const cg_access_info_t *info)
{
    cg_py_loggerclass_t *lc = ctx;
    /* only the WSGI and ASGI workers have the request's objects; a record
     * from anywhere else is the C writer's */
    if (!Py_IsInitialized() || lc->instance == NULL || info->py_objects == NULL)
        return false;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb);
    void *req = NULL, *resp = NULL, *env = NULL;
    PyObject *r = NULL;
    if (info->py_objects(info->py_ctx, &req, &resp, &env) == 0) {
        PyObject *status = cg__lc_text(info->status); /* new */
        PyObject *sent = info->sent >= 0 ? PyLong_FromLongLong((long long)info->sent)
                                         : Py_NewRef(Py_None); /* new */
        PyObject *micros = PyLong_FromLongLong((long long)info->request_time_us); /* new */
        if (status != NULL && sent != NULL && micros != NULL) {
            PyObject *args[] = {lc->instance, (PyObject *)req, (PyObject *)resp,
                                env != NULL ? (PyObject *)env : Py_None,
                                status, sent, micros};
            r = PyObject_Vectorcall(lc->access_fn, args, CG_ARRAY_SIZE(args), NULL);
        }
        Py_XDECREF(status);
        Py_XDECREF(sent);
        Py_XDECREF(micros);
        Py_DECREF((PyObject *)req);
        Py_DECREF((PyObject *)resp);
        Py_XDECREF((PyObject *)env);
    }
    if (r == NULL)
        cg_py_report_logging_error("");
    Py_XDECREF(r);
    PyErr_Restore(et, ev, etb);
    PyGILState_Release(g);
    return true;
}

static int cg__lc_reopen(void *ctx)
{
    cg_py_loggerclass_t *lc = ctx;
    if (!Py_IsInitialized() || lc->instance == NULL)
        return 0;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallMethod(lc->instance, "reopen_files", NULL); /* new */
    if (r == NULL)
        cg_py_report_logging_error("Reopening the log files failed:\n");
    Py_XDECREF(r);
    PyGILState_Release(g);
    return 0;
}

/* Print what Gunicorn's arbiter prints for a failing setup() on HUP. */
static void cg__lc_print_exc(const char *head)
{
    char *tb = cg_py_format_exception();
    fprintf(stderr, "%s%s", head, tb ? tb : "");
    fflush(stderr);
    free(tb);
}

/* HUP (cg_log_sink_t.reload): Gunicorn's Arbiter.setup() on a live logger:
 * setup(new cfg), and on failure setup(previous cfg) and an error record. */
static int cg__lc_reload(void *ctx, cg_log_t *log, const struct cg_config *cfg)
{
    cg_py_loggerclass_t *lc = ctx;
    if (!Py_IsInitialized() || lc->instance == NULL)
        return 0;
    PyGILState_STATE g = PyGILState_Ensure();
    int rc = 0;
    PyObject *fresh = cg_py_config_object(cfg); /* new */
    PyObject *r = fresh != NULL ? PyObject_CallMethod(lc->instance, "setup", "O", fresh)
                                : NULL; /* new */
    if (r != NULL) {
        Py_SETREF(lc->cfg_obj, fresh);
        fresh = NULL;
        log->sink = &lc->sink;
        log->to_sink = true;
        if (!cg__lc_gate(lc, log))
            cg_py_report_logging_error("");
    } else {
        rc = -1;
        cg__lc_print_exc("\nError: reloading the logger configuration failed, keeping the "
                         "previous one\n");
        PyObject *back = PyObject_CallMethod(lc->instance, "setup", "O", lc->cfg_obj); /* new */
        if (back == NULL) {
            cg__lc_print_exc("Error: restoring the previous logger configuration failed\n");
        } else {
            if (!cg__lc_gate(lc, lc->log))
                cg_py_report_logging_error("");
            cg_log_error(lc->log, "reloading the logger configuration failed, keeping the "
                                  "previous one");
        }
        Py_XDECREF(back);
    }
    Py_XDECREF(r);
    Py_XDECREF(fresh);
    PyGILState_Release(g);
    return rc;
}

/* The instance's close_on_exec(), whose failure is only reported. GIL held. */
static void cg__lc_close_on_exec(cg_py_loggerclass_t *lc)
{
    PyObject *r = PyObject_CallMethod(lc->instance, "close_on_exec", NULL); /* new */
    if (r == NULL)
        cg_py_report_logging_error("close_on_exec() failed:\n");
    Py_XDECREF(r);
}

int cg_py_loggerclass_init(cg_py_loggerclass_t *lc, const cg_config_t *cfg, cg_log_t *log)
{
    memset(lc, 0, sizeof(*lc));
    lc->log = log;
    lc->sink = (cg_log_sink_t){
        .ctx = lc,
        .error = cg__lc_error,
        .access = cg__lc_access,
        .reopen = cg__lc_reopen,
        .reload = cg__lc_reload,
    };
    if ((lc->mod = PyImport_ImportModule("cgunicorn._loggerclass")) == NULL ||
        (lc->error_fn = PyObject_GetAttrString(lc->mod, "error")) == NULL ||
        (lc->exc_fn = PyObject_GetAttrString(lc->mod, "exception")) == NULL ||
        (lc->access_fn = PyObject_GetAttrString(lc->mod, "access")) == NULL ||
        (lc->cfg_obj = cg_py_config_object(cfg)) == NULL)
        goto fail;
    lc->instance = PyObject_CallMethod(lc->mod, "make", "sO", cfg->logger_class, lc->cfg_obj);
    if (lc->instance == NULL || !cg__lc_gate(lc, log))
        goto fail;
    /* Gunicorn's arbiter calls it as it installs its signal handlers */
    cg__lc_close_on_exec(lc);
    log->sink = &lc->sink;
    log->to_sink = true;
    return 0;
fail:
    cg_py_print_startup_error();
    cg_py_loggerclass_free(lc);
    return 1;
}

void cg_py_loggerclass_free(cg_py_loggerclass_t *lc)
{
    if (lc->log != NULL && lc->log->sink == &lc->sink) {
        lc->log->to_sink = false;
        lc->log->sink = NULL;
    }
    if (Py_IsInitialized()) {
        Py_CLEAR(lc->instance);
        Py_CLEAR(lc->cfg_obj);
        Py_CLEAR(lc->error_fn);
        Py_CLEAR(lc->exc_fn);
        Py_CLEAR(lc->access_fn);
        Py_CLEAR(lc->mod);
    }
}

/* The logger class attached to log, or NULL. */
static cg_py_loggerclass_t *cg__lc_of(const cg_log_t *log)
{
    if (!log->to_sink || log->sink == NULL || log->sink->error != cg__lc_error)
        return NULL;
    return log->sink->ctx;
}

void cg_py_loggerclass_worker_init(cg_log_t *log)
{
    cg_py_loggerclass_t *lc = cg__lc_of(log);
    if (lc != NULL && lc->instance != NULL)
        cg__lc_close_on_exec(lc);
}

PyObject *cg_py_loggerclass_instance(cg_log_t *log)
{
    cg_py_loggerclass_t *lc = cg__lc_of(log);
    return lc != NULL ? lc->instance : NULL;
}

bool cg_py_loggerclass_exception(cg_log_t *log, cg_log_level_t level, const char *prefix)
{
    cg_py_loggerclass_t *lc = cg__lc_of(log);
    if (lc == NULL || lc->instance == NULL)
        return false;
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (t == NULL)
        return true;
    if (!cg_log_enabled(log, level)) {
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
        return true;
    }
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb != NULL && v != NULL)
        PyException_SetTraceback(v, tb);
    /* The exception becomes the one being handled for the call, as in the
     * `except:` block where Gunicorn calls log.exception(): the previous
     * one comes back after it. */
    PyObject *ot, *ov, *otb;
    PyErr_GetExcInfo(&ot, &ov, &otb); /* new references */
    PyErr_SetExcInfo(t, v, tb);       /* steals */
    cg__lc_call(lc, lc->exc_fn, level, prefix, strlen(prefix));
    PyErr_SetExcInfo(ot, ov, otb); /* steals */
    return true;
}
