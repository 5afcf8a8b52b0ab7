/*
 * test_access.c - access_log_format compile/render against lines Gunicorn's
 * `fmt % SafeAtoms(atoms)` produces (expected values were checked with
 * CPython 3.11 running Gunicorn's SafeAtoms logic).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../../../src/log/log.h"

#define S(lit) ((cg_str_t){(lit), sizeof(lit) - 1})

static cg_http_header_t hdrs[8];
static cg_str_t resp[4];

/* 2026-11-26 14:12:45 UTC */
#define T0 ((time_t)1795702365)

static cg_access_info_t base_info(void)
{
    hdrs[0] = (cg_http_header_t){S("HOST"), S("localhost:8000"), 0};
    hdrs[1] = (cg_http_header_t){S("USER-AGENT"), S("curl/7.88.1"), 0};
    hdrs[2] = (cg_http_header_t){S("ACCEPT"), S("*/*"), 0};
    resp[0] = S("Content-Type");
    resp[1] = S("text/plain");
    resp[2] = S("Content-Length");
    resp[3] = S("2");
    return (cg_access_info_t){
        .remote_addr = S("127.0.0.1"),
        .method = S("GET"),
        .raw_uri = S("/?0"),
        .protocol = S("HTTP/1.1"),
        .path_info = S("/"),
        .query = S("0"),
        .status = S("200 OK"),
        .sent = 2,
        .request_time_us = 1500000,
        .log_time = T0,
        .pid = 4242,
        .req_headers = hdrs,
        .n_req_headers = 3,
        .resp_headers = resp,
        .n_resp_headers = 2,
    };
}

static char line[4096];

/* Compile fmt, render info, return the line (static buffer). */
static const char *render(const char *fmt, const cg_access_info_t *info)
{
    cg_access_fmt_t *f = NULL;
    char err[256] = "";
    int r = cg_access_fmt_compile(fmt, &f, err, sizeof(err));
    assert_int_equal(r, 0);
    size_t n = cg_access_fmt_render(f, info, line, sizeof(line));
    assert_int_equal(n, strlen(line));
    cg_access_fmt_free(f);
    return line;
}

static int setup_utc(void **state)
{
    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    return 0;
}

static void test_default_format(void **state)
{
    (void)state;
    cg_access_info_t in = base_info();
    assert_string_equal(render("%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\"",
                               &in),
                        "127.0.0.1 - - [26/Nov/2026:14:12:45 +0000] \"GET /?0 HTTP/1.1\" 200 2 "
                        "\"-\" \"curl/7.88.1\"");
}

static void test_each_atom(void **state)
{
    (void)state;
    cg_access_info_t in = base_info();
    struct {
        const char *fmt, *want;
    } cases[] = {
        {"%(h)s", "127.0.0.1"},
        {"%(l)s", "-"},
        {"%(u)s", "-"},
        {"%(t)s", "[26/Nov/2026:14:12:45 +0000]"},
        {"%(r)s", "GET /?0 HTTP/1.1"},
        {"%(m)s", "GET"},
        {"%(U)s", "/"},
        {"%(q)s", "0"},
        {"%(H)s", "HTTP/1.1"},
        {"%(s)s", "200"},
        {"%(B)s", "2"},
        {"%(b)s", "2"},
        {"%(f)s", "-"},
        {"%(a)s", "curl/7.88.1"},
        {"%(T)s", "1"},
        {"%(M)s", "1500"},
        {"%(D)s", "1500000"},
        {"%(L)s", "1.500000"},
        {"%(p)s", "<4242>"},
        {"%({host}i)s", "localhost:8000"},
        {"%({User-Agent}i)s", "curl/7.88.1"},
        {"%({x}I)s", "-"},
        {"%({content-type}o)s", "text/plain"},
        {"%({CONTENT-LENGTH}O)s", "2"},
        {"%({date}o)s", "-"},
        {"%({remote_port}e)s", "-"}, /* no environ_lookup given */
        {"%(zzz)s", "-"},
        {"%()s", "-"},
        {"%(hh)s", "-"},
        {"%({host)s", "-"},
        {"100%% %(s)s", "100% 200"},
        {"plain", "plain"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = render(cases[i].fmt, &in);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("%s: got '%s' want '%s'", cases[i].fmt, got, cases[i].want);
    }
}

static void test_sent_zero_and_unknown(void **state)
{
    (void)state;
    cg_access_info_t in = base_info();
    in.sent = 0;
    assert_string_equal(render("%(b)s %(B)s %(B)d", &in), "0 0 0");
    in.sent = -1;
    assert_string_equal(render("%(b)s %(B)s", &in), "- None");
    assert_string_equal(render("%(B)d", &in), ""); /* TypeError in Python */
}

static void test_request_time(void **state)
{
    (void)state;
    cg_access_info_t in = base_info();
    in.request_time_us = 62003007;
    assert_string_equal(render("%(T)s %(M)s %(D)s %(L)s", &in), "62 62003 62003007 62.003007");
    in.request_time_us = 999;
    assert_string_equal(render("%(T)s %(M)s %(D)s %(L)s", &in), "0 0 999 0.000999");
    /* timedelta.seconds drops whole days */
    in.request_time_us = (int64_t)86401 * 1000000 + 5;
    assert_string_equal(render("%(T)s %(D)s", &in), "1 1000005");
}

static void test_escaping_and_latin1(void **state)
{
    (void)state;
    cg_access_info_t in = base_info();
    hdrs[1].value = S("say \"hi\" \\o/");
    hdrs[3] = (cg_http_header_t){S("X-LATIN"), S("caf\xe9"), 0};
    in.n_req_headers = 4;
    in.raw_uri = S("/a\"b");
    assert_string_equal(render("\"%(a)s\" %(r)s %({x-latin}i)s", &in),
                        "\"say \\\"hi\\\" \\o/\" GET /a\\\"b HTTP/1.1 caf\xc3\xa9");
}

static void test_environ_style_headers(void **state)
{
    (void)state;
    cg_access_info_t in = base_info();
    hdrs[3] = (cg_http_header_t){S("REFERER"), S("http://a/"), 0};
    hdrs[4] = (cg_http_header_t){S("REFERER"), S("http://b/"), 0};
    hdrs[5] = (cg_http_header_t){S("USER_AGENT"), S("dropped"), CG_HTTP_HF_DROPPED};
    in.n_req_headers = 6;
    /* environ joins repeated headers with ','; the {..}i dict keeps the last */
    assert_string_equal(render("%(f)s|%({referer}i)s|%(a)s|%({user_agent}i)s", &in),
                        "http://a/,http://b/|http://b/|curl/7.88.1|-");
    hdrs[5].flags = 0; /* a kept underscore header lands on the same environ key */
    assert_string_equal(render("%(a)s|%({user_agent}i)s", &in), "curl/7.88.1,dropped|dropped");
}

static void test_user(void **state)
{
    (void)state;
    cg_access_info_t in = base_info();
    in.n_req_headers = 4;
    struct {
        const char *auth, *want;
    } cases[] = {
        {"Basic dXNlcjpwYXNz", "user"},
        {"basic dXNlcjpwYXNz", "user"},
        {"BASIC   dXNl cjpw YXNz", "user"},
        {"Basic dXNlcg==x", "user"},
        {"Basic dXN=lcg==", "us"},
        {"Basic dXNlcg", "-"},       /* Incorrect padding */
        {"Basic dXNlc", "-"},        /* 1 more than a multiple of 4 */
        {"Basic /w==", "-"},         /* not UTF-8 */
        {"Basic 4oKsOng=", "\xe2\x82\xac"}, /* "€:x" */
        {"Basic IjoK", "\\\""},      /* '"' escaped */
        {"Bearer dXNlcjpwYXNz", "-"},
        {"Basic", "-"},
        {"Basicdxx dXNlcjpwYXNz", "user"}, /* only the prefix is checked */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hdrs[3] = (cg_http_header_t){S("AUTHORIZATION"), {cases[i].auth, strlen(cases[i].auth)}, 0};
        const char *got = render("%(u)s", &in);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("%s: got '%s' want '%s'", cases[i].auth, got, cases[i].want);
    }
    /* environ joins two Authorization headers: "Basic,dXNl cjpw" */
    hdrs[3] = (cg_http_header_t){S("AUTHORIZATION"), S("Basic"), 0};
    hdrs[4] = (cg_http_header_t){S("AUTHORIZATION"), S("x dXNlcjpw"), 0};
    in.n_req_headers = 5;
    assert_string_equal(render("%(u)s", &in), "user");
}

static void test_conversions(void **state)
{
    (void)state;
    cg_access_info_t in = base_info();
    in.sent = 2;
    hdrs[1].value = S("it's \"x\"");
    /* M=1500 D=1500000 T=1 B=2 */
    assert_string_equal(render("%(s)5s|%(h)-12s|%(D)08d|%(T)x|%(M)#x|%(h).3s|", &in),
                        "  200|127.0.0.1   |01500000|1|0x5dc|127|");
    assert_string_equal(render("%(D)+d %(T) d %(M)#o %(B)#X %(B).5d %(D)-9d| %(D)e %(T)g %(M)c",
                               &in),
                        "+1500000  1 0o2734 0X2 00002 1500000  | 1.500000e+06 1 \xd7\x9c");
    assert_string_equal(render("%(a)r %(a)a %(h)r %(s)10r", &in),
                        "'it\\'s \\\\\"x\\\\\"' 'it\\'s \\\\\"x\\\\\"' '127.0.0.1'      '200'");
    assert_string_equal(render("%(s)05s %(D)05.3d %(B)5.1f %(h)ls %(h)5.2ls %(B)r", &in),
                        "  200 1500000   2.0 127.0.0.1    12 2");
    hdrs[1].value = S("it's");
    assert_string_equal(render("%(a)r", &in), "\"it's\"");
    hdrs[1].value = S("caf\xe9 \x85\t");
    assert_string_equal(render("%(a)r %(a)a %(a).4s|%(a)6s|", &in),
                        "'caf\xc3\xa9 \\x85\\t' 'caf\\xe9 \\x85\\t' caf\xc3\xa9|caf\xc3\xa9 \xc2\x85\t|");
}

/* Formats Python refuses at run time: nothing is rendered. */
static void test_python_errors(void **state)
{
    (void)state;
    cg_access_info_t in = base_info();
    const char *bad[] = {
        "%(s)d", "%(h)x", "%(zzz)d", "%(s)f", "%(h)c", "%(s)c", "%y", "%(h", "%", "%(h)5",
        "%(h)5.", "%5%", "%(h)s %(h)%", "%(h)s %(B)*d", "%(h)5\xc3\xa9", "ok %(s)d",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *got = render(bad[i], &in);
        if (strcmp(got, "") != 0)
            fail_msg("%s: got '%s', want nothing", bad[i], got);
    }
    in.sent = -1;
    assert_string_equal(render("%(B)x", &in), "");
    assert_string_equal(render("%(B)c", &in), "");
}

static void test_positional_not_supported(void **state)
{
    (void)state;
    cg_access_fmt_t *f = (cg_access_fmt_t *)1;
    char err[256] = "";
    assert_int_equal(cg_access_fmt_compile("%s", &f, err, sizeof(err)), -ENOTSUP);
    assert_null(f);
    assert_non_null(strstr(err, "not supported"));
    assert_int_equal(cg_access_fmt_compile("%(h)s %d", &f, err, sizeof(err)), -ENOTSUP);
}

static bool env_cb(void *ctx, cg_str_t name, cg_str_t *value)
{
    (void)ctx;
    if (cg_str_caseeq(name, "remote_port")) {
        *value = S("51234");
        return true;
    }
    if (cg_str_caseeq(name, "wsgi.url_scheme")) {
        *value = S("ht\"tp");
        return true;
    }
    return false;
}

static void test_environ(void **state)
{
    (void)state;
    cg_access_info_t in = base_info();
    in.environ_lookup = env_cb;
    assert_string_equal(render("%({remote_port}e)s %({REMOTE_PORT}E)s %({wsgi.url_scheme}e)s "
                               "%({nope}e)s",
                               &in),
                        "51234 51234 ht\\\"tp -");

    cg_log_t log = {.access_fd = -1, .error_fd = -1};
    char err[64];
    assert_int_equal(cg_access_fmt_compile("%(h)s", &log.access_fmt, err, sizeof(err)), 0);
    assert_false(cg_log_access_needs_environ(&log));
    cg_access_fmt_free(log.access_fmt);
    assert_int_equal(cg_access_fmt_compile("%({x}e)s", &log.access_fmt, err, sizeof(err)), 0);
    assert_true(cg_log_access_needs_environ(&log));
    cg_access_fmt_free(log.access_fmt);
}

static void test_needs(void **state)
{
    (void)state;
    static const struct {
        const char *fmt;
        unsigned needs;
    } cases[] = {
        {"%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\"", 0},
        {"%({x-forwarded-for}i)s %(q)s", 0},
        {"%(U)s", CG_ACCESS_NEEDS_PATH_INFO},
        {"%({Content-Type}o)s", CG_ACCESS_NEEDS_RESP_HEADERS},
        {"%({remote_port}e)s %(U)s %({a}o)s",
         CG_ACCESS_NEEDS_ENVIRON | CG_ACCESS_NEEDS_PATH_INFO | CG_ACCESS_NEEDS_RESP_HEADERS},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cg_access_fmt_t *f = NULL;
        char err[64];
        assert_int_equal(cg_access_fmt_compile(cases[i].fmt, &f, err, sizeof(err)), 0);
        assert_int_equal(cg_access_fmt_needs(f), cases[i].needs);
        cg_access_fmt_free(f);
    }
    assert_int_equal(cg_access_fmt_needs(NULL), 0);
}

/* Values gathered ahead (as the WSGI worker does under the GIL) render as the
 * live lookup did. */
static void test_environ_gathered(void **state)
{
    (void)state;
    cg_access_fmt_t *f = NULL;
    char err[64];
    const char *fmt = "%({remote_port}e)s %({REMOTE_PORT}E)s %({wsgi.url_scheme}e)s %({nope}e)s "
                      "%({other}e)s";
    assert_int_equal(cg_access_fmt_compile(fmt, &f, err, sizeof(err)), 0);
    cg_str_t names[8];
    assert_int_equal(cg_access_fmt_environ_names(f, names, 8), 5);
    cg_access_env_t env = {.n = 0};
    for (size_t i = 0; i < 4; i++) { /* "other" left out of the table */
        bool dup = false;
        for (size_t k = 0; k < env.n; k++)
            dup |= cg_str_eq(env.name[k], names[i].ptr, names[i].len);
        if (dup)
            continue;
        env.name[env.n] = names[i];
        if (!env_cb(NULL, names[i], &env.value[env.n]))
            env.value[env.n] = (cg_str_t){NULL, 0};
        env.n++;
    }
    assert_int_equal(env.n, 3);
    cg_access_info_t in = base_info();
    in.environ_lookup = cg_access_env_lookup;
    in.environ_ctx = &env;
    assert_true(cg_access_fmt_render(f, &in, line, sizeof(line)) > 0);
    assert_string_equal(line, "51234 51234 ht\\\"tp - -");
    cg_access_fmt_free(f);
}

static void test_local_time(void **state)
{
    (void)state;
    cg_access_info_t in = base_info();
    setenv("TZ", "XYZ-5:30", 1);
    tzset();
    assert_string_equal(render("%(t)s", &in), "[26/Nov/2026:19:42:45 +0530]");
    setenv("TZ", "ABC+3", 1);
    tzset();
    assert_string_equal(render("%(t)s", &in), "[26/Nov/2026:11:12:45 -0300]");
    setup_utc(NULL);
}

static void test_truncation_and_unicode_status(void **state)
{
    (void)state;
    cg_access_info_t in = base_info();
    cg_access_fmt_t *f;
    char err[64], small[8];
    assert_int_equal(cg_access_fmt_compile("%(h)s %(s)s", &f, err, sizeof(err)), 0);
    assert_int_equal(cg_access_fmt_render(f, &in, small, sizeof(small)), 7);
    assert_string_equal(small, "127.0.0");
    in.status = S("  404\tNot Found");
    assert_int_equal(cg_access_fmt_render(f, &in, line, sizeof(line)), 13);
    assert_string_equal(line, "127.0.0.1 404");
    cg_access_fmt_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_format),
        cmocka_unit_test(test_each_atom),
        cmocka_unit_test(test_sent_zero_and_unknown),
        cmocka_unit_test(test_request_time),
        cmocka_unit_test(test_escaping_and_latin1),
        cmocka_unit_test(test_environ_style_headers),
        cmocka_unit_test(test_user),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_python_errors),
        cmocka_unit_test(test_positional_not_supported),
        cmocka_unit_test(test_environ),
        cmocka_unit_test(test_needs),
        cmocka_unit_test(test_environ_gathered),
        cmocka_unit_test(test_local_time),
        cmocka_unit_test(test_truncation_and_unicode_status),
    };
    return cmocka_run_group_tests(tests, setup_utc, NULL);
}
