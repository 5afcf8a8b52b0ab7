/*
 * errors.c - Gunicorn's exception names, texts and error pages.
 *
 * The texts must be byte-identical to str(exc) of Gunicorn's exceptions
 * (they appear in "Invalid request from ip=..." log lines) and the pages to
 * what util.write_error sends, because clients and log parsers see both.
 * Gunicorn formats most arguments with %r on a str decoded from latin-1, so
 * we reproduce Python's repr() of such a str (and of bytes for the body
 * errors). Texts for logs are UTF-8; the page is latin-1 like Gunicorn's
 * http.encode('latin1').
 */
#include "http.h"

#include <stdio.h>
#include <string.h>

static const char *const cg__http_err_names[] = {
    "",
#define CG__X(e, name, status, reason) name,
    CG_HTTP_ERRORS(CG__X)
#undef CG__X
};

static const int cg__http_err_status[] = {
    0,
#define CG__X(e, name, status, reason) status,
    CG_HTTP_ERRORS(CG__X)
#undef CG__X
};

static const char *const cg__http_err_reasons[] = {
    "",
#define CG__X(e, name, status, reason) reason,
    CG_HTTP_ERRORS(CG__X)
#undef CG__X
};

const char *cg_http_error_name(cg_http_errcode_t code)
{
    if ((unsigned)code >= CG_HTTP_E__COUNT)
        return "";
    return cg__http_err_names[code];
}

int cg_http_error_status(cg_http_errcode_t code)
{
    if ((unsigned)code >= CG_HTTP_E__COUNT)
        return 0;
    return cg__http_err_status[code];
}

const char *cg_http_error_reason(cg_http_errcode_t code)
{
    if ((unsigned)code >= CG_HTTP_E__COUNT)
        return "";
    return cg__http_err_reasons[code];
}

/*
 * Output sink. `len` counts every byte that would have been written, so a
 * sink with cap 0 measures. Characters are latin-1 code points (0..255).
 */
typedef struct sink {
    char *buf;
    size_t cap, len;
    bool latin1; /* encode code points >= 0x80 as one byte, else UTF-8 */
    bool html;   /* html.escape(s, quote=True) */
} sink_t;

static void put_byte(sink_t *o, unsigned char c)
{
    if (o->len < o->cap)
        o->buf[o->len] = (char)c;
    o->len++;
}

static void put_raw(sink_t *o, const char *s)
{
    while (*s)
        put_byte(o, (unsigned char)*s++);
}

static void put_char(sink_t *o, unsigned char c)
{
    if (o->html) {
        switch (c) {
        case '&': put_raw(o, "&amp;"); return;
        case '<': put_raw(o, "&lt;"); return;
        case '>': put_raw(o, "&gt;"); return;
        case '"': put_raw(o, "&quot;"); return;
        case '\'': put_raw(o, "&#x27;"); return;
        default: break;
        }
    }
    if (c < 0x80 || o->latin1) {
        put_byte(o, c);
    } else {
        put_byte(o, (unsigned char)(0xc0 | (c >> 6)));
        put_byte(o, (unsigned char)(0x80 | (c & 0x3f)));
    }
}

static void put_text(sink_t *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put_char(o, (unsigned char)s[i]);
}

static void put_str(sink_t *o, const char *s)
{
    put_text(o, s, strlen(s));
}

static void put_num(sink_t *o, size_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof(tmp), "%zu", v);
    put_str(o, tmp);
}

static void put_hex(sink_t *o, unsigned char c)
{
    static const char hx[] = "0123456789abcdef";
    put_char(o, '\\');
    put_char(o, 'x');
    put_char(o, (unsigned char)hx[c >> 4]);
    put_char(o, (unsigned char)hx[c & 15]);
}

/* Python's choice of quote for repr(): double quotes only if the text has a
 * single quote and no double quote. */
static char repr_quote(const char *s, size_t n)
{
    bool sq = memchr(s, '\'', n) != NULL, dq = memchr(s, '"', n) != NULL;
    return (sq && !dq) ? '"' : '\'';
}

/* repr() of a str holding latin-1-decoded bytes, or of bytes (is_bytes). */
static void put_repr(sink_t *o, const char *s, size_t n, bool is_bytes)
{
    char q = repr_quote(s, n);
    if (is_bytes)
        put_char(o, 'b');
    put_char(o, (unsigned char)q);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == (unsigned char)q) {
            put_char(o, '\\');
            put_char(o, c);
        } else if (c == '\t') {
            put_raw(o, "\\t");
        } else if (c == '\n') {
            put_raw(o, "\\n");
        } else if (c == '\r') {
            put_raw(o, "\\r");
        } else if (c < 0x20 || c == 0x7f) {
            put_hex(o, c);
        } else if (c >= 0x80 && (is_bytes || c <= 0xa0 || c == 0xad)) {
            /* U+0080..U+00A0 and the soft hyphen are not printable */
            put_hex(o, c);
        } else {
            put_char(o, c);
        }
    }
    put_char(o, (unsigned char)q);
}

static cg_str_t err_arg(const cg_http_error_t *e)
{
    if (e->lit)
        return (cg_str_t){e->lit, strlen(e->lit)};
    if (e->arg.ptr)
        return e->arg;
    return (cg_str_t){"", 0};
}

/*
 * Texts built from a template (PROXY errors): `lit` may hold "%s" (the arg
 * bytes) or "%d" (n1); without lit the arg is the whole text. Written as
 * plain latin-1 code points into a bounded scratch buffer so it can be
 * repr()'d afterwards.
 */
static size_t expand_template(const cg_http_error_t *e, char *tmp, size_t cap)
{
    sink_t t = {tmp, cap, 0, true, false};
    if (!e->lit) {
        put_text(&t, e->arg.ptr ? e->arg.ptr : "", e->arg.ptr ? e->arg.len : 0);
    } else {
        for (const char *p = e->lit; *p; p++) {
            if (p[0] == '%' && p[1] == 's') {
                put_text(&t, e->arg.ptr ? e->arg.ptr : "", e->arg.ptr ? e->arg.len : 0);
                p++;
            } else if (p[0] == '%' && p[1] == 'd') {
                put_num(&t, e->n1);
                p++;
            } else {
                put_char(&t, (unsigned char)*p);
            }
        }
    }
    return t.len < cap ? t.len : cap;
}

/* str(exc) for Gunicorn's exception. */
static void put_exc_text(sink_t *o, const cg_http_error_t *e)
{
    cg_str_t a = err_arg(e);
    char tmp[1024];
    size_t n;

    switch (e->code) {
    case CG_HTTP_E_NO_MORE_DATA:
        put_str(o, "No more data after: ");
        if (e->arg.ptr)
            put_repr(o, e->arg.ptr, e->arg.len, true);
        else
            put_str(o, "None");
        break;
    case CG_HTTP_E_INVALID_REQUEST_LINE:
        put_str(o, "Invalid HTTP request line: ");
        put_repr(o, a.ptr, a.len, false);
        break;
    case CG_HTTP_E_INVALID_REQUEST_METHOD:
        put_str(o, "Invalid HTTP method: ");
        put_repr(o, a.ptr, a.len, false);
        break;
    case CG_HTTP_E_INVALID_HTTP_VERSION:
        put_str(o, "Invalid HTTP Version: ");
        if (e->arg.ptr || e->lit) {
            put_repr(o, a.ptr, a.len, false);
        } else { /* a version tuple */
            put_char(o, '(');
            put_num(o, e->n1);
            put_str(o, ", ");
            put_num(o, e->n2);
            put_char(o, ')');
        }
        break;
    case CG_HTTP_E_INVALID_HEADER:
        put_str(o, "Invalid HTTP Header: ");
        put_repr(o, a.ptr, a.len, false);
        break;
    case CG_HTTP_E_INVALID_HEADER_NAME:
        put_str(o, "Invalid HTTP header name: ");
        put_repr(o, a.ptr, a.len, false);
        break;
    case CG_HTTP_E_OBSOLETE_FOLDING:
        put_str(o, "Obsolete line folding is unacceptable: ");
        put_repr(o, a.ptr, a.len, false);
        break;
    case CG_HTTP_E_LIMIT_REQUEST_LINE:
        put_str(o, "Request Line is too large (");
        put_num(o, e->n1);
        put_str(o, " > ");
        put_num(o, e->n2);
        put_char(o, ')');
        break;
    case CG_HTTP_E_LIMIT_REQUEST_HEADERS:
        put_text(o, a.ptr, a.len);
        break;
    case CG_HTTP_E_INVALID_SCHEME_HEADERS:
        put_str(o, "Contradictory scheme headers");
        break;
    case CG_HTTP_E_INVALID_PROXY_LINE:
        n = expand_template(e, tmp, sizeof(tmp));
        put_str(o, "Invalid PROXY line: ");
        put_repr(o, tmp, n, false);
        break;
    case CG_HTTP_E_INVALID_PROXY_HEADER:
        n = expand_template(e, tmp, sizeof(tmp));
        put_str(o, "Invalid PROXY header: ");
        put_text(o, tmp, n);
        break;
    case CG_HTTP_E_FORBIDDEN_PROXY_REQUEST:
        put_str(o, "Proxy request from ");
        put_repr(o, a.ptr, a.len, false);
        put_str(o, " not allowed");
        break;
    case CG_HTTP_E_EXPECTATION_FAILED:
        put_str(o, "Unable to comply with expectation: ");
        put_repr(o, a.ptr, a.len, false);
        break;
    case CG_HTTP_E_UNSUPPORTED_TRANSFER_CODING:
        put_str(o, "Unsupported transfer coding: ");
        put_repr(o, a.ptr, a.len, false);
        break;
    case CG_HTTP_E_CONFIGURATION_PROBLEM:
        put_str(o, "Configuration problem: ");
        if (e->lit) {
            put_str(o, e->lit);
        } else {
            put_str(o, "Request path ");
            put_repr(o, e->arg.ptr ? e->arg.ptr : "", e->arg.len, false);
            put_str(o, " does not start with SCRIPT_NAME ");
            put_repr(o, e->arg2.ptr ? e->arg2.ptr : "", e->arg2.len, false);
        }
        break;
    case CG_HTTP_E_INVALID_CHUNK_SIZE:
        put_str(o, "Invalid chunk size: ");
        put_repr(o, a.ptr, a.len, true);
        break;
    case CG_HTTP_E_CHUNK_MISSING_TERMINATOR:
        put_str(o, "Invalid chunk terminator is not '\\r\\n': ");
        put_repr(o, a.ptr, a.len, true);
        break;
    case CG_HTTP_E_INVALID_CHUNK_EXTENSION:
        put_str(o, "Invalid chunk extension: ");
        put_text(o, a.ptr, a.len);
        break;
    case CG_HTTP_E_INVALID_UWSGI_HEADER:
        put_str(o, "Invalid uWSGI header: ");
        put_str(o, e->lit ? e->lit : "");
        break;
    case CG_HTTP_E_UNSUPPORTED_UWSGI_MODIFIER:
        put_str(o, "Unsupported uWSGI modifier1: ");
        put_num(o, e->n1);
        break;
    case CG_HTTP_E_FORBIDDEN_UWSGI_REQUEST:
        put_str(o, "uWSGI request from ");
        put_repr(o, a.ptr, a.len, false);
        put_str(o, " not allowed");
        break;
    default:
        break;
    }
}

size_t cg_http_error_text(const cg_http_error_t *err, char *buf, size_t cap)
{
    if (cap == 0)
        return 0;
    sink_t o = {buf, cap - 1, 0, false, false};
    put_exc_text(&o, err);
    size_t n = o.len < cap - 1 ? o.len : cap - 1;
    /* never cut a UTF-8 sequence in half */
    if (n == cap - 1 && n > 0 && o.len > n && ((unsigned char)buf[n - 1] & 0xc0) == 0xc0)
        n--;
    buf[n] = '\0';
    return n;
}

/* The `mesg` Worker.handle_error builds around str(exc). */
static void put_mesg(sink_t *o, const cg_http_error_t *e)
{
    switch (e->code) {
    case CG_HTTP_E_INVALID_REQUEST_LINE:
        put_str(o, "Invalid Request Line '");
        put_exc_text(o, e);
        put_char(o, '\'');
        break;
    case CG_HTTP_E_INVALID_REQUEST_METHOD:
        put_str(o, "Invalid Method '");
        put_exc_text(o, e);
        put_char(o, '\'');
        break;
    case CG_HTTP_E_INVALID_HTTP_VERSION:
        put_str(o, "Invalid HTTP Version '");
        put_exc_text(o, e);
        put_char(o, '\'');
        break;
    case CG_HTTP_E_LIMIT_REQUEST_HEADERS:
        put_str(o, "Error parsing headers: '");
        put_exc_text(o, e);
        put_char(o, '\'');
        break;
    case CG_HTTP_E_INVALID_PROXY_LINE:
        put_char(o, '\'');
        put_exc_text(o, e);
        put_char(o, '\'');
        break;
    case CG_HTTP_E_FORBIDDEN_PROXY_REQUEST:
        put_str(o, "Request forbidden");
        break;
    case CG_HTTP_E_INVALID_PROXY_HEADER: /* the generic 500 branch: empty */
        break;
    default:
        put_exc_text(o, e);
        break;
    }
}

/* util.write_error's page; the message is either `e`'s mesg or `mesg`. */
static void put_page(sink_t *o, const cg_http_error_t *e, const char *reason, const char *mesg)
{
    put_raw(o, "<html>\n  <head>\n    <title>");
    put_raw(o, reason);
    put_raw(o, "</title>\n  </head>\n  <body>\n    <h1><p>");
    put_raw(o, reason);
    put_raw(o, "</p></h1>\n    ");
    o->html = true;
    if (e)
        put_mesg(o, e);
    else
        put_str(o, mesg);
    o->html = false;
    put_raw(o, "\n  </body>\n</html>\n");
}

static size_t write_page(int status, const char *reason, const cg_http_error_t *e,
                         const char *mesg, char *buf, size_t cap)
{
    sink_t measure = {NULL, 0, 0, true, false};
    put_page(&measure, e, reason, mesg);

    int hl = snprintf(buf, cap,
                      "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: text/html\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      status, reason, measure.len);
    if (hl < 0 || (size_t)hl + measure.len > cap)
        return 0;
    sink_t o = {buf + hl, cap - (size_t)hl, 0, true, false};
    put_page(&o, e, reason, mesg);
    return (size_t)hl + o.len;
}

size_t cg_http_error_response(const cg_http_error_t *err, char *buf, size_t cap)
{
    int status = cg_http_error_status(err->code);
    if (status == 0)
        return 0;
    return write_page(status, cg_http_error_reason(err->code), err, NULL, buf, cap);
}

size_t cg_http_error_page(int status, const char *reason, const char *mesg, char *buf,
                          size_t cap)
{
    return write_page(status, reason, NULL, mesg ? mesg : "", buf, cap);
}
