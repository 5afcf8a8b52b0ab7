/*
 * pyfmt.h - Python's text semantics, reproduced in C (private to src/log/).
 *
 * Gunicorn builds its log lines with Python: `fmt % atoms`, str(), repr(),
 * str.split(), binascii.a2b_base64() and bytes.decode('utf-8'). To write the
 * same bytes without an interpreter, access.c needs those operations with
 * Python's exact rules: how a '0' flag pads, what precision means on %d and
 * on %s, that width and precision count code points rather than bytes, which
 * characters repr() escapes, what a lenient base64 decode skips, and the
 * wording of the exceptions Python would raise. This file is that layer; it
 * knows nothing about Gunicorn's atoms.
 *
 * Text is UTF-8 throughout (a Python str encoded the way Gunicorn's log
 * streams encode it). Output goes into a caller-owned, fixed-size buffer
 * (cg_pyfmt_out_t) that never grows: what does not fit is cut off and the
 * buffer marks itself as overflowed, so a caller can retry with more room.
 */
#ifndef CG_LOG_PYFMT_H
#define CG_LOG_PYFMT_H

#include "../cg.h"

/* ---- an output buffer that truncates instead of failing */

typedef struct cg_pyfmt_out {
    char *buf;
    size_t cap; /* usable bytes (a caller's NUL goes after them) */
    size_t len;
    bool overflow; /* something was cut off */
} cg_pyfmt_out_t;

/* Inline: these run once per byte run of every access line. */
static inline void cg_pyfmt_put(cg_pyfmt_out_t *o, const char *p, size_t n)
{
    if (cg_unlikely(n > o->cap - o->len)) {
        n = o->cap - o->len;
        o->overflow = true;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

static inline void cg_pyfmt_putc(cg_pyfmt_out_t *o, char ch)
{
    if (cg_likely(o->len < o->cap))
        o->buf[o->len++] = ch;
    else
        o->overflow = true;
}

/* ---- code points */

/* How many code points the n bytes at p hold (Python's len() of the str;
 * also the index Python reports for a byte offset). */
size_t cg_pyfmt_count_cp(const char *p, size_t n);

/* Append code point cp (<= 0x10FFFF) UTF-8 encoded. */
void cg_pyfmt_put_cp(cg_pyfmt_out_t *o, uint32_t cp);

/* ---- printf-style conversions (`%` on str, "printf-style String Formatting") */

#define CG_PYFMT_LEFT 0x01u  /* '-' */
#define CG_PYFMT_SIGN 0x02u  /* '+' */
#define CG_PYFMT_BLANK 0x04u /* ' ' */
#define CG_PYFMT_ALT 0x08u   /* '#' */
#define CG_PYFMT_ZERO 0x10u  /* '0' */

/* One conversion specifier, the part of "%(key)-08.3d" after the key. */
typedef struct cg_pyfmt_spec {
    uint8_t flags; /* CG_PYFMT_* */
    char conv;     /* one of "sradiuoxXeEfFgGc" */
    int width;     /* -1: none */
    int prec;      /* -1: none */
} cg_pyfmt_spec_t;

/*
 * Parse the specifier at *p (just after '%' and its optional "(key)"):
 * flags, width, '.' precision, an ignored length modifier (h l L), the
 * conversion character. On success sets *spec, advances *p past it and
 * returns NULL. When Python would raise, returns the exception as
 * "Type: message" (a literal, or written into msg) and leaves *p alone.
 * fmt is the whole format, for the index Python reports. '*' (width from
 * the arguments) is refused the way it is with a mapping argument.
 */
const char *cg_pyfmt_parse_spec(const char *fmt, const char **p, cg_pyfmt_spec_t *spec,
                                char *msg, size_t msglen);

/* Python's %d %i %u %o %x %X of an int v under spec (conv, flags, width,
 * precision: a minimum digit count). */
void cg_pyfmt_int(cg_pyfmt_out_t *o, const cg_pyfmt_spec_t *spec, int64_t v);

/* Python's %e %E %f %F %g %G of float(v) under spec. */
void cg_pyfmt_float(cg_pyfmt_out_t *o, const cg_pyfmt_spec_t *spec, int64_t v);

/* str(v) of an int >= 0. */
void cg_pyfmt_u64(cg_pyfmt_out_t *o, uint64_t v);

/* Precision on %s: keep at most prec (>= 0; < 0 means none) code points of
 * what was written since `start`. */
void cg_pyfmt_truncate(cg_pyfmt_out_t *o, size_t start, int prec);

/* Width: pad what was written since `start` with spaces to `width` code
 * points (< 0: none), on the right when `left`, else on the left. */
void cg_pyfmt_pad(cg_pyfmt_out_t *o, size_t start, int width, bool left);

/*
 * Replace what was written since `start` with its repr() (ascii_only false)
 * or ascii() (true): quotes chosen as Python does, backslash escapes for
 * quotes, backslashes, \t \n \r and non-printable characters. U+0080..U+00A0
 * and U+00AD count as non-printable, every character above U+00FF as
 * printable (Python consults the Unicode database; close enough for logs).
 * Bytes that are not valid UTF-8 pass through as code points of their own.
 */
void cg_pyfmt_repr(cg_pyfmt_out_t *o, size_t start, bool ascii_only);

/* ---- str methods and codecs */

/* str.split()'s whitespace among ASCII characters (Py_UNICODE_ISSPACE). */
static inline bool cg_pyfmt_isspace(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/* s.split(None, 1)[0]: the first run of non-whitespace, or an empty view.
 * Inline: it cuts the status code out of every access line. */
static inline cg_str_t cg_pyfmt_first_word(cg_str_t s)
{
    size_t i = 0, n = s.len;
    const char *p = s.ptr;
    while (i < n && cg_pyfmt_isspace((unsigned char)p[i]))
        i++;
    size_t j = i;
    while (j < n && !cg_pyfmt_isspace((unsigned char)p[j]))
        j++;
    return (cg_str_t){p ? p + i : NULL, j - i};
}

/*
 * bytes.decode('utf-8') in strict mode, as a check: true when the n bytes
 * at s decode; else false with str(UnicodeDecodeError) in err.
 */
bool cg_pyfmt_utf8_check(const unsigned char *s, size_t n, char *err, size_t errlen);

/*
 * binascii.a2b_base64() in its lenient (default) mode, fed in pieces:
 * characters outside the alphabet are skipped; '=' ends the input once a
 * quad has two characters or more. Output lands in a 1 KiB inline buffer,
 * moving to the heap beyond that (cg_xmalloc: aborts on exhaustion).
 */
typedef struct cg_pyfmt_b64 {
    unsigned char *buf; /* the decoded bytes */
    size_t len, cap;
    unsigned char stackbuf[1024];
    int quad_pos, pads;
    unsigned leftchar;
    bool done;
} cg_pyfmt_b64_t;

void cg_pyfmt_b64_init(cg_pyfmt_b64_t *b);
void cg_pyfmt_b64_feed(cg_pyfmt_b64_t *b, const char *p, size_t n);
/* End of input: true, or false with str(binascii.Error) in err. */
bool cg_pyfmt_b64_finish(cg_pyfmt_b64_t *b, char *err, size_t errlen);
/* Free what b holds (safe to call twice, and after init alone). */
void cg_pyfmt_b64_release(cg_pyfmt_b64_t *b);

#endif
