/*
 * http.c - one request of the ASGI worker (a "cycle"): its scope, the
 * receive/send callables the app gets, the response head and framing, what
 * happens when the app fails, and the access record.
 *
 * The response rules are the WSGI writer's (src/wsgi/response.c): status
 * line in the request's HTTP version, Server: gunicorn and Date unless the
 * app gives its own, Connection decided the same way, chunked framing on
 * HTTP/1.1 when there is no Content-Length, no body on HEAD/1xx/204/304.
 */
#include "asgi.h"

#include "../metrics/statsd.h"
#include "../python/python.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static PyTypeObject *cg__cycle_type;

static void cg__cycle_dealloc(PyObject *self)
{
    cg_asgi_cycle_t *cy = (cg_asgi_cycle_t *)self;
    PyTypeObject *tp = Py_TYPE(self);
    Py_XDECREF((PyObject *)cy->p);
    Py_XDECREF(cy->rx_waiter);
    Py_XDECREF(cy->tx_waiter);
    Py_XDECREF(cy->trailer_list);
    free(cy->rest);
    Py_XDECREF(cy->task);
    Py_XDECREF(cy->hook_req);
    Py_XDECREF(cy->hook_env);
    free(cy->head);
    if (cy->ws != NULL)
        cg_asgi_ws_free(cy->ws);
    if (cy->a != NULL) /* the request is over, answered or not */
        cg_board_leave(cy->a->board, cg_monotonic_us());
    PyObject_Free(self);
    Py_DECREF(tp);
}

static PyType_Slot cg__cycle_slots[] = {
    {Py_tp_dealloc, (void *)cg__cycle_dealloc},
    {0, NULL},
};

static PyType_Spec cg__cycle_spec = {
    .name = "cgunicorn.asgi.RequestCycle",
    .basicsize = sizeof(cg_asgi_cycle_t),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = cg__cycle_slots,
};

cg_asgi_cycle_t *cg_asgi_cycle_new(cg_asgi_proto_t *p)
{
    if (cg_asgi_type(&cg__cycle_type, &cg__cycle_spec) == NULL)
        return NULL;
    cg_asgi_cycle_t *cy = PyObject_New(cg_asgi_cycle_t, cg__cycle_type); /* new */
    if (cy == NULL)
        return NULL;
    memset((char *)cy + sizeof(PyObject), 0, sizeof(*cy) - sizeof(PyObject));
    cy->a = p->a;
    cy->p = (cg_asgi_proto_t *)Py_NewRef((PyObject *)p);
    cy->c = &p->c;
    cy->length = -1;
    cy->start_us = cg_log_access_enabled(p->a->log) || p->a->log->statsd != NULL ||
                           p->a->board != NULL || p->a->cfg->request_timeout > 0
                       ? (int64_t)cg_monotonic_us()
                       : 0;
    cg_board_enter(p->a->board, (uint64_t)cy->start_us);
    return cy;
}

/* The request's connection is gone (closed, or its HTTP/2 stream reset). */
static bool cg__gone(cg_asgi_cycle_t *cy)
{
    return cy->p == NULL || cy->p->closed || (cy->st != NULL && cg_asgi_h2_gone(cy));
}

/* Response bytes: to the transport, or into the HTTP/2 stream's view. 0, or
 * -1 with an exception set. */
static int cg__write(cg_asgi_cycle_t *cy, const char *data, size_t len, PyObject *obj)
{
    if (cy->st != NULL)
        return cg_asgi_h2_write(cy, data, len);
    if (obj != NULL)
        return cg_asgi_proto_write_obj(cy->p, obj);
    return cg_asgi_proto_write(cy->p, data, len);
}

/* The response is over (ok: complete, or an error page): log it, then the
 * connection's next request, or the stream handed back. */
static void cg__response_done(cg_asgi_cycle_t *cy, bool ok)
{
    if (cy->st != NULL)
        cg_asgi_h2_done(cy, ok);
    else
        cg_asgi_proto_response_done(cy->p);
}

void cg_asgi_cycle_wake(cg_asgi_cycle_t *cy)
{
    if (cy->rx_waiter == NULL)
        return;
    PyObject *w = cy->rx_waiter;
    cy->rx_waiter = NULL;
    cg_asgi_resolve(cy->a, w, Py_None);
    Py_DECREF(w);
}

/* ---- scope ---- */

static PyObject *cg__bytes(cg_str_t s)
{
    return PyBytes_FromStringAndSize(s.ptr ? s.ptr : "", (Py_ssize_t)s.len);
}

/* Whether the request's kept fields are the pairs of `prev` (a tuple of
 * (lower-case name, value) bytes pairs). */
static bool cg__headers_same(PyObject *prev, const cg_http_request_t *req)
{
    Py_ssize_t k = 0, n = PyTuple_GET_SIZE(prev);
    for (size_t i = 0; i < req->nheaders; i++) {
        const cg_http_header_t *h = &req->headers[i];
        if (h->flags & CG_HTTP_HF_DROPPED)
            continue;
        if (k >= n)
            return false;
        PyObject *pair = PyTuple_GET_ITEM(prev, k++);
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        if ((size_t)PyBytes_GET_SIZE(name) != h->name.len ||
            (size_t)PyBytes_GET_SIZE(value) != h->value.len ||
            (h->value.len > 0 && memcmp(PyBytes_AS_STRING(value), h->value.ptr, h->value.len) != 0))
            return false;
        const char *lower = PyBytes_AS_STRING(name);
        for (size_t c = 0; c < h->name.len; c++) {
            char ch = h->name.ptr[c];
            if ((ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch) != lower[c])
                return false;
        }
    }
    return k == n;
}

/* [(lower-case name, value), ...] as bytes, the fields the parser dropped
 * left out. A client sends the same fields again and again on a kept-alive
 * connection: the pairs (immutable) of p's last request are reused then,
 * in a new list (the app may change its own). */
static PyObject *cg__headers(cg_asgi_proto_t *p, const cg_http_request_t *req)
{
    PyObject *list;
    if (p->hdrs != NULL && cg__headers_same(p->hdrs, req)) {
        Py_ssize_t n = PyTuple_GET_SIZE(p->hdrs);
        if ((list = PyList_New(n)) == NULL) /* new */
            return NULL;
        for (Py_ssize_t k = 0; k < n; k++)
            PyList_SET_ITEM(list, k, Py_NewRef(PyTuple_GET_ITEM(p->hdrs, k)));
        return list;
    }
    if ((list = PyList_New(0)) == NULL) /* new */
        return NULL;
    for (size_t i = 0; i < req->nheaders; i++) {
        const cg_http_header_t *h = &req->headers[i];
        if (h->flags & CG_HTTP_HF_DROPPED)
            continue;
        char stack[128];
        char *lower = h->name.len <= sizeof(stack) ? stack : cg_xmalloc(h->name.len);
        for (size_t k = 0; k < h->name.len; k++) {
            char ch = h->name.ptr[k];
            lower[k] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
        }
        PyObject *n = PyBytes_FromStringAndSize(lower, (Py_ssize_t)h->name.len); /* new */
        if (lower != stack)
            free(lower);
        PyObject *v = n ? cg__bytes(h->value) : NULL;         /* new */
        PyObject *t = v ? PyTuple_Pack(2, n, v) : NULL;        /* new */
        int rc = t ? PyList_Append(list, t) : -1;
        Py_XDECREF(n);
        Py_XDECREF(v);
        Py_XDECREF(t);
        if (rc < 0) {
            Py_DECREF(list);
            return NULL;
        }
    }
    PyObject *pairs = PyList_AsTuple(list); /* new */
    if (pairs == NULL) {
        Py_DECREF(list);
        return NULL;
    }
    Py_XSETREF(p->hdrs, pairs);
    return list;
}

/* The path as ASGI wants it: percent-decoded, then UTF-8 (undecodable bytes
 * replaced, as urllib.parse.unquote does for Uvicorn). */
static PyObject *cg__path(cg_str_t path)
{
    char stack[1024];
    char *buf = path.len <= sizeof(stack) ? stack : cg_xmalloc(path.len);
    size_t n = cg_http_unquote(path.ptr ? path.ptr : "", path.len, buf);
    PyObject *s = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)n, "replace"); /* new */
    if (buf != stack)
        free(buf);
    return s;
}

static int cg__put(PyObject *d, PyObject *key, PyObject *value /* stolen */)
{
    if (value == NULL)
        return -1;
    int rc = PyDict_SetItem(d, key, value);
    Py_DECREF(value);
    return rc;
}

/* tpl[key] = value (a reference taken over) unless tpl holds that object
 * there already (*shadow, borrowed from tpl, says what it holds). */
static int cg__tpl_put(PyObject *tpl, PyObject *key, PyObject *value, PyObject **shadow)
{
    if (value == NULL)
        return -1;
    if (value == *shadow) {
        Py_DECREF(value);
        return 0;
    }
    int rc = PyDict_SetItem(tpl, key, value);
    *shadow = rc == 0 ? value : NULL;
    Py_DECREF(value);
    return rc;
}

/* The base of every connection's template: the shared values, None for the
 * rest. New reference or NULL. */
static PyObject *cg__scope_base(cg_asgi_t *a)
{
    PyObject **S = a->s;
    PyObject *d = PyDict_New(); /* new */
    if (d == NULL || PyDict_SetItem(d, S[CG_AS_TYPE], S[CG_AS_V_HTTP]) < 0 ||
        PyDict_SetItem(d, S[CG_AS_ASGI], a->asgi_version) < 0 ||
        PyDict_SetItem(d, S[CG_AS_HTTP_VERSION], Py_None) < 0 ||
        PyDict_SetItem(d, S[CG_AS_METHOD], Py_None) < 0 ||
        PyDict_SetItem(d, S[CG_AS_SCHEME], Py_None) < 0 ||
        PyDict_SetItem(d, S[CG_AS_PATH], Py_None) < 0 ||
        PyDict_SetItem(d, S[CG_AS_RAW_PATH], Py_None) < 0 ||
        PyDict_SetItem(d, S[CG_AS_QUERY_STRING], Py_None) < 0 ||
        PyDict_SetItem(d, S[CG_AS_ROOT_PATH], a->root_path) < 0 ||
        PyDict_SetItem(d, S[CG_AS_HEADERS], Py_None) < 0 ||
        PyDict_SetItem(d, S[CG_AS_CLIENT], Py_None) < 0 ||
        PyDict_SetItem(d, S[CG_AS_SERVER], Py_None) < 0 ||
        (a->state != NULL && PyDict_SetItem(d, S[CG_AS_STATE], Py_None) < 0)) {
        Py_XDECREF(d);
        return NULL;
    }
    return d;
}

/* The http scope's keys in the order the app sees them, with what stays
 * the same on a connection (type, asgi, root_path, client, server) and
 * None where each request puts its own: a copy of the worker's base (the
 * keys in place, no resizing) with the connection's client and server. */
static PyObject *cg__scope_template(cg_asgi_t *a, cg_asgi_proto_t *p)
{
    PyObject **S = a->s;
    if (a->scope_base == NULL && (a->scope_base = cg__scope_base(a)) == NULL)
        return NULL;
    PyObject *d = PyDict_Copy(a->scope_base); /* new */
    p->tpl_method = p->tpl_version = p->tpl_scheme = NULL;
    p->tpl_path = p->tpl_raw_path = p->tpl_query = NULL;
    if (d == NULL || PyDict_SetItem(d, S[CG_AS_CLIENT], p->client) < 0 ||
        PyDict_SetItem(d, S[CG_AS_SERVER], p->server) < 0) {
        Py_XDECREF(d);
        return NULL;
    }
    return d;
}

/* path and raw_path: the previous request's objects when the path is the
 * same (a client asking for one URL again and again), else new ones. */
static int cg__paths(cg_asgi_proto_t *p, cg_str_t raw, PyObject **path, PyObject **raw_path)
{
    if (p->raw_path == NULL || (size_t)PyBytes_GET_SIZE(p->raw_path) != raw.len ||
        (raw.len > 0 && memcmp(PyBytes_AS_STRING(p->raw_path), raw.ptr, raw.len) != 0)) {
        PyObject *rp = cg__bytes(raw);            /* new */
        PyObject *dp = rp ? cg__path(raw) : NULL; /* new */
        if (dp == NULL) {
            Py_XDECREF(rp);
            return -1;
        }
        Py_XSETREF(p->raw_path, rp);
        Py_XSETREF(p->path, dp);
    }
    *path = Py_NewRef(p->path);
    *raw_path = Py_NewRef(p->raw_path);
    return 0;
}

/* The request's query string: the last request's object when it is the
 * same. New reference or NULL. */
static PyObject *cg__query(cg_asgi_proto_t *p, cg_str_t q)
{
    PyObject *prev = p->tpl_query;
    if (prev != NULL && (size_t)PyBytes_GET_SIZE(prev) == q.len &&
        (q.len == 0 || memcmp(PyBytes_AS_STRING(prev), q.ptr, q.len) == 0))
        return Py_NewRef(prev);
    return cg__bytes(q);
}

/* What no two requests share, http or websocket: the headers, a shallow
 * copy of the lifespan state (as Uvicorn: what the app sets on a request's
 * state does not leak into the next one), and on an HTTP/2 stream the
 * trailers extension (HTTP/1.1 here has no chunked trailers; a websocket
 * has no stream until RFC 8441). */
static int cg__scope_own(cg_asgi_cycle_t *cy, PyObject *scope)
{
    cg_asgi_t *a = cy->a;
    PyObject **S = a->s;
    if (cg__put(scope, S[CG_AS_HEADERS], cg__headers(cy->p, &cy->c->req)) < 0 ||
        (a->state != NULL && cg__put(scope, S[CG_AS_STATE], PyDict_Copy(a->state)) < 0))
        return -1;
    if (cy->st == NULL)
        return 0;
    return cg__put(scope, S[CG_AS_EXTENSIONS], Py_BuildValue("{O:{}}", S[CG_AS_RESPONSE_TRAILERS]));
}

PyObject *cg_asgi_scope(cg_asgi_cycle_t *cy)
{
    cg_asgi_t *a = cy->a;
    cg_asgi_proto_t *p = cy->p;
    const cg_http_request_t *req = &cy->c->req;
    PyObject **S = a->s;
    bool ws = cy->ws != NULL;
    if (p->client == NULL || p->nreq <= 1) {
        /* the client the PROXY header names, or the peer; once per
         * connection (PROXY data comes with its first request) */
        int port;
        cg_str_t ip = cg_conn_client_addr(&p->c, &port);
        PyObject *client = port >= 0 ? Py_BuildValue("(s#i)", ip.ptr, (Py_ssize_t)ip.len, port)
                                     : Py_NewRef(Py_None); /* new */
        if (client == NULL)
            return NULL;
        Py_XSETREF(p->client, client);
        Py_CLEAR(p->scope_tpl);
    }
    if (!ws && p->scope_tpl == NULL && (p->scope_tpl = cg__scope_template(a, p)) == NULL)
        return NULL;
    PyObject *method;
    if (ws)
        method = NULL; /* a websocket scope has none */
    else if (cg_str_eq(req->method, "GET", 3))
        method = Py_NewRef(S[CG_AS_V_GET]);
    else if (cg_str_eq(req->method, "POST", 4))
        method = Py_NewRef(S[CG_AS_V_POST]);
    else if (cg_str_eq(req->method, "HEAD", 4))
        method = Py_NewRef(S[CG_AS_V_HEAD]);
    else
        method = PyUnicode_DecodeLatin1(req->method.ptr, (Py_ssize_t)req->method.len, NULL);
    PyObject *version = req->version_major == 1 && req->version_minor == 1
                            ? Py_NewRef(S[CG_AS_V_11])
                        : req->version_major == 1 && req->version_minor == 0
                            ? Py_NewRef(S[CG_AS_V_10])
                        : req->version_major == 2 ? Py_NewRef(S[CG_AS_V_2])
                            : PyUnicode_FromFormat("%u.%u", req->version_major,
                                                   req->version_minor);
    int scheme = req->scheme_https == 1 ? (ws ? CG_AS_V_WSS : CG_AS_V_HTTPS)
                                        : (ws ? CG_AS_V_WS : CG_AS_V_HTTP);
    PyObject *path = NULL, *raw_path = NULL;
    if (!ws) {
        /* the connection's template holds the last request's values: a
         * request like it (the usual keep-alive client) changes none of
         * them, and its scope is a copy of the template (the keys already
         * in place, no resizing) with its own headers and state */
        PyObject *tpl = p->scope_tpl;
        if (cg__tpl_put(tpl, S[CG_AS_HTTP_VERSION], version, &p->tpl_version) < 0) {
            Py_XDECREF(method);
            return NULL;
        }
        if (cg__tpl_put(tpl, S[CG_AS_METHOD], method, &p->tpl_method) < 0 ||
            cg__tpl_put(tpl, S[CG_AS_SCHEME], Py_NewRef(S[scheme]), &p->tpl_scheme) < 0 ||
            cg__paths(p, req->path, &path, &raw_path) < 0 ||
            cg__tpl_put(tpl, S[CG_AS_PATH], path, &p->tpl_path) < 0 ||
            cg__tpl_put(tpl, S[CG_AS_RAW_PATH], raw_path, &p->tpl_raw_path) < 0 ||
            cg__tpl_put(tpl, S[CG_AS_QUERY_STRING], cg__query(p, req->query), &p->tpl_query) < 0)
            return NULL;
        PyObject *scope = PyDict_Copy(tpl); /* new */
        if (scope == NULL)
            return NULL;
        if (cg__scope_own(cy, scope) < 0) {
            Py_DECREF(scope);
            return NULL;
        }
        return scope;
    }
    PyObject *scope = PyDict_New(); /* new */
    if (scope == NULL) {
        Py_XDECREF(version);
        return NULL;
    }
    if (PyDict_SetItem(scope, S[CG_AS_TYPE], S[CG_AS_V_WEBSOCKET]) < 0 ||
        PyDict_SetItem(scope, S[CG_AS_ASGI], a->asgi_version) < 0 ||
        cg__put(scope, S[CG_AS_HTTP_VERSION], version) < 0 ||
        PyDict_SetItem(scope, S[CG_AS_SCHEME], S[scheme]) < 0 ||
        cg__paths(p, req->path, &path, &raw_path) < 0 ||
        cg__put(scope, S[CG_AS_PATH], path) < 0 ||
        cg__put(scope, S[CG_AS_RAW_PATH], raw_path) < 0 ||
        cg__put(scope, S[CG_AS_QUERY_STRING], cg__bytes(req->query)) < 0 ||
        PyDict_SetItem(scope, S[CG_AS_ROOT_PATH], a->root_path) < 0 ||
        PyDict_SetItem(scope, S[CG_AS_CLIENT], p->client) < 0 ||
        PyDict_SetItem(scope, S[CG_AS_SERVER], p->server) < 0 || cg__scope_own(cy, scope) < 0 ||
        cg_asgi_ws_scope_add(cy, scope) < 0) {
        Py_DECREF(scope);
        return NULL;
    }
    return scope;
}

/* ---- receive ---- */

/* asgi_disconnect_grace_period (Gunicorn 27's meaning): the app heard
 * http.disconnect (or will, at its next receive); past the grace, its task
 * is cancelled if it still runs (answered or not, as Gunicorn 27). Armed
 * once per request, and only while the response is not complete. */
static void cg__arm_grace(cg_asgi_cycle_t *cy)
{
    cg_asgi_t *a = cy->a;
    if (cy->grace_armed || cy->task == NULL || cy->complete)
        return;
    cy->grace_armed = true;
    PyObject *cancel = PyObject_GetAttr(cy->task, a->s[CG_AS_A_CANCEL]); /* new */
    PyObject *delay = cancel ? PyLong_FromLong(a->grace_s) : NULL;        /* new */
    PyObject *h = delay ? PyObject_CallMethodObjArgs(a->loop, a->s[CG_AS_A_CALL_LATER], delay,
                                                     cancel, NULL)
                        : NULL; /* new */
    if (h == NULL)
        PyErr_Clear();
    Py_XDECREF(h);
    Py_XDECREF(delay);
    Py_XDECREF(cancel);
}

/* The client ended its side and nothing follows this request (no
 * pipelined request waits to be answered): it left, as Uvicorn and
 * Gunicorn 27 take an EOF. The transport stays open, so an answer still
 * reaches a client that only half-closed. */
static bool cg__client_left(cg_asgi_cycle_t *cy)
{
    cg_asgi_proto_t *p = cy->p;
    if (cy->st != NULL)
        return false; /* an HTTP/2 stream learns it from its reset or the connection's loss */
    if (!p->eof || !cg_conn_body_done(&p->c) || p->c.body.truncated)
        return false;
    if ((p->c.buf.len - p->c.buf.off) + cg_asgi_pending(p) > 0)
        return false; /* a pipelined request: a half-close, the client waits for answers */
    return true;
}

static PyObject *cg__message(cg_asgi_t *a, PyObject *body, bool more)
{
    PyObject *m = PyDict_New(); /* new */
    if (m == NULL || PyDict_SetItem(m, a->s[CG_AS_TYPE], a->s[CG_AS_HTTP_REQUEST]) < 0 ||
        PyDict_SetItem(m, a->s[CG_AS_BODY], body) < 0 ||
        PyDict_SetItem(m, a->s[CG_AS_MORE_BODY], more ? Py_True : Py_False) < 0) {
        Py_XDECREF(m);
        return NULL;
    }
    return m;
}

static PyObject *cg__disconnect(cg_asgi_t *a)
{
    return Py_BuildValue("{O:O}", a->s[CG_AS_TYPE], a->s[CG_AS_HTTP_DISCONNECT]);
}

/* Wait for the next thing to happen on the connection. */
static int cg__rx_wait(cg_asgi_cycle_t *cy, PyObject **out)
{
    if (cy->rx_waiter == NULL && (cy->rx_waiter = cg_asgi_future(cy->a)) == NULL)
        return -1;
    *out = Py_NewRef(cy->rx_waiter);
    return 0;
}

static int cg__receive_poll(PyObject *owner, PyObject **out)
{
    cg_asgi_cycle_t *cy = (cg_asgi_cycle_t *)owner;
    cg_asgi_t *a = cy->a;
    cg_asgi_proto_t *p = cy->p;
    if (cy->disconnected || cg__gone(cy) || cy->complete) {
        /* the client left, or the response is complete (Uvicorn's rule) */
        return (*out = cg__disconnect(a)) ? 1 : -1;
    }
    if (cy->body_done) {
        /* only the client's leaving is left to report: the app had the
         * whole body first, even from a client that left right after it */
        if (cg__client_left(cy)) {
            cy->disconnected = true;
            cg__arm_grace(cy);
            return (*out = cg__disconnect(a)) ? 1 : -1;
        }
        return cg__rx_wait(cy, out) < 0 ? -1 : 0;
    }
    cg_conn_t *c = cy->c;
    bool h2 = cy->st != NULL;
    if (c->req.expect_continue && !cy->continue_sent && !cy->started) {
        /* the client waits for this before it sends the body (on HTTP/2,
         * the view makes it an informational HEADERS frame) */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        cy->continue_sent = true;
        if (cg__write(cy, cont, sizeof(cont) - 1, NULL) < 0)
            return -1;
    }
    size_t cap = CG_ASGI_BODY_CHUNK;
    if (c->body.kind == CG_HTTP_BODY_LENGTH && c->body.remaining < cap)
        cap = (size_t)c->body.remaining;
    PyObject *body = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap); /* new */
    if (body == NULL)
        return -1;
    size_t got = 0;
    ssize_t r = 0;
    while (got < cap && !cg_conn_body_done(c)) {
        r = cg_conn_body_read(c, PyBytes_AS_STRING(body) + got, cap - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (!h2)
        cg_asgi_proto_maybe_resume(p);
    if (h2 && (r < 0 && r != CG_EAGAIN)) {
        /* the stream was reset under the body, or it broke its
         * Content-Length: the stream ends */
        Py_DECREF(body);
        cy->disconnected = true;
        Py_INCREF(cy); /* handing the stream back drops the list's and p's references */
        Py_INCREF(p);
        cy->complete = true;
        cg__response_done(cy, false);
        Py_DECREF(p);
        Py_DECREF(cy);
        return (*out = cg__disconnect(a)) ? 1 : -1;
    }
    /* (an HTTP/2 body without content-length ends with END_STREAM, which
     * reads as a short body; nghttp2 checks one that has it) */
    if (r == -EPROTO || (c->body.truncated && !h2)) {
        /* a broken chunked body, or the client left before its end */
        Py_DECREF(body);
        const cg_http_error_t *e = &c->body.error;
        if (r == -EPROTO && cg_http_error_status(e->code) != 0 && !cy->started) {
            /* a refused trailer: its status, as for a refused head */
            cg_conn_refuse(c, &a->pol, a->log, e);
        } else if (r == -EPROTO && e->code == CG_HTTP_E_NO_MORE_DATA) {
            cg_log_debug(a->log, "Ignored premature client disconnection. ");
        } else if (r == -EPROTO) {
            /* the WSGI workers' line for a broken chunked body */
            char text[256];
            cg_http_error_text(e, text, sizeof(text));
            cg_log_error(a->log, "Socket error processing request.\n%s: %s",
                         cg_http_error_name(e->code), text);
        }
        if (p->out_len > 0) {
            /* the refusal page the connection layer wrote */
            if (cg_asgi_proto_write(p, p->out, p->out_len) < 0)
                PyErr_Clear();
            p->out_len = 0;
        }
        cy->disconnected = true;
        cg_asgi_proto_close(p);
        return (*out = cg__disconnect(a)) ? 1 : -1;
    }
    if (got == 0 && !cg_conn_body_done(c)) {
        /* the app waits for body bytes: a client silent mid-body has the
         * head's --timeout, restarted by each piece (a slow app that does
         * not ask is not timed: reading is paused then) */
        if (!h2)
            cg_asgi_proto_deadline(p, a->head_ms);
        Py_DECREF(body);
        return cg__rx_wait(cy, out) < 0 ? -1 : 0;
    }
    if (!h2)
        cg_asgi_proto_deadline(p, 0);
    if (got < cap && _PyBytes_Resize(&body, (Py_ssize_t)got) < 0)
        return -1;
    bool more = !cg_conn_body_done(c);
    cy->body_done = !more;
    *out = cg__message(a, body, more);
    Py_DECREF(body);
    return *out ? 1 : -1;
}

static PyObject *cg__receive(PyObject *self, PyObject *unused)
{
    cg_asgi_cycle_t *cy = (cg_asgi_cycle_t *)self;
    return cg_asgi_awaitable_new(cy->a, cg__receive_poll, self);
}

static PyMethodDef cg__receive_def = {"receive", cg__receive, METH_NOARGS,
                                      "ASGI receive(): the next http.request or http.disconnect."};

/* ---- the response ---- */

/* RFC 9110 section 15 reason phrases; "" for a code it does not name. */
static const char *cg__reason(int code)
{
    switch (code) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

/* A growing head buffer. */
typedef struct {
    char *p;
    size_t len, cap;
} cg__buf_t;

static void cg__grow(cg__buf_t *b, size_t n)
{
    b->cap = (b->len + n) * 2;
    b->p = cg_xrealloc(b->p, b->cap);
}

/* inline: a head is a dozen of these, mostly a few bytes each */
static inline void cg__add(cg__buf_t *b, const void *s, size_t n)
{
    if (b->len + n > b->cap)
        cg__grow(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

int cg_asgi_bytes_view(PyObject *o, cg_str_t *out, const char *what)
{
    if (!PyBytes_Check(o)) {
        PyErr_Format(PyExc_TypeError, "ASGI header %s must be bytes, not %.100s", what,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    *out = (cg_str_t){PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o)};
    return 0;
}

/* Connection: as Gunicorn's Response.should_close() (the WSGI writer's). */
static bool cg__keep_alive(cg_asgi_cycle_t *cy, bool app_close, bool is_head)
{
    const cg_conn_t *c = cy->c;
    if (c->must_close || !c->req.keep_alive || !cy->a->w->alive || app_close)
        return false;
    if (cy->length >= 0 || cy->chunked || is_head)
        return true;
    return cy->status < 200 || cy->status == 204 || cy->status == 304;
}

/* One (name, value) pair of an ASGI headers list, checked: a token name, a
 * value without CR, LF or other CTLs (no header injection). *pair_out is a
 * new reference the caller releases (also on failure, when not NULL).
 * 0, or -1 with an exception set. */
static int cg__header_pair(PyObject *item, PyObject **pair_out, cg_str_t *name, cg_str_t *value)
{
    PyObject *pair = PySequence_Fast(item, "ASGI headers must be (name, value) pairs"); /* new */
    *pair_out = pair;
    if (pair == NULL)
        return -1;
    if (PySequence_Fast_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_ValueError, "ASGI headers must be (name, value) pairs");
        return -1;
    }
    if (cg_asgi_bytes_view(PySequence_Fast_GET_ITEM(pair, 0), name, "names") < 0 ||
        cg_asgi_bytes_view(PySequence_Fast_GET_ITEM(pair, 1), value, "values") < 0)
        return -1;
    bool ok = name->len > 0;
    for (size_t k = 0; ok && k < name->len; k++)
        ok = cg_http_is_tchar((unsigned char)name->ptr[k]);
    for (size_t k = 0; ok && k < value->len; k++) {
        unsigned char ch = (unsigned char)value->ptr[k];
        ok = ch == '\t' || (ch >= 0x20 && ch != 0x7f);
    }
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "Invalid HTTP header: %R", PySequence_Fast_GET_ITEM(pair, 0));
        return -1;
    }
    return 0;
}

/* http.response.start: build the head, sent with the first body bytes. */
int cg_asgi_response_start(cg_asgi_cycle_t *cy, PyObject *msg)
{
    cg_asgi_t *a = cy->a;
    const cg_http_request_t *req = &cy->c->req;
    PyObject *st = PyObject_GetItem(msg, a->s[CG_AS_STATUS]); /* new */
    if (st == NULL)
        return -1;
    long status = PyLong_AsLong(st);
    Py_DECREF(st);
    if (status == -1 && PyErr_Occurred())
        return -1;
    if (status < 100 || status > 999) {
        PyErr_Format(PyExc_ValueError, "Invalid HTTP status code %ld in response.", status);
        return -1;
    }
    cy->status = (int)status;
    if (cy->st != NULL) {
        PyObject *t; /* new */
        if (cg_asgi_get(msg, a->s[CG_AS_TRAILERS], &t) < 0)
            return -1;
        int yes = t != NULL ? PyObject_IsTrue(t) : 0;
        Py_XDECREF(t);
        if (yes < 0)
            return -1;
        cy->trailers = yes;
    }
    bool is_head = cg_str_eq(req->method, "HEAD", 4);
    cy->omits_body = is_head || status == 204 || status == 304 || status < 200;
    bool forbids_length = status == 204 || status < 200; /* RFC 9110 section 8.6 */

    PyObject *headers; /* new */
    if (cg_asgi_get(msg, a->s[CG_AS_HEADERS], &headers) < 0)
        return -1;
    PyObject *seq = headers ? PySequence_Fast(headers, "ASGI headers must be a sequence") : NULL;
    Py_XDECREF(headers);
    if (headers != NULL && seq == NULL)
        return -1;

    cg__buf_t b = {cg_xmalloc(512), 0, 512};
    /* "HTTP/1.1 200 " by hand: snprintf cost more than the rest of the line */
    char line[13] = {'H', 'T', 'T', 'P', '/', (char)('0' + req->version_major % 10), '.',
                     (char)('0' + req->version_minor % 10), ' ',
                     (char)('0' + cy->status / 100), (char)('0' + cy->status / 10 % 10),
                     (char)('0' + cy->status % 10), ' '};
    cg__add(&b, line, sizeof(line));
    const char *reason = cg__reason(cy->status);
    cg__add(&b, reason, strlen(reason));
    cg__add(&b, "\r\n", 2);
    bool has_server = false, has_date = false, app_close = false;
    size_t nresp = 0;
    Py_ssize_t nh = seq ? PySequence_Fast_GET_SIZE(seq) : 0;
    for (Py_ssize_t i = 0; i < nh; i++) {
        PyObject *pair; /* new */
        cg_str_t name, value;
        if (cg__header_pair(PySequence_Fast_GET_ITEM(seq, i), &pair, &name, &value) < 0) {
            Py_XDECREF(pair);
            goto fail;
        }
        bool keep = true;
        if (cg_str_caseeq(name, "content-length")) {
            int64_t len = 0;
            bool digits = value.len > 0 && value.len <= 18;
            for (size_t k = 0; digits && k < value.len; k++) {
                digits = value.ptr[k] >= '0' && value.ptr[k] <= '9';
                len = len * 10 + (value.ptr[k] - '0');
            }
            if (!digits) {
                PyErr_Format(PyExc_ValueError, "Invalid Content-Length: %R",
                             PySequence_Fast_GET_ITEM(pair, 1));
                Py_DECREF(pair);
                goto fail;
            }
            keep = !forbids_length;
            if (keep)
                cy->length = len;
        } else if (cg_str_caseeq(name, "transfer-encoding")) {
            keep = false; /* the framing is ours */
        } else if (cg_str_caseeq(name, "connection")) {
            keep = false; /* so is the connection's fate; "close" is honoured */
            for (size_t k = 0; k + 5 <= value.len; k++)
                if (cg_str_caseeq((cg_str_t){value.ptr + k, 5}, "close"))
                    app_close = true;
        } else if (cg_str_caseeq(name, "server")) {
            has_server = true;
        } else if (cg_str_caseeq(name, "date")) {
            has_date = true;
        }
        if (keep) {
            if (nresp < CG_ASGI_RESP_VIEWS)
                nresp++;
            cg__add(&b, name.ptr, name.len);
            cg__add(&b, ": ", 2);
            cg__add(&b, value.ptr, value.len);
            cg__add(&b, "\r\n", 2);
        }
        Py_DECREF(pair);
    }
    Py_XDECREF(seq);
    seq = NULL;
    bool v11 = req->version_major > 1 || (req->version_major == 1 && req->version_minor >= 1);
    /* HTTP/2 frames the body itself (DATA, END_STREAM) */
    cy->chunked = cy->length < 0 && v11 && req->version_major < 2 && !cy->omits_body;
    cy->keep_alive = cg__keep_alive(cy, app_close, is_head);
    if (!has_server)
        cg__add(&b, "Server: gunicorn\r\n", 18);
    if (!has_date) {
        cg__add(&b, "Date: ", 6);
        cg__add(&b, cg_http_date_now(&a->date), 29);
        cg__add(&b, "\r\n", 2);
    }
    if (cy->keep_alive)
        cg__add(&b, "Connection: keep-alive\r\n", 24);
    else
        cg__add(&b, "Connection: close\r\n", 19);
    if (cy->chunked)
        cg__add(&b, "Transfer-Encoding: chunked\r\n", 28);
    cg__add(&b, "\r\n", 2);
    cy->head = b.p;
    cy->head_len = b.len;
    cy->nresp = nresp;
    cy->started = true;
    return 0;

fail:
    Py_XDECREF(seq);
    free(b.p);
    return -1;
}

/* http.response.body: frame `data` and write it with the head if that is
 * still waiting, in one transport.write(). */
static int cg__body(cg_asgi_cycle_t *cy, const char *data, size_t len, bool final,
                    PyObject *obj)
{
    if (cy->omits_body) {
        if (len > 0 && !cy->logged) /* warn once per response */
            cg_log_debug(cy->a->log, "ASGI app sent body bytes on a no-body response; dropped");
        len = 0;
    } else if (cy->length >= 0 && cy->sent + (int64_t)len > cy->length) {
        PyErr_SetString(PyExc_RuntimeError, "Response content longer than Content-Length");
        return -1;
    } else if (final && cy->length >= 0 && cy->sent + (int64_t)len < cy->length) {
        PyErr_SetString(PyExc_RuntimeError, "Response content shorter than Content-Length");
        return -1;
    }
    char size[24];
    size_t size_len = 0;
    if (cy->chunked && len > 0)
        size_len = (size_t)snprintf(size, sizeof(size), "%zX\r\n", len);
    size_t head = cy->head_sent ? 0 : cy->head_len;
    size_t tail = (cy->chunked && len > 0 ? 2 : 0) + (cy->chunked && final ? 5 : 0);
    size_t total = head + size_len + len + tail;
    cy->sent += (int64_t)len;
    cy->head_sent = true;
    if (total == 0)
        return 0;
    if (head == 0 && size_len == 0 && tail == 0 && obj != NULL && PyBytes_CheckExact(obj))
        return cg__write(cy, data, len, obj); /* the app's bytes as they are */
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total); /* new */
    if (out == NULL)
        return -1;
    char *o = PyBytes_AS_STRING(out);
    memcpy(o, cy->head, head);
    o += head;
    memcpy(o, size, size_len);
    o += size_len;
    if (len > 0)
        memcpy(o, data, len);
    o += len;
    if (cy->chunked && len > 0) {
        memcpy(o, "\r\n", 2);
        o += 2;
    }
    if (cy->chunked && final)
        memcpy(o, "0\r\n\r\n", 5);
    int rc = cg__write(cy, PyBytes_AS_STRING(out), total, out);
    Py_DECREF(out);
    return rc;
}

/* send()'s awaitable while the transport's buffer is over its high-water
 * mark: done once resume_writing() (or the connection's end) came. */
static int cg__drain_poll(PyObject *owner, PyObject **out)
{
    cg_asgi_proto_t *p = (cg_asgi_proto_t *)owner;
    if (!p->write_paused || p->closed) {
        *out = Py_NewRef(Py_None);
        return 1;
    }
    if (p->drain == NULL && (p->drain = cg_asgi_future(p->a)) == NULL)
        return -1;
    *out = Py_NewRef(p->drain);
    return 0;
}

PyObject *cg_asgi_send_done(cg_asgi_proto_t *p)
{
    return p->write_paused && !p->closed ? cg_asgi_awaitable_new(p->a, cg__drain_poll, (PyObject *)p)
                                         : cg_asgi_done_awaitable(p->a);
}

PyObject *cg_asgi_send_body(cg_asgi_cycle_t *cy, PyObject *msg)
{
    cg_asgi_t *a = cy->a;
    cg_asgi_proto_t *p = cy->p;
    PyObject *body, *more; /* new */
    if (cg_asgi_get(msg, a->s[CG_AS_BODY], &body) < 0)
        return NULL;
    if (cg_asgi_get(msg, a->s[CG_AS_MORE_BODY], &more) < 0) {
        Py_XDECREF(body);
        return NULL;
    }
    int final = more != NULL ? !PyObject_IsTrue(more) : 1;
    Py_XDECREF(more);
    Py_buffer view = {0};
    if (final < 0 || (body != NULL && PyObject_GetBuffer(body, &view, PyBUF_SIMPLE) < 0)) {
        Py_XDECREF(body);
        return NULL;
    }
    Py_INCREF(p); /* the response's end may let the cycle's reference go */
    int rc = cg__body(cy, body ? view.buf : "", body ? (size_t)view.len : 0,
                                   final != 0, body);
    if (body != NULL)
        PyBuffer_Release(&view);
    Py_XDECREF(body);
    if (rc == 0 && final && cy->trailers) {
        cy->body_final = true; /* complete with the trailers */
    } else if (rc == 0 && final) {
        cy->complete = true;
        Py_INCREF(cy); /* the response's end may let the connection's reference go */
        cg__response_done(cy, true);
        Py_DECREF(cy);
    }
    PyObject *res = NULL;
    if (rc == 0)
        res = final ? cg_asgi_done_awaitable(a)
              : cy->st != NULL ? cg_asgi_h2_send_done(cy)
                               : cg_asgi_send_done(p);
    Py_DECREF(p);
    return res;
}

static PyObject *cg__unexpected(PyObject *type, const char *when)
{
    PyErr_Format(PyExc_RuntimeError, "Unexpected ASGI message %R sent, %s.", type, when);
    return NULL;
}

/* http.response.informational (103 Early Hints and the like), as
 * Gunicorn's asgi worker sends it: written at once, before the response;
 * not sent to an HTTP/1.0 client, which has no 1xx responses. 0, or -1
 * with an exception set. */
static int cg__informational(cg_asgi_cycle_t *cy, PyObject *msg)
{
    cg_asgi_t *a = cy->a;
    const cg_http_request_t *req = &cy->c->req;
    PyObject *st = PyObject_GetItem(msg, a->s[CG_AS_STATUS]); /* new */
    long status = st != NULL ? PyLong_AsLong(st) : -1;
    Py_XDECREF(st);
    if (status == -1 && PyErr_Occurred())
        return -1;
    if (status < 100 || status > 199) {
        PyErr_Format(PyExc_ValueError, "Invalid informational status code %ld.", status);
        return -1;
    }
    PyObject *headers = PyObject_GetItem(msg, a->s[CG_AS_HEADERS]); /* new */
    if (headers == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError))
            return -1;
        PyErr_Clear();
    }
    PyObject *seq = headers ? PySequence_Fast(headers, "ASGI headers must be a sequence") : NULL;
    Py_XDECREF(headers);
    if (headers != NULL && seq == NULL)
        return -1;
    cg__buf_t b = {cg_xmalloc(256), 0, 256};
    char line[64];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %ld ", status);
    cg__add(&b, line, (size_t)n);
    const char *reason = cg__reason((int)status);
    cg__add(&b, reason, strlen(reason));
    cg__add(&b, "\r\n", 2);
    int rc = 0;
    Py_ssize_t nh = seq ? PySequence_Fast_GET_SIZE(seq) : 0;
    for (Py_ssize_t i = 0; i < nh && rc == 0; i++) {
        PyObject *pair; /* new */
        cg_str_t name, value;
        rc = cg__header_pair(PySequence_Fast_GET_ITEM(seq, i), &pair, &name, &value);
        if (rc == 0) {
            cg__add(&b, name.ptr, name.len);
            cg__add(&b, ": ", 2);
            cg__add(&b, value.ptr, value.len);
            cg__add(&b, "\r\n", 2);
        }
        Py_XDECREF(pair);
    }
    Py_XDECREF(seq);
    cg__add(&b, "\r\n", 2);
    bool v11 = req->version_major > 1 || (req->version_major == 1 && req->version_minor >= 1);
    if (rc == 0 && v11)
        rc = cg__write(cy, b.p, b.len, NULL);
    free(b.p);
    return rc;
}

/* http.response.trailers (HTTP/2 only): the fields go out after the
 * body; the last message (no more_trailers) completes the response.
 * Returns what send() answers, or NULL with an exception set. */
static PyObject *cg__trailers(cg_asgi_cycle_t *cy, PyObject *msg)
{
    cg_asgi_t *a = cy->a;
    PyObject *headers, *more; /* new */
    if (cg_asgi_get(msg, a->s[CG_AS_HEADERS], &headers) < 0)
        return NULL;
    if (cg_asgi_get(msg, a->s[CG_AS_MORE_TRAILERS], &more) < 0) {
        Py_XDECREF(headers);
        return NULL;
    }
    int more_t = more != NULL ? PyObject_IsTrue(more) : 0;
    Py_XDECREF(more);
    PyObject *seq = headers ? PySequence_Fast(headers, "ASGI headers must be a sequence") : NULL;
    Py_XDECREF(headers);
    if (more_t < 0 || (headers != NULL && seq == NULL) ||
        (cy->trailer_list == NULL && (cy->trailer_list = PyList_New(0)) == NULL)) {
        Py_XDECREF(seq);
        return NULL;
    }
    Py_ssize_t nh = seq ? PySequence_Fast_GET_SIZE(seq) : 0;
    for (Py_ssize_t i = 0; i < nh; i++) {
        PyObject *pair; /* new */
        cg_str_t name, value;
        int rc = cg__header_pair(PySequence_Fast_GET_ITEM(seq, i), &pair, &name, &value);
        if (rc == 0)
            rc = PyList_Append(cy->trailer_list, pair);
        Py_XDECREF(pair);
        if (rc < 0) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_XDECREF(seq);
    if (more_t)
        return cg_asgi_done_awaitable(a);
    /* views into the checked pairs the list holds */
    Py_ssize_t n = PyList_GET_SIZE(cy->trailer_list);
    cg_str_t *f = cg_xmalloc((size_t)(2 * n + 1) * sizeof(*f));
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(cy->trailer_list, i);
        f[2 * i] = (cg_str_t){PyBytes_AS_STRING(PySequence_Fast_GET_ITEM(pair, 0)),
                              (size_t)PyBytes_GET_SIZE(PySequence_Fast_GET_ITEM(pair, 0))};
        f[2 * i + 1] = (cg_str_t){PyBytes_AS_STRING(PySequence_Fast_GET_ITEM(pair, 1)),
                                  (size_t)PyBytes_GET_SIZE(PySequence_Fast_GET_ITEM(pair, 1))};
    }
    int rc = cg_asgi_h2_trailers(cy, f, (size_t)n);
    free(f);
    if (rc < 0)
        return NULL;
    cy->complete = true;
    Py_INCREF(cy);
    cg__response_done(cy, true);
    Py_DECREF(cy);
    return cg_asgi_done_awaitable(a);
}

/* Whether s is the str `key` (interned): an app's message types are its
 * own constants, equal but seldom the same objects. */
static bool cg__is(PyObject *s, PyObject *key)
{
    if (s == key)
        return true;
    Py_ssize_t n = PyUnicode_GET_LENGTH(key);
    return PyUnicode_Check(s) && PyUnicode_GET_LENGTH(s) == n &&
           PyUnicode_KIND(s) == PyUnicode_KIND(key) &&
           memcmp(PyUnicode_DATA(s), PyUnicode_DATA(key), (size_t)n * PyUnicode_KIND(key)) == 0;
}

static PyObject *cg__send(PyObject *self, PyObject *msg)
{
    cg_asgi_cycle_t *cy = (cg_asgi_cycle_t *)self;
    cg_asgi_t *a = cy->a;
    PyObject *type; /* new */
    int got = cg_asgi_get(msg, a->s[CG_AS_TYPE], &type);
    if (got <= 0) {
        if (got == 0)
            PyErr_SetObject(PyExc_KeyError, a->s[CG_AS_TYPE]);
        return NULL;
    }
    PyObject *res = NULL;
    bool is_start = cg__is(type, a->s[CG_AS_RESPONSE_START]);
    bool is_body = !is_start && cg__is(type, a->s[CG_AS_RESPONSE_BODY]);
    bool is_info = !is_start && !is_body && cg__is(type, a->s[CG_AS_RESPONSE_INFO]);
    bool is_trailers = !is_start && !is_body && !is_info &&
                       cg__is(type, a->s[CG_AS_RESPONSE_TRAILERS]);
    if (is_trailers) {
        /* advertised on HTTP/2 streams only (as Gunicorn sends trailers) */
        if (!cy->trailers || !cy->body_final || cy->complete)
            cg__unexpected(type, cy->trailers ? "before the last body message"
                                              : "without 'trailers' in 'http.response.start'");
        else if (cg__gone(cy))
            res = cg_asgi_done_awaitable(a);
        else
            res = cg__trailers(cy, msg);
        goto out;
    }
    if (!is_start && !is_body && !is_info) {
        /* pathsend, zerocopysend: not advertised, not yet */
        cg__unexpected(type, "which this server does not support yet");
        goto out;
    }
    if (is_info) {
        /* a 1xx after the final response began would be out of order
         * (RFC 9110 section 15.2), as Gunicorn 27.0.1 refuses it */
        if (cy->started || cy->complete)
            cg__unexpected(type, "after response already started");
        else if (cg__gone(cy) || cg__informational(cy, msg) == 0)
            res = cg_asgi_done_awaitable(a);
        goto out;
    }
    if (cy->complete || (is_body && cy->body_final)) {
        cg__unexpected(type, "after response already completed");
        goto out;
    }
    if (is_start && cy->started) {
        cg__unexpected(type, "after response already started");
        goto out;
    }
    if (is_body && !cy->started) {
        cg__unexpected(type, "without prior 'http.response.start'");
        goto out;
    }
    if (cg__gone(cy)) {
        /* the client is gone: the app may finish what it does, quietly */
        res = cg_asgi_done_awaitable(a);
        goto out;
    }
    if (is_start) {
        if (cg_asgi_response_start(cy, msg) == 0)
            res = cg_asgi_done_awaitable(a);
        goto out;
    }
    res = cg_asgi_send_body(cy, msg);
out:
    Py_DECREF(type);
    return res;
}

static PyMethodDef cg__send_def = {"send", cg__send, METH_O,
                                   "ASGI send(message): http.response.start / http.response.body."};

/* ---- the app's task ---- */

/* The app failed (exc) or returned without a complete response: as
 * Gunicorn, a 500 page when nothing was sent yet, else the connection
 * closes. */
/* End cy's response now: the error page when nothing was sent yet (true),
 * else only the close that cuts it short. */
static bool cg__cycle_cut(cg_asgi_cycle_t *cy, int status, const char *reason, const char *mesg)
{
    cg_asgi_proto_t *p = cy->p;
    bool answered = false;
    if (p == NULL || cy->complete)
        return false;
    Py_INCREF(p);
    Py_INCREF(cy); /* the response's end lets the connection's reference go */
    if (!cy->started && !cg__gone(cy)) {
        char page[512];
        size_t n = cg_http_error_page(status, reason, mesg, page, sizeof(page));
        if (n > 0 && cg__write(cy, page, n, NULL) < 0)
            PyErr_Clear();
        answered = n > 0;
        cy->status = status;
        free(cy->head);
        cy->head = NULL;
        cy->nresp = 0;
    }
    cy->keep_alive = false;
    cy->complete = true;
    cg__response_done(cy, answered); /* logs, and closes (HTTP/2: resets the stream unless answered) */
    Py_DECREF(cy);
    Py_DECREF(p);
    return answered;
}

void cg_asgi_cycle_fail(cg_asgi_cycle_t *cy, PyObject *exc, const char *what)
{
    cg_asgi_t *a = cy->a;
    if (exc != NULL)
        cg_asgi_log_exc(a, CG_LOG_ERROR, "Error in ASGI application", exc);
    else if (what != NULL)
        cg_log_error(a->log, "%s", what);
    cg__cycle_cut(cy, 500, "Internal Server Error", "");
}

bool cg_asgi_cycle_timeout(cg_asgi_cycle_t *cy)
{
    return cg__cycle_cut(cy, 504, "Gateway Timeout", "The application did not answer in time.");
}

/* ---- pre_request / post_request, and a logger_class's objects ---- */

/* The environ Gunicorn's asgi worker builds for its access log and
 * post_request: REQUEST_METHOD, RAW_URI, PATH_INFO, QUERY_STRING,
 * SERVER_PROTOCOL, REMOTE_ADDR and HTTP_* (str values). New reference or
 * NULL. */
static PyObject *cg__log_environ(const cg_conn_t *c)
{
    const cg_http_request_t *req = &c->req;
    int port;
    cg_str_t ip = cg_conn_client_addr(c, &port);
    PyObject *env = Py_BuildValue(
        "{s:s#,s:s#,s:N,s:s#,s:N,s:s#}", "REQUEST_METHOD", req->method.ptr,
        (Py_ssize_t)req->method.len, "RAW_URI", req->uri.ptr, (Py_ssize_t)req->uri.len,
        "PATH_INFO", cg__path(req->path), "QUERY_STRING", req->query.ptr ? req->query.ptr : "",
        (Py_ssize_t)req->query.len, "SERVER_PROTOCOL",
        PyUnicode_FromFormat("HTTP/%u.%u", req->version_major, req->version_minor),
        "REMOTE_ADDR", ip.len ? ip.ptr : "-", (Py_ssize_t)(ip.len ? ip.len : 1)); /* new */
    char key[256];
    for (size_t i = 0; env != NULL && i < req->nheaders; i++) {
        const cg_http_header_t *h = &req->headers[i];
        if ((h->flags & CG_HTTP_HF_DROPPED) || h->name.len > sizeof(key) - 6)
            continue;
        memcpy(key, "HTTP_", 5);
        for (size_t k = 0; k < h->name.len; k++) {
            char ch = h->name.ptr[k];
            key[5 + k] = ch == '-' ? '_' : ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
        }
        PyObject *v = PyUnicode_DecodeLatin1(h->value.ptr, (Py_ssize_t)h->value.len, NULL);
        PyObject *k = v ? PyUnicode_DecodeLatin1(key, (Py_ssize_t)(5 + h->name.len), NULL)
                        : NULL; /* new */
        if (k == NULL || PyDict_SetItem(env, k, v) < 0)
            Py_CLEAR(env);
        Py_XDECREF(k);
        Py_XDECREF(v);
    }
    return env;
}

/* Views of the first cy->nresp fields of cy->head (the app's, right after
 * the status line, "name: value\r\n" each: a name has no ':' and a value
 * no CR, cg__header_pair saw to it) into views, name and value each. Made
 * only for the access log and the hooks, so a request does not carry them.
 * Returns the number of fields. */
static size_t cg__resp_views(const cg_asgi_cycle_t *cy, cg_str_t views[2 * CG_ASGI_RESP_VIEWS])
{
    if (cy->head == NULL || cy->nresp == 0)
        return 0;
    const char *s = cy->head, *end = cy->head + cy->head_len;
    const char *eol = memchr(s, '\n', (size_t)(end - s));
    size_t n = 0;
    for (s = eol ? eol + 1 : end; n < cy->nresp && s < end; n++) {
        const char *colon = memchr(s, ':', (size_t)(end - s));
        const char *cr = colon ? memchr(colon, '\r', (size_t)(end - colon)) : NULL;
        if (cr == NULL || colon + 2 > cr)
            break;
        views[2 * n] = (cg_str_t){s, (size_t)(colon - s)};
        views[2 * n + 1] = (cg_str_t){colon + 2, (size_t)(cr - colon - 2)};
        s = cr + 2;
    }
    return n;
}

/* Gunicorn's ASGIResponseInfo: status (an int), headers ((str, str) pairs),
 * sent; status_code too, as the WSGI workers' resp has it. New reference
 * or NULL. */
static PyObject *cg__log_response(cg_asgi_cycle_t *cy)
{
    cg_str_t resp[2 * CG_ASGI_RESP_VIEWS];
    size_t nresp = cg__resp_views(cy, resp);
    PyObject *headers = PyList_New(0); /* new */
    for (size_t i = 0; headers != NULL && i < nresp; i++) {
        cg_str_t n = resp[2 * i], v = resp[2 * i + 1];
        PyObject *t = Py_BuildValue("(NN)", PyUnicode_DecodeLatin1(n.ptr, (Py_ssize_t)n.len, NULL),
                                    PyUnicode_DecodeLatin1(v.ptr, (Py_ssize_t)v.len, NULL));
        if (t == NULL || PyList_Append(headers, t) < 0)
            Py_CLEAR(headers);
        Py_XDECREF(t);
    }
    PyObject *kw = headers ? Py_BuildValue("{s:i,s:i,s:N,s:L}", "status", cy->status,
                                           "status_code", cy->status, "headers", headers, "sent",
                                           (long long)cy->sent)
                           : NULL; /* new; N steals headers */
    PyObject *obj = kw ? cg_py_helper_new("Response", kw) : NULL;
    Py_XDECREF(kw);
    return obj;
}

/* Gunicorn's asgi worker: pre_request(worker, req) before the app runs; the
 * default hook logs the request at debug. -1 (with the hook's exception
 * set) fails the request as an app error would. */
static int cg__pre_request(cg_asgi_cycle_t *cy)
{
    cg_asgi_t *a = cy->a;
    const cg_conn_t *c = cy->c;
    if (a->cfg->pre_request == NULL && cg_log_enabled(a->log, CG_LOG_DEBUG))
        cg_log_debug(a->log, "%.*s %.*s", (int)c->req.method.len, c->req.method.ptr,
                     (int)c->req.path.len, c->req.path.ptr);
    if (!cg_py_request_hooks(a->cfg))
        return 0;
    /* snapshots: post_request runs when the app's task ends, maybe after
     * the connection moved on to its next request */
    if ((cy->hook_req = cg_py_request_new(&c->req, c)) == NULL)
        return -1;
    if (cg_log_access_enabled(a->log) && (cy->hook_env = cg__log_environ(c)) == NULL)
        return -1;
    return cg_py_hook_pre_request(a->cfg, a->w, cy->hook_req);
}

/* post_request(worker, req, environ, resp) once the app is done, as in
 * Gunicorn's `finally`: environ and resp are None unless the access log is
 * on (Gunicorn builds them only for it). */
static void cg__post_request(cg_asgi_cycle_t *cy)
{
    cg_asgi_t *a = cy->a;
    if (cy->hook_req == NULL || a->cfg->post_request == NULL)
        return;
    PyObject *resp = cy->hook_env != NULL ? cg__log_response(cy) : Py_NewRef(Py_None); /* new */
    if (resp == NULL) {
        cg_py_log_exception(a->log, CG_LOG_ERROR, "Exception in post_request hook");
        return;
    }
    cg_py_hook_post_request(a->cfg, a->w, cy->hook_req, cy->hook_env ? cy->hook_env : Py_None,
                            resp);
    Py_DECREF(resp);
}

/* cg_access_info_t.py_objects for a logger_class's access(): the objects
 * Gunicorn's asgi worker passes (req, ASGIResponseInfo, its environ). */
typedef struct {
    cg_asgi_cycle_t *cy;
    const cg_conn_t *c;
} cg__access_py_t;

static int cg__access_py_objects(void *ctx, void **req, void **resp, void **env_out)
{
    cg__access_py_t *py = ctx;
    cg_asgi_cycle_t *cy = py->cy;
    PyObject *q = cy->hook_req ? Py_NewRef(cy->hook_req) : cg_py_request_new(&py->c->req, py->c);
    PyObject *e = q == NULL ? NULL : cy->hook_env ? Py_NewRef(cy->hook_env)
                                                  : cg__log_environ(py->c); /* new */
    PyObject *s = e != NULL ? cg__log_response(cy) : NULL;                   /* new */
    if (s == NULL) {
        Py_XDECREF(q);
        Py_XDECREF(e);
        return -1;
    }
    *req = q;
    *resp = s;
    *env_out = e;
    return 0;
}

/* The app's coroutine ended (cg_asgi_runner_new): answer what it left
 * unanswered, then post_request. */
static void cg__cycle_end(PyObject *self, PyObject *exc, bool was_cancelled)
{
    cg_asgi_cycle_t *cy = (cg_asgi_cycle_t *)self;
    cg_asgi_t *a = cy->a;
    Py_CLEAR(cy->task); /* the task held us through send/receive: the cycle ends */
    cy->app_done = true;
    if (was_cancelled)
        cg_log_debug(a->log, "Request cancelled (client disconnected)");
    if (cy->ws != NULL && cg_asgi_ws_task_done(cy, exc, was_cancelled))
        ; /* a WebSocket's end: its close handshake */
    else if (exc != NULL && (cy->complete || cy->p == NULL))
        /* after the response, or with the client gone: nothing to answer,
         * but an app's error is still worth a traceback */
        cg_asgi_log_exc(a, CG_LOG_ERROR, "Error in ASGI application", exc);
    else if (exc != NULL)
        cg_asgi_cycle_fail(cy, exc, NULL);
    else if (!was_cancelled && !cy->started && cy->p != NULL)
        cg_asgi_cycle_fail(cy, NULL, "ASGI callable returned without starting response.");
    else if (!was_cancelled && !cy->complete && cy->p != NULL)
        cg_asgi_cycle_fail(cy, NULL, "ASGI callable returned without completing response.");
    else if (was_cancelled && !cy->complete && cy->p != NULL)
        cg_asgi_cycle_fail(cy, NULL, NULL);
    cg__post_request(cy);
    PyErr_Clear(); /* whatever failed was logged where it failed */
}

int cg_asgi_cycle_start(cg_asgi_cycle_t *cy)
{
    cg_asgi_t *a = cy->a;
    PyObject *self = (PyObject *)cy;
    if (cy->ws == NULL && cg__pre_request(cy) < 0) {
        /* in Gunicorn's try: the app's error path, then post_request */
        PyObject *exc = cg_asgi_take_exc(); /* new */
        Py_INCREF(self); /* answering it lets the connection's reference go */
        cg_asgi_cycle_fail(cy, exc, exc ? NULL : "pre_request failed");
        Py_XDECREF(exc);
        cg__post_request(cy);
        Py_DECREF(self);
        return -1;
    }
    PyObject *scope = cg_asgi_scope(cy);                                          /* new */
    PyMethodDef *rdef = cy->ws ? &cg_asgi_ws_receive_def : &cg__receive_def;
    PyMethodDef *sdef = cy->ws ? &cg_asgi_ws_send_def : &cg__send_def;
    PyObject *recv = scope ? cg_asgi_bind(rdef, self) : NULL; /* new */
    PyObject *send = recv ? cg_asgi_bind(sdef, self) : NULL;  /* new */
    PyObject *args[3] = {scope, recv, send};
    PyObject *coro = send ? PyObject_Vectorcall(a->app, args, 3, NULL) : NULL; /* new */
    PyObject *runner = coro ? cg_asgi_runner_new(a, coro, self, cg__cycle_end) : NULL; /* new */
    PyObject *task = runner ? cg_asgi_create_task(a, runner) : NULL; /* new */
    Py_XDECREF(scope);
    Py_XDECREF(recv);
    Py_XDECREF(send);
    Py_XDECREF(coro);
    Py_XDECREF(runner);
    if (task == NULL) {
        /* the app's call itself raised (or is no coroutine function) */
        PyObject *exc = cg_asgi_take_exc();
        Py_INCREF(self); /* answering it lets the connection's reference go */
        cg_asgi_cycle_fail(cy, exc, exc ? NULL : "ASGI application could not be started");
        Py_XDECREF(exc);
        cg__post_request(cy);
        Py_DECREF(self);
        return -1;
    }
    if (cy->app_done)
        Py_DECREF(task);
    else
        cy->task = task;
    return 0;
}

void cg_asgi_cycle_eof(cg_asgi_cycle_t *cy)
{
    if (cy->ws == NULL && cg__client_left(cy))
        cg__arm_grace(cy);
    cg_asgi_cycle_wake(cy); /* a receive() waiting after the body answers http.disconnect */
}

void cg_asgi_cycle_lost(cg_asgi_cycle_t *cy)
{
    cg_asgi_proto_t *p = cy->p;
    cy->disconnected = true;
    if (cy->ws != NULL)
        cg_asgi_ws_lost(cy);
    cy->p = NULL;
    cg_asgi_cycle_wake(cy); /* receive() answers http.disconnect (websocket.disconnect) */
    Py_XDECREF((PyObject *)p);
    cg__arm_grace(cy);
}

/* ---- access log ---- */

/* {name}e atoms against the environ Gunicorn's ASGI worker builds for its
 * access log: a few request variables and HTTP_* for the headers. */
static bool cg__env_lookup(void *ctx, cg_str_t name, cg_str_t *value)
{
    const cg_conn_t *c = ctx;
    const cg_http_request_t *req = &c->req;
    if (cg_str_caseeq(name, "request_method")) {
        *value = req->method;
        return true;
    }
    if (cg_str_caseeq(name, "raw_uri")) {
        *value = req->uri;
        return true;
    }
    if (cg_str_caseeq(name, "query_string")) {
        *value = req->query.ptr ? req->query : CG_STR_LIT("");
        return true;
    }
    if (cg_str_caseeq(name, "remote_addr")) {
        int port;
        *value = cg_conn_client_addr(c, &port);
        return true;
    }
    if (name.len <= 5 || !cg_str_caseeq((cg_str_t){name.ptr, 5}, "http_"))
        return false;
    for (size_t i = 0; i < req->nheaders; i++) {
        const cg_http_header_t *h = &req->headers[i];
        if ((h->flags & CG_HTTP_HF_DROPPED) || h->name.len != name.len - 5)
            continue;
        bool eq = true;
        for (size_t k = 0; eq && k < h->name.len; k++) {
            char hc = h->name.ptr[k] == '-' ? '_' : h->name.ptr[k];
            char nc = name.ptr[5 + k];
            nc = nc >= 'a' && nc <= 'z' ? (char)(nc - 32) : nc;
            eq = hc == nc;
        }
        if (eq) {
            *value = h->value;
            return true;
        }
    }
    return false;
}

void cg_asgi_access(cg_asgi_cycle_t *cy, cg_asgi_proto_t *p)
{
    cg_log_t *log = cy->a->log;
    if (cy->logged)
        return;
    cy->logged = true;
    int64_t us = cy->start_us ? (int64_t)cg_monotonic_us() - cy->start_us : 0;
    cg_board_request(cy->a->board, cy->status, us > 0 ? (uint64_t)us : 0);
    if (cy->a->w->statsd_batch != NULL)
        cg_statsd_batch_request(cy->a->w->statsd_batch, cy->status, us, cg_monotonic_us());
    if (!cg_log_access_enabled(log))
        return;
    char st[16], proto[16];
    int n = snprintf(st, sizeof(st), "%d", cy->status);
    cg_access_info_t info;
    cg_conn_access_info(&info, cy->c, proto, (cg_str_t){st, (size_t)n}, cy->sent, cy->start_us);
    cg_str_t resp[2 * CG_ASGI_RESP_VIEWS];
    info.n_resp_headers = cg__resp_views(cy, resp);
    info.resp_headers = resp;
    info.environ_lookup = cg__env_lookup;
    info.environ_ctx = cy->c;
    /* only a sink (a logger_class, Python logging) may want Python objects */
    cg__access_py_t py = {.cy = cy, .c = cy->c};
    if (log->to_sink) {
        info.py_objects = cg__access_py_objects;
        info.py_ctx = &py;
    }
    cg_log_access(log, &info);
}
