/*
 * response.c - start_response(), write(), and putting the response on the wire
 * with Gunicorn's status line, default headers, header filtering and framing.
 *
 * The head is built in C from the validated header objects and sent together
 * with the first body bytes in one writev, so a one-element body costs one
 * syscall.
 */
#include "wsgi.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall; /* the interpreter calls through this, no args tuple */
    cg_wsgi_req_t *req; /* NULL when no request is current (object kept by the app) */
} cg_wsgi_bound_t;

/* The one definition of the bound objects' layout: only this file looks
 * inside them. */
void cg_wsgi_bind(PyObject *obj, cg_wsgi_req_t *r)
{
    ((cg_wsgi_bound_t *)obj)->req = r;
}

static PyObject *cg__not_current(void)
{
    PyErr_SetString(PyExc_RuntimeError, "this request is finished");
    return NULL;
}

/* Latin-1 view of a str whose characters are all <= U+00FF, else false. */
static bool cg__latin1(PyObject *s, cg_str_t *out)
{
    if (!PyUnicode_Check(s) || PyUnicode_READY(s) < 0 || PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND)
        return false;
    out->ptr = (const char *)PyUnicode_1BYTE_DATA(s);
    out->len = (size_t)PyUnicode_GET_LENGTH(s);
    return true;
}

static cg_str_t cg__strip(cg_str_t v)
{
    while (v.len > 0 && (v.ptr[0] == ' ' || v.ptr[0] == '\t')) {
        v.ptr++;
        v.len--;
    }
    while (v.len > 0 && (v.ptr[v.len - 1] == ' ' || v.ptr[v.len - 1] == '\t'))
        v.len--;
    return v;
}

void cg_wsgi_req_clear(cg_wsgi_req_t *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        Py_DECREF(r->headers[i].name);
        Py_DECREF(r->headers[i].value);
    }
    if (r->headers != r->headers_inline)
        free(r->headers);
    r->headers = r->headers_inline;
    r->headers_cap = CG_ARRAY_SIZE(r->headers_inline);
    r->nheaders = 0;
    Py_CLEAR(r->status);
}

static void cg__headers_push(cg_wsgi_req_t *r, PyObject *name, PyObject *value, cg_str_t n,
                             cg_str_t v)
{
    if (r->nheaders == r->headers_cap) {
        size_t ncap = r->headers_cap * 2;
        cg_wsgi_header_t *nh = cg_xmalloc(ncap * sizeof(*nh));
        memcpy(nh, r->headers, r->nheaders * sizeof(*nh));
        if (r->headers != r->headers_inline)
            free(r->headers);
        r->headers = nh;
        r->headers_cap = ncap;
    }
    Py_INCREF(name);
    Py_INCREF(value);
    r->headers[r->nheaders] = (cg_wsgi_header_t){name, value, n, v};
    r->nheaders++;
}

/* Gunicorn drops these from app headers: it owns framing and the defaults.
 * Switch on the length first: nearly every app header fails there. */
static bool cg__is_hop_by_hop(cg_str_t n)
{
    switch (n.len) {
    case 2:
        return cg_str_caseeq(n, "te");
    case 4:
        return cg_str_caseeq(n, "date");
    case 6:
        return cg_str_caseeq(n, "server");
    case 7:
        return cg_str_caseeq(n, "upgrade");
    case 8:
        return cg_str_caseeq(n, "trailers");
    case 10:
        return cg_str_caseeq(n, "connection") || cg_str_caseeq(n, "keep-alive");
    case 17:
        return cg_str_caseeq(n, "transfer-encoding");
    case 18:
        return cg_str_caseeq(n, "proxy-authenticate");
    case 19:
        return cg_str_caseeq(n, "proxy-authorization");
    default:
        return false;
    }
}

/* A Content-Length value of plain digits, as nearly every app sends it;
 * -1 for anything else (int()'s other forms are left to Python). */
static int64_t cg__plain_length(cg_str_t v)
{
    if (v.len == 0 || v.len > 18)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return -1;
        n = n * 10 + (v.ptr[i] - '0');
    }
    return n;
}

/* int(status.split()[0]) or -1, as Gunicorn computes status_code. */
static int cg__status_code(cg_str_t s)
{
    size_t i = 0;
    while (i < s.len && (s.ptr[i] == ' ' || s.ptr[i] == '\t'))
        i++;
    long v = 0;
    size_t digits = 0;
    if (i < s.len && s.ptr[i] == '+')
        i++;
    for (; i < s.len && s.ptr[i] >= '0' && s.ptr[i] <= '9' && digits < 9; i++, digits++)
        v = v * 10 + (s.ptr[i] - '0');
    if (digits == 0 || (i < s.len && s.ptr[i] != ' ' && s.ptr[i] != '\t'))
        return -1;
    return (int)v;
}

/* Validate one (name, value) pair as Gunicorn's process_headers() does and
 * keep it unless it is hop-by-hop. Both borrowed. 0, or -1 with an exception. */
static int cg__process_header(cg_wsgi_req_t *r, PyObject *name, PyObject *value)
{
    cg_str_t n, v;
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "%R is not a string", name);
        return -1;
    }
    bool ok = cg__latin1(name, &n) && n.len > 0;
    for (size_t i = 0; ok && i < n.len; i++)
        ok = cg_http_is_tchar((unsigned char)n.ptr[i]);
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "Invalid response header name from the application: %R",
                     name);
        return -1;
    }
    if (!PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%R is not a string", value);
        return -1;
    }
    /* [ \t\x21-\x7e\x80-\xff]*: no CR, LF or other CTL (header injection). */
    ok = cg__latin1(value, &v);
    for (size_t i = 0; ok && i < v.len; i++) {
        unsigned char c = (unsigned char)v.ptr[i];
        ok = c == '\t' || (c >= 0x20 && c != 0x7f);
    }
    if (!ok) {
        /* Gunicorn 27: named by the header, the value left out of the log */
        PyErr_Format(PyExc_ValueError, "Invalid response header from the application: %R", name);
        return -1;
    }
    cg_str_t sv = cg__strip(v);
    if (n.len == 14 && cg_str_caseeq(n, "content-length")) {
        int64_t cl = cg__plain_length(sv);
        if (cl < 0) {
            PyObject *num = PyLong_FromUnicodeObject(value, 10); /* new; int() rules */
            if (num == NULL)
                return -1;
            long long big = PyLong_AsLongLong(num);
            Py_DECREF(num);
            if (big < 0) {
                if (!PyErr_Occurred())
                    PyErr_Format(PyExc_ValueError, "invalid Content-Length %R", value);
                return -1;
            }
            cl = big;
        }
        r->response_length = cl;
    } else if (cg__is_hop_by_hop(n)) {
        if (cg_str_caseeq(n, "connection")) {
            if (cg_str_caseeq(sv, "upgrade"))
                r->upgrade = true;
            return 0;
        }
        if (!cg_str_caseeq(n, "upgrade") || !cg_str_caseeq(sv, "websocket"))
            return 0;
    }
    cg__headers_push(r, name, value, n, sv);
    return 0;
}

static int cg__process_pair(cg_wsgi_req_t *r, PyObject *item)
{
    if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2)
        return cg__process_header(r, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1));
    PyObject *seq = PySequence_Fast(item, "response headers must be (name, value) pairs");
    if (seq == NULL)
        return -1;
    int rc = -1;
    if (PySequence_Fast_GET_SIZE(seq) != 2)
        PyErr_SetString(PyExc_ValueError, "response headers must be (name, value) pairs");
    else
        rc = cg__process_header(r, PySequence_Fast_GET_ITEM(seq, 0),
                                PySequence_Fast_GET_ITEM(seq, 1));
    Py_DECREF(seq);
    return rc;
}

static int cg__process_headers(cg_wsgi_req_t *r, PyObject *headers)
{
    if (PyList_CheckExact(headers)) {
        /* The common case, without an iterator. The item is held: a failing
         * check formats it with repr(), which may run Python code. */
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(headers); i++) {
            PyObject *item = Py_NewRef(PyList_GET_ITEM(headers, i));
            int rc = cg__process_pair(r, item);
            Py_DECREF(item);
            if (rc < 0)
                return -1;
        }
        return 0;
    }
    PyObject *it = PyObject_GetIter(headers); /* new */
    if (it == NULL)
        return -1;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) { /* new */
        int rc = cg__process_pair(r, item);
        Py_DECREF(item);
        if (rc < 0) {
            Py_DECREF(it);
            return -1;
        }
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *cg__start_response(cg_wsgi_req_t *r, PyObject *status, PyObject *headers,
                                    PyObject *exc_info)
{
    if (r == NULL)
        return cg__not_current();

    if (exc_info != Py_None && PyObject_IsTrue(exc_info)) {
        if (r->headers_sent) {
            /* PEP 3333: too late to change the response; re-raise for the app. */
            PyObject *t, *v, *tb;
            if (!PyArg_ParseTuple(exc_info, "OOO", &t, &v, &tb))
                return NULL;
            Py_INCREF(t);
            Py_INCREF(v);
            Py_INCREF(tb);
            PyErr_Restore(t, v, tb == Py_None ? NULL : tb);
            return NULL;
        }
        /* PEP 3333: before anything was sent, the new status and headers
         * replace the old ones (Gunicorn appends them instead). */
        cg_wsgi_req_clear(r);
        r->response_length = -1;
        r->upgrade = false;
    } else if (r->status != NULL) {
        PyErr_SetString(PyExc_AssertionError, "Response headers already set!");
        return NULL;
    }

    cg_str_t st;
    if (!PyUnicode_Check(status)) {
        PyErr_Format(PyExc_TypeError, "%R is not a string", status);
        return NULL;
    }
    /* RFC 9112 section 4 as Gunicorn 27 checks it: three digits, then
     * optionally one space and a reason of HTAB / SP / VCHAR / obs-text, so
     * no CR/LF/CTL can reach the status line. */
    bool ok = cg__latin1(status, &st) && st.len >= 3 && st.ptr[0] >= '0' && st.ptr[0] <= '9' &&
              st.ptr[1] >= '0' && st.ptr[1] <= '9' && st.ptr[2] >= '0' && st.ptr[2] <= '9' &&
              (st.len == 3 || st.ptr[3] == ' ');
    for (size_t i = 4; ok && i < st.len; i++) {
        unsigned char c = (unsigned char)st.ptr[i];
        ok = c == '\t' || (c >= 0x20 && c != 0x7f);
    }
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "Invalid status %R", status);
        return NULL;
    }
    if (cg__process_headers(r, headers) < 0) {
        cg_wsgi_req_clear(r);
        r->response_length = -1;
        return NULL;
    }
    Py_INCREF(status);
    r->status = status;
    r->status_code = cg__status_code(st);

    int code = r->status_code;
    bool is_head = cg_str_eq(r->http->method, "HEAD", 4);
    r->omits_body = is_head || code == 204 || code == 304 || (code >= 100 && code < 200);
    if (code == 204 || (code >= 100 && code < 200)) {
        /* RFC 9110 section 8.6: no Content-Length on 1xx/204. */
        size_t j = 0;
        for (size_t i = 0; i < r->nheaders; i++) {
            if (cg_str_caseeq(r->headers[i].n, "content-length")) {
                Py_DECREF(r->headers[i].name);
                Py_DECREF(r->headers[i].value);
                continue;
            }
            r->headers[j++] = r->headers[i];
        }
        r->nheaders = j;
        r->response_length = -1;
    }
    bool v11 = r->http->version_major > 1 || (r->http->version_major == 1 && r->http->version_minor >= 1);
    /* A uwsgi response body is opaque bytes to the front end (nginx frames
     * it for its client): chunk markers would land in the body, so a body
     * of unknown length ends with the connection (as Gunicorn 27). */
    r->chunked = r->response_length < 0 && v11 && !r->omits_body && !r->ws->uwsgi &&
                 !r->conn->framed;

    PyObject *w = r->ws->write;
    Py_INCREF(w);
    return w;
}

/* start_response(status, headers[, exc_info]) called with keywords or a
 * wrong count: Python's own argument parsing and messages. */
static PyObject *cg__start_response_call(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"status", "headers", "exc_info", NULL};
    PyObject *status, *headers, *exc_info = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:start_response", kwlist, &status, &headers,
                                     &exc_info))
        return NULL;
    return cg__start_response(((cg_wsgi_bound_t *)self)->req, status, headers, exc_info);
}

/* The way apps call it: positional arguments straight from the caller's
 * frame, no tuple built. Anything else goes the tp_call way above. */
static PyObject *cg__start_response_vectorcall(PyObject *self, PyObject *const *args,
                                               size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames == NULL && (nargs == 2 || nargs == 3))
        return cg__start_response(((cg_wsgi_bound_t *)self)->req, args[0], args[1],
                                  nargs == 3 ? args[2] : Py_None);
    PyObject *tuple = PyTuple_New(nargs), *kw = NULL, *res = NULL; /* new */
    if (tuple == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < nargs; i++)
        PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        kw = PyDict_New();
        for (Py_ssize_t i = 0; kw != NULL && i < PyTuple_GET_SIZE(kwnames); i++)
            if (PyDict_SetItem(kw, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0)
                Py_CLEAR(kw);
        if (kw == NULL)
            goto done;
    }
    res = cg__start_response_call(self, tuple, kw);
done:
    Py_DECREF(tuple);
    Py_XDECREF(kw);
    return res;
}

/* Connection header value, as Gunicorn's Response.should_close(). */
static const char *cg__connection_value(const cg_wsgi_req_t *r)
{
    if (r->upgrade)
        return "upgrade";
    /* A worker told to stop (TERM, max_requests) finishes this request and
     * lets the client know it will not take another on this connection. */
    if (r->must_close || !r->http->keep_alive || !r->ws->worker->alive)
        return "close";
    if (r->response_length >= 0 || r->chunked)
        return "keep-alive";
    if (cg_str_eq(r->http->method, "HEAD", 4))
        return "keep-alive";
    if (r->status_code < 200 || r->status_code == 204 || r->status_code == 304)
        return "keep-alive";
    return "close";
}

/* Append to a head being built; the caller sized the buffer. */
#define CG__PUT(p, s, n)                                                                           \
    do {                                                                                           \
        memcpy((p), (s), (n));                                                                     \
        (p) += (n);                                                                                \
    } while (0)

/*
 * Build the status line and headers into *buf (stack buffer `stack` when it
 * fits, else heap: caller frees when *buf != stack). Returns the length.
 */
static size_t cg__build_head(cg_wsgi_req_t *r, char *stack, size_t stackcap, char **buf)
{
    cg_str_t st = {"", 0};
    cg__latin1(r->status, &st);
    const char *conn = cg__connection_value(r);
    r->conn->keep_alive = conn[0] == 'k';
    const char *date = cg_wsgi_http_date(r->ws);
    size_t need = 16 + st.len + 20 + 37 + 14 + strlen(conn) + 2 + 28 + 2;
    for (size_t i = 0; i < r->nheaders; i++)
        need += r->headers[i].n.len + r->headers[i].v.len + 4;
    char *p = *buf = need <= stackcap ? stack : cg_xmalloc(need);
    CG__PUT(p, "HTTP/", 5);
    *p++ = (char)('0' + r->http->version_major % 10);
    *p++ = '.';
    *p++ = (char)('0' + r->http->version_minor % 10);
    *p++ = ' ';
    CG__PUT(p, st.ptr, st.len);
    CG__PUT(p, "\r\nServer: gunicorn\r\nDate: ", 26);
    CG__PUT(p, date, 29);
    CG__PUT(p, "\r\nConnection: ", 14);
    CG__PUT(p, conn, strlen(conn));
    CG__PUT(p, "\r\n", 2);
    if (r->chunked)
        CG__PUT(p, "Transfer-Encoding: chunked\r\n", 28);
    for (size_t i = 0; i < r->nheaders; i++) {
        const cg_wsgi_header_t *h = &r->headers[i];
        CG__PUT(p, h->n.ptr, h->n.len);
        CG__PUT(p, ": ", 2);
        CG__PUT(p, h->v.ptr, h->v.len);
        CG__PUT(p, "\r\n", 2);
    }
    CG__PUT(p, "\r\n", 2);
    return (size_t)(p - *buf);
}

/*
 * Put the head (if not sent yet), `data` framed as the response requires, and
 * the final chunk when `final`, on the wire in one writev. GIL held on entry
 * and exit; released around the syscall (unless the context is cooperative).
 */
static int cg__emit(cg_wsgi_req_t *r, const char *data, size_t len, bool final)
{
    char stack[4096], *head = NULL;
    struct iovec iov[6]; /* head, chunk size, data, chunk end; one more for a cork */
    int n = 0;
    char chunk[24];
    size_t head_len = 0;

    if (r->io_error)
        return r->io_error;
    if (!r->headers_sent && r->ws->rt_on && (r->io_error = cg_wsgi_rt_claim_head(r->ws)) < 0)
        return r->io_error; /* request_timeout answered it already */
    if (!r->headers_sent) {
        head_len = cg__build_head(r, stack, sizeof(stack), &head);
        iov[n++] = (struct iovec){head, head_len};
    }
    if (len > 0) {
        if (r->chunked) {
            int cl = snprintf(chunk, sizeof(chunk), "%zX\r\n", len);
            iov[n++] = (struct iovec){chunk, (size_t)cl};
        }
        iov[n++] = (struct iovec){(void *)data, len};
        if (r->chunked)
            iov[n++] = (struct iovec){final ? "\r\n0\r\n\r\n" : "\r\n", final ? 7u : 2u};
    } else if (final && r->chunked) {
        iov[n++] = (struct iovec){"0\r\n\r\n", 5};
    }
    int rc = 0;
    if (r->cork) {
        char *out = r->ws->out;
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += iov[i].iov_len;
        if (r->corked + total <= sizeof(r->ws->out)) {
            for (int i = 0; i < n; i++) {
                memcpy(out + r->corked, iov[i].iov_base, iov[i].iov_len);
                r->corked += iov[i].iov_len;
            }
            n = 0;
        } else {
            /* too big to hold: what is held goes first, then this */
            r->cork = false;
            if (r->corked > 0) {
                memmove(iov + 1, iov, (size_t)n * sizeof(*iov));
                iov[0] = (struct iovec){out, r->corked};
                n++;
                r->corked = 0;
            }
        }
    }
    if (n > 0) {
        if (cg_wsgi_io_claim(r) < 0) {
            if (head != NULL && head != stack)
                free(head);
            return -EBUSY;
        }
        CG_WSGI_IO_BEGIN(r->ws)
        rc = cg_conn_writev_all(r->conn, iov, n);
        CG_WSGI_IO_END()
        cg_wsgi_io_release(r);
    }
    if (head != NULL && head != stack)
        free(head);
    r->headers_sent = true;
    if (rc < 0)
        r->io_error = rc;
    return rc;
}

int cg_wsgi_send_headers(cg_wsgi_req_t *r, const char *body, size_t body_len)
{
    return cg__emit(r, body, body_len, false);
}

/* Gunicorn's Response.write() bookkeeping: Content-Length truncation, no-body
 * responses, empty chunks skipped. Returns 0 or -errno. */
static int cg__write_framed(cg_wsgi_req_t *r, const char *data, size_t len, bool final)
{
    if (r->omits_body) {
        if (len > 0 && !r->omits_warned) {
            r->omits_warned = true;
            cg_log_warning(r->ws->log,
                           "WSGI app sent body bytes on a no-body response (method=%.*s "
                           "status=%d); dropping per RFC 9110.",
                           (int)r->http->method.len, r->http->method.ptr, r->status_code);
        }
        len = 0;
    } else if (r->response_length >= 0) {
        int64_t room = r->response_length - r->sent;
        if (room <= 0)
            len = 0;
        else if ((int64_t)len > room)
            len = (size_t)room;
    }
    if (len == 0 && r->headers_sent && !(final && r->chunked))
        return 0;
    int rc = cg__emit(r, data, len, final);
    if (rc != -EBUSY)
        r->sent += (int64_t)len;
    return rc;
}

int cg_wsgi_write_body(cg_wsgi_req_t *r, const char *data, size_t len)
{
    return cg__write_framed(r, data, len, false);
}

static int cg__trailers_out(cg_wsgi_req_t *r);

int cg_wsgi_finish(cg_wsgi_req_t *r)
{
    int rc = r->headers_sent && !r->chunked ? r->io_error : cg__write_framed(r, NULL, 0, true);
    if (rc == 0 && r->trailers != NULL)
        rc = cg__trailers_out(r);
    if (rc == 0 && !r->omits_body && r->response_length >= 0 && r->sent < r->response_length) {
        /* The head promised more than the app gave: the client is still
         * waiting for the rest, and anything sent next on this connection
         * would be read as that rest. Only closing ends the body. */
        cg_log_warning(r->ws->log,
                       "Response body shorter than its Content-Length (%lld of %lld bytes): "
                       "closing the connection",
                       (long long)r->sent, (long long)r->response_length);
        r->conn->keep_alive = false;
    }
    return rc;
}

static PyObject *cg__write_call(PyObject *self, PyObject *args, PyObject *kwds)
{
    cg_wsgi_req_t *r = ((cg_wsgi_bound_t *)self)->req;
    PyObject *data;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) > 0) {
        PyErr_SetString(PyExc_TypeError, "write() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O:write", &data))
        return NULL;
    if (r == NULL)
        return cg__not_current();
    if (r->status == NULL) {
        PyErr_SetString(PyExc_AssertionError, "write() before start_response()");
        return NULL;
    }
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "%R is not a byte", data);
        return NULL;
    }
    if (cg_wsgi_write_body(r, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data)) < 0) {
        if (PyErr_Occurred()) /* another thread is writing */
            return NULL;
        errno = -r->io_error;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

/* One (name, value) pair an app hands to early_hints or send_trailers:
 * each str (latin-1) or bytes, a token for a name and a value without
 * CR/LF/CTL, as response headers. Views into item's objects (alive while
 * item is); the value without surrounding SP/HTAB. 0, or -1 with
 * ValueError/TypeError set (`what` names the caller in the message). */
static int cg__field_pair(PyObject *item, const char *what, cg_str_t *ns, cg_str_t *vs)
{
    PyObject *n = NULL, *v = NULL;
    if (!PyArg_ParseTuple(item, "OO", &n, &v))
        return -1;
    bool ok = true;
    if (PyBytes_Check(n))
        *ns = (cg_str_t){PyBytes_AS_STRING(n), (size_t)PyBytes_GET_SIZE(n)};
    else
        ok = cg__latin1(n, ns);
    if (ok && PyBytes_Check(v))
        *vs = (cg_str_t){PyBytes_AS_STRING(v), (size_t)PyBytes_GET_SIZE(v)};
    else if (ok)
        ok = cg__latin1(v, vs);
    for (size_t i = 0; ok && i < ns->len; i++)
        ok = cg_http_is_tchar((unsigned char)ns->ptr[i]);
    ok = ok && ns->len > 0;
    for (size_t i = 0; ok && i < vs->len; i++) {
        unsigned char c = (unsigned char)vs->ptr[i];
        ok = c == '\t' || (c >= 0x20 && c != 0x7f);
    }
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "Invalid HTTP header in %s: %R", what, item);
        return -1;
    }
    *vs = cg__strip(*vs);
    return 0;
}

/* gunicorn.http2.send_trailers(trailers): Gunicorn's HTTP/2 trailers,
 * queued here and sent after the body (cg_wsgi_finish). Only in the
 * environ of a request whose transport can send trailers. */
static PyObject *cg__send_trailers_call(PyObject *self, PyObject *args, PyObject *kwds)
{
    cg_wsgi_req_t *r = ((cg_wsgi_bound_t *)self)->req;
    PyObject *trailers;
    if (!PyArg_ParseTuple(args, "O:send_trailers", &trailers))
        return NULL;
    if (r == NULL)
        return cg__not_current();
    PyObject *it = PyObject_GetIter(trailers); /* new */
    if (it == NULL)
        return NULL;
    if (r->trailers == NULL && (r->trailers = PyList_New(0)) == NULL) {
        Py_DECREF(it);
        return NULL;
    }
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) { /* new */
        cg_str_t ns, vs;
        int rc = cg__field_pair(item, "trailers", &ns, &vs);
        if (rc == 0)
            rc = PyList_Append(r->trailers, item);
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

/* The trailers queued by send_trailers, to the transport (GIL held: the
 * op only copies them). 0 or -errno (r->io_error), -1 with an exception
 * when an item changed into something invalid meanwhile. */
static int cg__trailers_out(cg_wsgi_req_t *r)
{
    Py_ssize_t n = PyList_GET_SIZE(r->trailers);
    if (n == 0 || r->conn->ops->trailers == NULL)
        return 0;
    cg_str_t *f = cg_xmalloc(2 * (size_t)n * sizeof(*f));
    int rc = 0;
    for (Py_ssize_t i = 0; i < n && rc == 0; i++)
        rc = cg__field_pair(PyList_GET_ITEM(r->trailers, i), "trailers", &f[2 * i],
                            &f[2 * i + 1]);
    if (rc == 0) {
        rc = r->conn->ops->trailers(r->conn, f, (size_t)n);
        if (rc < 0)
            r->io_error = rc;
    }
    free(f);
    return rc;
}

static PyObject *cg__early_hints_call(PyObject *self, PyObject *args, PyObject *kwds)
{
    cg_wsgi_req_t *r = ((cg_wsgi_bound_t *)self)->req;
    PyObject *headers;
    if (!PyArg_ParseTuple(args, "O:early_hints", &headers))
        return NULL;
    if (r == NULL)
        return cg__not_current();
    bool v11 = r->http->version_major > 1 || (r->http->version_major == 1 && r->http->version_minor >= 1);
    if (r->headers_sent || !v11)
        Py_RETURN_NONE;
    /* Validate like response headers (bytes are accepted as latin-1 here). */
    PyObject *it = PyObject_GetIter(headers);
    if (it == NULL)
        return NULL;
    size_t cap = 64, len = 0;
    char *buf = cg_xmalloc(cap);
    memcpy(buf, "HTTP/1.1 103 Early Hints\r\n", 26);
    len = 26;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        cg_str_t ns, vs;
        if (cg__field_pair(item, "early hints", &ns, &vs) < 0) {
            Py_DECREF(item);
            goto fail;
        }
        if (len + ns.len + vs.len + 6 > cap) {
            cap = (len + ns.len + vs.len + 6) * 2;
            buf = cg_xrealloc(buf, cap);
        }
        memcpy(buf + len, ns.ptr, ns.len);
        len += ns.len;
        memcpy(buf + len, ": ", 2);
        len += 2;
        memcpy(buf + len, vs.ptr, vs.len);
        len += vs.len;
        memcpy(buf + len, "\r\n", 2);
        len += 2;
        Py_DECREF(item);
    }
    if (PyErr_Occurred())
        goto fail;
    Py_DECREF(it);
    if (len + 2 > cap)
        buf = cg_xrealloc(buf, len + 2);
    memcpy(buf + len, "\r\n", 2);
    len += 2;
    int rc;
    CG_WSGI_IO_BEGIN(r->ws)
    rc = cg_conn_write_all(r->conn, buf, len);
    CG_WSGI_IO_END()
    free(buf);
    if (rc < 0) {
        r->io_error = rc;
        errno = -rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
fail:
    Py_DECREF(it);
    free(buf);
    return NULL;
}

#define CG__BOUND_TYPE(var, tpname, call, flags, vcall)                                           \
    static PyTypeObject var = {                                                                    \
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = tpname,                                           \
        .tp_basicsize = sizeof(cg_wsgi_bound_t),                                                   \
        .tp_flags = Py_TPFLAGS_DEFAULT | (flags),                                                  \
        .tp_vectorcall_offset = (vcall) ? offsetof(cg_wsgi_bound_t, vectorcall) : 0,              \
        .tp_call = call,                                                                           \
        .tp_new = NULL,                                                                            \
    }

/* start_response is called once per request: vectorcall. tp_call stays the
 * PyArg path, which vectorcall falls back to for keywords. */
CG__BOUND_TYPE(cg__start_response_type, "cgunicorn.StartResponse", cg__start_response_call,
               Py_TPFLAGS_HAVE_VECTORCALL, 1);
CG__BOUND_TYPE(cg__write_type, "cgunicorn.Write", cg__write_call, 0, 0);
CG__BOUND_TYPE(cg__early_hints_type, "cgunicorn.EarlyHints", cg__early_hints_call, 0, 0);
CG__BOUND_TYPE(cg__send_trailers_type, "cgunicorn.SendTrailers", cg__send_trailers_call, 0, 0);

static PyObject *cg__bound_new(PyTypeObject *t)
{
    cg_wsgi_bound_t *o = PyObject_New(cg_wsgi_bound_t, t); /* new */
    if (o != NULL) {
        o->req = NULL;
        o->vectorcall = t == &cg__start_response_type ? cg__start_response_vectorcall : NULL;
    }
    return (PyObject *)o;
}

PyObject *cg_wsgi_start_response_new(void)
{
    return cg__bound_new(&cg__start_response_type);
}

PyObject *cg_wsgi_write_new(void)
{
    return cg__bound_new(&cg__write_type);
}

PyObject *cg_wsgi_early_hints_new(void)
{
    return cg__bound_new(&cg__early_hints_type);
}

PyObject *cg_wsgi_send_trailers_new(void)
{
    return cg__bound_new(&cg__send_trailers_type);
}

int cg_wsgi_response_types_ready(void)
{
    if (PyType_Ready(&cg__start_response_type) < 0 || PyType_Ready(&cg__write_type) < 0 ||
        PyType_Ready(&cg__early_hints_type) < 0 || PyType_Ready(&cg__send_trailers_type) < 0)
        return -1;
    return 0;
}
