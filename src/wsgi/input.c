/*
 * input.c - wsgi.input: the request body as a C file-like object.
 *
 * Bytes come from cg_conn_body_read() (Content-Length or chunked): what the
 * gthread loop read ahead of the app, then the socket, with the GIL released
 * around the reads. Nothing more is buffered here than one read-ahead block
 * for readline().
 */
#include "wsgi.h"

#include <string.h>

#define CG_INPUT_BLOCK 8192

typedef struct {
    PyObject_HEAD
    cg_wsgi_req_t *req; /* must stay first: cg_wsgi_bind() sets it */
    char *rbuf;         /* read-ahead for readline (owned) */
    size_t roff, rlen, rcap;
    bool eof;
} cg_wsgi_input_t;

/* Pull up to cap body bytes. Returns > 0, 0 at the end, -1 with an exception. */
static Py_ssize_t cg__pull(cg_wsgi_input_t *in, char *dst, size_t cap)
{
    cg_wsgi_req_t *r = in->req;
    if (in->eof || cap == 0)
        return 0;
    if (cg_wsgi_io_claim(r) < 0)
        return -1;
    ssize_t n;
    CG_WSGI_IO_BEGIN(r->ws)
    n = cg_conn_body_read(r->conn, dst, cap);
    CG_WSGI_IO_END()
    cg_wsgi_io_release(r);
    if (n > 0)
        return n;
    if (n == 0) {
        in->eof = true;
        return 0;
    }
    in->eof = true;
    r->body_error = true;
    if (n == -EPROTO) {
        char text[512];
        cg_http_error_text(&r->conn->body.error, text, sizeof(text));
        PyErr_Format(PyExc_OSError, "%s: %s", cg_http_error_name(r->conn->body.error.code), text);
    } else {
        errno = (int)-n;
        PyErr_SetFromErrno(PyExc_OSError);
    }
    return -1;
}

static bool cg__check(cg_wsgi_input_t *in)
{
    if (in->req == NULL) {
        PyErr_SetString(PyExc_ValueError, "I/O operation on a finished request's wsgi.input");
        return false;
    }
    return true;
}

static int cg__size_arg(PyObject *arg, Py_ssize_t *size)
{
    *size = -1;
    if (arg == NULL || arg == Py_None)
        return 0;
    if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "size must be an integer, not %.100s", Py_TYPE(arg)->tp_name);
        return -1;
    }
    *size = PyLong_AsSsize_t(arg);
    if (*size == -1 && PyErr_Occurred())
        return -1;
    if (*size < 0)
        *size = -1;
    return 0;
}

/* read(size=-1): exactly size bytes unless the body ends first. */
static PyObject *cg__read(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    cg_wsgi_input_t *in = (cg_wsgi_input_t *)self;
    Py_ssize_t size;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "read() takes at most 1 argument");
        return NULL;
    }
    if (!cg__check(in) || cg__size_arg(nargs ? args[0] : NULL, &size) < 0)
        return NULL;

    /* What the app asks for is no reason to allocate it: read(10**9) on a
     * short body takes what the body has, growing as bytes come. */
    Py_ssize_t cap = size >= 0 && size < CG_INPUT_BLOCK * 8 ? size : CG_INPUT_BLOCK * 8;
    PyObject *out = PyBytes_FromStringAndSize(NULL, cap); /* new */
    if (out == NULL)
        return NULL;
    Py_ssize_t have = 0;
    size_t from_buf = in->rlen - in->roff;
    if (from_buf > 0) {
        if (size >= 0 && (Py_ssize_t)from_buf > size)
            from_buf = (size_t)size;
        if ((Py_ssize_t)from_buf > cap) {
            if (_PyBytes_Resize(&out, (Py_ssize_t)from_buf) < 0)
                return NULL;
            cap = (Py_ssize_t)from_buf;
        }
        memcpy(PyBytes_AS_STRING(out), in->rbuf + in->roff, from_buf);
        in->roff += from_buf;
        have = (Py_ssize_t)from_buf;
    }
    for (;;) {
        if (size >= 0 && have >= size)
            break;
        if (have == cap) {
            cap = size >= 0 && size - cap < cap ? size : cap * 2;
            if (_PyBytes_Resize(&out, cap) < 0)
                return NULL;
        }
        Py_ssize_t n = cg__pull(in, PyBytes_AS_STRING(out) + have, (size_t)(cap - have));
        if (n < 0) {
            Py_DECREF(out);
            return NULL;
        }
        if (n == 0)
            break;
        have += n;
    }
    if (have != cap && _PyBytes_Resize(&out, have) < 0)
        return NULL;
    return out;
}

/* Make sure the read-ahead holds a newline or `want` bytes or the whole rest. */
static int cg__fill_line(cg_wsgi_input_t *in, Py_ssize_t want, size_t *line_len)
{
    size_t scanned = 0;
    for (;;) {
        size_t avail = in->rlen - in->roff;
        char *nl = avail > scanned ? memchr(in->rbuf + in->roff + scanned, '\n', avail - scanned)
                                   : NULL;
        if (nl != NULL) {
            *line_len = (size_t)(nl - (in->rbuf + in->roff)) + 1;
            break;
        }
        scanned = avail;
        if ((want >= 0 && avail >= (size_t)want) || in->eof) {
            *line_len = avail;
            break;
        }
        /* Compact, grow if full, and read one more block. */
        if (in->roff > 0) {
            memmove(in->rbuf, in->rbuf + in->roff, avail);
            in->rlen = avail;
            in->roff = 0;
        }
        if (in->rcap - in->rlen < CG_INPUT_BLOCK) {
            in->rcap = in->rcap ? in->rcap * 2 : CG_INPUT_BLOCK;
            if (in->rcap < in->rlen + CG_INPUT_BLOCK)
                in->rcap = in->rlen + CG_INPUT_BLOCK;
            in->rbuf = cg_xrealloc(in->rbuf, in->rcap);
        }
        Py_ssize_t n = cg__pull(in, in->rbuf + in->rlen, in->rcap - in->rlen);
        if (n < 0)
            return -1;
        in->rlen += (size_t)n;
    }
    if (want >= 0 && *line_len > (size_t)want)
        *line_len = (size_t)want;
    return 0;
}

static PyObject *cg__readline_impl(cg_wsgi_input_t *in, Py_ssize_t size)
{
    size_t len;
    if (!cg__check(in) || cg__fill_line(in, size, &len) < 0)
        return NULL;
    PyObject *out = PyBytes_FromStringAndSize(in->rbuf ? in->rbuf + in->roff : "", (Py_ssize_t)len);
    if (out != NULL)
        in->roff += len;
    return out;
}

static PyObject *cg__readline(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "readline() takes at most 1 argument");
        return NULL;
    }
    if (cg__size_arg(nargs ? args[0] : NULL, &size) < 0)
        return NULL;
    return cg__readline_impl((cg_wsgi_input_t *)self, size);
}

static PyObject *cg__readlines(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t hint;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "readlines() takes at most 1 argument");
        return NULL;
    }
    if (cg__size_arg(nargs ? args[0] : NULL, &hint) < 0)
        return NULL;
    PyObject *list = PyList_New(0); /* new */
    if (list == NULL)
        return NULL;
    Py_ssize_t total = 0;
    for (;;) {
        PyObject *line = cg__readline_impl((cg_wsgi_input_t *)self, -1); /* new */
        if (line == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        Py_ssize_t n = PyBytes_GET_SIZE(line);
        if (n == 0) {
            Py_DECREF(line);
            break;
        }
        int rc = PyList_Append(list, line);
        Py_DECREF(line);
        if (rc < 0) {
            Py_DECREF(list);
            return NULL;
        }
        total += n;
        if (hint > 0 && total >= hint)
            break;
    }
    return list;
}

static PyObject *cg__iternext(PyObject *self)
{
    PyObject *line = cg__readline_impl((cg_wsgi_input_t *)self, -1);
    if (line != NULL && PyBytes_GET_SIZE(line) == 0) {
        Py_DECREF(line);
        return NULL; /* StopIteration */
    }
    return line;
}

static void cg__dealloc(PyObject *self)
{
    cg_wsgi_input_t *in = (cg_wsgi_input_t *)self;
    free(in->rbuf);
    Py_TYPE(self)->tp_free(self);
}

static PyMethodDef cg__methods[] = {
    {"read", (PyCFunction)(void (*)(void))cg__read, METH_FASTCALL, "Read up to size bytes."},
    {"readline", (PyCFunction)(void (*)(void))cg__readline, METH_FASTCALL, "Read one line."},
    {"readlines", (PyCFunction)(void (*)(void))cg__readlines, METH_FASTCALL, "Read lines."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject cg__input_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "cgunicorn.Input",
    .tp_basicsize = sizeof(cg_wsgi_input_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = cg__dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = cg__iternext,
    .tp_methods = cg__methods,
};

PyObject *cg_wsgi_input_new(void)
{
    cg_wsgi_input_t *in = PyObject_New(cg_wsgi_input_t, &cg__input_type); /* new */
    if (in == NULL)
        return NULL;
    in->req = NULL;
    in->rbuf = NULL;
    in->roff = in->rlen = in->rcap = 0;
    in->eof = false;
    return (PyObject *)in;
}


void cg_wsgi_input_reset(PyObject *obj, cg_wsgi_req_t *r)
{
    cg_wsgi_input_t *in = (cg_wsgi_input_t *)obj;
    in->req = r;
    in->roff = in->rlen = 0;
    in->eof = false;
    if (in->rcap > 4 * CG_INPUT_BLOCK) {
        /* Do not keep a long line's buffer alive for the next request. */
        free(in->rbuf);
        in->rbuf = NULL;
        in->rcap = 0;
    }
}

int cg_wsgi_input_type_ready(void)
{
    return PyType_Ready(&cg__input_type);
}
