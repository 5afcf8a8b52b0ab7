/*
 * conn.c - I/O of one client connection, on top of its transport (the ops
 * table: plain TCP here, a fake one in the unit tests, TLS later).
 *
 * Transports never wait. Waiting for the peer happens here, in one place,
 * bounded two ways: io_timeout_ms per wait, which starts again after every
 * byte of progress (nginx's client_body_timeout / send_timeout), and an
 * optional absolute deadline_ms. So a client that stops reading or sending
 * half-way costs at most one timeout, never a thread or a worker for good.
 */
#include "conn.h"
#include "spool.h"
#include "worker.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- plain TCP (and unix sockets) ---- */

static ssize_t cg__tcp_recv(cg_conn_t *c, char *dst, size_t cap)
{
    ssize_t n = recv(c->fd, dst, cap, MSG_DONTWAIT);
    if (n >= 0)
        return n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? CG_EAGAIN : -errno;
}

static ssize_t cg__tcp_writev(cg_conn_t *c, const struct iovec *iov, int iovcnt)
{
    /* MSG_NOSIGNAL: a peer that went away is an error code, not SIGPIPE.
     * One buffer goes by send(2), which spares the kernel copying in a
     * msghdr and an iovec. */
    ssize_t n;
    if (iovcnt == 1) {
        n = send(c->fd, iov->iov_base, iov->iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    } else {
        struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
        n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    if (n >= 0)
        return n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? CG_EAGAIN : -errno;
}

static ssize_t cg__tcp_sendfile(cg_conn_t *c, int in_fd, off_t *offset, size_t count)
{
    if (!c->nonblocking && !c->sndtimeo_set) {
        /* sendfile(2) has no MSG_DONTWAIT: on a blocking socket the kernel's
         * send timeout bounds each call instead (a partial count, or EAGAIN
         * when no byte left in that time). Set once, on first use. */
        int ms = c->io_timeout_ms > 0 ? c->io_timeout_ms : 0;
        struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
        if (setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
            return -errno;
        c->sndtimeo_set = true;
    }
    ssize_t n = sendfile(c->fd, in_fd, offset, count);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return c->nonblocking ? CG_EAGAIN : -ETIMEDOUT;
    return -errno;
}

int cg_conn_poll_fd(int fd, int want, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = want == CG_CONN_WANT_READ ? POLLIN : POLLOUT};
    int r = poll(&pfd, 1, timeout_ms);
    if (r > 0)
        return 0;
    if (r == 0)
        return -ETIMEDOUT;
    return -errno;
}

static int cg__tcp_wait(cg_conn_t *c, int want, int timeout_ms)
{
    return cg_conn_poll_fd(c->fd, want, timeout_ms);
}

static int cg__tcp_shutdown(cg_conn_t *c)
{
    return shutdown(c->fd, SHUT_WR) == 0 ? 0 : -errno;
}

static void cg__tcp_close(cg_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

const cg_conn_ops_t cg_conn_tcp = {
    .name = "tcp",
    .recv = cg__tcp_recv,
    .writev = cg__tcp_writev,
    .sendfile = cg__tcp_sendfile,
    .wait = cg__tcp_wait,
    .shutdown = cg__tcp_shutdown,
    .close = cg__tcp_close,
};

void cg_conn_attach_tcp(cg_conn_t *c, int fd, bool nonblocking)
{
    c->ops = &cg_conn_tcp;
    c->transport = NULL;
    c->fd = fd;
    c->nonblocking = nonblocking;
    c->sndtimeo_set = false;
    c->tls = false;
    c->deadline_ms = 0;
}

ssize_t cg_conn_body_read(cg_conn_t *c, char *dst, size_t cap)
{
    if (c->body_spool != NULL && cg_spool_pending(c->body_spool) > 0)
        return cg_spool_read(c->body_spool, dst, cap);
    return cg_http_body_read(&c->body, dst, cap);
}

bool cg_conn_body_done(const cg_conn_t *c)
{
    return c->body.done && (c->body_spool == NULL || cg_spool_pending(c->body_spool) == 0);
}

/* ---- waiting, bounded ---- */

/* The transport said CG_EAGAIN: wait for `want` at most io_timeout_ms and
 * not past deadline_ms. Returns 0 or -ETIMEDOUT / -EINTR (quick stop) /
 * -errno. */
static int cg__wait(cg_conn_t *c, int want)
{
    bool bounded = c->io_timeout_ms > 0 || c->deadline_ms != 0;
    uint64_t start = bounded ? cg_monotonic_ms() : 0, now = start;
    for (;;) {
        int64_t left = INT32_MAX;
        if (c->io_timeout_ms > 0)
            left = (int64_t)c->io_timeout_ms - (int64_t)(now - start);
        if (c->deadline_ms != 0 && (int64_t)c->deadline_ms - (int64_t)now < left)
            left = (int64_t)c->deadline_ms - (int64_t)now;
        if (bounded && left <= 0)
            return -ETIMEDOUT;
        int r = c->ops->wait(c, want, bounded ? (int)left : -1);
        if (r != -EINTR)
            return r;
        if (c->quit != NULL && *c->quit)
            return -EINTR;
        if (bounded)
            now = cg_monotonic_ms();
    }
}

/* EINTR from a transport op: retry unless the worker is told to quit now. */
static bool cg__retry_eintr(const cg_conn_t *c)
{
    return c->quit == NULL || !*c->quit;
}

int cg_conn_handshake(cg_conn_t *c)
{
    if (c->ops->handshake == NULL)
        return 0;
    for (;;) {
        int r = c->ops->handshake(c);
        if (r == CG_CONN_WANT_READ || r == CG_CONN_WANT_WRITE) {
            int w = cg__wait(c, r);
            if (w < 0)
                return w;
            continue;
        }
        if (r == -EINTR && cg__retry_eintr(c))
            continue;
        return r;
    }
}

ssize_t cg_conn_recv(void *conn, char *dst, size_t cap)
{
    cg_conn_t *c = conn;
    for (;;) {
        ssize_t n = c->ops->recv(c, dst, cap);
        if (n >= 0)
            return n;
        if (n == CG_EAGAIN) {
            int w = cg__wait(c, CG_CONN_WANT_READ);
            if (w < 0)
                return w;
            continue;
        }
        if (n != -EINTR || !cg__retry_eintr(c))
            return n;
    }
}

int cg_conn_writev_all(cg_conn_t *c, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        ssize_t n = c->ops->writev(c, iov, iovcnt);
        if (n < 0) {
            if (n == CG_EAGAIN) {
                int w = cg__wait(c, CG_CONN_WANT_WRITE);
                if (w < 0)
                    return w;
                continue;
            }
            if (n == -EINTR && cg__retry_eintr(c))
                continue;
            return (int)n;
        }
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

int cg_conn_write_all(cg_conn_t *c, const void *data, size_t len)
{
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    return cg_conn_writev_all(c, &iov, 1);
}

ssize_t cg_conn_write_nowait(cg_conn_t *c, const void *data, size_t len)
{
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    for (;;) {
        ssize_t n = c->ops->writev(c, &iov, 1);
        if (n != -EINTR)
            return n;
    }
}

int cg_conn_sendfile(cg_conn_t *c, int in_fd, off_t offset, size_t count)
{
    while (count > 0) {
        ssize_t n = c->ops->sendfile(c, in_fd, &offset, count);
        if (n < 0) {
            if (n == CG_EAGAIN) {
                int w = cg__wait(c, CG_CONN_WANT_WRITE);
                if (w < 0)
                    return w;
                continue;
            }
            if (n == -EINTR && cg__retry_eintr(c))
                continue;
            return (int)n;
        }
        if (n == 0)
            return -EIO; /* the file is shorter than announced */
        count -= (size_t)n;
    }
    return 0;
}

bool cg_conn_skip_body(cg_conn_t *c, size_t max, int ms)
{
    char sink[8192];
    size_t drained = 0;
    c->deadline_ms = cg_monotonic_ms() + (uint64_t)ms;
    while (!cg_conn_body_done(c) && drained <= max) {
        ssize_t n = cg_conn_body_read(c, sink, sizeof(sink));
        if (n <= 0)
            break;
        drained += (size_t)n;
    }
    c->deadline_ms = 0;
    return cg_conn_body_done(c) && !c->body.truncated;
}

/* Make room at the buffer's end: compact, else grow up to buf_max. */
static int cg__room(cg_conn_t *c)
{
    cg_http_buf_t *b = &c->buf;
    if (b->len == b->cap) {
        if (b->off > 0) {
            memmove(b->data, b->data + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        } else {
            if (b->cap >= c->buf_max)
                return -ENOBUFS;
            size_t ncap = b->cap * 2 > c->buf_max ? c->buf_max : b->cap * 2;
            b->data = cg_xrealloc(b->data, ncap);
            b->cap = ncap;
        }
    }
    return 0;
}

ssize_t cg_conn_fill(cg_conn_t *c)
{
    cg_http_buf_t *b = &c->buf;
    if (cg__room(c) < 0)
        return -ENOBUFS;
    ssize_t n = cg_conn_recv(c, b->data + b->len, b->cap - b->len);
    if (n > 0)
        b->len += (size_t)n;
    return n;
}

ssize_t cg_conn_fill_nowait(cg_conn_t *c)
{
    cg_http_buf_t *b = &c->buf;
    if (cg__room(c) < 0)
        return -ENOBUFS;
    for (;;) {
        ssize_t n = c->ops->recv(c, b->data + b->len, b->cap - b->len);
        if (n > 0)
            b->len += (size_t)n;
        if (n != -EINTR)
            return n;
    }
}

void cg_conn_close_graceful(cg_conn_t *c, bool request_done)
{
    if (c->ops == NULL)
        return;
    /* Lingering only matters when the client may still be sending: with the
     * request fully read and no byte of a next request seen, close() sends a
     * plain FIN (nginx's lingering_close heuristic, which costs no syscall). */
    if (!request_done && c->ops->shutdown(c) == 0) {
        uint64_t end = cg_monotonic_ms() + CG_CONN_LINGER_MS;
        size_t drained = 0;
        char sink[4096];
        while (drained < CG_CONN_LINGER_MAX) {
            ssize_t n = c->ops->recv(c, sink, sizeof(sink));
            if (n == CG_EAGAIN) {
                uint64_t now = cg_monotonic_ms();
                if (now >= end)
                    break;
                int w = c->ops->wait(c, CG_CONN_WANT_READ, (int)(end - now));
                if (w < 0 && !(w == -EINTR && cg__retry_eintr(c)))
                    break;
                continue;
            }
            if (n == -EINTR && cg__retry_eintr(c))
                continue;
            if (n <= 0)
                break;
            drained += (size_t)n;
        }
    }
    c->ops->close(c);
}
