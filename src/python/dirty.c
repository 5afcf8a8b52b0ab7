/*
 * dirty.c - the one piece of the dirty arbiters' IPC written in C
 * (pylib/cgunicorn/dirty/_wire.py does the rest): receive n bytes from a
 * socket straight into a new bytes object, without the GIL.
 *
 * A large argument or result (a 10 MB image) crosses as an out-of-band
 * pickle buffer. Python can only receive into a bytearray, which then has
 * to be copied into the bytes the caller expects, and on a machine where
 * touching fresh memory is slow that copy costs as much as the transfer;
 * here the bytes object is the receive buffer.
 */
#include "python.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>

#include "../workers/worker.h"

/* _dirty_recv_bytes(fd, n, timeout) -> bytes of length n. timeout: seconds
 * for all of it (None or negative: none). Raises TimeoutError, EOFError
 * when the peer closed first, OSError. */
static PyObject *cg__dirty_recv_bytes(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "_dirty_recv_bytes(fd, n, timeout)");
        return NULL;
    }
    long fdl = PyLong_AsLong(args[0]);
    int fd = (int)fdl;
    Py_ssize_t n = PyLong_AsSsize_t(args[1]);
    double timeout = args[2] == Py_None ? -1.0 : PyFloat_AsDouble(args[2]);
    if (PyErr_Occurred())
        return NULL;
    if (n < 0 || fdl < 0 || fdl > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "bad descriptor or size");
        return NULL;
    }
    PyObject *b = PyBytes_FromStringAndSize(NULL, n); /* new */
    if (b == NULL)
        return NULL;
    char *p = PyBytes_AS_STRING(b);
    uint64_t deadline = timeout >= 0 ? cg_monotonic_ms() + (uint64_t)(timeout * 1000.0) : 0;
    Py_ssize_t got = 0;
    int err = 0;
    bool eof = false, timed_out = false;
    Py_BEGIN_ALLOW_THREADS
    while (got < n) {
        ssize_t k = recv(fd, p + got, (size_t)(n - got), 0);
        if (k > 0) {
            got += k;
            continue;
        }
        if (k == 0) {
            eof = true;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            err = errno;
            break;
        }
        /* a socket with a timeout is non-blocking underneath */
        int wait = -1;
        if (deadline != 0) {
            uint64_t now = cg_monotonic_ms();
            if (now >= deadline) {
                timed_out = true;
                break;
            }
            wait = (int)(deadline - now);
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, wait) < 0 && errno != EINTR) {
            err = errno;
            break;
        }
    }
    Py_END_ALLOW_THREADS
    if (got == n)
        return b;
    Py_DECREF(b);
    if (timed_out)
        PyErr_SetString(PyExc_TimeoutError, "timed out");
    else if (eof)
        PyErr_SetString(PyExc_EOFError, "connection closed");
    else {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
    }
    return NULL;
}

PyMethodDef cg_py_dirty_methods[] = {
    {"_dirty_recv_bytes", (PyCFunction)(void (*)(void))cg__dirty_recv_bytes, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};
