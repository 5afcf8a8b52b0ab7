/*
 * server.h - the master's metrics endpoint (metrics_bind): a minimal HTTP/1.1
 * server inside the master's poll loop, answering GET /metrics.
 *
 * It never blocks the master: every socket is non-blocking, the master polls
 * them with its signal pipe, a request must arrive whole within a few
 * seconds, at most CG_METRICS_MAX_CONNS scrapes are served at once (more are
 * closed at accept), and each connection carries one request and is closed
 * after the answer (shut for writing, then read until the peer closes, for
 * at most 2 s). Plain C, no Python.
 */
#ifndef CG_METRICS_SERVER_H
#define CG_METRICS_SERVER_H

#include "../cg.h"
#include "../log/log.h"

#include <poll.h>

#define CG_METRICS_MAX_CONNS 8
/* pollfds the master must reserve for the endpoint */
#define CG_METRICS_MAX_FDS (CG_METRICS_MAX_CONNS + 1)

typedef struct cg_metrics_server cg_metrics_server_t;

/* Renders the page: a malloc'd text of *len bytes, or NULL (answered 500). */
typedef char *(*cg_metrics_render_cb)(void *ctx, size_t *len);

/*
 * Listen on addr (Gunicorn's bind syntax: HOST:PORT, [v6]:PORT, unix:PATH),
 * or adopt inherited_fd when it is >= 0 (a USR2 parent's endpoint). One try:
 * an address in use fails at once, logged as Gunicorn logs a bind failure.
 * Returns 0 with *out set, or -errno with a message in err.
 */
int cg_metrics_server_open(cg_metrics_server_t **out, const char *addr, int inherited_fd,
                           int backlog, cg_log_t *log, char *err, size_t errlen);

/* The listening socket (handed to a USR2 child). */
int cg_metrics_server_fd(const cg_metrics_server_t *s);
/* "http://127.0.0.1:9100/metrics" style text for the log line. */
const char *cg_metrics_server_display(const cg_metrics_server_t *s);

/* Fill up to cap pollfds (at most CG_METRICS_MAX_FDS) with what the server
 * waits for; returns how many. */
size_t cg_metrics_server_pollfds(const cg_metrics_server_t *s, struct pollfd *p, size_t cap);
/* After poll: accept, read, answer, close, and drop connections past their
 * deadline. p/n are the pollfds cg_metrics_server_pollfds filled. */
void cg_metrics_server_serve(cg_metrics_server_t *s, const struct pollfd *p, size_t n,
                             uint64_t now_ms, cg_metrics_render_cb render, void *ctx);

/* Close everything and free; unlink a unix socket when `unlink_unix`. NULL
 * is fine. A forked worker calls it with false: the fds are not its own. */
void cg_metrics_server_close(cg_metrics_server_t *s, bool unlink_unix);

#endif
