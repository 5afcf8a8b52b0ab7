/* test_policy.c - what both worker loops share (src/workers/policy.c): the
 * head step (PROXY header, then the head, refusals) over a fake transport,
 * and the refusal page that never waits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "src/workers/conn.h"

typedef struct fake {
    char out[8192];
    size_t out_len;
    bool blocked;
    int waits;
} fake_t;

static ssize_t f_recv(cg_conn_t *c, char *dst, size_t cap)
{
    return CG_EAGAIN;
}

static ssize_t f_writev(cg_conn_t *c, const struct iovec *iov, int iovcnt)
{
    fake_t *f = c->transport;
    if (f->blocked)
        return CG_EAGAIN;
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(f->out + f->out_len, iov[i].iov_base, iov[i].iov_len);
        f->out_len += iov[i].iov_len;
        n += iov[i].iov_len;
    }
    return (ssize_t)n;
}

static ssize_t f_sendfile(cg_conn_t *c, int in_fd, off_t *offset, size_t count)
{
    return -ENOSYS;
}

static int f_wait(cg_conn_t *c, int want, int timeout_ms)
{
    ((fake_t *)c->transport)->waits++;
    return 0;
}

static int f_shutdown(cg_conn_t *c)
{
    return 0;
}

static void f_close(cg_conn_t *c)
{
    c->fd = -1;
}

static const cg_conn_ops_t fake_ops = {.name = "fake",
                                       .recv = f_recv,
                                       .writev = f_writev,
                                       .sendfile = f_sendfile,
                                       .wait = f_wait,
                                       .shutdown = f_shutdown,
                                       .close = f_close};

typedef struct fixture {
    cg_config_t cfg;
    cg_log_t log;
    cg_conn_policy_t pol;
    cg_conn_t c;
    fake_t f;
} fixture_t;

static fixture_t *setup(const char *proxy_mode)
{
    fixture_t *x = calloc(1, sizeof(*x));
    char err[512];
    assert_int_equal(cg_config_init(&x->cfg, err, sizeof(err)), 0);
    if (proxy_mode != NULL)
        assert_int_equal(cg_config_set_string(&x->cfg, "proxy_protocol", proxy_mode, CG_SRC_CLI,
                                              err, sizeof(err)),
                         0);
    assert_int_equal(cg_log_open(&x->log, "/dev/null", "critical", NULL, NULL, err, sizeof(err)),
                     0);
    assert_int_equal(cg_conn_policy_init(&x->pol, &x->cfg, &x->log), 0);
    cg_conn_init(&x->c, &x->pol, 4096);
    struct sockaddr_in *in = (struct sockaddr_in *)&x->c.peer;
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(0x7f000001);
    x->c.peerlen = sizeof(*in);
    cg_conn_accepted(&x->c, &x->pol, 99, NULL, true);
    x->c.ops = &fake_ops; /* after the TCP attach: nothing reaches fd 99 */
    x->c.transport = &x->f;
    return x;
}

static void teardown(fixture_t *x)
{
    cg_conn_release(&x->c);
    cg_conn_policy_free(&x->pol);
    cg_log_close(&x->log);
    cg_config_free(&x->cfg);
    free(x);
}

static void feed(cg_conn_t *c, const char *s)
{
    size_t n = strlen(s);
    memcpy(c->buf.data + c->buf.len, s, n);
    c->buf.len += n;
}

static void test_head_in_pieces(void **state)
{
    fixture_t *x = setup(NULL);
    assert_true(x->c.proxy_checked); /* no PROXY expected */
    assert_int_equal(cg_conn_head_step(&x->c, &x->pol, &x->log), 0);
    feed(&x->c, "GET /a HTTP/1.1\r\nHo");
    assert_int_equal(cg_conn_head_step(&x->c, &x->pol, &x->log), 0);
    feed(&x->c, "st: t\r\n\r\n");
    assert_int_equal(cg_conn_head_step(&x->c, &x->pol, &x->log), 1);
    assert_true(cg_str_eq(x->c.req.path, "/a", 2));
    teardown(x);
}

static void test_proxy_then_head(void **state)
{
    fixture_t *x = setup("v1");
    assert_false(x->c.proxy_checked);
    feed(&x->c, "PROXY TCP4 10.1.2.3 10.0.0.1 5555 80\r");
    assert_int_equal(cg_conn_head_step(&x->c, &x->pol, &x->log), 0);
    feed(&x->c, "\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cg_conn_head_step(&x->c, &x->pol, &x->log), 1);
    assert_true(x->c.has_proxy && x->c.proxy_checked);
    assert_string_equal(x->c.proxy.client_addr, "10.1.2.3");
    teardown(x);
}

static void test_refused_head_writes_page_without_waiting(void **state)
{
    fixture_t *x = setup(NULL);
    feed(&x->c, "GET / HTTP/1.1\r\nBad Header\r\n\r\n");
    assert_int_equal(cg_conn_head_step(&x->c, &x->pol, &x->log), -1);
    assert_int_equal(x->f.waits, 0);
    assert_true(x->f.out_len > 0);
    assert_memory_equal(x->f.out, "HTTP/1.1 400 Bad Request\r\n", 26);
    teardown(x);
}

static void test_refusal_to_a_peer_not_reading(void **state)
{
    /* a client pipelining garbage without reading: its window is shut; the
     * page is given up rather than waited for (by a worker, or the loop) */
    fixture_t *x = setup(NULL);
    x->f.blocked = true;
    x->c.io_timeout_ms = 30000;
    feed(&x->c, "GARBAGE\r\n\r\n");
    assert_int_equal(cg_conn_head_step(&x->c, &x->pol, &x->log), -1);
    assert_int_equal(x->f.waits, 0);
    assert_int_equal(x->f.out_len, 0);
    teardown(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_in_pieces),
        cmocka_unit_test(test_proxy_then_head),
        cmocka_unit_test(test_refused_head_writes_page_without_waiting),
        cmocka_unit_test(test_refusal_to_a_peer_not_reading),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
