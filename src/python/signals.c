/*
 * signals.c - QUIT, INT and ABRT as a worker's app sees them: Gunicorn
 * raises SystemExit in whatever Python frame runs (its handlers call
 * sys.exit). A Python-level handler does that here, reached through
 * Python's own pending-signal machinery from the worker's C handler.
 */
#include "python.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

/* A SIGABRT that lands in the app is almost always the master's WORKER
 * TIMEOUT, and the one question then is "where was it stuck?": the
 * interrupted frame's stack goes to the error log before leaving. */
static void cg__log_abort_stack(cg_log_t *log, PyObject *frame)
{
    PyObject *tb = PyImport_ImportModule("traceback"); /* new */
    PyObject *lines = tb ? PyObject_CallMethod(tb, "format_stack", "O", frame) : NULL;
    PyObject *sep = lines ? PyUnicode_FromString("") : NULL;
    PyObject *text = sep ? PyUnicode_Join(sep, lines) : NULL;
    const char *utf8 = text ? PyUnicode_AsUTF8(text) : NULL;
    if (utf8 != NULL)
        cg_log_error(log,
                     "Worker (pid:%d) aborted (SIGABRT) while the application was running:\n"
                     "Traceback (most recent call last):\n%s",
                     (int)getpid(), utf8);
    else
        PyErr_Clear();
    Py_XDECREF(text);
    Py_XDECREF(sep);
    Py_XDECREF(lines);
    Py_XDECREF(tb);
}

/* handler(signum, frame); self is (exit code, capsule of the cg_log_t). */
static PyObject *cg__py_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *code = PyTuple_GET_ITEM(self, 0);              /* borrowed */
    cg_log_t *log = PyCapsule_GetPointer(PyTuple_GET_ITEM(self, 1), "cgunicorn.log");
    if (log != NULL && nargs >= 2 && PyLong_Check(args[0]) &&
        PyLong_AsLong(args[0]) == SIGABRT && args[1] != Py_None)
        cg__log_abort_stack(log, args[1]);
    PyErr_Clear();
    PyErr_SetObject(PyExc_SystemExit, code);
    return NULL;
}

static PyMethodDef cg__py_exit_def = {"_cgunicorn_exit", (PyCFunction)(void (*)(void))cg__py_exit,
                                      METH_FASTCALL, "Leave the worker (signal handler)."};

int cg_py_worker_signals(void (*c_handler)(int), cg_log_t *log)
{
    static const struct {
        int signo;
        int code;
    } exits[] = {{SIGINT, 0}, {SIGQUIT, 0}, {SIGABRT, 1}};
    PyObject *mod = PyImport_ImportModule("signal"); /* new */
    if (mod == NULL)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < CG_ARRAY_SIZE(exits) && rc == 0; i++) {
        PyObject *cap = PyCapsule_New(log, "cgunicorn.log", NULL);               /* new */
        PyObject *self = cap ? Py_BuildValue("(iN)", exits[i].code, cap) : NULL; /* new */
        PyObject *fn = self ? PyCFunction_New(&cg__py_exit_def, self) : NULL;    /* new */
        PyObject *r = fn ? PyObject_CallMethod(mod, "signal", "iO", exits[i].signo, fn) : NULL;
        rc = r == NULL ? -1 : 0;
        Py_XDECREF(r);
        Py_XDECREF(fn);
        Py_XDECREF(self);
        /* signal.signal() installed Python's C handler: ours goes back in
         * front of it, without SA_RESTART (a blocking syscall gives way) */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sigemptyset(&sa.sa_mask);
        sa.sa_handler = c_handler;
        if (rc == 0 && sigaction(exits[i].signo, &sa, NULL) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            rc = -1;
        }
    }
    Py_DECREF(mod);
    return rc;
}

void cg_py_interrupt_main(int signo)
{
    PyErr_SetInterruptEx(signo);
}
