/*
 * sync.c - the sync worker loop (Gunicorn's SyncWorker): accept, read one
 * request, run the app, answer with Connection: close, close gracefully. All
 * of it in C without the GIL; only the app runs under it.
 */
#include "sync.h"

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

    cg_conn_t *c = &s->conn;
    c->fd = -1;
    c->quit = &w->quick;
    /* The master kills a worker silent for `timeout` (Gunicorn's sync
     * worker has no other bound on a client); a peer that stops sending or
     * reading for half of that is dropped first, so one stalled client
     * costs a request, not the worker. */
    c->io_timeout_ms = w->cfg->timeout > 0 ? (int)(w->cfg->timeout * 1000 / 2) : 0;
    c->buf_max = s->pol.buf_max;
    c->buf.cap = 32768; /* a typical head plus CG_CONN_BODY_ROOM without growing */
    c->buf.data = cg_xmalloc(c->buf.cap);
    c->req.headers_cap = s->pol.hs.limit_request_fields + 1;
    c->req.headers = cg_xcalloc(c->req.headers_cap, sizeof(cg_http_header_t));
    return 0;
}

static void cg__teardown(cg_sync_t *s)
{
    cg_conn_policy_free(&s->pol);
    free(s->conn.buf.data);
    free(s->conn.req.headers);
}

/*
 * PROXY protocol header at the start of the connection (Gunicorn reads it on
 * the first request only). Returns 1 to go on with the request (header
 * consumed, or none present), 0 when the peer closed, -1 on a refused header
 * (c->req.error filled).
 */
static int cg__read_proxy(cg_sync_t *s, cg_conn_t *c)
{
    for (;;) {
        ssize_t n = cg_conn_fill(c);
        if (n <= 0)
            return 0;
        int r = cg_conn_take_proxy(c, &s->pol);
        if (r != 0)
            return r;
    }
}

/* Serve one accepted connection: one request, then a graceful close. */
static void cg__handle(cg_sync_t *s, int fd, const cg_listener_t *l)
{
    cg_worker_t *w = s->w;
    cg_conn_t *c = &s->conn;
    cg_http_request_t *req = &c->req;
    bool done = false;
    cg_conn_attach_tcp(c, fd, false);
    cg_heartbeat_notify(&w->hb); /* the I/O timeout counts from here */
    c->listener = l;
    c->buf.off = c->buf.len = c->buf.keep = 0;
    cg_net_peer_text((struct sockaddr *)&c->peer, c->peer_ip, sizeof(c->peer_ip), c->peer_port,
                     sizeof(c->peer_port));
    c->trusted = cg_net_allowed(s->pol.allow, (struct sockaddr *)&c->peer);
    cg_http_parser_reset(&c->parser);
    c->has_proxy = false;

    if (s->pol.proxy_mode != CG_HTTP_PROXY_OFF) {
        int pr = cg__read_proxy(s, c);
        if (pr <= 0) {
            if (pr < 0)
                cg_conn_refuse(c, s->w->log, &req->error);
            goto close;
        }
    }

    for (;;) {
        if (c->buf.len > 0) {
            ssize_t r = cg_http_parse_request(&s->pol.hs, &c->parser, c->buf.data, c->buf.len,
                                              c->trusted, req);
            if (r > 0)
                break;
            if (r != CG_EAGAIN) {
                cg_conn_refuse(c, s->w->log, &req->error);
                goto close;
            }
        }
        ssize_t n = cg_conn_fill(c);
        if (n <= 0) {
            cg_conn_log_read_end(c, w->log, n);
            goto close;
        }
    }

    cg_conn_begin_body(c, &s->pol);
    w->nr++;
    if (w->nr >= w->max_requests) {
        cg_log_info(w->log, "Autorestarting worker after current request.");
        w->alive = 0;
    }
    done = cg_wsgi_handle(s->ws, c) == 0 && c->body.done && !c->body.truncated &&
           c->buf.off == c->buf.len;

close:
    cg_conn_close_graceful(c, done);
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
    for (size_t i = 0; i < nl; i++)
        pfds[i] = (struct pollfd){.fd = w->listeners[i].fd, .events = POLLIN};
    pfds[nl] = (struct pollfd){.fd = w->wake_pipe[0], .events = POLLIN};
    int wait_ms = w->cfg->timeout > 0 ? (int)(w->cfg->timeout * 1000 / 2) : 500;

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
        int pr = poll(pfds, nl + 1, wait_ms);
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
