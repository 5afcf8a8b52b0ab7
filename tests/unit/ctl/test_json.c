/*
 * test_json.c - src/ctl/json.c: the strict reader (what it accepts, what it
 * refuses, the token tree, lookups and unescaping) and the writer (Python
 * json.dumps()'s text, escapes, limits).
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

static int parse(const char *s, cg_json_tok_t *t, size_t cap)
{
    return cg_json_parse(s, strlen(s), t, cap);
}

static void test_accepts(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "0", "-0", "1.5", "-12.25e+3", "1E5", "true", "false", "null", "\"\"", "\"a\\u00e9\"",
        "\"\\ud83d\\ude00\"", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "[]", "{}", " [1, 2 ,3 ] ",
        "{\"a\": {\"b\": [null, {}]}}", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", "\r\n\t{}",
    };
    cg_json_tok_t t[32];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int n = parse(ok[i], t, 32);
        if (n <= 0)
            fail_msg("refused: %s (%d)", ok[i], n);
    }
}

static void test_refuses(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", " ", "01", "1.", ".5", "-", "1e", "+1", "NaN", "Infinity", "-Infinity", "tru",
        "nul", "[1,]", "{\"a\":1,}", "{a:1}", "{\"a\" 1}", "[1 2]", "\"abc", "\"\\x\"",
        "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\x01\"",
        "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xff\"", "\"\xe2\x82\"",
        "{} {}", "[] x", "\xef\xbb\xbf{}", "'a'", "[1]]", "{\"a\":1}}", "// c\n{}",
    };
    cg_json_tok_t t[32];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int n = parse(bad[i], t, 32);
        if (n != -EINVAL)
            fail_msg("accepted or wrong error: '%s' (%d)", bad[i], n);
    }
    /* a NUL inside the text is not whitespace */
    assert_int_equal(cg_json_parse("{}\0", 3, t, 32), -EINVAL);
}

static void test_depth_and_tokens(void **state)
{
    (void)state;
    char deep[2 * CG_JSON_MAX_DEPTH + 3];
    cg_json_tok_t t[128];
    size_t n = 0;
    for (int i = 0; i < CG_JSON_MAX_DEPTH; i++)
        deep[n++] = '[';
    for (int i = 0; i < CG_JSON_MAX_DEPTH; i++)
        deep[n++] = ']';
    deep[n] = '\0';
    assert_int_equal(parse(deep, t, 128), CG_JSON_MAX_DEPTH);
    /* one more level is refused */
    memmove(deep + 1, deep, n + 1);
    deep[0] = '[';
    strcat(deep, "]");
    assert_int_equal(parse(deep, t, 128), -EINVAL);
    assert_int_equal(parse("[1,2,3]", t, 3), -E2BIG);
    assert_int_equal(parse("[1,2,3]", t, 4), 4);
}

static void test_tree(void **state)
{
    (void)state;
    const char *s = "{\"id\": 7, \"command\": \"show workers\", \"args\": [1, \"x\"], \"id\": \"b\"}";
    cg_json_tok_t t[16];
    int n = parse(s, t, 16);
    assert_int_equal(n, 11);
    assert_int_equal(t[0].type, CG_JSON_OBJECT);
    assert_int_equal(t[0].size, 4);
    assert_int_equal(t[0].next, 11);
    /* the last "id" wins, as in Python */
    int id = cg_json_get(s, t, 0, "id");
    assert_int_equal(t[id].type, CG_JSON_STRING);
    assert_memory_equal(s + t[id].start, "b", 1);
    int args = cg_json_get(s, t, 0, "args");
    assert_int_equal(t[args].type, CG_JSON_ARRAY);
    assert_int_equal(t[args].size, 2);
    assert_int_equal(t[args + 1].type, CG_JSON_NUMBER);
    assert_int_equal(t[args + 1].end - t[args + 1].start, 1);
    assert_int_equal(t[args + 1].next, (uint32_t)args + 2);
    assert_int_equal(cg_json_get(s, t, 0, "nope"), -1);
    assert_int_equal(cg_json_get(s, t, args, "id"), -1); /* not an object */
    /* an escaped key matches its decoded form */
    const char *e = "{\"c\\u006fmmand\": 1}";
    assert_int_equal(parse(e, t, 16), 3);
    assert_int_equal(cg_json_get(e, t, 0, "command"), 2);
}

static void test_unescape(void **state)
{
    (void)state;
    const char *s = "\"a\\n\\u00e9\\ud83d\\ude00\\/\\\"\"";
    cg_json_tok_t t[2];
    char out[64];
    assert_int_equal(parse(s, t, 2), 1);
    ssize_t n = cg_json_unescape(s, &t[0], out, sizeof(out));
    assert_int_equal(n, 10);
    assert_string_equal(out, "a\n\xc3\xa9\xf0\x9f\x98\x80/\"");
    /* never longer than the text */
    assert_true((size_t)n <= t[0].end - t[0].start);
    assert_int_equal(cg_json_unescape(s, &t[0], out, 5), -ENOSPC);
    assert_int_equal(cg_json_unescape(s, &t[0], out, 0), -ENOSPC);
}

static char *written(cg_json_out_t *o)
{
    assert_false(o->failed);
    char *s = malloc(o->len + 1);
    memcpy(s, o->buf, o->len);
    s[o->len] = '\0';
    cg_json_out_free(o);
    return s;
}

static void test_writer_like_python(void **state)
{
    (void)state;
    cg_json_out_t o;
    cg_json_out_init(&o, 0, 4096);
    cg_json_obj_begin(&o);
    cg_json_key(&o, "a");
    cg_json_int(&o, -3);
    cg_json_key(&o, "b");
    cg_json_arr_begin(&o);
    cg_json_bool(&o, true);
    cg_json_null(&o);
    cg_json_obj_begin(&o);
    cg_json_obj_end(&o);
    cg_json_arr_begin(&o);
    cg_json_arr_end(&o);
    cg_json_arr_end(&o);
    cg_json_key(&o, "c");
    cg_json_round2(&o, 12.0);
    cg_json_key(&o, "d");
    cg_json_round2(&o, 0.5);
    cg_json_key(&o, "e");
    cg_json_round2(&o, 1.256);
    cg_json_key(&o, "f");
    cg_json_raw(&o, "{\"x\": 1}", 8);
    cg_json_obj_end(&o);
    char *s = written(&o);
    /* json.dumps({"a": -3, "b": [True, None, {}, []], "c": 12.0, "d": 0.5,
     *             "e": round(1.256, 2), "f": {"x": 1}}) */
    assert_string_equal(s, "{\"a\": -3, \"b\": [true, null, {}, []], \"c\": 12.0, \"d\": 0.5, "
                           "\"e\": 1.26, \"f\": {\"x\": 1}}");
    free(s);
}

static void test_writer_escapes(void **state)
{
    (void)state;
    cg_json_out_t o;
    cg_json_out_init(&o, 0, 4096);
    /* json.dumps("q\"b\\\n\r\t\b\f\x01\x7f é€😀") */
    cg_json_str(&o, "q\"b\\\n\r\t\b\f\x01\x7f \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    char *s = written(&o);
    assert_string_equal(s, "\"q\\\"b\\\\\\n\\r\\t\\b\\f\\u0001\\u007f "
                           "\\u00e9\\u20ac\\ud83d\\ude00\"");
    free(s);
    /* bytes that are not UTF-8 become U+FFFD rather than invalid JSON */
    cg_json_out_init(&o, 0, 4096);
    cg_json_strn(&o, "a\xff" "b", 3);
    s = written(&o);
    assert_string_equal(s, "\"a\\ufffdb\"");
    free(s);
}

static void test_writer_limits(void **state)
{
    (void)state;
    cg_json_out_t o;
    cg_json_out_init(&o, 4, 10);
    assert_int_equal(o.len, 4);
    cg_json_str(&o, "abc");
    assert_false(o.failed);
    cg_json_str(&o, "too long for the rest");
    assert_true(o.failed);
    cg_json_out_free(&o);
    /* unbalanced and too deep are failures, not crashes */
    cg_json_out_init(&o, 0, 4096);
    cg_json_obj_end(&o);
    assert_true(o.failed);
    cg_json_out_free(&o);
    cg_json_out_init(&o, 0, 4096);
    for (int i = 0; i <= CG_JSON_MAX_DEPTH; i++)
        cg_json_arr_begin(&o);
    assert_true(o.failed);
    cg_json_out_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),          cmocka_unit_test(test_refuses),
        cmocka_unit_test(test_depth_and_tokens), cmocka_unit_test(test_tree),
        cmocka_unit_test(test_unescape),         cmocka_unit_test(test_writer_like_python),
        cmocka_unit_test(test_writer_escapes),   cmocka_unit_test(test_writer_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
