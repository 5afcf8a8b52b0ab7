/* sink_conn.h - a fake transport for an HTTP/2 server session under test
 * (tests/unit/h2/test_session.c, tests/fuzz/fuzz_h2.c): nothing to read (the
 * test feeds the session itself), and what the session writes is kept in a
 * sink_t (the transport) or, without one, dropped. Header-only: each test
 * program includes it once. */
#ifndef CG_TEST_SINK_CONN_H
#define CG_TEST_SINK_CONN_H

#include <stdlib.h>
#include <string.h>

#include "src/workers/conn.h"

typedef struct sink {
    uint8_t *out;
    size_t out_len, out_cap;
} sink_t;

static ssize_t sink_recv(cg_conn_t *c, char *dst, size_t cap)
{
    return CG_EAGAIN;
}

static ssize_t sink_writev(cg_conn_t *c, const struct iovec *iov, int iovcnt)
{
    sink_t *f = c->transport;
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (f != NULL) {
            if (f->out_len + iov[i].iov_len > f->out_cap) {
                f->out_cap = (f->out_len + iov[i].iov_len) * 2;
                f->out = realloc(f->out, f->out_cap);
                if (f->out == NULL)
                    abort();
            }
            memcpy(f->out + f->out_len, iov[i].iov_base, iov[i].iov_len);
            f->out_len += iov[i].iov_len;
        }
        n += iov[i].iov_len;
    }
    return (ssize_t)n;
}

static ssize_t sink_sendfile(cg_conn_t *c, int in_fd, off_t *offset, size_t count)
{
    return -ENOSYS;
}

static int sink_wait(cg_conn_t *c, int want, int timeout_ms)
{
    return 0;
}

static int sink_shutdown(cg_conn_t *c)
{
    return 0;
}

static void sink_close(cg_conn_t *c)
{
    c->fd = -1;
}

static const cg_conn_ops_t sink_ops = {.name = "sink",
                                       .recv = sink_recv,
                                       .writev = sink_writev,
                                       .sendfile = sink_sendfile,
                                       .wait = sink_wait,
                                       .shutdown = sink_shutdown,
                                       .close = sink_close};

#endif
