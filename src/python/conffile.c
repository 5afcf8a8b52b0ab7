/*
 * conffile.c - Gunicorn configuration files (-c PATH, -c file:PATH,
 * -c python:MODULE, ./gunicorn.conf.py), executed by the embedded
 * interpreter in the master. The interpreter stays up afterwards: hooks
 * defined in the file run in the master and in the workers forked from it.
 */
#include "python.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cg_py_callable_release(void *obj)
{
    /* A forked worker may free its config after finalising the
     * interpreter; the object is gone with it then. */
    if (obj == NULL || !Py_IsInitialized())
        return;
    /* the master frees a replaced configuration (HUP) without the GIL */
    PyGILState_STATE g = PyGILState_Ensure();
    Py_DECREF((PyObject *)obj);
    PyGILState_Release(g);
}

void cg_py_callable_retain(void *obj)
{
    PyGILState_STATE g = PyGILState_Ensure();
    Py_INCREF((PyObject *)obj);
    PyGILState_Release(g);
}

/* str(obj) into err (for Gunicorn's "%s" of a value or an exception). */
static void cg__str_into(PyObject *obj, char *err, size_t errlen)
{
    PyObject *s = PyObject_Str(obj); /* new */
    const char *u = s ? PyUnicode_AsUTF8(s) : NULL;
    snprintf(err, errlen, "%s", u ? u : "<unprintable value>");
    Py_XDECREF(s);
    PyErr_Clear();
}

/* The current exception's str() into err; clears it. */
static void cg__exc_into(char *err, size_t errlen)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL)
        cg__str_into(value, err, errlen);
    else
        snprintf(err, errlen, "unknown error");
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

static const char *cg__utf8(PyObject *s)
{
    const char *u = PyUnicode_AsUTF8(s);
    if (u == NULL)
        PyErr_Clear();
    return u;
}

/* A hook: arity-checked (Gunicorn's validate_callable / post_request). */
static int cg__set_hook(cg_config_t *cfg, PyObject *mod, const cg_setting_desc_t *d,
                        PyObject *v, cg_config_source_t src, char *err, size_t errlen)
{
    int want = cg_config_callable_arity(d);
    PyObject *fn = want == 0 ? PyObject_CallMethod(mod, "validate_post_request", "O", v)
                             : PyObject_CallMethod(mod, "check_callable", "Oi", v, want);
    if (fn == NULL) {
        cg__exc_into(err, errlen);
        return -EINVAL;
    }
    PyObject *qn = PyObject_GetAttrString(fn, "__qualname__"); /* new */
    const char *q = qn && PyUnicode_Check(qn) ? cg__utf8(qn) : NULL;
    PyErr_Clear();
    char *qual = cg_xstrdup(q ? q : Py_TYPE(fn)->tp_name);
    Py_XDECREF(qn);
    int rc = cg_config_set_callable(cfg, d->name, fn, qual, src, err, errlen);
    free(qual);
    if (rc < 0)
        Py_DECREF(fn);
    return rc;
}

/* cgunicorn.config's name for a worker_class/logger_class class (new
 * reference: a str, or the object itself when it names nothing we run), or
 * NULL; never leaves an exception set. */
static PyObject *cg__class_as_name(const char *setting, PyObject *v)
{
    PyObject *mod = PyImport_ImportModule("cgunicorn.config"); /* new */
    PyObject *r = mod ? PyObject_CallMethod(mod, "_python_object_name", "sO", setting, v) : NULL;
    Py_XDECREF(mod);
    PyErr_Clear();
    return r;
}

/* Collect str items of a list/tuple; a non-str item is Gunicorn's
 * validate_string error. Returns the count or -1 (err set). */
static Py_ssize_t cg__str_items(PyObject *seq, const char ***out, char *err, size_t errlen)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    const char **items = cg_xcalloc((size_t)n + 1, sizeof(*items));
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, i); /* borrowed */
        if (!PyUnicode_Check(it) || (items[i] = cg__utf8(it)) == NULL) {
            char s[256];
            cg__str_into(it, s, sizeof(s));
            snprintf(err, errlen, "Not a string: %s", s);
            free(items);
            return -1;
        }
    }
    *out = items;
    return n;
}

static int cg__set_dict(cg_config_t *cfg, const cg_setting_desc_t *d, PyObject *v,
                        cg_config_source_t src, char *err, size_t errlen)
{
    Py_ssize_t n = PyDict_Size(v), pos = 0, i = 0;
    PyObject *k, *val;
    const char **kv = cg_xcalloc(2 * (size_t)n + 1, sizeof(*kv));
    while (PyDict_Next(v, &pos, &k, &val)) {
        if (!PyUnicode_Check(k) || !PyUnicode_Check(val) ||
            (kv[i] = cg__utf8(k)) == NULL || (kv[i + 1] = cg__utf8(val)) == NULL) {
            free(kv);
            /* Gunicorn keeps such a dict and never matches what is not a
             * string; a setting that can never apply is refused instead */
            snprintf(err, errlen, "%s: every key and value must be a string", d->name);
            return -EINVAL;
        }
        i += 2;
    }
    int rc = cg_config_set_dict(cfg, d->name, kv, (size_t)n, src, err, errlen);
    free(kv);
    return rc;
}

int cg_py_config_apply(cg_config_t *cfg, PyObject *mod, const cg_setting_desc_t *d, PyObject *v,
                       cg_config_source_t src, char *err, size_t errlen)
{
    const char *name = d->name;
    if (d->type == CG_T_CALLABLE)
        return cg__set_hook(cfg, mod, d, v, src, err, errlen);
    if (v == Py_None)
        return cg_config_set_string(cfg, name, NULL, src, err, errlen);
    if (PyBool_Check(v))
        return cg_config_set_bool(cfg, name, v == Py_True, src, err, errlen);
    if (PyLong_Check(v)) {
        int overflow;
        long n = PyLong_AsLongAndOverflow(v, &overflow);
        if (overflow != 0 || (n == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            snprintf(err, errlen, "%s is out of range", name);
            return -EINVAL;
        }
        return cg_config_set_int(cfg, name, n, src, err, errlen);
    }
    if (PyUnicode_Check(v)) {
        const char *s = cg__utf8(v);
        if (s == NULL) {
            snprintf(err, errlen, "Not a valid string for %s", name);
            return -EINVAL;
        }
        return cg_config_set_string(cfg, name, s, src, err, errlen);
    }
    if (d->type == CG_T_STR && PyCallable_Check(v) &&
        (strcmp(name, "worker_class") == 0 || strcmp(name, "logger_class") == 0)) {
        /* Gunicorn takes a class (or a function returning one) here. The
         * classes naming what the server runs (gunicorn.glogging.Logger,
         * the sync/gthread workers, shims or ours) become their names, as
         * Config.set() of the API does, and so does any other class (kept
         * by cgunicorn.config under that name for src/python/loggerclass.c
         * and pyworker.c). */
        PyObject *named = cg__class_as_name(name, v); /* new */
        const char *s = named != NULL && PyUnicode_Check(named) ? cg__utf8(named) : NULL;
        int rc = -ENOTSUP;
        if (s != NULL)
            rc = cg_config_set_string(cfg, name, s, src, err, errlen);
        else
            snprintf(err, errlen, "%s given as a Python object is not supported yet by cgunicorn",
                     name);
        Py_XDECREF(named);
        return rc;
    }
    if ((PyList_Check(v) || PyTuple_Check(v)) && d->type == CG_T_LIST) {
        PyObject *seq = PySequence_Fast(v, "not a sequence"); /* new */
        const char **items = NULL;
        Py_ssize_t n = seq ? cg__str_items(seq, &items, err, errlen) : -1;
        int rc = -EINVAL;
        if (n >= 0) {
            rc = cg_config_set_list(cfg, name, items, (size_t)n, src, err, errlen);
            free(items);
        }
        Py_XDECREF(seq);
        return rc;
    }
    if (PyDict_Check(v) && d->id == CG_SETTING_logconfig_dict)
        return cg_py_logging_set_dict(cfg, v, err, errlen); /* nested, kept as the object */
    if (PyDict_Check(v) && d->type == CG_T_DICT)
        return cg__set_dict(cfg, d, v, src, err, errlen);
    /* Any other kind (float, bytes, a list or dict where the setting takes
     * none, ...): the validator words its refusal around str(v) and the type
     * name, as Gunicorn's validators do with the object itself. */
    char s[512];
    cg__str_into(v, s, sizeof(s));
    return cg_config_set_other(cfg, name, Py_TYPE(v)->tp_name, s, src, err, errlen);
}

static int cg__load(cg_config_t *cfg, const char *location, char *err, size_t errlen)
{
    PyObject *mod = NULL, *ns = NULL;
    int rc = -EINVAL;

    if (cg_py_init(cfg, err, errlen) < 0)
        return -EINVAL;
    cfg->callable_release = cg_py_callable_release;
    cfg->callable_retain = cg_py_callable_retain;
    if ((mod = cg_py_helper_module()) == NULL) {
        cg__exc_into(err, errlen);
        return -EINVAL;
    }
    if (strncmp(location, "python:", 7) == 0) {
        ns = PyObject_CallMethod(mod, "load_module", "s", location + 7);
        if (ns == NULL) {
            /* Gunicorn lets the import error reach "Error: %s". */
            cg__exc_into(err, errlen);
            goto out;
        }
    } else {
        const char *file = strncmp(location, "file:", 5) == 0 ? location + 5 : location;
        ns = PyObject_CallMethod(mod, "load_file", "s", file);
        if (ns == NULL) {
            cg__exc_into(err, errlen);
            goto out;
        }
        if (ns == Py_None) {
            err[0] = '\0'; /* "Failed to read config file" was printed */
            goto out;
        }
    }

    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(ns, &pos, &k, &v)) {
        const char *name = PyUnicode_Check(k) ? cg__utf8(k) : NULL;
        const cg_setting_desc_t *d = name ? cg_config_find(name) : NULL;
        if (d == NULL)
            continue; /* not a setting: the file's own business */
        err[0] = '\0';
        if (cg_py_config_apply(cfg, mod, d, v, CG_SRC_FILE, err, errlen) < 0) {
            char s[512];
            cg__str_into(v, s, sizeof(s));
            fprintf(stderr, "Invalid value for %s: %s\n\n", name, s);
            goto out;
        }
    }
    rc = 0;
out:
    Py_XDECREF(ns);
    Py_XDECREF(mod);
    return rc;
}

int cg_py_config_loader(cg_config_t *cfg, const char *location, void *ctx, char *err,
                        size_t errlen)
{
    (void)ctx;
    if (!Py_IsInitialized())
        return cg__load(cfg, location, err, errlen); /* starts it: the GIL stays */
    /* HUP: the master idles without the GIL */
    PyGILState_STATE g = PyGILState_Ensure();
    int rc = cg__load(cfg, location, err, errlen);
    PyGILState_Release(g);
    return rc;
}
