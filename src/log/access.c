/*
 * access.c - Gunicorn's access_log_format, compiled once, rendered per request.
 *
 * Gunicorn renders the access line with Python's printf-style operator:
 * `access_log_format % SafeAtoms(atoms)`. We reproduce what that expression
 * does, not just the common case:
 *
 *  - keys are looked up exactly ("t" and "T" differ); a key that starts with
 *    '{' is lower-cased first, so "{X-Forwarded-For}i" and even "{x}I" work;
 *  - an unknown key renders "-" (SafeAtoms answers "-" for anything missing);
 *  - string values have every '"' replaced by '\"' before conversion, so width
 *    and precision count the backslash; integers (B T D M) are not touched;
 *  - conversion flags, width and precision follow Python (a '0' flag pads
 *    numbers with zeros only, '#' gives 0x/0o prefixes, precision on %d is a
 *    minimum digit count, on %s a maximum character count);
 *  - values that Python cannot convert (%d of a string, %d of B when nothing
 *    was sent) and malformed formats ("%(h", "%y", "%") raise inside Python's
 *    logging handler: no access line is written and logging prints a
 *    "--- Logging error ---" report on stderr, once per request. We do the
 *    same, at the same point of the line (errors are found left to right), with
 *    a shorter report (there is no Python traceback to show). The server starts
 *    normally in both cases: Gunicorn does not validate the format.
 *
 * Not supported (compile fails with -ENOTSUP and a message): a conversion
 * without a (key), e.g. a bare "%s". In Gunicorn it formats the whole atoms
 * dict; nobody wants that, and mimicking a Python dict repr is not worth it.
 *
 * Text encoding: Gunicorn holds request data as latin-1 decoded str and its log
 * streams encode UTF-8, so a byte >= 0x80 of a request field (URI, path, query,
 * header values) or of a response header value comes out as two UTF-8 bytes.
 * The status string, the decoded user name and values returned by
 * environ_lookup are taken to be UTF-8 already and are written as they are.
 *
 * This file knows Gunicorn: its atoms, SafeAtoms' quoting, _get_user(). How
 * Python itself converts, pads, truncates, repr()s and decodes is in pyfmt.c.
 */
#include "log.h"
#include "pyfmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    AT_LIT, /* literal text (also "%%") */
    AT_ERR, /* Python would raise here: text is "Type: message" */
    AT_MISSING,
    AT_h, AT_l, AT_u, AT_t, AT_r, AT_s, AT_m, AT_U, AT_q, AT_H,
    AT_b, AT_B, AT_f, AT_a, AT_T, AT_D, AT_M, AT_L, AT_p,
    AT_REQH, AT_RESPH, AT_ENV,
};

typedef struct op {
    uint8_t atom;
    cg_pyfmt_spec_t spec; /* how Python converts the value (not for AT_LIT/AT_ERR) */
    cg_str_t text; /* literal, {..} name (lower-case), or error message */
} op_t;

struct cg_access_fmt {
    op_t *ops;
    size_t n;
    unsigned needs; /* CG_ACCESS_NEEDS_* */
    char *store; /* owns every op text */
    char *src;   /* the format as given, for the error report */
};

/* ------------------------------------------------------------ compiling */

static const struct {
    char key;
    uint8_t atom;
} simple_atoms[] = {
    {'h', AT_h}, {'l', AT_l}, {'u', AT_u}, {'t', AT_t}, {'r', AT_r}, {'s', AT_s},
    {'m', AT_m}, {'U', AT_U}, {'q', AT_q}, {'H', AT_H}, {'b', AT_b}, {'B', AT_B},
    {'f', AT_f}, {'a', AT_a}, {'T', AT_T}, {'D', AT_D}, {'M', AT_M}, {'L', AT_L},
    {'p', AT_p},
};

typedef struct compiler {
    op_t *ops;
    size_t n, cap;
    char *store;
    size_t slen, scap;
} compiler_t;

static op_t *push_op(compiler_t *c, uint8_t atom)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->ops = cg_xrealloc(c->ops, c->cap * sizeof(*c->ops));
    }
    op_t *o = &c->ops[c->n++];
    *o = (op_t){.atom = atom, .spec = {.conv = 's', .width = -1, .prec = -1}};
    return o;
}

/* Text is kept as an offset into `store` until compiling ends (store moves). */
static void set_text(compiler_t *c, op_t *o, const char *p, size_t len, bool lower)
{
    if (c->slen + len + 1 > c->scap) {
        c->scap = (c->slen + len + 1) * 2;
        c->store = cg_xrealloc(c->store, c->scap);
    }
    char *d = c->store + c->slen;
    for (size_t i = 0; i < len; i++) {
        char ch = p[i];
        d[i] = (lower && ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    d[len] = '\0';
    o->text.ptr = (const char *)(uintptr_t)c->slen;
    o->text.len = len;
    c->slen += len + 1;
}

static void push_lit(compiler_t *c, const char *p, size_t len)
{
    if (!len)
        return;
    if (c->n && c->ops[c->n - 1].atom == AT_LIT &&
        (size_t)(uintptr_t)c->ops[c->n - 1].text.ptr + c->ops[c->n - 1].text.len + 1 == c->slen) {
        /* extend the previous literal in place (it is the last thing stored) */
        op_t *o = &c->ops[c->n - 1];
        c->slen -= 1;
        if (c->slen + len + 1 > c->scap) {
            c->scap = (c->slen + len + 1) * 2;
            c->store = cg_xrealloc(c->store, c->scap);
        }
        memcpy(c->store + c->slen, p, len);
        c->slen += len;
        c->store[c->slen++] = '\0';
        o->text.len += len;
        return;
    }
    set_text(c, push_op(c, AT_LIT), p, len, false);
}

static void push_err(compiler_t *c, const char *msg)
{
    set_text(c, push_op(c, AT_ERR), msg, strlen(msg), false);
}

static void classify_key(compiler_t *c, op_t *o, const char *key, size_t klen)
{
    if (klen && key[0] == '{') {
        /* SafeAtoms lower-cases the whole key, then the dict holds
         * "{<name lower>}i", "{..}o" and "{..}e". */
        char last = klen >= 3 ? key[klen - 1] : 0;
        if (last >= 'A' && last <= 'Z')
            last = (char)(last + 32);
        if (klen >= 3 && key[klen - 2] == '}' && (last == 'i' || last == 'o' || last == 'e')) {
            o->atom = last == 'i' ? AT_REQH : last == 'o' ? AT_RESPH : AT_ENV;
            set_text(c, o, key + 1, klen - 3, true);
            return;
        }
        o->atom = AT_MISSING;
        return;
    }
    o->atom = AT_MISSING;
    if (klen == 1)
        for (size_t i = 0; i < CG_ARRAY_SIZE(simple_atoms); i++)
            if (simple_atoms[i].key == key[0])
                o->atom = simple_atoms[i].atom;
}

int cg_access_fmt_compile(const char *fmt, cg_access_fmt_t **out, char *err, size_t errlen)
{
    compiler_t c = {0};
    const char *p = fmt;
    size_t flen = strlen(fmt);
    char msg[160];

    *out = NULL;
    while (*p) {
        const char *pct = strchr(p, '%');
        if (!pct) {
            push_lit(&c, p, strlen(p));
            break;
        }
        push_lit(&c, p, (size_t)(pct - p));
        const char *q = pct + 1;
        if (*q == '%') {
            /* only an immediate "%%" is a percent sign: "%5%" or "%(h)%" raise */
            push_lit(&c, "%", 1);
            p = q + 1;
            continue;
        }
        const char *key = NULL;
        size_t klen = 0;

        if (*q == '(') {
            /* Python matches nested parentheses inside the key. */
            int depth = 1;
            key = ++q;
            while (*q && depth) {
                if (*q == '(')
                    depth++;
                else if (*q == ')')
                    depth--;
                q++;
            }
            if (depth) {
                push_err(&c, "ValueError: incomplete format key");
                break;
            }
            klen = (size_t)(q - 1 - key);
        }
        cg_pyfmt_spec_t spec;
        const char *perr = cg_pyfmt_parse_spec(fmt, &q, &spec, msg, sizeof(msg));
        if (perr != NULL) {
            push_err(&c, perr);
            break;
        }
        if (!key) {
            snprintf(err, errlen,
                     "access_log_format: '%%%c' without a (name) key is not supported",
                     spec.conv);
            goto fail;
        }
        op_t *o = push_op(&c, AT_MISSING);
        classify_key(&c, o, key, klen);
        o = &c.ops[c.n - 1];
        o->spec = spec;
        p = q;
    }

    cg_access_fmt_t *f = cg_xcalloc(1, sizeof(*f));
    f->ops = c.ops;
    f->n = c.n;
    f->store = c.store;
    f->src = cg_xstrndup(fmt, flen);
    for (size_t i = 0; i < f->n; i++) {
        op_t *o = &f->ops[i];
        if (o->atom == AT_LIT || o->atom == AT_ERR || o->atom == AT_REQH ||
            o->atom == AT_RESPH || o->atom == AT_ENV)
            o->text.ptr = f->store + (size_t)(uintptr_t)o->text.ptr;
        else
            o->text = (cg_str_t){NULL, 0};
        f->needs |= o->atom == AT_ENV     ? CG_ACCESS_NEEDS_ENVIRON
                    : o->atom == AT_RESPH ? CG_ACCESS_NEEDS_RESP_HEADERS
                    : o->atom == AT_U     ? CG_ACCESS_NEEDS_PATH_INFO
                                          : 0u;
    }
    *out = f;
    return 0;

fail:
    free(c.ops);
    free(c.store);
    return -ENOTSUP;
}

void cg_access_fmt_free(cg_access_fmt_t *f)
{
    if (!f)
        return;
    free(f->ops);
    free(f->store);
    free(f->src);
    free(f);
}

bool cg_log_access_needs_environ(const cg_log_t *log)
{
    return cg_access_fmt_needs(log->access_fmt) & CG_ACCESS_NEEDS_ENVIRON;
}

unsigned cg_access_fmt_needs(const cg_access_fmt_t *f)
{
    return f != NULL ? f->needs : 0;
}

bool cg_access_env_lookup(void *ctx, cg_str_t name, cg_str_t *value)
{
    const cg_access_env_t *e = ctx;
    for (size_t i = 0; i < e->n; i++)
        if (cg_str_eq(e->name[i], name.ptr, name.len)) {
            *value = e->value[i];
            return value->ptr != NULL;
        }
    return false;
}

/* A string value: '"' -> '\"'; latin-1 bytes >= 0x80 become UTF-8 pairs. */
static void put_text(cg_pyfmt_out_t *o, const char *p, size_t n, bool latin1)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (cg_likely(ch != '"' && (ch < 0x80 || !latin1)))
            continue;
        cg_pyfmt_put(o, p + run, i - run);
        run = i + 1;
        if (ch == '"') {
            cg_pyfmt_putc(o, '\\');
            cg_pyfmt_putc(o, '"');
        } else {
            cg_pyfmt_putc(o, (char)(0xC0 | (ch >> 6)));
            cg_pyfmt_putc(o, (char)(0x80 | (ch & 0x3F)));
        }
    }
    cg_pyfmt_put(o, p + run, n - run);
}

/* ------------------------------------------------------------ atoms */

/* Month names never follow the locale: Python leaves LC_TIME as "C". */
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* "[26/Nov/2026:14:12:45 +0000]" (strftime "[%d/%b/%Y:%H:%M:%S %z]") */
static size_t clf_time(time_t t, char d[40])
{
    struct tm tm;
    if (!localtime_r(&t, &tm))
        memset(&tm, 0, sizeof(tm));
    long off = tm.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    int n = snprintf(d, 40, "[%02d/%s/%d:%02d:%02d:%02d %c%02ld%02ld]", tm.tm_mday,
                     months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, sign, off / 3600, off / 60 % 60);
    return n > 0 ? (size_t)n : 0;
}

/* Does a (upper-cased) request header name map to environ key HTTP_<target>? */
static bool env_name_eq(cg_str_t name, const char *target)
{
    size_t i = 0;
    for (; i < name.len && target[i]; i++) {
        unsigned char a = (unsigned char)name.ptr[i];
        if (a >= 'a' && a <= 'z')
            a -= 32;
        if (a == '-')
            a = '_';
        if (a != (unsigned char)target[i])
            return false;
    }
    return i == name.len && !target[i];
}

/* environ HTTP_<target>: all such headers joined with ',' (Gunicorn's
 * wsgi.create), or "-" when there is none. */
static void put_env_header(cg_pyfmt_out_t *o, const cg_access_info_t *in, const char *target)
{
    bool any = false;
    for (size_t i = 0; i < in->n_req_headers; i++) {
        const cg_http_header_t *h = &in->req_headers[i];
        if ((h->flags & CG_HTTP_HF_DROPPED) || !env_name_eq(h->name, target))
            continue;
        if (any)
            cg_pyfmt_putc(o, ',');
        any = true;
        put_text(o, h->value.ptr, h->value.len, true);
    }
    if (!any)
        cg_pyfmt_putc(o, '-');
}

/* ---- the "u" atom: Gunicorn's Logger._get_user() */

/*
 * Decode the Basic-auth user the way Gunicorn does: environ HTTP_AUTHORIZATION
 * (all Authorization headers joined by ','), lower-cased prefix "basic", split
 * at the first ' ', lenient base64, part before the first ':', strict UTF-8.
 * Returns 1 with the user in *b (caller frees via cg_pyfmt_b64_release), 0 when there is
 * no user, -1 when decoding failed (message in err, as Python's str(exc)).
 */
static int get_user(const cg_access_info_t *in, cg_pyfmt_b64_t *b, size_t *ulen, char *err,
                    size_t errlen)
{
    bool first = true, split = false;
    cg_pyfmt_b64_init(b);

    for (size_t i = 0; i < in->n_req_headers; i++) {
        const cg_http_header_t *h = &in->req_headers[i];
        if ((h->flags & CG_HTTP_HF_DROPPED) || !env_name_eq(h->name, "AUTHORIZATION"))
            continue;
        const char *p = h->value.ptr;
        size_t n = h->value.len;
        if (first) {
            first = false;
            if (n < 5 || !cg_str_caseeq_str((cg_str_t){p, 5}, CG_STR_LIT("basic")))
                return 0;
        }
        if (!split) {
            const char *sp = memchr(p, ' ', n);
            if (!sp)
                continue;
            split = true;
            n -= (size_t)(sp + 1 - p);
            p = sp + 1;
        }
        cg_pyfmt_b64_feed(b, p, n);
    }
    if (!split)
        return 0;
    if (!cg_pyfmt_b64_finish(b, err, errlen))
        return -1;
    const unsigned char *colon = memchr(b->buf, ':', b->len);
    *ulen = colon ? (size_t)(colon - b->buf) : b->len;
    if (!cg_pyfmt_utf8_check(b->buf, *ulen, err, errlen))
        return -1;
    return 1;
}

/* Exposed to log.c: the debug message Gunicorn logs for a bad Basic header. */
bool cg__access_user_error(const cg_access_info_t *in, char *err, size_t errlen);
bool cg__access_user_error(const cg_access_info_t *in, char *err, size_t errlen)
{
    cg_pyfmt_b64_t b;
    size_t ulen;
    int r = get_user(in, &b, &ulen, err, errlen);
    cg_pyfmt_b64_release(&b);
    return r < 0;
}

/* ------------------------------------------------------------ rendering */

typedef enum { V_STR, V_INT, V_NONE } vkind_t;

static vkind_t value_kind(const op_t *o, const cg_access_info_t *in)
{
    switch (o->atom) {
    case AT_B:
        return in->sent >= 0 ? V_INT : V_NONE;
    case AT_T:
    case AT_D:
    case AT_M:
        return V_INT;
    default:
        return V_STR;
    }
}

/* timedelta fields: days dropped, seconds in [0, 86400), microseconds. */
static void td_split(int64_t us, int64_t *secs, int64_t *micros)
{
    int64_t s = us / 1000000, m = us % 1000000;
    if (m < 0) {
        m += 1000000;
        s -= 1;
    }
    s %= 86400;
    if (s < 0)
        s += 86400;
    *secs = s;
    *micros = m;
}

static int64_t int_value(const op_t *o, const cg_access_info_t *in)
{
    int64_t s, us;
    td_split(in->request_time_us, &s, &us);
    switch (o->atom) {
    case AT_B:
        return in->sent;
    case AT_T:
        return s;
    case AT_D:
        return s * 1000000 + us;
    default: /* AT_M */
        return s * 1000 + us / 1000;
    }
}

static void put_str(cg_pyfmt_out_t *o, cg_str_t s, bool latin1)
{
    if (s.ptr)
        put_text(o, s.ptr, s.len, latin1);
}

/* The string form of a string-valued atom, escaped. */
static void put_str_atom(cg_pyfmt_out_t *o, const op_t *op, const cg_access_info_t *in)
{
    char tmp[48];
    int64_t s, us;
    int n;

    switch (op->atom) {
    case AT_h:
        if (in->remote_addr.ptr)
            put_text(o, in->remote_addr.ptr, in->remote_addr.len, true);
        else
            cg_pyfmt_putc(o, '-');
        break;
    case AT_u: {
        cg_pyfmt_b64_t b;
        size_t ulen = 0;
        char err[8];
        if (get_user(in, &b, &ulen, err, sizeof(err)) == 1)
            put_text(o, (const char *)b.buf, ulen, false);
        else
            cg_pyfmt_putc(o, '-');
        cg_pyfmt_b64_release(&b);
        break;
    }
    case AT_t:
        cg_pyfmt_put(o, tmp, clf_time(in->log_time, tmp));
        break;
    case AT_r:
        put_str(o, in->method, true);
        cg_pyfmt_putc(o, ' ');
        put_str(o, in->raw_uri, true);
        cg_pyfmt_putc(o, ' ');
        put_str(o, in->protocol, true);
        break;
    case AT_s: {
        cg_str_t code = cg_pyfmt_first_word(in->status); /* status.split(None, 1)[0] */
        if (code.ptr)
            put_text(o, code.ptr, code.len, false);
        break;
    }
    case AT_m:
        put_str(o, in->method, true);
        break;
    case AT_U:
        put_str(o, in->path_info, true);
        break;
    case AT_q:
        put_str(o, in->query, true);
        break;
    case AT_H:
        put_str(o, in->protocol, true);
        break;
    case AT_b:
        if (in->sent >= 0)
            cg_pyfmt_u64(o, (uint64_t)in->sent);
        else
            cg_pyfmt_putc(o, '-');
        break;
    case AT_f:
        put_env_header(o, in, "REFERER");
        break;
    case AT_a:
        put_env_header(o, in, "USER_AGENT");
        break;
    case AT_L:
        td_split(in->request_time_us, &s, &us);
        n = snprintf(tmp, sizeof(tmp), "%lld.%06lld", (long long)s, (long long)us);
        cg_pyfmt_put(o, tmp, (size_t)n);
        break;
    case AT_p:
        cg_pyfmt_put(o, tmp, (size_t)snprintf(tmp, sizeof(tmp), "<%ld>", (long)in->pid));
        break;
    case AT_REQH: {
        const cg_http_header_t *hit = NULL;
        for (size_t i = 0; i < in->n_req_headers; i++) /* last one wins (dict) */
            if (!(in->req_headers[i].flags & CG_HTTP_HF_DROPPED) &&
                cg_str_caseeq_str(in->req_headers[i].name, op->text))
                hit = &in->req_headers[i];
        if (hit)
            put_text(o, hit->value.ptr, hit->value.len, true);
        else
            cg_pyfmt_putc(o, '-');
        break;
    }
    case AT_RESPH: {
        const cg_str_t *hit = NULL;
        for (size_t i = 0; i < in->n_resp_headers; i++)
            if (cg_str_caseeq_str(in->resp_headers[2 * i], op->text))
                hit = &in->resp_headers[2 * i + 1];
        if (hit)
            put_text(o, hit->ptr, hit->len, true);
        else
            cg_pyfmt_putc(o, '-');
        break;
    }
    case AT_ENV: {
        cg_str_t v;
        if (in->environ_lookup && in->environ_lookup(in->environ_ctx, op->text, &v))
            put_text(o, v.ptr, v.len, false);
        else
            cg_pyfmt_putc(o, '-');
        break;
    }
    case AT_l:
    case AT_MISSING:
    default:
        cg_pyfmt_putc(o, '-');
        break;
    }
}

static const char *type_name(vkind_t k)
{
    return k == V_STR ? "str" : k == V_INT ? "int" : "NoneType";
}

/*
 * Render into o. Returns NULL on success, or the Python exception text
 * ("TypeError: ...") when Python would have raised; then `ebuf` may hold it.
 */
static const char *render(const cg_access_fmt_t *f, const cg_access_info_t *in, cg_pyfmt_out_t *o,
                          char *ebuf, size_t elen)
{
    for (size_t i = 0; i < f->n; i++) {
        const op_t *op = &f->ops[i];
        if (op->atom == AT_LIT) {
            cg_pyfmt_put(o, op->text.ptr, op->text.len);
            continue;
        }
        if (op->atom == AT_ERR)
            return op->text.ptr;

        vkind_t k = value_kind(op, in);
        size_t start = o->len;
        switch (op->spec.conv) {
        case 's':
        case 'r':
        case 'a':
            if (k == V_STR)
                put_str_atom(o, op, in);
            else if (k == V_INT)
                cg_pyfmt_int(o, &(cg_pyfmt_spec_t){.conv = 'd', .width = -1, .prec = -1},
                             int_value(op, in));
            else
                cg_pyfmt_put(o, "None", 4);
            if (op->spec.conv != 's' && k == V_STR)
                cg_pyfmt_repr(o, start, op->spec.conv == 'a');
            /* most ops have neither: no call then (once per atom per line) */
            if (op->spec.prec >= 0)
                cg_pyfmt_truncate(o, start, op->spec.prec);
            if (op->spec.width >= 0)
                cg_pyfmt_pad(o, start, op->spec.width, op->spec.flags & CG_PYFMT_LEFT);
            break;
        case 'c':
            if (k == V_INT) {
                int64_t v = int_value(op, in);
                if (v < 0 || v > 0x10FFFF)
                    return "OverflowError: %c arg not in range(0x110000)";
                cg_pyfmt_put_cp(o, (uint32_t)v);
            } else if (k == V_STR) {
                put_str_atom(o, op, in);
                if (cg_pyfmt_count_cp(o->buf + start, o->len - start) != 1 && !o->overflow)
                    return "TypeError: %c requires int or char";
            } else {
                return "TypeError: %c requires int or char";
            }
            if (op->spec.width >= 0)
                cg_pyfmt_pad(o, start, op->spec.width, op->spec.flags & CG_PYFMT_LEFT);
            break;
        case 'e':
        case 'E':
        case 'f':
        case 'F':
        case 'g':
        case 'G':
            if (k != V_INT) {
                snprintf(ebuf, elen, "TypeError: must be real number, not %s", type_name(k));
                return ebuf;
            }
            cg_pyfmt_float(o, &op->spec, int_value(op, in));
            break;
        default: /* d i u o x X */
            if (k != V_INT) {
                bool integer = op->spec.conv == 'o' || op->spec.conv == 'x' || op->spec.conv == 'X';
                snprintf(ebuf, elen, "TypeError: %%%c format: %s is required, not %s",
                         integer ? op->spec.conv : 'd', integer ? "an integer" : "a real number",
                         type_name(k));
                return ebuf;
            }
            cg_pyfmt_int(o, &op->spec, int_value(op, in));
            break;
        }
    }
    return NULL;
}

size_t cg_access_fmt_render(const cg_access_fmt_t *f, const cg_access_info_t *info, char *buf,
                            size_t cap)
{
    if (!cap)
        return 0;
    char ebuf[160];
    cg_pyfmt_out_t o = {.buf = buf, .cap = cap - 1};
    if (render(f, info, &o, ebuf, sizeof(ebuf)))
        o.len = 0;
    buf[o.len] = '\0';
    return o.len;
}

/*
 * Render the line plus '\n' for cg_log_access. Returns the length and sets
 * *line (buf, or a heap buffer the caller frees when != buf); returns 0 and
 * sets *pyerr when Python would have raised.
 */
size_t cg__access_render_line(const cg_access_fmt_t *f, const cg_access_info_t *in, char *buf,
                              size_t cap, char **line, const char **pyerr, char *ebuf,
                              size_t elen);
size_t cg__access_render_line(const cg_access_fmt_t *f, const cg_access_info_t *in, char *buf,
                              size_t cap, char **line, const char **pyerr, char *ebuf,
                              size_t elen)
{
    char *b = buf;
    *pyerr = NULL;
    for (;;) {
        cg_pyfmt_out_t o = {.buf = b, .cap = cap - 1};
        const char *e = render(f, in, &o, ebuf, elen);
        if (e && !o.overflow) {
            *pyerr = e;
            if (b != buf)
                free(b);
            *line = buf;
            return 0;
        }
        if (!o.overflow) {
            b[o.len++] = '\n';
            *line = b;
            return o.len;
        }
        /* rare: a huge header or URI. Grow and render again. */
        if (b != buf)
            free(b);
        cap *= 4;
        b = cg_xmalloc(cap);
    }
}

/* Python repr() of the format string, for the error report. */
size_t cg__access_fmt_repr(const cg_access_fmt_t *f, char *buf, size_t cap);
size_t cg__access_fmt_repr(const cg_access_fmt_t *f, char *buf, size_t cap)
{
    cg_pyfmt_out_t o = {.buf = buf, .cap = cap - 1};
    cg_pyfmt_put(&o, f->src, strlen(f->src));
    cg_pyfmt_repr(&o, 0, false);
    buf[o.len] = '\0';
    return o.len;
}

/* ------------------------------------------------------------ for sinks */

size_t cg_access_fmt_environ_names(const cg_access_fmt_t *f, cg_str_t *names, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; f != NULL && i < f->n; i++) {
        if (f->ops[i].atom != AT_ENV)
            continue;
        if (k < cap)
            names[k] = f->ops[i].text;
        k++;
    }
    return k;
}

char *cg_access_user(const cg_access_info_t *info, size_t *len)
{
    cg_pyfmt_b64_t b;
    char err[8];
    char *user = NULL;
    if (get_user(info, &b, len, err, sizeof(err)) == 1) {
        user = cg_xmalloc(*len + 1); /* may hold NUL bytes, as Python's str */
        memcpy(user, b.buf, *len);
        user[*len] = '\0';
    }
    cg_pyfmt_b64_release(&b);
    return user;
}
