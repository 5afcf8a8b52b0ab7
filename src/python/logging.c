/*
 * logging.c - Gunicorn's logconfig, logconfig_dict and logconfig_json:
 * Python's logging module decides where and how records appear.
 *
 * Without those settings the logs are written from C (src/log) and nothing
 * here runs. With one of them, the master (which then runs the interpreter)
 * does what Gunicorn's Logger.setup() does: its own handlers for errorlog
 * and accesslog on the gunicorn.error / gunicorn.access loggers, then
 * dictConfig (the dict, or the JSON file, merged over Gunicorn's
 * CONFIG_DEFAULTS) or fileConfig. The C log is then given a sink: every
 * error record becomes gunicorn.error.log(level, text) and every access
 * record gunicorn.access.info(access_log_format, SafeAtoms(atoms)), as in
 * Gunicorn, so the user's handlers, formatters, filters and levels apply.
 * Workers are forked from the master and inherit the configured logging.
 *
 * Syslog. Gunicorn adds its SysLogHandlers to gunicorn.error (and, unless
 * disable_redirect_access_to_syslog, gunicorn.access) after its own
 * handlers and before the logconfig runs, so the logconfig keeps them on a
 * logger it does not name and drops them from one it configures. Ours go
 * in at the same point; they format as Gunicorn's do and hand the text to
 * the C syslog client (src/log/syslog.h: non-blocking, a stream connection
 * per process) instead of a blocking socket of their own.
 *
 * Levels. The C log drops records below log->level before formatting
 * anything; with the sink that threshold mirrors the effective level of
 * gunicorn.error. The logging manager's cache reset (which every level
 * change runs: setLevel, dictConfig, logging.disable) is wrapped to refresh
 * it, so an application that configures logging at import (Django's
 * LOGGING, ...) lowers or raises it in its worker.
 *
 * Threads. Records come from threads that hold the GIL (the master, app
 * code) and from threads that do not (the workers' loops): every entry
 * takes it with PyGILState_Ensure(), which nests where it is already held.
 */
#include "python.h"

#include "../log/syslog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CG__LOGGING_NAME "_cgunicorn_logging"

typedef struct cg__logging_state {
    cg_py_logging_t *lg;
} cg__logging_state_t;

/*
 * The Python half. Behaviour (CONFIG_DEFAULTS, the handlers Gunicorn adds,
 * which exceptions become RuntimeError, SafeAtoms, reopen_files) follows
 * Gunicorn 26's glogging.py; the code is ours.
 */
static const char cg__logging_src[] =
    "import ast, datetime, json, logging, logging.config, logging.handlers, os, sys, time\n"
    "import traceback\n"
    "\n"
    "# the dict Gunicorn's glogging merges a logconfig_dict over: the\n"
    "# cgunicorn package's (both front ends have it), one copy of it\n"
    "from cgunicorn.glogging import CONFIG_DEFAULTS\n"
    "\n"
    "ERROR_FORMAT = '%(asctime)s [%(process)d] [%(levelname)s] %(message)s'\n"
    "DATE_FORMAT = '[%Y-%m-%d %H:%M:%S %z]'\n"
    "LEVELS = {'critical': 50, 'error': 40, 'warning': 30, 'info': 20, 'debug': 10}\n"
    "\n"
    "error_log = logging.getLogger('gunicorn.error')\n"
    "access_log = logging.getLogger('gunicorn.access')\n"
    "_configured = False\n"
    "\n"
    "# logconfig_dict values by their printed form: the C settings keep the\n"
    "# text, dictConfig gets the very objects the configuration file made.\n"
    "_dicts = {}\n"
    "\n"
    "def keep_dict(value):\n"
    "    pairs = tuple((k if isinstance(k, str) else repr(k), repr(v))\n"
    "                  for k, v in value.items())\n"
    "    _dicts.pop(pairs, None)\n"
    "    _dicts[pairs] = value\n"
    "    while len(_dicts) > 4:\n"
    "        del _dicts[next(iter(_dicts))]\n"
    "    return pairs\n"
    "\n"
    "def _find_dict(pairs):\n"
    "    value = _dicts.get(pairs)\n"
    "    if value is not None:\n"
    "        return value\n"
    "    try:\n"
    "        return {k: ast.literal_eval(v) for k, v in pairs}\n"
    "    except (ValueError, SyntaxError) as exc:\n"
    "        raise RuntimeError('logconfig_dict: the value given is gone: %s' % exc) from exc\n"
    "\n"
    "def _own_handler(target, stream, formatter, user, group):\n"
    "    if target == '-':\n"
    "        h = logging.StreamHandler(stream)\n"
    "    else:\n"
    "        h = logging.FileHandler(target)\n"
    "        try:\n"
    "            os.chown(h.baseFilename, user, group)\n"
    "        except OSError:\n"
    "            pass\n"
    "    h.setFormatter(formatter)\n"
    "    h._gunicorn = True\n"
    "    return h\n"
    "\n"
    "class SyslogHandler(logging.Handler):\n"
    "    # Gunicorn's SysLogHandler with its formatter; sent from C (_syslog)\n"
    "    def __init__(self, tag):\n"
    "        logging.Handler.__init__(self)\n"
    "        # the tag is sent as written (a % in syslog_prefix too)\n"
    "        self.setFormatter(logging.Formatter(tag.replace('%', '%%') +\n"
    "                                            '[%(process)d] %(message)s'))\n"
    "        self._gunicorn = True\n"
    "    def emit(self, record):\n"
    "        try:\n"
    "            H = logging.handlers.SysLogHandler\n"
    "            sev = H.priority_names[H.priority_map.get(record.levelname, 'warning')]\n"
    "            _syslog(sev, self.format(record))\n"
    "        except Exception:\n"
    "            self.handleError(record)\n"
    "\n"
    "def gate():\n"
    "    return max(error_log.getEffectiveLevel(), logging.root.manager.disable + 1)\n"
    "\n"
    "def setup(loglevel, errorlog, accesslog, user, group, dict_pairs, json_path, ini_path,\n"
    "          syslog_error_tag, syslog_access_tag):\n"
    "    global _configured\n"
    "    if not _configured:\n"
    "        error_log.propagate = False\n"
    "        access_log.propagate = False\n"
    "        _configured = True\n"
    "    error_log.setLevel(LEVELS.get(loglevel.lower(), logging.INFO))\n"
    "    access_log.setLevel(logging.INFO)\n"
    "    for lg in (error_log, access_log):\n"
    "        for h in list(lg.handlers):\n"
    "            if getattr(h, '_gunicorn', False):\n"
    "                lg.removeHandler(h)\n"
    "                h.close()\n"
    "    if errorlog is not None:\n"
    "        error_log.addHandler(_own_handler(errorlog, None,\n"
    "                                          logging.Formatter(ERROR_FORMAT, DATE_FORMAT),\n"
    "                                          user, group))\n"
    "    if accesslog is not None:\n"
    "        access_log.addHandler(_own_handler(accesslog, sys.stdout,\n"
    "                                           logging.Formatter('%(message)s'), user, group))\n"
    "    if syslog_error_tag is not None:\n"
    "        error_log.addHandler(SyslogHandler(syslog_error_tag))\n"
    "    if syslog_access_tag is not None:\n"
    "        access_log.addHandler(SyslogHandler(syslog_access_tag))\n"
    "    if dict_pairs:\n"
    "        config = CONFIG_DEFAULTS.copy()\n"
    "        config.update(_find_dict(dict_pairs))\n"
    "        try:\n"
    "            logging.config.dictConfig(config)\n"
    "        except (AttributeError, ImportError, ValueError, TypeError) as exc:\n"
    "            raise RuntimeError(str(exc)) from exc\n"
    "    elif json_path is not None:\n"
    "        config = CONFIG_DEFAULTS.copy()\n"
    "        if os.path.exists(json_path):\n"
    "            try:\n"
    "                with open(json_path) as f:\n"
    "                    config.update(json.load(f))\n"
    "                logging.config.dictConfig(config)\n"
    "            except (json.JSONDecodeError, AttributeError, ImportError, ValueError,\n"
    "                    TypeError) as exc:\n"
    "                raise RuntimeError(str(exc)) from exc\n"
    "    elif ini_path is not None:\n"
    "        if not os.path.exists(ini_path):\n"
    "            raise RuntimeError(\"Error: log config '%s' not found\" % ini_path)\n"
    "        defaults = CONFIG_DEFAULTS.copy()\n"
    "        defaults['__file__'] = ini_path\n"
    "        defaults['here'] = os.path.dirname(ini_path)\n"
    "        logging.config.fileConfig(ini_path, defaults=defaults,\n"
    "                                  disable_existing_loggers=False)\n"
    "    return gate()\n"
    "\n"
    "def watch_levels(set_gate):\n"
    "    manager = logging.Logger.manager\n"
    "    clear = getattr(manager, '_clear_cache', None)\n"
    "    if clear is None or getattr(clear, '_cgunicorn', False):\n"
    "        return\n"
    "    def _clear_cache():\n"
    "        clear()\n"
    "        set_gate(gate())\n"
    "    _clear_cache._cgunicorn = True\n"
    "    manager._clear_cache = _clear_cache\n"
    "\n"
    "def reopen_files():\n"
    "    # the loggers Gunicorn walks: every named one (the root is not among them)\n"
    "    for name in list(logging.root.manager.loggerDict):\n"
    "        for h in logging.getLogger(name).handlers:\n"
    "            if isinstance(h, logging.FileHandler):\n"
    "                h.acquire()\n"
    "                try:\n"
    "                    if h.stream:\n"
    "                        h.close()\n"
    "                        h.stream = h._open()\n"
    "                finally:\n"
    "                    h.release()\n"
    "\n"
    "class SafeAtoms(dict):\n"
    "    def __init__(self, atoms):\n"
    "        dict.__init__(self)\n"
    "        for k, v in atoms.items():\n"
    "            self[k] = v.replace('\"', '\\\\\"') if isinstance(v, str) else v\n"
    "    def __getitem__(self, k):\n"
    "        if k.startswith('{'):\n"
    "            k = k.lower()\n"
    "        return dict.__getitem__(self, k) if k in self else '-'\n"
    "\n"
    "def _env_header(headers, name):\n"
    "    found = [v for k, v in headers if k.upper().replace('-', '_') == name]\n"
    "    return ','.join(found) if found else '-'\n"
    "\n"
    "def access(fmt, remote, method, uri, proto, path, query, status, sent, micros, when,\n"
    "           pid, user, req_headers, resp_headers, environ_atoms):\n"
    "    took = datetime.timedelta(microseconds=micros)\n"
    "    atoms = {\n"
    "        'h': '-' if remote is None else remote,\n"
    "        'l': '-',\n"
    "        'u': user or '-',\n"
    "        't': time.strftime('[%d/%b/%Y:%H:%M:%S %z]', time.localtime(when)),\n"
    "        'r': '%s %s %s' % (method, uri, proto),\n"
    "        's': status.split(None, 1)[0] if status.strip() else status,\n"
    "        'm': method,\n"
    "        'U': path,\n"
    "        'q': query,\n"
    "        'H': proto,\n"
    "        'b': '-' if sent is None else str(sent),\n"
    "        'B': sent,\n"
    "        'f': _env_header(req_headers, 'REFERER'),\n"
    "        'a': _env_header(req_headers, 'USER_AGENT'),\n"
    "        'T': took.seconds,\n"
    "        'D': took.seconds * 1000000 + took.microseconds,\n"
    "        'M': took.seconds * 1000 + took.microseconds // 1000,\n"
    "        'L': '%d.%06d' % (took.seconds, took.microseconds),\n"
    "        'p': '<%s>' % pid,\n"
    "    }\n"
    "    atoms.update(('{%s}i' % k.lower(), v) for k, v in req_headers)\n"
    "    atoms.update(('{%s}o' % k.lower(), v) for k, v in resp_headers)\n"
    "    atoms.update(environ_atoms)\n"
    "    try:\n"
    "        access_log.info(fmt, SafeAtoms(atoms))\n"
    "    except Exception:\n"
    "        error_log.error(traceback.format_exc())\n";

/* _set_gate(level): the new threshold of the C log (from watch_levels). */
static PyObject *cg__py_set_gate(PyObject *mod, PyObject *arg)
{
    long level = PyLong_AsLong(arg);
    if (level == -1 && PyErr_Occurred())
        return NULL;
    cg__logging_state_t *st = PyModule_GetState(mod);
    if (st != NULL && st->lg != NULL && st->lg->log != NULL && st->lg->log->to_sink)
        __atomic_store_n(&st->lg->log->level, (cg_log_level_t)level, __ATOMIC_RELAXED);
    Py_RETURN_NONE;
}

/* _syslog(severity, text): one record SyslogHandler formatted, to the C
 * syslog client of the current log (nothing when syslog is off). */
static PyObject *cg__py_syslog(PyObject *mod, PyObject *args)
{
    int severity;
    const char *text;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "is#", &severity, &text, &len))
        return NULL;
    cg__logging_state_t *st = PyModule_GetState(mod);
    cg_syslog_t *s = st != NULL && st->lg != NULL && st->lg->log != NULL ? st->lg->log->syslog
                                                                         : NULL;
    if (s != NULL)
        cg_syslog_send_text(s, severity, text, (size_t)len);
    Py_RETURN_NONE;
}

static PyMethodDef cg__logging_methods[] = {
    {"_set_gate", cg__py_set_gate, METH_O, NULL},
    {"_syslog", cg__py_syslog, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cg__logging_def = {
    PyModuleDef_HEAD_INIT, CG__LOGGING_NAME, NULL, sizeof(cg__logging_state_t),
    cg__logging_methods, NULL, NULL, NULL, NULL,
};

/* The helper module (new reference), made on first use and kept in
 * sys.modules; NULL with an exception set. */
static PyObject *cg__logging_module(void)
{
    PyObject *modules = PyImport_GetModuleDict();                  /* borrowed */
    PyObject *mod = PyDict_GetItemString(modules, CG__LOGGING_NAME); /* borrowed */
    if (mod != NULL)
        return Py_NewRef(mod);
    mod = PyModule_Create(&cg__logging_def); /* new */
    if (mod == NULL)
        return NULL;
    PyObject *dict = PyModule_GetDict(mod); /* borrowed */
    PyObject *code = NULL, *r = NULL;
    if (PyDict_SetItemString(dict, "__builtins__", PyEval_GetBuiltins()) < 0)
        goto fail;
    code = Py_CompileString(cg__logging_src, "<cgunicorn logging>", Py_file_input); /* new */
    if (code == NULL)
        goto fail;
    r = PyEval_EvalCode(code, dict, dict); /* new */
    Py_DECREF(code);
    if (r == NULL)
        goto fail;
    Py_DECREF(r);
    if (PyDict_SetItemString(modules, CG__LOGGING_NAME, mod) < 0)
        goto fail;
    return mod;
fail:
    Py_DECREF(mod);
    return NULL;
}

bool cg_py_logging_wanted(const cg_config_t *cfg)
{
    return cfg->logconfig_dict.n > 0 || cfg->logconfig_json != NULL || cfg->logconfig != NULL;
}

int cg_py_logging_set_dict(cg_config_t *cfg, PyObject *dict, char *err, size_t errlen)
{
    PyObject *mod = cg__logging_module(); /* new */
    PyObject *pairs = mod ? PyObject_CallMethod(mod, "keep_dict", "O", dict) : NULL; /* new */
    Py_XDECREF(mod);
    if (pairs == NULL || !PyTuple_Check(pairs)) {
        char *tb = cg_py_format_exception();
        snprintf(err, errlen, "cannot keep logconfig_dict:\n%s", tb ? tb : "");
        free(tb);
        Py_XDECREF(pairs);
        return -EINVAL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(pairs);
    const char **kv = cg_xcalloc(2 * (size_t)n + 1, sizeof(*kv));
    int rc = 0;
    for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
        PyObject *p = PyTuple_GET_ITEM(pairs, i); /* borrowed */
        for (int j = 0; j < 2 && rc == 0; j++) {
            kv[2 * i + j] = PyUnicode_AsUTF8(PyTuple_GET_ITEM(p, j));
            if (kv[2 * i + j] == NULL) {
                PyErr_Clear();
                snprintf(err, errlen, "logconfig_dict: a key or value cannot be shown as UTF-8");
                rc = -EINVAL;
            }
        }
    }
    if (rc == 0)
        rc = cg_config_set_dict(cfg, "logconfig_dict", kv, (size_t)n, CG_SRC_FILE, err, errlen);
    free(kv);
    Py_DECREF(pairs);
    return rc;
}

/* ---- the sink ----------------------------------------------------------- */

/* Report an exception raised by the logging machinery itself: there is no
 * log left to put it in, so stderr, as Python's handleError does. */
void cg_py_report_logging_error(const char *what)
{
    char *tb = cg_py_format_exception();
    fprintf(stderr, "--- Logging error ---\n%s%s", what, tb ? tb : "\n");
    fflush(stderr);
    free(tb);
}

static bool cg__sink_error(void *ctx, cg_log_level_t level, const char *msg, size_t len)
{
    cg_py_logging_t *lg = ctx;
    if (!Py_IsInitialized() || lg->error_log == NULL)
        return false;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb); /* a caller may log while an exception is pending */
    /* bytes that are not UTF-8 (a raw request line ...) show as \xNN */
    PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)len, "backslashreplace"); /* new */
    PyObject *r = text ? PyObject_CallMethod(lg->error_log, "log", "iO", (int)level, text) : NULL;
    if (r == NULL)
        cg_py_report_logging_error("");
    Py_XDECREF(r);
    Py_XDECREF(text);
    PyErr_Restore(et, ev, etb);
    PyGILState_Release(g);
    return true;
}

static PyObject *cg__latin1(cg_str_t s)
{
    return PyUnicode_DecodeLatin1(s.ptr ? s.ptr : "", (Py_ssize_t)s.len, NULL);
}

/* Text the worker took from Python str objects (UTF-8), or raw request
 * bytes when it had none (latin-1, like the rest of the request). */
static PyObject *cg__text(cg_str_t s)
{
    PyObject *u = PyUnicode_DecodeUTF8(s.ptr ? s.ptr : "", (Py_ssize_t)s.len, NULL);
    if (u == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        u = cg__latin1(s);
    }
    return u;
}

/* [(name, value), ...] of the request headers the environ would show. */
static PyObject *cg__req_headers(const cg_access_info_t *in)
{
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list != NULL && i < in->n_req_headers; i++) {
        const cg_http_header_t *h = &in->req_headers[i];
        if (h->flags & CG_HTTP_HF_DROPPED)
            continue;
        PyObject *k = cg__latin1(h->name), *v = cg__latin1(h->value);
        PyObject *t = k && v ? PyTuple_Pack(2, k, v) : NULL;
        if (t == NULL || PyList_Append(list, t) < 0)
            Py_CLEAR(list);
        Py_XDECREF(t);
        Py_XDECREF(k);
        Py_XDECREF(v);
    }
    return list;
}

static PyObject *cg__resp_headers(const cg_access_info_t *in)
{
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list != NULL && i < in->n_resp_headers; i++) {
        PyObject *k = cg__text(in->resp_headers[2 * i]), *v = cg__text(in->resp_headers[2 * i + 1]);
        PyObject *t = k && v ? PyTuple_Pack(2, k, v) : NULL;
        if (t == NULL || PyList_Append(list, t) < 0)
            Py_CLEAR(list);
        Py_XDECREF(t);
        Py_XDECREF(k);
        Py_XDECREF(v);
    }
    return list;
}

/* {"{name}e": value} for the environ atoms the format names. */
static PyObject *cg__environ_atoms(const cg_py_logging_t *lg, const cg_access_info_t *in)
{
    cg_str_t names[16];
    PyObject *d = PyDict_New();
    size_t n = cg_access_fmt_environ_names(lg->fmt, names, CG_ARRAY_SIZE(names));
    if (n > CG_ARRAY_SIZE(names))
        n = CG_ARRAY_SIZE(names);
    for (size_t i = 0; d != NULL && i < n && in->environ_lookup != NULL; i++) {
        cg_str_t v;
        if (!in->environ_lookup(in->environ_ctx, names[i], &v))
            continue;
        PyObject *key = PyUnicode_FromFormat("{%.*s}e", (int)names[i].len, names[i].ptr);
        PyObject *val = cg__text(v);
        if (key == NULL || val == NULL || PyDict_SetItem(d, key, val) < 0)
            Py_CLEAR(d);
        Py_XDECREF(key);
        Py_XDECREF(val);
    }
    return d;
}

/* The arguments of the helper's access(): what Gunicorn's atoms() reads. */
static PyObject *cg__access_args(const cg_py_logging_t *lg, const cg_access_info_t *in)
{
    size_t ulen = 0;
    char *user = cg_access_user(in, &ulen);
    PyObject *items[16] = {
        Py_NewRef(lg->access_format),
        in->remote_addr.ptr ? cg__latin1(in->remote_addr) : Py_NewRef(Py_None),
        cg__latin1(in->method),
        cg__latin1(in->raw_uri),
        cg__latin1(in->protocol),
        cg__text(in->path_info),
        cg__latin1(in->query),
        cg__text(in->status),
        in->sent >= 0 ? PyLong_FromLongLong((long long)in->sent) : Py_NewRef(Py_None),
        PyLong_FromLongLong((long long)in->request_time_us),
        PyLong_FromLongLong((long long)in->log_time),
        PyLong_FromLong((long)in->pid),
        user ? PyUnicode_DecodeUTF8(user, (Py_ssize_t)ulen, "replace") : Py_NewRef(Py_None),
        cg__req_headers(in),
        cg__resp_headers(in),
        cg__environ_atoms(lg, in),
    };
    free(user);
    PyObject *args = PyTuple_New((Py_ssize_t)CG_ARRAY_SIZE(items));
    for (size_t i = 0; i < CG_ARRAY_SIZE(items); i++) {
        if (items[i] == NULL)
            Py_CLEAR(args);
        if (args != NULL)
            PyTuple_SET_ITEM(args, (Py_ssize_t)i, items[i]); /* steals */
        else
            Py_XDECREF(items[i]);
    }
    return args;
}

static bool cg__sink_access(void *ctx, const cg_access_info_t *info)
{
    cg_py_logging_t *lg = ctx;
    if (!Py_IsInitialized() || lg->access_fn == NULL)
        return false;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb);
    /* records gunicorn.access would drop are not worth building */
    PyObject *on = PyObject_CallMethod(lg->access_log, "isEnabledFor", "i", (int)CG_LOG_INFO);
    int want = on ? PyObject_IsTrue(on) : -1;
    Py_XDECREF(on);
    PyObject *r = NULL;
    if (want > 0) {
        PyObject *args = cg__access_args(lg, info); /* new */
        if (args != NULL)
            r = PyObject_Call(lg->access_fn, args, NULL);
        Py_XDECREF(args);
    }
    if (want != 0 && r == NULL)
        cg_py_report_logging_error("");
    Py_XDECREF(r);
    PyErr_Restore(et, ev, etb);
    PyGILState_Release(g);
    return true;
}

static int cg__sink_reopen(void *ctx)
{
    cg_py_logging_t *lg = ctx;
    if (!Py_IsInitialized() || lg->mod == NULL)
        return 0;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallMethod(lg->mod, "reopen_files", NULL); /* new */
    if (r == NULL)
        cg_py_report_logging_error("Reopening the log files failed:\n");
    Py_XDECREF(r);
    PyGILState_Release(g);
    return 0;
}

/* ---- setup ---------------------------------------------------------------- */

static PyObject *cg__str_or_none(const char *s)
{
    if (s == NULL)
        return Py_NewRef(Py_None);
    return PyUnicode_DecodeFSDefault(s);
}

/* logconfig_dict as the (key, repr) pairs keep_dict() made, or None. */
static PyObject *cg__dict_pairs(const cg_config_t *cfg)
{
    const cg_strv_t *v = &cfg->logconfig_dict;
    if (v->n == 0)
        return Py_NewRef(Py_None);
    PyObject *t = PyTuple_New((Py_ssize_t)(v->n / 2));
    for (size_t i = 0; t != NULL && i + 1 < v->n; i += 2) {
        PyObject *p = Py_BuildValue("(ss)", v->v[i], v->v[i + 1]);
        if (p == NULL)
            Py_CLEAR(t);
        else
            PyTuple_SET_ITEM(t, (Py_ssize_t)(i / 2), p);
    }
    return t;
}

/* Gunicorn's Logger.setup(cfg) for `log`. GIL held. Returns 0, or -1 with
 * the exception Gunicorn would have raised set. */
static int cg__setup(cg_py_logging_t *lg, cg_log_t *log, const cg_config_t *cfg)
{
    if (!cg_py_logging_wanted(cfg)) {
        log->to_sink = false; /* back to the C writers (HUP dropped the setting) */
        return 0;
    }
    if (lg->mod == NULL) {
        if ((lg->mod = cg__logging_module()) == NULL)
            return -1;
        cg__logging_state_t *st = PyModule_GetState(lg->mod);
        st->lg = lg;
        lg->error_log = PyObject_GetAttrString(lg->mod, "error_log");
        lg->access_log = PyObject_GetAttrString(lg->mod, "access_log");
        lg->access_fn = PyObject_GetAttrString(lg->mod, "access");
        PyObject *gate_fn = PyObject_GetAttrString(lg->mod, "_set_gate"); /* new */
        PyObject *r = gate_fn ? PyObject_CallMethod(lg->mod, "watch_levels", "O", gate_fn) : NULL;
        Py_XDECREF(gate_fn);
        Py_XDECREF(r);
        if (!lg->error_log || !lg->access_log || !lg->access_fn || !r)
            return -1;
    }
    /* `log` is the one being set up (HUP: the new one, whose syslog has
     * the new tags) */
    const cg_syslog_t *sl = log->syslog;
    PyObject *args = Py_BuildValue(
        "(sNNllNNNNN)", cfg->loglevel ? cfg->loglevel : "info", cg__str_or_none(cfg->errorlog),
        cg__str_or_none(cfg->accesslog), cfg->user, cfg->group, cg__dict_pairs(cfg),
        cg__str_or_none(cfg->logconfig_json), cg__str_or_none(cfg->logconfig),
        cg__str_or_none(sl ? cg_syslog_tag(sl, false) : NULL),
        cg__str_or_none(sl ? cg_syslog_tag(sl, true) : NULL));
    PyObject *fn = args ? PyObject_GetAttrString(lg->mod, "setup") : NULL; /* new */
    PyObject *gate = fn ? PyObject_Call(fn, args, NULL) : NULL;           /* new */
    Py_XDECREF(fn);
    Py_XDECREF(args);
    if (gate == NULL)
        return -1;
    long level = PyLong_AsLong(gate);
    Py_DECREF(gate);
    if (level == -1 && PyErr_Occurred())
        return -1;

    PyObject *fmt = cg__str_or_none(cfg->access_log_format ? cfg->access_log_format : "");
    if (fmt == NULL)
        return -1;
    Py_XSETREF(lg->access_format, fmt);
    cg_access_fmt_free(lg->fmt);
    lg->fmt = NULL;
    char err[256];
    /* a format C cannot compile is still Python's to format; it just gets
     * no {name}e atoms */
    if (cg_access_fmt_compile(cfg->access_log_format ? cfg->access_log_format : "", &lg->fmt,
                              err, sizeof(err)) < 0)
        lg->fmt = NULL;

    __atomic_store_n(&log->level, (cg_log_level_t)level, __ATOMIC_RELAXED);
    log->sink = &lg->sink;
    log->to_sink = true;
    return 0;
}

/* HUP (cg_log_sink_t.reload): Gunicorn's Arbiter.setup() on a live logger. */
static int cg__sink_reload(void *ctx, cg_log_t *log, const struct cg_config *cfg)
{
    cg_py_logging_t *lg = ctx;
    if (!Py_IsInitialized())
        return 0;
    PyGILState_STATE g = PyGILState_Ensure();
    int rc = 0;
    log->sink = &lg->sink;
    if (cg__setup(lg, log, cfg) < 0) {
        rc = -1;
        char *tb = cg_py_format_exception();
        fprintf(stderr, "\nError: reloading the logger configuration failed, keeping the "
                        "previous one\n%s", tb ? tb : "");
        fflush(stderr);
        free(tb);
        if (cg__setup(lg, lg->log, lg->cfg) < 0) {
            tb = cg_py_format_exception();
            fprintf(stderr, "Error: restoring the previous logger configuration failed\n%s",
                    tb ? tb : "");
            fflush(stderr);
            free(tb);
        } else {
            cg_log_error(lg->log, "reloading the logger configuration failed, keeping the "
                                  "previous one");
        }
    }
    PyGILState_Release(g);
    return rc;
}

int cg_py_logging_init(cg_py_logging_t *lg, const cg_config_t *cfg, cg_log_t *log)
{
    memset(lg, 0, sizeof(*lg));
    lg->log = log;
    lg->cfg = cfg;
    lg->sink = (cg_log_sink_t){
        .ctx = lg,
        .error = cg__sink_error,
        .access = cg__sink_access,
        .reopen = cg__sink_reopen,
        .reload = cg__sink_reload,
    };
    log->sink = &lg->sink;
    if (cg__setup(lg, log, cfg) < 0) {
        cg_py_print_startup_error();
        return 1;
    }
    return 0;
}

void cg_py_logging_free(cg_py_logging_t *lg)
{
    if (lg->log != NULL && lg->log->sink == &lg->sink) {
        lg->log->to_sink = false;
        lg->log->sink = NULL;
    }
    if (lg->mod != NULL && Py_IsInitialized()) {
        cg__logging_state_t *st = PyModule_GetState(lg->mod);
        if (st != NULL)
            st->lg = NULL;
        Py_CLEAR(lg->error_log);
        Py_CLEAR(lg->access_log);
        Py_CLEAR(lg->access_fn);
        Py_CLEAR(lg->access_format);
        Py_CLEAR(lg->mod);
    }
    cg_access_fmt_free(lg->fmt);
    lg->fmt = NULL;
}

bool cg_py_logging_exception(cg_log_t *log, cg_log_level_t level, const char *prefix)
{
    if (!log->to_sink || log->sink == NULL || log->sink->error != cg__sink_error)
        return false;
    cg_py_logging_t *lg = log->sink->ctx;
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (t == NULL)
        return true;
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb != NULL && v != NULL)
        PyException_SetTraceback(v, tb);
    PyObject *exc = PyTuple_Pack(3, t, v ? v : Py_None, tb ? tb : Py_None); /* new */
    PyObject *kw = exc ? Py_BuildValue("{sO}", "exc_info", exc) : NULL;     /* new */
    PyObject *text = PyUnicode_DecodeUTF8(prefix, (Py_ssize_t)strlen(prefix), "backslashreplace");
    PyObject *args = text ? Py_BuildValue("(iN)", (int)level, text) : NULL; /* new */
    PyObject *fn = PyObject_GetAttrString(lg->error_log, "log");             /* new */
    PyObject *r = fn && args && kw ? PyObject_Call(fn, args, kw) : NULL;    /* new */
    if (r == NULL)
        cg_py_report_logging_error("");
    Py_XDECREF(r);
    Py_XDECREF(fn);
    Py_XDECREF(args);
    Py_XDECREF(kw);
    Py_XDECREF(exc);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    return true;
}
