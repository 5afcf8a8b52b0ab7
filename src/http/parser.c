/*
 * parser.c - HTTP/1.1 request head parser (RFC 9112 sections 2-6, RFC 9110
 * section 5) with Gunicorn's rules, limits and strictness settings.
 *
 * The order of checks follows Gunicorn's message.py on purpose: which error a
 * malformed request gets (and therefore the status and log line) depends on
 * it. The request line is judged as soon as its CRLF arrives; the header block
 * only once it is complete, like Gunicorn which reads it whole first.
 */
#include "http.h"

#include <arpa/inet.h>
#include <string.h>

#define CG__MAX_REQUEST_LINE 8190
#define CG__MAX_HEADERS 32768
#define CG__DEFAULT_FIELD_SIZE 8190

static const char *const cg__default_forwarders[] = {"SCRIPT_NAME", "PATH_INFO"};
static const char *const cg__default_scheme_names[] = {"X-FORWARDED-PROTOCOL",
                                                        "X-FORWARDED-PROTO", "X-FORWARDED-SSL"};
static const char *const cg__default_scheme_values[] = {"ssl", "https", "on"};

void cg_http_settings_init(cg_http_settings_t *s, long limit_request_line,
                           long limit_request_fields, long limit_request_field_size)
{
    memset(s, 0, sizeof(*s));
    /* Gunicorn: negative -> max, 0 -> unlimited, anything above 8190 -> 8190 */
    if (limit_request_line < 0 || limit_request_line >= CG__MAX_REQUEST_LINE)
        s->limit_request_line = CG__MAX_REQUEST_LINE;
    else
        s->limit_request_line = (size_t)limit_request_line;
    if (limit_request_fields <= 0 || limit_request_fields > CG__MAX_HEADERS)
        s->limit_request_fields = CG__MAX_HEADERS;
    else
        s->limit_request_fields = (size_t)limit_request_fields;
    if (limit_request_field_size <= 0)
        s->limit_request_field_size = CG__DEFAULT_FIELD_SIZE;
    else
        s->limit_request_field_size = (size_t)limit_request_field_size;
    s->header_map = CG_HTTP_HEADER_MAP_DROP;
    s->forwarder_headers = cg__default_forwarders;
    s->nforwarder_headers = CG_ARRAY_SIZE(cg__default_forwarders);
    s->secure_scheme_names = cg__default_scheme_names;
    s->secure_scheme_values = cg__default_scheme_values;
    s->nsecure_scheme = CG_ARRAY_SIZE(cg__default_scheme_names);
}

/* ------------------------------------------------------------ helpers */

static bool is_token(const char *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!cg_http_is_tchar((unsigned char)p[i]))
            return false;
    return true;
}

static unsigned char to_upper(unsigned char c)
{
    return (c >= 'a' && c <= 'z') ? (unsigned char)(c - 32) : c;
}

static unsigned char to_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static bool view_eq(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n == l && memcmp(p, lit, l) == 0;
}

static bool view_caseeq(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    if (n != l)
        return false;
    for (size_t i = 0; i < n; i++)
        if (to_lower((unsigned char)p[i]) != to_lower((unsigned char)lit[i]))
            return false;
    return true;
}

static bool is_sp_htab(char c)
{
    return c == ' ' || c == '\t';
}

static void strip_sp_htab(const char **p, const char **e)
{
    while (*p < *e && is_sp_htab(**p))
        (*p)++;
    while (*e > *p && is_sp_htab((*e)[-1]))
        (*e)--;
}

static int fail(cg_http_error_t *err, cg_http_errcode_t code, const char *p, size_t n)
{
    memset(err, 0, sizeof(*err));
    err->code = code;
    err->arg = (cg_str_t){p, n};
    return -EPROTO;
}

static int fail_lit(cg_http_error_t *err, cg_http_errcode_t code, const char *lit)
{
    memset(err, 0, sizeof(*err));
    err->code = code;
    err->lit = lit;
    return -EPROTO;
}

/* ------------------------------------------------------------ request line */

/*
 * Python 3.11+ urlsplit()'s _check_bracketed_host: "v<hex>.<anything>" or an
 * IPv6 address (optionally with a %scope); an IPv4 address is refused.
 */
static bool bracketed_host_ok(const char *h, size_t n)
{
    if (n > 0 && h[0] == 'v') {
        size_t i = 1;
        while (i < n && ((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f') ||
                         (h[i] >= 'A' && h[i] <= 'F')))
            i++;
        if (i == 1 || i >= n || h[i] != '.')
            return false;
        i++;
        if (i >= n)
            return false;
        for (; i < n; i++)
            if (h[i] == '\n')
                return false;
        return true;
    }
    const char *pct = memchr(h, '%', n);
    size_t alen = pct ? (size_t)(pct - h) : n;
    if (pct) {
        size_t slen = n - alen - 1;
        if (slen == 0 || memchr(pct + 1, '%', slen))
            return false;
    }
    char tmp[64];
    if (alen >= sizeof(tmp))
        return false;
    memcpy(tmp, h, alen);
    tmp[alen] = '\0';
    unsigned char addr[16];
    return inet_pton(AF_INET6, tmp, addr) == 1;
}

/*
 * Gunicorn's split_request_uri(): urllib.parse.urlsplit, except that a
 * leading "//" is an absolute path rather than a network location.
 * Returns false where urlsplit raises ValueError.
 */
static bool split_uri(const char *u, size_t n, cg_http_request_t *req)
{
    const char *p = u, *end = u + n;

    if (!(n >= 2 && u[0] == '/' && u[1] == '/')) {
        const char *colon = memchr(u, ':', n);
        if (colon && colon > u && ((u[0] | 0x20) >= 'a' && (u[0] | 0x20) <= 'z')) {
            const char *q = u;
            for (; q < colon; q++) {
                unsigned char c = (unsigned char)*q;
                if (!((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
                      c == '+' || c == '-' || c == '.'))
                    break;
            }
            if (q == colon)
                p = colon + 1;
        }
        if (end - p >= 2 && p[0] == '/' && p[1] == '/') {
            const char *nl = p + 2, *d = nl;
            while (d < end && *d != '/' && *d != '?' && *d != '#')
                d++;
            size_t nlen = (size_t)(d - nl);
            const char *lb = memchr(nl, '[', nlen), *rb = memchr(nl, ']', nlen);
            if ((lb == NULL) != (rb == NULL))
                return false;
            if (lb) {
                const char *hs = lb + 1;
                const char *he = memchr(hs, ']', (size_t)(nl + nlen - hs));
                if (!he)
                    he = nl + nlen; /* partition(']') with no ']' after '[' */
                if (!bracketed_host_ok(hs, (size_t)(he - hs)))
                    return false;
            }
            p = d;
        }
    }
    const char *hash = memchr(p, '#', (size_t)(end - p));
    if (hash) {
        req->fragment = (cg_str_t){hash + 1, (size_t)(end - hash - 1)};
        end = hash;
    }
    const char *qm = memchr(p, '?', (size_t)(end - p));
    if (qm) {
        req->query = (cg_str_t){qm + 1, (size_t)(end - qm - 1)};
        end = qm;
    }
    req->path = (cg_str_t){p, (size_t)(end - p)};
    return true;
}

/* RFC 9112 section 3: method SP request-target SP HTTP-version */
static int parse_request_line(const cg_http_settings_t *s, char *line, size_t n,
                              cg_http_request_t *req)
{
    cg_http_error_t *err = &req->error;
    char *sp1 = memchr(line, ' ', n);
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line + n - sp1 - 1)) : NULL;
    if (!sp2)
        return fail(err, CG_HTTP_E_INVALID_REQUEST_LINE, line, n);

    char *m = line;
    size_t mlen = (size_t)(sp1 - line);
    if (!s->permit_unconventional_http_method) {
        for (size_t i = 0; i < mlen; i++)
            if ((m[i] >= 'a' && m[i] <= 'z') || m[i] == '#')
                return fail(err, CG_HTTP_E_INVALID_REQUEST_METHOD, m, mlen);
        if (mlen < 3 || mlen > 20)
            return fail(err, CG_HTTP_E_INVALID_REQUEST_METHOD, m, mlen);
    }
    if (!is_token(m, mlen))
        return fail(err, CG_HTTP_E_INVALID_REQUEST_METHOD, m, mlen);
    if (s->casefold_http_method)
        for (size_t i = 0; i < mlen; i++)
            m[i] = (char)to_upper((unsigned char)m[i]);
    req->method = (cg_str_t){m, mlen};

    const char *u = sp1 + 1;
    size_t ulen = (size_t)(sp2 - u);
    req->uri = (cg_str_t){u, ulen};
    if (ulen == 0)
        return fail(err, CG_HTTP_E_INVALID_REQUEST_LINE, line, n);
    /*
     * RFC 9112 3.2 / RFC 3986 section 2: a request-target is printable ASCII,
     * everything else percent-encoded. A CR, LF or NUL would forge or cut an
     * access-log line; raw bytes 0x80-0xFF have no one reading (Gunicorn 27
     * refuses both, 26 let them through).
     */
    for (size_t i = 0; i < ulen; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c < 0x20 || c >= 0x7f)
            return fail(err, CG_HTTP_E_INVALID_REQUEST_LINE, line, n);
    }
    bool star = ulen == 1 && u[0] == '*';
    /* RFC 9112 3.2.4: asterisk-form only for OPTIONS */
    if (star && !view_eq(m, mlen, "OPTIONS"))
        return fail(err, CG_HTTP_E_INVALID_REQUEST_LINE, line, n);
    /* RFC 9112 3.2.3: authority-form only for CONNECT */
    if (!view_eq(m, mlen, "CONNECT") && !star && u[0] != '/' && !memmem(u, ulen, "://", 3))
        return fail(err, CG_HTTP_E_INVALID_REQUEST_LINE, line, n);
    if (!split_uri(u, ulen, req))
        return fail(err, CG_HTTP_E_INVALID_REQUEST_LINE, line, n);

    const char *v = sp2 + 1;
    size_t vlen = (size_t)(line + n - v);
    if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return fail(err, CG_HTTP_E_INVALID_HTTP_VERSION, v, vlen);
    req->version_major = (uint8_t)(v[5] - '0');
    req->version_minor = (uint8_t)(v[7] - '0');
    if (req->version_major != 1 && !s->permit_unconventional_http_version) {
        memset(err, 0, sizeof(*err));
        err->code = CG_HTTP_E_INVALID_HTTP_VERSION;
        err->n1 = req->version_major;
        err->n2 = req->version_minor;
        return -EPROTO;
    }
    return 0;
}

/* ------------------------------------------------------------ header fields */

typedef struct fields {
    const cg_http_settings_t *s;
    bool trailer;
    bool trusted;
    unsigned version; /* major * 10 + minor */
    cg_http_header_t *out;
    size_t cap, n;
    bool expect_continue;
    int scheme_https;
} fields_t;

static const char *const cg__forbidden_trailers[] = {
    "HOST", "CONTENT-LENGTH", "TRANSFER-ENCODING", "TRAILER", "AUTHORIZATION", "TE",
};

static bool in_list(const char *p, size_t n, const char *const *list, size_t nlist)
{
    for (size_t i = 0; i < nlist; i++)
        if (list[i] && view_eq(p, n, list[i]))
            return true;
    return false;
}

/*
 * Parse the header (or trailer) block blk[0..blen), which excludes the final
 * CRLF CRLF. Lines are split on CRLF only: a bare CR or LF stays inside a line
 * where the name or value checks refuse it.
 */
static int parse_fields(fields_t *f, char *blk, size_t blen, cg_http_error_t *err)
{
    const cg_http_settings_t *s = f->s;
    size_t kept = 0, pos = 0;
    bool seen_host = false, seen_ctype = false, scheme_set = false;

    while (pos <= blen) {
        if (kept >= s->limit_request_fields)
            return fail_lit(err, CG_HTTP_E_LIMIT_REQUEST_HEADERS, "limit request headers fields");

        char *ls = blk + pos;
        size_t ll = cg_http_find_crlf(ls, blen - pos);
        pos += ll + 2;
        size_t hlen = ll + 2;

        char *colon = memchr(ls, ':', ll);
        if (!colon || colon == ls)
            return fail(err, CG_HTTP_E_INVALID_HEADER, ls, ll);
        char *name = ls;
        size_t nlen = (size_t)(colon - ls);
        if (s->strip_header_spaces)
            while (nlen > 0 && is_sp_htab(name[nlen - 1]))
                nlen--;
        if (!is_token(name, nlen))
            return fail(err, CG_HTTP_E_INVALID_HEADER_NAME, name, nlen);
        for (size_t i = 0; i < nlen; i++)
            name[i] = (char)to_upper((unsigned char)name[i]);
        if (f->trailer && in_list(name, nlen, cg__forbidden_trailers,
                                  CG_ARRAY_SIZE(cg__forbidden_trailers)))
            return fail(err, CG_HTTP_E_INVALID_HEADER_NAME, name, nlen);

        const char *vs = colon + 1, *ve = ls + ll;
        strip_sp_htab(&vs, &ve);
        char *w = (char *)ve;

        /* RFC 9112 5.2: obs-fold, refused unless permitted; then joined with SP */
        while (pos < blen && is_sp_htab(blk[pos])) {
            if (!s->permit_obsolete_folding)
                return fail(err, CG_HTTP_E_OBSOLETE_FOLDING, name, nlen);
            char *cs = blk + pos;
            size_t cl = cg_http_find_crlf(cs, blen - pos);
            pos += cl + 2;
            hlen += cl + 2;
            if (hlen > s->limit_request_field_size)
                return fail_lit(err, CG_HTTP_E_LIMIT_REQUEST_HEADERS,
                                "limit request headers fields size");
            const char *ps = cs, *pe = cs + cl;
            strip_sp_htab(&ps, &pe);
            *w++ = ' ';
            memmove(w, ps, (size_t)(pe - ps));
            w += pe - ps;
        }
        size_t vlen = (size_t)(w - vs);

        /* RFC 9110 5.5: CTLs other than HTAB are refused; obs-text is allowed */
        for (size_t i = 0; i < vlen; i++) {
            unsigned char c = (unsigned char)vs[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return fail(err, CG_HTTP_E_INVALID_HEADER, name, nlen);
        }
        if (hlen > s->limit_request_field_size)
            return fail_lit(err, CG_HTTP_E_LIMIT_REQUEST_HEADERS,
                            "limit request headers fields size");

        /* RFC 9110 5.3: singleton fields */
        if (view_eq(name, nlen, "HOST") || view_eq(name, nlen, "CONTENT-TYPE")) {
            bool *seen = name[0] == 'H' ? &seen_host : &seen_ctype;
            if (*seen)
                return fail(err, CG_HTTP_E_INVALID_HEADER, name, nlen);
            *seen = true;
        }
        /* RFC 9110 10.1.1 */
        if (!f->trailer && view_eq(name, nlen, "EXPECT")) {
            if (view_caseeq(vs, vlen, "100-continue")) {
                if (f->version >= 11)
                    f->expect_continue = true;
            } else {
                return fail(err, CG_HTTP_E_EXPECTATION_FAILED, vs, vlen);
            }
        }
        if (!f->trailer && f->trusted) {
            for (size_t i = 0; i < s->nsecure_scheme; i++) {
                if (!view_eq(name, nlen, s->secure_scheme_names[i]))
                    continue;
                int https = view_eq(vs, vlen, s->secure_scheme_values[i]) ? 1 : 0;
                if (scheme_set && https != f->scheme_https)
                    return fail(err, CG_HTTP_E_INVALID_SCHEME_HEADERS, NULL, 0);
                scheme_set = true;
                f->scheme_https = https;
                break;
            }
        }
        /* Underscore names would alias dash names in the WSGI environ. */
        bool dropped = false;
        if (memchr(name, '_', nlen)) {
            bool fwd = !f->trailer && f->trusted &&
                       (s->forwarder_headers_all ||
                        in_list(name, nlen, s->forwarder_headers, s->nforwarder_headers));
            if (fwd || s->header_map == CG_HTTP_HEADER_MAP_DANGEROUS)
                ;
            else if (s->header_map == CG_HTTP_HEADER_MAP_DROP)
                dropped = true;
            else
                return fail(err, CG_HTTP_E_INVALID_HEADER_NAME, name, nlen);
        }

        cg_http_header_t h = {{name, nlen}, {vs, vlen}, dropped ? CG_HTTP_HF_DROPPED : 0};
        if (dropped) {
            /* keep room for every field that may still be kept */
            if (f->out && f->cap - f->n > s->limit_request_fields - kept)
                f->out[f->n++] = h;
        } else {
            kept++;
            if (f->out) {
                if (f->n >= f->cap)
                    return fail_lit(err, CG_HTTP_E_LIMIT_REQUEST_HEADERS,
                                    "limit request headers fields");
                f->out[f->n++] = h;
            }
        }
    }
    return 0;
}

int cg_http_parse_trailers(const cg_http_settings_t *s, char *buf, size_t len,
                           cg_http_header_t *out, size_t cap, size_t *n, cg_http_error_t *err)
{
    fields_t f = {.s = s, .trailer = true, .out = out, .cap = out ? cap : 0, .scheme_https = -1};
    *n = 0;
    if (len == 0)
        return 0;
    int rc = parse_fields(&f, buf, len, err);
    *n = f.n;
    return rc;
}

/* ------------------------------------------------------------ body framing */

/*
 * RFC 9112 section 6: Content-Length / Transfer-Encoding, Gunicorn's rules
 * plus the RFC's where Gunicorn is laxer (docs/compatibility.md, "HTTP/1.1
 * request parsing"): codings are compared after trimming OWS only (SP, HTAB;
 * RFC 9110 5.6.1), not Python's str.strip() set, so "\xa0chunked" is no
 * chunked; a Transfer-Encoding whose final coding is not chunked is refused
 * (RFC 9112 6.3 item 4); a Content-Length beyond INT64_MAX is refused.
 */
static int set_framing(cg_http_request_t *req)
{
    cg_http_error_t *err = &req->error;
    bool chunked = false, have_cl = false, have_te = false;
    cg_str_t cl = {NULL, 0};

    for (size_t i = 0; i < req->nheaders; i++) {
        const cg_http_header_t *h = &req->headers[i];
        if (h->flags & CG_HTTP_HF_DROPPED)
            continue;
        if (view_eq(h->name.ptr, h->name.len, "CONTENT-LENGTH")) {
            if (have_cl)
                return fail_lit(err, CG_HTTP_E_INVALID_HEADER, "CONTENT-LENGTH");
            have_cl = true;
            cl = h->value;
        } else if (view_eq(h->name.ptr, h->name.len, "TRANSFER-ENCODING")) {
            const char *p = h->value.ptr, *end = p + h->value.len;
            have_te = true;
            for (;;) {
                const char *c = memchr(p, ',', (size_t)(end - p));
                const char *e = c ? c : end, *b = p;
                strip_sp_htab(&b, &e);
                size_t n = (size_t)(e - b);
                if (view_caseeq(b, n, "chunked")) {
                    if (chunked) /* stacked chunking is never intended */
                        return fail_lit(err, CG_HTTP_E_INVALID_HEADER, "TRANSFER-ENCODING");
                    chunked = true;
                } else if (view_caseeq(b, n, "identity")) {
                    if (chunked)
                        return fail_lit(err, CG_HTTP_E_INVALID_HEADER, "TRANSFER-ENCODING");
                } else if (view_caseeq(b, n, "compress") || view_caseeq(b, n, "deflate") ||
                           view_caseeq(b, n, "gzip")) {
                    if (chunked) /* chunked must be the last coding */
                        return fail_lit(err, CG_HTTP_E_INVALID_HEADER, "TRANSFER-ENCODING");
                    req->force_close = true;
                } else {
                    return fail(err, CG_HTTP_E_UNSUPPORTED_TRANSFER_CODING, h->value.ptr,
                                h->value.len);
                }
                if (!c)
                    break;
                p = c + 1;
            }
        }
    }

    /* RFC 9112 6.3 item 4: without chunked last the length is unknowable
     * (Gunicorn frames "identity" or "gzip" alone by Content-Length). A
     * chunked followed by another coding was refused above already. */
    if (have_te && !chunked)
        return fail_lit(err, CG_HTTP_E_INVALID_HEADER, "TRANSFER-ENCODING");
    if (chunked) {
        /* RFC 9112 6.1: chunked in HTTP/1.0 and CL+TE cannot be framed safely */
        if (req->version_major * 10 + req->version_minor < 11)
            return fail_lit(err, CG_HTTP_E_INVALID_HEADER, "TRANSFER-ENCODING");
        if (have_cl)
            return fail_lit(err, CG_HTTP_E_INVALID_HEADER, "CONTENT-LENGTH");
        req->body_kind = CG_HTTP_BODY_CHUNKED;
    } else if (have_cl) {
        uint64_t v = 0;
        if (cl.len == 0)
            return fail_lit(err, CG_HTTP_E_INVALID_HEADER, "CONTENT-LENGTH");
        /* RFC 9112 6.3 item 5: a length that cannot be represented is
         * invalid. Gunicorn's int() has no bound; ours is INT64_MAX, so every
         * later off_t / ssize_t sum stays exact. Leading zeros are fine. */
        for (size_t i = 0; i < cl.len; i++) {
            unsigned char c = (unsigned char)cl.ptr[i];
            if (c < '0' || c > '9' || v > ((uint64_t)INT64_MAX - (c - '0')) / 10)
                return fail_lit(err, CG_HTTP_E_INVALID_HEADER, "CONTENT-LENGTH");
            v = v * 10 + (c - '0');
        }
        req->body_kind = CG_HTTP_BODY_LENGTH;
        req->content_length = v;
    }
    return 0;
}

/* Gunicorn's Message.should_close(), plus the Connection: upgrade token. */
static void set_persistence(cg_http_request_t *req)
{
    bool decided = false, close = false;
    for (size_t i = 0; i < req->nheaders; i++) {
        const cg_http_header_t *h = &req->headers[i];
        if ((h->flags & CG_HTTP_HF_DROPPED))
            continue;
        if (view_eq(h->name.ptr, h->name.len, "SCRIPT_NAME"))
            req->script_name = h->value;
        if (!view_eq(h->name.ptr, h->name.len, "CONNECTION"))
            continue;
        if (!decided) { /* only the first Connection field counts */
            decided = true;
            if (view_caseeq(h->value.ptr, h->value.len, "close"))
                close = true;
            else if (view_caseeq(h->value.ptr, h->value.len, "keep-alive"))
                close = false;
            else
                close = req->version_major * 10 + req->version_minor <= 10;
        }
        const char *p = h->value.ptr, *end = p + h->value.len;
        for (;;) {
            const char *c = memchr(p, ',', (size_t)(end - p));
            const char *e = c ? c : end, *b = p;
            while (b < e && is_sp_htab(*b))
                b++;
            while (e > b && is_sp_htab(e[-1]))
                e--;
            if (view_caseeq(b, (size_t)(e - b), "upgrade"))
                req->connection_upgrade = true;
            if (!c)
                break;
            p = c + 1;
        }
    }
    if (!decided)
        close = req->version_major * 10 + req->version_minor <= 10;
    if (req->force_close)
        close = true;
    /* RFC 9931 8 (Gunicorn 27): after a CONNECT the bytes on the connection
     * are tunnel data whatever the app answered, never another request. */
    if (view_eq(req->method.ptr, req->method.len, "CONNECT"))
        close = true;
    req->keep_alive = !close;
}

/* ------------------------------------------------------------ entry point */

static void reset_request(cg_http_request_t *req)
{
    cg_http_header_t *h = req->headers;
    size_t cap = req->headers_cap;
    memset(req, 0, sizeof(*req));
    req->headers = h;
    req->headers_cap = cap;
    req->scheme_https = -1;
}

/* The head proper: buf starts with the request line (empty lines skipped). */
static ssize_t parse_head(const cg_http_settings_t *s, cg_http_parser_t *p, char *buf, size_t len,
                          bool peer_trusted, cg_http_request_t *req)
{
    bool line_parsed = false;

    if (p->line_end == 0) {
        size_t from = p->scanned ? p->scanned - 1 : 0;
        if (from > len)
            from = len;
        size_t idx = from + cg_http_find_crlf(buf + from, len - from);
        size_t limit = s->limit_request_line;
        /* RFC 9112 2.2: a bare LF ends no line here; refused as it arrives
         * rather than waited on until a limit or the timeout. */
        if (memchr(buf + from, '\n', (idx < len ? idx : len) - from))
            return fail_lit(&req->error, CG_HTTP_E_INVALID_REQUEST_LINE,
                            "bare LF as line terminator");
        if (idx >= len) {
            p->scanned = len;
            if (limit > 0 && len > 2 && len - 2 > limit) {
                fail(&req->error, CG_HTTP_E_LIMIT_REQUEST_LINE, NULL, 0);
                req->error.n1 = len;
                req->error.n2 = limit;
                return -EPROTO;
            }
            return CG_EAGAIN;
        }
        if (limit > 0 && idx > limit) {
            fail(&req->error, CG_HTTP_E_LIMIT_REQUEST_LINE, NULL, 0);
            req->error.n1 = idx;
            req->error.n2 = limit;
            return -EPROTO;
        }
        if (parse_request_line(s, buf, idx, req) < 0)
            return -EPROTO;
        line_parsed = true;
        p->line_end = idx + 2;
        p->scanned = idx + 2;
    }

    size_t hb = p->line_end, head_end, blen = 0;
    bool no_headers = len - hb >= 2 && buf[hb] == '\r' && buf[hb + 1] == '\n';
    if (no_headers) {
        head_end = hb + 2;
    } else {
        size_t from = p->scanned >= hb + 3 ? p->scanned - 3 : hb;
        size_t idx = from + cg_http_find_crlfcrlf(buf + from, len - from);
        size_t fs = s->limit_request_field_size;
        size_t max_buffer = s->limit_request_fields * (fs + 2) + 4;
        /*
         * Gunicorn checks the buffer size only while the end is missing. The
         * longest such buffer ends one byte short of the final CRLF CRLF, so
         * judging idx + 3 when the end is there gives the same verdict
         * however the bytes were split.
         */
        /* RFC 9112 2.2: every line of the head ends with CRLF; a bare LF
         * is refused as soon as it arrives rather than waited on until a
         * limit or the timeout. Each byte is judged once. */
        for (size_t i = from > hb ? from : hb + 1, end = idx < len ? idx : len; i < end; i++)
            if (buf[i] == '\n' && buf[i - 1] != '\r')
                return fail_lit(&req->error, CG_HTTP_E_INVALID_HEADER,
                                "bare LF as line terminator");
        if (idx >= len) {
            p->scanned = len;
            if (len - hb > max_buffer)
                return fail_lit(&req->error, CG_HTTP_E_LIMIT_REQUEST_HEADERS,
                                "max buffer headers");
            return CG_EAGAIN;
        }
        if (idx + 3 - hb > max_buffer)
            return fail_lit(&req->error, CG_HTTP_E_LIMIT_REQUEST_HEADERS, "max buffer headers");
        head_end = idx + 4;
        blen = idx - hb;
    }

    if (!line_parsed && parse_request_line(s, buf, hb - 2, req) < 0)
        return -EPROTO;

    if (!no_headers) {
        fields_t f = {.s = s,
                      .trusted = peer_trusted,
                      .version = (unsigned)(req->version_major * 10 + req->version_minor),
                      .out = req->headers,
                      .cap = req->headers_cap,
                      .scheme_https = -1};
        if (parse_fields(&f, buf + hb, blen, &req->error) < 0)
            return -EPROTO;
        req->nheaders = f.n;
        req->expect_continue = f.expect_continue;
        req->scheme_https = f.scheme_https;
    }
    if (set_framing(req) < 0)
        return -EPROTO;
    set_persistence(req);
    req->head_len = head_end;
    return (ssize_t)head_end;
}

ssize_t cg_http_parse_request(const cg_http_settings_t *s, cg_http_parser_t *p, char *buf,
                              size_t len, bool peer_trusted, cg_http_request_t *req)
{
    reset_request(req);
    if (p->line_end == 0 && p->skipped == 0) {
        /*
         * RFC 9112 2.2: a server SHOULD ignore at least one empty line before
         * the request line (a client that ends a POST body with an extra
         * CRLF). Gunicorn 27 ignores exactly one; a second is an empty
         * request line, InvalidRequestLine(''), so a stream of CRLFs costs
         * nothing to refuse.
         */
        if (len == 0 || (len == 1 && buf[0] == '\r'))
            return CG_EAGAIN;
        if (buf[0] == '\r' && buf[1] == '\n')
            p->skipped = 2;
    }
    size_t k = p->skipped;
    ssize_t rc = parse_head(s, p, buf + k, len - k, peer_trusted, req);
    if (rc > 0) {
        req->head_len += k;
        rc += (ssize_t)k;
    }
    return rc;
}
