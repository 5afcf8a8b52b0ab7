/*
 * test_syslog.c - syslog records as Gunicorn's SysLogHandler sends them
 * (PRI, tag, NUL), the address and facility rules, and delivery through
 * the log to a unix datagram receiver, a stream receiver and none at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../../src/config/config.h"
#include "../../../src/log/log.h"
#include "../../../src/log/syslog.h"

static void test_format_pri_tag_nul(void **state)
{
    (void)state;
    char buf[128];
    size_t n = cg_syslog_format(buf, sizeof(buf), 1, CG_LOG_INFO, "gunicorn.app.error: ", 42,
                                "hello", 5);
    const char want[] = "<14>gunicorn.app.error: [42] hello"; /* user.info = 1*8+6 */
    assert_int_equal(n, sizeof(want)); /* the NUL is part of the record */
    assert_memory_equal(buf, want, sizeof(want));
    assert_int_equal(buf[n - 1], '\0');

    /* local7 (23) critical (2) = 186; an unnamed level maps to warning */
    n = cg_syslog_format(buf, sizeof(buf), 23, CG_LOG_CRITICAL, "t: ", 1, "x", 1);
    assert_memory_equal(buf, "<186>t: [1] x", n);
    n = cg_syslog_format(buf, sizeof(buf), 0, (cg_log_level_t)25, "t: ", 1, "x", 1);
    assert_memory_equal(buf, "<4>t: [1] x", n);

    /* too small: nothing written, full length returned */
    memset(buf, 'Z', sizeof(buf));
    n = cg_syslog_format(buf, 4, 1, CG_LOG_INFO, "t: ", 1, "x", 1);
    assert_int_equal(n, strlen("<14>t: [1] x") + 1);
    assert_int_equal(buf[0], 'Z');
}

static void test_severity_and_facility(void **state)
{
    (void)state;
    assert_int_equal(cg_syslog_severity(CG_LOG_DEBUG), 7);
    assert_int_equal(cg_syslog_severity(CG_LOG_INFO), 6);
    assert_int_equal(cg_syslog_severity(CG_LOG_WARNING), 4);
    assert_int_equal(cg_syslog_severity(CG_LOG_ERROR), 3);
    assert_int_equal(cg_syslog_severity(CG_LOG_CRITICAL), 2);
    assert_int_equal(cg_syslog_facility("user"), 1);
    assert_int_equal(cg_syslog_facility("LOCAL3"), 19);
    assert_int_equal(cg_syslog_facility("security"), 4);
    assert_int_equal(cg_syslog_facility("authpriv"), 10);
    assert_int_equal(cg_syslog_facility("kern"), 0);
    assert_int_equal(cg_syslog_facility("local8"), -1);
    assert_int_equal(cg_syslog_facility(NULL), -1);
}

static void test_parse_addr(void **state)
{
    (void)state;
    cg_syslog_addr_t a;
    char err[128];
    assert_int_equal(cg_syslog_parse_addr("udp://LocalHost:5514", &a, err, sizeof(err)), 0);
    assert_false(a.is_unix);
    assert_int_equal(a.socktype, SOCK_DGRAM);
    assert_string_equal(a.host, "localhost");
    assert_int_equal(a.port, 5514);

    assert_int_equal(cg_syslog_parse_addr("tcp://[::1]:601", &a, err, sizeof(err)), 0);
    assert_int_equal(a.socktype, SOCK_STREAM);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 601);

    assert_int_equal(cg_syslog_parse_addr("udp://example.org", &a, err, sizeof(err)), 0);
    assert_int_equal(a.port, 514);
    assert_int_equal(cg_syslog_parse_addr("udp://", &a, err, sizeof(err)), 0);
    assert_string_equal(a.host, "localhost");

    assert_int_equal(cg_syslog_parse_addr("unix:///dev/log", &a, err, sizeof(err)), 0);
    assert_true(a.is_unix);
    assert_int_equal(a.socktype, 0); /* datagram, then stream */
    assert_string_equal(a.path, "/dev/log");
    assert_int_equal(cg_syslog_parse_addr("unix:///x/y#dgram", &a, err, sizeof(err)), 0);
    assert_int_equal(a.socktype, SOCK_DGRAM);
    assert_string_equal(a.path, "/x/y");
    assert_int_equal(cg_syslog_parse_addr("unix:///x/y#stream", &a, err, sizeof(err)), 0);
    assert_int_equal(a.socktype, 0);
    assert_string_equal(a.path, "/x/y");

    assert_int_equal(cg_syslog_parse_addr("localhost:514", &a, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "invalid syslog address");
    assert_int_equal(cg_syslog_parse_addr("udp://h:51x", &a, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "'51x' is not a valid port number.");
    assert_int_equal(cg_syslog_parse_addr("udp://h:", &a, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "'' is not a valid port number.");
}

static void config_for(cg_config_t *cfg, const char *addr, const char *facility,
                       const char *prefix, bool no_access)
{
    char err[256];
    assert_int_equal(cg_config_init(cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_bool(cfg, "syslog", true, CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(
        cg_config_set_string(cfg, "syslog_addr", addr, CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(
        cg_config_set_string(cfg, "syslog_facility", facility, CG_SRC_CLI, err, sizeof(err)),
        0);
    if (prefix)
        assert_int_equal(
            cg_config_set_string(cfg, "syslog_prefix", prefix, CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(cfg, "proc_name", "my:app", CG_SRC_CLI, err,
                                          sizeof(err)),
                     0);
    assert_int_equal(cg_config_set_string(cfg, "errorlog", "/dev/null", CG_SRC_CLI, err,
                                          sizeof(err)),
                     0);
    assert_int_equal(cg_config_set_bool(cfg, "disable_redirect_access_to_syslog", no_access,
                                        CG_SRC_CLI, err, sizeof(err)),
                     0);
}

static void test_open_errors(void **state)
{
    (void)state;
    cg_config_t cfg;
    cg_log_t log;
    char err[256];
    config_for(&cfg, "udp://127.0.0.1:514", "nosuch", NULL, false);
    assert_int_equal(cg_log_open_config(&log, &cfg, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "unknown facility name");
    cg_config_free(&cfg);

    config_for(&cfg, "syslog://x", "user", NULL, false);
    assert_int_equal(cg_log_open_config(&log, &cfg, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "invalid syslog address");
    cg_config_free(&cfg);
}

/* One datagram within 5 s (a bound wait on the event, not a sleep). */
static ssize_t recv_one(int fd, char *buf, size_t cap)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1);
    ssize_t n = recv(fd, buf, cap, 0);
    assert_true(n > 0);
    return n;
}

static int unix_receiver(int type, char *path, size_t cap)
{
    snprintf(path, cap, "/tmp/cg_test_syslog.%ld.%d", (long)getpid(), type);
    unlink(path);
    int fd = socket(AF_UNIX, type, 0);
    assert_true(fd >= 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
    if (type == SOCK_STREAM)
        assert_int_equal(listen(fd, 4), 0);
    return fd;
}

static void test_unix_dgram_delivery(void **state)
{
    (void)state;
    char path[128], addr[160], buf[512], want[256], err[256];
    int rx = unix_receiver(SOCK_DGRAM, path, sizeof(path));
    snprintf(addr, sizeof(addr), "unix://%s", path);
    cg_config_t cfg;
    cg_log_t log;
    config_for(&cfg, addr, "local1", NULL, false);
    assert_int_equal(cg_log_open_config(&log, &cfg, err, sizeof(err)), 0);
    assert_non_null(log.syslog);
    assert_true(cg_log_access_enabled(&log)); /* access lines go to syslog too */

    cg_log_warning(&log, "disk %d%% full", 93);
    ssize_t n = recv_one(rx, buf, sizeof(buf));
    /* local1 (17) * 8 + warning (4) = 140; ':' of proc_name becomes '.' */
    int w = snprintf(want, sizeof(want), "<140>gunicorn.my.app.error: [%ld] disk 93%% full",
                     (long)getpid());
    assert_int_equal(n, w + 1);
    assert_memory_equal(buf, want, (size_t)w + 1);

    cg_log_debug(&log, "below the level: not sent");
    cg_log_text(&log, CG_LOG_ERROR, "two\nlines\n", 10);
    n = recv_one(rx, buf, sizeof(buf));
    w = snprintf(want, sizeof(want), "<139>gunicorn.my.app.error: [%ld] two\nlines\n",
                 (long)getpid());
    assert_int_equal(n, w + 1);
    assert_memory_equal(buf, want, (size_t)w + 1);

    cg_log_close(&log);
    cg_config_free(&cfg);
    close(rx);
    unlink(path);
}

static void test_unix_stream_fallback_and_prefix(void **state)
{
    (void)state;
    char path[128], addr[160], buf[512], want[256], err[256];
    int lfd = unix_receiver(SOCK_STREAM, path, sizeof(path));
    snprintf(addr, sizeof(addr), "unix://%s", path);
    cg_config_t cfg;
    cg_log_t log;
    config_for(&cfg, addr, "daemon", "web", true);
    assert_int_equal(cg_log_open_config(&log, &cfg, err, sizeof(err)), 0);
    assert_false(log.syslog_access);

    cg_log_info(&log, "first");
    cg_log_info(&log, "second");
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1);
    int c = accept(lfd, NULL, NULL);
    assert_true(c >= 0);
    int w = snprintf(want, sizeof(want),
                     "<30>gunicorn.web.error: [%ld] first%c<30>gunicorn.web.error: [%ld] second",
                     (long)getpid(), '\0', (long)getpid());
    size_t got = 0;
    while (got < (size_t)w + 1)
        got += (size_t)recv_one(c, buf + got, sizeof(buf) - got);
    assert_int_equal(got, w + 1);
    assert_memory_equal(buf, want, (size_t)w + 1);

    cg_log_close(&log);
    cg_config_free(&cfg);
    close(c);
    close(lfd);
    unlink(path);
}

static void test_absent_receiver_does_not_block(void **state)
{
    (void)state;
    char err[256];
    cg_config_t cfg;
    cg_log_t log;
    config_for(&cfg, "unix:///nonexistent/cg-syslog", "user", NULL, false);
    assert_int_equal(cg_log_open_config(&log, &cfg, err, sizeof(err)), 0);
    for (int i = 0; i < 1000; i++)
        cg_log_info(&log, "into the void %d", i); /* returns at once, drops */
    cg_log_close(&log);
    cg_config_free(&cfg);

    /* tcp to a closed port: the connect fails, nothing blocks or raises
     * SIGPIPE */
    config_for(&cfg, "tcp://127.0.0.1:1", "user", NULL, false);
    assert_int_equal(cg_log_open_config(&log, &cfg, err, sizeof(err)), 0);
    for (int i = 0; i < 1000; i++)
        cg_log_info(&log, "into the void %d", i);
    cg_log_close(&log);
    cg_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_pri_tag_nul),
        cmocka_unit_test(test_severity_and_facility),
        cmocka_unit_test(test_parse_addr),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_unix_dgram_delivery),
        cmocka_unit_test(test_unix_stream_fallback_and_prefix),
        cmocka_unit_test(test_absent_receiver_does_not_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
