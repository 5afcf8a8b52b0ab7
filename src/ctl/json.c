/*
 * json.c - the control protocol's JSON: a strict, allocation-free reader
 * (RFC 8259) that returns views into the input, and a writer that produces
 * what Python's json.dumps() does with its defaults, so our answers read the
 * same as Gunicorn's byte for byte.
 */
#include "ctl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reader ------------------------------------------------------------ */

typedef struct cg__jp {
    const char *s;
    size_t len, pos;
    cg_json_tok_t *t;
    size_t cap, n;
} cg__jp_t;

static void cg__ws(cg__jp_t *p)
{
    /* RFC 8259 §2: only these four */
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        p->pos++;
    }
}

static int cg__hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -EINVAL;
    }
    *out = v;
    return 0;
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629 §4: no overlong
 * forms, no surrogates, nothing past U+10FFFF), or 0. */
static size_t cg__utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

/* A \u escape at s (pointing at the 'u'), the low half of a pair included;
 * returns the escape's length after the backslash, or 0 when invalid. */
static size_t cg__uescape(const char *s, size_t avail, uint32_t *cp)
{
    uint32_t hi, lo;
    if (avail < 5 || cg__hex4(s + 1, &hi) < 0)
        return 0;
    if (hi >= 0xDC00 && hi <= 0xDFFF)
        return 0; /* a low half alone */
    if (hi < 0xD800 || hi > 0xDBFF) {
        *cp = hi;
        return 5;
    }
    if (avail < 11 || s[5] != '\\' || s[6] != 'u' || cg__hex4(s + 7, &lo) < 0 || lo < 0xDC00 ||
        lo > 0xDFFF)
        return 0; /* a high half must be followed by its low half */
    *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    return 11;
}

static int cg__string(cg__jp_t *p, size_t *start, size_t *end)
{
    p->pos++; /* the opening quote */
    *start = p->pos;
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            *end = p->pos++;
            return 0;
        }
        if (c < 0x20)
            return -EINVAL; /* RFC 8259 §7: control characters must be escaped */
        if (c == '\\') {
            if (p->pos + 1 >= p->len)
                return -EINVAL;
            char e = p->s[p->pos + 1];
            if (e == 'u') {
                uint32_t cp;
                size_t k = cg__uescape(p->s + p->pos + 1, p->len - p->pos - 1, &cp);
                if (k == 0)
                    return -EINVAL;
                p->pos += 1 + k;
            } else if (strchr("\"\\/bfnrt", e) != NULL && e != '\0') {
                p->pos += 2;
            } else {
                return -EINVAL;
            }
            continue;
        }
        size_t k = cg__utf8_len((const unsigned char *)p->s + p->pos, p->len - p->pos);
        if (k == 0)
            return -EINVAL;
        p->pos += k;
    }
    return -EINVAL;
}

static bool cg__digit(const cg__jp_t *p)
{
    return p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9';
}

/* RFC 8259 §6: -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)? */
static int cg__number(cg__jp_t *p)
{
    if (p->s[p->pos] == '-')
        p->pos++;
    if (!cg__digit(p))
        return -EINVAL;
    if (p->s[p->pos] == '0') {
        p->pos++;
    } else {
        while (cg__digit(p))
            p->pos++;
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        if (!cg__digit(p))
            return -EINVAL;
        while (cg__digit(p))
            p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (!cg__digit(p))
            return -EINVAL;
        while (cg__digit(p))
            p->pos++;
    }
    return 0;
}

static int cg__literal(cg__jp_t *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return -EINVAL;
    p->pos += n;
    return 0;
}

static int cg__value(cg__jp_t *p, unsigned depth);

/* An object or an array: members/elements after the opening bracket. */
static int cg__container(cg__jp_t *p, cg_json_tok_t *t, unsigned depth)
{
    bool obj = t->type == CG_JSON_OBJECT;
    char close = obj ? '}' : ']';
    int r;
    if (depth >= CG_JSON_MAX_DEPTH)
        return -EINVAL;
    p->pos++;
    cg__ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return 0;
    }
    for (;;) {
        if (obj) {
            cg__ws(p);
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return -EINVAL;
            if ((r = cg__value(p, depth + 1)) < 0) /* the key: a string token */
                return r;
            cg__ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':')
                return -EINVAL;
            p->pos++;
        }
        if ((r = cg__value(p, depth + 1)) < 0)
            return r;
        t->size++;
        cg__ws(p);
        if (p->pos >= p->len)
            return -EINVAL;
        if (p->s[p->pos] == close) {
            p->pos++;
            return 0;
        }
        if (p->s[p->pos] != ',')
            return -EINVAL;
        p->pos++;
    }
}

static int cg__value(cg__jp_t *p, unsigned depth)
{
    cg__ws(p);
    if (p->pos >= p->len)
        return -EINVAL;
    if (p->n >= p->cap)
        return -E2BIG;
    size_t idx = p->n++;
    /* t is re-read through the index: children are written after it */
    cg_json_tok_t tok = {.start = (uint32_t)p->pos};
    size_t start = p->pos, end = 0;
    int r;
    switch (p->s[p->pos]) {
    case '{':
    case '[':
        tok.type = p->s[p->pos] == '{' ? CG_JSON_OBJECT : CG_JSON_ARRAY;
        p->t[idx] = tok;
        r = cg__container(p, &p->t[idx], depth);
        tok.size = p->t[idx].size;
        end = p->pos;
        break;
    case '"':
        tok.type = CG_JSON_STRING;
        r = cg__string(p, &start, &end);
        break;
    case 't':
        tok.type = CG_JSON_TRUE;
        r = cg__literal(p, "true");
        end = p->pos;
        break;
    case 'f':
        tok.type = CG_JSON_FALSE;
        r = cg__literal(p, "false");
        end = p->pos;
        break;
    case 'n':
        tok.type = CG_JSON_NULL;
        r = cg__literal(p, "null");
        end = p->pos;
        break;
    default:
        tok.type = CG_JSON_NUMBER;
        r = cg__number(p);
        end = p->pos;
        break;
    }
    if (r < 0)
        return r;
    tok.start = (uint32_t)start;
    tok.end = (uint32_t)end;
    tok.next = (uint32_t)p->n;
    p->t[idx] = tok;
    return 0;
}

int cg_json_parse(const char *s, size_t len, cg_json_tok_t *toks, size_t cap)
{
    if (len > UINT32_MAX || cap > INT32_MAX)
        return -E2BIG;
    cg__jp_t p = {.s = s, .len = len, .t = toks, .cap = cap};
    int r = cg__value(&p, 0);
    if (r < 0)
        return r;
    cg__ws(&p);
    if (p.pos != len)
        return -EINVAL; /* "Extra data" in Python's words */
    return (int)p.n;
}

static size_t cg__put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

ssize_t cg_json_unescape(const char *s, const cg_json_tok_t *t, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = t->start; i < t->end;) {
        char buf[4];
        size_t k;
        if (s[i] != '\\') {
            buf[0] = s[i];
            k = 1;
            i++;
        } else {
            /* the parser validated every escape */
            char e = s[i + 1];
            if (e == 'u') {
                uint32_t cp = 0;
                size_t len = cg__uescape(s + i + 1, t->end - i - 1, &cp);
                k = cg__put_utf8(buf, cp);
                i += 1 + len;
            } else {
                static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
                buf[0] = to[strchr(from, e) - from];
                k = 1;
                i += 2;
            }
        }
        if (n + k >= cap)
            return -ENOSPC;
        memcpy(out + n, buf, k);
        n += k;
    }
    if (cap == 0)
        return -ENOSPC;
    out[n] = '\0';
    return (ssize_t)n;
}

int cg_json_get(const char *s, const cg_json_tok_t *toks, int obj, const char *key)
{
    const cg_json_tok_t *o = &toks[obj];
    if (o->type != CG_JSON_OBJECT)
        return -1;
    int found = -1;
    uint32_t i = (uint32_t)obj + 1;
    size_t klen = strlen(key);
    for (uint32_t m = 0; m < o->size; m++) {
        char name[64];
        ssize_t n = cg_json_unescape(s, &toks[i], name, sizeof(name));
        if (n >= 0 && (size_t)n == klen && memcmp(name, key, klen) == 0)
            found = (int)i + 1;
        i = toks[i + 1].next;
    }
    return found;
}

/* ---- writer ------------------------------------------------------------ */

void cg_json_out_init(cg_json_out_t *o, size_t reserve, size_t max)
{
    memset(o, 0, sizeof(*o));
    o->max = max;
    o->len = reserve;
    if (reserve > 0) {
        o->cap = reserve < 256 ? 256 : reserve;
        o->buf = calloc(1, o->cap);
        o->failed = o->buf == NULL;
    }
}

void cg_json_out_free(cg_json_out_t *o)
{
    free(o->buf);
    o->buf = NULL;
    o->len = o->cap = 0;
}

static void cg__put(cg_json_out_t *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (o->len > o->max || n > o->max - o->len) {
        o->failed = true;
        return;
    }
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->len + n)
            cap *= 2;
        char *b = realloc(o->buf, cap);
        if (b == NULL) {
            o->failed = true;
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

/* Before any value: the separator from the previous one in its container. */
static void cg__pre(cg_json_out_t *o)
{
    if (o->after_key) {
        o->after_key = false;
        return;
    }
    if (o->more[o->depth])
        cg__put(o, ", ", 2);
    o->more[o->depth] = true;
}

static void cg__open(cg_json_out_t *o, char c)
{
    cg__pre(o);
    if (o->depth >= CG_JSON_MAX_DEPTH) {
        o->failed = true;
        return;
    }
    cg__put(o, &c, 1);
    o->depth++;
    o->more[o->depth] = false;
}

static void cg__close(cg_json_out_t *o, char c)
{
    if (o->depth == 0) {
        o->failed = true;
        return;
    }
    o->depth--;
    cg__put(o, &c, 1);
}

void cg_json_obj_begin(cg_json_out_t *o)
{
    cg__open(o, '{');
}

void cg_json_obj_end(cg_json_out_t *o)
{
    cg__close(o, '}');
}

void cg_json_arr_begin(cg_json_out_t *o)
{
    cg__open(o, '[');
}

void cg_json_arr_end(cg_json_out_t *o)
{
    cg__close(o, ']');
}

/* The quoted text, escaped as json.dumps(ensure_ascii=True) escapes it. */
static void cg__quoted(cg_json_out_t *o, const char *s, size_t n)
{
    cg__put(o, "\"", 1);
    size_t run = 0; /* bytes written as they are, pending */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
            run++;
            i++;
            continue;
        }
        cg__put(o, s + i - run, run);
        run = 0;
        char esc[16];
        int k;
        switch (c) {
        case '"': k = snprintf(esc, sizeof(esc), "\\\""); break;
        case '\\': k = snprintf(esc, sizeof(esc), "\\\\"); break;
        case '\n': k = snprintf(esc, sizeof(esc), "\\n"); break;
        case '\r': k = snprintf(esc, sizeof(esc), "\\r"); break;
        case '\t': k = snprintf(esc, sizeof(esc), "\\t"); break;
        case '\b': k = snprintf(esc, sizeof(esc), "\\b"); break;
        case '\f': k = snprintf(esc, sizeof(esc), "\\f"); break;
        default: {
            uint32_t cp = c;
            size_t len = cg__utf8_len((const unsigned char *)s + i, n - i);
            if (c >= 0x80 && len == 0) {
                cp = 0xFFFD; /* not UTF-8: written as Python's "replace" would */
                len = 1;
            } else if (c >= 0x80) {
                cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
                for (size_t j = 1; j < len; j++)
                    cp = (cp << 6) | ((unsigned char)s[i + j] & 0x3F);
            } else {
                len = 1;
            }
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                k = snprintf(esc, sizeof(esc), "\\u%04x\\u%04x", 0xD800 + (v >> 10),
                             0xDC00 + (v & 0x3FF));
            } else {
                k = snprintf(esc, sizeof(esc), "\\u%04x", cp);
            }
            cg__put(o, esc, (size_t)k);
            i += len;
            continue;
        }
        }
        cg__put(o, esc, (size_t)k);
        i++;
    }
    cg__put(o, s + n - run, run);
    cg__put(o, "\"", 1);
}

void cg_json_key(cg_json_out_t *o, const char *key)
{
    cg__pre(o);
    cg__quoted(o, key, strlen(key));
    cg__put(o, ": ", 2);
    o->after_key = true;
}

void cg_json_strn(cg_json_out_t *o, const char *s, size_t n)
{
    cg__pre(o);
    cg__quoted(o, s, n);
}

void cg_json_str(cg_json_out_t *o, const char *s)
{
    cg_json_strn(o, s, strlen(s));
}

void cg_json_int(cg_json_out_t *o, long long v)
{
    char b[32];
    int k = snprintf(b, sizeof(b), "%lld", v);
    cg__pre(o);
    cg__put(o, b, (size_t)k);
}

void cg_json_round2(cg_json_out_t *o, double v)
{
    char b[64];
    if (!isfinite(v)) {
        cg_json_null(o);
        return;
    }
    /* repr() of a float rounded to 2 places: the shortest form, with at
     * least one decimal ("12.0", "0.5", "1.25") */
    int k = snprintf(b, sizeof(b), "%.2f", v);
    while (k > 0 && b[k - 1] == '0' && b[k - 2] != '.')
        k--;
    cg__pre(o);
    cg__put(o, b, (size_t)k);
}

void cg_json_bool(cg_json_out_t *o, bool v)
{
    cg__pre(o);
    cg__put(o, v ? "true" : "false", v ? 4 : 5);
}

void cg_json_null(cg_json_out_t *o)
{
    cg__pre(o);
    cg__put(o, "null", 4);
}

void cg_json_raw(cg_json_out_t *o, const char *s, size_t n)
{
    cg__pre(o);
    cg__put(o, s, n);
}
