/*
 * listen.c - create the master's listening sockets the way Gunicorn's
 * sock.create_sockets does: same options, same retry loop and messages, same
 * "only the inherited fds when any are given" rule.
 */
#include "net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Why one bind attempt failed, worded as Python's str(OSError) would. */
typedef struct cg__net_fail {
    int err;        /* positive errno, 0 when the failure has no errno */
    char text[256]; /* "[Errno 98] Address already in use" */
} cg__net_fail_t;

static int cg__net_fail_errno(cg__net_fail_t *f, int e)
{
    f->err = e;
    snprintf(f->text, sizeof(f->text), "[Errno %d] %s", e, strerror(e));
    return -e;
}

static void cg__net_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int cg__net_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static int cg__net_set_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

/* SO_REUSEADDR always; SO_REUSEPORT on request, where the kernel refusing the
 * option is not an error (Gunicorn ignores ENOPROTOOPT/EINVAL). */
static int cg__net_sockopts(int fd, int family, bool reuse_port)
{
    int one = 1;
    if (family != AF_UNIX && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        return -errno;
    if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 &&
        errno != ENOPROTOOPT && errno != EINVAL)
        return -errno;
    return 0;
}

int cg_net_defer_accept(const cg_listener_t *l, int seconds)
{
#ifdef TCP_DEFER_ACCEPT
    if (l->family == AF_UNIX)
        return 0;
    if (setsockopt(l->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &seconds, sizeof(seconds)) < 0)
        return -errno;
#else
    (void)l;
    (void)seconds;
#endif
    return 0;
}

/* Fill display, server_name and server_port from the bound address. */
static void cg__net_describe(cg_listener_t *l, const char *unix_display)
{
    char ip[INET6_ADDRSTRLEN], buf[sizeof(l->addr) + 16];
    l->server_name[0] = l->server_port[0] = '\0';
    if (l->family == AF_UNIX) {
        snprintf(buf, sizeof(buf), "unix:%s", unix_display);
    } else {
        char port[8];
        cg_net_peer_text((const struct sockaddr *)&l->addr, ip, sizeof(ip), port, sizeof(port));
        snprintf(buf, sizeof(buf), l->family == AF_INET6 ? "http://[%s]:%s" : "http://%s:%s", ip,
                 port);
        snprintf(l->server_name, sizeof(l->server_name), "%s", ip);
        snprintf(l->server_port, sizeof(l->server_port), "%s", port);
    }
    l->display = cg_xstrdup(buf);
}

static int cg__net_finish(cg_listener_t *l, int backlog, bool reuse_port, bool bound)
{
    int r;
    if (bound && (r = cg__net_sockopts(l->fd, l->family, reuse_port)) < 0)
        return r;
    if ((r = cg__net_set_nonblock(l->fd)) < 0 || (r = cg__net_set_cloexec(l->fd)) < 0)
        return r;
    /* An adopted socket (systemd socket activation, USR2) may listen
     * already: calling listen() on it again can be denied (SELinux), so it
     * keeps the backlog it was given, as in Gunicorn 27. */
    int listening = 0;
#ifdef SO_ACCEPTCONN
    socklen_t vl = sizeof(listening);
    if (bound && getsockopt(l->fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &vl) < 0)
        listening = 0;
#endif
    if (!listening && listen(l->fd, backlog) < 0)
        return -errno;
    l->addrlen = sizeof(l->addr);
    if (getsockname(l->fd, (struct sockaddr *)&l->addr, &l->addrlen) < 0)
        return -errno;
    return 0;
}

/* Resolve a TCP host the way Python's socket.bind() does for the family. */
static int cg__net_resolve(const cg_net_addr_t *a, int family, struct sockaddr_storage *ss,
                           socklen_t *sslen, cg__net_fail_t *f)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)a->port);
        inet_pton(AF_INET6, a->host, &s6->sin6_addr); /* checked by the caller */
        *sslen = sizeof(*s6);
        return 0;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)a->port);
    *sslen = sizeof(*s4);
    if (a->host[0] == '\0') {
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
        return 0;
    }
    if (strcmp(a->host, "<broadcast>") == 0) {
        s4->sin_addr.s_addr = htonl(INADDR_BROADCAST);
        return 0;
    }
    if (inet_pton(AF_INET, a->host, &s4->sin_addr) == 1)
        return 0;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(a->host, NULL, &hints, &res);
    if (g != 0) {
        f->err = 0;
        if (g == EAI_SYSTEM)
            return cg__net_fail_errno(f, errno);
        snprintf(f->text, sizeof(f->text), "[Errno %d] %s", g, gai_strerror(g));
        return -EINVAL;
    }
    s4->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return 0;
}

/*
 * One attempt at one configured address. Returns 0, or -errno with f filled
 * (retryable), or -ENOTSOCK when a unix path names something that is not a
 * socket (Gunicorn's ValueError: not retried).
 */
static int cg__net_bind_one(const cg_net_addr_t *a, int backlog, bool reuse_port,
                            cg_listener_t *l, cg__net_fail_t *f)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    int r;

    memset(l, 0, sizeof(*l));
    l->fd = -1;
    if (a->kind == CG_NET_UNIX) {
        struct stat st;
        if (lstat(a->path, &st) == 0) {
            if (!S_ISSOCK(st.st_mode))
                return -ENOTSOCK;
            if (unlink(a->path) < 0)
                return cg__net_fail_errno(f, errno);
        } else if (errno != ENOENT) {
            return cg__net_fail_errno(f, errno);
        }
        struct sockaddr_un *su = (struct sockaddr_un *)&ss;
        memset(su, 0, sizeof(*su));
        su->sun_family = AF_UNIX;
        memcpy(su->sun_path, a->path, strlen(a->path) + 1);
        sslen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(a->path) + 1);
        l->family = AF_UNIX;
    } else {
        if (a->port < 0 || a->port > 65535) {
            f->err = 0;
            snprintf(f->text, sizeof(f->text), "bind(): port must be 0-65535.");
            return -EINVAL;
        }
        struct in6_addr probe;
        l->family = inet_pton(AF_INET6, a->host, &probe) == 1 ? AF_INET6 : AF_INET;
        if ((r = cg__net_resolve(a, l->family, &ss, &sslen, f)) < 0)
            return r;
    }

    l->fd = socket(l->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l->fd < 0)
        return cg__net_fail_errno(f, errno);
    if ((r = cg__net_sockopts(l->fd, l->family, reuse_port)) < 0)
        goto fail;
    if (bind(l->fd, (struct sockaddr *)&ss, sslen) < 0) {
        r = -errno;
        goto fail;
    }
    if (l->family == AF_UNIX)
        l->unix_path = cg_xstrdup(a->path);
    if ((r = cg__net_finish(l, backlog, reuse_port, false)) < 0)
        goto fail;
    cg__net_describe(l, a->path);
    return 0;

fail:
    cg__net_fail_errno(f, -r);
    close(l->fd);
    l->fd = -1;
    if (l->unix_path) {
        unlink(l->unix_path);
        free(l->unix_path);
        l->unix_path = NULL;
    }
    return r;
}

static int cg__net_adopt(int fd, int backlog, bool reuse_port, cg_listener_t *out, char *err,
                         size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->fd = fd;
    out->addrlen = sizeof(out->addr);
    if (getsockname(fd, (struct sockaddr *)&out->addr, &out->addrlen) < 0) {
        int e = errno;
        snprintf(err, errlen, "[Errno %d] %s", e, strerror(e));
        out->fd = -1;
        return -e;
    }
    out->family = out->addr.ss_family;
    if (out->family != AF_INET && out->family != AF_INET6 && out->family != AF_UNIX) {
        snprintf(err, errlen, "Unable to create socket from fd %d (family %d)", fd, out->family);
        out->fd = -1;
        return -EAFNOSUPPORT;
    }
    int r = cg__net_finish(out, backlog, reuse_port, true);
    if (r < 0) {
        snprintf(err, errlen, "[Errno %d] %s", -r, strerror(-r));
        out->fd = -1;
        return r;
    }
    const char *path = "";
    if (out->family == AF_UNIX) {
        const struct sockaddr_un *su = (const struct sockaddr_un *)&out->addr;
        if (out->addrlen > offsetof(struct sockaddr_un, sun_path))
            path = su->sun_path;
    }
    cg__net_describe(out, path);
    return 0;
}

int cg_net_adopt_fd(int fd, int backlog, cg_listener_t *out, char *err, size_t errlen)
{
    return cg__net_adopt(fd, backlog, false, out, err, errlen);
}

int cg_net_listen_all(const char *const *binds, size_t n, int backlog, bool reuse_port,
                      cg_log_t *log, cg_listener_t **out, size_t *nout)
{
    cg_net_listen_opts_t o = {
        .backlog = backlog, .reuse_port = reuse_port, .tries = 5, .retry_delay_ms = 1000};
    return cg_net_listen_all_opts(binds, n, &o, log, out, nout);
}

int cg_net_listen_all_opts(const char *const *binds, size_t n, const cg_net_listen_opts_t *opts,
                           cg_log_t *log, cg_listener_t **out, size_t *nout)
{
    cg_net_addr_t *addrs = cg_xcalloc(n ? n : 1, sizeof(*addrs));
    cg_listener_t *ls = cg_xcalloc(n ? n : 1, sizeof(*ls));
    size_t nls = 0, nfd = 0;
    char err[512], text[600];
    int r = 0;

    *out = NULL;
    *nout = 0;
    for (size_t i = 0; i < n; i++) {
        if ((r = cg_net_parse_address(binds[i], &addrs[i], err, sizeof(err))) < 0) {
            cg_log_error(log, "%s", err);
            goto fail;
        }
        nfd += addrs[i].kind == CG_NET_FD;
    }

    /* As Gunicorn: when any fd:// is configured, only those are used. */
    for (size_t i = 0; i < n && nfd; i++) {
        if (addrs[i].kind != CG_NET_FD)
            continue;
        if ((r = cg__net_adopt(addrs[i].fd, opts->backlog, opts->reuse_port, &ls[nls], err,
                               sizeof(err))) < 0) {
            cg_log_error(log, "%s", err);
            goto fail;
        }
        /* an fd:// unix socket from the bind list is unlinked on exit, as
         * Gunicorn's close_sockets does for every unix listener */
        if (ls[nls].family == AF_UNIX && ls[nls].display[5])
            ls[nls].unix_path = cg_xstrdup(ls[nls].display + 5);
        nls++;
    }

    for (size_t i = 0; i < n && !nfd; i++) {
        cg_net_addr_text(&addrs[i], text, sizeof(text));
        bool ok = false;
        for (int t = 0; t < opts->tries && !ok; t++) {
            cg__net_fail_t f = {0, ""};
            r = cg__net_bind_one(&addrs[i], opts->backlog, opts->reuse_port, &ls[nls], &f);
            if (r == 0) {
                ok = true;
                break;
            }
            if (r == -ENOTSOCK && f.text[0] == '\0') {
                /* Python: ValueError("%r is not a socket"), fatal at once */
                cg_log_error(log, "'%s' is not a socket", addrs[i].path);
                goto fail;
            }
            if (f.err == EADDRINUSE)
                cg_log_error(log, "Connection in use: %s", text);
            if (f.err == EADDRNOTAVAIL)
                cg_log_error(log, "Invalid address: %s", text);
            cg_log_error(log, "connection to %s failed: %s", text, f.text);
            cg_log_debug(log, "Retrying in 1 second.");
            cg__net_sleep_ms(opts->retry_delay_ms);
        }
        if (!ok) {
            cg_log_error(log, "Can't connect to %s", text);
            if (r >= 0)
                r = -EADDRINUSE;
            goto fail;
        }
        nls++;
    }

    free(addrs);
    *out = ls;
    *nout = nls;
    return 0;

fail:
    free(addrs);
    cg_net_close_all(ls, nls, true);
    return r < 0 ? r : -EINVAL;
}

char *cg_net_listeners_display(const cg_listener_t *l, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(l[i].display) + 1;
    char *s = cg_xmalloc(len), *p = s;
    *p = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        size_t k = strlen(l[i].display);
        memcpy(p, l[i].display, k + 1);
        p += k;
    }
    return s;
}

void cg_net_listeners_set_https(cg_listener_t *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strncmp(l[i].display, "http://", 7) != 0)
            continue;
        size_t len = strlen(l[i].display) + 2;
        char *d = cg_xmalloc(len);
        snprintf(d, len, "https://%s", l[i].display + 7);
        free(l[i].display);
        l[i].display = d;
    }
}

void cg_net_close_all(cg_listener_t *l, size_t n, bool unlink_unix)
{
    if (!l)
        return;
    for (size_t i = 0; i < n; i++) {
        if (l[i].fd >= 0)
            close(l[i].fd);
        if (unlink_unix && l[i].unix_path)
            unlink(l[i].unix_path);
        free(l[i].unix_path);
        free(l[i].display);
    }
    free(l);
}

int cg_net_backlog(const cg_listener_t *l, uint32_t *queued, uint32_t *limit)
{
    if (l->family != AF_INET && l->family != AF_INET6)
        return -EOPNOTSUPP;
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(l->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return -errno;
    *queued = ti.tcpi_unacked;
    *limit = ti.tcpi_sacked;
    return 0;
}
