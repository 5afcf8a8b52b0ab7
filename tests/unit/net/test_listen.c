/* test_listen.c - binding, display strings, retries, unix sockets, fd://. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/net/net.h"

typedef struct fixture {
    char dir[64];
    char logpath[128];
    cg_log_t log;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char err[256];
    strcpy(f->dir, "/tmp/cg-net-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->logpath, sizeof(f->logpath), "%s/err.log", f->dir);
    if (cg_log_open(&f->log, f->logpath, "debug", NULL, NULL, err, sizeof(err)) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];
    cg_log_close(&f->log);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static char *slurp(const char *path)
{
    static char buf[65536];
    FILE *fp = fopen(path, "r");
    size_t n = fp ? fread(buf, 1, sizeof(buf) - 1, fp) : 0;
    if (fp)
        fclose(fp);
    buf[n] = '\0';
    return buf;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void test_tcp_v4(void **state)
{
    fixture_t *f = *state;
    const char *binds[] = {"127.0.0.1:0"};
    cg_listener_t *l;
    size_t n;
    assert_int_equal(cg_net_listen_all(binds, 1, 64, false, &f->log, &l, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(l[0].family, AF_INET);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&l[0].addr;
    int port = ntohs(sin->sin_port);
    assert_true(port > 0);

    char want[64];
    snprintf(want, sizeof(want), "http://127.0.0.1:%d", port);
    assert_string_equal(l[0].display, want);
    assert_string_equal(l[0].server_name, "127.0.0.1");
    snprintf(want, sizeof(want), "%d", port);
    assert_string_equal(l[0].server_port, want);
    assert_null(l[0].unix_path);

    /* options: non-blocking, close-on-exec, reuseaddr, nodelay, listening */
    assert_true(fcntl(l[0].fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(l[0].fd, F_GETFD) & FD_CLOEXEC);
    int v = 0;
    socklen_t vl = sizeof(v);
    assert_int_equal(getsockopt(l[0].fd, SOL_SOCKET, SO_REUSEADDR, &v, &vl), 0);
    assert_int_not_equal(v, 0);
    assert_int_equal(getsockopt(l[0].fd, IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
    assert_int_not_equal(v, 0);
    assert_int_equal(getsockopt(l[0].fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl), 0);
    assert_int_not_equal(v, 0);

    /* a client can connect */
    int c = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(c, (const struct sockaddr *)sin, sizeof(*sin)), 0);
    close(c);

    char *disp = cg_net_listeners_display(l, n);
    assert_string_equal(disp, l[0].display);
    free(disp);
    cg_net_close_all(l, n, true);
}

/* TCP_DEFER_ACCEPT: set on TCP listeners (not by binding: the workers ask),
 * a silent client then stays out of the accept queue; unix ones untouched. */
static void test_defer_accept(void **state)
{
    fixture_t *f = *state;
    char path[128], spec[160];
    snprintf(path, sizeof(path), "%s/d.sock", f->dir);
    snprintf(spec, sizeof(spec), "unix:%s", path);
    const char *binds[] = {"127.0.0.1:0", spec};
    cg_listener_t *l;
    size_t n;
    assert_int_equal(cg_net_listen_all(binds, 2, 16, false, &f->log, &l, &n), 0);
    assert_int_equal(n, 2);
    int v = -1;
    socklen_t vl = sizeof(v);
    assert_int_equal(getsockopt(l[0].fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &v, &vl), 0);
    assert_int_equal(v, 0);
    assert_int_equal(cg_net_defer_accept(&l[0], CG_NET_DEFER_ACCEPT_S), 0);
    assert_int_equal(getsockopt(l[0].fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &v, &vl), 0);
    assert_int_equal(v, CG_NET_DEFER_ACCEPT_S); /* 1 s is one SYN-ACK retransmit: read back as is */
    assert_int_equal(cg_net_defer_accept(&l[1], CG_NET_DEFER_ACCEPT_S), 0);

    /* connected and silent: nothing to accept yet */
    int c = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(c, (const struct sockaddr *)&l[0].addr, l[0].addrlen), 0);
    assert_int_equal(accept(l[0].fd, NULL, NULL), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    /* its first bytes make it acceptable, with them waiting */
    assert_int_equal(send(c, "GET", 3, 0), 3);
    int a = -1;
    for (int i = 0; i < 2000 && a < 0; i++) { /* the loopback delivers at once; a loaded host may lag */
        a = accept(l[0].fd, NULL, NULL);
        if (a < 0)
            usleep(1000);
    }
    assert_true(a >= 0);
    char buf[4];
    assert_int_equal(recv(a, buf, sizeof(buf), MSG_DONTWAIT), 3);
    close(a);
    close(c);
    cg_net_close_all(l, n, true);
}

static void test_tcp_v6_and_display_join(void **state)
{
    fixture_t *f = *state;
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    if (probe < 0 || bind(probe, (struct sockaddr *)&s6, sizeof(s6)) < 0) {
        if (probe >= 0)
            close(probe);
        skip(); /* no IPv6 loopback here */
    }
    close(probe);

    const char *binds[] = {"[::1]:0", "127.0.0.1:0"};
    cg_listener_t *l;
    size_t n;
    assert_int_equal(cg_net_listen_all(binds, 2, 64, false, &f->log, &l, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(l[0].family, AF_INET6);
    int port = ntohs(((const struct sockaddr_in6 *)&l[0].addr)->sin6_port);
    char want[128];
    snprintf(want, sizeof(want), "http://[::1]:%d", port);
    assert_string_equal(l[0].display, want);
    assert_string_equal(l[0].server_name, "::1");

    char *disp = cg_net_listeners_display(l, n);
    snprintf(want, sizeof(want), "%s,%s", l[0].display, l[1].display);
    assert_string_equal(disp, want);
    free(disp);
    cg_net_close_all(l, n, true);
}

static void test_localhost_resolves(void **state)
{
    fixture_t *f = *state;
    const char *binds[] = {"LOCALHOST:0"};
    cg_listener_t *l;
    size_t n;
    assert_int_equal(cg_net_listen_all(binds, 1, 16, false, &f->log, &l, &n), 0);
    assert_int_equal(l[0].family, AF_INET);
    assert_string_equal(l[0].server_name, "127.0.0.1");
    cg_net_close_all(l, n, true);
}

static void test_unix_socket(void **state)
{
    fixture_t *f = *state;
    char path[128], spec[160];
    snprintf(path, sizeof(path), "%s/g.sock", f->dir);
    snprintf(spec, sizeof(spec), "unix:%s", path);
    const char *binds[] = {spec};
    cg_listener_t *l;
    size_t n;

    /* a stale socket file is replaced */
    mode_t old = umask(077);
    assert_int_equal(cg_net_listen_all(binds, 1, 16, false, &f->log, &l, &n), 0);
    cg_net_close_all(l, n, false);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));

    assert_int_equal(cg_net_listen_all(binds, 1, 16, false, &f->log, &l, &n), 0);
    umask(old);
    assert_int_equal(l[0].family, AF_UNIX);
    char want[200];
    snprintf(want, sizeof(want), "unix:%s", path);
    assert_string_equal(l[0].display, want);
    assert_string_equal(l[0].server_name, "");
    assert_string_equal(l[0].server_port, "");
    assert_string_equal(l[0].unix_path, path);
    /* bound under the umask in force */
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un su = {.sun_family = AF_UNIX};
    strcpy(su.sun_path, path);
    assert_int_equal(connect(c, (struct sockaddr *)&su, sizeof(su)), 0);
    close(c);

    cg_net_close_all(l, n, true);
    assert_int_equal(stat(path, &st), -1); /* unlinked */
}

static void test_unix_not_a_socket(void **state)
{
    fixture_t *f = *state;
    char path[128], spec[160];
    snprintf(path, sizeof(path), "%s/plain", f->dir);
    FILE *fp = fopen(path, "w");
    fclose(fp);
    snprintf(spec, sizeof(spec), "unix:%s", path);
    const char *binds[] = {spec};
    cg_listener_t *l;
    size_t n;
    assert_int_equal(cg_net_listen_all(binds, 1, 16, false, &f->log, &l, &n), -ENOTSOCK);
    char want[200];
    snprintf(want, sizeof(want), "[ERROR] '%s' is not a socket", path);
    assert_non_null(strstr(slurp(f->logpath), want));
    struct stat st;
    assert_int_equal(stat(path, &st), 0); /* untouched */
}

static void test_in_use_retries(void **state)
{
    fixture_t *f = *state;
    const char *binds[] = {"127.0.0.1:0"};
    cg_listener_t *l, *l2;
    size_t n, n2;
    assert_int_equal(cg_net_listen_all(binds, 1, 16, false, &f->log, &l, &n), 0);
    char spec[64];
    snprintf(spec, sizeof(spec), "127.0.0.1:%s", l[0].server_port);
    const char *again[] = {spec};
    /* a second listener on a listening port fails even with SO_REUSEADDR */
    cg_net_listen_opts_t o = {.backlog = 16, .tries = 5, .retry_delay_ms = 10};
    int r = cg_net_listen_all_opts(again, 1, &o, &f->log, &l2, &n2);
    assert_int_equal(r, -EADDRINUSE);
    assert_null(l2);

    const char *log = slurp(f->logpath);
    char want[160];
    snprintf(want, sizeof(want), "[ERROR] Connection in use: ('127.0.0.1', %s)\n",
             l[0].server_port);
    assert_int_equal(count(log, want), 5);
    snprintf(want, sizeof(want),
             "[ERROR] connection to ('127.0.0.1', %s) failed: [Errno 98] Address already in use\n",
             l[0].server_port);
    assert_int_equal(count(log, want), 5);
    assert_int_equal(count(log, "[DEBUG] Retrying in 1 second.\n"), 5);
    snprintf(want, sizeof(want), "[ERROR] Can't connect to ('127.0.0.1', %s)\n",
             l[0].server_port);
    assert_int_equal(count(log, want), 1);
    cg_net_close_all(l, n, true);
}

static void test_invalid_address(void **state)
{
    fixture_t *f = *state;
    /* TEST-NET-1: not a local address */
    const char *binds[] = {"192.0.2.1:0"};
    cg_listener_t *l;
    size_t n;
    cg_net_listen_opts_t o = {.backlog = 16, .tries = 2, .retry_delay_ms = 1};
    assert_int_equal(cg_net_listen_all_opts(binds, 1, &o, &f->log, &l, &n), -EADDRNOTAVAIL);
    const char *log = slurp(f->logpath);
    assert_int_equal(count(log, "[ERROR] Invalid address: ('192.0.2.1', 0)\n"), 2);
    assert_int_equal(count(log, "failed: [Errno 99] Cannot assign requested address\n"), 2);
}

static void test_bad_port_range(void **state)
{
    fixture_t *f = *state;
    const char *binds[] = {"127.0.0.1:70000"};
    cg_listener_t *l;
    size_t n;
    cg_net_listen_opts_t o = {.backlog = 16, .tries = 1, .retry_delay_ms = 1};
    assert_true(cg_net_listen_all_opts(binds, 1, &o, &f->log, &l, &n) < 0);
    assert_non_null(strstr(slurp(f->logpath), "bind(): port must be 0-65535."));
}

static void test_fd_adoption(void **state)
{
    fixture_t *f = *state;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
    char spec[32];
    snprintf(spec, sizeof(spec), "fd://%d", s);
    /* when an fd:// is given, the other addresses are ignored (as Gunicorn) */
    const char *binds[] = {"127.0.0.1:1", spec};
    cg_listener_t *l;
    size_t n;
    assert_int_equal(cg_net_listen_all(binds, 2, 16, false, &f->log, &l, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(l[0].fd, s);
    assert_true(fcntl(s, F_GETFL) & O_NONBLOCK);
    int v = 0;
    socklen_t vl = sizeof(v);
    assert_int_equal(getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl), 0);
    assert_int_not_equal(v, 0);
    assert_non_null(strstr(l[0].display, "http://127.0.0.1:"));
    cg_net_close_all(l, n, true);

    /* one that listens already keeps its backlog: no second listen() (Gunicorn
     * 27); TCP_INFO's tcpi_sacked is a listener's backlog on Linux */
    s = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(s, 3), 0);
    snprintf(spec, sizeof(spec), "fd://%d", s);
    const char *again[] = {spec};
    assert_int_equal(cg_net_listen_all(again, 1, 64, false, &f->log, &l, &n), 0);
    struct tcp_info ti;
    socklen_t tl = sizeof(ti);
    assert_int_equal(getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &tl), 0);
    assert_int_equal(ti.tcpi_sacked, 3);
    cg_net_close_all(l, n, true);
    /* a bound one that does not listen yet gets the configured backlog */
    s = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
    snprintf(spec, sizeof(spec), "fd://%d", s);
    assert_int_equal(cg_net_listen_all(again, 1, 64, false, &f->log, &l, &n), 0);
    tl = sizeof(ti);
    assert_int_equal(getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &tl), 0);
    assert_int_equal(ti.tcpi_sacked, 64);
    cg_net_close_all(l, n, true);

    /* not an open fd */
    char err[128];
    cg_listener_t one;
    assert_int_equal(cg_net_adopt_fd(987, 16, &one, err, sizeof(err)), -EBADF);
    assert_string_equal(err, "[Errno 9] Bad file descriptor");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tcp_v4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defer_accept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_v6_and_display_join, setup, teardown),
        cmocka_unit_test_setup_teardown(test_localhost_resolves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_not_a_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_use_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_port_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_adoption, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
