/*
 * test_websocket.c - RFC 6455 in src/http/websocket.c: the opening handshake
 * (driven through our own HTTP parser, as the ASGI worker will call it), the
 * examples of sections 1.3 and 5.7, every close code the frame parser can
 * fail with, message assembly with UTF-8 checks, and server frames. Client
 * byte streams are fed whole, in pieces of several sizes and byte by byte:
 * every way of cutting must give the same events and verdict.
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

/* ------------------------------------------------------------ helpers */

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d}; /* RFC 6455 5.7's key */

/* A client frame with the raw first byte b0 (FIN, RSV, opcode), masked with
 * MASK, the length in its shortest form unless `force_len` (7-bit values
 * 126/127 force the 16/64-bit forms). Returns its length. */
static size_t cframe_ex(uint8_t *out, uint8_t b0, const void *payload, size_t n, int force_len,
                        bool masked)
{
    size_t h = 0;
    out[h++] = b0;
    uint8_t mbit = masked ? 0x80 : 0;
    int form = force_len ? force_len : n < 126 ? 0 : n <= 0xffff ? 126 : 127;
    if (form == 0) {
        out[h++] = (uint8_t)(mbit | n);
    } else if (form == 126) {
        out[h++] = mbit | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    } else {
        out[h++] = mbit | 127;
        for (int i = 0; i < 8; i++)
            out[h++] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
    }
    if (masked) {
        memcpy(out + h, MASK, 4);
        h += 4;
    }
    const uint8_t *p = payload;
    for (size_t i = 0; i < n; i++)
        out[h + i] = masked ? (uint8_t)(p[i] ^ MASK[i & 3]) : p[i];
    return h + n;
}

static size_t cframe(uint8_t *out, uint8_t b0, const void *payload, size_t n)
{
    return cframe_ex(out, b0, payload, n, 0, true);
}

#define FIN 0x80
#define RSV1 0x40

/* What a stream of client bytes comes to. */
typedef struct outcome {
    int rc;              /* 0 all consumed, -EPROTO */
    uint16_t close_code; /* on -EPROTO, from the parser or the assembler */
    char log[4096];      /* "T:Hello;" messages, "P:.."/"O:.." ping/pong, "C:1000:bye;" */
    size_t consumed;
    size_t nevents;
} outcome_t;

static void logf_(outcome_t *r, const char *fmt, ...) CG_PRINTF(2, 3);
static void logf_(outcome_t *r, const char *fmt, ...)
{
    size_t l = strlen(r->log);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->log + l, sizeof(r->log) - l, fmt, ap);
    va_end(ap);
}

/*
 * Feed in[0..n) to a parser and an assembler, `step` more bytes each time
 * the parser asks for more. Messages shorter than 64 bytes are logged as
 * text, longer ones by length.
 */
static void run(const uint8_t *in, size_t n, size_t step, uint64_t max, cg_ws_pmd_t *pmd,
                outcome_t *r)
{
    static char buf[1 << 18];
    cg_ws_parser_t p;
    cg_ws_assembler_t a;
    size_t have = 0, fed = 0;
    memset(r, 0, sizeof(*r));
    cg_ws_parser_init(&p, max, pmd != NULL);
    cg_ws_assembler_init(&a, (size_t)max, pmd);
    for (;;) {
        cg_ws_event_t ev;
        ssize_t c = cg_ws_parse(&p, buf, have, &ev);
        if (c == CG_EAGAIN) {
            if (fed == n)
                break;
            size_t add = n - fed < step ? n - fed : step;
            assert_true(have + add <= sizeof(buf));
            memcpy(buf + have, in + fed, add);
            have += add;
            fed += add;
            continue;
        }
        if (c < 0) {
            assert_int_equal(c, -EPROTO);
            assert_non_null(p.error);
            r->rc = -EPROTO;
            r->close_code = p.close_code;
            return;
        }
        assert_true(c > 0 && (size_t)c <= have);
        r->nevents++;
        r->consumed += (size_t)c;
        if (ev.kind == CG_WS_EV_DATA) {
            assert_true(ev.data >= buf && ev.data + ev.len <= buf + c);
            int rc = cg_ws_assembler_feed(&a, &ev);
            if (rc < 0) {
                assert_int_equal(rc, -EPROTO);
                r->rc = rc;
                r->close_code = a.close_code;
                cg_ws_assembler_free(&a);
                return;
            }
            if (rc == 1) {
                char t = a.opcode == CG_WS_OP_TEXT ? 'T' : 'B';
                if (a.msg.len < 64)
                    logf_(r, "%c:%.*s;", t, (int)a.msg.len, a.msg.len ? a.msg.data : "");
                else
                    logf_(r, "%c#%zu;", t, a.msg.len);
            }
        } else if (ev.kind == CG_WS_EV_CLOSE) {
            logf_(r, "C:%u:%.*s;", ev.close_code, (int)ev.close_reason.len,
                  ev.close_reason.ptr);
        } else {
            logf_(r, "%c:%.*s;", ev.kind == CG_WS_EV_PING ? 'P' : 'O', (int)ev.len, ev.data);
        }
        memmove(buf, buf + c, have - (size_t)c);
        have -= (size_t)c;
    }
    cg_ws_assembler_free(&a);
}

/* run() with several read sizes; all must agree. Result of the whole read. */
static void run_all(const uint8_t *in, size_t n, uint64_t max, cg_ws_pmd_t *pmd, outcome_t *r)
{
    static const size_t steps[] = {1, 2, 3, 7, 64, 1000};
    static outcome_t o;
    run(in, n, n ? n : 1, max, pmd, r);
    for (size_t i = 0; i < CG_ARRAY_SIZE(steps); i++) {
        /* a fresh decompressor would be needed for each run with pmd */
        if (pmd)
            break;
        run(in, n, steps[i], max, pmd, &o);
        if (o.rc != r->rc || o.close_code != r->close_code || strcmp(o.log, r->log) != 0)
            fail_msg("step %zu: rc %d code %u log '%s' vs whole: rc %d code %u log '%s'",
                     steps[i], o.rc, o.close_code, o.log, r->rc, r->close_code, r->log);
    }
}

static void expect_ok(const uint8_t *in, size_t n, const char *log)
{
    outcome_t r;
    run_all(in, n, 1 << 20, NULL, &r);
    if (r.rc != 0)
        fail_msg("expected success, got close %u (log '%s')", r.close_code, r.log);
    assert_string_equal(r.log, log);
    assert_int_equal(r.consumed, n);
}

static void expect_close(const uint8_t *in, size_t n, uint64_t max, uint16_t code)
{
    outcome_t r;
    run_all(in, n, max, NULL, &r);
    if (r.rc != -EPROTO || r.close_code != code)
        fail_msg("expected close %u, got rc %d code %u (log '%s')", code, r.rc, r.close_code,
                 r.log);
}

/* ------------------------------------------------------------ RFC 6455 5.7 */

static void test_rfc_examples_in(void **state)
{
    (void)state;
    /* A single-frame masked text message */
    static const uint8_t masked_hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f,
                                           0x9f, 0x4d, 0x51, 0x58};
    expect_ok(masked_hello, sizeof(masked_hello), "T:Hello;");
    /* A single-frame unmasked text message: a server must refuse it (5.1) */
    static const uint8_t unmasked_hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    expect_close(unmasked_hello, sizeof(unmasked_hello), 1 << 20, 1002);
    /* A masked Pong with body "Hello" */
    static const uint8_t masked_pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f,
                                          0x9f, 0x4d, 0x51, 0x58};
    expect_ok(masked_pong, sizeof(masked_pong), "O:Hello;");

    /* A fragmented text message "Hel" + "lo", masked, with a ping between */
    uint8_t in[64];
    size_t n = cframe(in, CG_WS_OP_TEXT, "Hel", 3);
    n += cframe(in + n, FIN | CG_WS_OP_PING, "Hello", 5);
    n += cframe(in + n, FIN | CG_WS_OP_CONT, "lo", 2);
    expect_ok(in, n, "P:Hello;T:Hello;");
}

static void test_lengths(void **state)
{
    (void)state;
    /* 256 bytes and 64 KiB in single binary frames: the 16- and 64-bit
     * length forms (RFC 6455 5.7) */
    static uint8_t payload[70000], in[70100];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);
    size_t n = cframe(in, FIN | CG_WS_OP_BINARY, payload, 256);
    assert_int_equal(in[1], 0x80 | 126);
    assert_int_equal(in[2], 0x01);
    assert_int_equal(in[3], 0x00);
    expect_ok(in, n, "B#256;");
    n = cframe(in, FIN | CG_WS_OP_BINARY, payload, 65536);
    assert_int_equal(in[1], 0x80 | 127);
    expect_ok(in, n, "B#65536;");
    /* the unmasked content arrives intact */
    cg_ws_parser_t p;
    cg_ws_event_t ev;
    cg_ws_parser_init(&p, 1 << 20, false);
    ssize_t c = cg_ws_parse(&p, (char *)in, n, &ev);
    assert_int_equal(c, (ssize_t)n);
    assert_int_equal(ev.len, 65536);
    assert_memory_equal(ev.data, payload, 65536);
    assert_true(ev.first && ev.fin && ev.frame.fin);
    assert_int_equal(ev.frame.length, 65536);
    /* longer length forms than needed are accepted (not minimal, but the
     * length is unambiguous) */
    n = cframe_ex(in, FIN | CG_WS_OP_TEXT, "hi", 2, 127, true);
    expect_ok(in, n, "T:hi;");
    n = cframe_ex(in, FIN | CG_WS_OP_TEXT, "hi", 2, 126, true);
    expect_ok(in, n, "T:hi;");
    /* empty messages, including an empty fragmented one */
    n = cframe(in, FIN | CG_WS_OP_TEXT, "", 0);
    n += cframe(in + n, CG_WS_OP_BINARY, "", 0);
    n += cframe(in + n, FIN | CG_WS_OP_CONT, "", 0);
    expect_ok(in, n, "T:;B:;");
}

/* Payload pieces of one frame come as the bytes arrive; the mask position
 * carries over between them. */
static void test_pieces(void **state)
{
    (void)state;
    uint8_t in[300], payload[200];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)('a' + i % 26);
    size_t n = cframe(in, FIN | CG_WS_OP_BINARY, payload, 200);
    cg_ws_parser_t p;
    cg_ws_event_t ev;
    cg_ws_parser_init(&p, 1000, false);
    /* header (4) and mask (4), and no payload byte yet: wait */
    assert_int_equal(cg_ws_parse(&p, (char *)in, 8, &ev), CG_EAGAIN);
    /* header with 5 payload bytes */
    assert_int_equal(cg_ws_parse(&p, (char *)in, 13, &ev), 13);
    assert_true(ev.kind == CG_WS_EV_DATA && ev.first && !ev.fin && ev.len == 5);
    assert_memory_equal(ev.data, payload, 5);
    assert_int_equal(cg_ws_parse(&p, (char *)in + 13, 0, &ev), CG_EAGAIN);
    assert_int_equal(cg_ws_parse(&p, (char *)in + 13, 6, &ev), 6);
    assert_true(!ev.first && !ev.fin);
    assert_memory_equal(ev.data, payload + 5, 6);
    assert_int_equal(cg_ws_parse(&p, (char *)in + 19, n - 19 + 0, &ev), (ssize_t)(n - 19));
    assert_true(!ev.first && ev.fin);
    assert_memory_equal(ev.data, payload + 11, 189);
}

/* ------------------------------------------------------------ protocol errors */

static void test_frame_errors(void **state)
{
    (void)state;
    uint8_t in[200];
    size_t n;
    /* 5.2: reserved bits without an extension defining them */
    for (int b = 0x10; b <= 0x40; b <<= 1) {
        n = cframe(in, (uint8_t)(FIN | b | CG_WS_OP_TEXT), "x", 1);
        expect_close(in, n, 100, 1002);
    }
    /* 5.2: reserved opcodes */
    for (uint8_t op = 3; op <= 0xf; op++) {
        if (op >= 8 && op <= 0xA)
            continue;
        n = cframe(in, FIN | op, "x", 1);
        expect_close(in, n, 100, 1002);
    }
    /* 5.5: control frames of more than 125 bytes, or fragmented */
    static const uint8_t big[126] = {0};
    n = cframe(in, FIN | CG_WS_OP_PING, big, 126);
    expect_close(in, n, 1000, 1002);
    n = cframe(in, CG_WS_OP_PING, "x", 1);
    expect_close(in, n, 100, 1002);
    n = cframe(in, CG_WS_OP_CLOSE, "", 0);
    expect_close(in, n, 100, 1002);
    /* 5.4: a continuation with nothing to continue; a new message inside a
     * fragmented one */
    n = cframe(in, FIN | CG_WS_OP_CONT, "x", 1);
    expect_close(in, n, 100, 1002);
    n = cframe(in, CG_WS_OP_TEXT, "a", 1);
    n += cframe(in + n, FIN | CG_WS_OP_BINARY, "b", 1);
    expect_close(in, n, 100, 1002);
    /* after a complete message, a continuation is an error again */
    n = cframe(in, FIN | CG_WS_OP_TEXT, "a", 1);
    n += cframe(in + n, FIN | CG_WS_OP_CONT, "b", 1);
    expect_close(in, n, 100, 1002);
    /* 5.1: unmasked client frames, data and control */
    n = cframe_ex(in, FIN | CG_WS_OP_BINARY, "x", 1, 0, false);
    expect_close(in, n, 100, 1002);
    n = cframe_ex(in, FIN | CG_WS_OP_PING, "", 0, 0, false);
    expect_close(in, n, 100, 1002);
    /* 5.2: a 64-bit length with its most significant bit set */
    static const uint8_t msb[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    expect_close(msb, sizeof(msb), UINT64_MAX, 1002);
    /* the first two bytes are enough to refute a frame */
    static const uint8_t two[] = {0x83, 0x80};
    expect_close(two, 2, 100, 1002);
}

static void test_rsv1(void **state)
{
    (void)state;
    uint8_t in[64];
    size_t n;
    cg_ws_parser_t p;
    cg_ws_event_t ev;
    /* RFC 7692 6: RSV1 marks a compressed message, on its first frame only */
    n = cframe(in, FIN | RSV1 | CG_WS_OP_TEXT, "x", 1);
    expect_close(in, n, 100, 1002); /* not negotiated */
    cg_ws_parser_init(&p, 100, true);
    assert_int_equal(cg_ws_parse(&p, (char *)in, n, &ev), (ssize_t)n);
    assert_true(ev.compressed && ev.frame.rsv1);
    n = cframe(in, RSV1 | CG_WS_OP_TEXT, "x", 1);
    size_t m = cframe(in + n, FIN | RSV1 | CG_WS_OP_CONT, "y", 1);
    cg_ws_parser_init(&p, 100, true);
    assert_int_equal(cg_ws_parse(&p, (char *)in, n + m, &ev), (ssize_t)n);
    assert_int_equal(cg_ws_parse(&p, (char *)in + n, m, &ev), -EPROTO);
    assert_int_equal(p.close_code, 1002);
    n = cframe(in, FIN | RSV1 | CG_WS_OP_PING, "", 0);
    cg_ws_parser_init(&p, 100, true);
    assert_int_equal(cg_ws_parse(&p, (char *)in, n, &ev), -EPROTO);
    assert_int_equal(p.close_code, 1002);
    /* a continuation of a compressed message is compressed too */
    n = cframe(in, RSV1 | CG_WS_OP_BINARY, "x", 1);
    m = cframe(in + n, FIN | CG_WS_OP_CONT, "y", 1);
    cg_ws_parser_init(&p, 100, true);
    assert_int_equal(cg_ws_parse(&p, (char *)in, n + m, &ev), (ssize_t)n);
    assert_int_equal(cg_ws_parse(&p, (char *)in + n, m, &ev), (ssize_t)m);
    assert_true(ev.compressed && !ev.frame.rsv1 && ev.fin);
}

static void test_message_limit(void **state)
{
    (void)state;
    static uint8_t in[4096], payload[2048];
    size_t n;
    /* exactly the limit passes, one more byte is 1009 */
    n = cframe(in, FIN | CG_WS_OP_BINARY, payload, 1000);
    outcome_t r;
    run_all(in, n, 1000, NULL, &r);
    assert_int_equal(r.rc, 0);
    expect_close(in, n, 999, 1009);
    /* judged on the header: no payload byte needs to arrive */
    expect_close(in, 4, 999, 1009);
    /* across fragments */
    n = cframe(in, CG_WS_OP_TEXT, payload, 600);
    n += cframe(in + n, FIN | CG_WS_OP_CONT, payload, 401);
    expect_close(in, n, 1000, 1009);
    n = cframe(in, CG_WS_OP_BINARY, payload, 600);
    n += cframe(in + n, FIN | CG_WS_OP_CONT, payload, 400);
    run_all(in, n, 1000, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.log, "B#1000;");
    /* control frames do not count */
    n = cframe(in, CG_WS_OP_TEXT, payload, 0);
    n += cframe(in + n, FIN | CG_WS_OP_PING, payload, 100);
    n += cframe(in + n, FIN | CG_WS_OP_CONT, "a", 1);
    run_all(in, n, 1, NULL, &r);
    assert_int_equal(r.rc, 0);
    /* a 2^62-byte frame header: refused before anything is allocated */
    static const uint8_t huge[] = {0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    expect_close(huge, sizeof(huge), 16 << 20, 1009);
}

static void test_text_utf8(void **state)
{
    (void)state;
    uint8_t in[256];
    size_t n;
    /* 8.1: invalid UTF-8 in a text message is 1007 */
    n = cframe(in, FIN | CG_WS_OP_TEXT, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11);
    expect_ok(in, n, "T:\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5;");
    n = cframe(in, FIN | CG_WS_OP_TEXT, "a\xffz", 3);
    expect_close(in, n, 100, 1007);
    /* a character split between fragments is fine */
    n = cframe(in, CG_WS_OP_TEXT, "\xe2\x82", 2);
    n += cframe(in + n, FIN | CG_WS_OP_CONT, "\xac", 1);
    expect_ok(in, n, "T:\xe2\x82\xac;");
    /* an invalid first fragment fails before the message ends */
    n = cframe(in, CG_WS_OP_TEXT, "\xed\xa0\x80", 3);
    expect_close(in, n, 100, 1007);
    /* a message ending inside a character */
    n = cframe(in, CG_WS_OP_TEXT, "ok", 2);
    n += cframe(in + n, FIN | CG_WS_OP_CONT, "\xe2\x82", 2);
    expect_close(in, n, 100, 1007);
    /* binary is not checked */
    n = cframe(in, FIN | CG_WS_OP_BINARY, "\xff", 1);
    outcome_t r;
    run_all(in, n, 100, NULL, &r);
    assert_int_equal(r.rc, 0);
}

static void test_close_frames(void **state)
{
    (void)state;
    uint8_t in[200], pl[130];
    size_t n;
    /* no payload: no status (1005) */
    n = cframe(in, FIN | CG_WS_OP_CLOSE, "", 0);
    expect_ok(in, n, "C:1005:;");
    n = cframe(in, FIN | CG_WS_OP_CLOSE, "\x03\xe8" "bye", 5);
    expect_ok(in, n, "C:1000:bye;");
    /* 5.5.1: one byte cannot hold a code */
    n = cframe(in, FIN | CG_WS_OP_CLOSE, "\x03", 1);
    expect_close(in, n, 100, 1002);
    /* 7.4: which codes may be received */
    static const unsigned good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                    1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const unsigned bad[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                                   1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < CG_ARRAY_SIZE(good); i++) {
        pl[0] = (uint8_t)(good[i] >> 8), pl[1] = (uint8_t)good[i];
        n = cframe(in, FIN | CG_WS_OP_CLOSE, pl, 2);
        char log[32];
        snprintf(log, sizeof(log), "C:%u:;", good[i]);
        expect_ok(in, n, log);
    }
    for (size_t i = 0; i < CG_ARRAY_SIZE(bad); i++) {
        pl[0] = (uint8_t)(bad[i] >> 8), pl[1] = (uint8_t)bad[i];
        n = cframe(in, FIN | CG_WS_OP_CLOSE, pl, 2);
        expect_close(in, n, 100, 1002);
    }
    /* the reason is UTF-8 */
    n = cframe(in, FIN | CG_WS_OP_CLOSE, "\x03\xe8\xff", 3);
    expect_close(in, n, 100, 1007);
    /* a 123-byte reason fits, the frame is whole */
    pl[0] = 0x03, pl[1] = 0xe8;
    memset(pl + 2, 'r', 123);
    n = cframe(in, FIN | CG_WS_OP_CLOSE, pl, 125);
    outcome_t r;
    run_all(in, n, 1, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.nevents, 1);
    /* every prefix of a control frame asks for more, consuming nothing */
    cg_ws_parser_t p;
    cg_ws_event_t ev;
    cg_ws_parser_init(&p, 100, false);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(cg_ws_parse(&p, (char *)in, k, &ev), CG_EAGAIN);
    /* cg_ws_close_parse on its own */
    uint16_t code;
    cg_str_t reason;
    assert_int_equal(cg_ws_close_parse("\x0f\xa0" "x", 3, &code, &reason), 0);
    assert_int_equal(code, 4000);
    assert_int_equal(reason.len, 1);
    assert_int_equal(cg_ws_close_parse("\x03\xed", 2, &code, &reason), -EPROTO);
    assert_int_equal(code, 1002);
}

/* ------------------------------------------------------------ assembler */

static void test_assembler_misuse(void **state)
{
    (void)state;
    cg_ws_assembler_t a;
    cg_ws_event_t ev = {0};
    cg_ws_assembler_init(&a, 100, NULL);
    ev.kind = CG_WS_EV_PING;
    assert_int_equal(cg_ws_assembler_feed(&a, &ev), -EINVAL);
    ev.kind = CG_WS_EV_DATA;
    ev.first = false; /* a continuation of nothing */
    assert_int_equal(cg_ws_assembler_feed(&a, &ev), -EINVAL);
    ev.first = true;
    ev.compressed = true; /* compressed without a decompressor */
    assert_int_equal(cg_ws_assembler_feed(&a, &ev), -EINVAL);
    cg_ws_assembler_free(&a);
}

/* A large message's buffer is given back when the next message starts. */
static void test_assembler_buffer(void **state)
{
    (void)state;
    static char big[200000];
    cg_ws_assembler_t a;
    cg_ws_event_t ev = {.kind = CG_WS_EV_DATA, .opcode = CG_WS_OP_BINARY, .first = true,
                        .fin = true, .data = big, .len = sizeof(big)};
    cg_ws_assembler_init(&a, sizeof(big), NULL);
    assert_int_equal(cg_ws_assembler_feed(&a, &ev), 1);
    assert_int_equal(a.msg.len, sizeof(big));
    assert_true(a.msg.cap <= sizeof(big));
    ev.len = 3;
    assert_int_equal(cg_ws_assembler_feed(&a, &ev), 1);
    assert_true(a.msg.cap <= 4096);
    cg_ws_assembler_free(&a);
}

/* ------------------------------------------------------------ frames out */

static void test_rfc_examples_out(void **state)
{
    (void)state;
    char buf[70000];
    /* 5.7: unmasked "Hello", fragmented "Hel" "lo", unmasked ping */
    static const uint8_t hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    assert_int_equal(cg_ws_frame_write(CG_WS_OP_TEXT, false, "Hello", 5, 0, buf, sizeof(buf)), 7);
    assert_memory_equal(buf, hello, 7);
    static const uint8_t frag[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    assert_int_equal(cg_ws_frame_write(CG_WS_OP_TEXT, false, "Hello", 5, 3, buf, sizeof(buf)), 9);
    assert_memory_equal(buf, frag, 9);
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    assert_int_equal(cg_ws_frame_write(CG_WS_OP_PING, false, "Hello", 5, 0, buf, sizeof(buf)), 7);
    assert_memory_equal(buf, ping, 7);
    /* 256 bytes and 64 KiB in a single unmasked frame */
    static char payload[65536];
    assert_int_equal(cg_ws_frame_write(CG_WS_OP_BINARY, false, payload, 256, 0, buf, sizeof(buf)),
                     260);
    assert_memory_equal(buf, "\x82\x7e\x01\x00", 4);
    assert_int_equal(
        cg_ws_frame_write(CG_WS_OP_BINARY, false, payload, 65536, 0, buf, sizeof(buf)), 65546);
    assert_memory_equal(buf, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    /* RSV1 on the first frame only */
    assert_int_equal(cg_ws_frame_write(CG_WS_OP_BINARY, true, "abcd", 4, 2, buf, sizeof(buf)), 8);
    assert_memory_equal(buf, "\x42\x02" "ab\x80\x02" "cd", 8);
    /* an empty message is one empty frame, even when fragmenting */
    assert_int_equal(cg_ws_frame_write(CG_WS_OP_TEXT, false, "", 0, 3, buf, sizeof(buf)), 2);
    assert_memory_equal(buf, "\x81\x00", 2);
}

static void test_frame_header(void **state)
{
    (void)state;
    uint8_t h[10];
    assert_int_equal(cg_ws_frame_header(h, CG_WS_OP_TEXT, true, false, 0), 2);
    assert_int_equal(cg_ws_frame_header(h, CG_WS_OP_TEXT, true, false, 125), 2);
    assert_int_equal(h[1], 125);
    assert_int_equal(cg_ws_frame_header(h, CG_WS_OP_TEXT, true, false, 126), 4);
    assert_int_equal(cg_ws_frame_header(h, CG_WS_OP_TEXT, true, false, 65535), 4);
    assert_memory_equal(h, "\x81\x7e\xff\xff", 4);
    assert_int_equal(cg_ws_frame_header(h, CG_WS_OP_CONT, false, false, 65536), 10);
    assert_int_equal(cg_ws_frame_header(h, CG_WS_OP_BINARY, false, true, 1ull << 32), 10);
    assert_memory_equal(h, "\x42\x7f\x00\x00\x00\x01\x00\x00\x00\x00", 10);
}

static void test_frame_write_errors(void **state)
{
    (void)state;
    char buf[300], big[200] = {0};
    assert_int_equal(cg_ws_frame_write(CG_WS_OP_PING, false, big, 126, 0, buf, sizeof(buf)),
                     -EINVAL);
    assert_int_equal(cg_ws_frame_write(CG_WS_OP_PONG, false, big, 10, 5, buf, sizeof(buf)),
                     -EINVAL);
    assert_int_equal(cg_ws_frame_write(CG_WS_OP_PING, true, big, 1, 0, buf, sizeof(buf)),
                     -EINVAL);
    assert_int_equal(cg_ws_frame_write(CG_WS_OP_CONT, false, big, 1, 0, buf, sizeof(buf)),
                     -EINVAL);
    assert_int_equal(cg_ws_frame_write(3, false, big, 1, 0, buf, sizeof(buf)), -EINVAL);
    /* every capacity short of the frames: ENOBUFS, never a write past cap */
    for (size_t cap = 0; cap < 130; cap++)
        assert_int_equal(cg_ws_frame_write(CG_WS_OP_BINARY, false, big, 126, 50, buf, cap),
                         -ENOBUFS);
    assert_int_equal(cg_ws_frame_write(CG_WS_OP_BINARY, false, big, 126, 50, buf, 132), 132);
}

static void test_close_write(void **state)
{
    (void)state;
    char buf[200], reason[130];
    assert_int_equal(cg_ws_close_write(1000, "bye", 3, buf, sizeof(buf)), 7);
    assert_memory_equal(buf, "\x88\x05\x03\xe8" "bye", 7);
    assert_int_equal(cg_ws_close_write(0, NULL, 0, buf, sizeof(buf)), 2);
    assert_memory_equal(buf, "\x88\x00", 2);
    assert_int_equal(cg_ws_close_write(0, "x", 1, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(cg_ws_close_write(4999, "", 0, buf, sizeof(buf)), 4);
    assert_int_equal(cg_ws_close_write(1012, "", 0, buf, sizeof(buf)), 4);
    static const uint16_t bad[] = {999, 1004, 1005, 1006, 1015, 1016, 2999, 5000};
    for (size_t i = 0; i < CG_ARRAY_SIZE(bad); i++)
        assert_int_equal(cg_ws_close_write(bad[i], "", 0, buf, sizeof(buf)), -EINVAL);
    memset(reason, 'r', sizeof(reason));
    assert_int_equal(cg_ws_close_write(1000, reason, 123, buf, sizeof(buf)), 127);
    assert_int_equal(cg_ws_close_write(1000, reason, 124, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(cg_ws_close_write(1000, "\xc3", 1, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(cg_ws_close_write(1000, "bye", 3, buf, 6), -ENOBUFS);
}

/* ------------------------------------------------------------ handshake */

static cg_http_settings_t settings;

typedef struct parsed {
    char buf[4096];
    cg_http_header_t headers[64];
    cg_http_request_t req;
} parsed_t;

/* Parse a request head with our HTTP parser, as the worker does. */
static void parse_head(parsed_t *p, const char *head)
{
    cg_http_parser_t hp = {0};
    size_t n = strlen(head);
    assert_true(n < sizeof(p->buf));
    memcpy(p->buf, head, n);
    memset(&p->req, 0, sizeof(p->req));
    p->req.headers = p->headers;
    p->req.headers_cap = CG_ARRAY_SIZE(p->headers);
    ssize_t rc = cg_http_parse_request(&settings, &hp, p->buf, n, false, &p->req);
    if (rc != (ssize_t)n)
        fail_msg("parse: %zd", rc);
}

static int check(parsed_t *p, cg_ws_handshake_t *hs)
{
    return cg_ws_handshake_check(p->req.method, p->req.version_major, p->req.version_minor,
                                 p->req.headers, p->req.nheaders, hs);
}

/* RFC 6455 1.2's request */
#define RFC_REQUEST                                                                            \
    "GET /chat HTTP/1.1\r\n"                                                                   \
    "Host: server.example.com\r\n"                                                             \
    "Upgrade: websocket\r\n"                                                                   \
    "Connection: Upgrade\r\n"                                                                  \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"                                          \
    "Origin: http://example.com\r\n"                                                           \
    "Sec-WebSocket-Protocol: chat, superchat\r\n"                                              \
    "Sec-WebSocket-Version: 13\r\n"

static void test_accept_key(void **state)
{
    (void)state;
    char out[29];
    /* RFC 6455 1.3 */
    assert_int_equal(cg_ws_accept_key(CG_STR_LIT("dGhlIHNhbXBsZSBub25jZQ=="), out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    char longkey[100];
    memset(longkey, 'A', sizeof(longkey));
    assert_int_equal(cg_ws_accept_key((cg_str_t){longkey, sizeof(longkey)}, out), -EINVAL);
}

static void test_handshake_ok(void **state)
{
    (void)state;
    static parsed_t p;
    cg_ws_handshake_t hs;
    parse_head(&p, RFC_REQUEST "\r\n");
    assert_true(cg_ws_wants_upgrade(p.req.headers, p.req.nheaders));
    assert_int_equal(check(&p, &hs), 0);
    assert_string_equal(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(hs.nsubprotocols, 2);
    assert_true(cg_str_eq(hs.subprotocols[0], "chat", 4));
    assert_true(cg_str_eq(hs.subprotocols[1], "superchat", 9));
    assert_int_equal(hs.nextensions, 0);

    /* tokens are case-insensitive and may sit in lists; lists across lines */
    parse_head(&p, "GET / HTTP/1.1\r\nUpgrade: WebSocket\r\n"
                   "Connection: keep-alive, UPGRADE\r\n"
                   "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Protocol: a,, b\r\nSec-WebSocket-Protocol: c\r\n"
                   "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                   "Sec-WebSocket-Extensions: foo\r\n\r\n");
    assert_int_equal(check(&p, &hs), 0);
    assert_int_equal(hs.nsubprotocols, 3);
    assert_true(cg_str_eq(hs.subprotocols[2], "c", 1));
    assert_int_equal(hs.nextensions, 2);
    assert_true(cg_str_eq(hs.extensions[1], "foo", 3));
}

static void expect_refusal(const char *head, int status)
{
    static parsed_t p;
    cg_ws_handshake_t hs;
    parse_head(&p, head);
    if (check(&p, &hs) != -EPROTO || hs.status != status)
        fail_msg("expected %d for:\n%s", status, head);
    assert_non_null(hs.reason);
}

#define H_UPG "Upgrade: websocket\r\n"
#define H_CONN "Connection: Upgrade\r\n"
#define H_KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define H_VER "Sec-WebSocket-Version: 13\r\n"

static void test_handshake_refusals(void **state)
{
    (void)state;
    expect_refusal("POST / HTTP/1.1\r\n" H_UPG H_CONN H_KEY H_VER "\r\n", 400);
    expect_refusal("GET / HTTP/1.0\r\n" H_UPG H_CONN H_KEY H_VER "\r\n", 400);
    expect_refusal("GET / HTTP/1.1\r\n" H_CONN H_KEY H_VER "\r\n", 400);
    expect_refusal("GET / HTTP/1.1\r\nUpgrade: h2c\r\n" H_CONN H_KEY H_VER "\r\n", 400);
    expect_refusal("GET / HTTP/1.1\r\nUpgrade: websockets\r\n" H_CONN H_KEY H_VER "\r\n", 400);
    expect_refusal("GET / HTTP/1.1\r\n" H_UPG H_KEY H_VER "\r\n", 400);
    expect_refusal("GET / HTTP/1.1\r\n" H_UPG "Connection: keep-alive\r\n" H_KEY H_VER "\r\n",
                   400);
    expect_refusal("GET / HTTP/1.1\r\n" H_UPG "Connection: upgraded\r\n" H_KEY H_VER "\r\n",
                   400);
    /* version: missing is 400; another one, or two, is 426 (4.2.2 item 4) */
    expect_refusal("GET / HTTP/1.1\r\n" H_UPG H_CONN H_KEY "\r\n", 400);
    expect_refusal("GET / HTTP/1.1\r\n" H_UPG H_CONN H_KEY "Sec-WebSocket-Version: 8\r\n\r\n",
                   426);
    expect_refusal("GET / HTTP/1.1\r\n" H_UPG H_CONN H_KEY "Sec-WebSocket-Version: 13, 8\r\n\r\n",
                   426);
    expect_refusal("GET / HTTP/1.1\r\n" H_UPG H_CONN H_KEY H_VER H_VER "\r\n", 426);
    /* key: base64 of 16 bytes, once */
    expect_refusal("GET / HTTP/1.1\r\n" H_UPG H_CONN H_VER "\r\n", 400);
    expect_refusal("GET / HTTP/1.1\r\n" H_UPG H_CONN H_KEY H_KEY H_VER "\r\n", 400);
    expect_refusal("GET / HTTP/1.1\r\n" H_UPG H_CONN
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n" H_VER "\r\n",
                   400);
    expect_refusal("GET / HTTP/1.1\r\n" H_UPG H_CONN
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=x\r\n" H_VER "\r\n",
                   400);
    expect_refusal("GET / HTTP/1.1\r\n" H_UPG H_CONN
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub2!jZQ==\r\n" H_VER "\r\n",
                   400);
    expect_refusal("GET / HTTP/1.1\r\n" H_UPG H_CONN
                   "Sec-WebSocket-Key: ZGhlIHNhbXBsZSBub25jZSE=\r\n" H_VER "\r\n",
                   400); /* 17 bytes */
    /* subprotocols are tokens, and not too many */
    expect_refusal("GET / HTTP/1.1\r\n" H_UPG H_CONN H_KEY H_VER
                   "Sec-WebSocket-Protocol: a b\r\n\r\n",
                   400);
    char head[2048];
    int l = snprintf(head, sizeof(head), "GET / HTTP/1.1\r\n" H_UPG H_CONN H_KEY H_VER
                                         "Sec-WebSocket-Protocol: p0");
    for (int i = 1; i <= CG_WS_MAX_SUBPROTOCOLS; i++)
        l += snprintf(head + l, sizeof(head) - (size_t)l, ",p%d", i);
    snprintf(head + l, sizeof(head) - (size_t)l, "\r\n\r\n");
    expect_refusal(head, 400);
    l = snprintf(head, sizeof(head), "GET / HTTP/1.1\r\n" H_UPG H_CONN H_KEY H_VER);
    for (int i = 0; i <= CG_WS_MAX_EXTENSION_HEADERS; i++)
        l += snprintf(head + l, sizeof(head) - (size_t)l, "Sec-WebSocket-Extensions: x%d\r\n", i);
    snprintf(head + l, sizeof(head) - (size_t)l, "\r\n");
    expect_refusal(head, 400);
}

static void test_wants_upgrade(void **state)
{
    (void)state;
    cg_http_header_t h[2] = {
        {CG_STR_LIT("upgrade"), CG_STR_LIT("h2c, WEBSOCKET"), 0},
        {CG_STR_LIT("X"), CG_STR_LIT("y"), 0},
    };
    assert_true(cg_ws_wants_upgrade(h, 2));
    h[0].flags = CG_HTTP_HF_DROPPED;
    assert_false(cg_ws_wants_upgrade(h, 2));
    h[0].flags = 0;
    h[0].value = CG_STR_LIT("h2c");
    assert_false(cg_ws_wants_upgrade(h, 2));
    assert_false(cg_ws_wants_upgrade(h, 0));
}

static void test_handshake_response(void **state)
{
    (void)state;
    static parsed_t p;
    cg_ws_handshake_t hs;
    char buf[1024];
    parse_head(&p, RFC_REQUEST "\r\n");
    assert_int_equal(check(&p, &hs), 0);
    /* RFC 6455 1.2's answer */
    const char *expect = "HTTP/1.1 101 Switching Protocols\r\n"
                         "Upgrade: websocket\r\n"
                         "Connection: Upgrade\r\n"
                         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                         "Sec-WebSocket-Protocol: chat\r\n"
                         "\r\n";
    ssize_t n = cg_ws_handshake_response(&hs, CG_STR_LIT("chat"), NULL, NULL, 0, buf, sizeof(buf));
    assert_int_equal(n, (ssize_t)strlen(expect));
    assert_memory_equal(buf, expect, (size_t)n);
    for (size_t cap = 0; cap < (size_t)n; cap++)
        assert_int_equal(
            cg_ws_handshake_response(&hs, CG_STR_LIT("chat"), NULL, NULL, 0, buf, cap), -ENOBUFS);

    /* with permessage-deflate and extra headers, without a subprotocol */
    cg_ws_pmd_params_t pmd = {.client_no_context_takeover = true, .server_max_window_bits = 12};
    cg_str_t extra[] = {CG_STR_LIT("Server"), CG_STR_LIT("gunicorn"), CG_STR_LIT("Set-Cookie"),
                        CG_STR_LIT("a=b")};
    expect = "HTTP/1.1 101 Switching Protocols\r\n"
             "Upgrade: websocket\r\n"
             "Connection: Upgrade\r\n"
             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
             "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; "
             "server_max_window_bits=12\r\n"
             "Server: gunicorn\r\n"
             "Set-Cookie: a=b\r\n"
             "\r\n";
    n = cg_ws_handshake_response(&hs, (cg_str_t){NULL, 0}, &pmd, extra, 2, buf, sizeof(buf));
    assert_int_equal(n, (ssize_t)strlen(expect));
    assert_memory_equal(buf, expect, (size_t)n);

    /* nothing that could split the response */
    assert_int_equal(
        cg_ws_handshake_response(&hs, CG_STR_LIT("a b"), NULL, NULL, 0, buf, sizeof(buf)),
        -EINVAL);
    cg_str_t bad1[] = {CG_STR_LIT("X: y"), CG_STR_LIT("z")};
    assert_int_equal(cg_ws_handshake_response(&hs, CG_STR_LIT(""), NULL, bad1, 1, buf, sizeof(buf)),
                     -EINVAL);
    cg_str_t bad2[] = {CG_STR_LIT("X"), CG_STR_LIT("a\r\nInjected: 1")};
    assert_int_equal(cg_ws_handshake_response(&hs, CG_STR_LIT(""), NULL, bad2, 1, buf, sizeof(buf)),
                     -EINVAL);
}

static void test_reject_response(void **state)
{
    (void)state;
    cg_ws_handshake_t hs = {.status = 426, .reason = "unsupported Sec-WebSocket-Version"};
    char buf[512];
    ssize_t n = cg_ws_reject_response(&hs, buf, sizeof(buf));
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "HTTP/1.1 426 Upgrade Required\r\n"));
    assert_non_null(strstr(buf, "\r\nSec-WebSocket-Version: 13\r\n"));
    assert_non_null(strstr(buf, "\r\nContent-Length: 34\r\n\r\nunsupported Sec-WebSocket-Version\n"));
    hs.status = 400;
    hs.reason = "missing Upgrade: websocket";
    n = cg_ws_reject_response(&hs, buf, sizeof(buf));
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"));
    assert_null(strstr(buf, "Sec-WebSocket-Version"));
    for (size_t cap = 0; cap < (size_t)n; cap++)
        assert_int_equal(cg_ws_reject_response(&hs, buf, cap), -ENOBUFS);
}

int main(void)
{
    cg_http_settings_init(&settings, 4094, 100, 8190);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples_in),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_pieces),
        cmocka_unit_test(test_frame_errors),
        cmocka_unit_test(test_rsv1),
        cmocka_unit_test(test_message_limit),
        cmocka_unit_test(test_text_utf8),
        cmocka_unit_test(test_close_frames),
        cmocka_unit_test(test_assembler_misuse),
        cmocka_unit_test(test_assembler_buffer),
        cmocka_unit_test(test_rfc_examples_out),
        cmocka_unit_test(test_frame_header),
        cmocka_unit_test(test_frame_write_errors),
        cmocka_unit_test(test_close_write),
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_handshake_ok),
        cmocka_unit_test(test_handshake_refusals),
        cmocka_unit_test(test_wants_upgrade),
        cmocka_unit_test(test_handshake_response),
        cmocka_unit_test(test_reject_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
