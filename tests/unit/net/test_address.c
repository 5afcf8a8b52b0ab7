/* test_address.c - Gunicorn's util.parse_address forms and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "src/net/net.h"

/* Expected values checked against Python: gunicorn.util.parse_address. */
static const struct {
    const char *spec;
    int kind;
    const char *host_or_path;
    int port_or_fd;
} ok_cases[] = {
    {"127.0.0.1:8000", CG_NET_TCP, "127.0.0.1", 8000},
    {"localhost", CG_NET_TCP, "localhost", 8000},
    {"LocalHost:81", CG_NET_TCP, "localhost", 81},
    {"", CG_NET_TCP, "0.0.0.0", 8000},
    {":9000", CG_NET_TCP, "", 9000},
    {"tcp://example.com:80", CG_NET_TCP, "example.com", 80},
    {"tcp://", CG_NET_TCP, "0.0.0.0", 8000},
    {"[::1]:8001", CG_NET_TCP, "::1", 8001},
    {"[::1]", CG_NET_TCP, "::1", 8000},
    {"[FE80::1]:80", CG_NET_TCP, "fe80::1", 80},
    {"tcp://[::]:5000", CG_NET_TCP, "::", 5000},
    {"0.0.0.0:0", CG_NET_TCP, "0.0.0.0", 0},
    {"h:1:2", CG_NET_TCP, "h", 1},          /* split(':')[:2] */
    {"h: 8_0 ", CG_NET_TCP, "h", 80},       /* int() syntax */
    {"h:+81", CG_NET_TCP, "h", 81},
    {"h:-1", CG_NET_TCP, "h", -1},          /* accepted here, bind fails later */
    {"unix:/tmp/g.sock", CG_NET_UNIX, "/tmp/g.sock", 0},
    {"unix:///tmp/g.sock", CG_NET_UNIX, "/tmp/g.sock", 0},
    {"unix:rel.sock", CG_NET_UNIX, "rel.sock", 0},
    {"unix:/a/unix:b", CG_NET_UNIX, "b", 0}, /* re.split(...)[-1] */
    {"fd://3", CG_NET_FD, NULL, 3},
    {"fd:// 7 ", CG_NET_FD, NULL, 7},
};

static void test_parse_ok(void **state)
{
    for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
        cg_net_addr_t a;
        char err[256];
        int r = cg_net_parse_address(ok_cases[i].spec, &a, err, sizeof(err));
        if (r != 0)
            fail_msg("%s: %s", ok_cases[i].spec, err);
        assert_int_equal(a.kind, ok_cases[i].kind);
        if (a.kind == CG_NET_TCP) {
            assert_string_equal(a.host, ok_cases[i].host_or_path);
            assert_int_equal(a.port, ok_cases[i].port_or_fd);
        } else if (a.kind == CG_NET_UNIX) {
            assert_string_equal(a.path, ok_cases[i].host_or_path);
        } else {
            assert_int_equal(a.fd, ok_cases[i].port_or_fd);
        }
    }
}

static const struct {
    const char *spec;
    const char *msg;
} err_cases[] = {
    {"127.0.0.1:x", "'x' is not a valid port number."},
    {"host:", "'' is not a valid port number."},
    {"[::1]:", "'' is not a valid port number."},
    {"[::1]:80a", "'80a' is not a valid port number."},
    {"h:8__0", "'8__0' is not a valid port number."},
    {"h:it's", "\"it's\" is not a valid port number."},
    {"fd://x", "'x' is not a valid file descriptor."},
    {"fd://", "'' is not a valid file descriptor."},
};

static void test_parse_errors(void **state)
{
    for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
        cg_net_addr_t a;
        char err[256];
        int r = cg_net_parse_address(err_cases[i].spec, &a, err, sizeof(err));
        if (r != -EINVAL)
            fail_msg("%s: expected -EINVAL, got %d", err_cases[i].spec, r);
        assert_string_equal(err, err_cases[i].msg);
    }
    /* longer than sun_path */
    char big[300] = "unix:/";
    memset(big + 6, 'a', 200);
    big[206] = '\0';
    cg_net_addr_t a;
    char err[256];
    assert_int_equal(cg_net_parse_address(big, &a, err, sizeof(err)), -ENAMETOOLONG);
}

static void test_addr_text(void **state)
{
    cg_net_addr_t a;
    char err[128], text[300];
    assert_int_equal(cg_net_parse_address("127.0.0.1:8000", &a, err, sizeof(err)), 0);
    cg_net_addr_text(&a, text, sizeof(text));
    assert_string_equal(text, "('127.0.0.1', 8000)");
    assert_int_equal(cg_net_parse_address("[::1]:81", &a, err, sizeof(err)), 0);
    cg_net_addr_text(&a, text, sizeof(text));
    assert_string_equal(text, "('::1', 81)");
    assert_int_equal(cg_net_parse_address("unix:/tmp/x.sock", &a, err, sizeof(err)), 0);
    cg_net_addr_text(&a, text, sizeof(text));
    assert_string_equal(text, "/tmp/x.sock");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_addr_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
