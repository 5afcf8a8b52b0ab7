/*
 * spew.c - Gunicorn's spew setting: a trace of every line Python runs,
 * printed on stdout by cgunicorn.debug (pylib/cgunicorn/debug.py), whose
 * trace function is installed on the calling thread. Gunicorn installs it in
 * its master, whose main thread every worker forks from; ours installs it
 * in the master where that runs Python, and in each worker.
 */
#include "python.h"

int cg_py_spew(cg_log_t *log)
{
    PyObject *mod = PyImport_ImportModule("cgunicorn.debug"); /* new */
    PyObject *r = mod != NULL ? PyObject_CallMethod(mod, "spew", NULL) : NULL; /* new */
    Py_XDECREF(mod);
    if (r == NULL) {
        cg_py_log_exception(log, CG_LOG_ERROR, "Cannot install the spew trace");
        return -1;
    }
    Py_DECREF(r);
    return 0;
}
