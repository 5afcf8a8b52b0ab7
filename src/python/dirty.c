/*
 * dirty.c - the dirty arbiters' frames in C (docs/dirty.md, "IPC"):
 * pylib/cgunicorn/dirty/_wire.py pickles and unpickles, this file marks the
 * large buffers of a value out-of-band, sends a frame from its pieces with
 * sendmsg() and receives one, all I/O without the GIL.
 *
 * A frame:
 *
 *     type (1 byte), pickle length (4), buffer count (4), big-endian
 *     one 8-byte length per out-of-band buffer, big-endian; top bit set:
 *         the buffer was writable and is received as a bytearray, else bytes
 *     the pickle (protocol 5)
 *     the out-of-band buffers, raw
 *
 * Why in C: a 10 MB bytes argument pickled in-band is copied into the
 * pickle, the pickle joined to its header, received into a bytearray and
 * copied out by the unpickler: three copies beside the kernel's two. Here
 * the sender's iovecs point at the bytes object itself and the receiver's
 * recv() fills the bytes (or bytearray) object it hands to pickle.loads(),
 * so the data is copied by the kernel only, as over a plain socketpair.
 * Python can only recv_into() a writable buffer, which a bytes object is
 * not, so the receive has to be here.
 */
#include "python.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "../workers/worker.h"

#define CG_DIRTY_HEAD 9
#define CG_DIRTY_LEN 8
/* A value with more large buffers than this sends the rest in the pickle:
 * bounds the receiver's allocation of lengths before it has seen data. */
#define CG_DIRTY_MAX_BUFS 1024
#define CG_DIRTY_WRITABLE (UINT64_C(1) << 63)
/* Deeper nesting is pickled as it is (and a cycle stops the walk). */
#define CG_DIRTY_MAX_DEPTH 32
/* The receiver's first read: a whole small frame (a no-op call, its None
 * result) in one recv(); what belongs to the next frame of a stream is
 * kept in the caller's carry bytearray. */
#define CG_DIRTY_SCRATCH 65536
/* iovecs before the out-of-band buffers: the header, the pickle */
#define CG_DIRTY_FIXED_IOV 2
#define CG_DIRTY_STACK_BUFS 8

/* ---- marking large buffers out-of-band ---------------------------------
 *
 * pickle calls neither reducer_override nor persistent_id for an exact
 * bytes object, so the only way to send one out-of-band is to hand the
 * pickler a PickleBuffer in its place. The walk replaces each large bytes
 * or bytearray, and each memoryview (not picklable otherwise), inside
 * lists, tuples and dicts (values), copying only the containers on the
 * way to a replaced buffer: no Python code runs, so nothing it walks can
 * change under it. */

typedef struct {
    Py_ssize_t min;
    int depth;
    int count;
    bool cycle;
    PyObject *path[CG_DIRTY_MAX_DEPTH];
    /* {id(container): its copy}: a container reached twice is copied once,
     * so the receiver sees one shared object as the sender had. New
     * reference, created on the first copy. */
    PyObject *memo;
} cg_dirty_walk_t;

static PyObject *dirty_walk(cg_dirty_walk_t *w, PyObject *o);

/* A PickleBuffer for a memoryview: new reference, or NULL with an
 * exception (a released view). A non-contiguous view is copied first. */
static PyObject *dirty_wrap_view(PyObject *o)
{
    Py_buffer view;
    if (PyObject_GetBuffer(o, &view, PyBUF_FULL_RO) < 0)
        return NULL;
    int contiguous = PyBuffer_IsContiguous(&view, 'C');
    PyBuffer_Release(&view);
    if (contiguous)
        return PyPickleBuffer_FromObject(o);
    PyObject *copy = PyMemoryView_GetContiguous(o, PyBUF_READ, 'C'); /* new */
    if (copy == NULL)
        return NULL;
    PyObject *pb = PyPickleBuffer_FromObject(copy);
    Py_DECREF(copy);
    return pb;
}

/* A copy of container o with item i (list, tuple) or key (dict) about to
 * be replaced: new reference, or NULL with an exception. */
static PyObject *dirty_copy(PyObject *o)
{
    if (PyDict_CheckExact(o))
        return PyDict_Copy(o);
    if (PyList_CheckExact(o))
        return PyList_GetSlice(o, 0, PyList_GET_SIZE(o));
    Py_ssize_t n = PyTuple_GET_SIZE(o);
    PyObject *t = PyTuple_New(n);
    if (t == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(t, i, Py_NewRef(PyTuple_GET_ITEM(o, i)));
    return t;
}

/* Puts r (stolen) at i / key in the copy. 0, or -1 with an exception. */
static int dirty_put(PyObject *copy, Py_ssize_t i, PyObject *key, PyObject *r)
{
    if (PyDict_CheckExact(copy)) {
        int rc = PyDict_SetItem(copy, key, r);
        Py_DECREF(r);
        return rc;
    }
    if (PyList_CheckExact(copy))
        return PyList_SetItem(copy, i, r);
    Py_SETREF(((PyTupleObject *)copy)->ob_item[i], r);
    return 0;
}

static PyObject *dirty_walk_container(cg_dirty_walk_t *w, PyObject *o)
{
    if (w->depth >= CG_DIRTY_MAX_DEPTH)
        return Py_NewRef(o);
    for (int i = 0; i < w->depth; i++) {
        if (w->path[i] == o) {
            w->cycle = true;
            return Py_NewRef(o);
        }
    }
    PyObject *id = NULL;
    if (w->memo != NULL) {
        id = PyLong_FromVoidPtr(o); /* new */
        if (id == NULL)
            return NULL;
        PyObject *seen = PyDict_GetItemWithError(w->memo, id); /* borrowed */
        if (seen != NULL || PyErr_Occurred()) {
            Py_DECREF(id);
            return seen != NULL ? Py_NewRef(seen) : NULL;
        }
    }
    w->path[w->depth++] = o;
    PyObject *copy = NULL;
    Py_ssize_t pos = 0, i = 0;
    for (;; i++) {
        PyObject *key = NULL, *item;
        if (PyDict_CheckExact(o)) {
            if (!PyDict_Next(o, &pos, &key, &item))
                break;
        } else if (PyList_CheckExact(o)) {
            if (i >= PyList_GET_SIZE(o))
                break;
            item = PyList_GET_ITEM(o, i);
        } else {
            if (i >= PyTuple_GET_SIZE(o))
                break;
            item = PyTuple_GET_ITEM(o, i);
        }
        PyObject *r = dirty_walk(w, item); /* new */
        if (r == NULL)
            goto fail;
        if (w->cycle) {
            Py_DECREF(r);
            break;
        }
        if (r == item) {
            Py_DECREF(r);
            continue;
        }
        if (copy == NULL && (copy = dirty_copy(o)) == NULL) {
            Py_DECREF(r);
            goto fail;
        }
        if (dirty_put(copy, i, key, r) < 0)
            goto fail;
    }
    w->depth--;
    if (copy == NULL || w->cycle) {
        Py_XDECREF(copy);
        Py_XDECREF(id);
        return Py_NewRef(o);
    }
    if (w->memo == NULL && (w->memo = PyDict_New()) == NULL)
        goto fail_out;
    if (id == NULL && (id = PyLong_FromVoidPtr(o)) == NULL)
        goto fail_out;
    if (PyDict_SetItem(w->memo, id, copy) < 0)
        goto fail_out;
    Py_DECREF(id);
    return copy;
fail:
    w->depth--;
fail_out:
    Py_XDECREF(copy);
    Py_XDECREF(id);
    return NULL;
}

/* o or its replacement: new reference, or NULL with an exception. */
static PyObject *dirty_walk(cg_dirty_walk_t *w, PyObject *o)
{
    PyTypeObject *t = Py_TYPE(o);
    if (t == &PyBytes_Type || t == &PyByteArray_Type) {
        if (Py_SIZE(o) < w->min || w->count >= CG_DIRTY_MAX_BUFS)
            return Py_NewRef(o);
        w->count++;
        return PyPickleBuffer_FromObject(o);
    }
    if (t == &PyMemoryView_Type) {
        if (w->count >= CG_DIRTY_MAX_BUFS)
            return Py_NewRef(o);
        w->count++;
        return dirty_wrap_view(o);
    }
    if (t == &PyList_Type || t == &PyTuple_Type || t == &PyDict_Type)
        return dirty_walk_container(w, o);
    return Py_NewRef(o);
}

/* _dirty_prepare(value, min) -> value, or a copy of it in which each bytes
 * and bytearray of min bytes or more, and each memoryview, is a
 * PickleBuffer (inside lists, tuples and dict values, up to 32 deep). A
 * value holding a cycle is returned as it is (pickled in-band). */
static PyObject *cg__dirty_prepare(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_dirty_prepare(value, min)");
        return NULL;
    }
    cg_dirty_walk_t w = {.min = PyLong_AsSsize_t(args[1])};
    if (w.min == -1 && PyErr_Occurred())
        return NULL;
    PyObject *r = dirty_walk(&w, args[0]); /* new */
    Py_XDECREF(w.memo);
    if (r != NULL && w.cycle)
        Py_SETREF(r, Py_NewRef(args[0]));
    return r;
}

/* ---- I/O without the GIL ------------------------------------------------ */

typedef struct {
    int fd;
    uint64_t deadline; /* cg_monotonic_ms(); 0: none */
    PyThreadState *save;
    int err;        /* errno of a failed call */
    bool eof;       /* the peer closed before the frame's end */
    bool timed_out; /* deadline passed */
    bool signalled; /* a Python signal handler raised (exception set) */
    /* receive side: the scratch buffer and its unread part */
    char *buf;
    size_t pos, len;
} cg_dirty_io_t;

/* Called without the GIL after EINTR: Python's signal handlers run, as
 * socket.recv() does, so a TERM reaches a worker blocked here. false when
 * one raised (the caller stops). */
static bool dirty_signals(cg_dirty_io_t *io)
{
    PyEval_RestoreThread(io->save);
    int rc = PyErr_CheckSignals();
    io->save = PyEval_SaveThread();
    if (rc < 0) {
        io->signalled = true;
        return false;
    }
    return true;
}

/* Waits (without the GIL) until fd is ready for events, which a socket
 * with a Python timeout (non-blocking underneath) needs after EAGAIN.
 * true to try again; false with io's error fields set. */
static bool dirty_wait(cg_dirty_io_t *io, short events)
{
    int wait = -1;
    if (io->deadline != 0) {
        uint64_t now = cg_monotonic_ms();
        if (now >= io->deadline) {
            io->timed_out = true;
            return false;
        }
        wait = (int)(io->deadline - now > INT_MAX ? INT_MAX : io->deadline - now);
    }
    struct pollfd pfd = {.fd = io->fd, .events = events};
    if (poll(&pfd, 1, wait) < 0) {
        if (errno == EINTR)
            return dirty_signals(io);
        io->err = errno;
        return false;
    }
    return true;
}

/* One recv() into p (at most n); > 0 bytes read, 0 to try again, -1 with
 * io's error fields set. */
static ssize_t dirty_recv_some(cg_dirty_io_t *io, char *p, size_t n)
{
    ssize_t k = recv(io->fd, p, n, 0);
    if (k > 0)
        return k;
    if (k == 0) {
        io->eof = true;
        return -1;
    }
    if (errno == EINTR)
        return dirty_signals(io) ? 0 : -1;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return dirty_wait(io, POLLIN) ? 0 : -1;
    io->err = errno;
    return -1;
}

/* Until io->buf holds n unread bytes (n <= CG_DIRTY_SCRATCH). */
static bool dirty_need(cg_dirty_io_t *io, size_t n)
{
    if (io->len - io->pos >= n)
        return true;
    memmove(io->buf, io->buf + io->pos, io->len - io->pos);
    io->len -= io->pos;
    io->pos = 0;
    while (io->len < n) {
        ssize_t k = dirty_recv_some(io, io->buf + io->len, CG_DIRTY_SCRATCH - io->len);
        if (k < 0)
            return false;
        io->len += (size_t)k;
    }
    return true;
}

/* n bytes into p: what the scratch holds, then recv() straight into p,
 * never past the frame. */
static bool dirty_read(cg_dirty_io_t *io, char *p, size_t n)
{
    size_t have = io->len - io->pos < n ? io->len - io->pos : n;
    memcpy(p, io->buf + io->pos, have);
    io->pos += have;
    while (have < n) {
        ssize_t k = dirty_recv_some(io, p + have, n - have);
        if (k < 0)
            return false;
        have += (size_t)k;
    }
    return true;
}

/* Sends the iovecs (advanced in place) in full. */
static bool dirty_send_all(cg_dirty_io_t *io, struct iovec *iov, int niov)
{
    int i = 0;
    while (i < niov) {
        if (iov[i].iov_len == 0) {
            i++;
            continue;
        }
        struct msghdr m = {.msg_iov = iov + i,
                           .msg_iovlen = (size_t)(niov - i < IOV_MAX ? niov - i : IOV_MAX)};
        ssize_t k = sendmsg(io->fd, &m, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR) {
                if (!dirty_signals(io))
                    return false;
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!dirty_wait(io, POLLOUT))
                    return false;
                continue;
            }
            io->err = errno;
            return false;
        }
        size_t sent = (size_t)k;
        while (i < niov && sent >= iov[i].iov_len) {
            sent -= iov[i].iov_len;
            i++;
        }
        if (sent > 0) {
            iov[i].iov_base = (char *)iov[i].iov_base + sent;
            iov[i].iov_len -= sent;
        }
    }
    return true;
}

/* Sets the Python exception for a failed transfer (with the GIL). */
static void dirty_raise(const cg_dirty_io_t *io)
{
    if (io->signalled)
        return; /* the handler's exception is set */
    if (io->timed_out)
        PyErr_SetString(PyExc_TimeoutError, "timed out");
    else if (io->eof)
        PyErr_SetString(PyExc_EOFError, "connection closed");
    else {
        errno = io->err;
        PyErr_SetFromErrno(PyExc_OSError);
    }
}

/* The fd and deadline arguments shared by _dirty_send and _dirty_recv.
 * timeout: seconds for the whole frame, None for none. 0 or -1. */
static int dirty_io_args(cg_dirty_io_t *io, PyObject *fd, PyObject *timeout)
{
    long fdl = PyLong_AsLong(fd);
    if (fdl == -1 && PyErr_Occurred())
        return -1;
    if (fdl < 0 || fdl > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "bad descriptor");
        return -1;
    }
    io->fd = (int)fdl;
    io->deadline = 0;
    if (timeout != Py_None) {
        double t = PyFloat_AsDouble(timeout);
        if (t == -1.0 && PyErr_Occurred())
            return -1;
        if (!(t >= 0.0 && t < 1e9)) {
            PyErr_SetString(PyExc_ValueError, "bad timeout");
            return -1;
        }
        /* +1: a zero timeout still has a deadline */
        io->deadline = cg_monotonic_ms() + (uint64_t)(t * 1000.0) + 1;
    }
    return 0;
}

static void dirty_put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t dirty_get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* _dirty_send(fd, kind, payload, buffers, timeout): one frame. payload:
 * the pickle (bytes-like); buffers: the PickleBuffers pickle handed its
 * buffer_callback. Raises TimeoutError, OSError (BrokenPipeError when the
 * peer is gone). */
static PyObject *cg__dirty_send(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "_dirty_send(fd, kind, payload, buffers, timeout)");
        return NULL;
    }
    cg_dirty_io_t io = {0};
    if (dirty_io_args(&io, args[0], args[4]) < 0)
        return NULL;
    long kind = PyLong_AsLong(args[1]);
    if (kind == -1 && PyErr_Occurred())
        return NULL;
    PyObject *seq = PySequence_Fast(args[3], "buffers must be a sequence"); /* new */
    if (seq == NULL)
        return NULL;
    Py_ssize_t nbufs = PySequence_Fast_GET_SIZE(seq);
    if (kind < 0 || kind > 255 || nbufs > CG_DIRTY_MAX_BUFS) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "bad frame type or too many buffers");
        return NULL;
    }
    /* the header and the views live on the stack for the usual few
     * buffers; more take one allocation */
    unsigned char head_s[CG_DIRTY_HEAD + CG_DIRTY_LEN * CG_DIRTY_STACK_BUFS];
    Py_buffer views_s[1 + CG_DIRTY_STACK_BUFS];
    struct iovec iov_s[CG_DIRTY_FIXED_IOV + CG_DIRTY_STACK_BUFS];
    unsigned char *head = head_s;
    Py_buffer *views = views_s;
    struct iovec *iov = iov_s;
    void *heap = NULL;
    Py_ssize_t got = 0; /* views acquired */
    PyObject *ret = NULL;
    if (nbufs > CG_DIRTY_STACK_BUFS) {
        size_t n = (size_t)nbufs;
        heap = PyMem_Malloc((CG_DIRTY_HEAD + CG_DIRTY_LEN * n) + sizeof(Py_buffer) * (1 + n) +
                            sizeof(struct iovec) * (CG_DIRTY_FIXED_IOV + n) + 16);
        if (heap == NULL) {
            PyErr_NoMemory();
            goto out;
        }
        views = heap;
        iov = (struct iovec *)(views + 1 + n);
        head = (unsigned char *)(iov + CG_DIRTY_FIXED_IOV + n);
    }
    if (PyObject_GetBuffer(args[2], &views[0], PyBUF_SIMPLE) < 0)
        goto out;
    got = 1;
    if ((uint64_t)views[0].len > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "dirty payload too large");
        goto out;
    }
    head[0] = (unsigned char)kind;
    dirty_put_be(head + 1, (uint64_t)views[0].len, 4);
    dirty_put_be(head + 5, (uint64_t)nbufs, 4);
    for (Py_ssize_t i = 0; i < nbufs; i++) {
        Py_buffer *v = &views[1 + i];
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, i), v, PyBUF_SIMPLE) < 0)
            goto out;
        got++;
        uint64_t len = (uint64_t)v->len | (v->readonly ? 0 : CG_DIRTY_WRITABLE);
        dirty_put_be(head + CG_DIRTY_HEAD + CG_DIRTY_LEN * i, len, CG_DIRTY_LEN);
        iov[CG_DIRTY_FIXED_IOV + i] = (struct iovec){.iov_base = v->buf, .iov_len = (size_t)v->len};
    }
    iov[0] = (struct iovec){.iov_base = head, .iov_len = CG_DIRTY_HEAD + CG_DIRTY_LEN * nbufs};
    iov[1] = (struct iovec){.iov_base = views[0].buf, .iov_len = (size_t)views[0].len};
    io.save = PyEval_SaveThread();
    bool ok = dirty_send_all(&io, iov, CG_DIRTY_FIXED_IOV + (int)nbufs);
    PyEval_RestoreThread(io.save);
    if (!ok) {
        dirty_raise(&io);
        goto out;
    }
    ret = Py_NewRef(Py_None);
out:
    for (Py_ssize_t i = 0; i < got; i++)
        PyBuffer_Release(&views[i]);
    PyMem_Free(heap);
    Py_DECREF(seq);
    return ret;
}

/* _dirty_recv(fd, timeout, carry) -> (kind, payload, buffers): one frame.
 * payload: the pickle as bytes (None when empty); buffers: the
 * out-of-band buffers, each a new bytes (a bytearray when the sender's was
 * writable) the data was received into. carry: a bytearray holding what
 * an earlier call on this connection read past its frame, replaced by
 * what this one did. Raises EOFError when the peer closed first (before or
 * within the frame), TimeoutError, OSError, ValueError on a malformed
 * header. */
static PyObject *cg__dirty_recv(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    if (nargs != 3 || !PyByteArray_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "_dirty_recv(fd, timeout, carry: bytearray)");
        return NULL;
    }
    PyObject *carry = args[2];
    cg_dirty_io_t io = {0};
    if (dirty_io_args(&io, args[0], args[1]) < 0)
        return NULL;
    size_t carried = (size_t)PyByteArray_GET_SIZE(carry);
    if (carried > CG_DIRTY_SCRATCH) {
        PyErr_SetString(PyExc_ValueError, "carry larger than a scratch buffer");
        return NULL;
    }
    io.buf = PyMem_Malloc(CG_DIRTY_SCRATCH);
    if (io.buf == NULL)
        return PyErr_NoMemory();
    memcpy(io.buf, PyByteArray_AS_STRING(carry), carried);
    io.len = carried;
    PyObject *payload = NULL, *list = NULL, *ret = NULL;
    uint64_t lens_s[CG_DIRTY_STACK_BUFS], *lens = lens_s;

    io.save = PyEval_SaveThread();
    /* a caller's socket (with a timeout: non-blocking) waits for the
     * answer first rather than meet EAGAIN on its first recv() */
    bool ok = (io.deadline == 0 || io.len > 0 || dirty_wait(&io, POLLIN)) &&
              dirty_need(&io, CG_DIRTY_HEAD);
    PyEval_RestoreThread(io.save);
    if (!ok) {
        dirty_raise(&io);
        goto out;
    }
    const unsigned char *h = (const unsigned char *)io.buf + io.pos;
    int kind = h[0];
    size_t size = (size_t)dirty_get_be(h + 1, 4);
    size_t nbufs = (size_t)dirty_get_be(h + 5, 4);
    io.pos += CG_DIRTY_HEAD;
    if (nbufs > CG_DIRTY_MAX_BUFS) {
        PyErr_SetString(PyExc_ValueError, "dirty frame with too many buffers");
        goto out;
    }
    if (nbufs > 0) {
        io.save = PyEval_SaveThread();
        ok = dirty_need(&io, CG_DIRTY_LEN * nbufs);
        PyEval_RestoreThread(io.save);
        if (!ok) {
            dirty_raise(&io);
            goto out;
        }
        if (nbufs > CG_DIRTY_STACK_BUFS && (lens = PyMem_Malloc(sizeof(*lens) * nbufs)) == NULL) {
            PyErr_NoMemory();
            goto out;
        }
        for (size_t i = 0; i < nbufs; i++) {
            lens[i] = dirty_get_be((const unsigned char *)io.buf + io.pos, CG_DIRTY_LEN);
            io.pos += CG_DIRTY_LEN;
            if ((lens[i] & ~CG_DIRTY_WRITABLE) > (uint64_t)PY_SSIZE_T_MAX) {
                PyErr_SetString(PyExc_ValueError, "dirty buffer too large");
                goto out;
            }
        }
    }
    /* the objects the data lands in, then all of it without the GIL */
    if (size > 0 && (payload = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size)) == NULL)
        goto out;
    if ((list = PyList_New((Py_ssize_t)nbufs)) == NULL)
        goto out;
    for (size_t i = 0; i < nbufs; i++) {
        Py_ssize_t n = (Py_ssize_t)(lens[i] & ~CG_DIRTY_WRITABLE);
        PyObject *b = lens[i] & CG_DIRTY_WRITABLE ? PyByteArray_FromStringAndSize(NULL, n)
                                                  : PyBytes_FromStringAndSize(NULL, n);
        if (b == NULL)
            goto out;
        PyList_SET_ITEM(list, (Py_ssize_t)i, b);
    }
    /* a small frame is in the scratch already: no need to let go of the
     * GIL (and maybe wait to get it back) for a memcpy */
    uint64_t rest = size;
    for (size_t i = 0; i < nbufs; i++)
        rest += lens[i] & ~CG_DIRTY_WRITABLE;
    bool in_scratch = rest <= io.len - io.pos;
    if (!in_scratch)
        io.save = PyEval_SaveThread();
    ok = payload == NULL || dirty_read(&io, PyBytes_AS_STRING(payload), size);
    for (size_t i = 0; ok && i < nbufs; i++) {
        PyObject *b = PyList_GET_ITEM(list, (Py_ssize_t)i);
        char *p = PyByteArray_CheckExact(b) ? PyByteArray_AS_STRING(b) : PyBytes_AS_STRING(b);
        ok = dirty_read(&io, p, (size_t)(lens[i] & ~CG_DIRTY_WRITABLE));
    }
    if (!in_scratch)
        PyEval_RestoreThread(io.save);
    if (!ok) {
        dirty_raise(&io);
        goto out;
    }
    if (PyByteArray_Resize(carry, (Py_ssize_t)(io.len - io.pos)) < 0)
        goto out;
    memcpy(PyByteArray_AS_STRING(carry), io.buf + io.pos, io.len - io.pos);
    ret = Py_BuildValue("(iOO)", kind, payload != NULL ? payload : Py_None, list);
out:
    Py_XDECREF(payload);
    Py_XDECREF(list);
    if (lens != lens_s)
        PyMem_Free(lens);
    PyMem_Free(io.buf);
    return ret;
}

PyMethodDef cg_py_dirty_methods[] = {
    {"_dirty_prepare", (PyCFunction)(void (*)(void))cg__dirty_prepare, METH_FASTCALL, NULL},
    {"_dirty_send", (PyCFunction)(void (*)(void))cg__dirty_send, METH_FASTCALL, NULL},
    {"_dirty_recv", (PyCFunction)(void (*)(void))cg__dirty_recv, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};
