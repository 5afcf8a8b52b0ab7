/*
 * net.h - listening sockets: Gunicorn's address syntax, binding with Gunicorn's
 * retries and messages, inherited fds, and the forwarded_allow_ips trust check.
 */
#ifndef CG_NET_H
#define CG_NET_H

#include "../cg.h"
#include "../log/log.h"

#include <sys/socket.h>
#include <sys/un.h>

typedef struct cg_listener {
    int fd;
    int family;                     /* AF_INET, AF_INET6, AF_UNIX */
    struct sockaddr_storage addr;   /* bound address (getsockname) */
    socklen_t addrlen;
    char *display;   /* "http://127.0.0.1:8000", "http://[::1]:8000", "unix:/path" */
    char *unix_path; /* owned; set for unix sockets we created (unlinked on exit) */
    /* environ SERVER_NAME / SERVER_PORT for TCP listeners ("127.0.0.1", "8000");
     * empty for unix sockets (the WSGI layer then uses Host). */
    char server_name[64];
    char server_port[8];
} cg_listener_t;

/*
 * Parse one bind address as Gunicorn's util.parse_address does: "unix:PATH",
 * "unix://PATH", "fd://N", "tcp://" prefix stripped, "[v6]:port", "host:port",
 * bare host -> port 8000, "" -> 0.0.0.0:8000, host lower-cased. Fills the
 * parsed form; returns 0 or -EINVAL with Gunicorn's message in err (e.g.
 * "'x' is not a valid port number.").
 */
typedef struct cg_net_addr {
    enum { CG_NET_TCP, CG_NET_UNIX, CG_NET_FD } kind;
    char host[256]; /* TCP: host as written, without brackets */
    int port;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int fd;
} cg_net_addr_t;

int cg_net_parse_address(const char *spec, cg_net_addr_t *out, char *err, size_t errlen);

/*
 * Create listeners for every address in binds (n entries): TCP sockets get
 * SO_REUSEADDR, TCP_NODELAY, optional SO_REUSEPORT, non-blocking, listen(backlog);
 * unix sockets replace a stale socket file (a non-socket file is an error) and
 * bind under the current umask; fd://N adopts an inherited fd. On EADDRINUSE /
 * EADDRNOTAVAIL retries 5 times a second apart logging Gunicorn's ERROR lines,
 * then "Can't connect to ..." and returns -errno. On success *out is an owned
 * array of *nout listeners (release with cg_net_close_all).
 */
int cg_net_listen_all(const char *const *binds, size_t n, int backlog, bool reuse_port,
                      cg_log_t *log, cg_listener_t **out, size_t *nout);

/*
 * The address as Gunicorn's bind messages print it (Python's str() of the
 * parsed form): "('127.0.0.1', 8000)" for TCP, the bare path for unix
 * sockets, the number for fd://. Always NUL-terminates (truncates).
 */
void cg_net_addr_text(const cg_net_addr_t *a, char *buf, size_t cap);

/*
 * Ask the kernel to hand this TCP listener's connections to accept() only
 * once their first bytes have arrived (Linux TCP_DEFER_ACCEPT), or a
 * silent one after about `seconds`. Every protocol served here has the
 * client speak first (HTTP, TLS, PROXY, h2c's preface), so a worker then
 * finds the request (or its first part) waiting instead of watching the
 * connection for it. The option belongs to the socket, shared by the workers and inherited
 * by a USR2 child. No-op on unix sockets and where the option does not
 * exist; returns 0 or -errno.
 */
int cg_net_defer_accept(const cg_listener_t *l, int seconds);
/* What the workers ask for: a connection that stays silent is accepted
 * after about this long anyway, and then meets the worker's own timeouts. */
#define CG_NET_DEFER_ACCEPT_S 1

/* cg_net_listen_all with every knob, so tests can shorten the retry loop. */
typedef struct cg_net_listen_opts {
    int backlog;
    bool reuse_port;
    int tries;               /* Gunicorn: 5 */
    unsigned retry_delay_ms; /* Gunicorn: 1000 (also slept after the last try) */
} cg_net_listen_opts_t;

int cg_net_listen_all_opts(const char *const *binds, size_t n, const cg_net_listen_opts_t *opts,
                           cg_log_t *log, cg_listener_t **out, size_t *nout);

/*
 * The accept queue of a TCP listener: connections the kernel completed that
 * no worker has accepted yet (TCP_INFO's tcpi_unacked on a listening socket)
 * and the queue's limit (tcpi_sacked, the backlog the kernel applies).
 * Returns 0, -EOPNOTSUPP for a unix socket (no such figure), or -errno.
 */
int cg_net_backlog(const cg_listener_t *l, uint32_t *queued, uint32_t *limit);

/* Adopt already-open listening fds (GUNICORN_FD, LISTEN_FDS, fd://). */
int cg_net_adopt_fd(int fd, int backlog, cg_listener_t *out, char *err, size_t errlen);

/* "http://127.0.0.1:8000,unix:/tmp/s" for the "Listening at:" line; owned. */
char *cg_net_listeners_display(const cg_listener_t *l, size_t n);

/* TLS on every listener: TCP ones show "https://" (Gunicorn's
 * TCPSocket.__str__ with is_ssl); unix sockets are unchanged. */
void cg_net_listeners_set_https(cg_listener_t *l, size_t n);

/* Close listeners; unlink unix socket files when unlink_unix. Frees the array. */
void cg_net_close_all(cg_listener_t *l, size_t n, bool unlink_unix);

/* forwarded_allow_ips / proxy_allow_ips: "*", single IPs, CIDR networks. */
typedef struct cg_net_allow cg_net_allow_t;
int cg_net_allow_parse(const char *const *items, size_t n, cg_net_allow_t **out, char *err,
                       size_t errlen);
/*
 * One entry of such a list, with the same parser cg_net_allow_parse() uses
 * (so the config validator and the matcher cannot disagree): "*", an address,
 * ADDR/PREFIX, or an IPv4 ADDR/NETMASK or ADDR/HOSTMASK, as Python's
 * ipaddress.ip_network(strict=True) takes them. Returns 0; -EINVAL when the
 * text is no network; -EDOM when host bits are set, and then shown (shownlen
 * bytes, at least INET6_ADDRSTRLEN + 80) holds the network as Python prints
 * it in "... has host bits set" (the prefix as a length: "10.0.0.1/8").
 */
int cg_net_allow_check(const char *item, char *shown, size_t shownlen);
/* Unix-socket peers are always allowed. */
bool cg_net_allowed(const cg_net_allow_t *allow, const struct sockaddr *peer);
void cg_net_allow_free(cg_net_allow_t *allow);

/* Peer address as text for REMOTE_ADDR/REMOTE_PORT: ip ("" for unix) and port
 * ("" when none). ip needs INET6_ADDRSTRLEN bytes. */
void cg_net_peer_text(const struct sockaddr *peer, char *ip, size_t iplen, char *port,
                      size_t portlen);

#endif
