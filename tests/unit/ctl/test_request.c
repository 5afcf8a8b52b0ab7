/*
 * test_request.c - src/ctl/request.c: frames (partial, whole, too large),
 * requests decoded as Gunicorn's _dispatch decodes them (shlex.split of the
 * command, str() of each arg, the id echoed), its error messages, Python's
 * int(), and the two answer envelopes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/ctl/ctl.h"

static void test_frame(void **state)
{
    (void)state;
    uint32_t announced = 0;
    const char f[] = "\0\0\0\3abcde";
    assert_int_equal(cg_ctl_frame(f, 0, 100, &announced), CG_EAGAIN);
    assert_int_equal(cg_ctl_frame(f, 3, 100, &announced), CG_EAGAIN);
    assert_int_equal(cg_ctl_frame(f, 6, 100, &announced), CG_EAGAIN);
    assert_int_equal(announced, 3);
    assert_int_equal(cg_ctl_frame(f, 7, 100, &announced), 3);
    assert_int_equal(cg_ctl_frame(f, 9, 100, &announced), 3); /* the next frame begins */
    assert_int_equal(cg_ctl_frame(f, 7, 2, &announced), -EMSGSIZE);
    /* a 16 MiB+1 prefix is refused from its 4 bytes alone */
    const char big[] = "\x01\x00\x00\x01";
    assert_int_equal(cg_ctl_frame(big, 4, CG_CTL_MAX_REQUEST, &announced), -EMSGSIZE);
    assert_int_equal(announced, 16 * 1024 * 1024 + 1);
    const char max[] = "\xff\xff\xff\xff";
    assert_int_equal(cg_ctl_frame(max, 4, CG_CTL_MAX_REQUEST, &announced), -EMSGSIZE);
    assert_int_equal(announced, UINT32_MAX);
}

/* Parse s; expect rc, and the words joined by '|' (or the error). */
static void check(const char *s, int rc, const char *want)
{
    cg_ctl_request_t r;
    char err[256] = "", got[512] = "";
    int n = cg_ctl_request_parse(&r, s, strlen(s), err, sizeof(err));
    if (n == 0) {
        for (size_t i = 0; i < r.nwords; i++) {
            strcat(got, i ? "|" : "");
            strcat(got, r.word[i]);
        }
    } else {
        strcpy(got, err);
    }
    cg_ctl_request_free(&r);
    if (n != rc || strcmp(got, want) != 0)
        fail_msg("%s: got %d '%s', want %d '%s'", s, n, got, rc, want);
}

static void test_words(void **state)
{
    (void)state;
    check("{\"id\": 1, \"command\": \"show workers\", \"args\": []}", 0, "show|workers");
    /* gunicornc sends "worker add 2" whole; others may pass args */
    check("{\"command\": \"  worker   add  2 \"}", 0, "worker|add|2");
    check("{\"command\": \"worker add\", \"args\": [2]}", 0, "worker|add|2");
    check("{\"command\": \"x\", \"args\": [\"a b\", true, false, null, -1.5e3]}", 0,
          "x|a b|True|False|None|-1.5e3");
    check("{\"command\": \"x\", \"args\": null}", 0, "x");
    /* shlex.split's POSIX rules (expected values from Python) */
    check("{\"command\": \"a\\\"b c\\\"d\"}", 0, "ab cd");
    check("{\"command\": \"'' x\"}", 0, "|x");
    check("{\"command\": \"a\\\\ b\"}", 0, "a b");
    check("{\"command\": \"\\\"a\\\\\\\"b\\\\\\\\c\\\\d\\\"\"}", 0, "a\"b\\c\\d");
    check("{\"command\": \"'a\\\\b'\"}", 0, "a\\b");
    check("{\"command\": \"x\\\\\\\"y\"}", 0, "x\"y");
    check("{\"command\": \"\\\"x\"}", CG_CTL_ANSWER_ERROR,
          "Invalid argument: No closing quotation");
    check("{\"command\": \"'x\"}", CG_CTL_ANSWER_ERROR, "Invalid argument: No closing quotation");
    check("{\"command\": \"x\\\\\"}", CG_CTL_ANSWER_ERROR,
          "Invalid argument: No escaped character");
    check("{\"command\": \"\\\"x\\\\\"}", CG_CTL_ANSWER_ERROR,
          "Invalid argument: No escaped character");
}

static void test_errors(void **state)
{
    (void)state;
    check("{}", CG_CTL_ANSWER_ERROR, "Empty command");
    check("{\"command\": \"  \"}", CG_CTL_ANSWER_ERROR, "Empty command");
    check("{\"command\": \"\", \"args\": [\"show\"]}", CG_CTL_ANSWER_ERROR, "Empty command");
    check("not json", -EPROTO, "Invalid JSON");
    check("[1]", -EPROTO, "Invalid request: not a JSON object");
    check("{\"command\": 5}", -EPROTO, "Invalid request: command must be a string, args a list");
    check("{\"command\": \"x\", \"args\": \"y\"}", -EPROTO,
          "Invalid request: command must be a string, args a list");
    check("{\"command\": \"x\", \"args\": [[1]]}", -EPROTO,
          "Invalid request: args must be strings or numbers");
    /* more words than we keep */
    char many[512] = "{\"command\": \"";
    for (int i = 0; i <= CG_CTL_MAX_WORDS; i++)
        strcat(many, "w ");
    strcat(many, "\"}");
    check(many, CG_CTL_ANSWER_ERROR, "Invalid argument: more than 32 words");
    /* more values than the token budget */
    char *huge = malloc(8 * CG_CTL_MAX_TOKENS + 64);
    strcpy(huge, "{\"command\": \"x\", \"args\": [");
    for (int i = 0; i < CG_CTL_MAX_TOKENS; i++)
        strcat(huge, i ? ",1" : "1");
    strcat(huge, "]}");
    check(huge, -EPROTO, "Invalid JSON: too many values");
    free(huge);
}

static void test_id(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"{\"command\": \"help\"}", "0"},
        {"{\"id\": 42, \"command\": \"help\"}", "42"},
        {"{\"id\": \"abc\", \"command\": \"help\"}", "\"abc\""},
        {"{\"command\": \"help\", \"id\": {\"k\": [1]}}", "{\"k\": [1]}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cg_ctl_request_t r;
        char err[64];
        assert_int_equal(cg_ctl_request_parse(&r, cases[i][0], strlen(cases[i][0]), err, 64), 0);
        assert_int_equal(r.id.len, strlen(cases[i][1]));
        assert_memory_equal(r.id.ptr, cases[i][1], r.id.len);
        cg_ctl_request_free(&r);
    }
}

static void test_parse_int(void **state)
{
    (void)state;
    long long v;
    char err[128];
    assert_int_equal(cg_ctl_parse_int(" 1_000 ", &v, err, sizeof(err)), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(cg_ctl_parse_int("+5", &v, err, sizeof(err)), 0);
    assert_int_equal(v, 5);
    assert_int_equal(cg_ctl_parse_int("-2", &v, err, sizeof(err)), 0);
    assert_int_equal(v, -2);
    static const char *const bad[][2] = {
        {"1__0", "'1__0'"}, {"_1", "'_1'"}, {"1_", "'1_'"}, {"0x10", "'0x10'"},
        {"", "''"},         {"abc", "'abc'"}, {"it's", "\"it's\""}, {"a\nb", "'a\\nb'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[128];
        assert_int_equal(cg_ctl_parse_int(bad[i][0], &v, err, sizeof(err)), -EINVAL);
        snprintf(want, sizeof(want), "invalid literal for int() with base 10: %s", bad[i][1]);
        assert_string_equal(err, want);
    }
    assert_int_equal(cg_ctl_parse_int("99999999999999999999", &v, err, sizeof(err)), -ERANGE);
}

static void test_answers(void **state)
{
    (void)state;
    size_t n;
    char *a = cg_ctl_answer_ok(CG_STR_LIT("7"), "{\"x\": 1}", 8, &n);
    const char want[] = "{\"id\": 7, \"status\": \"ok\", \"data\": {\"x\": 1}}";
    assert_non_null(a);
    assert_int_equal(n, 4 + sizeof(want) - 1);
    assert_memory_equal(a, "\0\0\0\x2b", 4); /* len(want) */
    assert_memory_equal(a + 4, want, sizeof(want) - 1);
    free(a);
    a = cg_ctl_answer_error((cg_str_t){NULL, 0}, "Message too large: 99", &n);
    const char werr[] = "{\"id\": null, \"status\": \"error\", \"error\": \"Message too large: 99\"}";
    assert_non_null(a);
    assert_int_equal(n, 4 + sizeof(werr) - 1);
    assert_memory_equal(a + 4, werr, sizeof(werr) - 1);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame),     cmocka_unit_test(test_words),
        cmocka_unit_test(test_errors),    cmocka_unit_test(test_id),
        cmocka_unit_test(test_parse_int), cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
