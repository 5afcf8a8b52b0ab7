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

/* Free space kept after a request head for chunk-size lines and trailers. */
#define CG_BODY_ROOM 16384

typedef struct cg_sync {
    cg_worker_t *w;
    cg_wsgi_t *ws;
    cg_http_settings_t hs;
    cg_net_allow_t *allow;
    cg_net_allow_t *proxy_allow;
    cg_http_proxy_mode_t proxy_mode;
    char **fwd;     /* upper-cased forwarder_headers */
    char **ss_names; /* upper-cased secure_scheme_headers names */
    char **ss_values;
    cg_conn_t conn;
} cg_sync_t;

static char *cg__upper(const char *s)
{
    char *u = cg_xstrdup(s);
    for (char *p = u; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p -= 32;
    return u;
}

static int cg__setup(cg_sync_t *s, cg_worker_t *w, cg_wsgi_t *ws)
{
    const cg_config_t *cfg = w->cfg;
    char err[256];
    memset(s, 0, sizeof(*s));
    s->w = w;
    s->ws = ws;
    cg_http_settings_init(&s->hs, cfg->limit_request_line, cfg->limit_request_fields,
                          cfg->limit_request_field_size);
    s->hs.permit_unconventional_http_method = cfg->permit_unconventional_http_method;
    s->hs.permit_unconventional_http_version = cfg->permit_unconventional_http_version;
    s->hs.casefold_http_method = cfg->casefold_http_method;
    s->hs.permit_obsolete_folding = cfg->permit_obsolete_folding;
    s->hs.strip_header_spaces = cfg->strip_header_spaces;
    if (cfg->header_map && strcmp(cfg->header_map, "refuse") == 0)
        s->hs.header_map = CG_HTTP_HEADER_MAP_REFUSE;
    else if (cfg->header_map && strcmp(cfg->header_map, "dangerous") == 0)
        s->hs.header_map = CG_HTTP_HEADER_MAP_DANGEROUS;
    else
        s->hs.header_map = CG_HTTP_HEADER_MAP_DROP;

    s->fwd = cg_xcalloc(cfg->forwarder_headers.n + 1, sizeof(char *));
    for (size_t i = 0; i < cfg->forwarder_headers.n; i++) {
        if (strcmp(cfg->forwarder_headers.v[i], "*") == 0)
            s->hs.forwarder_headers_all = true;
        s->fwd[i] = cg__upper(cfg->forwarder_headers.v[i]);
    }
    s->hs.forwarder_headers = (const char *const *)s->fwd;
    s->hs.nforwarder_headers = cfg->forwarder_headers.n;

    size_t nss = cfg->secure_scheme_headers.n / 2;
    s->ss_names = cg_xcalloc(nss + 1, sizeof(char *));
    s->ss_values = cg_xcalloc(nss + 1, sizeof(char *));
    for (size_t i = 0; i < nss; i++) {
        s->ss_names[i] = cg__upper(cfg->secure_scheme_headers.v[2 * i]);
        s->ss_values[i] = cg_xstrdup(cfg->secure_scheme_headers.v[2 * i + 1]);
    }
    s->hs.secure_scheme_names = (const char *const *)s->ss_names;
    s->hs.secure_scheme_values = (const char *const *)s->ss_values;
    s->hs.nsecure_scheme = nss;

    if (cg_net_allow_parse((const char *const *)cfg->forwarded_allow_ips.v,
                           cfg->forwarded_allow_ips.n, &s->allow, err, sizeof(err)) < 0) {
        cg_log_error(w->log, "Invalid forwarded_allow_ips: %s", err);
        return -EINVAL;
    }

    const char *pp = cfg->proxy_protocol ? cfg->proxy_protocol : "off";
    s->proxy_mode = strcmp(pp, "v1") == 0     ? CG_HTTP_PROXY_V1
                    : strcmp(pp, "v2") == 0   ? CG_HTTP_PROXY_V2
                    : strcmp(pp, "auto") == 0 ? CG_HTTP_PROXY_AUTO
                                              : CG_HTTP_PROXY_OFF;
    if (cg_net_allow_parse((const char *const *)cfg->proxy_allow_ips.v, cfg->proxy_allow_ips.n,
                           &s->proxy_allow, err, sizeof(err)) < 0) {
        cg_log_error(w->log, "Invalid proxy_allow_ips: %s", err);
        return -EINVAL;
    }

    cg_conn_t *c = &s->conn;
    c->fd = -1;
    /* The largest head the limits can let through, and no more. */
    size_t line = s->hs.limit_request_line ? s->hs.limit_request_line : 8190;
    c->buf_max = line + 2 + s->hs.limit_request_fields * (s->hs.limit_request_field_size + 2) + 4 + 4096;
    c->buf.cap = 32768; /* a typical head plus CG_BODY_ROOM without growing */
    c->buf.data = cg_xmalloc(c->buf.cap);
    c->req.headers_cap = s->hs.limit_request_fields + 1;
    c->req.headers = cg_xcalloc(c->req.headers_cap, sizeof(cg_http_header_t));
    return 0;
}

static void cg__teardown(cg_sync_t *s)
{
    for (size_t i = 0; s->fwd && s->fwd[i]; i++)
        free(s->fwd[i]);
    free(s->fwd);
    for (size_t i = 0; s->ss_names && s->ss_names[i]; i++) {
        free(s->ss_names[i]);
        free(s->ss_values[i]);
    }
    free(s->ss_names);
    free(s->ss_values);
    cg_net_allow_free(s->allow);
    cg_net_allow_free(s->proxy_allow);
    free(s->conn.buf.data);
    free(s->conn.req.headers);
}

static void cg__rebase_str(cg_str_t *v, const char *old, char *new, size_t len)
{
    if (v->ptr != NULL && v->ptr >= old && v->ptr <= old + len)
        v->ptr = new + (v->ptr - old);
}

/* Point every view of a parsed head at the buffer's new address. */
static void cg__rebase(cg_http_request_t *req, const char *old, char *new, size_t len)
{
    cg__rebase_str(&req->method, old, new, len);
    cg__rebase_str(&req->uri, old, new, len);
    cg__rebase_str(&req->path, old, new, len);
    cg__rebase_str(&req->query, old, new, len);
    cg__rebase_str(&req->fragment, old, new, len);
    cg__rebase_str(&req->script_name, old, new, len);
    for (size_t i = 0; i < req->nheaders; i++) {
        cg__rebase_str(&req->headers[i].name, old, new, len);
        cg__rebase_str(&req->headers[i].value, old, new, len);
    }
}

/* A request Gunicorn refuses: its status, its page, its log line. */
static void cg__refuse(cg_sync_t *s, cg_conn_t *c, const cg_http_error_t *err)
{
    char text[1024];
    cg_http_error_text(err, text, sizeof(text));
    if (cg_http_error_status(err->code) == 500) {
        /* Outside Gunicorn's list of 4xx parse errors: its generic 500 branch. */
        cg_log_error(s->w->log, "Error handling request (no URI read)\n%s", text);
    } else {
        cg_log_warning(s->w->log, "Invalid request from ip=%s: %s", c->peer_ip, text);
    }
    char page[2048];
    size_t plen = cg_http_error_status(err->code) == 500 && err->code != CG_HTTP_E_CONFIGURATION_PROBLEM
                      ? cg_http_error_page(500, "Internal Server Error", "", page, sizeof(page))
                      : cg_http_error_response(err, page, sizeof(page));
    if (plen > 0 && cg_conn_write_all(c, page, plen) < 0)
        cg_log_debug(s->w->log, "Failed to send error message.");
}

/*
 * PROXY protocol header at the start of the connection (Gunicorn reads it on
 * the first request only). Returns 1 to go on with the request (header
 * consumed, or none present), 0 when the peer closed, -1 on a refused header
 * (c->req.error filled).
 */
static int cg__read_proxy(cg_sync_t *s, cg_conn_t *c)
{
    bool allowed = cg_net_allowed(s->proxy_allow, (struct sockaddr *)&c->peer);
    for (;;) {
        ssize_t n = cg_conn_fill(c);
        if (n <= 0)
            return 0;
        ssize_t r = cg_http_parse_proxy(s->proxy_mode, c->buf.data, c->buf.len, allowed, &c->proxy,
                                        &c->req.error);
        if (r == CG_EAGAIN)
            continue;
        if (r < 0) {
            if (c->req.error.code == CG_HTTP_E_FORBIDDEN_PROXY_REQUEST)
                c->req.error.arg = (cg_str_t){c->peer_ip, strlen(c->peer_ip)};
            return -1;
        }
        if (r > 0) {
            /* The request head is parsed from the buffer's start. */
            memmove(c->buf.data, c->buf.data + r, c->buf.len - (size_t)r);
            c->buf.len -= (size_t)r;
            c->has_proxy = true;
        }
        return 1;
    }
}

/* Serve one accepted connection: one request, then a graceful close. */
static void cg__handle(cg_sync_t *s, int fd, const cg_listener_t *l)
{
    cg_worker_t *w = s->w;
    cg_conn_t *c = &s->conn;
    cg_http_request_t *req = &c->req;
    bool done = false;
    c->fd = fd;
    c->listener = l;
    c->buf.off = c->buf.len = c->buf.keep = 0;
    cg_net_peer_text((struct sockaddr *)&c->peer, c->peer_ip, sizeof(c->peer_ip), c->peer_port,
                     sizeof(c->peer_port));
    c->trusted = cg_net_allowed(s->allow, (struct sockaddr *)&c->peer);
    cg_http_parser_reset(&c->parser);
    c->has_proxy = false;

    if (s->proxy_mode != CG_HTTP_PROXY_OFF) {
        int pr = cg__read_proxy(s, c);
        if (pr <= 0) {
            if (pr < 0)
                cg__refuse(s, c, &req->error);
            goto close;
        }
    }

    for (;;) {
        if (c->buf.len > 0) {
            ssize_t r = cg_http_parse_request(&s->hs, &c->parser, c->buf.data, c->buf.len,
                                              c->trusted, req);
            if (r > 0)
                break;
            if (r != CG_EAGAIN) {
                cg__refuse(s, c, &req->error);
                goto close;
            }
        }
        ssize_t n = cg_conn_fill(c);
        if (n == 0) {
            if (c->buf.len == 0)
                cg_log_debug(w->log, "Closing connection. ");
            else
                cg_log_debug(w->log, "Ignored premature client disconnection. No more data after: %.*s",
                             (int)(c->buf.len > 64 ? 64 : c->buf.len), c->buf.data);
            goto close;
        }
        if (n < 0) {
            if (n == -ECONNRESET)
                cg_log_debug(w->log, "Ignoring connection reset");
            else if (n == -ENOTCONN)
                cg_log_debug(w->log, "Ignoring socket not connected");
            else
                cg_log_error(w->log, "Socket error processing request. %s", strerror((int)-n));
            goto close;
        }
    }

    if (c->buf.cap - req->head_len < CG_BODY_ROOM) {
        /* The chunked decoder needs room after the pinned head. Growing may
         * move the buffer (and the parser may have rewritten it in place, so
         * parsing again is no option): rebase the views instead. */
        char *old = c->buf.data;
        c->buf.cap = req->head_len + CG_BODY_ROOM;
        c->buf.data = cg_xrealloc(c->buf.data, c->buf.cap);
        cg__rebase(req, old, c->buf.data, c->buf.len);
    }
    c->buf.off = c->buf.keep = req->head_len;
    cg_http_body_init(&c->body, req, &s->hs, &c->buf, cg_conn_recv, c);
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
