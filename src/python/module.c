/*
 * module.c - cgunicorn._core, the C side of the `cgunicorn` Python package:
 *   main(argv, executable, orig_argv)  the `cgunicorn` command inside a
 *                    running Python (console script, python -m cgunicorn)
 *   Config           the settings table as a Python type (Gunicorn's Config
 *                    is a subclass of it in cgunicorn/config.py): set(name,
 *                    value[, source]) runs the same validators as the
 *                    command line; get, is_set, dump,
 *                    load_command_line(argv)
 *   run(app, cfg, argv, executable, orig_argv)  the arbiter for an
 *                    application object of the programmatic API
 *   settings()       the table's rows, for Config.settings
 *   load_app(uri)    APP_MODULE imported as the command line imports it
 * The extension module (src/python/ext.c) returns this module from its
 * PyInit; the standalone executable puts it in sys.modules itself, so a
 * configuration file importing cgunicorn (or the gunicorn shims) works there
 * too. Calls that run the server need a hosted interpreter (cg_py_adopt()).
 */
#include "python.h"
#include "../workers/ggevent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cg__config_obj {
    PyObject_HEAD
    cg_config_t cfg;
    char **argv; /* owned copy that cfg.argv borrows (load_command_line) */
    int argc;
} cg__config_obj_t;

/* ---- argv lists ------------------------------------------------------ */

static void cg__argv_free(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

/* A list of str (or bytes) as a NULL-terminated, owned char ** in the
 * file-system encoding, as the kernel had them. NULL with an exception set. */
static char **cg__argv_from(PyObject *seq, int *argc)
{
    PyObject *fast = PySequence_Fast(seq, "argv must be a sequence of str"); /* new */
    if (fast == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    char **v = cg_xcalloc((size_t)n + 1, sizeof(*v));
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *b = NULL; /* new */
        if (!PyUnicode_FSConverter(PySequence_Fast_GET_ITEM(fast, i), &b)) {
            Py_DECREF(fast);
            cg__argv_free(v);
            return NULL;
        }
        v[i] = cg_xstrdup(PyBytes_AS_STRING(b));
        Py_DECREF(b);
    }
    Py_DECREF(fast);
    if (argc != NULL)
        *argc = (int)n;
    return v;
}

/* ---- Config ------------------------------------------------------------ */

static void cg__config_owners(cg_config_t *cfg)
{
    cfg->callable_release = cg_py_callable_release;
    cfg->callable_retain = cg_py_callable_retain;
}

static PyObject *cg__config_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    char err[512];
    cg__config_obj_t *self = (cg__config_obj_t *)type->tp_alloc(type, 0); /* new */
    if (self == NULL)
        return NULL;
    /* tp_alloc zeroed it: a free() of this state is safe from here on */
    if (cg_config_init(&self->cfg, err, sizeof(err)) < 0) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_ValueError, err);
        return NULL;
    }
    cg__config_owners(&self->cfg);
    return (PyObject *)self;
}

static void cg__config_dealloc(PyObject *op)
{
    cg__config_obj_t *self = (cg__config_obj_t *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    cg_config_free(&self->cfg);
    cg__argv_free(self->argv);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static int cg__config_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    return 0;
}

static const cg_setting_desc_t *cg__desc(PyObject *name)
{
    const char *s = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
    const cg_setting_desc_t *d = s ? cg_config_find(s) : NULL;
    if (d == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_AttributeError, "No configuration setting for: %S", name);
    }
    return d;
}

static PyObject *cg__config_set(PyObject *op, PyObject *args)
{
    cg__config_obj_t *self = (cg__config_obj_t *)op;
    PyObject *name, *value;
    char err[1024] = "";
    int src = CG_SRC_CLI;
    if (!PyArg_ParseTuple(args, "UO|i:set", &name, &value, &src))
        return NULL;
    const cg_setting_desc_t *d = cg__desc(name);
    if (d == NULL)
        return NULL;
    if (src < CG_SRC_DEFAULT || src > CG_SRC_CLI) {
        PyErr_Format(PyExc_ValueError, "source must be %d to %d", CG_SRC_DEFAULT, CG_SRC_CLI);
        return NULL;
    }
    PyObject *mod = cg_py_helper_module(); /* new */
    if (mod == NULL)
        return NULL;
    /* By default the API's set() outranks every source: what the caller
     * sets last wins. A lower source (an Application's init() values,
     * SOURCE_APP) yields to the config file and the command line. */
    int rc = cg_py_config_apply(&self->cfg, mod, d, value, (cg_config_source_t)src, err,
                                sizeof(err));
    Py_DECREF(mod);
    if (rc < 0) {
        if (!PyErr_Occurred())
            /* which refusals Gunicorn raises as TypeError or ConfigError
             * is cgunicorn.config's table (_refusal) */
            PyErr_SetString(rc == -ENOTSUP ? PyExc_NotImplementedError : PyExc_ValueError,
                            err[0] ? err : "invalid value");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *cg__config_get(PyObject *op, PyObject *name)
{
    cg__config_obj_t *self = (cg__config_obj_t *)op;
    const cg_setting_desc_t *d = cg__desc(name);
    if (d == NULL)
        return NULL;
    PyObject *mod = cg_py_helper_module(); /* new */
    if (mod == NULL)
        return NULL;
    PyObject *v = cg_py_setting_value(&self->cfg, d, mod); /* new */
    Py_DECREF(mod);
    return v;
}

/* is_set(name) -> bool: set by anything but the defaults */
static PyObject *cg__config_is_set(PyObject *op, PyObject *name)
{
    cg__config_obj_t *self = (cg__config_obj_t *)op;
    const cg_setting_desc_t *d = cg__desc(name);
    if (d == NULL)
        return NULL;
    return PyBool_FromLong(self->cfg.source[d->id] != CG_SRC_DEFAULT);
}

/* dump() -> str: what --print-config prints (Gunicorn's str(cfg)); not
 * named print_config, which is a setting */
static PyObject *cg__config_print(PyObject *op, PyObject *unused)
{
    cg__config_obj_t *self = (cg__config_obj_t *)op;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return PyErr_SetFromErrno(PyExc_OSError);
    cg_config_print(&self->cfg, f);
    if (fclose(f) != 0) {
        free(buf);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    while (len > 0 && buf[len - 1] == '\n')
        len--;
    PyObject *s = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)len, "replace"); /* new */
    free(buf);
    return s;
}

/* load_command_line(argv): Gunicorn's Application.load_config(): defaults,
 * the app's default_proc_name, the config file, GUNICORN_CMD_ARGS, argv, in
 * that order of precedence, then chdir. Replaces every value. Errors,
 * --help and --version print as the command line does and raise
 * SystemExit with its status. */
static PyObject *cg__config_load_command_line(PyObject *op, PyObject *seq)
{
    cg__config_obj_t *self = (cg__config_obj_t *)op;
    int argc = 0;
    char **argv = cg__argv_from(seq, &argc);
    if (argv == NULL)
        return NULL;
    cg_config_free(&self->cfg);
    cg__argv_free(self->argv);
    self->argv = argv;
    self->argc = argc;
    int st = cg_config_load(&self->cfg, argc, argv, cg_py_config_loader, NULL);
    cg__config_owners(&self->cfg);
    cg_py_flush_stdio();
    fflush(NULL);
    if (st != 0) {
        PyObject *code = PyLong_FromLong(st < 0 ? 0 : st); /* new */
        if (code != NULL) {
            PyErr_SetObject(PyExc_SystemExit, code);
            Py_DECREF(code);
        }
        return NULL;
    }
    return PyUnicode_DecodeFSDefault(self->cfg.app_uri ? self->cfg.app_uri : "");
}

static PyMethodDef cg__config_methods[] = {
    {"set", cg__config_set, METH_VARARGS, "set(name, value): validate and store a setting"},
    {"get", cg__config_get, METH_O, "get(name): a setting's value"},
    {"is_set", cg__config_is_set, METH_O, "is_set(name): set by anything but its default"},
    {"dump", cg__config_print, METH_NOARGS, "dump(): every setting as --print-config shows it"},
    {"load_command_line", cg__config_load_command_line, METH_O,
     "load_command_line(argv): every source of settings as the cgunicorn command reads them; "
     "returns APP_MODULE"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot cg__config_slots[] = {
    {Py_tp_new, cg__config_new},
    {Py_tp_dealloc, cg__config_dealloc},
    {Py_tp_traverse, cg__config_traverse},
    {Py_tp_methods, cg__config_methods},
    {Py_tp_doc, "The settings table of cgunicorn (every Gunicorn setting)."},
    {0, NULL},
};

static PyType_Spec cg__config_spec = {
    .name = "cgunicorn._core.Config",
    .basicsize = sizeof(cg__config_obj_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = cg__config_slots,
};

/* The _core.Config of a cgunicorn._core module in sys.modules (new), or
 * NULL with an exception set. */
static PyObject *cg__config_type(void)
{
    PyObject *core = PyImport_ImportModule("cgunicorn._core"); /* new */
    if (core == NULL)
        return NULL;
    PyObject *t = PyObject_GetAttrString(core, "Config"); /* new */
    Py_DECREF(core);
    return t;
}

/* obj as a Config, borrowed, or NULL with TypeError set. */
static cg__config_obj_t *cg__as_config(PyObject *obj)
{
    PyObject *t = cg__config_type(); /* new */
    int ok = t != NULL ? PyObject_IsInstance(obj, t) : -1;
    Py_XDECREF(t);
    if (ok == 1)
        return (cg__config_obj_t *)obj;
    if (ok == 0)
        PyErr_Format(PyExc_TypeError, "cfg must be a cgunicorn Config, not %s",
                     Py_TYPE(obj)->tp_name);
    return NULL;
}

PyObject *cg_py_config_object(const cg_config_t *cfg)
{
    PyObject *mod = PyImport_ImportModule("cgunicorn.config"); /* new */
    PyObject *obj = mod != NULL ? PyObject_CallMethod(mod, "Config", NULL) : NULL; /* new */
    Py_XDECREF(mod);
    if (obj == NULL)
        return NULL;
    cg__config_obj_t *co = cg__as_config(obj); /* borrowed from obj */
    if (co == NULL) {
        Py_DECREF(obj);
        return NULL;
    }
    /* the arguments HUP re-reads stay the caller's (borrowed in the copy,
     * as in every cg_config_t copy) */
    cg_config_free(&co->cfg);
    cg_config_copy(&co->cfg, cfg);
    cg__config_owners(&co->cfg);
    return obj;
}

int cg_py_api_config_reload(void *ctx, cg_config_t *fresh, char *err, size_t errlen)
{
    cg_py_hooks_t *h = ctx;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *app = h->cfg->app_object; /* borrowed */
    PyObject *r = PyObject_CallMethod(app, "reload", NULL); /* new */
    PyObject *c = r != NULL ? PyObject_GetAttrString(app, "cfg") : NULL; /* new */
    cg__config_obj_t *co = c != NULL ? cg__as_config(c) : NULL; /* borrowed from c */
    int rc = -1;
    if (co != NULL) {
        cg_config_copy(fresh, &co->cfg);
        fresh->app_object = Py_NewRef(app);
        rc = 0;
    } else {
        /* the whole traceback goes to the log; err (one line of it) is
         * what the arbiter's refusal carries */
        cg_py_log_exception(h->log, CG_LOG_ERROR, "Exception in the application's reload()");
        snprintf(err, errlen, "the application's reload() failed");
    }
    Py_XDECREF(c);
    Py_XDECREF(r);
    PyGILState_Release(g);
    return rc;
}

/* ---- running the server ----------------------------------------------- */

static int cg__need_hosted(void)
{
    if (cg_py_hosted())
        return 0;
    PyErr_SetString(PyExc_RuntimeError,
                    "cgunicorn: the server cannot be started from inside a running cgunicorn "
                    "(a configuration file or an app); run it from Python with the cgunicorn "
                    "package installed");
    return -1;
}

/* A server call's command line (argv) and what USR2 executes
 * (sys.executable with sys.orig_argv); all owned. */
typedef struct cg__cmdline {
    char **argv;
    int argc;
    PyObject *exec_path; /* bytes (new), or NULL */
    char **exec_argv;
} cg__cmdline_t;

static void cg__cmdline_clear(cg__cmdline_t *c)
{
    cg__argv_free(c->argv);
    cg__argv_free(c->exec_argv);
    Py_CLEAR(c->exec_path);
    memset(c, 0, sizeof(*c));
}

static int cg__cmdline_parse(PyObject *seq, PyObject *executable, PyObject *orig_argv,
                             cg__cmdline_t *c)
{
    memset(c, 0, sizeof(*c));
    if ((c->argv = cg__argv_from(seq, &c->argc)) == NULL ||
        (executable != Py_None && !PyUnicode_FSConverter(executable, &c->exec_path)) ||
        (orig_argv != Py_None && (c->exec_argv = cg__argv_from(orig_argv, NULL)) == NULL)) {
        cg__cmdline_clear(c);
        return -1;
    }
    return 0;
}

static const char *cg__cmdline_exec_path(const cg__cmdline_t *c)
{
    return c->exec_path != NULL && PyBytes_GET_SIZE(c->exec_path) > 0
               ? PyBytes_AS_STRING(c->exec_path)
               : NULL;
}

/* The end of a server call: output flushed, cfg and c released. */
static PyObject *cg__server_done(int status, cg_config_t *cfg, cg__cmdline_t *c)
{
    cg_py_flush_stdio();
    cg_config_free(cfg);
    fflush(NULL);
    cg__cmdline_clear(c);
    return PyLong_FromLong(status);
}

/* main(argv, executable, orig_argv) -> exit status */
static PyObject *cg__core_main(PyObject *mod, PyObject *args)
{
    PyObject *seq, *executable, *orig_argv;
    cg__cmdline_t c;
    cg_config_t cfg;
    if (!PyArg_ParseTuple(args, "OOO:main", &seq, &executable, &orig_argv) ||
        cg__need_hosted() < 0 || cg__cmdline_parse(seq, executable, orig_argv, &c) < 0)
        return NULL;
    int status = cg_py_front_main(c.argc, c.argv, cg__cmdline_exec_path(&c), c.exec_argv, &cfg);
    return cg__server_done(status, &cfg, &c);
}

/* run(app, cfg, argv, executable, orig_argv) -> exit status. app: the
 * application object whose wsgi() gives the WSGI callable, or None to
 * import cfg's APP_MODULE in C as the command line does. */
static PyObject *cg__core_run(PyObject *mod, PyObject *args)
{
    PyObject *app, *cobj, *seq, *executable, *orig_argv;
    cg__cmdline_t c;
    if (!PyArg_ParseTuple(args, "OOOOO:run", &app, &cobj, &seq, &executable, &orig_argv) ||
        cg__need_hosted() < 0)
        return NULL;
    cg__config_obj_t *co = cg__as_config(cobj); /* borrowed */
    if (co == NULL)
        return NULL;
    if (app == Py_None && co->cfg.app_uri == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "No application module specified.");
        return NULL;
    }
    if (cg__cmdline_parse(seq, executable, orig_argv, &c) < 0)
        return NULL;
    cg_config_t cfg;
    cg_config_copy(&cfg, &co->cfg);
    if (app != Py_None)
        cfg.app_object = Py_NewRef(app);
    /* what HUP re-reads and USR2 executes (borrowed from c) */
    cfg.argc = c.argc;
    cfg.argv = c.argv;
    cfg.exec_path = cg__cmdline_exec_path(&c);
    cfg.exec_argv = c.exec_argv;
    cfg.hosted = true;
    return cg__server_done(cg_py_front_serve(&cfg), &cfg, &c);
}

/* load_app(uri) -> (app, None), or (None, message) when Gunicorn's
 * util.import_app would raise AppImportError (cgunicorn.util raises it from
 * the message). Any other failure -- the module's ImportError, an exception
 * raised by the module or by the factory -- propagates as it is. */
static PyObject *cg__core_load_app(PyObject *mod, PyObject *uri)
{
    PyObject *b = NULL; /* new */
    if (!PyUnicode_FSConverter(uri, &b))
        return NULL;
    PyObject *app = NULL; /* new */
    char *msg = NULL;
    int rc = cg_py_load_app(PyBytes_AS_STRING(b), &app, &msg);
    Py_DECREF(b);
    if (rc == 0)
        return Py_BuildValue("(NO)", app, Py_None); /* steals app */
    if (rc == CG_PY_APP_IMPORT_ERROR) {
        PyObject *r = Py_BuildValue("(Os)", Py_None, msg); /* new */
        free(msg);
        return r;
    }
    return NULL;
}

static const char *const cg__type_names[] = {
    [CG_T_INT] = "int",   [CG_T_OCTAL] = "octal", [CG_T_BOOL] = "bool",
    [CG_T_STR] = "str",   [CG_T_LIST] = "list",   [CG_T_CSV] = "csv",
    [CG_T_DICT] = "dict", [CG_T_CALLABLE] = "callable",
};

/* settings() -> [(name, section, cli flags or None, meta or None,
 *                 default text or None, type name, help), ...] in order */
static PyObject *cg__core_settings(PyObject *mod, PyObject *unused)
{
    PyObject *out = PyList_New(CG_SETTING__COUNT); /* new */
    for (size_t i = 0; out != NULL && i < CG_SETTING__COUNT; i++) {
        const cg_setting_desc_t *d = &cg_config_settings[i];
        PyObject *row = Py_BuildValue("(sszzzss)", d->name, d->section, d->flags, d->meta, d->def,
                                      cg__type_names[d->type], d->help ? d->help : ""); /* new */
        if (row == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, (Py_ssize_t)i, row); /* steals row */
    }
    return out;
}

static PyMethodDef cg__core_methods[] = {
    {"main", cg__core_main, METH_VARARGS,
     "main(argv, executable, orig_argv): the cgunicorn command; returns its exit status"},
    {"run", cg__core_run, METH_VARARGS,
     "run(app, cfg, argv, executable, orig_argv): serve an application object (or cfg's "
     "APP_MODULE when app is None) until the arbiter stops; returns the exit status"},
    {"settings", cg__core_settings, METH_NOARGS, "settings(): the settings table's rows"},
    {"load_app", cg__core_load_app, METH_O,
     "load_app(uri): import APP_MODULE as the command line does; (app, None), or (None, "
     "message) for what Gunicorn raises as AppImportError"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cg__core_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "cgunicorn._core",
    .m_doc = "cgunicorn's C core: the server, its settings table and its command line.",
    .m_size = 0,
    .m_methods = cg__core_methods,
};

PyObject *cg_py_core_module_new(void)
{
    PyObject *m = PyModule_Create(&cg__core_def); /* new */
    if (m == NULL)
        return NULL;
    if (PyModule_AddFunctions(m, cg_py_worker_methods) < 0 ||
        PyModule_AddFunctions(m, cg_py_dirty_methods) < 0 || cg_worker_gevent_add_type(m) < 0)
        goto fail;
    PyObject *t = PyType_FromSpec(&cg__config_spec); /* new */
    if (t == NULL)
        goto fail;
    if (PyModule_AddObject(m, "Config", t) < 0) { /* steals t only on success */
        Py_DECREF(t);
        goto fail;
    }
    if (PyModule_AddIntConstant(m, "SOURCE_DEFAULT", CG_SRC_DEFAULT) < 0 ||
        PyModule_AddIntConstant(m, "SOURCE_APP", CG_SRC_APP) < 0 ||
        PyModule_AddIntConstant(m, "SOURCE_FILE", CG_SRC_FILE) < 0 ||
        PyModule_AddIntConstant(m, "SOURCE_ENV", CG_SRC_ENV) < 0 ||
        PyModule_AddIntConstant(m, "SOURCE_CLI", CG_SRC_CLI) < 0 ||
        PyModule_AddStringConstant(m, "__version__", CG_VERSION) < 0 ||
        PyModule_AddStringConstant(m, "SERVER_SOFTWARE", CG_SERVER_SOFTWARE) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
