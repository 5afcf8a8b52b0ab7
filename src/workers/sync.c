/*
 * sync.c - the sync worker loop (Gunicorn's SyncWorker): accept, read one
 * request, run the app, answer with Connection: close, close gracefully. All
 * of it in C without the GIL; only the app runs under it.
 */
#include "sync.h"

#include "../metrics/statsd.h"
#include "../tls/tls.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>


typedef struct cg_sync {
    cg_worker_t *w;
    cg_wsgi_t *ws;
    cg_conn_policy_t pol;
    cg_conn_t conn;
} cg_sync_t;

static int cg__setup(cg_sync_t *s, cg_worker_t *w, cg_wsgi_t *ws)
{
    memset(s, 0, sizeof(*s));
    s->w = w;
    s->ws = ws;
    int rc = cg_conn_policy_init(&s->pol, w->cfg, w->log);
    if (rc < 0)
        return rc;
    s->pol.board = w->board;
    ws->board = cg_board_thread(w->board, 0);

    cg_conn_t *c = &s->conn;
    /* a typical head plus CG_CONN_BODY_ROOM without growing */
    cg_conn_init(c, &s->pol, 32768);
    c->quit = &w->quick;
    /* The master kills a worker silent for `timeout` (Gunicorn's sync
     * worker has no other bound on a client); a peer that stops sending or
     * reading for half of that is dropped first, so one stalled client
     * costs a request, not the worker. */
    c->io_timeout_ms = w->cfg->timeout > 0 ? (int)(w->cfg->timeout * 1000 / 2) : 0;
    return 0;
}

static void cg__teardown(cg_sync_t *s)
{
    cg_conn_policy_free(&s->pol);
    cg_conn_release(&s->conn);
}

/* Serve one accepted connection: one request, then a graceful close. */
static void cg__handle(cg_sync_t *s, int fd, const cg_listener_t *l)
{
    cg_worker_t *w = s->w;
    cg_conn_t *c = &s->conn;
    bool done = false;
    cg_conn_accepted(c, &s->pol, fd, l, false);
    cg_board_conns_open(s->pol.board, 1);
    if (w->tls != NULL) {
        /* The handshake first, blocking as every wait here is (each wait
         * bounded by io_timeout_ms, the whole of it by one more), as
         * Gunicorn's first read on the wrapped socket does it. A PROXY
         * header, as in Gunicorn, comes inside the TLS stream. */
        int r = cg_tls_attach(c, w->tls);
        if (r < 0) {
            cg_log_error(w->log, "Cannot set up TLS for a connection: %s", strerror(-r));
            goto close;
        }
        c->deadline_ms = c->io_timeout_ms > 0 ? cg_monotonic_ms() + (uint64_t)c->io_timeout_ms : 0;
        r = cg_conn_handshake(c);
        c->deadline_ms = 0;
        if (r < 0) {
            cg_conn_log_read_end(c, w->log, r);
            done = true; /* nothing to linger for: no response went out */
            goto close;
        }
    }
    for (;;) {
        int h = cg_conn_head_step(c, &s->pol, w->log);
        if (h > 0)
            break;
        if (h < 0)
            goto close;
        ssize_t n = cg_conn_fill(c);
        if (n <= 0) {
            cg_conn_log_read_end(c, w->log, n);
            goto close;
        }
    }
    cg_conn_begin_body(c, &s->pol);
    cg_worker_count_request(w);
    done = cg_wsgi_handle(s->ws, c) == 0 && c->body.done && !c->body.truncated &&
           c->buf.off == c->buf.len;

close:
    cg_conn_close_graceful(c, done);
    cg_board_conns_open(s->pol.board, 0);
}

int cg_worker_sync_run(cg_worker_t *w, cg_wsgi_t *ws)
{
    cg_sync_t s;
    int rc = cg__setup(&s, w, ws);
    if (rc < 0) {
        cg__teardown(&s);
        return rc;
    }
    size_t nl = w->nlisteners;
    struct pollfd *pfds = cg_xcalloc(nl + 1, sizeof(*pfds));
    for (size_t i = 0; i < nl; i++) {
        pfds[i] = (struct pollfd){.fd = w->listeners[i].fd, .events = POLLIN};
        /* a connection then comes with its request, and one that
         * connects and stays silent reaches this one-at-a-time worker
         * CG_NET_DEFER_ACCEPT_S later (no CPU saved here, measured: the
         * blocking recv woke once either way); one behaviour with
         * gthread, where it does save, and no reason to stop if refused */
        int dr = cg_net_defer_accept(&w->listeners[i], CG_NET_DEFER_ACCEPT_S);
        if (dr < 0)
            cg_log_debug(w->log, "TCP_DEFER_ACCEPT on %s: %s", w->listeners[i].display,
                         strerror(-dr));
    }
    pfds[nl] = (struct pollfd){.fd = w->wake_pipe[0], .events = POLLIN};
    int wait_ms = w->cfg->timeout > 0 ? (int)(w->cfg->timeout * 1000 / 2) : 500;
    for (size_t i = 0; i < w->cfg->http_protocols.n; i++)
        if (strcmp(w->cfg->http_protocols.v[i], "h2") == 0) /* Gunicorn's words */
            cg_log_warning(w->log, "HTTP/2 is not supported by the sync worker. Use gthread, "
                                   "gevent, or asgi workers for HTTP/2 support. Falling back "
                                   "to HTTP/1.1 only.");

    while (w->alive) {
        cg_heartbeat_notify(&w->hb);
        if (w->reopen_logs) {
            w->reopen_logs = 0;
            cg_log_reopen(w->log);
        }
        /* Like Gunicorn: after serving a client try to accept again at once. */
        bool served = false;
        for (size_t i = 0; i < nl && w->alive; i++) {
            cg_conn_t *c = &s.conn;
            c->peerlen = sizeof(c->peer);
            int fd = accept4(w->listeners[i].fd, (struct sockaddr *)&c->peer, &c->peerlen, SOCK_CLOEXEC);
            if (fd >= 0) {
                cg__handle(&s, fd, &w->listeners[i]);
                served = true;
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED && errno != EINTR &&
                errno != EPROTO) {
                /* EMFILE and friends: say so and back off in poll below. */
                cg_log_error(w->log, "accept() failed: %s", strerror(errno));
            }
        }
        if (served)
            continue;
        if (getppid() != w->ppid) {
            cg_log_info(w->log, "Parent changed, shutting down: <Worker %d>", (int)w->pid);
            break;
        }
        /* Idle: metrics held for batching must not wait for the next
         * client, so the wait ends when they are due (a busy worker sends
         * them as it adds more: cg_statsd_batch_add checks their age). */
        int timeout = wait_ms;
        long due = cg_statsd_batch_flush_due(w->statsd_batch, cg_monotonic_us());
        if (due >= 0 && due < timeout)
            timeout = (int)due;
        int pr = poll(pfds, nl + 1, timeout);
        if (pr < 0 && errno != EINTR)
            cg_log_error(w->log, "poll() failed: %s", strerror(errno));
        if (pr > 0 && (pfds[nl].revents & POLLIN)) {
            char sink[64];
            while (read(w->wake_pipe[0], sink, sizeof(sink)) > 0)
                ;
        }
    }
    free(pfds);
    cg__teardown(&s);
    return 0;
}
