/*
 * wsgi.h - PEP 3333 on top of the C HTTP layer: environ, wsgi.input,
 * start_response/write, wsgi.file_wrapper, wsgi.errors, and the response writer.
 *
 * Threading contract: cg_wsgi_handle() is entered WITHOUT the GIL; it takes the
 * GIL only while Python runs (environ building, the app, iteration) and gives it
 * up around every socket read/write. Everything else is called with the GIL held.
 * A cooperative context (hold_gil, the gevent worker) is the exception: it is
 * entered and left with the GIL held, and keeps it across socket I/O.
 */
#ifndef CG_WSGI_H
#define CG_WSGI_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../cg.h"
#include "../log/log.h"
#include "../workers/conn.h"
#include "../workers/worker.h"

/* Interned environ keys and values, created once per worker. */
#define CG_WSGI_KEYS(X)                                                                         \
    X(WSGI_VERSION, "wsgi.version")                                                             \
    X(WSGI_URL_SCHEME, "wsgi.url_scheme")                                                       \
    X(WSGI_INPUT, "wsgi.input")                                                                 \
    X(WSGI_ERRORS, "wsgi.errors")                                                               \
    X(WSGI_MULTITHREAD, "wsgi.multithread")                                                     \
    X(WSGI_MULTIPROCESS, "wsgi.multiprocess")                                                   \
    X(WSGI_RUN_ONCE, "wsgi.run_once")                                                           \
    X(WSGI_FILE_WRAPPER, "wsgi.file_wrapper")                                                   \
    X(WSGI_INPUT_TERMINATED, "wsgi.input_terminated")                                           \
    X(WSGI_EARLY_HINTS, "wsgi.early_hints")                                                     \
    X(SEND_TRAILERS, "gunicorn.http2.send_trailers")                                            \
    X(SERVER_SOFTWARE, "SERVER_SOFTWARE")                                                       \
    X(GUNICORN_SOCKET, "gunicorn.socket")                                                       \
    X(REQUEST_METHOD, "REQUEST_METHOD")                                                         \
    X(QUERY_STRING, "QUERY_STRING")                                                             \
    X(RAW_URI, "RAW_URI")                                                                       \
    X(SERVER_PROTOCOL, "SERVER_PROTOCOL")                                                       \
    X(CONTENT_TYPE, "CONTENT_TYPE")                                                             \
    X(CONTENT_LENGTH, "CONTENT_LENGTH")                                                         \
    X(REMOTE_ADDR, "REMOTE_ADDR")                                                               \
    X(REMOTE_PORT, "REMOTE_PORT")                                                               \
    X(SERVER_NAME, "SERVER_NAME")                                                               \
    X(SERVER_PORT, "SERVER_PORT")                                                               \
    X(PATH_INFO, "PATH_INFO")                                                                   \
    X(SCRIPT_NAME, "SCRIPT_NAME")                                                               \
    X(HTTP_HOST, "HTTP_HOST")                                                                   \
    X(HTTP_USER_AGENT, "HTTP_USER_AGENT")                                                       \
    X(HTTP_ACCEPT, "HTTP_ACCEPT")                                                               \
    X(HTTP_ACCEPT_ENCODING, "HTTP_ACCEPT_ENCODING")                                             \
    X(HTTP_ACCEPT_LANGUAGE, "HTTP_ACCEPT_LANGUAGE")                                             \
    X(HTTP_CONNECTION, "HTTP_CONNECTION")                                                       \
    X(HTTP_COOKIE, "HTTP_COOKIE")                                                               \
    X(HTTP_REFERER, "HTTP_REFERER")                                                             \
    X(HTTP_VERSION, "HTTP_VERSION")                                                             \
    X(PROXY_PROTOCOL, "PROXY_PROTOCOL")                                                         \
    X(PROXY_ADDR, "PROXY_ADDR")                                                                 \
    X(PROXY_PORT, "PROXY_PORT")                                                                 \
    X(V_HTTP, "http")                                                                           \
    X(V_HTTPS, "https")                                                                         \
    X(V_HTTP10, "HTTP/1.0")                                                                     \
    X(V_HTTP11, "HTTP/1.1")                                                                     \
    X(V_GET, "GET")                                                                             \
    X(V_POST, "POST")                                                                           \
    X(V_HEAD, "HEAD")                                                                           \
    X(V_EMPTY, "")                                                                              \
    X(A_CLOSE, "close")                                                                         \
    X(A_FILENO, "fileno")

enum {
#define CG__WK_ENUM(id, s) CG_WK_##id,
    CG_WSGI_KEYS(CG__WK_ENUM)
#undef CG__WK_ENUM
        CG_WK__COUNT
};

/* One response header kept from start_response (references owned). */
typedef struct cg_wsgi_header {
    PyObject *name;  /* str, validated token */
    PyObject *value; /* str, validated */
    /* Their latin-1 bytes, found while validating (views into the objects
     * above, which hold them); the value without surrounding SP/HTAB. */
    cg_str_t n, v;
} cg_wsgi_header_t;

typedef struct cg_wsgi cg_wsgi_t;

/* The state of one request while the app runs. Lives on cg_wsgi_handle's stack;
 * Python objects point to it only while it is current. */
typedef struct cg_wsgi_req {
    cg_wsgi_t *ws;
    cg_conn_t *conn;
    cg_http_request_t *http;

    PyObject *status; /* str from start_response (owned) */
    int status_code;  /* -1 when the status does not start with an int */
    cg_wsgi_header_t *headers;
    size_t nheaders, headers_cap;
    cg_wsgi_header_t headers_inline[16];
    int64_t response_length; /* Content-Length given by the app, -1 none */
    bool chunked;
    bool omits_body;
    bool omits_warned;
    bool upgrade;
    bool headers_sent;
    int io_error;    /* -errno of the first failed socket write; 0 none */
    bool body_error; /* wsgi.input met a framing error (connection must close) */
    bool must_close; /* sync worker: every response is Connection: close */
    int64_t sent;    /* body bytes written */
    /* A response made of one bytes object is not written under the GIL but
     * collected in ws->out and sent by cg_wsgi_handle() once it has let the
     * GIL go: one GIL hand-over per request instead of two. */
    bool cork;
    size_t corked; /* bytes waiting in ws->out */
    /* Calls of wsgi.input / write() doing socket I/O without the GIL right
     * now (GIL-protected). An app thread of its own may use them too: a
     * second one at the same time is refused, and the request does not end
     * (and its buffers go) before they are back. */
    int io_busy;
    /* (name, value) pairs given to gunicorn.http2.send_trailers (HTTP/2
     * only), sent once the body is: a list, owned; NULL none. */
    PyObject *trailers;
} cg_wsgi_req_t;

/* Claim the request's socket for I/O without the GIL (GIL held). 0, or -1
 * with RuntimeError set when another thread is in the middle of some. */
int cg_wsgi_io_claim(cg_wsgi_req_t *r);
static inline void cg_wsgi_io_release(cg_wsgi_req_t *r)
{
    r->io_busy--;
}

/*
 * gunicorn.socket objects (conn->app_sock) of connections closed where the GIL
 * is not held, waiting for a thread that takes it. Plain pointers: adding and
 * moving need no GIL; the owner of the list (or its lock) serialises them.
 */
typedef struct cg_wsgi_orphans {
    void **v;
    size_t n, cap;
} cg_wsgi_orphans_t;

struct cg_wsgi {
    cg_worker_t *worker;
    /* The thread this context serves on (cg_wsgi_init runs there): whether
     * it is the one signals interrupt, its id for an asynchronous
     * SystemExit, and whether the app runs on it right now (set and read
     * with the GIL held). */
    bool on_main;
    unsigned long thread_id;
    int in_app;
    cg_log_t *log;
    const cg_config_t *cfg;
    PyThreadState *tstate; /* saved while the GIL is released */
    int gil_state;         /* PyGILState_STATE of a pool thread's context */
    PyObject *app;
    PyObject *keys[CG_WK__COUNT];
    PyObject *base_environ;
    PyObject *socket_cls;      /* socket.socket */
    PyObject *tls_socket_cls;  /* cgunicorn._tls.PeerSocket, imported at the first TLS request */
    PyObject *script_name_env; /* os.environ['SCRIPT_NAME'] at boot, or "" */
    bool sendfile;
    bool multithread;
    bool force_close; /* sync worker: Connection: close on every response */
    bool uwsgi;       /* --protocol uwsgi: no chunked framing (see response.c) */
    cg_board_thread_t *board; /* this thread's scoreboard counters, or NULL */
    /* Reusable per-request objects: recycled when nothing else holds them. */
    PyObject *start_response;
    PyObject *write;
    PyObject *input;
    PyObject *early_hints;
    PyObject *send_trailers; /* gunicorn.http2.send_trailers */
    /* Per-request strings that rarely change, kept between requests: the
     * listener's SERVER_NAME/SERVER_PORT and the last REMOTE_ADDR (behind a
     * proxy or a load generator it is the same address every time). */
    const void *srv_listener;
    PyObject *srv_name, *srv_port;
    const void *srv_in_base; /* the listener whose names the base environ holds */
    char peer_ip[64];
    PyObject *peer_ip_obj;
    cg_wsgi_orphans_t orphans; /* released by the next request on this context */
    /* Cooperative (-k gevent): requests run on greenlets, and the
     * connection's transport waits by switching to gevent's hub, which
     * needs the GIL: cg_wsgi_handle() is entered and left with it, and it
     * stays held across socket I/O (CG_WSGI_IO_BEGIN). */
    bool hold_gil;
    /* hold_gil only: gevent.sleep (owned), to let other greenlets run while
     * one of the app's is still doing I/O on a finished request. */
    PyObject *coop_sleep;
    /* hold_gil only: a BaseException that is not an Exception (GreenletExit
     * from a pool's kill, SystemExit from a signal handler) that ended the
     * app. Not the request's failure (no 500, no traceback, as Gunicorn's
     * gevent worker passes on both): the caller re-raises it in its
     * greenlet. Owned; NULL: none. */
    PyObject *exit_exc;
    /* request_timeout (timeout.c): the request in the app as its watchdog
     * sees it; rt_on once the context is watched */
    bool rt_on;
    struct {
        pthread_mutex_t lock; /* since_us (written), conn, state, fired */
        uint64_t since_us;    /* CLOCK_MONOTONIC us the request began; 0: none */
        cg_conn_t *conn;
        int state;            /* who may write the head (timeout.c) */
        uint64_t fired;       /* since_us of the request the watchdog timed out */
        bool replace_asked;
        int raise;            /* main thread: its signal handler raises TimeoutError */
    } rt;
    char problem[1024]; /* ConfigurationProblem text of the current request */
    char out[8192];     /* a corked response (cg_wsgi_req_t.cork) */
    cg_http_date_cache_t date;
};

/* Around socket I/O in src/wsgi: the GIL is released, unless the context is
 * cooperative (ws->hold_gil), whose transport waits on gevent's hub. */
#define CG_WSGI_IO_BEGIN(ws)                                                                       \
    {                                                                                              \
        PyThreadState *cg__io_ts = (ws)->hold_gil ? NULL : PyEval_SaveThread();
#define CG_WSGI_IO_END()                                                                           \
    if (cg__io_ts != NULL)                                                                         \
        PyEval_RestoreThread(cg__io_ts);                                                           \
    }

/*
 * Create the per-worker WSGI state: intern keys, build the base environ, ready
 * the types. `app` is a new reference that the state takes over. GIL held.
 * Returns 0 or -1 with a Python exception set.
 */
int cg_wsgi_init(cg_wsgi_t *ws, cg_worker_t *w, PyObject *app);
void cg_wsgi_free(cg_wsgi_t *ws);

/*
 * For the gthread worker, right after cg_wsgi_init: wsgi.multithread is True
 * and responses may keep the connection alive (each request's
 * conn->must_close decides). GIL held. Returns 0 or -1 with an exception set.
 */
int cg_wsgi_set_threaded(cg_wsgi_t *ws);

/*
 * For the gevent worker, right after cg_wsgi_init: as cg_wsgi_set_threaded
 * (Gunicorn's gevent worker says wsgi.multithread True), and cooperative
 * (hold_gil). `sleep` is gevent.sleep (borrowed; the context keeps a
 * reference). GIL held. Returns 0 or -1 with an exception set.
 */
int cg_wsgi_set_cooperative(cg_wsgi_t *ws, PyObject *sleep);

/* ---- threads.c: for worker loops, called without the GIL ---- */

/* On a new thread: a context like `proto`'s (same app), in its own Python
 * thread state, marked multithreaded. 0, or -1 (logged); either way
 * cg_wsgi_thread_free() on that thread releases it. */
int cg_wsgi_thread_init(cg_wsgi_t *ws, const cg_wsgi_t *proto);
void cg_wsgi_thread_free(cg_wsgi_t *ws);
/* The calling thread's own context (the loop's) goes multithreaded: 0 or -1
 * (logged). */
int cg_wsgi_make_threaded(cg_wsgi_t *ws);
/* Let go of the gunicorn.socket objects of connections closed meanwhile
 * (ws->orphans), taking the GIL for it. */
void cg_wsgi_release_orphans(cg_wsgi_t *ws);
/* SystemExit, raised asynchronously, in every target whose thread is inside
 * the app right now (QUIT/INT reach the loop thread only). `by` is the
 * caller's own context. */
void cg_wsgi_interrupt(cg_wsgi_t *by, cg_wsgi_t *const *targets, size_t n);

/* ---- timeout.c: request_timeout (sync, gthread) ---- */

typedef struct cg_wsgi_rt cg_wsgi_rt_t;
/* Start w's watchdog (w->cfg->request_timeout > 0), on the main thread with
 * the GIL (it installs the main thread's signal handler). NULL: it could
 * not start (logged). Free without the GIL, after the loop. */
cg_wsgi_rt_t *cg_wsgi_rt_new(cg_worker_t *w);
void cg_wsgi_rt_free(cg_wsgi_rt_t *rt);
/* Watch ws's requests / stop watching (before ws is freed). Without the
 * GIL (the watchdog holds the list while it waits for it). rt may be NULL. */
void cg_wsgi_rt_add(cg_wsgi_rt_t *rt, cg_wsgi_t *ws);
void cg_wsgi_rt_remove(cg_wsgi_rt_t *rt, cg_wsgi_t *ws);
/* cg_wsgi_handle's side (ws->rt_on): a request begins (any GIL state) /
 * ends (GIL held); the head is about to go out: 0, or -ETIMEDOUT when the
 * watchdog has answered (or given up on) this request already. */
void cg_wsgi_rt_begin(cg_wsgi_t *ws, cg_conn_t *c);
void cg_wsgi_rt_end(cg_wsgi_t *ws);
int cg_wsgi_rt_claim_head(cg_wsgi_t *ws);
/* The watch's side, for any worker kind: take the response of ws's request
 * begun at `since` away from the app, sending the 504 page on c->fd when
 * raw(c) says nothing else can be in the way. 1 answered, 0 not (the head
 * went out already, or no raw write), -1 that request is over. `what`
 * gets "METHOD /path". No GIL needed. */
int cg_wsgi_rt_expire(cg_wsgi_t *ws, uint64_t since, bool (*raw)(const cg_conn_t *c),
                      char *what, size_t whatlen);
/* Log the timed-out request with the stack from `frame` (borrowed, may be
 * NULL). GIL held. */
void cg_wsgi_rt_log(cg_log_t *log, long timeout_s, const char *what, bool answered,
                    PyObject *frame);

/*
 * Serve one parsed request (conn->req) on conn: environ, app, response, access
 * log. Entered and left WITHOUT the GIL. Returns 0 when a complete response was
 * written; a negative value when the connection must be closed at once (the
 * response is incomplete or the client is gone).
 */
int cg_wsgi_handle(cg_wsgi_t *ws, cg_conn_t *conn);

/* Queue a closed connection's conn->app_sock (may be NULL: nothing to do) and
 * clear it. No GIL needed. */
void cg_wsgi_orphans_add(cg_wsgi_orphans_t *q, cg_conn_t *conn);
/* Move everything from src to dst. No GIL needed. */
void cg_wsgi_orphans_move(cg_wsgi_orphans_t *dst, cg_wsgi_orphans_t *src);
/* Detach and drop every queued object, and free the list. GIL held. */
void cg_wsgi_orphans_release(cg_wsgi_orphans_t *q);

/* ---- internal to src/wsgi ---- */
PyObject *cg_wsgi_environ_new(cg_wsgi_t *ws, cg_wsgi_req_t *r, cg_http_error_t *err);
int cg_wsgi_types_ready(void);
PyObject *cg_wsgi_start_response_new(void);
PyObject *cg_wsgi_write_new(void);
PyObject *cg_wsgi_input_new(void);
PyObject *cg_wsgi_early_hints_new(void);
PyObject *cg_wsgi_send_trailers_new(void);
PyObject *cg_wsgi_errors_new(cg_log_t *log);
void cg_wsgi_bind(PyObject *obj, cg_wsgi_req_t *r); /* any of the four above; NULL unbinds */
extern PyTypeObject cg_wsgi_file_wrapper_type;
int cg_wsgi_response_types_ready(void);
int cg_wsgi_input_type_ready(void);
int cg_wsgi_errors_type_ready(void);
void cg_wsgi_input_reset(PyObject *input, cg_wsgi_req_t *r);
int cg_wsgi_write_body(cg_wsgi_req_t *r, const char *data, size_t len);
int cg_wsgi_send_headers(cg_wsgi_req_t *r, const char *body, size_t body_len);
int cg_wsgi_finish(cg_wsgi_req_t *r);
void cg_wsgi_req_clear(cg_wsgi_req_t *r);
const char *cg_wsgi_http_date(cg_wsgi_t *ws);

#endif
