/*
 * chunked.c - incremental, in-place chunked transfer coding decoder
 * (RFC 9112 section 7.1) with Gunicorn's strictness, plus the chunk-ext
 * grammar of section 7.1.1, which Gunicorn does not check.
 *
 * Size lines and the trailer section are only judged once complete (left
 * unconsumed until then), because Gunicorn reads them whole before checking
 * and the error raised must not depend on how the bytes were split.
 */
#include "http.h"

#include <string.h>

enum {
    ST_SIZE = 0,
    ST_DATA,
    ST_DATA_CRLF,
    ST_TRAILER,
    ST_DONE,
};

/* Gunicorn reads a size line without limit; we stop at this length. */
#define CG__CHUNK_LINE_MAX 8190

void cg_http_chunked_init(cg_http_chunked_t *d)
{
    memset(d, 0, sizeof(*d));
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int set_err(cg_http_error_t *err, cg_http_errcode_t code, const char *p, size_t n)
{
    memset(err, 0, sizeof(*err));
    err->code = code;
    err->arg = (cg_str_t){p, n};
    return -EPROTO;
}

static int ext_err(cg_http_error_t *err, const char *why)
{
    memset(err, 0, sizeof(*err));
    err->code = CG_HTTP_E_INVALID_CHUNK_EXTENSION;
    err->lit = why;
    return -EPROTO;
}

static bool is_bws(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * RFC 9112 7.1.1, from the first ';' to the end of the line:
 *   chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 *   chunk-ext-name = token
 *   chunk-ext-val  = token / quoted-string        (RFC 9110 5.6.4)
 * Gunicorn only refuses a bare CR here; a nameless extension or an open
 * quoted string is where a front end and we could disagree on where the line
 * ends, so the whole grammar is checked.
 */
static int check_ext(const char *p, size_t n, cg_http_error_t *err)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && is_bws(p[i]))
            i++;
        if (i == n) /* trailing whitespace: outside the grammar, but harmless */
            break;
        if (p[i] != ';')
            return ext_err(err, "expected ';'");
        i++;
        while (i < n && is_bws(p[i]))
            i++;
        size_t name = i;
        while (i < n && cg_http_is_tchar((unsigned char)p[i]))
            i++;
        if (i == name)
            return ext_err(err, "missing extension name");
        size_t j = i;
        while (j < n && is_bws(p[j]))
            j++;
        if (j == n || p[j] != '=')
            continue;
        i = j + 1;
        while (i < n && is_bws(p[i]))
            i++;
        if (i < n && p[i] == '"') {
            for (i++;; i++) {
                if (i >= n)
                    return ext_err(err, "unterminated quoted string");
                unsigned char c = (unsigned char)p[i];
                if (c == '"')
                    break;
                if (c == '\\') { /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
                    if (++i >= n)
                        return ext_err(err, "unterminated quoted string");
                    c = (unsigned char)p[i];
                }
                if ((c < 0x20 && c != '\t') || c == 0x7f)
                    return ext_err(err, "control character in quoted string");
            }
            i++;
        } else {
            size_t val = i;
            while (i < n && cg_http_is_tchar((unsigned char)p[i]))
                i++;
            if (i == val)
                return ext_err(err, "missing extension value");
        }
    }
    return 0;
}

/* chunk-size [ BWS ; chunk-ext ] : the line without its CRLF */
static int parse_size_line(const char *line, size_t n, uint64_t *size, cg_http_error_t *err)
{
    const char *semi = memchr(line, ';', n);
    size_t slen = n;
    if (semi) {
        if (memchr(semi + 1, '\r', (size_t)(line + n - semi - 1))) {
            memset(err, 0, sizeof(*err));
            err->code = CG_HTTP_E_INVALID_CHUNK_EXTENSION;
            err->lit = "bare CR not allowed";
            return -EPROTO;
        }
        /* BWS before ';' is allowed only when an extension follows */
        slen = (size_t)(semi - line);
        while (slen > 0 && (line[slen - 1] == ' ' || line[slen - 1] == '\t'))
            slen--;
    }
    if (slen == 0)
        return set_err(err, CG_HTTP_E_INVALID_CHUNK_SIZE, line, slen);
    uint64_t v = 0;
    for (size_t i = 0; i < slen; i++) {
        int h = hexval((unsigned char)line[i]);
        if (h < 0)
            return set_err(err, CG_HTTP_E_INVALID_CHUNK_SIZE, line, slen);
        if (v >> 60) /* does not fit: refuse instead of wrapping */
            return set_err(err, CG_HTTP_E_INVALID_CHUNK_SIZE, line, slen);
        v = (v << 4) | (uint64_t)h;
    }
    /* judged after the size, so a bad size keeps Gunicorn's error */
    if (semi && check_ext(semi, (size_t)(line + n - semi), err) < 0)
        return -EPROTO;
    *size = v;
    return 0;
}

int cg_http_chunked_decode(const cg_http_settings_t *s, cg_http_chunked_t *d, char *buf,
                           size_t *len, size_t *out, cg_http_error_t *err)
{
    size_t n = *len, in = 0, o = 0;
    int rc = 0;

    while (rc == 0) {
        size_t avail = n - in;
        switch (d->state) {
        case ST_SIZE: {
            size_t from = d->line_len ? d->line_len - 1 : 0;
            if (from > avail)
                from = avail;
            size_t idx = from + cg_http_find_crlf(buf + in + from, avail - from);
            if (idx >= avail) {
                d->line_len = avail;
                if (avail > CG__CHUNK_LINE_MAX)
                    return set_err(err, CG_HTTP_E_INVALID_CHUNK_SIZE, buf + in, 64);
                goto partial;
            }
            if (idx + 1 > CG__CHUNK_LINE_MAX) /* as if it had arrived byte by byte */
                return set_err(err, CG_HTTP_E_INVALID_CHUNK_SIZE, buf + in, 64);
            uint64_t size = 0;
            if (parse_size_line(buf + in, idx, &size, err) < 0)
                return -EPROTO;
            in += idx + 2;
            d->line_len = 0;
            if (size == 0) {
                d->state = ST_TRAILER;
                d->trailer_len = 0;
            } else {
                d->state = ST_DATA;
                d->chunk_left = size;
            }
            break;
        }
        case ST_DATA: {
            size_t k = avail;
            if (k > d->chunk_left)
                k = (size_t)d->chunk_left;
            if (d->out_max && k > d->out_max - o)
                k = d->out_max - o;
            if (k == 0)
                goto partial;
            if (o != in)
                memmove(buf + o, buf + in, k);
            o += k;
            in += k;
            d->chunk_left -= k;
            if (d->chunk_left == 0)
                d->state = ST_DATA_CRLF;
            break;
        }
        case ST_DATA_CRLF:
            if (avail < 2)
                goto partial;
            if (buf[in] != '\r' || buf[in + 1] != '\n')
                return set_err(err, CG_HTTP_E_CHUNK_MISSING_TERMINATOR, buf + in, 2);
            in += 2;
            d->state = ST_SIZE;
            break;
        case ST_TRAILER: {
            if (avail < 2)
                goto partial;
            if (buf[in] == '\r' && buf[in + 1] == '\n') {
                in += 2;
                d->state = ST_DONE;
                break;
            }
            size_t from = d->trailer_len >= 3 ? d->trailer_len - 3 : 0;
            if (from > avail)
                from = avail;
            size_t idx = from + cg_http_find_crlfcrlf(buf + in + from, avail - from);
            size_t fs = s->limit_request_field_size;
            size_t max_buffer = s->limit_request_fields * (fs + 2) + 4;
            /* same split-independent rule as for the head (parser.c) */
            if (idx >= avail ? avail > max_buffer : idx + 3 > max_buffer) {
                memset(err, 0, sizeof(*err));
                err->code = CG_HTTP_E_LIMIT_REQUEST_HEADERS;
                err->lit = "max buffer headers";
                return -EPROTO;
            }
            if (idx >= avail) {
                d->trailer_len = avail;
                goto partial;
            }
            size_t nt = 0;
            if (cg_http_parse_trailers(s, buf + in, idx, d->trailers, d->trailers_cap, &nt,
                                       err) < 0)
                return -EPROTO;
            d->ntrailers = nt;
            in += idx + 4;
            d->state = ST_DONE;
            break;
        }
        default:
            d->done = true;
            rc = 1;
            break;
        }
    }
partial:
    *len = in;
    *out = o;
    return rc;
}

int cg_http_chunked_eof(const cg_http_chunked_t *d, const char *rest, size_t restlen,
                        cg_http_error_t *err)
{
    switch (d->state) {
    case ST_DONE:
        return 0;
    case ST_DATA_CRLF:
        return set_err(err, CG_HTTP_E_CHUNK_MISSING_TERMINATOR, rest, restlen < 2 ? restlen : 2);
    case ST_TRAILER: /* RFC 9112 7.1.2: the trailer section must end with CRLF */
        return set_err(err, CG_HTTP_E_CHUNK_MISSING_TERMINATOR, "", 0);
    default:
        return set_err(err, CG_HTTP_E_NO_MORE_DATA, NULL, 0);
    }
}
