/*
 * test_utf8.c - the WebSocket UTF-8 validator (src/http/utf8.c): boundary
 * code points, overlongs, surrogates, the top of Unicode, every split of the
 * input, the ASCII fast path at every alignment, and an exhaustive comparison
 * with a plain decoder over all sequences up to three bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/http/websocket.h"

/* A decoder written from the definition (RFC 3629 section 3-4), slow and
 * obvious, to hold the DFA against. */
static bool ref_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        uint32_t cp, min;
        size_t k;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i - 1 < k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

/* The verdict on s[0..n) fed whole, cut once at every point, and byte by
 * byte; all must agree. Returns it. */
static bool verdict_all_splits(const uint8_t *s, size_t n)
{
    bool whole = cg_ws_utf8_valid(s, n);
    for (size_t cut = 0; cut <= n; cut++) {
        uint32_t st = CG_WS_UTF8_ACCEPT;
        int r1 = cg_ws_utf8_feed(&st, s, cut);
        int r2 = r1 == 0 ? cg_ws_utf8_feed(&st, s + cut, n - cut) : r1;
        assert_int_equal(r2 == 0 && st == CG_WS_UTF8_ACCEPT, whole);
    }
    uint32_t st = CG_WS_UTF8_ACCEPT;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = cg_ws_utf8_feed(&st, s + i, 1);
    assert_int_equal(rc == 0 && st == CG_WS_UTF8_ACCEPT, whole);
    return whole;
}

#define CHECK(lit, expect)                                                                     \
    do {                                                                                       \
        const uint8_t s_[] = lit;                                                              \
        if (verdict_all_splits(s_, sizeof(s_) - 1) != (expect))                                \
            fail_msg("%s: expected %s", #lit, (expect) ? "valid" : "invalid");                 \
    } while (0)

static void test_valid(void **state)
{
    (void)state;
    CHECK("", true);
    CHECK("Hello, world", true);
    CHECK("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true); /* kosme, Autobahn 6.2 */
    CHECK("\xc2\x80", true);                                     /* U+0080 */
    CHECK("\xdf\xbf", true);                                     /* U+07FF */
    CHECK("\xe0\xa0\x80", true);                                 /* U+0800 */
    CHECK("\xed\x9f\xbf", true);                                 /* U+D7FF */
    CHECK("\xee\x80\x80", true);                                 /* U+E000 */
    CHECK("\xef\xbf\xbf", true);                                 /* U+FFFF */
    CHECK("\xf0\x90\x80\x80", true);                             /* U+10000 */
    CHECK("\xf4\x8f\xbf\xbf", true);                             /* U+10FFFF */
    CHECK("\xef\xbb\xbf", true);                                 /* BOM: allowed */
    CHECK("\x00", true);                                         /* NUL is a character */
}

static void test_invalid(void **state)
{
    (void)state;
    CHECK("\x80", false);                 /* lone continuation */
    CHECK("\xbf", false);
    CHECK("\xc0\x80", false);             /* overlong NUL */
    CHECK("\xc1\xbf", false);             /* overlong */
    CHECK("\xe0\x80\x80", false);         /* overlong 3-byte */
    CHECK("\xe0\x9f\xbf", false);
    CHECK("\xed\xa0\x80", false);         /* U+D800 surrogate */
    CHECK("\xed\xbf\xbf", false);         /* U+DFFF */
    CHECK("\xf0\x80\x80\x80", false);     /* overlong 4-byte */
    CHECK("\xf0\x8f\xbf\xbf", false);
    CHECK("\xf4\x90\x80\x80", false);     /* U+110000 */
    CHECK("\xf5\x80\x80\x80", false);
    CHECK("\xf8\x88\x80\x80\x80", false); /* 5-byte form */
    CHECK("\xfe", false);
    CHECK("\xff", false);
    CHECK("\xe2\x82", false);             /* ends inside a character */
    CHECK("\xf0\x9f\x98", false);
    CHECK("\xc2", false);
    CHECK("\xc2\x41", false);             /* a lead without its continuation */
    /* Autobahn 6.3.1: kosme, then a surrogate, then "edited" */
    CHECK("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
          false);
}

/* The incomplete-but-so-far-valid answer differs from the invalid one. */
static void test_incremental_states(void **state)
{
    (void)state;
    uint32_t st = CG_WS_UTF8_ACCEPT;
    assert_int_equal(cg_ws_utf8_feed(&st, "\xe2\x82", 2), 0);
    assert_int_not_equal(st, CG_WS_UTF8_ACCEPT);
    assert_int_equal(cg_ws_utf8_feed(&st, "\xac", 1), 0); /* U+20AC completes */
    assert_int_equal(st, CG_WS_UTF8_ACCEPT);
    assert_int_equal(cg_ws_utf8_feed(&st, "\xff", 1), -EILSEQ);
    assert_int_equal(st, CG_WS_UTF8_REJECT);
    /* rejection sticks, even for valid or empty input */
    assert_int_equal(cg_ws_utf8_feed(&st, "a", 1), -EILSEQ);
    assert_int_equal(cg_ws_utf8_feed(&st, "", 0), -EILSEQ);
}

/* The 8-bytes-at-a-time ASCII skip must not step over a bad byte, at any
 * offset or alignment, nor over a character cut at the end of a word. */
static void test_ascii_fast_path(void **state)
{
    (void)state;
    char buf[80];
    for (size_t align = 0; align < 8; align++) {
        for (size_t pos = 0; pos < 64; pos++) {
            char *s = buf + align;
            memset(s, 'a', 64);
            s[pos] = (char)0xff;
            assert_false(cg_ws_utf8_valid(s, 64));
            s[pos] = 'a';
            assert_true(cg_ws_utf8_valid(s, 64));
            if (pos + 1 < 64) {
                s[pos] = (char)0xc3; /* U+00E9 straddling any boundary */
                s[pos + 1] = (char)0xa9;
                assert_true(cg_ws_utf8_valid(s, 64));
                assert_false(cg_ws_utf8_valid(s, pos + 1));
            }
        }
    }
}

/* Every sequence of one, two and three bytes, and four-byte sequences over
 * the bytes where the rules change, against the plain decoder. */
static void test_exhaustive(void **state)
{
    (void)state;
    uint8_t s[4];
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (uint8_t)a;
        assert_int_equal(cg_ws_utf8_valid(s, 1), ref_valid(s, 1));
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            assert_int_equal(cg_ws_utf8_valid(s, 2), ref_valid(s, 2));
            for (unsigned c = 0; c < 256; c++) {
                s[2] = (uint8_t)c;
                if (cg_ws_utf8_valid(s, 3) != ref_valid(s, 3))
                    fail_msg("%02x %02x %02x", a, b, c);
            }
        }
    }
    static const uint8_t edge[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0,
                                   0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xf0, 0xf4, 0xf5, 0xff};
    for (unsigned a = 0xf0; a < 0x100; a++)
        for (size_t i = 0; i < sizeof(edge); i++)
            for (size_t j = 0; j < sizeof(edge); j++)
                for (size_t k = 0; k < sizeof(edge); k++) {
                    s[0] = (uint8_t)a, s[1] = edge[i], s[2] = edge[j], s[3] = edge[k];
                    if (cg_ws_utf8_valid(s, 4) != ref_valid(s, 4))
                        fail_msg("%02x %02x %02x %02x", s[0], s[1], s[2], s[3]);
                }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_incremental_states),
        cmocka_unit_test(test_ascii_fast_path),
        cmocka_unit_test(test_exhaustive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
