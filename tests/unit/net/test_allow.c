/* test_allow.c - forwarded_allow_ips matching and peer text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "src/net/net.h"

static struct sockaddr_storage peer(const char *ip, int port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    return ss;
}

static bool allowed(const cg_net_allow_t *a, const char *ip)
{
    struct sockaddr_storage ss = peer(ip, 1234);
    return cg_net_allowed(a, (struct sockaddr *)&ss);
}

static cg_net_allow_t *parse(const char *const *items, size_t n)
{
    cg_net_allow_t *a = NULL;
    char err[256];
    if (cg_net_allow_parse(items, n, &a, err, sizeof(err)) != 0)
        fail_msg("parse: %s", err);
    return a;
}

static void test_default_list(void **state)
{
    const char *items[] = {"127.0.0.1", "::1"};
    cg_net_allow_t *a = parse(items, 2);
    assert_true(allowed(a, "127.0.0.1"));
    assert_true(allowed(a, "::1"));
    assert_false(allowed(a, "127.0.0.2"));
    assert_false(allowed(a, "10.0.0.1"));
    assert_false(allowed(a, "::2"));
    /* as Python's ipaddress: an IPv4-mapped address is not in an IPv4 network */
    assert_false(allowed(a, "::ffff:127.0.0.1"));
    struct sockaddr_un su = {.sun_family = AF_UNIX};
    assert_true(cg_net_allowed(a, (struct sockaddr *)&su));
    cg_net_allow_free(a);
}

static void test_cidr_v4(void **state)
{
    const char *items[] = {"10.0.0.0/8", "192.168.1.0/255.255.255.0", "172.16.0.0/0.0.255.255",
                           "100.64.0.0/10"};
    cg_net_allow_t *a = parse(items, 4);
    assert_true(allowed(a, "10.1.2.3"));
    assert_true(allowed(a, "10.255.255.255"));
    assert_false(allowed(a, "11.0.0.0"));
    assert_true(allowed(a, "192.168.1.77"));
    assert_false(allowed(a, "192.168.2.1"));
    assert_true(allowed(a, "172.16.200.1"));
    assert_false(allowed(a, "172.17.0.1"));
    assert_true(allowed(a, "100.127.255.255"));
    assert_false(allowed(a, "100.128.0.0"));
    assert_false(allowed(a, "::1"));
    cg_net_allow_free(a);
}

static void test_cidr_v6(void **state)
{
    const char *items[] = {"2001:db8::/32", "fe80::/10", "::1/128"};
    cg_net_allow_t *a = parse(items, 3);
    assert_true(allowed(a, "2001:db8::1"));
    assert_true(allowed(a, "2001:db8:ffff::1"));
    assert_false(allowed(a, "2001:db9::1"));
    assert_true(allowed(a, "febf::1"));
    assert_false(allowed(a, "fec0::1"));
    assert_true(allowed(a, "::1"));
    assert_false(allowed(a, "10.0.0.1"));
    cg_net_allow_free(a);
}

static void test_star_and_empty(void **state)
{
    const char *items[] = {"10.0.0.1", "*"};
    cg_net_allow_t *a = parse(items, 2);
    assert_true(allowed(a, "8.8.8.8"));
    assert_true(allowed(a, "2001:db8::1"));
    cg_net_allow_free(a);

    a = parse(NULL, 0);
    assert_false(allowed(a, "127.0.0.1"));
    cg_net_allow_free(a);

    const char *all[] = {"0.0.0.0/0", "::/0"};
    a = parse(all, 2);
    assert_true(allowed(a, "1.2.3.4"));
    assert_true(allowed(a, "ffff::1"));
    cg_net_allow_free(a);
}

static void test_parse_errors(void **state)
{
    static const struct {
        const char *item, *msg;
    } cases[] = {
        {"192.168.1.1/24", "192.168.1.1/24 has host bits set"},
        {"2001:db8::1/32", "2001:db8::1/32 has host bits set"},
        {"foo", "'foo' does not appear to be an IPv4 or IPv6 network"},
        {"10.0.0.0/33", "'10.0.0.0/33' does not appear to be an IPv4 or IPv6 network"},
        {"010.0.0.0/8", "'010.0.0.0/8' does not appear to be an IPv4 or IPv6 network"},
        {"10.0.0.0/255.0.255.0",
         "'10.0.0.0/255.0.255.0' does not appear to be an IPv4 or IPv6 network"},
        {"::1/129", "'::1/129' does not appear to be an IPv4 or IPv6 network"},
        {"1.2.3.4/ 32", "'1.2.3.4/ 32' does not appear to be an IPv4 or IPv6 network"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cg_net_allow_t *a = (cg_net_allow_t *)1;
        char err[256] = "";
        const char *items[] = {"127.0.0.1", cases[i].item};
        if (cg_net_allow_parse(items, 2, &a, err, sizeof(err)) != -EINVAL)
            fail_msg("%s accepted", cases[i].item);
        assert_null(a);
        assert_string_equal(err, cases[i].msg);
    }
}

static void test_peer_text(void **state)
{
    char ip[INET6_ADDRSTRLEN], port[8];
    struct sockaddr_storage ss = peer("192.0.2.7", 5555);
    cg_net_peer_text((struct sockaddr *)&ss, ip, sizeof(ip), port, sizeof(port));
    assert_string_equal(ip, "192.0.2.7");
    assert_string_equal(port, "5555");
    ss = peer("2001:db8::7", 80);
    cg_net_peer_text((struct sockaddr *)&ss, ip, sizeof(ip), port, sizeof(port));
    assert_string_equal(ip, "2001:db8::7");
    assert_string_equal(port, "80");
    struct sockaddr_un su = {.sun_family = AF_UNIX};
    cg_net_peer_text((struct sockaddr *)&su, ip, sizeof(ip), port, sizeof(port));
    assert_string_equal(ip, "");
    assert_string_equal(port, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_list), cmocka_unit_test(test_cidr_v4),
        cmocka_unit_test(test_cidr_v6),      cmocka_unit_test(test_star_and_empty),
        cmocka_unit_test(test_parse_errors), cmocka_unit_test(test_peer_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
