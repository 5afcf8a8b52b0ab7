/*
 * pyfmt.c - Python's %-formatting, repr(), lenient base64 and strict UTF-8
 * checking, byte for byte (see pyfmt.h for why).
 *
 * References are CPython's Objects/unicodeobject.c (PyUnicode_Format,
 * unicode_repr), Python/formatter_unicode.c and Modules/binascii.c.
 */
#include "pyfmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ code points */

size_t cg_pyfmt_count_cp(const char *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)p[i] & 0xC0) != 0x80)
            k++;
    return k;
}

/* Decode one UTF-8 sequence (input mostly written by us, so well formed,
 * except where a caller-supplied value was not; those bytes pass as themselves). */
static uint32_t next_cp(const unsigned char *s, size_t n, size_t *i)
{
    unsigned char c = s[*i];
    size_t more = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    if (!more || *i + more >= n) {
        (*i)++;
        return c;
    }
    uint32_t cp = more == 3 ? c & 7u : more == 2 ? c & 15u : c & 31u;
    for (size_t k = 1; k <= more; k++)
        cp = (cp << 6) | (s[*i + k] & 63u);
    *i += more + 1;
    return cp;
}

void cg_pyfmt_put_cp(cg_pyfmt_out_t *o, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 63));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 63));
        b[2] = (char)(0x80 | (cp & 63));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 63));
        b[2] = (char)(0x80 | ((cp >> 6) & 63));
        b[3] = (char)(0x80 | (cp & 63));
        n = 4;
    }
    cg_pyfmt_put(o, b, n);
}

/* ------------------------------------------------------------ conversions */

const char *cg_pyfmt_parse_spec(const char *fmt, const char **p, cg_pyfmt_spec_t *spec,
                                char *msg, size_t msglen)
{
    const char *q = *p;
    uint8_t flags = 0;
    int width = -1, prec = -1;
    bool star = false;

    for (;; q++) {
        if (*q == '-')
            flags |= CG_PYFMT_LEFT;
        else if (*q == '+')
            flags |= CG_PYFMT_SIGN;
        else if (*q == ' ')
            flags |= CG_PYFMT_BLANK;
        else if (*q == '#')
            flags |= CG_PYFMT_ALT;
        else if (*q == '0')
            flags |= CG_PYFMT_ZERO;
        else
            break;
    }
    if (*q == '*')
        star = true;
    else if (*q >= '0' && *q <= '9') {
        width = 0;
        while (*q >= '0' && *q <= '9') {
            width = width < 100000 ? width * 10 + (*q - '0') : width;
            q++;
        }
    }
    if (*q == '.') {
        q++;
        prec = 0;
        if (*q == '*') {
            star = true;
        } else {
            while (*q >= '0' && *q <= '9') {
                prec = prec < 100000 ? prec * 10 + (*q - '0') : prec;
                q++;
            }
        }
    }
    if (star) {
        /* Python takes '*' from the arguments: with a mapping that is the
         * whole dict, refused on the spot */
        return "TypeError: * wants int";
    }
    if (*q == 'h' || *q == 'l' || *q == 'L')
        q++;
    if (!*q)
        return "ValueError: incomplete format";
    char conv = *q++;
    if (!strchr("sradiuoxXeEfFgGc", conv)) {
        unsigned char uc = (unsigned char)conv;
        unsigned cp = uc;
        if (uc >= 0x80) {
            /* report the code point, as Python does */
            const unsigned char *u = (const unsigned char *)q - 1;
            int more = uc >= 0xF0 ? 3 : uc >= 0xE0 ? 2 : uc >= 0xC0 ? 1 : 0;
            cp = more == 3 ? uc & 7u : more == 2 ? uc & 15u : more == 1 ? uc & 31u : uc;
            for (int i = 1; i <= more && u[i]; i++)
                cp = (cp << 6) | (u[i] & 63u);
        }
        snprintf(msg, msglen, "ValueError: unsupported format character '%c' (0x%x) at index %zu",
                 (cp >= 32 && cp <= 126) ? (char)cp : '?', cp,
                 cg_pyfmt_count_cp(fmt, (size_t)(q - 1 - fmt)));
        return msg;
    }
    *spec = (cg_pyfmt_spec_t){.flags = flags, .conv = conv, .width = width, .prec = prec};
    *p = q;
    return NULL;
}

void cg_pyfmt_int(cg_pyfmt_out_t *o, const cg_pyfmt_spec_t *spec, int64_t v)
{
    char digits[72], *d = digits + sizeof(digits);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char conv = spec->conv;
    unsigned base = conv == 'o' ? 8 : (conv == 'x' || conv == 'X') ? 16 : 10;
    const char *dig = conv == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        *--d = dig[u % base];
        u /= base;
    } while (u);
    size_t nd = (size_t)(digits + sizeof(digits) - d);
    size_t zeros = spec->prec > 0 && (size_t)spec->prec > nd ? (size_t)spec->prec - nd : 0;
    char pre[4];
    size_t np = 0;
    if (v < 0)
        pre[np++] = '-';
    else if (spec->flags & CG_PYFMT_SIGN)
        pre[np++] = '+';
    else if (spec->flags & CG_PYFMT_BLANK)
        pre[np++] = ' ';
    if ((spec->flags & CG_PYFMT_ALT) && base != 10) {
        pre[np++] = '0';
        pre[np++] = conv == 'o' ? 'o' : conv;
    }
    size_t total = np + zeros + nd;
    size_t fill = spec->width > 0 && (size_t)spec->width > total ? (size_t)spec->width - total : 0;
    bool left = spec->flags & CG_PYFMT_LEFT, zero = spec->flags & CG_PYFMT_ZERO;
    if (fill && !left && !zero)
        for (size_t i = 0; i < fill; i++)
            cg_pyfmt_putc(o, ' ');
    cg_pyfmt_put(o, pre, np);
    if (fill && !left && zero)
        for (size_t i = 0; i < fill; i++)
            cg_pyfmt_putc(o, '0');
    for (size_t i = 0; i < zeros; i++)
        cg_pyfmt_putc(o, '0');
    cg_pyfmt_put(o, d, nd);
    if (fill && left)
        for (size_t i = 0; i < fill; i++)
            cg_pyfmt_putc(o, ' ');
}

void cg_pyfmt_float(cg_pyfmt_out_t *o, const cg_pyfmt_spec_t *spec, int64_t v)
{
    char cspec[32], res[400];
    size_t n = 0;
    cspec[n++] = '%';
    if (spec->flags & CG_PYFMT_LEFT)
        cspec[n++] = '-';
    if (spec->flags & CG_PYFMT_SIGN)
        cspec[n++] = '+';
    if (spec->flags & CG_PYFMT_BLANK)
        cspec[n++] = ' ';
    if (spec->flags & CG_PYFMT_ALT)
        cspec[n++] = '#';
    if (spec->flags & CG_PYFMT_ZERO)
        cspec[n++] = '0';
    cspec[n++] = '*';
    cspec[n++] = '.';
    cspec[n++] = '*';
    cspec[n++] = spec->conv;
    cspec[n] = '\0';
    int w = spec->width < 0 ? 0 : spec->width > 300 ? 300 : spec->width;
    int p = spec->prec < 0 ? 6 : spec->prec > 300 ? 300 : spec->prec;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    int r = snprintf(res, sizeof(res), cspec, w, p, (double)v);
#pragma GCC diagnostic pop
    if (r > 0)
        cg_pyfmt_put(o, res, (size_t)r < sizeof(res) ? (size_t)r : sizeof(res) - 1);
}

void cg_pyfmt_u64(cg_pyfmt_out_t *o, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    cg_pyfmt_put(o, tmp + i, sizeof(tmp) - i);
}

void cg_pyfmt_pad(cg_pyfmt_out_t *o, size_t start, int width, bool left)
{
    if (width < 0)
        return;
    size_t have = cg_pyfmt_count_cp(o->buf + start, o->len - start);
    if (have >= (size_t)width)
        return;
    size_t n = (size_t)width - have;
    if (n > o->cap - o->len) {
        n = o->cap - o->len;
        o->overflow = true;
    }
    if (!left)
        memmove(o->buf + start + n, o->buf + start, o->len - start);
    memset(o->buf + (left ? o->len : start), ' ', n);
    o->len += n;
}

void cg_pyfmt_truncate(cg_pyfmt_out_t *o, size_t start, int prec)
{
    if (prec < 0)
        return;
    size_t k = 0;
    for (size_t i = start; i < o->len; i++) {
        if (((unsigned char)o->buf[i] & 0xC0) != 0x80) {
            if (k == (size_t)prec) {
                o->len = i;
                return;
            }
            k++;
        }
    }
}

void cg_pyfmt_repr(cg_pyfmt_out_t *o, size_t start, bool ascii_only)
{
    size_t n = o->len - start;
    char stackbuf[512];
    char *tmp = n <= sizeof(stackbuf) ? stackbuf : cg_xmalloc(n);
    memcpy(tmp, o->buf + start, n);
    o->len = start;

    bool has_sq = memchr(tmp, '\'', n) != NULL, has_dq = memchr(tmp, '"', n) != NULL;
    char quote = (has_sq && !has_dq) ? '"' : '\'';
    static const char hex[] = "0123456789abcdef";
    cg_pyfmt_putc(o, quote);
    for (size_t i = 0; i < n;) {
        uint32_t cp = next_cp((const unsigned char *)tmp, n, &i);
        char e[10];
        if (cp == (uint32_t)quote || cp == '\\') {
            e[0] = '\\';
            e[1] = (char)cp;
            cg_pyfmt_put(o, e, 2);
        } else if (cp == '\t' || cp == '\n' || cp == '\r') {
            e[0] = '\\';
            e[1] = cp == '\t' ? 't' : cp == '\n' ? 'n' : 'r';
            cg_pyfmt_put(o, e, 2);
        } else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0xA0) || cp == 0xAD ||
                   (ascii_only && cp >= 0x80)) {
            if (cp <= 0xFF) {
                e[0] = '\\', e[1] = 'x', e[2] = hex[cp >> 4], e[3] = hex[cp & 15];
                cg_pyfmt_put(o, e, 4);
            } else if (cp <= 0xFFFF) {
                e[0] = '\\', e[1] = 'u';
                for (int k = 0; k < 4; k++)
                    e[2 + k] = hex[(cp >> (12 - 4 * k)) & 15];
                cg_pyfmt_put(o, e, 6);
            } else {
                e[0] = '\\', e[1] = 'U';
                for (int k = 0; k < 8; k++)
                    e[2 + k] = hex[(cp >> (28 - 4 * k)) & 15];
                cg_pyfmt_put(o, e, 10);
            }
        } else {
            cg_pyfmt_put_cp(o, cp);
        }
    }
    cg_pyfmt_putc(o, quote);
    if (tmp != stackbuf)
        free(tmp);
}

/* ------------------------------------------------------------ str and codecs */

bool cg_pyfmt_utf8_check(const unsigned char *s, size_t n, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int more;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            more = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0)
                lo = 0xA0;
            if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0)
                lo = 0x90;
            if (c == 0xF4)
                hi = 0x8F;
        } else {
            snprintf(err, errlen,
                     "'utf-8' codec can't decode byte 0x%02x in position %zu: invalid start byte",
                     c, i);
            return false;
        }
        size_t k = 1;
        for (; k <= (size_t)more && i + k < n; k++) {
            unsigned char cc = s[i + k];
            if (cc < (k == 1 ? lo : 0x80) || cc > (k == 1 ? hi : 0xBF))
                break;
        }
        if (k <= (size_t)more) {
            const char *why = i + k >= n ? "unexpected end of data" : "invalid continuation byte";
            if (k == 1)
                snprintf(err, errlen,
                         "'utf-8' codec can't decode byte 0x%02x in position %zu: %s", c, i, why);
            else
                snprintf(err, errlen,
                         "'utf-8' codec can't decode bytes in position %zu-%zu: %s", i,
                         i + k - 1, why);
            return false;
        }
        i += (size_t)more + 1;
    }
    return true;
}

static int8_t b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (int8_t)(c - 'A');
    if (c >= 'a' && c <= 'z')
        return (int8_t)(c - 'a' + 26);
    if (c >= '0' && c <= '9')
        return (int8_t)(c - '0' + 52);
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

void cg_pyfmt_b64_init(cg_pyfmt_b64_t *b)
{
    b->buf = b->stackbuf;
    b->cap = sizeof(b->stackbuf);
    b->len = 0;
    b->quad_pos = b->pads = 0;
    b->leftchar = 0;
    b->done = false;
}

static void b64_out(cg_pyfmt_b64_t *b, unsigned char c)
{
    if (b->len == b->cap) {
        size_t ncap = b->cap * 2;
        unsigned char *n = cg_xmalloc(ncap);
        memcpy(n, b->buf, b->len);
        if (b->buf != b->stackbuf)
            free(b->buf);
        b->buf = n;
        b->cap = ncap;
    }
    b->buf[b->len++] = c;
}

void cg_pyfmt_b64_feed(cg_pyfmt_b64_t *b, const char *p, size_t n)
{
    for (size_t i = 0; i < n && !b->done; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '=') {
            if (b->quad_pos >= 2 && b->quad_pos + ++b->pads >= 4)
                b->done = true;
            continue;
        }
        int v = b64_value(ch);
        if (v < 0)
            continue;
        b->pads = 0;
        switch (b->quad_pos) {
        case 0:
            b->leftchar = (unsigned)v;
            b->quad_pos = 1;
            break;
        case 1:
            b64_out(b, (unsigned char)((b->leftchar << 2) | ((unsigned)v >> 4)));
            b->leftchar = (unsigned)v & 0x0F;
            b->quad_pos = 2;
            break;
        case 2:
            b64_out(b, (unsigned char)((b->leftchar << 4) | ((unsigned)v >> 2)));
            b->leftchar = (unsigned)v & 0x03;
            b->quad_pos = 3;
            break;
        default:
            b64_out(b, (unsigned char)((b->leftchar << 6) | (unsigned)v));
            b->quad_pos = 0;
            break;
        }
    }
}

bool cg_pyfmt_b64_finish(cg_pyfmt_b64_t *b, char *err, size_t errlen)
{
    if (!b->done && b->quad_pos == 1) {
        snprintf(err, errlen,
                 "Invalid base64-encoded string: number of data characters (%zu) cannot be 1 "
                 "more than a multiple of 4",
                 b->len / 3 * 4 + 1);
        return false;
    }
    if (!b->done && b->quad_pos != 0) {
        snprintf(err, errlen, "Incorrect padding");
        return false;
    }
    return true;
}

void cg_pyfmt_b64_release(cg_pyfmt_b64_t *b)
{
    if (b->buf && b->buf != b->stackbuf)
        free(b->buf);
    b->buf = NULL;
}
