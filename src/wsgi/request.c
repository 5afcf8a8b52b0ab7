/*
 * request.c - serving one request through the WSGI app, the per-worker WSGI
 * state, and what happens when the app fails (Gunicorn's handle_request /
 * handle_error semantics).
 */
#include "wsgi.h"

#include <pthread.h>

#include "../metrics/statsd.h"
#include "../python/python.h"
#include "../tls/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *cg_wsgi_http_date(cg_wsgi_t *ws)
{
    return cg_http_date_now(&ws->date);
}

void cg_wsgi_orphans_add(cg_wsgi_orphans_t *q, cg_conn_t *conn)
{
    if (conn->app_sock == NULL)
        return;
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 16;
        q->v = cg_xrealloc(q->v, q->cap * sizeof(*q->v));
    }
    q->v[q->n++] = conn->app_sock;
    conn->app_sock = NULL;
}

void cg_wsgi_orphans_move(cg_wsgi_orphans_t *dst, cg_wsgi_orphans_t *src)
{
    if (src->n == 0)
        return;
    if (dst->n + src->n > dst->cap) {
        dst->cap = dst->n + src->n + 16;
        dst->v = cg_xrealloc(dst->v, dst->cap * sizeof(*dst->v));
    }
    memcpy(dst->v + dst->n, src->v, src->n * sizeof(*src->v));
    dst->n += src->n;
    src->n = 0;
}

/* Let go of a gunicorn.socket when its connection ends. It holds a
 * duplicate of the connection's descriptor: closed here, so that an app still
 * holding the object does not keep the connection open. */
static void cg__sock_release(PyObject *sock /* stolen */)
{
    /* detach() and a plain close(2) rather than sock.close(), which hands
     * the GIL over and back around its close: a per-connection cost */
    PyObject *d = PyObject_CallMethod(sock, "detach", NULL); /* new */
    long fd = d != NULL ? PyLong_AsLong(d) : -1;
    if (fd >= 0)
        close((int)fd);
    if (d == NULL || fd < 0)
        PyErr_Clear();
    Py_XDECREF(d);
    Py_DECREF(sock);
}

void cg_wsgi_orphans_release(cg_wsgi_orphans_t *q)
{
    for (size_t i = 0; i < q->n; i++)
        cg__sock_release(q->v[i]);
    free(q->v);
    *q = (cg_wsgi_orphans_t){0};
}

int cg_wsgi_init(cg_wsgi_t *ws, cg_worker_t *w, PyObject *app)
{
    memset(ws, 0, sizeof(*ws));
    ws->worker = w;
    ws->log = w->log;
    ws->cfg = w->cfg;
    ws->app = app;
    ws->sendfile = w->cfg->sendfile;
    ws->uwsgi = w->cfg->protocol != NULL && strcmp(w->cfg->protocol, "uwsgi") == 0;
    ws->force_close = true;
    ws->on_main = pthread_equal(pthread_self(), w->main_tid) != 0;
    ws->thread_id = PyThread_get_thread_ident();
    pthread_mutex_init(&ws->rt.lock, NULL); /* a default mutex cannot fail on Linux */

    if (cg_wsgi_response_types_ready() < 0 || cg_wsgi_input_type_ready() < 0 ||
        cg_wsgi_errors_type_ready() < 0 || PyType_Ready(&cg_wsgi_file_wrapper_type) < 0)
        return -1;
#define CG__WK_INIT(id, s)                                                                         \
    if ((ws->keys[CG_WK_##id] = PyUnicode_InternFromString(s)) == NULL)                            \
        return -1;
    CG_WSGI_KEYS(CG__WK_INIT)
#undef CG__WK_INIT

    const char *sn = getenv("SCRIPT_NAME");
    ws->script_name_env = PyUnicode_DecodeFSDefault(sn ? sn : "");
    if (ws->script_name_env == NULL)
        return -1;
    /* _socket.socket, the C type under socket.socket: the same methods apps
     * use on gunicorn.socket, without a Python-level __init__ per request. */
    PyObject *socket_mod = PyImport_ImportModule("_socket"); /* new */
    if (socket_mod == NULL)
        return -1;
    ws->socket_cls = PyObject_GetAttrString(socket_mod, "socket");
    Py_DECREF(socket_mod);
    if (ws->socket_cls == NULL)
        return -1;

    ws->start_response = cg_wsgi_start_response_new();
    ws->write = cg_wsgi_write_new();
    ws->input = cg_wsgi_input_new();
    ws->early_hints = cg_wsgi_early_hints_new();
    ws->send_trailers = cg_wsgi_send_trailers_new();
    if (!ws->start_response || !ws->write || !ws->input || !ws->early_hints ||
        !ws->send_trailers)
        return -1;

    PyObject **K = ws->keys;
    /* Room for a whole environ: PyDict_Copy() keeps the table size of a
     * dict without deletions, so the per-request copy takes the request's
     * keys and the usual headers without growing (two resizes otherwise). */
#if PY_VERSION_HEX < 0x030D0000
    PyObject *b = ws->base_environ = _PyDict_NewPresized(40);
#else
    PyObject *b = ws->base_environ = PyDict_New();
#endif
    PyObject *version = Py_BuildValue("(ii)", 1, 0);      /* new */
    PyObject *errors = cg_wsgi_errors_new(ws->log);       /* new */
    PyObject *software = PyUnicode_FromString(CG_SERVER_SOFTWARE); /* new */
    int rc = -1;
    if (b && version && errors && software &&
        PyDict_SetItem(b, K[CG_WK_WSGI_ERRORS], errors) == 0 &&
        PyDict_SetItem(b, K[CG_WK_WSGI_VERSION], version) == 0 &&
        PyDict_SetItem(b, K[CG_WK_WSGI_MULTITHREAD], ws->multithread ? Py_True : Py_False) == 0 &&
        PyDict_SetItem(b, K[CG_WK_WSGI_MULTIPROCESS], w->nworkers > 1 ? Py_True : Py_False) == 0 &&
        PyDict_SetItem(b, K[CG_WK_WSGI_RUN_ONCE], Py_False) == 0 &&
        PyDict_SetItem(b, K[CG_WK_WSGI_FILE_WRAPPER], (PyObject *)&cg_wsgi_file_wrapper_type) == 0 &&
        PyDict_SetItem(b, K[CG_WK_WSGI_INPUT_TERMINATED], Py_True) == 0 &&
        PyDict_SetItem(b, K[CG_WK_SERVER_SOFTWARE], software) == 0 &&
        /* What nearly every request has the same: set once here, so the
         * copy brings it, and overridden per request only when it differs
         * (https, a SCRIPT_NAME header). wsgi.input and wsgi.early_hints
         * are replaced here when the app kept the old ones. */
        PyDict_SetItem(b, K[CG_WK_WSGI_INPUT], ws->input) == 0 &&
        PyDict_SetItem(b, K[CG_WK_WSGI_EARLY_HINTS], ws->early_hints) == 0 &&
        PyDict_SetItem(b, K[CG_WK_WSGI_URL_SCHEME], K[CG_WK_V_HTTP]) == 0 &&
        PyDict_SetItem(b, K[CG_WK_SCRIPT_NAME], ws->script_name_env) == 0)
        rc = 0;
    if (rc == 0 && w->nlisteners == 1 && w->listeners[0].family != AF_UNIX) {
        /* one TCP listener: SERVER_NAME and SERVER_PORT never change */
        PyObject *name = PyUnicode_FromString(w->listeners[0].server_name); /* new */
        PyObject *port = PyUnicode_FromString(w->listeners[0].server_port); /* new */
        if (name == NULL || port == NULL || PyDict_SetItem(b, K[CG_WK_SERVER_NAME], name) < 0 ||
            PyDict_SetItem(b, K[CG_WK_SERVER_PORT], port) < 0)
            rc = -1;
        else
            ws->srv_in_base = &w->listeners[0];
        Py_XDECREF(name);
        Py_XDECREF(port);
    }
    Py_XDECREF(version);
    Py_XDECREF(errors);
    Py_XDECREF(software);
    return rc;
}

int cg_wsgi_set_threaded(cg_wsgi_t *ws)
{
    ws->multithread = true;
    ws->force_close = false;
    return PyDict_SetItem(ws->base_environ, ws->keys[CG_WK_WSGI_MULTITHREAD], Py_True);
}

int cg_wsgi_set_cooperative(cg_wsgi_t *ws, PyObject *sleep)
{
    ws->hold_gil = true;
    Py_XSETREF(ws->coop_sleep, Py_NewRef(sleep));
    return cg_wsgi_set_threaded(ws);
}

void cg_wsgi_free(cg_wsgi_t *ws)
{
    pthread_mutex_destroy(&ws->rt.lock);
    Py_CLEAR(ws->app);
    Py_CLEAR(ws->base_environ);
    Py_CLEAR(ws->socket_cls);
    Py_CLEAR(ws->tls_socket_cls);
    Py_CLEAR(ws->srv_name);
    Py_CLEAR(ws->srv_port);
    Py_CLEAR(ws->peer_ip_obj);
    cg_wsgi_orphans_release(&ws->orphans);
    Py_CLEAR(ws->script_name_env);
    Py_CLEAR(ws->start_response);
    Py_CLEAR(ws->write);
    Py_CLEAR(ws->input);
    Py_CLEAR(ws->early_hints);
    Py_CLEAR(ws->coop_sleep);
    Py_CLEAR(ws->exit_exc);
    Py_CLEAR(ws->send_trailers);
    for (int i = 0; i < CG_WK__COUNT; i++)
        Py_CLEAR(ws->keys[i]);
}

/* The per-request objects are reused unless the app kept a reference to one
 * from an earlier request (then that one stays unbound and inert). */
static int cg__recycle(PyObject **slot, PyObject *(*make)(void))
{
    if (Py_REFCNT(*slot) == 1)
        return 0;
    PyObject *fresh = make();
    if (fresh == NULL)
        return -1;
    Py_SETREF(*slot, fresh);
    return 0;
}

/* As cg__recycle, for an object the base environ holds under `key` too (so
 * the copy made per request has it without a SetItem): free again when those
 * two are its only references. */
static int cg__recycle_in_base(cg_wsgi_t *ws, PyObject **slot, PyObject *(*make)(void),
                               PyObject *key)
{
    if (Py_REFCNT(*slot) == 2)
        return 0;
    PyObject *fresh = make();
    if (fresh == NULL)
        return -1;
    Py_SETREF(*slot, fresh);
    return PyDict_SetItem(ws->base_environ, key, fresh);
}

int cg_wsgi_io_claim(cg_wsgi_req_t *r)
{
    if (r->io_busy > 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "wsgi.input or write() used by two threads at once");
        return -1;
    }
    r->io_busy++;
    return 0;
}

/* The app (or its iterator, or close()) is about to run on this context's
 * thread, or has just returned. GIL held. Signals reach the main thread
 * only: there the worker's flag tells the handler to raise SystemExit;
 * pool threads get theirs from the loop (cg__pool_interrupt). */
static void cg__app_enter(cg_wsgi_t *ws)
{
    ws->in_app = 1;
    if (ws->on_main)
        ws->worker->in_app = 1;
}

static void cg__app_leave(cg_wsgi_t *ws)
{
    ws->in_app = 0;
    if (ws->on_main)
        ws->worker->in_app = 0;
}

/* Write bytes with the GIL released (kept by a cooperative context). */
static int cg__write_io(cg_wsgi_t *ws, cg_conn_t *c, const char *data, size_t len)
{
    int rc;
    CG_WSGI_IO_BEGIN(ws)
    rc = cg_conn_write_all(c, data, len);
    CG_WSGI_IO_END()
    return rc;
}

/* ---- access log ---- */

typedef struct {
    PyObject *environ;
    PyObject *keep[8]; /* str() results kept alive until the line is written */
    int nkeep;
} cg__env_ctx_t;

static bool cg__environ_lookup(void *vctx, cg_str_t name, cg_str_t *value)
{
    cg__env_ctx_t *ctx = vctx;
    if (ctx->environ == NULL || ctx->nkeep >= (int)CG_ARRAY_SIZE(ctx->keep))
        return false;
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(ctx->environ, &pos, &k, &v)) { /* borrowed */
        cg_str_t ks;
        Py_ssize_t n;
        if (!PyUnicode_Check(k) || (ks.ptr = PyUnicode_AsUTF8AndSize(k, &n)) == NULL) {
            PyErr_Clear();
            continue;
        }
        ks.len = (size_t)n;
        if (ks.len != name.len)
            continue;
        char lower[256];
        if (name.len >= sizeof(lower))
            continue;
        memcpy(lower, name.ptr, name.len);
        lower[name.len] = '\0';
        if (!cg_str_caseeq(ks, lower))
            continue;
        PyObject *s = PyObject_Str(v); /* new, kept in ctx */
        const char *u = s ? PyUnicode_AsUTF8AndSize(s, &n) : NULL;
        if (u == NULL) {
            Py_XDECREF(s);
            PyErr_Clear();
            return false;
        }
        ctx->keep[ctx->nkeep++] = s;
        *value = (cg_str_t){u, (size_t)n};
        return true;
    }
    return false;
}

/*
 * An access record gathered under the GIL and written once it is released
 * (cg__access_flush): views into the connection's buffer, plus copies of
 * the text that lived in Python objects (status, PATH_INFO, response headers,
 * {name}e values), in `store` or, past it, one heap block.
 */
typedef struct {
    bool pending;
    /* statsd's three request metrics, sent with the record (Gunicorn's
     * Statsd.access), whether or not there is an access log */
    bool stats_pending;
    long stats_code; /* the status line's integer, -1: none (nothing sent) */
    int64_t stats_us;
    uint64_t stats_end_us; /* when it ended: the batch's clock */
    cg_access_info_t info;
    char proto[16];
    cg_str_t resp[2 * 32];
    cg_access_env_t env;
    char *heap;
    char store[512];
} cg__access_rec_t;

/* Copy the views that point into Python objects into the record. */
static void cg__access_own(cg__access_rec_t *a, bool path_from_python)
{
    cg_str_t *v[2 + CG_ARRAY_SIZE(a->resp) + CG_ACCESS_ENV_MAX];
    size_t nv = 0, total = 0;
    v[nv++] = &a->info.status;
    if (path_from_python)
        v[nv++] = &a->info.path_info;
    for (size_t i = 0; i < 2 * a->info.n_resp_headers; i++)
        v[nv++] = &a->resp[i];
    for (size_t i = 0; i < a->env.n; i++)
        if (a->env.value[i].ptr != NULL)
            v[nv++] = &a->env.value[i];
    for (size_t i = 0; i < nv; i++)
        total += v[i]->len;
    char *d = total <= sizeof(a->store) ? a->store : (a->heap = cg_xmalloc(total));
    for (size_t i = 0; i < nv; i++) {
        memcpy(d, v[i]->ptr, v[i]->len);
        v[i]->ptr = d;
        d += v[i]->len;
    }
}

/* What a Python logger_class's access() is given (cg_access_info_t.py_ctx). */
typedef struct {
    cg_wsgi_req_t *r;
    PyObject *env; /* borrowed; NULL when the environ was never built */
} cg__access_py_t;
static int cg__access_py_objects(void *ctx, void **req, void **resp, void **env_out);

/*
 * Gather the access record of the request. With Python's logging configured
 * the record goes to it now (it needs the GIL, and reads the environ
 * through cg__environ_lookup); else `a` keeps it for cg__access_flush.
 */
static void cg__access_log(cg_wsgi_t *ws, cg_wsgi_req_t *r, cg__access_rec_t *a, PyObject *env,
                           cg_str_t status, int64_t start_us)
{
    cg_log_t *log = ws->log;
    if (log->statsd != NULL || ws->board != NULL) {
        long code = cg_statsd_status_code(status);
        uint64_t end_us = cg_monotonic_us();
        int64_t took = (int64_t)end_us - start_us;
        cg_board_request(ws->board, code, took > 0 ? (uint64_t)took : 0);
        a->stats_pending = log->statsd != NULL;
        a->stats_code = code;
        a->stats_end_us = end_us;
        a->stats_us = took;
    }
    if (!cg_log_access_enabled(log))
        return;
    /* a sink builds every atom; the C renderer only what its format names */
    unsigned need = log->to_sink ? ~0u : cg_access_fmt_needs(log->access_fmt);
    cg_conn_t *c = r->conn;
    cg_http_request_t *req = r->http;
    size_t npairs = 0;
    for (size_t i = 0; (need & CG_ACCESS_NEEDS_RESP_HEADERS) && i < r->nheaders &&
                       npairs < CG_ARRAY_SIZE(a->resp) / 2;
         i++) {
        /* the latin-1 bytes validation found, as the request headers are:
         * the renderer encodes both the same way */
        a->resp[2 * npairs] = r->headers[i].n;
        a->resp[2 * npairs + 1] = r->headers[i].v;
        npairs++;
    }
    cg__env_ctx_t ctx = {.environ = env, .nkeep = 0};
    cg_str_t path_info = req->path;
    PyObject *pi = env != NULL && (need & CG_ACCESS_NEEDS_PATH_INFO)
                       ? PyDict_GetItemWithError(env, ws->keys[CG_WK_PATH_INFO])
                       : NULL;
    bool path_from_python = false;
    if (pi != NULL && PyUnicode_Check(pi)) {
        Py_ssize_t n;
        const char *u = PyUnicode_AsUTF8AndSize(pi, &n);
        if (u != NULL) {
            path_info = (cg_str_t){u, (size_t)n};
            path_from_python = true;
        }
    }
    PyErr_Clear();
    cg_conn_access_info(&a->info, c, a->proto, status, r->sent, start_us);
    a->info.path_info = path_info;
    a->info.resp_headers = a->resp;
    a->info.n_resp_headers = npairs;
    a->info.environ_lookup = cg__environ_lookup;
    a->info.environ_ctx = &ctx;
    if (log->to_sink) {
        /* only a sink may want the request's Python objects: the C writer's
         * path stays as it is */
        cg__access_py_t py = {.r = r, .env = env};
        a->info.py_objects = cg__access_py_objects;
        a->info.py_ctx = &py;
        cg_log_access(log, &a->info);
    } else {
        /* look the {name}e atoms up now, each name once */
        cg_str_t names[CG_ACCESS_ENV_MAX];
        size_t nn = (need & CG_ACCESS_NEEDS_ENVIRON)
                        ? cg_access_fmt_environ_names(log->access_fmt, names, CG_ARRAY_SIZE(names))
                        : 0;
        a->env.n = 0;
        for (size_t i = 0; i < nn && i < CG_ARRAY_SIZE(names); i++) {
            bool seen = false;
            for (size_t k = 0; k < a->env.n; k++)
                seen = seen || cg_str_eq(a->env.name[k], names[i].ptr, names[i].len);
            if (seen)
                continue;
            cg_str_t v;
            if (!cg__environ_lookup(&ctx, names[i], &v))
                v = (cg_str_t){NULL, 0};
            a->env.name[a->env.n] = names[i];
            a->env.value[a->env.n++] = v;
        }
        a->info.environ_lookup = cg_access_env_lookup;
        a->info.environ_ctx = &a->env;
        a->heap = NULL;
        cg__access_own(a, path_from_python);
        a->pending = true;
    }
    for (int i = 0; i < ctx.nkeep; i++)
        Py_DECREF(ctx.keep[i]);
}

/* Render and write a gathered record; called without the GIL. */
static void cg__access_flush(cg_wsgi_t *ws, cg__access_rec_t *a)
{
    if (a->pending) {
        a->pending = false;
        cg_log_access(ws->log, &a->info);
        free(a->heap);
        a->heap = NULL;
    }
    if (a->stats_pending) {
        a->stats_pending = false;
        /* stats_code < 0: Gunicorn's int() raised, nothing is sent */
        if (a->stats_code >= 0 && ws->worker->statsd_batch != NULL)
            cg_statsd_batch_request(ws->worker->statsd_batch, a->stats_code, a->stats_us,
                                    a->stats_end_us);
        else if (a->stats_code >= 0)
            cg_statsd_request(ws->log->statsd, a->stats_code, a->stats_us);
    }
}

/* The same with the GIL held: released around it, for a record that must be
 * out before the app's close() or post_request run (Gunicorn's order). */
static void cg__access_flush_nogil(cg_wsgi_t *ws, cg__access_rec_t *a)
{
    if (!a->pending && !a->stats_pending)
        return;
    Py_BEGIN_ALLOW_THREADS
    cg__access_flush(ws, a);
    Py_END_ALLOW_THREADS
}

/* ---- response bodies ---- */

/* sendfile(2) fast path for wsgi.file_wrapper. Returns 1 when used, 0 when the
 * file cannot be sent that way (then iterate), -1 on error (exception set or
 * r->io_error). */
static int cg__try_sendfile(cg_wsgi_t *ws, cg_wsgi_req_t *r, PyObject *result)
{
    /* Without start_response there is no head to send: iterating reports the
     * app's error the usual way. */
    if (!ws->sendfile || !PyObject_TypeCheck(result, &cg_wsgi_file_wrapper_type) ||
        r->status == NULL)
        return 0;
    PyObject *filelike = PyObject_GetAttrString(result, "filelike"); /* new */
    if (filelike == NULL)
        return -1;
    PyObject *fno = PyObject_CallMethod(filelike, "fileno", NULL); /* new */
    Py_DECREF(filelike);
    if (fno == NULL) {
        PyErr_Clear(); /* no real descriptor (BytesIO ...): iterate instead */
        return 0;
    }
    int fd = (int)PyLong_AsLong(fno);
    Py_DECREF(fno);
    if (fd < 0) {
        PyErr_Clear();
        return 0;
    }
    off_t offset = lseek(fd, 0, SEEK_CUR);
    struct stat st;
    if (offset < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return 0;
    int64_t nbytes = r->response_length >= 0 ? r->response_length : (int64_t)st.st_size - offset;
    if (nbytes < 0)
        nbytes = 0;
    if (r->omits_body) {
        if (nbytes > 0)
            cg_wsgi_write_body(r, "", 0); /* headers only */
        return cg_wsgi_finish(r) < 0 ? -1 : 1;
    }
    /* The head says how the body is framed (Content-Length, or chunked on
     * HTTP/1.1 as Gunicorn's sendfile path); the file goes between. */
    char chunk[24];
    int cl = r->chunked && nbytes > 0 ? snprintf(chunk, sizeof(chunk), "%llX\r\n", (long long)nbytes)
                                      : 0;
    int rc = cg_wsgi_send_headers(r, NULL, 0);
    if (rc == 0 && cl > 0)
        rc = cg__write_io(ws, r->conn, chunk, (size_t)cl);
    if (rc == 0 && nbytes > 0) {
        if (r->conn->tls)
            cg_log_debug(ws->log, "Sending a file of %lld bytes over TLS %s", (long long)nbytes,
                         cg_tls_ktls_send(r->conn) ? "with kTLS (SSL_sendfile)"
                                                   : "encrypted in user space (no kTLS)");
        CG_WSGI_IO_BEGIN(ws)
        rc = cg_conn_sendfile(r->conn, fd, offset, (size_t)nbytes);
        CG_WSGI_IO_END()
    }
    if (rc == 0 && r->chunked)
        rc = nbytes > 0 ? cg__write_io(ws, r->conn, "\r\n0\r\n\r\n", 7)
                        : cg__write_io(ws, r->conn, "0\r\n\r\n", 5);
    if (rc < 0) {
        r->io_error = rc;
        return -1;
    }
    r->sent += nbytes;
    lseek(fd, offset, SEEK_SET);
    /* HTTP/2 trailers (gunicorn.http2.send_trailers) go after the file */
    if (r->trailers != NULL && !r->chunked && cg_wsgi_finish(r) < 0)
        return -1;
    return 1;
}

/* Iterate the app's result and write it. Returns 0 or -1 (exception set or
 * r->io_error). */
static int cg__write_result(cg_wsgi_t *ws, cg_wsgi_req_t *r, PyObject *result)
{
    /* Fast path: a list or tuple holding one bytes object (most frameworks). */
    if ((PyList_CheckExact(result) || PyTuple_CheckExact(result)) && PySequence_Fast_GET_SIZE(result) == 1 &&
        PyBytes_CheckExact(PySequence_Fast_GET_ITEM(result, 0)) && r->status != NULL) {
        PyObject *item = PySequence_Fast_GET_ITEM(result, 0); /* borrowed; result holds it */
        Py_INCREF(item);
        /* post_request must see the response on the wire: no cork then */
        r->cork = !cg_py_request_hooks(ws->cfg);
        int rc = cg_wsgi_write_body(r, PyBytes_AS_STRING(item), (size_t)PyBytes_GET_SIZE(item));
        Py_DECREF(item);
        if (rc < 0 || cg_wsgi_finish(r) < 0)
            return -1;
        return 0;
    }
    int sf = cg__try_sendfile(ws, r, result);
    if (sf != 0)
        return sf < 0 ? -1 : 0;

    PyObject *it = PyObject_GetIter(result); /* new */
    if (it == NULL)
        return -1;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) { /* new */
        if (!PyBytes_Check(item)) {
            PyErr_Format(PyExc_TypeError, "%R is not a byte", item);
            Py_DECREF(item);
            Py_DECREF(it);
            return -1;
        }
        if (r->status == NULL) {
            Py_DECREF(item);
            Py_DECREF(it);
            PyErr_SetString(PyExc_AssertionError, "the application yielded data before calling start_response()");
            return -1;
        }
        int rc = cg_wsgi_write_body(r, PyBytes_AS_STRING(item), (size_t)PyBytes_GET_SIZE(item));
        Py_DECREF(item);
        if (rc < 0) {
            Py_DECREF(it);
            return -1;
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return -1;
    if (r->status == NULL) {
        PyErr_SetString(PyExc_AssertionError, "the application returned without calling start_response()");
        return -1;
    }
    return cg_wsgi_finish(r) < 0 ? -1 : 0;
}

/* Gunicorn's handle_error() for one of its HTTP errors raised while building
 * the environ (ConfigurationProblem). */
static void cg__http_error(cg_wsgi_t *ws, cg_wsgi_req_t *r, const cg_http_error_t *err)
{
    char text[1200];
    cg_http_error_text(err, text, sizeof(text));
    cg_log_warning(ws->log, "Invalid request from ip=%s: %s", r->conn->peer_ip, text);
    char page[4096];
    size_t n = cg_http_error_response(err, page, sizeof(page));
    if (n > 0 && cg__write_io(ws, r->conn, page, n) < 0)
        cg_log_debug(ws->log, "Failed to send error message.");
}

static void cg__internal_error(cg_wsgi_t *ws, cg_wsgi_req_t *r)
{
    char page[512];
    size_t n = cg_http_error_page(500, "Internal Server Error", "", page, sizeof(page));
    if (n > 0 && cg__write_io(ws, r->conn, page, n) < 0)
        cg_log_debug(ws->log, "Failed to send error message.");
}

/*
 * The app (or its iteration) failed with an exception set. Decide as Gunicorn
 * does what the client gets; returns 0 when a complete 500 response was sent,
 * -1 when the connection must just be closed.
 */
static int cg__app_failed(cg_wsgi_t *ws, cg_wsgi_req_t *r)
{
    cg_http_request_t *req = r->http;
    if (ws->hold_gil && !PyErr_ExceptionMatches(PyExc_Exception)) {
        /* GreenletExit or SystemExit in a greenlet: the greenlet's end, not
         * the request's failure (ws->exit_exc) */
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb); /* new (each may be NULL) */
        PyErr_NormalizeException(&t, &v, &tb);
        if (v != NULL && tb != NULL)
            PyException_SetTraceback(v, tb);
        Py_XSETREF(ws->exit_exc, v);
        Py_XDECREF(t);
        Py_XDECREF(tb);
        return -1;
    }
    if (r->io_error != 0) {
        /* The client went away while we wrote: nothing more to say to it. */
        PyErr_Clear();
        if (r->io_error == -ECONNRESET)
            cg_log_debug(ws->log, "Ignoring connection reset");
        else if (r->io_error == -EPIPE)
            cg_log_debug(ws->log, "Ignoring EPIPE");
        else
            cg_log_debug(ws->log, "Ignoring socket error: %s", strerror(-r->io_error));
        return -1;
    }
    if (r->body_error) {
        const cg_http_error_t *be = &r->conn->body.error;
        if (cg_http_error_status(be->code) != 0 && !r->headers_sent) {
            /* A trailer refused by the header rules: Gunicorn raises the same
             * exception as for the head and answers with its status. */
            PyErr_Clear();
            cg__http_error(ws, r, be);
            return -1;
        }
        if (be->code == CG_HTTP_E_NO_MORE_DATA) {
            PyErr_Clear();
            cg_log_debug(ws->log, "Ignored premature client disconnection. ");
        } else {
            cg_py_log_exception(ws->log, CG_LOG_ERROR, "Socket error processing request.");
        }
        return -1;
    }
    if (r->headers_sent) {
        cg_py_log_exception(ws->log, CG_LOG_ERROR, "Error handling request");
        return -1;
    }
    char prefix[512];
    snprintf(prefix, sizeof(prefix), "Error handling request %.*s %.*s", (int)req->method.len,
             req->method.ptr, (int)req->uri.len > 400 ? 400 : (int)req->uri.len, req->uri.ptr);
    cg_py_log_exception(ws->log, CG_LOG_ERROR, prefix);
    cg__internal_error(ws, r);
    return 0;
}

/* The `resp` post_request gets: status, status_code, headers, sent. */
static PyObject *cg__hook_response(cg_wsgi_req_t *r)
{
    PyObject *headers = PyList_New(0), *kw = NULL, *obj = NULL;
    for (size_t i = 0; headers != NULL && i < r->nheaders; i++) {
        PyObject *t = PyTuple_Pack(2, r->headers[i].name, r->headers[i].value);
        if (t == NULL || PyList_Append(headers, t) < 0)
            Py_CLEAR(headers);
        Py_XDECREF(t);
    }
    if (headers == NULL)
        return NULL;
    PyObject *code = r->status_code >= 0 ? PyLong_FromLong(r->status_code) : Py_NewRef(Py_None);
    kw = Py_BuildValue("{s:O,s:N,s:O,s:L,s:O}", "status", r->status ? r->status : Py_None,
                       "status_code", code, "headers", headers, "sent", (long long)r->sent,
                       "headers_sent", r->headers_sent ? Py_True : Py_False);
    if (kw != NULL)
        obj = cg_py_helper_new("Response", kw);
    Py_XDECREF(kw);
    Py_DECREF(headers);
    return obj;
}

static int cg__access_py_objects(void *ctx, void **req, void **resp, void **env_out)
{
    cg__access_py_t *py = ctx;
    PyObject *q = cg_py_request_new(py->r->http, py->r->conn);                 /* new */
    PyObject *s = q != NULL ? cg__hook_response(py->r) : NULL; /* new */
    if (s == NULL) {
        Py_XDECREF(q);
        return -1;
    }
    *req = q;
    *resp = s;
    *env_out = py->env != NULL ? Py_NewRef(py->env) : NULL;
    return 0;
}

int cg_wsgi_handle(cg_wsgi_t *ws, cg_conn_t *c)
{
    int rc = 0;
    cg_wsgi_req_t r;
    memset(&r, 0, sizeof(r));
    r.ws = ws;
    r.conn = c;
    r.http = &c->req;
    r.headers = r.headers_inline;
    r.headers_cap = CG_ARRAY_SIZE(r.headers_inline);
    r.response_length = -1;
    r.status_code = -1;
    r.must_close = ws->force_close || c->must_close;
    c->keep_alive = false;

    if (ws->rt_on)
        cg_wsgi_rt_begin(ws, c);
    if (!ws->hold_gil)
        PyEval_RestoreThread(ws->tstate);
    if (ws->orphans.n > 0)
        cg_wsgi_orphans_release(&ws->orphans);
    PyObject *env = NULL, *result = NULL, *hook_req = NULL;
    cg__access_rec_t acc; /* the access record, written once the GIL is released */
    acc.pending = false;
    acc.stats_pending = false;
    /* only the access log and the metrics read it: no clock read per
     * request without them */
    int64_t start_us = cg_log_access_enabled(ws->log) || ws->log->statsd != NULL ||
                               ws->board != NULL
                           ? (int64_t)cg_monotonic_us()
                           : 0;
    if (ws->hold_gil) /* one of many requests in progress on this thread */
        cg_board_enter(ws->board, (uint64_t)start_us);
    else
        cg_board_busy_begin(ws->board, (uint64_t)start_us);
    if (cg__recycle(&ws->start_response, cg_wsgi_start_response_new) < 0 ||
        cg__recycle(&ws->write, cg_wsgi_write_new) < 0 ||
        cg__recycle_in_base(ws, &ws->input, cg_wsgi_input_new, ws->keys[CG_WK_WSGI_INPUT]) < 0 ||
        cg__recycle_in_base(ws, &ws->early_hints, cg_wsgi_early_hints_new,
                            ws->keys[CG_WK_WSGI_EARLY_HINTS]) < 0 ||
        (c->ops->trailers != NULL &&
         cg__recycle(&ws->send_trailers, cg_wsgi_send_trailers_new) < 0)) {
        cg_py_log_exception(ws->log, CG_LOG_ERROR, "Error handling request (no URI read)");
        rc = -1;
        goto done;
    }
    cg_wsgi_bind(ws->start_response, &r);
    cg_wsgi_bind(ws->write, &r);
    cg_wsgi_bind(ws->early_hints, &r);
    cg_wsgi_bind(ws->send_trailers, &r);
    cg_wsgi_input_reset(ws->input, &r);

    /* Gunicorn's sync worker: pre_request before the environ is built; an
     * exception there fails the request like one raised by the app. */
    if (ws->cfg->pre_request == NULL && cg_log_enabled(ws->log, CG_LOG_DEBUG)) {
        /* what Gunicorn's default pre_request hook does */
        cg_log_debug(ws->log, "%.*s %.*s", (int)c->req.method.len, c->req.method.ptr,
                     (int)c->req.path.len, c->req.path.ptr);
    }
    if (cg_py_request_hooks(ws->cfg)) {
        hook_req = cg_py_request_new(&c->req, c);
        if (hook_req == NULL || cg_py_hook_pre_request(ws->cfg, ws->worker, hook_req) < 0) {
            rc = cg__app_failed(ws, &r);
            cg__access_log(ws, &r, &acc, NULL, CG_STR_LIT("500 Internal Server Error"), start_us);
            goto done;
        }
    }

    cg_http_error_t perr;
    memset(&perr, 0, sizeof(perr));
    env = cg_wsgi_environ_new(ws, &r, &perr);
    if (env == NULL) {
        if (perr.code != CG_HTTP_E_NONE) {
            PyErr_Clear();
            cg__http_error(ws, &r, &perr);
            cg__access_log(ws, &r, &acc, NULL, CG_STR_LIT("500 Bad Request"), start_us);
        } else {
            rc = cg__app_failed(ws, &r);
            cg__access_log(ws, &r, &acc, NULL, CG_STR_LIT("500 Internal Server Error"), start_us);
        }
        goto done;
    }

    if (c->req.expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (cg__write_io(ws, c, cont, sizeof(cont) - 1) < 0) {
            rc = -1;
            goto done;
        }
    }

    PyObject *args[2] = {env, ws->start_response};
    cg__app_enter(ws);
    result = PyObject_Vectorcall(ws->app, args, 2, NULL); /* new */
    int wrc = result == NULL ? -1 : cg__write_result(ws, &r, result);
    cg__app_leave(ws);
    if (wrc < 0) {
        if (!PyErr_Occurred() && r.io_error == 0)
            PyErr_SetString(PyExc_RuntimeError, "response could not be written");
        bool before = !r.headers_sent;
        rc = cg__app_failed(ws, &r);
        if (rc == 0 && before)
            cg__access_log(ws, &r, &acc, env, CG_STR_LIT("500 Internal Server Error"), start_us);
        else {
            cg_str_t st = {"-", 1};
            if (r.status != NULL) {
                Py_ssize_t n;
                const char *u = PyUnicode_AsUTF8AndSize(r.status, &n);
                if (u != NULL)
                    st = (cg_str_t){u, (size_t)n};
            }
            cg__access_log(ws, &r, &acc, env, st, start_us);
            rc = -1;
        }
    } else {
        Py_ssize_t n;
        const char *u = PyUnicode_AsUTF8AndSize(r.status, &n);
        cg__access_log(ws, &r, &acc, env, (cg_str_t){u ? u : "-", u ? (size_t)n : 1}, start_us);
    }

    /* PEP 3333: close() is called whatever happened. */
    if (result != NULL && !PyList_CheckExact(result) && !PyTuple_CheckExact(result) &&
        PyObject_HasAttr(result, ws->keys[CG_WK_A_CLOSE])) {
        cg__access_flush_nogil(ws, &acc); /* Gunicorn logs before close() */
        cg__app_enter(ws);
        PyObject *cr = PyObject_CallMethodNoArgs(result, ws->keys[CG_WK_A_CLOSE]);
        cg__app_leave(ws);
        if (cr == NULL)
            cg_py_log_exception(ws->log, CG_LOG_ERROR, "Error handling request");
        Py_XDECREF(cr);
    }

done:
    while (r.io_busy > 0) {
        /* a thread of the app's is still reading or writing this request
         * (bounded by the connection's I/O timeout): its buffers and socket
         * stay until it is back */
        if (ws->hold_gil) {
            /* that is another greenlet: let it run */
            PyObject *sr = PyObject_CallFunction(ws->coop_sleep, "d", 0.001); /* new */
            if (sr == NULL)
                PyErr_Clear();
            Py_XDECREF(sr);
            continue;
        }
        Py_BEGIN_ALLOW_THREADS
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
        Py_END_ALLOW_THREADS
    }
    if (c->app_sock != NULL && (rc != 0 || !c->keep_alive)) {
        /* this response ends the connection */
        cg__sock_release(c->app_sock);
        c->app_sock = NULL;
    }
    if (hook_req != NULL) {
        cg__access_flush_nogil(ws, &acc);
        /* post_request: in Gunicorn's `finally`, once the response is done;
         * environ is {} and resp None when they were never made. */
        PyErr_Clear();
        PyObject *resp = env != NULL ? cg__hook_response(&r) : NULL;
        PyObject *e = env != NULL ? Py_NewRef(env) : PyDict_New();
        if (e != NULL && (env == NULL || resp != NULL))
            cg_py_hook_post_request(ws->cfg, ws->worker, hook_req, e, resp);
        else
            cg_py_log_exception(ws->log, CG_LOG_ERROR, "Exception in post_request hook");
        Py_XDECREF(resp);
        Py_XDECREF(e);
        Py_DECREF(hook_req);
    }
    Py_XDECREF(result);
    Py_XDECREF(env);
    cg_wsgi_bind(ws->start_response, NULL);
    cg_wsgi_bind(ws->write, NULL);
    cg_wsgi_bind(ws->early_hints, NULL);
    cg_wsgi_bind(ws->send_trailers, NULL);
    Py_CLEAR(r.trailers);
    cg_wsgi_input_reset(ws->input, NULL);
    cg_wsgi_req_clear(&r);
    if (ws->rt_on)
        cg_wsgi_rt_end(ws);
    if (PyErr_Occurred())
        PyErr_Clear();
    if (!ws->hold_gil)
        ws->tstate = PyEval_SaveThread();
    cg__access_flush(ws, &acc);
    if (r.corked > 0) {
        int wr = cg_conn_write_all(c, ws->out, r.corked);
        if (wr < 0) {
            /* as Gunicorn, which has logged the access line already */
            cg_log_debug(ws->log, "Ignoring socket error: %s", strerror(-wr));
            rc = -1;
        }
    }
    if (rc == 0 && (r.io_error != 0 || r.body_error))
        rc = -1;
    if (ws->board != NULL && ws->hold_gil)
        cg_board_leave(ws->board, cg_monotonic_us());
    else if (ws->board != NULL)
        cg_board_busy_end(ws->board, cg_monotonic_us());
    return rc;
}
