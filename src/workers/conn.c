/* conn.c - socket I/O of a request being served: blocking (sync worker) or
 * non-blocking with a poll(2) wait (gthread worker). */
#include "conn.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t cg__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The socket said EAGAIN: wait until it is ready for `events` or the
 * connection's deadline passes. Returns 0 or -ETIMEDOUT / -errno. */
static int cg__wait(cg_conn_t *c, short events)
{
    for (;;) {
        int timeout = -1;
        if (c->deadline_ms != 0) {
            uint64_t now = cg__now_ms();
            if (now >= c->deadline_ms)
                return -ETIMEDOUT;
            timeout = (int)(c->deadline_ms - now);
        }
        struct pollfd pfd = {.fd = c->fd, .events = events};
        int r = poll(&pfd, 1, timeout);
        if (r > 0)
            return 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

ssize_t cg_conn_recv(void *conn, char *dst, size_t cap)
{
    cg_conn_t *c = conn;
    for (;;) {
        ssize_t n = recv(c->fd, dst, cap, 0);
        if (n >= 0)
            return n;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = cg__wait(c, POLLIN);
            if (w < 0)
                return w;
            continue;
        }
        if (errno != EINTR)
            return -errno;
    }
}

int cg_conn_writev_all(cg_conn_t *c, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        ssize_t n;
        /* MSG_NOSIGNAL: a peer that went away is an error code, not SIGPIPE.
         * One buffer goes by send(2), which spares the kernel copying in a
         * msghdr and an iovec. */
        if (iovcnt == 1) {
            n = send(c->fd, iov->iov_base, iov->iov_len, MSG_NOSIGNAL);
        } else {
            struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
            n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                int w = cg__wait(c, POLLOUT);
                if (w < 0)
                    return w;
                continue;
            }
            return -errno;
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

int cg_conn_sendfile(cg_conn_t *c, int in_fd, off_t offset, size_t count)
{
    while (count > 0) {
        ssize_t n = sendfile(c->fd, in_fd, &offset, count);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                int w = cg__wait(c, POLLOUT);
                if (w < 0)
                    return w;
                continue;
            }
            return -errno;
        }
        if (n == 0)
            return -EIO; /* the file is shorter than announced */
        count -= (size_t)n;
    }
    return 0;
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
        ssize_t n = recv(c->fd, b->data + b->len, b->cap - b->len, MSG_DONTWAIT);
        if (n > 0)
            b->len += (size_t)n;
        if (n >= 0)
            return n;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return CG_EAGAIN;
        if (errno != EINTR)
            return -errno;
    }
}

void cg_conn_close_graceful(cg_conn_t *c, bool request_done)
{
    if (c->fd < 0)
        return;
    /* Lingering only matters when the client may still be sending: with the
     * request fully read and no byte of a next request seen, close() sends a
     * plain FIN (nginx's lingering_close heuristic, which costs no syscall). */
    if (request_done) {
        close(c->fd);
        c->fd = -1;
        return;
    }
    if (shutdown(c->fd, SHUT_WR) == 0) {
        uint64_t deadline_ms = 2000;
        size_t drained = 0;
        char sink[4096];
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (drained < 65536) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            int64_t spent = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
            if (spent >= (int64_t)deadline_ms)
                break;
            struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
            int r = poll(&pfd, 1, (int)(deadline_ms - (uint64_t)spent));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            ssize_t n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
            if (n <= 0)
                break;
            drained += (size_t)n;
        }
    }
    close(c->fd);
    c->fd = -1;
}
