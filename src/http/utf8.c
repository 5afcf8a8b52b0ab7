/*
 * utf8.c - incremental UTF-8 validation for WebSocket text (RFC 6455 8.1:
 * invalid UTF-8 in a text message or a close reason fails the connection).
 *
 * A DFA over byte classes built from Unicode table 3-7 (well-formed UTF-8
 * byte sequences; RFC 3629 section 4): a lead byte decides how many
 * continuation bytes follow and, for E0, ED, F0 and F4, the narrower range
 * of the first one, which is how overlongs, surrogates and code points above
 * U+10FFFF are refused. The state after each byte is all that carries over,
 * so a text cut anywhere between two frames validates the same.
 */
#include "websocket.h"

/*
 * Byte classes:
 *  0  00..7F  ASCII              6  E0        needs A0..BF next
 *  1  80..8F  continuation       7  E1..EC, EE..EF
 *  2  90..9F  continuation       8  ED        needs 80..9F next (no surrogates)
 *  3  A0..BF  continuation       9  F0        needs 90..BF next (no overlongs)
 *  4  C0, C1, F5..FF  never      10 F1..F3
 *  5  C2..DF  2-byte lead        11 F4        needs 80..8F next (<= U+10FFFF)
 */
static const uint8_t cg__utf8_class[256] = {
#define R16(c) c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), /* 00..7F */
    R16(1),                                                         /* 80..8F */
    R16(2),                                                         /* 90..9F */
    R16(3), R16(3),                                                 /* A0..BF */
    4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,                 /* C0..CF */
    R16(5),                                                         /* D0..DF */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,                 /* E0..EF */
    9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,             /* F0..FF */
#undef R16
};

/*
 * States: 0 accept; 1, 2, 3 that many continuation bytes (80..BF) still to
 * come; 4 after E0, 5 after ED, 6 after F0, 7 after F4 (their first
 * continuation byte is restricted); 8 reject, which never leaves.
 */
#define X CG_WS_UTF8_REJECT
static const uint8_t cg__utf8_next[9][12] = {
    /*        0  1  2  3  4  5  6  7  8  9 10 11 */
    /* 0 */ {0, X, X, X, X, 1, 4, 2, 5, 6, 3, 7},
    /* 1 */ {X, 0, 0, 0, X, X, X, X, X, X, X, X},
    /* 2 */ {X, 1, 1, 1, X, X, X, X, X, X, X, X},
    /* 3 */ {X, 2, 2, 2, X, X, X, X, X, X, X, X},
    /* 4 */ {X, X, X, 1, X, X, X, X, X, X, X, X},
    /* 5 */ {X, 1, 1, X, X, X, X, X, X, X, X, X},
    /* 6 */ {X, X, 2, 2, X, X, X, X, X, X, X, X},
    /* 7 */ {X, 2, X, X, X, X, X, X, X, X, X, X},
    /* 8 */ {X, X, X, X, X, X, X, X, X, X, X, X},
};
#undef X

int cg_ws_utf8_feed(uint32_t *state, const void *data, size_t n)
{
    uint32_t s = *state;
    if (s == CG_WS_UTF8_REJECT)
        return -EILSEQ;
    /* an empty view may have no pointer at all, which must not be offset */
    if (n == 0)
        return 0;
    const unsigned char *p = data, *end = p + n;
    while (p < end) {
        /* Most text is ASCII: between characters, skip 8 bytes at a time
         * while none has its high bit set. */
        if (s == CG_WS_UTF8_ACCEPT) {
            while (end - p >= 8) {
                uint64_t w;
                memcpy(&w, p, 8);
                if (w & 0x8080808080808080ull)
                    break;
                p += 8;
            }
            while (p < end && *p < 0x80)
                p++;
            if (p == end)
                break;
        }
        s = cg__utf8_next[s][cg__utf8_class[*p++]];
        if (s == CG_WS_UTF8_REJECT) {
            *state = s;
            return -EILSEQ;
        }
    }
    *state = s;
    return 0;
}

bool cg_ws_utf8_valid(const void *p, size_t n)
{
    uint32_t s = CG_WS_UTF8_ACCEPT;
    return cg_ws_utf8_feed(&s, p, n) == 0 && s == CG_WS_UTF8_ACCEPT;
}
