/* test_spool.c - the spool (src/workers/spool.c): bytes in order through
 * memory and the temporary file, file ranges by reference, sending over a
 * transport that takes a little at a time, and write-behind in front of a
 * socket that is full. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "src/workers/spool.h"

/* A peer that takes at most `chunk` bytes per call, refuses (EAGAIN) when
 * `full`, and records what it got. */
typedef struct peer {
    char *got;
    size_t len, cap;
    size_t chunk;
    bool full;
    int writes;
} peer_t;

static void take(peer_t *p, const char *b, size_t n)
{
    if (p->len + n > p->cap) {
        p->cap = (p->len + n) * 2;
        p->got = realloc(p->got, p->cap);
    }
    memcpy(p->got + p->len, b, n);
    p->len += n;
}

static ssize_t p_writev(cg_conn_t *c, const struct iovec *iov, int iovcnt)
{
    peer_t *p = c->transport;
    p->writes++;
    if (p->full)
        return CG_EAGAIN;
    size_t took = 0;
    for (int i = 0; i < iovcnt && took < p->chunk; i++) {
        size_t n = iov[i].iov_len < p->chunk - took ? iov[i].iov_len : p->chunk - took;
        take(p, iov[i].iov_base, n);
        took += n;
    }
    return (ssize_t)took;
}

static ssize_t p_sendfile(cg_conn_t *c, int in_fd, off_t *offset, size_t count)
{
    peer_t *p = c->transport;
    p->writes++;
    if (p->full)
        return CG_EAGAIN;
    char buf[4096];
    size_t n = count < p->chunk ? count : p->chunk;
    if (n > sizeof(buf))
        n = sizeof(buf);
    ssize_t r = pread(in_fd, buf, n, *offset);
    if (r <= 0)
        return r < 0 ? -errno : 0;
    take(p, buf, (size_t)r);
    *offset += r;
    return r;
}

static ssize_t p_recv(cg_conn_t *c, char *dst, size_t cap)
{
    return CG_EAGAIN;
}

static int p_wait(cg_conn_t *c, int want, int timeout_ms)
{
    return -ETIMEDOUT;
}

static int p_shutdown(cg_conn_t *c)
{
    return 0;
}

static void p_close(cg_conn_t *c)
{
    c->fd = -1;
}

static const cg_conn_ops_t peer_ops = {.name = "peer",
                                       .recv = p_recv,
                                       .writev = p_writev,
                                       .sendfile = p_sendfile,
                                       .wait = p_wait,
                                       .shutdown = p_shutdown,
                                       .close = p_close};

static void pattern(char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (char)((i * 31 + seed) & 0xff);
}

static void test_order_through_memory_and_file(void **state)
{
    cg_spool_t s;
    cg_spool_init(&s, 1000, 1 << 20, NULL);
    static char in[50000], out[50000];
    pattern(in, sizeof(in), 7);
    /* pieces of odd sizes: the first ones fit in memory, the rest go to the
     * file; later small ones may fit in memory again: order must hold */
    size_t off = 0, sizes[] = {300, 600, 5000, 50, 20000, 10, 24040};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
        assert_int_equal(cg_spool_add(&s, in + off, sizes[i]), 0);
        off += sizes[i];
    }
    assert_int_equal(off, sizeof(in));
    assert_int_equal(cg_spool_pending(&s), sizeof(in));
    assert_true(s.tmp_fd >= 0);
    size_t got = 0;
    ssize_t n;
    while ((n = cg_spool_read(&s, out + got, 777)) > 0)
        got += (size_t)n;
    assert_int_equal(n, 0);
    assert_int_equal(got, sizeof(in));
    assert_memory_equal(in, out, sizeof(in));
    assert_int_equal(s.mem_used, 0);
    assert_int_equal(s.file_used, 0);
    cg_spool_clear(&s);
}

static void test_file_limit(void **state)
{
    cg_spool_t s;
    cg_spool_init(&s, 10, 100, NULL);
    char b[200] = {0};
    assert_int_equal(cg_spool_add(&s, b, 8), 0);    /* memory */
    assert_int_equal(cg_spool_add(&s, b, 90), 0);   /* file */
    assert_int_equal(cg_spool_add(&s, b, 20), -ENOSPC);
    assert_int_equal(cg_spool_pending(&s), 98);
    cg_spool_clear(&s);
    assert_int_equal(cg_spool_pending(&s), 0);
}

static void test_send_with_file_reference(void **state)
{
    char path[] = "/tmp/cg-spool-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    static char file[30000];
    pattern(file, sizeof(file), 3);
    assert_int_equal(write(fd, file, sizeof(file)), (ssize_t)sizeof(file));

    cg_spool_t s;
    cg_spool_init(&s, 1 << 16, 1 << 20, NULL);
    assert_int_equal(cg_spool_add(&s, "HEAD", 4), 0);
    assert_int_equal(cg_spool_add_file(&s, fd, 100, 20000), 0);
    close(fd); /* the spool holds its own reference */
    assert_int_equal(cg_spool_add(&s, "TAIL", 4), 0);

    peer_t p = {.chunk = 1500};
    cg_conn_t c = {.ops = &peer_ops, .transport = &p, .fd = 5};
    ssize_t n;
    while ((n = cg_spool_send(&s, &c)) > 0)
        ;
    assert_int_equal(n, 0);
    assert_int_equal(p.len, 4 + 20000 + 4);
    assert_memory_equal(p.got, "HEAD", 4);
    assert_memory_equal(p.got + 4, file + 100, 20000);
    assert_memory_equal(p.got + 20004, "TAIL", 4);
    cg_spool_clear(&s);
    free(p.got);
}

static void test_write_behind_queues_in_order(void **state)
{
    peer_t p = {.chunk = 10};
    cg_conn_t c = {.ops = &peer_ops, .transport = &p, .fd = 5, .io_timeout_ms = 50};
    cg_spool_t s;
    cg_spool_init(&s, 1 << 16, 1 << 20, NULL);
    cg_spool_attach(&s, &c);

    /* the socket takes 10 bytes, the rest is queued: the write completes
     * at once, with no wait */
    static char body[5000];
    pattern(body, sizeof(body), 9);
    assert_int_equal(cg_conn_write_all(&c, "0123456789ABCDEF", 16), 0);
    assert_int_equal(p.len, 10);
    assert_int_equal(cg_spool_pending(&s), 6);
    /* while something is queued, new bytes go behind it, never ahead */
    p.full = true;
    assert_int_equal(cg_conn_write_all(&c, body, sizeof(body)), 0);
    assert_int_equal(p.len, 10);
    assert_int_equal(cg_spool_pending(&s), 6 + sizeof(body));

    cg_spool_detach(&s, &c);
    assert_ptr_equal(c.ops, &peer_ops);
    assert_ptr_equal(c.transport, &p);
    p.full = false;
    p.chunk = 333;
    ssize_t n;
    while ((n = cg_spool_send(&s, &c)) > 0)
        ;
    assert_int_equal(n, 0);
    assert_int_equal(p.len, 16 + sizeof(body));
    assert_memory_equal(p.got, "0123456789ABCDEF", 16);
    assert_memory_equal(p.got + 16, body, sizeof(body));
    cg_spool_clear(&s);
    free(p.got);
}

/* request_timeout's 504 goes straight to the descriptor only over plain
 * TCP with nothing queued ahead of it */
static void test_fd_writable(void **state)
{
    (void)state;
    peer_t p = {.chunk = 10};
    cg_conn_t other = {.ops = &peer_ops, .transport = &p, .fd = 5};
    assert_false(cg_spool_fd_writable(&other));
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    cg_conn_t c = {.ops = &cg_conn_tcp, .fd = sv[0], .nonblocking = true, .io_timeout_ms = 50};
    assert_true(cg_spool_fd_writable(&c));
    cg_spool_t s;
    cg_spool_init(&s, 1 << 22, 1 << 22, NULL);
    cg_spool_attach(&s, &c);
    assert_true(cg_spool_fd_writable(&c));
    static char big[1 << 21]; /* more than the socket's buffer takes */
    assert_int_equal(cg_conn_write_all(&c, big, sizeof(big)), 0);
    assert_true(cg_spool_pending(&s) > 0);
    assert_false(cg_spool_fd_writable(&c));
    cg_spool_detach(&s, &c);
    cg_spool_attach(&s, &other);
    cg_spool_clear(&s);
    assert_false(cg_spool_fd_writable(&other)); /* nothing queued, but no raw socket */
    cg_spool_detach(&s, &other);
    c.fd = -1;
    assert_false(cg_spool_fd_writable(&c));
    cg_spool_clear(&s);
    close(sv[0]);
    close(sv[1]);
}

static void test_write_behind_full_spool_waits(void **state)
{
    /* past the spool's room a write waits for the socket as without one,
     * and here the wait times out */
    peer_t p = {.chunk = 10, .full = true};
    cg_conn_t c = {.ops = &peer_ops, .transport = &p, .fd = 5, .io_timeout_ms = 50};
    cg_spool_t s;
    cg_spool_init(&s, 100, 100, NULL);
    cg_spool_attach(&s, &c);
    static char big[1000];
    assert_int_equal(cg_conn_write_all(&c, big, sizeof(big)), -ETIMEDOUT);
    assert_int_equal(cg_spool_pending(&s), 0);
    cg_spool_detach(&s, &c);
    cg_spool_clear(&s);
    free(p.got);
}

static void test_body_read_spool_first(void **state)
{
    /* cg_conn_body_read: what was read ahead comes first, then the socket */
    cg_spool_t s;
    cg_spool_init(&s, 1 << 16, 1 << 20, NULL);
    assert_int_equal(cg_spool_add(&s, "ahead", 5), 0);
    cg_conn_t c;
    memset(&c, 0, sizeof(c));
    c.body_spool = &s;
    c.body.done = true; /* the socket side has nothing more */
    assert_false(cg_conn_body_done(&c));
    char buf[16];
    assert_int_equal(cg_conn_body_read(&c, buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "ahead", 5);
    assert_true(cg_conn_body_done(&c));
    assert_int_equal(cg_conn_body_read(&c, buf, sizeof(buf)), 0);
    cg_spool_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_through_memory_and_file),
        cmocka_unit_test(test_file_limit),
        cmocka_unit_test(test_send_with_file_reference),
        cmocka_unit_test(test_write_behind_queues_in_order),
        cmocka_unit_test(test_write_behind_full_spool_waits),
        cmocka_unit_test(test_fd_writable),
        cmocka_unit_test(test_body_read_spool_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
