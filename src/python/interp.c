/* interp.c - starting the embedded interpreter and reporting Python errors. */
#include "python.h"

#include "cg_build.h"
#include "../metrics/statsd.h"

#include <limits.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Insert `path` at sys.path[0] unless it is already somewhere in sys.path
 * (Gunicorn's chdir()/pythonpath rule). Returns 0 or -1 with an exception set. */
static int cg__sys_path_prepend(const char *path)
{
    PyObject *sys_path = PySys_GetObject("path"); /* borrowed */
    if (sys_path == NULL || !PyList_Check(sys_path)) {
        PyErr_SetString(PyExc_RuntimeError, "sys.path is not a list");
        return -1;
    }
    PyObject *item = PyUnicode_DecodeFSDefault(path); /* new */
    if (item == NULL)
        return -1;
    int found = PySequence_Contains(sys_path, item);
    int rc = found < 0 ? -1 : 0;
    if (found == 0)
        rc = PyList_Insert(sys_path, 0, item);
    Py_DECREF(item);
    return rc;
}

/* The process that owns the interpreter's thread state: the one that started
 * it, or the last child that ran PyOS_AfterFork_Child(). Process-wide like
 * the interpreter itself; a forked child sees a stale value and fixes it. */
static pid_t cg__py_owner;
/* Set once by cg_py_adopt(): the interpreter is the host process's. */
static bool cg__py_hosted;

void cg_py_adopt(void)
{
    cg__py_owner = getpid();
    cg__py_hosted = true;
}

bool cg_py_hosted(void)
{
    return cg__py_hosted;
}

int cg_py_finalize(void)
{
    if (!cg__py_hosted)
        return Py_FinalizeEx();
    /* The host's frames (the console script, an API caller's run()) are
     * on this stack: tearing the interpreter down under them is not safe,
     * and the process _exit()s next anyway. What Python code can see of a
     * normal exit is kept: atexit handlers run, output is flushed. */
    PyObject *atexit = PyImport_ImportModule("atexit"); /* new */
    PyObject *r = atexit ? PyObject_CallMethod(atexit, "_run_exitfuncs", NULL) : NULL; /* new */
    int rc = r != NULL ? 0 : -1;
    if (r == NULL)
        PyErr_Print();
    Py_XDECREF(r);
    Py_XDECREF(atexit);
    cg_py_flush_stdio();
    return rc;
}

void cg_py_after_fork_child(void)
{
    if (!Py_IsInitialized() || cg__py_owner == getpid())
        return;
    PyOS_AfterFork_Child();
    cg__py_owner = getpid();
}

void cg_py_flush_stdio(void)
{
    if (!Py_IsInitialized())
        return;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb); /* new or NULL: a pending exception is kept for the caller */
    const char *names[] = {"stdout", "stderr"};
    for (size_t i = 0; i < 2; i++) {
        PyObject *f = PySys_GetObject(names[i]); /* borrowed */
        if (f == NULL || f == Py_None)
            continue;
        PyObject *r = PyObject_CallMethod(f, "flush", NULL); /* new */
        if (r == NULL)
            PyErr_Clear();
        Py_XDECREF(r);
    }
    PyErr_Restore(et, ev, etb);
    PyGILState_Release(g);
}

void cg_py_gil_release(PyThreadState **saved)
{
    if (*saved == NULL && Py_IsInitialized())
        *saved = PyEval_SaveThread();
}

void cg_py_gil_take(PyThreadState **saved)
{
    if (*saved == NULL)
        return;
    PyEval_RestoreThread(*saved);
    *saved = NULL;
}

int cg_py_setup_path(const cg_config_t *cfg, char *err, size_t errlen)
{
    char cwd[PATH_MAX];
    const char *dir = cfg->chdir;
    if (dir == NULL)
        dir = getcwd(cwd, sizeof(cwd));
    if (dir != NULL && cg__sys_path_prepend(dir) < 0)
        goto fail_py;
    if (cfg->pythonpath != NULL && cfg->pythonpath[0] != '\0') {
        char *copy = cg_xstrdup(cfg->pythonpath), *save = NULL;
        for (char *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
            char abs[PATH_MAX];
            if (realpath(p, abs) == NULL) {
                /* os.path.abspath does not require existence */
                int n;
                if (p[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
                    n = snprintf(abs, sizeof(abs), "%s", p);
                else
                    n = snprintf(abs, sizeof(abs), "%s/%s", cwd, p);
                if (n < 0 || (size_t)n >= sizeof(abs))
                    continue; /* longer than any path the kernel accepts */
            }
            if (cg__sys_path_prepend(abs) < 0) {
                free(copy);
                goto fail_py;
            }
        }
        free(copy);
    }
    return 0;
fail_py: {
    char *tb = cg_py_format_exception();
    snprintf(err, errlen, "cannot set up sys.path:\n%s", tb ? tb : "");
    free(tb);
    return -1;
}
}

int cg_py_sync_environ(void)
{
    extern char **environ;
    PyObject *os = NULL, *env = NULL, *data = NULL, *fresh = PyDict_New();
    int rc = -1;
    if (fresh == NULL)
        return -1;
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL || eq == *e)
            continue;
        PyObject *k = PyBytes_FromStringAndSize(*e, eq - *e); /* new */
        PyObject *v = PyBytes_FromString(eq + 1);             /* new */
        int bad = k == NULL || v == NULL || PyDict_SetItem(fresh, k, v) < 0;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (bad)
            goto out;
    }
    /* os.environ keeps fs-encoded bytes in its _data mapping (POSIX). */
    if ((os = PyImport_ImportModule("os")) == NULL ||
        (env = PyObject_GetAttrString(os, "environ")) == NULL ||
        (data = PyObject_GetAttrString(env, "_data")) == NULL || !PyDict_Check(data))
        goto out;
    PyDict_Clear(data);
    rc = PyDict_Update(data, fresh);
out:
    if (rc < 0 && !PyErr_Occurred())
        PyErr_SetString(PyExc_RuntimeError, "os.environ has no _data mapping");
    Py_XDECREF(data);
    Py_XDECREF(env);
    Py_XDECREF(os);
    Py_DECREF(fresh);
    return rc;
}

/* Append path to sys.path when it is a directory not there yet. Returns 0
 * or -1 with an exception set. */
static int cg__sys_path_append(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return 0;
    PyObject *sys_path = PySys_GetObject("path"); /* borrowed */
    PyObject *item = PyUnicode_DecodeFSDefault(path); /* new */
    if (sys_path == NULL || item == NULL) {
        Py_XDECREF(item);
        return PyErr_Occurred() ? -1 : 0;
    }
    int found = PySequence_Contains(sys_path, item);
    int rc = found < 0 ? -1 : 0;
    if (found == 0)
        rc = PyList_Append(sys_path, item);
    Py_DECREF(item);
    return rc;
}

/* The standalone executable's interpreter gets what `pip install cgunicorn`
 * gives one: the cgunicorn package (its C half, cgunicorn._core, is this
 * binary) and, behind everything installed, the gunicorn shims, so code
 * written for Gunicorn imports where Gunicorn is not installed. Appended:
 * an installed cgunicorn or gunicorn comes first. */
static int cg__standalone_pylib(void)
{
    char exe[PATH_MAX], dir[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash != NULL)
        *slash = '\0';
    const char *pylib = strcmp(exe, CG_BUILD_ROOT) == 0 ? CG_PYLIB_SOURCE : CG_PYLIB_INSTALLED;
    snprintf(dir, sizeof(dir), "%s/cgunicorn/_compat", pylib);
    if (cg__sys_path_append(pylib) < 0 || cg__sys_path_append(dir) < 0)
        return -1;
    PyObject *core = cg_py_core_module_new(); /* new */
    PyObject *modules = PyImport_GetModuleDict(); /* borrowed */
    int rc = core != NULL ? PyDict_SetItemString(modules, "cgunicorn._core", core) : -1;
    Py_XDECREF(core);
    return rc;
}

int cg_py_init(const cg_config_t *cfg, char *err, size_t errlen)
{
    PyConfig config;
    PyStatus status;
    char program[PATH_MAX];
    const char *venv = getenv("VIRTUAL_ENV");

    /* A worker forked from a master that read a Python config file inherits
     * a running interpreter: it must not start another. The fork left it
     * without the GIL (the master does not hold it while idle); take it for
     * the rest of the process, so this call ends with the GIL held as when
     * it starts the interpreter. Where it is held already (the master
     * re-reading its file on HUP) nothing changes. */
    if (Py_IsInitialized()) {
        cg_py_after_fork_child();
        if (!PyGILState_Check())
            PyEval_RestoreThread(PyGILState_GetThisThreadState());
        /* os.environ is a copy taken when the interpreter started: show
         * the worker what the master's C code set since (raw_env, ...). */
        if (cg_py_sync_environ() < 0) {
            char *tb = cg_py_format_exception();
            snprintf(err, errlen, "cannot update os.environ:\n%s", tb ? tb : "");
            free(tb);
            return -1;
        }
        return cg_py_setup_path(cfg, err, errlen);
    }

    /* The interpreter finds its prefix (and a venv's pyvenv.cfg) from the path
     * of the program it believes it is, so pretend to be the venv's python. */
    if (venv != NULL && venv[0] != '\0')
        snprintf(program, sizeof(program), "%s/bin/python", venv);
    else
        snprintf(program, sizeof(program), "%s", CG_PYTHON_EXECUTABLE);

    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0; /* the C worker owns every signal */
    config.parse_argv = 0;
    status = PyConfig_SetBytesString(&config, &config.program_name, program);
    if (PyStatus_Exception(status))
        goto fail;
    if (cfg->argv != NULL && cfg->argc > 0) {
        status = PyConfig_SetBytesArgv(&config, cfg->argc, cfg->argv);
        if (PyStatus_Exception(status))
            goto fail;
    }
    status = Py_InitializeFromConfig(&config);
    if (PyStatus_Exception(status))
        goto fail;
    PyConfig_Clear(&config);
    cg__py_owner = getpid();
    if (cg__standalone_pylib() < 0) {
        char *tb = cg_py_format_exception();
        snprintf(err, errlen, "cannot set up the cgunicorn package:\n%s", tb ? tb : "");
        free(tb);
        return -1;
    }
    return cg_py_setup_path(cfg, err, errlen);

fail:
    snprintf(err, errlen, "cannot start Python (%s): %s", program,
             status.err_msg ? status.err_msg : "unknown error");
    PyConfig_Clear(&config);
    return -1;
}

char *cg_py_format_exception(void)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb); /* new references (may be NULL) */
    if (type == NULL)
        return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);

    char *out = NULL;
    PyObject *lines = NULL, *joined = NULL, *empty = NULL;
    PyObject *mod = PyImport_ImportModule("traceback"); /* new */
    if (mod != NULL)
        lines = PyObject_CallMethod(mod, "format_exception", "OOO", type,
                                    value ? value : Py_None, tb ? tb : Py_None);
    if (lines != NULL && (empty = PyUnicode_FromString("")) != NULL)
        joined = PyUnicode_Join(empty, lines);
    if (joined != NULL) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(joined, &n);
        if (s != NULL)
            out = cg_xstrndup(s, (size_t)n);
    }
    if (out == NULL) {
        PyErr_Clear();
        out = cg_xstrdup("(traceback unavailable)\n");
    }
    Py_XDECREF(mod);
    Py_XDECREF(lines);
    Py_XDECREF(empty);
    Py_XDECREF(joined);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return out;
}

/* The message Python prints for an uncaught exception at start-up:
 * Gunicorn's "Error: %s" for RuntimeError, the traceback for the rest. */
void cg_py_print_startup_error(void)
{
    if (PyErr_ExceptionMatches(PyExc_RuntimeError)) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyErr_NormalizeException(&t, &v, &tb);
        PyObject *s = v ? PyObject_Str(v) : NULL; /* new */
        const char *u = s ? PyUnicode_AsUTF8(s) : NULL;
        fprintf(stderr, "\nError: %s\n\n", u ? u : "");
        PyErr_Clear();
        Py_XDECREF(s);
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
    } else {
        char *tb = cg_py_format_exception();
        fputs(tb ? tb : "", stderr);
        free(tb);
    }
    fflush(stderr);
}

void cg_py_log_exception(cg_log_t *log, cg_log_level_t level, const char *prefix)
{
    /* Gunicorn logs these with log.exception(), which its Statsd logger
     * counts as gunicorn.log.exception; the one exception is the main
     * loop's, a log.error(..., exc_info=True) */
    const char *counter = level == CG_LOG_ERROR && strcmp(prefix, "Unhandled exception in main loop")
                              ? "gunicorn.log.exception"
                              : cg_statsd_level_counter(level);
    cg_statsd_count(log->statsd, counter);
    if (cg_py_logging_exception(log, level, prefix) ||
        cg_py_loggerclass_exception(log, level, prefix))
        return;
    char *tb = cg_py_format_exception();
    if (tb == NULL)
        return;
    size_t plen = strlen(prefix), tlen = strlen(tb);
    char *msg = cg_xmalloc(plen + 1 + tlen + 1);
    memcpy(msg, prefix, plen);
    msg[plen] = '\n';
    memcpy(msg + plen + 1, tb, tlen + 1);
    /* Python's logging puts the traceback without its final newline. */
    size_t len = plen + 1 + tlen;
    while (len > 0 && msg[len - 1] == '\n')
        len--;
    cg_log_text_counted(log, level, NULL, msg, len);
    free(msg);
    free(tb);
}
