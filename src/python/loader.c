/*
 * loader.c - import the WSGI application the way Gunicorn's util.import_app
 * does, so that the same APP_MODULE strings and the same failures behave alike:
 * an AppImportError (exit 4 in a worker) for a bad attribute or expression, any
 * other exception (exit 3) for a module that fails to import.
 */
#include "python.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Build an AppImportError message with PyUnicode_FromFormat (so %R is repr()). */
static int cg__app_error(char **msg_out, const char *fmt, ...)
{
    PyErr_Clear(); /* formatting must not run with an exception pending */
    va_list ap;
    va_start(ap, fmt);
    PyObject *s = PyUnicode_FromFormatV(fmt, ap); /* new */
    va_end(ap);
    const char *u = s ? PyUnicode_AsUTF8(s) : NULL;
    *msg_out = cg_xstrdup(u ? u : "application import error");
    Py_XDECREF(s);
    PyErr_Clear();
    return CG_PY_APP_IMPORT_ERROR;
}

/*
 * Gunicorn's _called_with_wrong_args(): a TypeError raised by calling the
 * factory is the caller's fault when the traceback has no frame of the
 * factory itself (the error came from argument binding).
 */
static bool cg__called_with_wrong_args(PyObject *tb)
{
    if (tb == NULL || tb == Py_None)
        return true;
    PyObject *next = PyObject_GetAttrString(tb, "tb_next"); /* new */
    bool wrong = next == NULL || next == Py_None;
    Py_XDECREF(next);
    PyErr_Clear();
    return wrong;
}

static PyObject *cg__import_module(const char *module, const char *obj)
{
    PyObject *mod = PyImport_ImportModule(module); /* new */
    if (mod != NULL || !PyErr_ExceptionMatches(PyExc_ImportError))
        return mod;
    size_t n = strlen(module);
    struct stat st;
    if (n > 3 && strcmp(module + n - 3, ".py") == 0 && stat(module, &st) == 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ImportError, "Failed to find application, did you mean '%.*s:%s'?",
                     (int)(n - 3), module, obj);
    }
    return NULL;
}

/* --paste: PasteDeploy's loadapp() of the file, through
 * cgunicorn.app.pasterapp (Gunicorn's WSGIApplication.load_pasteapp). */
static PyObject *cg__load_paste(const cg_config_t *cfg)
{
    PyObject *raw = PyList_New(0); /* new */
    for (size_t i = 0; raw != NULL && i < cfg->raw_paste_global_conf.n; i++) {
        PyObject *s = PyUnicode_FromString(cfg->raw_paste_global_conf.v[i]); /* new */
        if (s == NULL || PyList_Append(raw, s) < 0)
            Py_CLEAR(raw);
        Py_XDECREF(s);
    }
    if (raw == NULL)
        return NULL;
    PyObject *mod = PyImport_ImportModule("cgunicorn.app.pasterapp"); /* new */
    PyObject *app = mod != NULL ? PyObject_CallMethod(mod, "_load", "sO", cfg->app_uri, raw)
                                : NULL; /* new */
    Py_XDECREF(mod);
    Py_DECREF(raw);
    return app;
}

int cg_py_load_cfg_app(const cg_config_t *cfg, PyObject **app_out, char **msg_out)
{
    if (cfg->app_object == NULL && cfg->paste != NULL) {
        *msg_out = NULL;
        *app_out = cg__load_paste(cfg);
        return *app_out != NULL ? 0 : -1;
    }
    if (cfg->app_object == NULL)
        return cg_py_load_app(cfg->app_uri, app_out, msg_out);
    /* BaseApplication.wsgi(): load() once, then the same callable */
    *app_out = PyObject_CallMethod((PyObject *)cfg->app_object, "wsgi", NULL); /* new */
    if (*app_out != NULL)
        return 0;
    /* load() raising AppImportError (Gunicorn's or our shim's: matched by
     * name) is reported as the command line reports one, message only */
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (t != NULL && PyType_Check(t) && strcmp(((PyTypeObject *)t)->tp_name, "AppImportError") == 0) {
        PyObject *s = v != NULL ? PyObject_Str(v) : NULL; /* new */
        const char *u = s != NULL ? PyUnicode_AsUTF8(s) : NULL;
        if (u != NULL) {
            *msg_out = cg_xstrdup(u);
            Py_DECREF(s);
            Py_XDECREF(t);
            Py_XDECREF(v);
            Py_XDECREF(tb);
            return CG_PY_APP_IMPORT_ERROR;
        }
        Py_XDECREF(s);
        PyErr_Clear();
    }
    PyErr_Restore(t, v, tb);
    return -1;
}

int cg_py_load_app(const char *uri, PyObject **app_out, char **msg_out)
{
    int rc = -1;
    char *module = cg_xstrdup(uri);
    const char *obj = "application";
    char *colon = strchr(module, ':');
    if (colon != NULL) {
        *colon = '\0';
        obj = colon + 1;
    }
    PyObject *mod = NULL, *ast = NULL, *tree = NULL, *expr = NULL, *name_cls = NULL,
             *call_cls = NULL, *name = NULL, *args = NULL, *kwargs = NULL, *app = NULL;
    *app_out = NULL;
    *msg_out = NULL;

    mod = cg__import_module(module, obj);
    if (mod == NULL)
        goto done;

    ast = PyImport_ImportModule("ast");
    if (ast == NULL)
        goto done;
    tree = PyObject_CallMethod(ast, "parse", "sss", obj, "<unknown>", "eval");
    if (tree == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_SyntaxError))
            goto done;
        PyErr_Clear();
        PyObject *o = PyUnicode_FromString(obj); /* new */
        if (o == NULL)
            goto done;
        rc = cg__app_error(msg_out, "Failed to parse %R as an attribute name or function call.", o);
        Py_DECREF(o);
        goto done;
    }
    expr = PyObject_GetAttrString(tree, "body");
    name_cls = PyObject_GetAttrString(ast, "Name");
    call_cls = PyObject_GetAttrString(ast, "Call");
    if (expr == NULL || name_cls == NULL || call_cls == NULL)
        goto done;

    PyObject *objstr = PyUnicode_FromString(obj); /* new; for %R messages */
    if (objstr == NULL)
        goto done;
    if (PyObject_IsInstance(expr, name_cls) == 1) {
        name = PyObject_GetAttrString(expr, "id");
    } else if (PyObject_IsInstance(expr, call_cls) == 1) {
        PyObject *func = PyObject_GetAttrString(expr, "func"); /* new */
        if (func == NULL || PyObject_IsInstance(func, name_cls) != 1) {
            Py_XDECREF(func);
            rc = cg__app_error(msg_out, "Function reference must be a simple name: %R", objstr);
            Py_DECREF(objstr);
            goto done;
        }
        name = PyObject_GetAttrString(func, "id");
        Py_DECREF(func);
        /* Positional and keyword arguments must be literals. */
        PyObject *lit = PyObject_GetAttrString(ast, "literal_eval"); /* new */
        PyObject *eargs = PyObject_GetAttrString(expr, "args");      /* new */
        PyObject *ekw = PyObject_GetAttrString(expr, "keywords");    /* new */
        bool bad = lit == NULL || eargs == NULL || ekw == NULL;
        if (!bad) {
            args = PyList_New(0);
            kwargs = PyDict_New();
            bad = args == NULL || kwargs == NULL;
        }
        for (Py_ssize_t i = 0; !bad && i < PyList_Size(eargs); i++) {
            PyObject *v = PyObject_CallOneArg(lit, PyList_GET_ITEM(eargs, i)); /* new */
            bad = v == NULL || PyList_Append(args, v) < 0;
            Py_XDECREF(v);
        }
        for (Py_ssize_t i = 0; !bad && i < PyList_Size(ekw); i++) {
            PyObject *kw = PyList_GET_ITEM(ekw, i);              /* borrowed */
            PyObject *k = PyObject_GetAttrString(kw, "arg");     /* new */
            PyObject *kv = PyObject_GetAttrString(kw, "value");  /* new */
            PyObject *v = kv ? PyObject_CallOneArg(lit, kv) : NULL; /* new */
            bad = k == NULL || v == NULL || k == Py_None || PyDict_SetItem(kwargs, k, v) < 0;
            Py_XDECREF(k);
            Py_XDECREF(kv);
            Py_XDECREF(v);
        }
        Py_XDECREF(lit);
        Py_XDECREF(eargs);
        Py_XDECREF(ekw);
        if (bad) {
            if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_ValueError)) {
                Py_DECREF(objstr);
                goto done;
            }
            rc = cg__app_error(msg_out, "Failed to parse arguments as literal values: %R",
                               objstr);
            Py_DECREF(objstr);
            goto done;
        }
    } else {
        rc = cg__app_error(msg_out, "Failed to parse %R as an attribute name or function call.",
                           objstr);
        Py_DECREF(objstr);
        goto done;
    }
    if (name == NULL) {
        Py_DECREF(objstr);
        goto done;
    }

    app = PyObject_GetAttr(mod, name);
    if (app == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            Py_DECREF(objstr);
            goto done;
        }
        PyObject *modstr = PyUnicode_FromString(module); /* new */
        rc = cg__app_error(msg_out, "Failed to find attribute %R in %R.", name, modstr);
        Py_XDECREF(modstr);
        Py_DECREF(objstr);
        goto done;
    }

    if (args != NULL) {
        PyObject *targs = PyList_AsTuple(args); /* new */
        PyObject *made = targs ? PyObject_Call(app, targs, kwargs) : NULL; /* new */
        Py_XDECREF(targs);
        if (made == NULL) {
            if (PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyObject *t, *v, *tb;
                PyErr_Fetch(&t, &v, &tb);
                if (cg__called_with_wrong_args(tb)) {
                    PyErr_NormalizeException(&t, &v, &tb);
                    PyObject *s = v ? PyObject_Str(v) : NULL; /* new */
                    rc = cg__app_error(msg_out, "TypeError: %U", s ? s : objstr);
                    Py_XDECREF(s);
                    Py_XDECREF(t);
                    Py_XDECREF(v);
                    Py_XDECREF(tb);
                    Py_DECREF(objstr);
                    goto done;
                }
                PyErr_Restore(t, v, tb);
            }
            Py_DECREF(objstr);
            goto done;
        }
        Py_SETREF(app, made);
    }

    if (app == Py_None) {
        rc = cg__app_error(msg_out, "Failed to find application object: %R", objstr);
    } else if (!PyCallable_Check(app)) {
        rc = cg__app_error(msg_out, "Application object must be callable.");
    } else {
        *app_out = app;
        app = NULL;
        rc = 0;
    }
    Py_DECREF(objstr);

done:
    Py_XDECREF(mod);
    Py_XDECREF(ast);
    Py_XDECREF(tree);
    Py_XDECREF(expr);
    Py_XDECREF(name_cls);
    Py_XDECREF(call_cls);
    Py_XDECREF(name);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    Py_XDECREF(app);
    free(module);
    return rc;
}

int cg_py_check_app(const cg_config_t *cfg)
{
    char err[1024];
    if (cg_py_init(cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "Error: %s\n", err);
        return 1;
    }
    PyObject *app = NULL;
    char *msg = NULL;
    int rc = cg_py_load_cfg_app(cfg, &app, &msg);
    if (rc == 0) {
        Py_DECREF(app);
        return 0;
    }
    fprintf(stderr, "Error while loading the application:\n\n");
    if (rc == CG_PY_APP_IMPORT_ERROR) {
        fprintf(stderr, "%s\n", msg);
        free(msg);
    } else {
        char *tb = cg_py_format_exception();
        fprintf(stderr, "%s", tb ? tb : "");
        free(tb);
    }
    fflush(stderr);
    return 1;
}

/* The application --preload imported in the master. Process-wide like the
 * interpreter that owns it: forked workers find it here. */
static PyObject *cg__preloaded;

PyObject *cg_py_preloaded_app(void)
{
    return cg__preloaded;
}

int cg_py_preload(const cg_config_t *cfg, cg_log_t *log)
{
    char err[1024];
    if (cg__preloaded != NULL)
        return 0;
    if (cg_py_init(cfg, err, sizeof(err)) < 0) {
        if (log != NULL)
            cg_log_error(log, "Unhandled exception in main loop\n%s", err);
        else
            fprintf(stderr, "Error: %s\n", err);
        return 1;
    }
    PyObject *app = NULL;
    char *msg = NULL;
    int rc = cg_py_load_cfg_app(cfg, &app, &msg);
    if (rc == 0) {
        cg__preloaded = app;
        return 0;
    }
    if (rc == CG_PY_APP_IMPORT_ERROR) {
        /* Gunicorn's master does not catch AppImportError: Python reports
         * it as an uncaught exception; its last line is what we can give */
        if (log != NULL)
            cg_log_error(log, "Unhandled exception in main loop\n"
                              "gunicorn.errors.AppImportError: %s", msg);
        else
            fprintf(stderr, "gunicorn.errors.AppImportError: %s\n", msg);
        free(msg);
    } else if (log != NULL) {
        cg_py_log_exception(log, CG_LOG_ERROR, "Unhandled exception in main loop");
    } else {
        cg_py_print_startup_error();
    }
    return 1;
}

/*
 * Gunicorn's load_wsgi() under --reload: a SyntaxError in the app does not
 * kill the worker; it is logged, its file watched, and every request gets a
 * 500 with the traceback until the file is fixed. Takes the pending
 * exception; returns 0 with *app set, or -1 (exception set).
 */
int cg_py_load_syntax_error(cg_log_t *log, cg_py_reloader_t *reloader, PyObject **app)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    PyObject *str = v ? PyObject_Str(v) : NULL;                      /* new */
    PyObject *fname = v ? PyObject_GetAttrString(v, "filename") : NULL; /* new */
    PyErr_Clear();
    if (fname != NULL && PyUnicode_Check(fname) && reloader != NULL) {
        const char *f = PyUnicode_AsUTF8(fname);
        if (f != NULL)
            cg_py_reloader_add_file(reloader, f);
        PyErr_Clear();
    }
    const char *head = str ? PyUnicode_AsUTF8(str) : NULL;
    char *prefix = cg_xstrdup(head ? head : "SyntaxError");
    PyErr_Clear();
    Py_XDECREF(str);
    Py_XDECREF(fname);
    PyErr_Restore(t, v, tb);
    char *text = cg_py_format_exception(); /* clears it */
    size_t len = strlen(text);
    while (len > 0 && text[len - 1] == '\n')
        len--;
    cg_log_error(log, "%s\n%.*s", prefix, (int)len, text);
    *app = cg_py_fail_app(text);
    free(prefix);
    free(text);
    return *app != NULL ? 0 : -1;
}
