/*
 * conn.h - one client connection of a worker: socket, peer, read buffer and the
 * request being served. Plain C; the WSGI layer releases the GIL around these
 * calls.
 */
#ifndef CG_CONN_H
#define CG_CONN_H

#include "../cg.h"
#include "../config/config.h"
#include "../http/http.h"
#include "../log/log.h"
#include "../metrics/board.h"
#include "../net/net.h"

#include <signal.h>
#include <sys/uio.h>

typedef struct cg_conn cg_conn_t;

enum { CG_CONN_WANT_READ = 1, CG_CONN_WANT_WRITE = 2 };

/*
 * The peer ended a TLS connection where the protocol forbids it: during the
 * handshake, or a "ragged EOF" (no close_notify) while suppress_ragged_eofs
 * is off. Gunicorn's SSLEOFError: "ssl connection closed".
 */
#define CG_CONN_ETLSEOF (-ECONNABORTED)

/*
 * The transport under a connection (redis's ConnectionType): plain TCP
 * (cg_conn_tcp), TLS (cg_tls_ops, src/tls/), a fake one in the unit tests.
 * No op waits: the waiting and its deadlines live in conn.c, once for
 * every transport. A TLS failure is -EPROTO (error() has its text) or
 * CG_CONN_ETLSEOF.
 */
typedef struct cg_conn_ops {
    const char *name;
    /* > 0 bytes read, 0 EOF, CG_EAGAIN when none is ready, or -errno */
    ssize_t (*recv)(cg_conn_t *c, char *dst, size_t cap);
    /* > 0 bytes taken, CG_EAGAIN, or -errno */
    ssize_t (*writev)(cg_conn_t *c, const struct iovec *iov, int iovcnt);
    /* bytes of in_fd sent from *offset (advanced), 0 when the file ended,
     * CG_EAGAIN, or -errno */
    ssize_t (*sendfile)(cg_conn_t *c, int in_fd, off_t *offset, size_t count);
    /* until CG_CONN_WANT_READ/WRITE is possible, at most timeout_ms (-1:
     * no limit): 0, -ETIMEDOUT, -EINTR or -errno */
    int (*wait)(cg_conn_t *c, int want, int timeout_ms);
    int (*shutdown)(cg_conn_t *c); /* no more writes (FIN): 0 or -errno */
    void (*close)(cg_conn_t *c);   /* release the transport; c->fd becomes -1 */
    /* Optional (NULL for TCP). One step of the transport's own handshake:
     * 0 when done, CG_CONN_WANT_READ/WRITE when it must wait for that, or
     * -errno. */
    int (*handshake)(cg_conn_t *c);
    /* Optional: bytes the transport holds decrypted that recv hands out
     * without the socket becoming readable (so a poll would not say so). */
    size_t (*pending)(cg_conn_t *c);
    /* Optional: text of the last failure (an OpenSSL error), or NULL. */
    const char *(*error)(const cg_conn_t *c);
    /* Optional (HTTP/2 streams): npairs (name, value) fields to send after
     * the body as trailers, once, before the response ends. 0 or -errno. */
    int (*trailers)(cg_conn_t *c, const cg_str_t *fields, size_t npairs);
} cg_conn_ops_t;

extern const cg_conn_ops_t cg_conn_tcp;

struct cg_conn {
    const cg_conn_ops_t *ops;
    void *transport; /* the transport's own state (fake, TLS); NULL for TCP */
    int fd;
    bool nonblocking; /* O_NONBLOCK on fd (gthread); the sync worker's is blocking */
    bool sndtimeo_set;
    bool tls; /* on a TLS transport (wsgi.url_scheme "https") */
    /* The transport frames messages itself (an HTTP/2 stream, src/h2/):
     * responses go out without chunked coding. */
    bool framed;
    const cg_listener_t *listener;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    char peer_ip[64];  /* REMOTE_ADDR ("" for unix sockets) */
    char peer_port[8]; /* REMOTE_PORT ("" for unix sockets) */
    bool trusted;      /* peer in forwarded_allow_ips (or a unix socket) */
    bool has_proxy;    /* a PROXY protocol header came first on this connection */
    bool proxy_checked; /* the PROXY header (or its absence) is settled */
    cg_http_proxy_t proxy;

    cg_http_buf_t buf; /* owned; grows up to the largest head the limits allow */
    size_t buf_max;
    cg_http_parser_t parser;
    cg_uwsgi_scratch_t uwsgi_scratch; /* --protocol uwsgi: the request line */
    cg_http_request_t req;
    cg_http_body_t body;
    /* Body bytes the event loop read ahead of the app (gthread), handed out
     * before what is still on the socket. NULL: none. */
    struct cg_spool *body_spool;

    /* Waiting for the peer while a request is served (body reads, response
     * writes): each wait ends after io_timeout_ms without progress (0: no
     * limit), and none goes past deadline_ms (CLOCK_MONOTONIC ms; 0: none).
     * Either way the I/O fails with -ETIMEDOUT. */
    int io_timeout_ms;
    uint64_t deadline_ms;
    /* The worker's "leave now" flag (QUIT/INT): a wait or syscall it
     * interrupts fails with -EINTR instead of resuming. May be NULL. */
    const volatile sig_atomic_t *quit;

    /* gthread worker (the sync worker leaves these zero) */
    bool must_close;     /* in: answer this request with Connection: close */
    bool keep_alive;     /* out: the response head said Connection: keep-alive */
    /* The connection's gunicorn.socket (an owned PyObject on a duplicate of
     * fd), made by its first request and kept for the next ones, as Gunicorn
     * keeps one socket object per connection. Cleared by the WSGI layer when
     * the response closes the connection; a connection closed later by the
     * loop hands it to cg_wsgi_orphans_add(), since releasing it needs the
     * GIL. */
    void *app_sock;
};

/* Lingering close (RFC 9112 section 9.6), as Gunicorn's close_graceful(). */
#define CG_CONN_LINGER_MAX 65536
#define CG_CONN_LINGER_MS 2000

/* A socket transport's wait op: poll(2) fd for CG_CONN_WANT_READ/WRITE.
 * 0, -ETIMEDOUT or -errno (-EINTR). */
int cg_conn_poll_fd(int fd, int want, int timeout_ms);

/* Start serving a freshly accepted plain socket: ops, fd, no deadlines. */
void cg_conn_attach_tcp(cg_conn_t *c, int fd, bool nonblocking);

/* Run the transport's handshake to its end (nothing to do for TCP),
 * waiting as every other I/O does (io_timeout_ms, deadline_ms, quit).
 * Returns 0, or -ETIMEDOUT / -EINTR / -EPROTO / CG_CONN_ETLSEOF / -errno. */
int cg_conn_handshake(cg_conn_t *c);

/* The request body for the app: what was read ahead into body_spool, then
 * the rest from the socket. As cg_http_body_read(). */
ssize_t cg_conn_body_read(cg_conn_t *c, char *dst, size_t cap);
/* Every byte of the body has been handed out (a short body counts). */
bool cg_conn_body_done(const cg_conn_t *c);

/* recv for cg_http_body_t: > 0 bytes, 0 EOF, -ETIMEDOUT, -errno. */
ssize_t cg_conn_recv(void *conn, char *dst, size_t cap);

/* Write everything, waiting (bounded, see io_timeout_ms) while the peer's
 * window is full. Returns 0 or -errno (-EPIPE, -ECONNRESET, -ETIMEDOUT ...). */
int cg_conn_writev_all(cg_conn_t *c, struct iovec *iov, int iovcnt);
int cg_conn_write_all(cg_conn_t *c, const void *data, size_t len);

/* One write that never waits: bytes taken, CG_EAGAIN or -errno. For the
 * event loop, which must not block on one peer. */
ssize_t cg_conn_write_nowait(cg_conn_t *c, const void *data, size_t len);

/* sendfile(2) `count` bytes of in_fd from `offset`. Returns 0 or -errno
 * (-EIO when the file is shorter than count). */
int cg_conn_sendfile(cg_conn_t *c, int in_fd, off_t offset, size_t count);

/*
 * Read more bytes into the buffer, growing it (up to buf_max) when full.
 * Returns bytes read, 0 on EOF, -ENOBUFS when the buffer cannot grow, or -errno.
 */
ssize_t cg_conn_fill(cg_conn_t *c);

/* As cg_conn_fill, but never waits: CG_EAGAIN when no byte is ready. For the
 * event loop. */
ssize_t cg_conn_fill_nowait(cg_conn_t *c);

/* Gunicorn's finish_body(): read and drop what the app left of the request
 * body, at most `max` bytes and for at most `ms` (deadline_ms is set for it,
 * then cleared). Returns true when the whole body has been read, so the
 * connection can take its next request. */
bool cg_conn_skip_body(cg_conn_t *c, size_t max, int ms);

/* Send FIN, drain up to CG_CONN_LINGER_MAX bytes for at most
 * CG_CONN_LINGER_MS until the peer closes, then close (blocking the caller:
 * the sync worker's way; the gthread loop lingers on its timers instead).
 * With request_done (the whole request was read and no byte beyond it
 * arrived) there is nothing to linger for, and it closes at once. */
void cg_conn_close_graceful(cg_conn_t *c, bool request_done);

/* ---- policy.c: what the worker loops derive from the configuration ---- */

typedef struct cg_conn_policy {
    cg_http_settings_t hs;
    cg_net_allow_t *allow;       /* forwarded_allow_ips */
    cg_net_allow_t *proxy_allow; /* proxy_allow_ips */
    cg_http_proxy_mode_t proxy_mode;
    char **fwd; /* upper-cased forwarder_headers (hs points here) */
    char **ss_names;
    char **ss_values;
    size_t buf_max; /* the largest request head the limits let through, plus room */
    cg_board_shm_t *board; /* the worker's scoreboard slot (metrics_bind), or NULL */
    bool uwsgi;            /* --protocol uwsgi */
    const char *const *uwsgi_allow; /* uwsgi_allow_ips (the config's) */
    size_t nuwsgi_allow;
} cg_conn_policy_t;

/* Fill `p` from the settings. Returns 0 or -EINVAL (logged) for an allow
 * list that does not parse. Release with cg_conn_policy_free either way. */
int cg_conn_policy_init(cg_conn_policy_t *p, const cg_config_t *cfg, cg_log_t *log);
void cg_conn_policy_free(cg_conn_policy_t *p);

/* Buffers for a connection of either worker under this policy (head
 * buffer of buf_initial bytes, header table); free with cg_conn_release. */
void cg_conn_init(cg_conn_t *c, const cg_conn_policy_t *p, size_t buf_initial);
void cg_conn_release(cg_conn_t *c);

/* A connection was accepted on `l` from c->peer (peerlen set): plain TCP
 * transport on fd, peer text, trust, a fresh parser and PROXY state. */
void cg_conn_accepted(cg_conn_t *c, const cg_conn_policy_t *p, int fd, const cg_listener_t *l,
                      bool nonblocking);

/*
 * One step of reading a request head from what c's buffer holds, the same
 * for every worker: the PROXY header first when the policy expects one
 * (once per connection), then the head. Returns 1 when a head is complete
 * (c->req), 0 when more bytes are needed, -1 when the request was refused
 * (log line and error page out): the connection must close.
 */
int cg_conn_head_step(cg_conn_t *c, const cg_conn_policy_t *p, cg_log_t *log);

/* A request Gunicorn refuses: its log line, its status and page written to c. */
void cg_conn_refuse(cg_conn_t *c, const cg_conn_policy_t *p, cg_log_t *log,
                    const cg_http_error_t *err);

/* Log, as Gunicorn's workers do, why reading a request head (or the TLS
 * handshake before it) ended early: n is what cg_conn_fill or
 * cg_conn_handshake returned (0 for EOF, or -errno). */
void cg_conn_log_read_end(const cg_conn_t *c, cg_log_t *log, ssize_t n);

/* A PROXY protocol header at the start of c's buffer (p->proxy_mode must not
 * be off). Returns 1 when it was consumed or there is none, 0 when more bytes
 * are needed, -1 when refused (c->req.error filled). */
int cg_conn_take_proxy(cg_conn_t *c, const cg_conn_policy_t *p);

/* A connection waiting for its next request with nothing buffered lets go
 * of its buffers (the gevent worker, whose idle keep-alive connections are
 * many); cg_conn_wake() gets them back, as cg_conn_init() made them, once
 * bytes come. */
void cg_conn_idle(cg_conn_t *c);
void cg_conn_wake(cg_conn_t *c, const cg_conn_policy_t *p, size_t buf_initial);

/* Buffers a connection takes over instead of allocating them (gthread
 * reuses closed connections' ones): a head buffer of cap bytes and a header
 * table of cg_conn_headers_cap(p) entries. */
size_t cg_conn_headers_cap(const cg_conn_policy_t *p);
void cg_conn_adopt(cg_conn_t *c, const cg_conn_policy_t *p, char *buf, size_t cap,
                   cg_http_header_t *headers);

/* Free space kept after a request head for chunk-size lines and trailers. */
#define CG_CONN_BODY_ROOM 16384

/* After a complete head: pin it in the buffer (the access log still reads
 * its views), make room for the body after it, and start the body reader. */
void cg_conn_begin_body(cg_conn_t *c, const cg_conn_policy_t *p);

/* After a kept-alive request: move the bytes after it (a pipelined next
 * request) to the buffer's start, unpin the old head, shrink a buffer a
 * large body or head grew past `shrink_above` back to `initial` bytes when
 * what is left fits, and reset the parser. */
void cg_conn_next_request(cg_conn_t *c, size_t initial, size_t shrink_above);

/* The client as the app is told (REMOTE_ADDR, ASGI's scope["client"]): the
 * address a trusted PROXY protocol header gave, else the peer's. *port is
 * -1 when there is none (unix sockets, PROXY LOCAL/UNSPEC keep the peer's
 * address text, which is "" on a unix socket). */
cg_str_t cg_conn_client_addr(const cg_conn_t *c, int *port);

/*
 * The request-side atoms of an access record, the same for every worker
 * kind: client address, method, URI, protocol (written into proto, 16
 * bytes), path and query (undecoded: callers that have PATH_INFO decoded
 * replace it), request headers, status text, bytes sent, time taken since
 * start_us (cg_monotonic_us()), pid, time. Views into c's buffer.
 */
void cg_conn_access_info(cg_access_info_t *info, const cg_conn_t *c, char proto[16],
                         cg_str_t status, int64_t sent, int64_t start_us);

/* Point every view of a parsed head at the buffer's new address after it
 * moved from `old` to `new` (len bytes in use). */
void cg_conn_rebase(cg_http_request_t *req, const char *old, char *new, size_t len);

#endif
