/*
 * policy.c - what every worker loop derives from the configuration to read
 * requests (parser settings, trust lists, PROXY protocol mode), and what it
 * does with a request Gunicorn refuses. Shared by the sync and gthread loops.
 */
#include "conn.h"
#include "worker.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char *cg__upper(const char *s)
{
    char *u = cg_xstrdup(s);
    for (char *p = u; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p -= 32;
    return u;
}

int cg_conn_policy_init(cg_conn_policy_t *p, const cg_config_t *cfg, cg_log_t *log)
{
    char err[256];
    memset(p, 0, sizeof(*p));
    cg_http_settings_init(&p->hs, cfg->limit_request_line, cfg->limit_request_fields,
                          cfg->limit_request_field_size);
    p->hs.permit_unconventional_http_method = cfg->permit_unconventional_http_method;
    p->hs.permit_unconventional_http_version = cfg->permit_unconventional_http_version;
    p->hs.casefold_http_method = cfg->casefold_http_method;
    p->hs.permit_obsolete_folding = cfg->permit_obsolete_folding;
    p->hs.strip_header_spaces = cfg->strip_header_spaces;
    if (cfg->header_map && strcmp(cfg->header_map, "refuse") == 0)
        p->hs.header_map = CG_HTTP_HEADER_MAP_REFUSE;
    else if (cfg->header_map && strcmp(cfg->header_map, "dangerous") == 0)
        p->hs.header_map = CG_HTTP_HEADER_MAP_DANGEROUS;
    else
        p->hs.header_map = CG_HTTP_HEADER_MAP_DROP;

    /* The parser compares header names upper-cased, as Gunicorn does. */
    p->fwd = cg_xcalloc(cfg->forwarder_headers.n + 1, sizeof(char *));
    for (size_t i = 0; i < cfg->forwarder_headers.n; i++) {
        if (strcmp(cfg->forwarder_headers.v[i], "*") == 0)
            p->hs.forwarder_headers_all = true;
        p->fwd[i] = cg__upper(cfg->forwarder_headers.v[i]);
    }
    p->hs.forwarder_headers = (const char *const *)p->fwd;
    p->hs.nforwarder_headers = cfg->forwarder_headers.n;

    size_t nss = cfg->secure_scheme_headers.n / 2;
    p->ss_names = cg_xcalloc(nss + 1, sizeof(char *));
    p->ss_values = cg_xcalloc(nss + 1, sizeof(char *));
    for (size_t i = 0; i < nss; i++) {
        p->ss_names[i] = cg__upper(cfg->secure_scheme_headers.v[2 * i]);
        p->ss_values[i] = cg_xstrdup(cfg->secure_scheme_headers.v[2 * i + 1]);
    }
    p->hs.secure_scheme_names = (const char *const *)p->ss_names;
    p->hs.secure_scheme_values = (const char *const *)p->ss_values;
    p->hs.nsecure_scheme = nss;

    if (cg_net_allow_parse((const char *const *)cfg->forwarded_allow_ips.v,
                           cfg->forwarded_allow_ips.n, &p->allow, err, sizeof(err)) < 0) {
        cg_log_error(log, "Invalid forwarded_allow_ips: %s", err);
        return -EINVAL;
    }
    /* as Gunicorn: "uwsgi" selects the uwsgi parser, anything else HTTP */
    p->uwsgi = cfg->protocol != NULL && strcmp(cfg->protocol, "uwsgi") == 0;
    p->uwsgi_allow = (const char *const *)cfg->uwsgi_allow_ips.v;
    p->nuwsgi_allow = cfg->uwsgi_allow_ips.n;
    const char *pp = cfg->proxy_protocol ? cfg->proxy_protocol : "off";
    p->proxy_mode = strcmp(pp, "v1") == 0     ? CG_HTTP_PROXY_V1
                    : strcmp(pp, "v2") == 0   ? CG_HTTP_PROXY_V2
                    : strcmp(pp, "auto") == 0 ? CG_HTTP_PROXY_AUTO
                                              : CG_HTTP_PROXY_OFF;
    if (cg_net_allow_parse((const char *const *)cfg->proxy_allow_ips.v, cfg->proxy_allow_ips.n,
                           &p->proxy_allow, err, sizeof(err)) < 0) {
        cg_log_error(log, "Invalid proxy_allow_ips: %s", err);
        return -EINVAL;
    }
    /* The largest head the limits can let through, and no more. */
    size_t line = p->hs.limit_request_line ? p->hs.limit_request_line : 8190;
    p->buf_max = line + 2 + p->hs.limit_request_fields * (p->hs.limit_request_field_size + 2) + 4 +
                 4096;
    return 0;
}

void cg_conn_policy_free(cg_conn_policy_t *p)
{
    for (size_t i = 0; p->fwd && p->fwd[i]; i++)
        free(p->fwd[i]);
    free(p->fwd);
    for (size_t i = 0; p->ss_names && p->ss_names[i]; i++) {
        free(p->ss_names[i]);
        free(p->ss_values[i]);
    }
    free(p->ss_names);
    free(p->ss_values);
    cg_net_allow_free(p->allow);
    cg_net_allow_free(p->proxy_allow);
    memset(p, 0, sizeof(*p));
}

void cg_conn_refuse(cg_conn_t *c, const cg_conn_policy_t *p, cg_log_t *log,
                    const cg_http_error_t *err)
{
    char text[1024];
    cg_http_error_text(err, text, sizeof(text));
    int status = cg_http_error_status(err->code);
    bool internal = status == 500;
    cg_board_refused(p->board, status);
    if (internal) /* outside Gunicorn's 4xx list: its generic 500 branch */
        cg_log_exception(log, "Error handling request (no URI read)\n%s", text);
    else
        cg_log_warning(log, "Invalid request from ip=%s: %s", c->peer_ip, text);
    char page[2048];
    size_t plen = internal && err->code != CG_HTTP_E_CONFIGURATION_PROBLEM
                      ? cg_http_error_page(500, "Internal Server Error", "", page, sizeof(page))
                      : cg_http_error_response(err, page, sizeof(page));
    /* One write that never waits: the page fits an empty socket buffer, and
     * a peer that pipelines without reading (its window shut) gets no page
     * rather than a worker, or the gthread loop, waiting on it. */
    if (plen > 0 && cg_conn_write_nowait(c, page, plen) != (ssize_t)plen)
        cg_log_debug(log, "Failed to send error message.");
}

void cg_conn_init(cg_conn_t *c, const cg_conn_policy_t *p, size_t buf_initial)
{
    c->fd = -1;
    c->buf.data = NULL;
    cg_conn_wake(c, p, buf_initial);
}

/* limit_request_fields is at most CG_MAX_COUNT: its table's size fits. */
_Static_assert((size_t)CG_MAX_COUNT + 1 <= SIZE_MAX / sizeof(cg_http_header_t),
               "the header table's size of limit_request_fields cannot overflow");

void cg_conn_wake(cg_conn_t *c, const cg_conn_policy_t *p, size_t buf_initial)
{
    if (c->buf.data != NULL)
        return;
    /* The header table is not zeroed: entries are read only below
     * req.nheaders, which the parser fills first; zeroing 4 KiB (the
     * default table) was a tenth of an HTTP/2 stream's cost, one table per
     * stream. */
    cg_conn_adopt(c, p, cg_xmalloc(buf_initial), buf_initial,
                  cg_xmalloc(cg_conn_headers_cap(p) * sizeof(cg_http_header_t)));
}

size_t cg_conn_headers_cap(const cg_conn_policy_t *p)
{
    return p->hs.limit_request_fields + 1;
}

void cg_conn_adopt(cg_conn_t *c, const cg_conn_policy_t *p, char *buf, size_t cap,
                   cg_http_header_t *headers)
{
    c->buf_max = p->buf_max;
    c->buf.cap = cap;
    c->buf.data = buf;
    c->req.headers_cap = cg_conn_headers_cap(p);
    c->req.headers = headers;
}

void cg_conn_idle(cg_conn_t *c)
{
    free(c->buf.data);
    free(c->req.headers);
    free(c->uwsgi_scratch.buf);
    c->buf.data = NULL;
    c->buf.cap = c->buf.len = c->buf.off = c->buf.keep = 0;
    c->req.headers = NULL;
    c->req.headers_cap = 0;
    c->uwsgi_scratch = (cg_uwsgi_scratch_t){NULL, 0};
}

void cg_conn_release(cg_conn_t *c)
{
    cg_conn_idle(c);
}

void cg_conn_accepted(cg_conn_t *c, const cg_conn_policy_t *p, int fd, const cg_listener_t *l,
                      bool nonblocking)
{
    cg_conn_attach_tcp(c, fd, nonblocking);
    cg_board_conn_accepted(p->board);
    c->listener = l;
    c->buf.off = c->buf.len = c->buf.keep = 0;
    cg_net_peer_text((struct sockaddr *)&c->peer, c->peer_ip, sizeof(c->peer_ip), c->peer_port,
                     sizeof(c->peer_port));
    c->trusted = cg_net_allowed(p->allow, (struct sockaddr *)&c->peer);
    cg_http_parser_reset(&c->parser);
    c->has_proxy = false;
    /* Gunicorn's uwsgi requests take no PROXY header */
    c->proxy_checked = p->proxy_mode == CG_HTTP_PROXY_OFF || p->uwsgi;
}

int cg_conn_head_step(cg_conn_t *c, const cg_conn_policy_t *p, cg_log_t *log)
{
    if (!c->proxy_checked) {
        int r = cg_conn_take_proxy(c, p);
        if (r == 0)
            return 0;
        if (r < 0) {
            cg_conn_refuse(c, p, log, &c->req.error);
            return -1;
        }
        c->proxy_checked = true;
    }
    if (c->buf.len == 0)
        return 0;
    ssize_t r;
    if (!p->uwsgi) {
        r = cg_http_parse_request(&p->hs, &c->parser, c->buf.data, c->buf.len, c->trusted,
                                  &c->req);
    } else if (!cg_uwsgi_allowed(c->peer_ip, p->uwsgi_allow, p->nuwsgi_allow)) {
        c->req.error = (cg_http_error_t){.code = CG_HTTP_E_FORBIDDEN_UWSGI_REQUEST,
                                         .arg = {c->peer_ip, strlen(c->peer_ip)}};
        r = -EPROTO;
    } else {
        r = cg_uwsgi_parse(c->buf.data, c->buf.len, &c->uwsgi_scratch, &c->req);
    }
    if (r == CG_EAGAIN)
        return 0;
    if (r < 0) {
        cg_conn_refuse(c, p, log, &c->req.error);
        return -1;
    }
    /* Gunicorn's Request: scheme "https" on a TLS connection unless a
     * trusted secure_scheme_headers header said otherwise. */
    if (c->tls && c->req.scheme_https < 0)
        c->req.scheme_https = 1;
    return 1;
}

void cg_conn_log_read_end(const cg_conn_t *c, cg_log_t *log, ssize_t n)
{
    const char *tls_err = n == -EPROTO && c->ops != NULL && c->ops->error != NULL
                              ? c->ops->error(c)
                              : NULL;
    if (n == CG_CONN_ETLSEOF) {
        cg_log_debug(log, "ssl connection closed");
    } else if (tls_err != NULL) {
        /* Gunicorn's ssl.SSLError branch: handle_error() logs it as an
         * invalid request and tries a 403 page, which cannot go out over a
         * TLS session that failed. */
        cg_log_debug(log, "Error processing SSL request.");
        cg_log_warning(log, "Invalid request from ip=%s: %s", c->peer_ip, tls_err);
        cg_log_debug(log, "Failed to send error message.");
    } else if (n == 0 && c->buf.len == 0)
        cg_log_debug(log, "Closing connection. ");
    else if (n == 0)
        cg_log_debug(log, "Ignored premature client disconnection. No more data after: %.*s",
                     (int)(c->buf.len > 64 ? 64 : c->buf.len), c->buf.data);
    else if (n == -ECONNRESET)
        cg_log_debug(log, "Ignoring connection reset");
    else if (n == -ENOTCONN)
        cg_log_debug(log, "Ignoring socket not connected");
    else if (n == -ETIMEDOUT) /* the sync worker's bound on a silent client */
        cg_log_debug(log, "Closing connection: request head not complete in time");
    else
        cg_log_exception(log, "Socket error processing request. %s", strerror((int)-n));
}

int cg_conn_take_proxy(cg_conn_t *c, const cg_conn_policy_t *p)
{
    bool allowed = cg_net_allowed(p->proxy_allow, (struct sockaddr *)&c->peer);
    ssize_t r = cg_http_parse_proxy(p->proxy_mode, c->buf.data, c->buf.len, allowed, &c->proxy,
                                    &c->req.error);
    if (r == CG_EAGAIN)
        return 0;
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

void cg_conn_begin_body(cg_conn_t *c, const cg_conn_policy_t *p)
{
    cg_http_request_t *req = &c->req;
    if (c->buf.cap - req->head_len < CG_CONN_BODY_ROOM) {
        /* The chunked decoder needs room after the pinned head. Growing may
         * move the buffer, and the parser may have rewritten the head in place
         * (obs-fold), so the views are rebased rather than parsed again. */
        char *old = c->buf.data;
        c->buf.cap = req->head_len + CG_CONN_BODY_ROOM;
        c->buf.data = cg_xrealloc(c->buf.data, c->buf.cap);
        cg_conn_rebase(req, old, c->buf.data, c->buf.len);
    }
    c->buf.off = c->buf.keep = req->head_len;
    cg_http_body_init(&c->body, req, &p->hs, &c->buf, cg_conn_recv, c);
}

static void cg__rebase_str(cg_str_t *v, const char *old, char *new, size_t len)
{
    if (v->ptr != NULL && v->ptr >= old && v->ptr <= old + len)
        v->ptr = new + (v->ptr - old);
}

void cg_conn_rebase(cg_http_request_t *req, const char *old, char *new, size_t len)
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

void cg_conn_next_request(cg_conn_t *c, size_t initial, size_t shrink_above)
{
    cg_http_buf_t *b = &c->buf;
    size_t rest = b->len - b->off;
    memmove(b->data, b->data + b->off, rest);
    b->len = rest;
    b->off = b->keep = 0;
    if (b->cap > shrink_above && rest <= initial) {
        /* a body or a large head grew it: idle connections stay small (the
         * usual head + CG_CONN_BODY_ROOM stays, or it would be regrown by
         * every request) */
        b->data = cg_xrealloc(b->data, initial);
        b->cap = initial;
    }
    cg_http_parser_reset(&c->parser);
}

cg_str_t cg_conn_client_addr(const cg_conn_t *c, int *port)
{
    if (c->has_proxy && c->proxy.client_port >= 0) {
        *port = c->proxy.client_port;
        return (cg_str_t){c->proxy.client_addr, strlen(c->proxy.client_addr)};
    }
    *port = c->peer_port[0] != '\0' ? atoi(c->peer_port) : -1;
    return (cg_str_t){c->peer_ip, strlen(c->peer_ip)};
}

void cg_conn_access_info(cg_access_info_t *info, const cg_conn_t *c, char proto[16],
                         cg_str_t status, int64_t sent, int64_t start_us)
{
    const cg_http_request_t *req = &c->req;
    int port;
    int plen = snprintf(proto, 16, "HTTP/%u.%u", req->version_major, req->version_minor);
    *info = (cg_access_info_t){
        .remote_addr = cg_conn_client_addr(c, &port),
        .method = req->method,
        .raw_uri = req->uri,
        .protocol = {proto, (size_t)plen},
        .path_info = req->path,
        .query = req->query.ptr ? req->query : CG_STR_LIT(""),
        .status = status,
        .sent = sent,
        .request_time_us = (int64_t)cg_monotonic_us() - start_us,
        .log_time = time(NULL),
        .pid = getpid(),
        .req_headers = req->headers,
        .n_req_headers = req->nheaders,
    };
}
