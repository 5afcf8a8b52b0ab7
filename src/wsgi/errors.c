/* errors.c - wsgi.errors: text written by the app goes to the error log as is,
 * with write(2) and the GIL released around it. */
#include "wsgi.h"

#include <string.h>
#include <unistd.h>

typedef struct {
    PyObject_HEAD
    cg_log_t *log; /* borrowed: the worker's log outlives every request */
} cg_wsgi_errors_t;

static int cg__errors_put(cg_wsgi_errors_t *e, PyObject *s)
{
    Py_ssize_t n;
    const char *p;
    if (PyUnicode_Check(s)) {
        p = PyUnicode_AsUTF8AndSize(s, &n);
        if (p == NULL)
            return -1;
    } else if (PyBytes_Check(s)) {
        p = PyBytes_AS_STRING(s);
        n = PyBytes_GET_SIZE(s);
    } else {
        PyErr_Format(PyExc_TypeError, "write() argument must be str, not %.100s",
                     Py_TYPE(s)->tp_name);
        return -1;
    }
    int fd = e->log->error_fd;
    if (fd < 0 || n == 0)
        return 0;
    /* p stays valid without the GIL: the caller holds s, and neither a str's
     * UTF-8 form nor a bytes object's buffer ever changes */
    Py_BEGIN_ALLOW_THREADS
    while (n > 0) {
        ssize_t w = write(fd, p, (size_t)n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break; /* a log that cannot be written must not fail the request */
        }
        p += w;
        n -= w;
    }
    Py_END_ALLOW_THREADS
    return 0;
}

static PyObject *cg__errors_write(PyObject *self, PyObject *s)
{
    if (cg__errors_put((cg_wsgi_errors_t *)self, s) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *cg__errors_writelines(PyObject *self, PyObject *seq)
{
    PyObject *it = PyObject_GetIter(seq); /* new */
    if (it == NULL)
        return NULL;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        int rc = cg__errors_put((cg_wsgi_errors_t *)self, item);
        Py_DECREF(item);
        if (rc < 0) {
            Py_DECREF(it);
            return NULL;
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *cg__errors_flush(PyObject *self, PyObject *unused)
{
    Py_RETURN_NONE; /* every write is already a write(2) */
}

static PyMethodDef cg__errors_methods[] = {
    {"write", cg__errors_write, METH_O, "Write text to the error log."},
    {"writelines", cg__errors_writelines, METH_O, "Write each string of a sequence."},
    {"flush", cg__errors_flush, METH_NOARGS, "Nothing to flush."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject cg__errors_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "cgunicorn.ErrorStream",
    .tp_basicsize = sizeof(cg_wsgi_errors_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = cg__errors_methods,
};

PyObject *cg_wsgi_errors_new(cg_log_t *log)
{
    cg_wsgi_errors_t *e = PyObject_New(cg_wsgi_errors_t, &cg__errors_type);
    if (e != NULL)
        e->log = log;
    return (PyObject *)e;
}

int cg_wsgi_errors_type_ready(void)
{
    return PyType_Ready(&cg__errors_type);
}
