/*
 * environ.c - the per-request environ, built as Gunicorn's http.wsgi.create():
 * a copy of the per-worker base dict plus the request's keys, with interned
 * keys for everything fixed.
 */
#include "wsgi.h"

#include "../tls/tls.h"

#include <fcntl.h>
#include <unistd.h>

#include <stdio.h>
#include <string.h>

static int cg__set(PyObject *env, PyObject *key, PyObject *value /* stolen */)
{
    if (value == NULL)
        return -1;
    int rc = PyDict_SetItem(env, key, value);
    Py_DECREF(value);
    return rc;
}

static PyObject *cg__latin1(cg_str_t s)
{
    return PyUnicode_DecodeLatin1(s.ptr ? s.ptr : "", (Py_ssize_t)s.len, NULL);
}

/* urllib.parse.unquote_to_bytes(path).decode('latin-1') */
static PyObject *cg__path_info(cg_str_t path)
{
    char stack[1024];
    if (path.len == 0)
        return PyUnicode_FromStringAndSize("", 0);
    char *buf = path.len <= sizeof(stack) ? stack : cg_xmalloc(path.len);
    size_t o = cg_http_unquote(path.ptr, path.len, buf);
    PyObject *s = PyUnicode_DecodeLatin1(buf, (Py_ssize_t)o, NULL);
    if (buf != stack)
        free(buf);
    return s;
}

/* Interned HTTP_* keys for the headers nearly every request carries. */
static PyObject *cg__common_key(cg_wsgi_t *ws, cg_str_t name)
{
    switch (name.len) {
    case 4:
        if (cg_str_eq(name, "HOST", 4))
            return ws->keys[CG_WK_HTTP_HOST];
        break;
    case 6:
        if (cg_str_eq(name, "ACCEPT", 6))
            return ws->keys[CG_WK_HTTP_ACCEPT];
        if (cg_str_eq(name, "COOKIE", 6))
            return ws->keys[CG_WK_HTTP_COOKIE];
        break;
    case 7:
        if (cg_str_eq(name, "REFERER", 7))
            return ws->keys[CG_WK_HTTP_REFERER];
        break;
    case 10:
        if (cg_str_eq(name, "USER-AGENT", 10))
            return ws->keys[CG_WK_HTTP_USER_AGENT];
        if (cg_str_eq(name, "CONNECTION", 10))
            return ws->keys[CG_WK_HTTP_CONNECTION];
        break;
    case 15:
        if (cg_str_eq(name, "ACCEPT-ENCODING", 15))
            return ws->keys[CG_WK_HTTP_ACCEPT_ENCODING];
        if (cg_str_eq(name, "ACCEPT-LANGUAGE", 15))
            return ws->keys[CG_WK_HTTP_ACCEPT_LANGUAGE];
        break;
    }
    return NULL;
}

static int cg__add_header(cg_wsgi_t *ws, PyObject *env, const cg_http_header_t *h)
{
    PyObject *key = cg__common_key(ws, h->name); /* borrowed or NULL */
    PyObject *owned = NULL;
    if (key == NULL) {
        char stack[256];
        size_t n = 5 + h->name.len;
        char *k = n <= sizeof(stack) ? stack : cg_xmalloc(n);
        memcpy(k, "HTTP_", 5);
        for (size_t i = 0; i < h->name.len; i++)
            k[5 + i] = h->name.ptr[i] == '-' ? '_' : h->name.ptr[i];
        owned = key = PyUnicode_DecodeLatin1(k, (Py_ssize_t)n, NULL);
        if (k != stack)
            free(k);
        if (key == NULL)
            return -1;
    }
    PyObject *value;
    PyObject *prev = PyDict_GetItemWithError(env, key); /* borrowed */
    if (prev != NULL) {
        /* Repeated fields are joined with "," and no space, as Gunicorn. */
        PyObject *v = cg__latin1(h->value);
        value = v ? PyUnicode_FromFormat("%U,%U", prev, v) : NULL;
        Py_XDECREF(v);
    } else if (PyErr_Occurred()) {
        value = NULL;
    } else {
        value = cg__latin1(h->value);
    }
    int rc = cg__set(env, key, value);
    Py_XDECREF(owned);
    return rc;
}

/* Set attribute name of obj to v (stolen; NULL: an error is set). */
static int cg__setattr(PyObject *obj, const char *name, PyObject *v)
{
    if (v == NULL)
        return -1;
    int rc = PyObject_SetAttrString(obj, name, v);
    Py_DECREF(v);
    return rc;
}

/*
 * gunicorn.socket on a TLS connection: in Gunicorn it is the ssl.SSLSocket,
 * whose getpeercert() is how an app sees the client's certificate. Ours is a
 * socket on the duplicate dfd (closed by the caller on failure) with that
 * method and cipher(), version(), selected_alpn_protocol(), answered from
 * the TLS session as the connection's first request found it (no
 * renegotiation: it cannot change). New reference or NULL.
 */
static PyObject *cg__tls_socket(cg_wsgi_t *ws, cg_conn_t *c, int dfd)
{
    if (ws->tls_socket_cls == NULL) {
        PyObject *mod = PyImport_ImportModule("cgunicorn._tls"); /* new */
        ws->tls_socket_cls = mod != NULL ? PyObject_GetAttrString(mod, "PeerSocket") : NULL;
        Py_XDECREF(mod);
        if (ws->tls_socket_cls == NULL)
            return NULL;
    }
    cg_tls_peer_t p;
    int r = cg_tls_peer(c, &p);
    if (r < 0) {
        errno = -r;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *sock = PyObject_CallFunction(ws->tls_socket_cls, "iiii", (int)c->listener->family,
                                           SOCK_STREAM, 0, dfd); /* new */
    PyObject *der = p.der != NULL ? PyBytes_FromStringAndSize((const char *)p.der,
                                                              (Py_ssize_t)p.der_len)
                                  : Py_NewRef(Py_None);
    PyObject *cipher = p.cipher != NULL ? Py_BuildValue("(ssi)", p.cipher, p.cipher_protocol,
                                                        p.secret_bits)
                                        : Py_NewRef(Py_None);
    PyObject *version = p.version != NULL ? PyUnicode_FromString(p.version) : Py_NewRef(Py_None);
    PyObject *alpn = p.alpn != NULL
                         ? PyUnicode_DecodeLatin1((const char *)p.alpn, p.alpn_len, NULL)
                         : Py_NewRef(Py_None);
    cg_tls_peer_free(&p);
    int rc = sock != NULL ? 0 : -1;
    rc = rc < 0 ? rc : cg__setattr(sock, "_cg_der", Py_XNewRef(der));
    rc = rc < 0 ? rc : cg__setattr(sock, "_cg_verified", PyBool_FromLong(p.asked));
    rc = rc < 0 ? rc : cg__setattr(sock, "_cg_cipher", Py_XNewRef(cipher));
    rc = rc < 0 ? rc : cg__setattr(sock, "_cg_version", Py_XNewRef(version));
    rc = rc < 0 ? rc : cg__setattr(sock, "_cg_alpn", Py_XNewRef(alpn));
    Py_XDECREF(der);
    Py_XDECREF(cipher);
    Py_XDECREF(version);
    Py_XDECREF(alpn);
    if (rc < 0 && sock != NULL) {
        /* the caller closes dfd: take it back from the object */
        PyObject *et, *ev, *etb;
        PyErr_Fetch(&et, &ev, &etb);
        PyObject *d = PyObject_CallMethod(sock, "detach", NULL); /* new */
        if (d == NULL)
            PyErr_Clear();
        Py_XDECREF(d);
        Py_CLEAR(sock);
        PyErr_Restore(et, ev, etb);
    }
    return sock;
}

PyObject *cg_wsgi_environ_new(cg_wsgi_t *ws, cg_wsgi_req_t *r, cg_http_error_t *err)
{
    cg_http_request_t *req = r->http;
    cg_conn_t *c = r->conn;
    PyObject **K = ws->keys;
    PyObject *env = PyDict_Copy(ws->base_environ); /* new */
    if (env == NULL)
        return NULL;

    /* An HTTP/2 stream has no socket of its own (fd -1): the connection's
     * carries other streams, and bytes an app wrote there would break them. */
    if (ws->socket_cls != NULL && c->fd >= 0) {
        /* A real socket object, one per connection (keep-alive requests are
         * spared making it). It holds a duplicate of our descriptor: an app
         * that closes or detaches it (some middlewares do after hijacking the
         * connection) then closes its own copy, never a number the worker
         * still uses and the next accept() may hand to another client. */
        if (c->app_sock == NULL) {
            int dfd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
            if (dfd < 0) {
                PyErr_SetFromErrno(PyExc_OSError);
                goto fail;
            }
            c->app_sock = c->tls ? cg__tls_socket(ws, c, dfd)
                                 : PyObject_CallFunction(ws->socket_cls, "iiii",
                                                         (int)c->listener->family, SOCK_STREAM,
                                                         0, dfd);
            if (c->app_sock == NULL)
                close(dfd);
        }
        if (c->app_sock == NULL || PyDict_SetItem(env, K[CG_WK_GUNICORN_SOCKET], c->app_sock) < 0)
            goto fail;
    }

    PyObject *method;
    if (cg_str_eq(req->method, "GET", 3))
        method = Py_NewRef(K[CG_WK_V_GET]);
    else if (cg_str_eq(req->method, "POST", 4))
        method = Py_NewRef(K[CG_WK_V_POST]);
    else if (cg_str_eq(req->method, "HEAD", 4))
        method = Py_NewRef(K[CG_WK_V_HEAD]);
    else
        method = cg__latin1(req->method);
    if (cg__set(env, K[CG_WK_REQUEST_METHOD], method) < 0)
        goto fail;
    if (cg__set(env, K[CG_WK_QUERY_STRING],
                req->query.ptr ? cg__latin1(req->query) : Py_NewRef(K[CG_WK_V_EMPTY])) < 0)
        goto fail;
    if (cg__set(env, K[CG_WK_RAW_URI], cg__latin1(req->uri)) < 0)
        goto fail;
    PyObject *proto;
    if (req->version_major == 1 && req->version_minor == 1)
        proto = Py_NewRef(K[CG_WK_V_HTTP11]);
    else if (req->version_major == 1 && req->version_minor == 0)
        proto = Py_NewRef(K[CG_WK_V_HTTP10]);
    else
        proto = PyUnicode_FromFormat("HTTP/%u.%u", req->version_major, req->version_minor);
    if (cg__set(env, K[CG_WK_SERVER_PROTOCOL], proto) < 0)
        goto fail;
    /* Gunicorn's gthread worker marks its HTTP/2 requests this way too,
     * and offers them trailers */
    if (req->version_major == 2 &&
        cg__set(env, K[CG_WK_HTTP_VERSION], PyUnicode_FromString("2")) < 0)
        goto fail;
    if (c->ops->trailers != NULL &&
        PyDict_SetItem(env, K[CG_WK_SEND_TRAILERS], ws->send_trailers) < 0)
        goto fail;

    cg_str_t host = {NULL, 0};
    for (size_t i = 0; i < req->nheaders; i++) {
        const cg_http_header_t *h = &req->headers[i];
        if (h->flags & CG_HTTP_HF_DROPPED)
            continue;
        if (cg_str_eq(h->name, "HOST", 4)) {
            host = h->value;
        } else if (cg_str_eq(h->name, "CONTENT-TYPE", 12)) {
            if (cg__set(env, K[CG_WK_CONTENT_TYPE], cg__latin1(h->value)) < 0)
                goto fail;
            continue;
        } else if (cg_str_eq(h->name, "CONTENT-LENGTH", 14)) {
            if (cg__set(env, K[CG_WK_CONTENT_LENGTH], cg__latin1(h->value)) < 0)
                goto fail;
            continue;
        }
        if (cg__add_header(ws, env, h) < 0)
            goto fail;
    }

    bool https = req->scheme_https == 1;
    if (https && PyDict_SetItem(env, K[CG_WK_WSGI_URL_SCHEME], K[CG_WK_V_HTTPS]) < 0)
        goto fail;

    if (ws->peer_ip_obj == NULL || strcmp(ws->peer_ip, c->peer_ip) != 0) {
        PyObject *ip = PyUnicode_FromString(c->peer_ip); /* new */
        if (ip == NULL)
            goto fail;
        Py_XSETREF(ws->peer_ip_obj, ip);
        snprintf(ws->peer_ip, sizeof(ws->peer_ip), "%s", c->peer_ip);
    }
    if (PyDict_SetItem(env, K[CG_WK_REMOTE_ADDR], ws->peer_ip_obj) < 0)
        goto fail;
    if (c->listener->family != AF_UNIX &&
        cg__set(env, K[CG_WK_REMOTE_PORT], PyUnicode_FromString(c->peer_port)) < 0)
        goto fail;
    if (c->has_proxy) {
        /* The client as the proxy saw it; LOCAL/UNSPEC carry no address, which
         * Gunicorn exposes as None / 'None'. */
        const cg_http_proxy_t *p = &c->proxy;
        bool none = p->client_port < 0;
        if (cg__set(env, K[CG_WK_PROXY_PROTOCOL], PyUnicode_FromString(p->protocol)) < 0 ||
            cg__set(env, K[CG_WK_REMOTE_ADDR],
                    none ? Py_NewRef(Py_None) : PyUnicode_FromString(p->client_addr)) < 0 ||
            cg__set(env, K[CG_WK_REMOTE_PORT],
                    none ? PyUnicode_FromString("None") : PyUnicode_FromFormat("%d", p->client_port)) < 0 ||
            cg__set(env, K[CG_WK_PROXY_ADDR],
                    none ? Py_NewRef(Py_None) : PyUnicode_FromString(p->proxy_addr)) < 0 ||
            cg__set(env, K[CG_WK_PROXY_PORT],
                    none ? PyUnicode_FromString("None") : PyUnicode_FromFormat("%d", p->proxy_port)) < 0)
            goto fail;
    }

    if (c->listener->family != AF_UNIX && c->listener == ws->srv_in_base) {
        /* the base environ has them */
    } else if (c->listener->family != AF_UNIX) {
        if (ws->srv_listener != c->listener) {
            PyObject *name = PyUnicode_FromString(c->listener->server_name); /* new */
            PyObject *port = PyUnicode_FromString(c->listener->server_port); /* new */
            if (name == NULL || port == NULL) {
                Py_XDECREF(name);
                Py_XDECREF(port);
                goto fail;
            }
            Py_XSETREF(ws->srv_name, name);
            Py_XSETREF(ws->srv_port, port);
            ws->srv_listener = c->listener;
        }
        if (PyDict_SetItem(env, K[CG_WK_SERVER_NAME], ws->srv_name) < 0 ||
            PyDict_SetItem(env, K[CG_WK_SERVER_PORT], ws->srv_port) < 0)
            goto fail;
    } else if (host.ptr != NULL) {
        /* Unix sockets have no address to report: Gunicorn uses Host. */
        const char *colon = memchr(host.ptr, ':', host.len);
        cg_str_t name = host, port;
        if (colon != NULL) {
            name.len = (size_t)(colon - host.ptr);
            port = (cg_str_t){colon + 1, host.len - name.len - 1};
            const char *c2 = memchr(port.ptr, ':', port.len);
            if (c2 != NULL)
                port.len = (size_t)(c2 - port.ptr);
        } else {
            port = https ? CG_STR_LIT("443") : CG_STR_LIT("80");
        }
        if (cg__set(env, K[CG_WK_SERVER_NAME], cg__latin1(name)) < 0 ||
            cg__set(env, K[CG_WK_SERVER_PORT], cg__latin1(port)) < 0)
            goto fail;
    } else {
        const char *path = c->listener->unix_path ? c->listener->unix_path : "";
        if (cg__set(env, K[CG_WK_SERVER_NAME], PyUnicode_FromString(path)) < 0 ||
            PyDict_SetItem(env, K[CG_WK_SERVER_PORT], K[CG_WK_V_EMPTY]) < 0)
            goto fail;
    }

    /* SCRIPT_NAME: a trusted proxy's header wins over the process environment. */
    PyObject *script_name;
    cg_str_t sn;
    if (req->script_name.ptr != NULL) {
        sn = req->script_name;
        script_name = cg__latin1(sn);
    } else {
        script_name = Py_NewRef(ws->script_name_env);
        Py_ssize_t n;
        sn.ptr = PyUnicode_AsUTF8AndSize(script_name, &n);
        sn.len = sn.ptr ? (size_t)n : 0;
    }
    if (script_name == NULL)
        goto fail;
    cg_str_t path = req->path;
    if (sn.len > 0) {
        if (path.len < sn.len || memcmp(path.ptr, sn.ptr, sn.len) != 0) {
            /* Gunicorn's ConfigurationProblem (500); the message quotes both
             * values like Python's %r of a str. */
            snprintf(ws->problem, sizeof(ws->problem),
                     "Request path '%.*s' does not start with SCRIPT_NAME '%.*s'", (int)path.len,
                     path.ptr, (int)sn.len, sn.ptr);
            err->code = CG_HTTP_E_CONFIGURATION_PROBLEM;
            err->lit = ws->problem;
            err->arg = (cg_str_t){ws->problem, strlen(ws->problem)};
            Py_DECREF(script_name);
            goto fail;
        }
        path.ptr += sn.len;
        path.len -= sn.len;
    }
    if (cg__set(env, K[CG_WK_PATH_INFO], cg__path_info(path)) < 0) {
        Py_DECREF(script_name);
        goto fail;
    }
    if (req->script_name.ptr == NULL)
        Py_DECREF(script_name); /* the base environ has the process's one */
    else if (cg__set(env, K[CG_WK_SCRIPT_NAME], script_name) < 0)
        goto fail;
    return env;

fail:
    Py_DECREF(env);
    return NULL;
}
