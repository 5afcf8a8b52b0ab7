/*
 * server.c - the metrics endpoint's sockets. One request per connection:
 * read a head, answer it, close. See server.h for the bounds.
 */
#include "server.h"

#include "../net/net.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* a scrape's whole exchange, from accept to the last byte written */
#define CG__METRICS_DEADLINE_MS 10000
/* after the answer: how long the peer may take to close its side */
#define CG__METRICS_LINGER_MS 2000
#define CG__METRICS_HEAD_MAX 4096

typedef struct cg__mconn {
    int fd; /* -1: unused */
    uint64_t deadline_ms;
    size_t inlen;
    char in[CG__METRICS_HEAD_MAX];
    char *out; /* the response, once the head is in */
    size_t outlen, outoff;
    /* Answered and shut for writing: what the peer still sends is read and
     * dropped until it closes, so unread request bytes never turn the close
     * into a reset that could destroy the answer in flight (RFC 9112 §9.6). */
    bool draining;
} cg__mconn_t;

struct cg_metrics_server {
    cg_listener_t *l; /* one */
    size_t nl;
    char display[300];
    cg__mconn_t conns[CG_METRICS_MAX_CONNS];
};

static int cg__nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

int cg_metrics_server_open(cg_metrics_server_t **out, const char *addr, int inherited_fd,
                           int backlog, cg_log_t *log, char *err, size_t errlen)
{
    cg_metrics_server_t *s = cg_xcalloc(1, sizeof(*s));
    int r;
    for (size_t i = 0; i < CG_METRICS_MAX_CONNS; i++)
        s->conns[i].fd = -1;
    if (inherited_fd >= 0) {
        s->l = cg_xcalloc(1, sizeof(*s->l));
        if ((r = cg_net_adopt_fd(inherited_fd, backlog, s->l, err, errlen)) < 0) {
            free(s->l);
            free(s);
            return r;
        }
        s->nl = 1;
    } else {
        cg_net_listen_opts_t opts = {.backlog = backlog, .tries = 1, .retry_delay_ms = 0};
        const char *binds[1] = {addr};
        if ((r = cg_net_listen_all_opts(binds, 1, &opts, log, &s->l, &s->nl)) < 0) {
            snprintf(err, errlen, "cannot listen on metrics_bind %s: %s", addr, strerror(-r));
            free(s);
            return r;
        }
    }
    if ((r = cg__nonblock(s->l->fd)) < 0) {
        snprintf(err, errlen, "metrics_bind: %s", strerror(-r));
        cg_metrics_server_close(s, inherited_fd < 0);
        return r;
    }
    /* a URL for TCP; a unix socket's path says where to connect */
    snprintf(s->display, sizeof(s->display), "%s%s", s->l->display ? s->l->display : "",
             s->l->family == AF_UNIX ? "" : "/metrics");
    *out = s;
    return 0;
}

int cg_metrics_server_fd(const cg_metrics_server_t *s)
{
    return s->l->fd;
}

const char *cg_metrics_server_display(const cg_metrics_server_t *s)
{
    return s->display;
}

size_t cg_metrics_server_pollfds(const cg_metrics_server_t *s, struct pollfd *p, size_t cap)
{
    size_t n = 0;
    if (cap == 0)
        return 0;
    p[n++] = (struct pollfd){.fd = s->l->fd, .events = POLLIN};
    for (size_t i = 0; i < CG_METRICS_MAX_CONNS && n < cap; i++) {
        const cg__mconn_t *c = &s->conns[i];
        if (c->fd >= 0)
            p[n++] = (struct pollfd){.fd = c->fd, .events = c->out && !c->draining ? POLLOUT : POLLIN};
    }
    return n;
}

static void cg__drop(cg__mconn_t *c)
{
    close(c->fd);
    free(c->out);
    c->fd = -1;
    c->out = NULL;
    c->inlen = c->outlen = c->outoff = 0;
    c->draining = false;
}

static void cg__respond(cg__mconn_t *c, const char *status, const char *extra, const char *type,
                        char *body, size_t blen, bool head_only)
{
    char head[512];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                      "Connection: close\r\n\r\n",
                      status, type, blen, extra);
    size_t total = (size_t)hl + (head_only ? 0 : blen);
    c->out = cg_xmalloc(total);
    memcpy(c->out, head, (size_t)hl);
    if (!head_only && blen > 0)
        memcpy(c->out + hl, body, blen);
    c->outlen = total;
    c->outoff = 0;
}

/* The head is in: decide the answer. */
static void cg__answer(cg__mconn_t *c, cg_metrics_render_cb render, void *ctx)
{
    static const char text[] = "text/plain; charset=utf-8";
    /* request-line = method SP request-target SP HTTP-version (RFC 9112 §3) */
    char *line_end = memchr(c->in, '\n', c->inlen);
    char *sp1 = line_end ? memchr(c->in, ' ', (size_t)(line_end - c->in)) : NULL;
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
    if (sp2 == NULL || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
        char body[] = "Bad Request\n";
        cg__respond(c, "400 Bad Request", "", text, body, sizeof(body) - 1, false);
        return;
    }
    size_t mlen = (size_t)(sp1 - c->in), tlen = (size_t)(sp2 - sp1 - 1);
    bool get = mlen == 3 && memcmp(c->in, "GET", 3) == 0;
    bool head = mlen == 4 && memcmp(c->in, "HEAD", 4) == 0;
    if (!get && !head) {
        char body[] = "Method Not Allowed\n";
        cg__respond(c, "405 Method Not Allowed", "Allow: GET, HEAD\r\n", text, body,
                    sizeof(body) - 1, false);
        return;
    }
    const char *target = sp1 + 1;
    size_t plen = tlen;
    const char *q = memchr(target, '?', tlen);
    if (q != NULL)
        plen = (size_t)(q - target);
    if (!(plen == 8 && memcmp(target, "/metrics", 8) == 0)) {
        char body[] = "Not Found: the metrics are at /metrics\n";
        cg__respond(c, "404 Not Found", "", text, body, sizeof(body) - 1, head);
        return;
    }
    size_t blen = 0;
    char *page = render(ctx, &blen);
    if (page == NULL) {
        char body[] = "Internal Server Error\n";
        cg__respond(c, "500 Internal Server Error", "", text, body, sizeof(body) - 1, head);
        return;
    }
    cg__respond(c, "200 OK", "", "text/plain; version=0.0.4; charset=utf-8", page, blen, head);
    free(page);
}

static void cg__accept(cg_metrics_server_t *s, uint64_t now_ms)
{
    for (;;) {
        int fd = accept4(s->l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return; /* EAGAIN, or a failure the next poll retries */
        cg__mconn_t *c = NULL;
        for (size_t i = 0; i < CG_METRICS_MAX_CONNS && c == NULL; i++)
            if (s->conns[i].fd < 0)
                c = &s->conns[i];
        if (c == NULL) {
            close(fd); /* as many scrapes as we serve at once already */
            continue;
        }
        c->fd = fd;
        c->deadline_ms = now_ms + CG__METRICS_DEADLINE_MS;
    }
}

/* Read more of the head; returns false when the connection was dropped. */
static bool cg__read(cg__mconn_t *c, cg_metrics_render_cb render, void *ctx)
{
    for (;;) {
        ssize_t n = read(c->fd, c->in + c->inlen, sizeof(c->in) - 1 - c->inlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0) {
            cg__drop(c);
            return false;
        }
        c->inlen += (size_t)n;
        c->in[c->inlen] = '\0';
        if (strstr(c->in, "\r\n\r\n") != NULL || strstr(c->in, "\n\n") != NULL) {
            cg__answer(c, render, ctx);
            return true;
        }
        if (c->inlen == sizeof(c->in) - 1) {
            char body[] = "Request Header Fields Too Large\n";
            cg__respond(c, "431 Request Header Fields Too Large", "", "text/plain; charset=utf-8",
                        body, sizeof(body) - 1, false);
            return true;
        }
    }
}

static void cg__write(cg__mconn_t *c, uint64_t now_ms)
{
    while (c->outoff < c->outlen) {
        ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            cg__drop(c); /* the peer went away */
            return;
        }
        c->outoff += (size_t)n;
    }
    if (shutdown(c->fd, SHUT_WR) < 0) {
        cg__drop(c);
        return;
    }
    c->draining = true;
    if (c->deadline_ms > now_ms + CG__METRICS_LINGER_MS)
        c->deadline_ms = now_ms + CG__METRICS_LINGER_MS;
}

/* Read and drop until the peer closes (or fails). */
static void cg__drain(cg__mconn_t *c)
{
    char sink[4096];
    for (;;) {
        ssize_t n = read(c->fd, sink, sizeof(sink));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            cg__drop(c);
            return;
        }
    }
}

void cg_metrics_server_serve(cg_metrics_server_t *s, const struct pollfd *p, size_t n,
                             uint64_t now_ms, cg_metrics_render_cb render, void *ctx)
{
    for (size_t k = 1; k < n; k++) {
        if (p[k].revents == 0)
            continue;
        cg__mconn_t *c = NULL;
        for (size_t i = 0; i < CG_METRICS_MAX_CONNS && c == NULL; i++)
            if (s->conns[i].fd == p[k].fd)
                c = &s->conns[i];
        if (c == NULL)
            continue;
        if (c->draining) {
            cg__drain(c);
            continue;
        }
        if (c->out == NULL && !cg__read(c, render, ctx))
            continue;
        if (c->out != NULL)
            cg__write(c, now_ms); /* try at once: the answer usually fits the socket */
    }
    if (n > 0 && (p[0].revents & POLLIN))
        cg__accept(s, now_ms);
    for (size_t i = 0; i < CG_METRICS_MAX_CONNS; i++)
        if (s->conns[i].fd >= 0 && now_ms >= s->conns[i].deadline_ms)
            cg__drop(&s->conns[i]);
}

void cg_metrics_server_close(cg_metrics_server_t *s, bool unlink_unix)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < CG_METRICS_MAX_CONNS; i++)
        if (s->conns[i].fd >= 0)
            cg__drop(&s->conns[i]);
    cg_net_close_all(s->l, s->nl, unlink_unix);
    free(s);
}
