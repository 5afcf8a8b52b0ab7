/*
 * test_pyfmt.c - src/log/pyfmt.c against what CPython 3.11 gives for the same
 * operation (every expected string below was printed by Python: `fmt % v`,
 * repr(), ascii(), str.split(), binascii.a2b_base64(), bytes.decode()).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../src/log/pyfmt.h"

static char buf[1024];

static cg_pyfmt_out_t out(size_t cap)
{
    memset(buf, 0, sizeof(buf));
    return (cg_pyfmt_out_t){.buf = buf, .cap = cap};
}

/* NUL-terminate what o holds and return it. */
static const char *str(cg_pyfmt_out_t *o)
{
    o->buf[o->len] = '\0';
    return o->buf;
}

/* Parse the spec of `fmt` (which starts with '%'), convert v as an int. */
static const char *int_fmt(const char *fmt, int64_t v)
{
    const char *p = fmt + 1;
    cg_pyfmt_spec_t spec;
    char msg[160];
    assert_null(cg_pyfmt_parse_spec(fmt, &p, &spec, msg, sizeof(msg)));
    cg_pyfmt_out_t o = out(sizeof(buf) - 1);
    if (strchr("eEfFgG", spec.conv))
        cg_pyfmt_float(&o, &spec, v);
    else
        cg_pyfmt_int(&o, &spec, v);
    cg_pyfmt_put(&o, p, strlen(p)); /* what follows the spec, e.g. "|" */
    return str(&o);
}

static void test_put_truncates(void **state)
{
    (void)state;
    cg_pyfmt_out_t o = out(4);
    cg_pyfmt_put(&o, "abc", 3);
    assert_false(o.overflow);
    cg_pyfmt_put(&o, "def", 3);
    assert_true(o.overflow);
    assert_string_equal(str(&o), "abcd");
    cg_pyfmt_putc(&o, 'x');
    assert_int_equal(o.len, 4);
}

static void test_code_points(void **state)
{
    (void)state;
    assert_int_equal(cg_pyfmt_count_cp("h\xc3\xa9llo", 6), 5);
    assert_int_equal(cg_pyfmt_count_cp("\xf0\x9f\x98\x80", 4), 1);
    cg_pyfmt_out_t o = out(sizeof(buf) - 1);
    cg_pyfmt_put_cp(&o, 'A');
    cg_pyfmt_put_cp(&o, 0xE9);
    cg_pyfmt_put_cp(&o, 0x20AC);
    cg_pyfmt_put_cp(&o, 0x1F600);
    assert_string_equal(str(&o), "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
}

static void test_parse_spec(void **state)
{
    (void)state;
    cg_pyfmt_spec_t spec;
    char msg[160];
    const char *fmt = "%(h)-08.3ld tail", *p = fmt + 4;
    assert_null(cg_pyfmt_parse_spec(fmt, &p, &spec, msg, sizeof(msg)));
    assert_int_equal(spec.flags, CG_PYFMT_LEFT | CG_PYFMT_ZERO);
    assert_int_equal(spec.width, 8);
    assert_int_equal(spec.prec, 3);
    assert_int_equal(spec.conv, 'd');
    assert_string_equal(p, " tail");

    fmt = "%(h)s";
    p = fmt + 4;
    assert_null(cg_pyfmt_parse_spec(fmt, &p, &spec, msg, sizeof(msg)));
    assert_int_equal(spec.width, -1);
    assert_int_equal(spec.prec, -1);

    fmt = "%(h)5y";
    p = fmt + 4;
    assert_string_equal(cg_pyfmt_parse_spec(fmt, &p, &spec, msg, sizeof(msg)),
                        "ValueError: unsupported format character 'y' (0x79) at index 5");
    assert_string_equal(p, "5y"); /* left alone */
    /* the index counts code points, the character is shown as '?' */
    fmt = "%(h)s %(\xc3\xa9)\xc3\xa9";
    p = fmt + 11;
    assert_string_equal(cg_pyfmt_parse_spec(fmt, &p, &spec, msg, sizeof(msg)),
                        "ValueError: unsupported format character '?' (0xe9) at index 10");
    fmt = "%(h)5";
    p = fmt + 4;
    assert_string_equal(cg_pyfmt_parse_spec(fmt, &p, &spec, msg, sizeof(msg)),
                        "ValueError: incomplete format");
    fmt = "%(h)*d";
    p = fmt + 4;
    assert_string_equal(cg_pyfmt_parse_spec(fmt, &p, &spec, msg, sizeof(msg)),
                        "TypeError: * wants int");
    fmt = "%(h).*d";
    p = fmt + 4;
    assert_string_equal(cg_pyfmt_parse_spec(fmt, &p, &spec, msg, sizeof(msg)),
                        "TypeError: * wants int");
}

static void test_int_conversions(void **state)
{
    (void)state;
    assert_string_equal(int_fmt("%+05d", 42), "+0042");
    assert_string_equal(int_fmt("%-6x|", 255), "ff    |");
    assert_string_equal(int_fmt("%#o", 8), "0o10");
    assert_string_equal(int_fmt("%#X", 255), "0XFF");
    assert_string_equal(int_fmt("% d", 7), " 7");
    assert_string_equal(int_fmt("%.5d", -42), "-00042");
    assert_string_equal(int_fmt("%08.3d", -7), "-0000007");
    assert_string_equal(int_fmt("%-+8i|", 5), "+5      |");
    assert_string_equal(int_fmt("%d", INT64_MIN), "-9223372036854775808");
}

static void test_float_conversions(void **state)
{
    (void)state;
    assert_string_equal(int_fmt("%010.2f", 3), "0000003.00");
    assert_string_equal(int_fmt("%e", 1500000), "1.500000e+06");
    assert_string_equal(int_fmt("%G", 100000000000000000), "1E+17");
}

static void test_u64(void **state)
{
    (void)state;
    cg_pyfmt_out_t o = out(sizeof(buf) - 1);
    cg_pyfmt_u64(&o, 0);
    cg_pyfmt_putc(&o, ' ');
    cg_pyfmt_u64(&o, UINT64_MAX);
    assert_string_equal(str(&o), "0 18446744073709551615");
}

static void test_pad_and_truncate(void **state)
{
    (void)state;
    cg_pyfmt_out_t o = out(sizeof(buf) - 1);
    cg_pyfmt_put(&o, "[", 1);
    cg_pyfmt_put(&o, "caf\xc3\xa9", 5);
    cg_pyfmt_pad(&o, 1, 6, false); /* '%6s' % 'café': width counts code points */
    assert_string_equal(str(&o), "[  caf\xc3\xa9");
    o = out(sizeof(buf) - 1);
    cg_pyfmt_put(&o, "caf\xc3\xa9", 5);
    cg_pyfmt_pad(&o, 0, 6, true);
    assert_string_equal(str(&o), "caf\xc3\xa9  ");
    cg_pyfmt_pad(&o, 0, -1, true);
    assert_string_equal(str(&o), "caf\xc3\xa9  ");

    o = out(sizeof(buf) - 1);
    cg_pyfmt_put(&o, "\xc3\xa9t\xc3\xa9", 5);
    cg_pyfmt_truncate(&o, 0, 2); /* '%.2s' % 'été' */
    assert_string_equal(str(&o), "\xc3\xa9t");
    cg_pyfmt_truncate(&o, 0, -1);
    assert_string_equal(str(&o), "\xc3\xa9t");
    cg_pyfmt_truncate(&o, 0, 0);
    assert_string_equal(str(&o), "");

    o = out(4); /* no room: pads what fits and says so */
    cg_pyfmt_put(&o, "ab", 2);
    cg_pyfmt_pad(&o, 0, 10, true);
    assert_true(o.overflow);
    assert_string_equal(str(&o), "ab  ");
}

static const char *repr_of(const char *s, bool ascii_only)
{
    cg_pyfmt_out_t o = out(sizeof(buf) - 1);
    cg_pyfmt_put(&o, "x=", 2);
    cg_pyfmt_put(&o, s, strlen(s));
    cg_pyfmt_repr(&o, 2, ascii_only);
    return str(&o) + 2;
}

static void test_repr(void **state)
{
    (void)state;
    assert_string_equal(repr_of("it's", false), "\"it's\"");
    assert_string_equal(repr_of("say \"hi\"", false), "'say \"hi\"'");
    assert_string_equal(repr_of("both ' and \"", false), "'both \\' and \"'");
    assert_string_equal(repr_of("a\tb\\", false), "'a\\tb\\\\'");
    assert_string_equal(repr_of("caf\xc3\xa9\xc2\xa0\xc2\xad", false), "'caf\xc3\xa9\\xa0\\xad'");
    assert_string_equal(repr_of("caf\xc3\xa9\xc2\xa0\xc2\xad", true), "'caf\\xe9\\xa0\\xad'");
    assert_string_equal(repr_of("\xe2\x82\xac\xf0\x9f\x98\x80\x7f", false),
                        "'\xe2\x82\xac\xf0\x9f\x98\x80\\x7f'");
    assert_string_equal(repr_of("\xe2\x82\xac\xf0\x9f\x98\x80\x7f", true),
                        "'\\u20ac\\U0001f600\\x7f'");
    assert_string_equal(repr_of("", false), "''");
}

static void test_first_word(void **state)
{
    (void)state;
    cg_str_t w = cg_pyfmt_first_word(CG_STR_LIT("  200 OK"));
    assert_int_equal(w.len, 3);
    assert_memory_equal(w.ptr, "200", 3);
    w = cg_pyfmt_first_word(CG_STR_LIT("\x1c" "200\x1fOK"));
    assert_int_equal(w.len, 3);
    assert_memory_equal(w.ptr, "200", 3);
    assert_int_equal(cg_pyfmt_first_word(CG_STR_LIT("   ")).len, 0);
    w = cg_pyfmt_first_word((cg_str_t){NULL, 0});
    assert_null(w.ptr);
    assert_int_equal(w.len, 0);
}

static const char *utf8_err(const char *s, size_t n)
{
    static char err[200];
    err[0] = '\0';
    if (cg_pyfmt_utf8_check((const unsigned char *)s, n, err, sizeof(err)))
        return NULL;
    return err;
}

static void test_utf8_check(void **state)
{
    (void)state;
    assert_null(utf8_err("caf\xc3\xa9 \xf0\x9f\x98\x80", 10));
    assert_string_equal(utf8_err("\xff", 1),
                        "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte");
    assert_string_equal(utf8_err("a\xe2\x82", 3), "'utf-8' codec can't decode bytes in position "
                                                  "1-2: unexpected end of data");
    assert_string_equal(utf8_err("a\xe2(x", 4), "'utf-8' codec can't decode byte 0xe2 in "
                                                "position 1: invalid continuation byte");
    assert_string_equal(utf8_err("\xed\xa0\x80", 3), "'utf-8' codec can't decode byte 0xed in "
                                                     "position 0: invalid continuation byte");
    assert_string_equal(utf8_err("\xf0\x9f\x98", 3), "'utf-8' codec can't decode bytes in "
                                                     "position 0-2: unexpected end of data");
}

/* a2b_base64 of the pieces; returns the bytes or "ERR <message>". */
static const char *b64(const char *a, const char *b)
{
    static char res[2100];
    char err[200];
    cg_pyfmt_b64_t d;
    cg_pyfmt_b64_init(&d);
    cg_pyfmt_b64_feed(&d, a, strlen(a));
    if (b != NULL)
        cg_pyfmt_b64_feed(&d, b, strlen(b));
    if (cg_pyfmt_b64_finish(&d, err, sizeof(err))) {
        assert_true(d.len < sizeof(res));
        memcpy(res, d.buf, d.len);
        res[d.len] = '\0';
    } else {
        snprintf(res, sizeof(res), "ERR %s", err);
    }
    cg_pyfmt_b64_release(&d);
    cg_pyfmt_b64_release(&d); /* twice is fine */
    return res;
}

static void test_base64(void **state)
{
    (void)state;
    assert_string_equal(b64("dXNlcjpwYXNz", NULL), "user:pass");
    assert_string_equal(b64("dX!Nl cjp*w", "YXNz"), "user:pass"); /* junk skipped, split input */
    assert_string_equal(b64("YQ==junk", NULL), "a");
    assert_string_equal(b64("YWJj", NULL), "abc");
    assert_string_equal(b64("YWI", NULL), "ERR Incorrect padding");
    assert_string_equal(b64("YQ=", NULL), "ERR Incorrect padding");
    assert_string_equal(b64("YWJjZ", NULL), "ERR Invalid base64-encoded string: number of data "
                                            "characters (5) cannot be 1 more than a multiple of 4");

    /* beyond the inline buffer: 1600 'a's encode as 2136 characters */
    char in[2200];
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;
    for (int i = 0; i < 1600; i += 3) {
        unsigned v = ('a' << 16) | ('a' << 8) | 'a';
        in[n++] = tbl[(v >> 18) & 63];
        in[n++] = tbl[(v >> 12) & 63];
        in[n++] = tbl[(v >> 6) & 63];
        in[n++] = tbl[v & 63];
    }
    in[n] = '\0';
    const char *r = b64(in, NULL);
    assert_int_equal(strlen(r), 1602); /* 534 whole triples */
    for (size_t i = 0; i < 1602; i++)
        assert_int_equal(r[i], 'a');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_truncates),     cmocka_unit_test(test_code_points),
        cmocka_unit_test(test_parse_spec),        cmocka_unit_test(test_int_conversions),
        cmocka_unit_test(test_float_conversions), cmocka_unit_test(test_u64),
        cmocka_unit_test(test_pad_and_truncate),  cmocka_unit_test(test_repr),
        cmocka_unit_test(test_first_word),        cmocka_unit_test(test_utf8_check),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
