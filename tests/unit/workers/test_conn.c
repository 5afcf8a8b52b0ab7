/* test_conn.c - a connection's I/O over a fake transport: partial writes,
 * waits bounded by the per-wait timeout and the deadline, quick stops,
 * lingering close. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "src/workers/conn.h"
#include "src/workers/worker.h"

/* A scripted peer: what each recv/writev call returns, in order. */
typedef struct fake {
    const char *in;    /* bytes the peer sends */
    size_t in_len, in_off;
    int in_eagain;     /* recv calls that find nothing before each byte run */
    bool in_eof;       /* after `in`: EOF (else: nothing more, ever) */
    char out[65536];   /* bytes the peer received */
    size_t out_len;
    size_t out_chunk;  /* most bytes one writev takes (0: all) */
    int out_eagain;    /* writev calls refused with EAGAIN before one succeeds */
    int out_blocked;   /* writev: the window never opens */
    int wait_calls;
    int wait_result;   /* what wait() returns (0 ready, -ETIMEDOUT ...) */
    int last_wait_ms;
    int shutdowns, closes;
    volatile sig_atomic_t quit;
    int eintr_waits;   /* wait() calls interrupted by a signal before quit is seen */
} fake_t;

static ssize_t fake_recv(cg_conn_t *c, char *dst, size_t cap)
{
    fake_t *f = c->transport;
    if (f->in_eagain > 0) {
        f->in_eagain--;
        return CG_EAGAIN;
    }
    if (f->in_off < f->in_len) {
        size_t n = f->in_len - f->in_off < cap ? f->in_len - f->in_off : cap;
        memcpy(dst, f->in + f->in_off, n);
        f->in_off += n;
        return (ssize_t)n;
    }
    return f->in_eof ? 0 : CG_EAGAIN;
}

static ssize_t fake_writev(cg_conn_t *c, const struct iovec *iov, int iovcnt)
{
    fake_t *f = c->transport;
    if (f->out_blocked)
        return CG_EAGAIN;
    if (f->out_eagain > 0) {
        f->out_eagain--;
        return CG_EAGAIN;
    }
    size_t took = 0;
    for (int i = 0; i < iovcnt; i++) {
        size_t n = iov[i].iov_len;
        if (f->out_chunk && took + n > f->out_chunk)
            n = f->out_chunk - took;
        memcpy(f->out + f->out_len, iov[i].iov_base, n);
        f->out_len += n;
        took += n;
        if (f->out_chunk && took == f->out_chunk)
            break;
    }
    return (ssize_t)took;
}

static ssize_t fake_sendfile(cg_conn_t *c, int in_fd, off_t *offset, size_t count)
{
    return -ENOSYS;
}

static int fake_wait(cg_conn_t *c, int want, int timeout_ms)
{
    fake_t *f = c->transport;
    f->wait_calls++;
    f->last_wait_ms = timeout_ms;
    if (f->eintr_waits > 0) {
        if (--f->eintr_waits == 0)
            f->quit = 1;
        return -EINTR;
    }
    return f->wait_result;
}

static int fake_shutdown(cg_conn_t *c)
{
    ((fake_t *)c->transport)->shutdowns++;
    return 0;
}

static void fake_close(cg_conn_t *c)
{
    ((fake_t *)c->transport)->closes++;
    c->fd = -1;
}

static const cg_conn_ops_t fake_ops = {
    .name = "fake",
    .recv = fake_recv,
    .writev = fake_writev,
    .sendfile = fake_sendfile,
    .wait = fake_wait,
    .shutdown = fake_shutdown,
    .close = fake_close,
};

static void setup_conn(cg_conn_t *c, fake_t *f)
{
    memset(c, 0, sizeof(*c));
    c->ops = &fake_ops;
    c->transport = f;
    c->fd = 99;
    c->quit = &f->quit;
}

static void test_writev_partial_and_again(void **state)
{
    fake_t f = {.out_chunk = 3, .out_eagain = 2};
    cg_conn_t c;
    setup_conn(&c, &f);
    c.io_timeout_ms = 5000;
    char a[] = "HTTP/1.1 200 OK\r\n", b[] = "hello";
    struct iovec iov[2] = {{a, strlen(a)}, {b, strlen(b)}};
    assert_int_equal(cg_conn_writev_all(&c, iov, 2), 0);
    assert_int_equal(f.out_len, strlen(a) + strlen(b));
    assert_memory_equal(f.out, "HTTP/1.1 200 OK\r\nhello", f.out_len);
    assert_int_equal(f.wait_calls, 2); /* one wait per EAGAIN, no more */
    assert_true(f.last_wait_ms > 0 && f.last_wait_ms <= 5000);
}

static void test_write_stalled_peer_times_out(void **state)
{
    fake_t f = {.out_blocked = 1, .wait_result = -ETIMEDOUT};
    cg_conn_t c;
    setup_conn(&c, &f);
    c.io_timeout_ms = 250;
    assert_int_equal(cg_conn_write_all(&c, "x", 1), -ETIMEDOUT);
    assert_int_equal(f.wait_calls, 1);
    assert_int_equal(f.last_wait_ms, 250);
}

static void test_deadline_bounds_the_wait(void **state)
{
    fake_t f = {.wait_result = -ETIMEDOUT};
    cg_conn_t c;
    setup_conn(&c, &f);
    c.io_timeout_ms = 60000;
    c.deadline_ms = cg_monotonic_ms() + 100; /* sooner than the per-wait timeout */
    char buf[8];
    assert_int_equal(cg_conn_recv(&c, buf, sizeof(buf)), -ETIMEDOUT);
    assert_true(f.last_wait_ms <= 100);

    /* a deadline already passed: no wait at all */
    f.wait_calls = 0;
    c.deadline_ms = cg_monotonic_ms() > 10 ? cg_monotonic_ms() - 10 : 1;
    assert_int_equal(cg_conn_recv(&c, buf, sizeof(buf)), -ETIMEDOUT);
    assert_int_equal(f.wait_calls, 0);
}

static void test_no_timeout_waits_unbounded(void **state)
{
    fake_t f = {.in = "abc", .in_len = 3, .in_eagain = 1, .wait_result = 0};
    cg_conn_t c;
    setup_conn(&c, &f);
    char buf[8];
    assert_int_equal(cg_conn_recv(&c, buf, sizeof(buf)), 3);
    assert_int_equal(f.wait_calls, 1);
    assert_int_equal(f.last_wait_ms, -1);
}

static void test_recv_progress_then_eof(void **state)
{
    fake_t f = {.in = "abcdef", .in_len = 6, .in_eof = true};
    cg_conn_t c;
    setup_conn(&c, &f);
    char buf[4];
    assert_int_equal(cg_conn_recv(&c, buf, sizeof(buf)), 4);
    assert_int_equal(cg_conn_recv(&c, buf, sizeof(buf)), 2);
    assert_int_equal(cg_conn_recv(&c, buf, sizeof(buf)), 0);
}

static void test_quit_interrupts_a_wait(void **state)
{
    /* a signal interrupts the wait: without the quit flag it resumes, with
     * it the read gives up at once */
    fake_t f = {.eintr_waits = 3, .wait_result = 0, .in = "z", .in_len = 1, .in_eagain = 5};
    cg_conn_t c;
    setup_conn(&c, &f);
    char buf[4];
    assert_int_equal(cg_conn_recv(&c, buf, sizeof(buf)), -EINTR);
    assert_int_equal(f.wait_calls, 3);

    fake_t g = {.eintr_waits = 3, .wait_result = 0, .in = "z", .in_len = 1, .in_eagain = 1};
    setup_conn(&c, &g);
    c.quit = NULL; /* nobody asks to leave: the wait resumes */
    assert_int_equal(cg_conn_recv(&c, buf, sizeof(buf)), 1);
}

static void test_fill_grows_to_max(void **state)
{
    static char big[100];
    memset(big, 'h', sizeof(big));
    fake_t f = {.in = big, .in_len = sizeof(big), .in_eof = true};
    cg_conn_t c;
    setup_conn(&c, &f);
    c.buf.cap = 16;
    c.buf.data = malloc(16);
    c.buf_max = 64;
    size_t total = 0;
    ssize_t n;
    while ((n = cg_conn_fill(&c)) > 0)
        total += (size_t)n;
    assert_int_equal(n, -ENOBUFS);
    assert_int_equal(total, 64);
    assert_int_equal(c.buf.cap, 64);
    free(c.buf.data);
}

static void test_close_graceful_lingers_until_eof(void **state)
{
    fake_t f = {.in = "leftover body bytes", .in_len = 19, .in_eof = true};
    cg_conn_t c;
    setup_conn(&c, &f);
    cg_conn_close_graceful(&c, false);
    assert_int_equal(f.shutdowns, 1);
    assert_int_equal(f.in_off, 19); /* drained */
    assert_int_equal(f.closes, 1);
    assert_int_equal(c.fd, -1);
}

static void test_close_graceful_done_skips_linger(void **state)
{
    fake_t f = {.in = "x", .in_len = 1};
    cg_conn_t c;
    setup_conn(&c, &f);
    cg_conn_close_graceful(&c, true);
    assert_int_equal(f.shutdowns, 0);
    assert_int_equal(f.in_off, 0);
    assert_int_equal(f.closes, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writev_partial_and_again),
        cmocka_unit_test(test_write_stalled_peer_times_out),
        cmocka_unit_test(test_deadline_bounds_the_wait),
        cmocka_unit_test(test_no_timeout_waits_unbounded),
        cmocka_unit_test(test_recv_progress_then_eof),
        cmocka_unit_test(test_quit_interrupts_a_wait),
        cmocka_unit_test(test_fill_grows_to_max),
        cmocka_unit_test(test_close_graceful_lingers_until_eof),
        cmocka_unit_test(test_close_graceful_done_skips_linger),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
