/* spool.c - see spool.h. */
#include "spool.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Memory segments are allocated in blocks of this size (or the write's). */
#define CG_SPOOL_BLOCK 16384

void cg_spool_init(cg_spool_t *s, size_t mem_max, uint64_t file_max, const char *tmp_dir)
{
    memset(s, 0, sizeof(*s));
    s->mem_max = mem_max;
    s->file_max = file_max;
    s->tmp_fd = -1;
    s->tmp_dir = tmp_dir;
}

static void cg__seg_free(cg_spool_seg_t *g)
{
    free(g->mem);
    if (g->own_fd)
        close(g->fd);
}

void cg_spool_clear(cg_spool_t *s)
{
    for (size_t i = s->head; i < s->nseg; i++)
        cg__seg_free(&s->seg[i]);
    free(s->seg);
    if (s->tmp_fd >= 0)
        close(s->tmp_fd);
    const cg_conn_ops_t *inner = s->inner;
    void *inner_transport = s->inner_transport;
    cg_spool_init(s, s->mem_max, s->file_max, s->tmp_dir);
    s->inner = inner;
    s->inner_transport = inner_transport;
}

static cg_spool_seg_t *cg__push(cg_spool_t *s)
{
    if (s->head > 0 && s->head == s->nseg)
        s->head = s->nseg = 0;
    if (s->nseg == s->cap) {
        if (s->head > 0) { /* reuse the taken front */
            memmove(s->seg, s->seg + s->head, (s->nseg - s->head) * sizeof(*s->seg));
            s->nseg -= s->head;
            s->head = 0;
        } else {
            s->cap = s->cap ? s->cap * 2 : 8;
            s->seg = cg_xrealloc(s->seg, s->cap * sizeof(*s->seg));
        }
    }
    cg_spool_seg_t *g = &s->seg[s->nseg++];
    memset(g, 0, sizeof(*g));
    g->fd = -1;
    return g;
}

static cg_spool_seg_t *cg__last(cg_spool_t *s)
{
    return s->nseg > s->head ? &s->seg[s->nseg - 1] : NULL;
}

/* An unlinked file nobody else can open: O_TMPFILE, else mkstemp + unlink. */
static int cg__tmp_open(cg_spool_t *s)
{
    const char *dir = s->tmp_dir;
    if (dir == NULL || dir[0] == '\0')
        dir = getenv("TMPDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/cgunicorn-spool-XXXXXX", dir) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unlink(path);
    return fd;
}

static int cg__add_to_file(cg_spool_t *s, const char *data, size_t len)
{
    if (s->file_used + len > s->file_max)
        return -ENOSPC;
    if (s->tmp_fd < 0) {
        int fd = cg__tmp_open(s);
        if (fd < 0)
            return fd;
        s->tmp_fd = fd;
    }
    uint64_t at = s->tmp_end;
    for (size_t done = 0; done < len;) {
        ssize_t n = pwrite(s->tmp_fd, data + done, len - done, (off_t)(at + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        done += (size_t)n;
    }
    cg_spool_seg_t *g = cg__last(s);
    if (g == NULL || g->fd != s->tmp_fd || g->end != at) {
        g = cg__push(s);
        g->fd = s->tmp_fd;
        g->off = g->end = at;
    }
    g->end += len;
    s->tmp_end += len;
    s->file_used += len;
    s->pending += len;
    return 0;
}

int cg_spool_add(cg_spool_t *s, const void *data, size_t len)
{
    const char *p = data;
    if (len == 0)
        return 0;
    if (s->mem_used + len > s->mem_max)
        return cg__add_to_file(s, p, len);
    cg_spool_seg_t *g = cg__last(s);
    size_t room = g != NULL && g->mem != NULL ? g->mcap - (size_t)g->end : 0;
    size_t n = room < len ? room : len;
    if (n > 0) {
        memcpy(g->mem + g->end, p, n);
        g->end += n;
    }
    if (n < len) {
        size_t rest = len - n;
        g = cg__push(s);
        g->mcap = rest > CG_SPOOL_BLOCK ? rest : CG_SPOOL_BLOCK;
        g->mem = cg_xmalloc(g->mcap);
        memcpy(g->mem, p + n, rest);
        g->end = rest;
    }
    s->mem_used += len;
    s->pending += len;
    return 0;
}

int cg_spool_add_file(cg_spool_t *s, int fd, off_t off, uint64_t len)
{
    if (len == 0)
        return 0;
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dfd < 0)
        return -errno;
    cg_spool_seg_t *g = cg__push(s);
    g->fd = dfd;
    g->own_fd = true;
    g->off = (uint64_t)off;
    g->end = (uint64_t)off + len;
    s->pending += len;
    return 0;
}

/* n bytes of the front segment are taken: account, and drop it when empty. */
static void cg__taken(cg_spool_t *s, uint64_t n)
{
    cg_spool_seg_t *g = &s->seg[s->head];
    g->off += n;
    s->pending -= n;
    if (g->mem != NULL)
        s->mem_used -= (size_t)n;
    else if (g->fd == s->tmp_fd)
        s->file_used -= n;
    if (g->off < g->end)
        return;
    cg__seg_free(g);
    s->head++;
    if (s->pending == 0 && s->tmp_fd >= 0 && s->tmp_end > 0) {
        /* the file is all read: start it over rather than let it grow */
        if (ftruncate(s->tmp_fd, 0) == 0)
            s->tmp_end = 0;
    }
}

ssize_t cg_spool_read(cg_spool_t *s, char *dst, size_t cap)
{
    if (s->pending == 0 || cap == 0)
        return 0;
    cg_spool_seg_t *g = &s->seg[s->head];
    uint64_t avail = g->end - g->off;
    size_t n = avail < cap ? (size_t)avail : cap;
    if (g->mem != NULL) {
        memcpy(dst, g->mem + g->off, n);
    } else {
        ssize_t r;
        do
            r = pread(g->fd, dst, n, (off_t)g->off);
        while (r < 0 && errno == EINTR);
        if (r < 0)
            return -errno;
        if (r == 0)
            return -EIO; /* the file shrank under us */
        n = (size_t)r;
    }
    cg__taken(s, n);
    return (ssize_t)n;
}

/* Call an op of the transport under the spool with c's own state back. */
#define CG__INNER(s, c, call)                                                                      \
    ({                                                                                             \
        void *saved__ = (c)->transport;                                                            \
        const cg_conn_ops_t *ops__ = (c)->ops;                                                     \
        (c)->transport = (s)->inner_transport;                                                     \
        (c)->ops = (s)->inner;                                                                     \
        __typeof__((s)->inner->call) r__ = (s)->inner->call;                                       \
        (c)->ops = ops__;                                                                          \
        (c)->transport = saved__;                                                                  \
        r__;                                                                                       \
    })

static ssize_t cg__send(cg_spool_t *s, cg_conn_t *c, const cg_conn_ops_t *ops)
{
    if (s->pending == 0)
        return 0;
    cg_spool_seg_t *g = &s->seg[s->head];
    ssize_t n;
    if (g->mem != NULL) {
        struct iovec iov = {g->mem + g->off, (size_t)(g->end - g->off)};
        n = ops->writev(c, &iov, 1);
    } else {
        off_t off = (off_t)g->off;
        uint64_t left = g->end - g->off;
        n = ops->sendfile(c, g->fd, &off, left > (1u << 30) ? (1u << 30) : (size_t)left);
        if (n == 0)
            return -EIO; /* the file is shorter than the range given */
    }
    if (n > 0)
        cg__taken(s, (uint64_t)n);
    return n;
}

ssize_t cg_spool_send(cg_spool_t *s, cg_conn_t *c)
{
    return cg__send(s, c, c->ops);
}

/* ---- write-behind transport ---- */

static ssize_t cg__wb_recv(cg_conn_t *c, char *dst, size_t cap)
{
    cg_spool_t *s = c->transport;
    return CG__INNER(s, c, recv(c, dst, cap));
}

static int cg__wb_wait(cg_conn_t *c, int want, int timeout_ms)
{
    cg_spool_t *s = c->transport;
    return CG__INNER(s, c, wait(c, want, timeout_ms));
}

static int cg__wb_shutdown(cg_conn_t *c)
{
    cg_spool_t *s = c->transport;
    return CG__INNER(s, c, shutdown(c));
}

static void cg__wb_close(cg_conn_t *c)
{
    cg_spool_t *s = c->transport;
    cg_spool_detach(s, c);
    c->ops->close(c);
}

/* Send what is queued first (order), as much as the socket takes. Returns
 * 0 when the queue is empty now, CG_EAGAIN when it is not, or -errno. */
static int cg__wb_flush(cg_spool_t *s, cg_conn_t *c)
{
    while (s->pending > 0) {
        /* c as the transport underneath knows it, as CG__INNER does */
        void *saved = c->transport;
        const cg_conn_ops_t *saved_ops = c->ops;
        c->transport = s->inner_transport;
        c->ops = s->inner;
        ssize_t n = cg__send(s, c, s->inner);
        c->ops = saved_ops;
        c->transport = saved;
        if (n == CG_EAGAIN)
            return CG_EAGAIN;
        if (n < 0 && n != -EINTR)
            return (int)n;
    }
    return 0;
}

static ssize_t cg__wb_writev(cg_conn_t *c, const struct iovec *iov, int iovcnt)
{
    cg_spool_t *s = c->transport;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    int f = cg__wb_flush(s, c);
    if (f < 0 && f != CG_EAGAIN)
        return f;
    size_t took = 0;
    if (f == 0) {
        ssize_t n = CG__INNER(s, c, writev(c, iov, iovcnt));
        if (n < 0 && n != CG_EAGAIN)
            return n;
        took = n > 0 ? (size_t)n : 0;
        if (took == total)
            return (ssize_t)took;
    }
    /* Queue the rest, unless the spool is full: then the caller waits for
     * the socket as it would without one. */
    uint64_t rest = total - took;
    if (s->mem_used + rest > s->mem_max && s->file_used + rest > s->file_max)
        return took > 0 ? (ssize_t)took : CG_EAGAIN;
    size_t skip = took;
    for (int i = 0; i < iovcnt; i++) {
        size_t len = iov[i].iov_len;
        const char *p = iov[i].iov_base;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        int r = cg_spool_add(s, p + skip, len - skip);
        skip = 0;
        if (r < 0)
            return r;
    }
    return (ssize_t)total;
}

static ssize_t cg__wb_sendfile(cg_conn_t *c, int in_fd, off_t *offset, size_t count)
{
    cg_spool_t *s = c->transport;
    int f = cg__wb_flush(s, c);
    if (f < 0 && f != CG_EAGAIN)
        return f;
    size_t took = 0;
    if (f == 0) {
        ssize_t n = CG__INNER(s, c, sendfile(c, in_fd, offset, count));
        if (n < 0 && n != CG_EAGAIN)
            return n;
        if (n == 0)
            return 0; /* the file ended */
        took = n > 0 ? (size_t)n : 0;
        if (took == count)
            return (ssize_t)took;
    }
    int r = cg_spool_add_file(s, in_fd, *offset, count - took);
    if (r < 0)
        return took > 0 ? (ssize_t)took : r;
    *offset += (off_t)(count - took);
    return (ssize_t)count;
}

static const cg_conn_ops_t cg__write_behind = {
    .name = "write-behind",
    .recv = cg__wb_recv,
    .writev = cg__wb_writev,
    .sendfile = cg__wb_sendfile,
    .wait = cg__wb_wait,
    .shutdown = cg__wb_shutdown,
    .close = cg__wb_close,
};

void cg_spool_attach(cg_spool_t *s, cg_conn_t *c)
{
    s->inner = c->ops;
    s->inner_transport = c->transport;
    c->ops = &cg__write_behind;
    c->transport = s;
}

void cg_spool_detach(cg_spool_t *s, cg_conn_t *c)
{
    if (c->ops != &cg__write_behind)
        return;
    c->ops = s->inner;
    c->transport = s->inner_transport;
}

bool cg_spool_inner(const cg_conn_t *c, const cg_conn_ops_t **ops, void **transport)
{
    if (c->ops != &cg__write_behind)
        return false;
    const cg_spool_t *s = c->transport;
    *ops = s->inner;
    *transport = s->inner_transport;
    return true;
}

bool cg_spool_fd_writable(const cg_conn_t *c)
{
    if (c->fd < 0)
        return false;
    if (c->ops != &cg__write_behind)
        return c->ops == &cg_conn_tcp;
    const cg_spool_t *s = c->transport;
    return s->inner == &cg_conn_tcp && __atomic_load_n(&s->pending, __ATOMIC_RELAXED) == 0;
}
