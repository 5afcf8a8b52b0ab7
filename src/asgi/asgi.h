/*
 * asgi.h - ASGI 3.0 (the http, websocket and lifespan scopes) on a real asyncio event
 * loop, in C: an asyncio.Protocol written as a C type, which feeds the C
 * HTTP/1.1 parser and hands each request to the app as a task with C
 * receive/send callables.
 *
 * Threading: everything here runs on the worker's main thread with the GIL
 * held (an ASGI worker is an asyncio process: the loop runs Python). No
 * function here releases it.
 *
 * Reference cycles (protocol <-> its current request, protocol <-> its
 * transport and timer callback, request <-> its task) are broken by hand
 * when a request or a connection ends; the types are not tracked by the GC.
 */
#ifndef CG_ASGI_H
#define CG_ASGI_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../cg.h"
#include "../h2/h2.h"
#include "../log/log.h"
#include "../workers/conn.h"
#include "../workers/worker.h"

/* Strings made once per worker (interned): message and scope keys, values,
 * and the method names called on asyncio objects. */
#define CG_ASGI_STRS(X)                                                                          \
    X(TYPE, "type")                                                                              \
    X(BODY, "body")                                                                              \
    X(MORE_BODY, "more_body")                                                                    \
    X(STATUS, "status")                                                                          \
    X(HEADERS, "headers")                                                                        \
    X(MESSAGE, "message")                                                                        \
    X(HTTP_REQUEST, "http.request")                                                              \
    X(HTTP_DISCONNECT, "http.disconnect")                                                        \
    X(RESPONSE_START, "http.response.start")                                                     \
    X(RESPONSE_BODY, "http.response.body")                                                       \
    X(RESPONSE_INFO, "http.response.informational")                                              \
    X(RESPONSE_TRAILERS, "http.response.trailers")                                               \
    X(TRAILERS, "trailers")                                                                      \
    X(MORE_TRAILERS, "more_trailers")                                                            \
    X(ASGI, "asgi")                                                                              \
    X(HTTP_VERSION, "http_version")                                                              \
    X(METHOD, "method")                                                                          \
    X(SCHEME, "scheme")                                                                          \
    X(PATH, "path")                                                                              \
    X(RAW_PATH, "raw_path")                                                                      \
    X(QUERY_STRING, "query_string")                                                              \
    X(ROOT_PATH, "root_path")                                                                    \
    X(CLIENT, "client")                                                                          \
    X(SERVER, "server")                                                                          \
    X(STATE, "state")                                                                            \
    X(V_HTTP, "http")                                                                            \
    X(V_HTTPS, "https")                                                                          \
    X(V_11, "1.1")                                                                               \
    X(V_10, "1.0")                                                                               \
    X(V_2, "2")                                                                                  \
    X(V_GET, "GET")                                                                              \
    X(V_POST, "POST")                                                                            \
    X(V_HEAD, "HEAD")                                                                            \
    X(LIFESPAN, "lifespan")                                                                      \
    X(LS_STARTUP, "lifespan.startup")                                                            \
    X(LS_SHUTDOWN, "lifespan.shutdown")                                                          \
    X(LS_STARTUP_COMPLETE, "lifespan.startup.complete")                                          \
    X(LS_STARTUP_FAILED, "lifespan.startup.failed")                                              \
    X(LS_SHUTDOWN_COMPLETE, "lifespan.shutdown.complete")                                        \
    X(LS_SHUTDOWN_FAILED, "lifespan.shutdown.failed")                                            \
    X(A_BLOCKING, "_asyncio_future_blocking")                                                    \
    X(A_CREATE_FUTURE, "create_future")                                                          \
    X(A_SET_RESULT, "set_result")                                                                \
    X(A_DONE, "done")                                                                            \
    X(A_WRITE, "write")                                                                          \
    X(A_CLOSE, "close")                                                                          \
    X(A_PAUSE_READING, "pause_reading")                                                          \
    X(A_RESUME_READING, "resume_reading")                                                        \
    X(A_CALL_LATER, "call_later")                                                                \
    X(A_CREATE_TASK, "create_task")                                                              \
    X(A_GET_TASK_FACTORY, "get_task_factory")                                                    \
    X(A_ADD_DONE_CALLBACK, "add_done_callback")                                                  \
    X(A_EXCEPTION, "exception")                                                                  \
    X(A_CANCELLED, "cancelled")                                                                  \
    X(A_CANCEL, "cancel")                                                                        \
    X(A_GET_EXTRA_INFO, "get_extra_info")                                                        \
    X(A_RUN_UNTIL_COMPLETE, "run_until_complete")                                              \
    X(V_WEBSOCKET, "websocket")                                                                  \
    X(V_WS, "ws")                                                                                \
    X(V_WSS, "wss")                                                                              \
    X(SUBPROTOCOLS, "subprotocols")                                                              \
    X(SUBPROTOCOL, "subprotocol")                                                                \
    X(EXTENSIONS, "extensions")                                                                  \
    X(WS_HTTP_RESPONSE, "websocket.http.response")                                               \
    X(WS_CONNECT, "websocket.connect")                                                           \
    X(WS_RECEIVE, "websocket.receive")                                                           \
    X(WS_DISCONNECT, "websocket.disconnect")                                                     \
    X(WS_ACCEPT, "websocket.accept")                                                             \
    X(WS_SEND, "websocket.send")                                                                 \
    X(WS_CLOSE, "websocket.close")                                                               \
    X(WS_RESPONSE_START, "websocket.http.response.start")                                        \
    X(WS_RESPONSE_BODY, "websocket.http.response.body")                                          \
    X(TEXT, "text")                                                                              \
    X(BYTES, "bytes")                                                                            \
    X(CODE, "code")                                                                              \
    X(REASON, "reason")

enum {
#define CG__AS_ENUM(id, s) CG_AS_##id,
    CG_ASGI_STRS(CG__AS_ENUM)
#undef CG__AS_ENUM
        CG_AS__COUNT
};

typedef struct cg_asgi_proto cg_asgi_proto_t;
typedef struct cg_asgi_cycle cg_asgi_cycle_t;

/* The app's response fields the access log and the hooks see, at most. */
#define CG_ASGI_RESP_VIEWS 32

/* Connection buffers kept for reuse by the next connections. */
#define CG_ASGI_SPARE 16

/* The per-worker ASGI state. */
typedef struct cg_asgi {
    cg_worker_t *w;
    cg_log_t *log;
    const cg_config_t *cfg;
    cg_conn_policy_t pol;
    bool pol_up;
    cg_board_thread_t *board; /* the loop's scoreboard counters (metrics_bind), or NULL */
    PyObject *ssl;            /* the listeners' ssl.SSLContext (owned); NULL: no TLS */
    PyObject *app;  /* owned */
    PyObject *loop; /* owned: the event loop everything runs on */
    PyObject *s[CG_AS__COUNT];
    PyObject *asgi_version; /* {"version": "3.0", "spec_version": "2.4"} */
    PyObject *root_path;    /* str */
    PyObject *state;        /* the lifespan's state dict, copied into each scope; NULL: none */
    PyObject *lifespan;     /* the lifespan's state object (lifespan.c); NULL: none */
    PyObject *done;         /* an awaitable that is finished at once (send's usual answer) */
    PyObject *cancelled_error; /* asyncio.CancelledError */
    PyObject *iscoroutine;     /* asyncio.iscoroutine */
    PyObject *task_type;       /* asyncio.Task */
    PyObject *kw_task;         /* ("loop", "name", "context"): kwnames for task_type(coro, ...) */
    uint64_t ntasks;           /* request tasks made: their names, "Request-N" */
    PyObject *kw_context;      /* ("context",) */
    PyObject *context;         /* the worker's own context, copied for each request's task */
    cg_asgi_proto_t *conns; /* open connections (borrowed; each removes itself) */
    size_t nconns;
    /* called after nconns moved: the worker's acceptor publishes its load
     * (src/workers/asgi_accept.c); NULL: none */
    void (*on_conns)(void *arg);
    void *on_conns_arg;
    bool stopping;          /* TERM: no new requests on kept-alive connections */
    PyObject *drained;      /* future the stop waits on until nconns is 0; NULL none */
    PyObject *stop;         /* future the serving phase waits on; NULL none */
    uint64_t keepalive_ms, head_ms;
    int grace_s; /* asgi_disconnect_grace_period */
    struct cg_asgi_rt *rt; /* request_timeout's watch (timeout.c); NULL: off */
    /* What a new connection would otherwise make again (protocol.c, http.c):
     * buffers closed connections left, the scope["server"] tuple of the
     * last local address, and the http scope's keys with the values every
     * connection shares (None where a connection or request puts its own). */
    struct cg_asgi_spare {
        char *data;
        size_t cap;
        cg_http_header_t *headers;
        size_t headers_cap;
    } spare[CG_ASGI_SPARE];
    size_t nspare;
    bool spare_open;
    PyObject *server; /* owned, or NULL */
    struct sockaddr_storage server_addr;
    socklen_t server_len;
    PyObject *scope_base; /* owned, or NULL until the first request */
    cg_http_date_cache_t date;
    /* HTTP/2 (h2.c): ALPN may choose it (TLS); h2c with prior knowledge,
     * by the HTTP/1.1 Upgrade, or both (http2_cleartext) */
    bool h2_tls, h2c, h2c_upgrade;
    cg_h2_config_t h2cfg;
} cg_asgi_t;

/* ---- context.c ---- */

/*
 * Fill `a` for worker w: intern strings, read the settings, make the
 * connection policy. `app` and `loop` are new references `a` takes over
 * (also on failure). Returns 0, or -1 with a Python exception set (or
 * logged, for a policy that does not parse); cg_asgi_free either way.
 */
int cg_asgi_init(cg_asgi_t *a, cg_worker_t *w, PyObject *app, PyObject *loop);
/* Release a's references. `a` must stay readable after it (objects freed at
 * the interpreter's end still point to it): its board is left NULL. */
void cg_asgi_free(cg_asgi_t *a);

/*
 * Whether `app` is an ASGI 3 application: a coroutine function, or an
 * object whose __call__ is one (Uvicorn's test). Without `thorough` only
 * `async def` code is recognised (no import: the WSGI workers' check);
 * with it inspect.iscoroutinefunction decides what that does not catch.
 * 1 yes, 0 no, -1 with an exception set.
 */
int cg_asgi_is_app(PyObject *app, bool thorough);

/* An awaitable finished at once (None): what send() usually answers.
 * New reference or NULL. */
PyObject *cg_asgi_done_awaitable(cg_asgi_t *a);

/* A heap type made from `spec` once (kept in *slot for the process).
 * Borrowed reference, or NULL with an exception set. */
PyTypeObject *cg_asgi_type(PyTypeObject **slot, PyType_Spec *spec);

/* A new future on a's loop, or NULL with an exception set. */
PyObject *cg_asgi_future(cg_asgi_t *a);
/* fut.set_result(value) unless fut is done already; errors are cleared
 * (a future cancelled meanwhile is not an error here). */
void cg_asgi_resolve(cg_asgi_t *a, PyObject *fut, PyObject *value);

/* Log the exception `exc` (borrowed) with its traceback at `level`, after
 * `prefix`, as the worker logs Python exceptions. */
void cg_asgi_log_exc(cg_asgi_t *a, cg_log_level_t level, const char *prefix, PyObject *exc);

/*
 * An awaitable whose result is ready when poll(owner) says so: poll
 * returns 1 with *out a new reference to the result, 0 with *out a new
 * reference to a future to wait on first (it is polled again once that
 * future is done), or -1 with an exception set. The awaitable holds a
 * reference to owner. New reference or NULL.
 */
typedef int (*cg_asgi_poll_fn)(PyObject *owner, PyObject **out);
PyObject *cg_asgi_awaitable_new(cg_asgi_t *a, cg_asgi_poll_fn poll, PyObject *owner);
int cg_asgi_types_ready(void);

/* msg[key] as a new reference in *out: 1, 0 when msg has no such key
 * (nothing raised: a dict is looked up without making a KeyError), -1 with
 * an exception set. */
int cg_asgi_get(PyObject *msg, PyObject *key, PyObject **out);

/* The pending exception as an object, cleared (new reference; NULL when
 * none is set). */
PyObject *cg_asgi_take_exc(void);

/*
 * The app's coroutine `coro` wrapped for loop.create_task(): the task steps
 * the wrapper, which steps coro, and when coro ends calls done(owner, exc,
 * cancelled) right there, inside the task's step: exc is the exception it
 * raised (borrowed; NULL when it returned or was cancelled). An Exception
 * is the owner's to report, so the task ends quietly with None; a
 * cancellation (and KeyboardInterrupt, SystemExit) goes on to the task.
 * This saves a done callback per request (one more trip round the loop).
 * done must return with no exception set. Holds references to coro and
 * owner until coro ends. New reference, or NULL with an exception set (also
 * when coro is not a coroutine, as create_task would refuse it).
 */
typedef void (*cg_asgi_done_fn)(PyObject *owner, PyObject *exc, bool cancelled);
PyObject *cg_asgi_runner_new(cg_asgi_t *a, PyObject *coro, PyObject *owner, cg_asgi_done_fn done);

/* loop.create_task(coro, context=<a fresh copy of the worker's context>):
 * each request starts from the same context, whatever the task that
 * dispatched it (a pipelined request is read inside the previous one's
 * send()) had set. A new task, or NULL with an exception set. */
PyObject *cg_asgi_create_task(cg_asgi_t *a, PyObject *coro);

/* A C function as a Python callable with `self` (borrowed; the callable
 * holds a reference). New reference or NULL. */
PyObject *cg_asgi_bind(PyMethodDef *def, PyObject *self);

/* ---- timeout.c ---- */

/* request_timeout (cfg->request_timeout > 0): a call_later chain on a's
 * loop that answers requests past the timeout 504, logs their task's stack
 * and cancels it; a task still running as long again makes the worker ask
 * for a successor. 0, or -1 with an exception set. cg_asgi_rt_free drops
 * the cycles it still watches (GIL held). */
int cg_asgi_rt_start(cg_asgi_t *a);
void cg_asgi_rt_free(cg_asgi_t *a);

/* ---- protocol.c ---- */

/*
 * The protocol of a connection accepted on listener l (fd, from the peer
 * accept() gave): for loop.connect_accepted_socket() (src/workers/
 * asgi_accept.c). The object is its own protocol factory: calling it
 * returns it, so the loop gets this connection's protocol, made with
 * what accept() already told, and nothing asks the kernel again. The fd
 * is borrowed (the transport will own it). New reference, or NULL with an
 * exception set.
 */
PyObject *cg_asgi_proto_new(cg_asgi_t *a, const cg_listener_t *l, int fd,
                            const struct sockaddr *peer, socklen_t peerlen);

/* Close the connections whose deadline passed (the heartbeat tick calls it,
 * at most a second apart). */
void cg_asgi_sweep(cg_asgi_t *a);
/* Free the connection buffers kept for reuse; later ones are not kept. */
void cg_asgi_spares_free(cg_asgi_t *a);

/* TERM: close the connections that wait between requests (the ones busy
 * with one close once it is answered; a new one still gets its first
 * request served), and open WebSockets with 1001. */
void cg_asgi_close_idle(cg_asgi_t *a);

/* ---- lifespan.c ---- */

/*
 * The lifespan startup (asgi_lifespan "auto" or "on"; nothing for "off"),
 * running the loop until the app says how it went. Returns 0 when serving
 * may begin (a->state is the shared state when the app supports lifespan),
 * -1 when it must not (logged).
 */
int cg_asgi_lifespan_startup(cg_asgi_t *a);
/* lifespan.shutdown, waiting at most graceful_timeout for the app. */
void cg_asgi_lifespan_shutdown(cg_asgi_t *a);

/* ---- internal: protocol.c and http.c ---- */

/* HEAD, BUSY, DRAIN: see protocol.c; WS: the connection was upgraded to a
 * WebSocket (websocket.c), for good; H2: it speaks HTTP/2 (h2.c), for good. */
enum { CG_ASGI_HEAD, CG_ASGI_BUSY, CG_ASGI_DRAIN, CG_ASGI_WS, CG_ASGI_H2 };

typedef struct cg_asgi_h2 cg_asgi_h2_t;

typedef struct cg_asgi_ws cg_asgi_ws_t;

struct cg_asgi_proto {
    PyObject_HEAD
    cg_asgi_t *a;
    const cg_listener_t *l;
    cg_asgi_proto_t *prev, *next; /* in a->conns while connected */
    bool listed;
    PyObject *transport; /* owned; NULL before connection_made and after connection_lost */
    uint64_t deadline;   /* when the connection times out (ms, monotonic); 0: never */
    cg_conn_t c;
    bool c_up;
    /* Bytes received and not yet taken by the parser or the body reader:
     * `view` is data_received()'s argument while it runs, `in` what is left
     * after it returns. */
    char *in;
    size_t in_off, in_len, in_cap;
    const char *view;
    size_t view_off, view_len;
    int fd;      /* the socket accept() gave (the transport owns it) */
    bool eof;    /* the client ended its side */
    bool closed; /* connection_lost ran, or we closed the transport */
    bool read_paused, write_paused;
    PyObject *drain; /* future send() waits on while writing is paused */
    int state;       /* CG_ASGI_HEAD/BUSY/DRAIN/WS */
    size_t drained;  /* body bytes discarded after the response (DRAIN) */
    cg_asgi_cycle_t *cy; /* the request being served (owned), NULL between requests */
    PyObject *client, *server; /* scope tuples, made once per connection */
    PyObject *scope_tpl;       /* an http scope with this connection's constants (owned), or NULL */
    PyObject *raw_path, *path; /* the last request's raw_path and path, reused when it repeats */
    /* what scope_tpl holds from the last request (borrowed from it; NULL:
     * None there), so that a request like the last sets nothing in it */
    PyObject *tpl_method, *tpl_version, *tpl_scheme, *tpl_path, *tpl_raw_path, *tpl_query;
    PyObject *hdrs; /* the last request's scope headers as a tuple of pairs (owned), or NULL */
    char *out;                 /* bytes the connection layer wrote (error pages) */
    size_t out_len, out_cap;
    uint64_t nreq;
    cg_asgi_h2_t *h2; /* the HTTP/2 side (h2.c, owned), or NULL */
};

struct cg_asgi_cycle {
    PyObject_HEAD
    cg_asgi_t *a;
    cg_asgi_proto_t *p; /* owned while this is p->cy (or one of p's HTTP/2 streams); NULL
                         * once answered or the client left */
    cg_conn_t *c;       /* the request's connection: &p->c, or the HTTP/2 stream's view */
    /* HTTP/2 (h2.c): the stream served (NULL for HTTP/1.1, and once it is
     * handed back), the connection's list of its live streams' cycles,
     * send()'s wait for the stream's spool, and response bytes the spool
     * could not take yet */
    cg_h2_stream_t *st;
    cg_asgi_cycle_t *h2_prev, *h2_next;
    PyObject *tx_waiter;
    char *rest;
    size_t rest_off, rest_len;
    bool final_pending; /* complete once `rest` is out */
    PyObject *rx_waiter; /* future receive() waits on */
    PyObject *task;      /* the app's task (owned) until it is done */
    bool app_done;       /* the app's coroutine ended (maybe inside create_task: an eager factory) */
    bool started, complete, body_done, disconnected, logged, continue_sent;
    bool chunked, omits_body, keep_alive;
    /* HTTP/2 trailers (the http.response.trailers extension): announced
     * by http.response.start, sent after the last body message; the
     * fields of messages with more_trailers wait in trailer_list */
    bool trailers, body_final;
    PyObject *trailer_list;
    bool rt_fired; /* request_timeout cut it short (timeout.c) */
    bool grace_armed; /* the disconnect grace's cancel is scheduled */
    int status;
    int64_t length; /* Content-Length the app gave, -1 none */
    int64_t sent;
    int64_t start_us;
    char *head; /* the response head, kept until logged ({name}o atoms view it) */
    size_t head_len;
    bool head_sent;
    size_t nresp; /* the app's fields first in head, up to CG_ASGI_RESP_VIEWS (access log) */
    cg_asgi_ws_t *ws; /* owned: the WebSocket's state (websocket.c); NULL for HTTP */
    /* pre_request/post_request set: the hooks' `req`, and the environ
     * Gunicorn's asgi worker builds when the access log is on (owned; NULL
     * otherwise) */
    PyObject *hook_req, *hook_env;
};

/* The bytes a connection holds that nothing has taken yet. */
static inline size_t cg_asgi_pending(const cg_asgi_proto_t *p)
{
    return (p->in_len - p->in_off) + (p->view_len - p->view_off);
}

/* http.c: start serving the request just parsed on p (p->cy is set): the
 * scope, receive/send (the WebSocket's when cy->ws is set) and the app's
 * task. 0, or -1 when the app could not be started (answered and logged). */
int cg_asgi_cycle_start(cg_asgi_cycle_t *cy);
cg_asgi_cycle_t *cg_asgi_cycle_new(cg_asgi_proto_t *p);
/* Wake a receive() waiting for body bytes or the client's leaving. */
void cg_asgi_cycle_wake(cg_asgi_cycle_t *cy);
/* The client ended its side (EOF) while cy was current: when nothing is
 * pipelined after it, the app hears http.disconnect once it has the whole
 * body, and the disconnect grace begins. */
void cg_asgi_cycle_eof(cg_asgi_cycle_t *cy);
/* The client is gone (or the connection closed) while cy was current. */
void cg_asgi_cycle_lost(cg_asgi_cycle_t *cy);

/* The scope of cy's request: "http", or "websocket" when cy->ws is set (no
 * method, ws/wss, subprotocols, the denial-response extension). New
 * reference or NULL. */
PyObject *cg_asgi_scope(cg_asgi_cycle_t *cy);
/* http.response.start / websocket.http.response.start: check the message and
 * build the response head (sent with the first body bytes). 0, or -1 with an
 * exception set. */
int cg_asgi_response_start(cg_asgi_cycle_t *cy, PyObject *msg);
/* http.response.body / websocket.http.response.body: frame the body and
 * write it (with the head if that still waits); the last one completes the
 * response (cg_asgi_proto_response_done). cy->p must be set. Returns what
 * send() answers (new reference), or NULL with an exception set. */
PyObject *cg_asgi_send_body(cg_asgi_cycle_t *cy, PyObject *msg);
/* What send() answers after writing on p: an awaitable that waits while the
 * transport's buffer is over its high-water mark. New reference or NULL. */
PyObject *cg_asgi_send_done(cg_asgi_proto_t *p);
/* The app failed (exc, borrowed, logged with its traceback) or ended
 * without a complete response (`what` is logged): Gunicorn's 500 page when
 * nothing was sent yet, else the connection closes. */
void cg_asgi_cycle_fail(cg_asgi_cycle_t *cy, PyObject *exc, const char *what);
/* request_timeout: answer 504 if nothing was sent yet (true), else close;
 * either way the response is over for the connection. */
bool cg_asgi_cycle_timeout(cg_asgi_cycle_t *cy);
/* A header name or value given by the app as a bytes view; -1 with a
 * TypeError naming `what` otherwise. */
int cg_asgi_bytes_view(PyObject *o, cg_str_t *out, const char *what);

/* websocket.c: RFC 6455 over the codec of src/http/websocket.h */

/* Received messages waiting for the app's receive(): past either bound no
 * more frames are parsed, the bytes wait in the connection's buffer, and
 * reading pauses (CG_ASGI_READ_HIGH) until the app takes them. */
#define CG_ASGI_WS_QUEUE_BYTES 65536
#define CG_ASGI_WS_QUEUE_MESSAGES 64
/* How long our close frame waits for the client's before the connection
 * is closed anyway (RFC 6455 7.1.1; Gunicorn waits 5 s). */
#define CG_ASGI_WS_CLOSE_MS 5000

/* p's request (p->c.req, its head complete) asks for a WebSocket (RFC 6455
 * 4.2.1: GET, Connection: upgrade, Upgrade: websocket). */
bool cg_asgi_ws_wanted(const cg_asgi_proto_t *p);
/* Judge the handshake and hand the websocket scope to the app (p->cy and
 * p->state CG_ASGI_WS set), or answer 400/426 and close. */
void cg_asgi_ws_start(cg_asgi_proto_t *p);
/* New bytes wait in p->in: parse frames, answer pings, queue messages. */
void cg_asgi_ws_data(cg_asgi_cycle_t *cy);
/* The connection is gone: the app's next receive() says websocket.disconnect. */
void cg_asgi_ws_lost(cg_asgi_cycle_t *cy);
/* TERM: close an open WebSocket with 1001 (Going Away). */
void cg_asgi_ws_going_away(cg_asgi_cycle_t *cy);
/* The app's task ended (exc borrowed or NULL). Returns true when the
 * WebSocket's rules answered it (accepted, or closed), false when the HTTP
 * ones apply (no handshake answer yet: 500; a denial response: close). */
bool cg_asgi_ws_task_done(cg_asgi_cycle_t *cy, PyObject *exc, bool cancelled);
void cg_asgi_ws_free(cg_asgi_ws_t *ws);
/* Add the websocket scope's own keys (subprotocols, extensions) to scope.
 * 0, or -1 with an exception set. */
int cg_asgi_ws_scope_add(cg_asgi_cycle_t *cy, PyObject *scope);
extern PyMethodDef cg_asgi_ws_receive_def, cg_asgi_ws_send_def;

/* protocol.c, for http.c and websocket.c */
/* Set the connection's deadline `ms` from now (0: none); at it the
 * connection closes. */
void cg_asgi_proto_deadline(cg_asgi_proto_t *p, uint64_t ms);
/* Write bytes (transport.write); 0, or -1 with an exception set. */
int cg_asgi_proto_write(cg_asgi_proto_t *p, const char *data, size_t len);
int cg_asgi_proto_write_obj(cg_asgi_proto_t *p, PyObject *bytes);
/* What the connection layer wrote (a refusal page, HTTP/2 frames) goes
 * out now (transport.write). */
void cg_asgi_proto_flush(cg_asgi_proto_t *p);
/* Close the transport (what was written still goes out first). */
void cg_asgi_proto_close(cg_asgi_proto_t *p);
/* The response of p->cy is complete: log it, then serve the next request,
 * drain the rest of the body, or close. */
void cg_asgi_proto_response_done(cg_asgi_proto_t *p);
/* Reading was paused while the app did not take the body: resume when
 * what is buffered is under the bound again. */
void cg_asgi_proto_maybe_resume(cg_asgi_proto_t *p);
/* Write the access record and statsd metrics of p->cy with `status`. */
void cg_asgi_access(cg_asgi_cycle_t *cy, cg_asgi_proto_t *p);

/* ---- h2.c: HTTP/2 connections ---- */

/* A TLS connection whose ALPN chose h2 (connection_made): HTTP/2 from the
 * start. 0, or -1 (logged; the connection is closed). */
int cg_asgi_h2_alpn(cg_asgi_proto_t *p);
/* h2c: a plain connection's first bytes in p->c.buf. 1 when it became an
 * HTTP/2 connection (prior knowledge; the bytes were fed), 0 when more are
 * needed to tell, -1 when it is HTTP/1.1. */
int cg_asgi_h2_preface(cg_asgi_proto_t *p);
/* p's parsed request asks for Upgrade: h2c and may have it: answer 101 and
 * make it stream 1. true when the connection is HTTP/2 now (or closed),
 * false when it stays HTTP/1.1. */
bool cg_asgi_h2_upgrade(cg_asgi_proto_t *p);
/* data_received in state H2: bytes from the view. */
void cg_asgi_h2_data(cg_asgi_proto_t *p);
/* resume_writing: send on. */
void cg_asgi_h2_writable(cg_asgi_proto_t *p);
/* TERM: GOAWAY; the connection closes once its streams are answered. */
void cg_asgi_h2_goaway(cg_asgi_proto_t *p);
/* The connection's deadline came (--timeout without a byte from the
 * client): true when it is kept, because a stream's app is at work (the
 * heartbeat watches the loop); one that only waits for the client to take
 * its response (a shut window) does not keep it. */
bool cg_asgi_h2_keep(cg_asgi_proto_t *p);
/* connection_lost: streams in the app see http.disconnect. */
void cg_asgi_h2_lost(cg_asgi_proto_t *p);
/* Free what is left (dealloc). */
void cg_asgi_h2_free(cg_asgi_proto_t *p);
/* The live streams' cycles of p (NULL-terminated by h2_next), or NULL. */
cg_asgi_cycle_t *cg_asgi_h2_cycles(cg_asgi_proto_t *p);
/* For http.c, on a stream's cycle: write response bytes (1xx and final
 * heads in HTTP/1.1 syntax, then the body) through the stream's view;
 * what its spool cannot take waits in cy->rest. 0, or -1 with an
 * exception set. */
int cg_asgi_h2_write(cg_asgi_cycle_t *cy, const char *data, size_t len);
/* Whether the stream is gone (reset, or its connection). */
bool cg_asgi_h2_gone(cg_asgi_cycle_t *cy);
/* The response is over: complete (ok) or cut short (the stream is reset).
 * Logs it and hands the stream back; the cycle leaves the connection. */
void cg_asgi_h2_done(cg_asgi_cycle_t *cy, bool ok);
/* What send() answers: an awaitable that waits while the stream's
 * unsent response is over CG_ASGI_READ_HIGH. New reference or NULL. */
PyObject *cg_asgi_h2_send_done(cg_asgi_cycle_t *cy);
/* Send trailers (name, value views) after the body. 0, or -1 with an
 * exception set. */
int cg_asgi_h2_trailers(cg_asgi_cycle_t *cy, const cg_str_t *fields, size_t npairs);

/* Buffered request bytes over which reading pauses until the app takes
 * them (the transport's own high-water mark for writes is the same). */
#define CG_ASGI_READ_HIGH 65536
/* The largest body message receive() hands out at once. */
#define CG_ASGI_BODY_CHUNK 65536
/* Body bytes the app left unread that are skipped to keep the connection. */
#define CG_ASGI_DRAIN_MAX 65536

#endif
