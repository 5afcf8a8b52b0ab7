/*
 * objects.c - the Python objects server hooks receive (server, worker, req,
 * resp, cfg, log) and the config-file helpers that are easier to say in
 * Python (executing a file the way Gunicorn does, arity checks).
 *
 * They live in one helper module, "_cgunicorn", registered in sys.modules.
 * Its classes are small Python classes whose live values (server.pid,
 * num_workers, WORKERS, cfg.<setting>, log output) come from the C functions
 * below through the module state, which points to the cg_py_hooks_t once
 * the log exists. Worker/Request/Response objects are snapshots: a hook may
 * keep them, and nothing in them points into C memory that can go away.
 */
#include "python.h"

#include "../arbiter/arbiter.h"
#include "../metrics/statsd.h"
#include "../workers/conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CG__HELPER_NAME "_cgunicorn"

typedef struct cg__helper_state {
    cg_py_hooks_t *h;
} cg__helper_state_t;

static cg_py_hooks_t *cg__hooks_of(PyObject *mod)
{
    cg__helper_state_t *st = PyModule_GetState(mod);
    return st ? st->h : NULL;
}

/* _log(level, text): one record in the error log (stderr before it exists). */
static PyObject *cg__py_log(PyObject *mod, PyObject *args)
{
    int level;
    const char *text;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "is#", &level, &text, &len))
        return NULL;
    cg_py_hooks_t *h = cg__hooks_of(mod);
    /* uncounted: Log counts by method, as Gunicorn's Statsd logger (_count) */
    if (h != NULL && h->log != NULL)
        cg_log_text_counted(h->log, (cg_log_level_t)level, NULL, text, (size_t)len);
    else
        fprintf(stderr, "%.*s\n", (int)len, text);
    Py_RETURN_NONE;
}

/* _count(name): increment one of the gunicorn.log.* statsd counters. */
static PyObject *cg__py_count(PyObject *mod, PyObject *arg)
{
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL)
        return NULL;
    cg_py_hooks_t *h = cg__hooks_of(mod);
    if (h != NULL && h->log != NULL)
        cg_statsd_count(h->log->statsd, name);
    Py_RETURN_NONE;
}

/* str.format's "{}" of one of extra's values, as ASCII bytes for statsd;
 * NULL with an exception set on failure. New reference. */
static PyObject *cg__metric_text(PyObject *v)
{
    PyObject *spec = PyUnicode_FromStringAndSize("", 0); /* new */
    PyObject *t = spec ? PyObject_Format(v, spec) : NULL; /* new */
    Py_XDECREF(spec);
    return t;
}

/*
 * _metric(extra) -> bool. Gunicorn's Statsd logger reads
 * extra={"metric": name, "value": v, "mtype": "gauge"|"counter"|
 * "histogram"|"timer"} on its debug(), info() and log() calls and sends that
 * metric. Returns False when statsd is off; else sends what extra names (if
 * it names one) and returns True: the caller then writes the record only if
 * it has a message, as Gunicorn's logger does. Raises what extra.get()
 * raises, for the caller's "Failed to log to statsd".
 */
static PyObject *cg__py_metric(PyObject *mod, PyObject *extra)
{
    cg_py_hooks_t *h = cg__hooks_of(mod);
    const cg_statsd_t *s = h != NULL && h->log != NULL ? h->log->statsd : NULL;
    if (s == NULL)
        Py_RETURN_FALSE;
    if (extra == Py_None)
        Py_RETURN_TRUE;
    static const struct {
        const char *name;
        cg_statsd_type_t type;
    } types[] = {{"gauge", CG_STATSD_GAUGE},
                 {"counter", CG_STATSD_COUNTER},
                 {"histogram", CG_STATSD_HISTOGRAM},
                 {"timer", CG_STATSD_TIMER}};
    PyObject *metric = PyObject_CallMethod(extra, "get", "sO", "metric", Py_None); /* new */
    PyObject *value = metric ? PyObject_CallMethod(extra, "get", "sO", "value", Py_None) : NULL;
    PyObject *typ = value ? PyObject_CallMethod(extra, "get", "sO", "mtype", Py_None) : NULL;
    PyObject *name_s = NULL, *value_s = NULL, *ret = NULL;
    if (typ == NULL)
        goto out;
    int has_metric = PyObject_IsTrue(metric), has_typ = PyObject_IsTrue(typ);
    if (has_metric < 0 || has_typ < 0)
        goto out;
    if (has_metric && value != Py_None && has_typ) {
        for (size_t i = 0; i < CG_ARRAY_SIZE(types); i++) {
            PyObject *want = PyUnicode_FromString(types[i].name); /* new */
            int eq = want ? PyObject_RichCompareBool(typ, want, Py_EQ) : -1;
            Py_XDECREF(want);
            if (eq < 0)
                goto out;
            if (!eq)
                continue;
            name_s = cg__metric_text(metric);
            value_s = name_s ? cg__metric_text(value) : NULL;
            if (value_s == NULL)
                goto out;
            Py_ssize_t nl, vl;
            const char *n = PyUnicode_AsUTF8AndSize(name_s, &nl);
            const char *v = n ? PyUnicode_AsUTF8AndSize(value_s, &vl) : NULL;
            if (v == NULL)
                goto out;
            cg_statsd_send(s, types[i].type, n, (size_t)nl, v, (size_t)vl);
            break;
        }
    }
    ret = Py_NewRef(Py_True);
out:
    Py_XDECREF(metric);
    Py_XDECREF(value);
    Py_XDECREF(typ);
    Py_XDECREF(name_s);
    Py_XDECREF(value_s);
    return ret;
}

/* _log_enabled(level) -> bool: spares formatting of filtered records. */
static PyObject *cg__py_log_enabled(PyObject *mod, PyObject *arg)
{
    long level = PyLong_AsLong(arg);
    if (level == -1 && PyErr_Occurred())
        return NULL;
    cg_py_hooks_t *h = cg__hooks_of(mod);
    return PyBool_FromLong(h == NULL || h->log == NULL ||
                           cg_log_enabled(h->log, (cg_log_level_t)level));
}

/* The master changes its settings (HUP) and its worker table without the
 * GIL, on its main thread: another thread of the master (one a config file
 * started) must not read them. Returns -1 with RuntimeError set for such a
 * thread. Workers keep theirs fixed, so any of their threads may read. */
static int cg__master_thread_only(const cg_py_hooks_t *h)
{
    if (h == NULL || h->in_worker || gettid() == getpid())
        return 0;
    PyErr_SetString(PyExc_RuntimeError,
                    "cgunicorn: the master's server and cfg objects can only be used from "
                    "its main thread (in hooks)");
    return -1;
}

/* _setting(name) -> cfg.<name> as Gunicorn's Config.__getattr__ answers. */
static PyObject *cg__py_setting(PyObject *mod, PyObject *arg)
{
    const char *name = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
    cg_py_hooks_t *h = cg__hooks_of(mod);
    if (cg__master_thread_only(h) < 0)
        return NULL;
    const cg_setting_desc_t *d = name ? cg_config_find(name) : NULL;
    if (d == NULL || h == NULL || h->cfg == NULL) {
        PyErr_Format(PyExc_AttributeError, "No configuration setting for: %U", arg);
        return NULL;
    }
    return cg_py_setting_value(h->cfg, d, mod);
}

static cg_arbiter_t *cg__arbiter_of(PyObject *mod)
{
    cg_py_hooks_t *h = cg__hooks_of(mod);
    if (cg__master_thread_only(h) < 0)
        return NULL;
    if (h == NULL || h->arbiter == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the arbiter is not running");
        return NULL;
    }
    return h->arbiter;
}

/* _arbiter() -> (pid, num_workers, timeout) */
static PyObject *cg__py_arbiter(PyObject *mod, PyObject *unused)
{
    (void)unused;
    cg_arbiter_t *a = cg__arbiter_of(mod);
    if (a == NULL)
        return NULL;
    return Py_BuildValue("(ili)", (int)a->pid, a->num_workers, (int)a->cfg->timeout);
}

/* One bind address as Gunicorn's util.parse_address returns it: a tuple
 * (host.lower(), port) for TCP, the path (str) for unix:, the int for fd://.
 * New reference, or NULL with RuntimeError (Gunicorn's exception there). */
static PyObject *cg__address_obj(const char *spec)
{
    cg_net_addr_t a;
    char err[512];
    if (cg_net_parse_address(spec, &a, err, sizeof(err)) < 0) {
        PyErr_SetString(PyExc_RuntimeError, err);
        return NULL;
    }
    switch (a.kind) {
    case CG_NET_UNIX:
        return PyUnicode_DecodeFSDefault(a.path); /* new */
    case CG_NET_FD:
        return PyLong_FromLong(a.fd); /* new */
    case CG_NET_TCP:
    default:
        break;
    }
    PyObject *host = PyUnicode_DecodeUTF8(a.host, (Py_ssize_t)strlen(a.host),
                                          "surrogateescape"); /* new */
    if (host == NULL)
        return NULL;
    PyObject *lower = PyObject_CallMethod(host, "lower", NULL); /* new */
    Py_DECREF(host);
    if (lower == NULL)
        return NULL;
    return Py_BuildValue("(Ni)", lower, a.port); /* steals lower */
}

/* _address() -> Gunicorn's cfg.address (and Arbiter.address): the parsed
 * bind list, re-read from the current settings (a HUP may change them). */
static PyObject *cg__py_address(PyObject *mod, PyObject *unused)
{
    (void)unused;
    cg_py_hooks_t *h = cg__hooks_of(mod);
    if (cg__master_thread_only(h) < 0)
        return NULL;
    if (h == NULL || h->cfg == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "no configuration is loaded");
        return NULL;
    }
    const cg_strv_t *bind = &h->cfg->bind;
    PyObject *list = PyList_New((Py_ssize_t)bind->n); /* new */
    for (size_t i = 0; list != NULL && i < bind->n; i++) {
        PyObject *o = cg__address_obj(bind->v[i]); /* new */
        if (o == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, o); /* steals o */
    }
    return list;
}

/* _set_num_workers(n): the arbiter's num_workers setter, hook included. */
static PyObject *cg__py_set_num_workers(PyObject *mod, PyObject *arg)
{
    cg_arbiter_t *a = cg__arbiter_of(mod);
    if (a == NULL)
        return NULL;
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    long old = a->num_workers;
    a->num_workers = n;
    cg_py_hooks_t *h = cg__hooks_of(mod);
    if (h->table.nworkers_changed != NULL)
        h->table.nworkers_changed(h->table.ctx, a, (int)n, (int)old);
    Py_RETURN_NONE;
}

/* _workers() -> [(pid, ppid, age, booted), ...] of the live workers. */
static PyObject *cg__py_workers(PyObject *mod, PyObject *unused)
{
    (void)unused;
    cg_arbiter_t *a = cg__arbiter_of(mod);
    if (a == NULL)
        return NULL;
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list != NULL && i < a->nworkers; i++) {
        const cg_worker_t *w = a->workers[i];
        PyObject *t = Py_BuildValue("(iii)", (int)w->pid, (int)a->pid, w->age);
        if (t == NULL || PyList_Append(list, t) < 0)
            Py_CLEAR(list);
        Py_XDECREF(t);
    }
    return list;
}

static PyMethodDef cg__helper_methods[] = {
    {"_log", cg__py_log, METH_VARARGS, NULL},
    {"_log_enabled", cg__py_log_enabled, METH_O, NULL},
    {"_count", cg__py_count, METH_O, NULL},
    {"_metric", cg__py_metric, METH_O, NULL},
    {"_setting", cg__py_setting, METH_O, NULL},
    {"_arbiter", cg__py_arbiter, METH_NOARGS, NULL},
    {"_set_num_workers", cg__py_set_num_workers, METH_O, NULL},
    {"_workers", cg__py_workers, METH_NOARGS, NULL},
    {"_address", cg__py_address, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cg__helper_def = {
    PyModuleDef_HEAD_INIT, CG__HELPER_NAME, NULL, sizeof(cg__helper_state_t),
    cg__helper_methods, NULL, NULL, NULL, NULL,
};

/*
 * The Python half. Messages match Gunicorn's (app/base.py, config.py,
 * util.warn); the code is ours.
 */
static const char cg__helper_src[] =
    "import importlib, importlib.machinery, importlib.util, inspect, os, sys, traceback\n"
    "\n"
    "_POSITIONAL = {inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD}\n"
    "\n"
    "def arity(fn):\n"
    "    params = inspect.signature(fn).parameters.values()\n"
    "    return len([p for p in params if p.kind in _POSITIONAL])\n"
    "\n"
    "def _import_hook(spec):\n"
    "    modname, dot, attr = spec.rpartition('.')\n"
    "    if not dot:\n"
    "        raise TypeError(\"Value '%s' is not import string. \"\n"
    "                        \"Format: module[.submodules...].object\" % spec)\n"
    "    try:\n"
    "        module = __import__(modname, fromlist=[attr])\n"
    "    except ImportError as e:\n"
    "        raise TypeError(str(e))\n"
    "    if not hasattr(module, attr):\n"
    "        raise TypeError(\"Can not load '%s' from '%s'\" % (attr, modname))\n"
    "    return getattr(module, attr)\n"
    "\n"
    "def check_callable(value, want):\n"
    "    # want: the arity demanded, -1 for any\n"
    "    fn = _import_hook(value) if isinstance(value, str) else value\n"
    "    if not callable(fn):\n"
    "        raise TypeError('Value is not callable: %s' % (fn,))\n"
    "    if want >= 0 and arity(fn) != want:\n"
    "        raise TypeError('Value must have an arity of: %s' % want)\n"
    "    return fn\n"
    "\n"
    "def validate_post_request(value):\n"
    "    fn = check_callable(value, -1)\n"
    "    n = arity(fn)\n"
    "    if n == 2:\n"
    "        return lambda worker, req, environ, resp: fn(worker, req)\n"
    "    if n == 3:\n"
    "        return lambda worker, req, environ, resp: fn(worker, req, environ)\n"
    "    if n == 4:\n"
    "        return fn\n"
    "    raise TypeError('Value must have an arity of: 4')\n"
    "\n"
    "def _warn(text):\n"
    "    out = ['!!!'] + ['!!! ' + ('WARNING: ' if i == 0 else '') + line\n"
    "                     for i, line in enumerate(text.splitlines())] + ['!!!', '']\n"
    "    sys.stderr.write('\\n'.join(out) + '\\n')\n"
    "    sys.stderr.flush()\n"
    "\n"
    "def load_file(filename):\n"
    "    # None after printing Gunicorn's diagnostics when the file fails\n"
    "    loader = None\n"
    "    if os.path.splitext(filename)[1] not in ('.py', '.pyc'):\n"
    "        _warn('configuration file should have a valid Python extension.\\n')\n"
    "        loader = importlib.machinery.SourceFileLoader('__config__', filename)\n"
    "    try:\n"
    "        spec = importlib.util.spec_from_file_location('__config__', filename,\n"
    "                                                      loader=loader)\n"
    "        module = importlib.util.module_from_spec(spec)\n"
    "        sys.modules['__config__'] = module\n"
    "        spec.loader.exec_module(module)\n"
    "    except Exception:\n"
    "        print('Failed to read config file: %s' % filename, file=sys.stderr)\n"
    "        traceback.print_exc()\n"
    "        sys.stderr.flush()\n"
    "        return None\n"
    "    return dict(vars(module))\n"
    "\n"
    "def load_module(name):\n"
    "    return dict(vars(importlib.import_module(name)))\n"
    "\n"
    "def default_hook(*args):\n"
    "    pass\n"
    "\n"
    "def default_ssl_context(config, default_ssl_context_factory):\n"
    "    return default_ssl_context_factory()\n"
    "\n"
    "class Log:\n"
    "    def _emit(self, level, msg, args, exc=False):\n"
    "        if not _log_enabled(level):\n"
    "            return\n"
    "        text = str(msg)\n"
    "        if len(args) == 1 and isinstance(args[0], dict) and args[0]:\n"
    "            args = args[0]\n"
    "        if args:\n"
    "            text = text % args\n"
    "        if exc and sys.exc_info()[0] is not None:\n"
    "            text += '\\n' + traceback.format_exc().rstrip('\\n')\n"
    "        _log(level, text)\n"
    "    def _plain(self, level, msg, args, kw):\n"
    "        # Gunicorn's Statsd.log(): extra's metric, then the record if any\n"
    "        try:\n"
    "            if _metric(kw.get('extra')) and not msg:\n"
    "                return\n"
    "        except Exception:\n"
    "            self._emit(30, 'Failed to log to statsd', (), True)\n"
    "            return\n"
    "        self._emit(level, msg, args, kw.get('exc_info'))\n"
    "    def debug(self, msg, *args, **kw):\n"
    "        self._plain(10, msg, args, kw)\n"
    "    def info(self, msg, *args, **kw):\n"
    "        self._plain(20, msg, args, kw)\n"
    "    def warning(self, msg, *args, **kw):\n"
    "        _count('gunicorn.log.warning')\n"
    "        self._emit(30, msg, args, kw.get('exc_info'))\n"
    "    warn = warning\n"
    "    def error(self, msg, *args, **kw):\n"
    "        _count('gunicorn.log.error')\n"
    "        self._emit(40, msg, args, kw.get('exc_info'))\n"
    "    def exception(self, msg, *args, **kw):\n"
    "        _count('gunicorn.log.exception')\n"
    "        self._emit(40, msg, args, kw.get('exc_info', True))\n"
    "    def critical(self, msg, *args, **kw):\n"
    "        _count('gunicorn.log.critical')\n"
    "        self._emit(50, msg, args, kw.get('exc_info'))\n"
    "    def log(self, level, msg, *args, **kw):\n"
    "        if isinstance(level, str):\n"
    "            level = {'debug': 10, 'info': 20, 'warning': 30, 'error': 40,\n"
    "                     'critical': 50}.get(level.lower(), 20)\n"
    "        self._plain(level, msg, args, kw)\n"
    "    def reopen_files(self):\n"
    "        pass\n"
    "\n"
    "class Config:\n"
    "    def __getattr__(self, name):\n"
    "        if name.startswith('__'):\n"
    "            raise AttributeError(name)\n"
    "        return _setting(name)\n"
    "    def __setattr__(self, name, value):\n"
    "        raise AttributeError('Invalid access!')\n"
    "    @property\n"
    "    def proc_name(self):\n"
    "        return _setting('proc_name') or _setting('default_proc_name')\n"
    "    @property\n"
    "    def worker_class_str(self):\n"
    "        return _setting('worker_class')\n"
    "    @property\n"
    "    def address(self):\n"
    "        return _address()\n"
    "\n"
    "log = Log()\n"
    "cfg = Config()\n"
    "\n"
    "class Worker:\n"
    "    def __init__(self, pid, ppid, age, alive=True, nr=0, booted=False):\n"
    "        self.pid, self.ppid, self.age = pid, ppid, age\n"
    "        self.alive, self.nr, self.booted = alive, nr, booted\n"
    "        self.log, self.cfg = log, cfg\n"
    "    def __repr__(self):\n"
    "        return '<Worker %s>' % self.pid\n"
    "\n"
    "class Server:\n"
    "    master_name = 'Master'\n"
    "    def __init__(self):\n"
    "        self.log, self.cfg = log, cfg\n"
    "    @property\n"
    "    def pid(self):\n"
    "        return _arbiter()[0]\n"
    "    @property\n"
    "    def num_workers(self):\n"
    "        return _arbiter()[1]\n"
    "    @num_workers.setter\n"
    "    def num_workers(self, value):\n"
    "        _set_num_workers(value)\n"
    "    @property\n"
    "    def timeout(self):\n"
    "        return _arbiter()[2]\n"
    "    @property\n"
    "    def proc_name(self):\n"
    "        return cfg.proc_name\n"
    "    @property\n"
    "    def address(self):\n"
    "        return _address()\n"
    "    @property\n"
    "    def WORKERS(self):\n"
    "        return {t[0]: Worker(*t) for t in _workers()}\n"
    "\n"
    "class _Snapshot:\n"
    "    def __init__(self, **kw):\n"
    "        self.__dict__.update(kw)\n"
    "\n"
    "class Request(_Snapshot):\n"
    "    def __repr__(self):\n"
    "        return '<Request %s %s>' % (self.method, self.uri)\n"
    "\n"
    "class Response(_Snapshot):\n"
    "    pass\n";

PyObject *cg_py_helper_module(void)
{
    PyObject *modules = PyImport_GetModuleDict(); /* borrowed */
    PyObject *mod = PyDict_GetItemString(modules, CG__HELPER_NAME); /* borrowed */
    if (mod != NULL)
        return Py_NewRef(mod);
    mod = PyModule_Create(&cg__helper_def); /* new */
    if (mod == NULL)
        return NULL;
    PyObject *dict = PyModule_GetDict(mod); /* borrowed */
    if (PyDict_SetItemString(dict, "__builtins__", PyEval_GetBuiltins()) < 0)
        goto fail;
    PyObject *r = PyRun_String(cg__helper_src, Py_file_input, dict, dict); /* new */
    if (r == NULL)
        goto fail;
    Py_DECREF(r);
    if (PyDict_SetItemString(modules, CG__HELPER_NAME, mod) < 0)
        goto fail;
    return mod;
fail:
    Py_DECREF(mod);
    return NULL;
}

void cg_py_helper_bind(PyObject *mod, cg_py_hooks_t *h)
{
    cg__helper_state_t *st = PyModule_GetState(mod);
    if (st != NULL)
        st->h = h;
}

PyObject *cg_py_helper_new(const char *cls, PyObject *kwargs)
{
    PyObject *mod = cg_py_helper_module(); /* new */
    if (mod == NULL)
        return NULL;
    PyObject *type = PyObject_GetAttrString(mod, cls); /* new */
    Py_DECREF(mod);
    if (type == NULL)
        return NULL;
    PyObject *empty = PyTuple_New(0); /* new */
    PyObject *obj = empty ? PyObject_Call(type, empty, kwargs) : NULL;
    Py_XDECREF(empty);
    Py_DECREF(type);
    return obj;
}

static PyObject *cg__str(const char *s)
{
    if (s == NULL)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "surrogateescape");
}

static PyObject *cg__strv_list(const cg_strv_t *v)
{
    PyObject *list = PyList_New((Py_ssize_t)v->n);
    for (size_t i = 0; list != NULL && i < v->n; i++) {
        PyObject *s = cg__str(v->v[i]);
        if (s == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, s);
    }
    return list;
}

PyObject *cg_py_setting_value(const cg_config_t *cfg, const cg_setting_desc_t *d, PyObject *mod)
{
    const char *field = (const char *)cfg + d->offset;
    switch (d->type) {
    case CG_T_INT:
    case CG_T_OCTAL:
        return PyLong_FromLong(*(const long *)field);
    case CG_T_BOOL:
        if (d->id == CG_SETTING_sendfile)
            return PyBool_FromLong(cfg->sendfile);
        return PyBool_FromLong(*(const bool *)field);
    case CG_T_STR:
        return cg__str(*(char *const *)field);
    case CG_T_LIST:
    case CG_T_CSV:
        return cg__strv_list((const cg_strv_t *)field);
    case CG_T_DICT: {
        const cg_strv_t *v = (const cg_strv_t *)field;
        PyObject *dict = PyDict_New();
        for (size_t i = 0; dict != NULL && i + 1 < v->n; i += 2) {
            PyObject *k = cg__str(v->v[i]), *val = cg__str(v->v[i + 1]);
            if (k == NULL || val == NULL || PyDict_SetItem(dict, k, val) < 0)
                Py_CLEAR(dict);
            Py_XDECREF(k);
            Py_XDECREF(val);
        }
        return dict;
    }
    case CG_T_CALLABLE: {
        PyObject *fn = *(void *const *)field;
        if (fn != NULL)
            return Py_NewRef(fn);
        /* Gunicorn's default ssl_context calls the factory: a worker
         * class's own sock.ssl_context (a real Gunicorn's too) needs it */
        return PyObject_GetAttrString(mod, d->id == CG_SETTING_ssl_context ? "default_ssl_context"
                                                                         : "default_hook");
    }
    }
    Py_RETURN_NONE;
}

static PyObject *cg__str_or_none(cg_str_t s)
{
    if (s.ptr == NULL)
        Py_RETURN_NONE;
    return PyUnicode_DecodeLatin1(s.ptr, (Py_ssize_t)s.len, NULL);
}

PyObject *cg_py_request_new(const cg_http_request_t *q, const cg_conn_t *c)
{
    PyObject *headers = PyList_New(0), *kw = NULL, *obj = NULL;
    for (size_t i = 0; headers != NULL && i < q->nheaders; i++) {
        const cg_http_header_t *hd = &q->headers[i];
        if (hd->flags & CG_HTTP_HF_DROPPED)
            continue;
        PyObject *t = Py_BuildValue("(NN)", cg__str_or_none(hd->name),
                                    cg__str_or_none(hd->value));
        if (t == NULL || PyList_Append(headers, t) < 0)
            Py_CLEAR(headers);
        Py_XDECREF(t);
    }
    if (headers == NULL)
        return NULL;
    PyObject *peer = c->peer_port[0] != '\0'
                         ? Py_BuildValue("(si)", c->peer_ip, atoi(c->peer_port))
                         : PyUnicode_FromString("");
    kw = Py_BuildValue("{s:N,s:N,s:N,s:N,s:N,s:(ii),s:O,s:N,s:s}", "method",
                       cg__str_or_none(q->method), "uri", cg__str_or_none(q->uri), "path",
                       cg__str_or_none(q->path), "query",
                       q->query.ptr ? cg__str_or_none(q->query) : PyUnicode_FromString(""),
                       "fragment",
                       q->fragment.ptr ? cg__str_or_none(q->fragment) : PyUnicode_FromString(""),
                       "version", (int)q->version_major, (int)q->version_minor, "headers",
                       headers, "remote_addr", peer, "scheme",
                       q->scheme_https == 1 ? "https" : "http");
    if (kw != NULL)
        obj = cg_py_helper_new("Request", kw);
    Py_XDECREF(kw);
    Py_DECREF(headers);
    return obj;
}
