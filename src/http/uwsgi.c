/*
 * uwsgi.c - the uwsgi binary protocol (--protocol uwsgi), as Gunicorn 24+
 * reads it (gunicorn/uwsgi/message.py): a 4-byte header (modifier1,
 * little-endian datasize, modifier2), then datasize bytes of vars, each a
 * little-endian 16-bit size and key, then the same for the value; the body
 * follows, CONTENT_LENGTH bytes of it.
 *
 * The vars are turned into the same request the HTTP parser makes, so the
 * rest of the server (environ, body, response, access log) is unchanged:
 * HTTP_* vars become headers (HTTP_X_FOO becomes X-FOO, rewritten in place
 * in the caller's buffer), CONTENT_TYPE and CONTENT_LENGTH too;
 * REQUEST_METHOD, PATH_INFO and QUERY_STRING make the request line; HTTPS
 * or wsgi.url_scheme the scheme. Other vars (REMOTE_ADDR, SERVER_NAME...)
 * are not used, as in Gunicorn: the environ is built from the connection.
 */
#include "http.h"

#include <stdlib.h>
#include <string.h>

/* Gunicorn's MAX_UWSGI_VARS: a bound on the work one packet can ask for */
#define CG__UWSGI_MAX_VARS 1000

static ssize_t cg__bad(cg_http_request_t *req, const char *why)
{
    req->error = (cg_http_error_t){.code = CG_HTTP_E_INVALID_UWSGI_HEADER, .lit = why};
    return -EPROTO;
}

static size_t cg__le16(const unsigned char *p)
{
    return (size_t)p[0] | (size_t)p[1] << 8;
}

/* Python's int() of a CONTENT_LENGTH text, with Gunicorn's max(.., 0); any
 * text int() refuses counts 0. Surrounding whitespace, a sign and single
 * underscores between digits are accepted, as int() accepts them. */
static uint64_t cg__content_length(cg_str_t v)
{
    size_t i = 0, n = v.len;
    const unsigned char *s = (const unsigned char *)v.ptr;
    while (i < n && cg_py_isspace_latin1(s[i]))
        i++;
    while (n > i && cg_py_isspace_latin1(s[n - 1]))
        n--;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == n)
        return 0;
    uint64_t val = 0;
    bool digit_before = false;
    for (; i < n; i++) {
        if (s[i] == '_' && digit_before && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9') {
            digit_before = false;
            continue;
        }
        if (s[i] < '0' || s[i] > '9')
            return 0;
        digit_before = true;
        /* past 2^62 nobody sends that many bytes: the read just never ends */
        if (val < (UINT64_C(1) << 62))
            val = val * 10 + (uint64_t)(s[i] - '0');
    }
    return neg ? 0 : val;
}

static bool cg__is(cg_str_t key, const char *lit)
{
    return cg_str_eq(key, lit, strlen(lit));
}

/* Add or replace (a later var of the same key wins, as in a dict) a header. */
static int cg__header(cg_http_request_t *req, cg_str_t name, cg_str_t value)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (cg_str_eq(req->headers[i].name, name.ptr, name.len)) {
            req->headers[i].value = value;
            return 0;
        }
    }
    if (req->nheaders == req->headers_cap)
        return -1;
    req->headers[req->nheaders++] = (cg_http_header_t){.name = name, .value = value};
    return 0;
}

bool cg_uwsgi_allowed(const char *peer_ip, const char *const *allow, size_t nallow)
{
    if (peer_ip == NULL || peer_ip[0] == '\0')
        return true; /* a unix socket: no address to check */
    for (size_t i = 0; i < nallow; i++)
        if (strcmp(allow[i], "*") == 0 || strcmp(allow[i], peer_ip) == 0)
            return true;
    return false;
}

ssize_t cg_uwsgi_parse(char *buf, size_t len, cg_uwsgi_scratch_t *scratch, cg_http_request_t *req)
{
    cg_http_header_t *headers = req->headers;
    size_t cap = req->headers_cap;
    memset(req, 0, sizeof(*req));
    req->headers = headers;
    req->headers_cap = cap;
    req->scheme_https = -1;

    if (len < 4)
        return CG_EAGAIN;
    const unsigned char *u = (const unsigned char *)buf;
    if (u[0] != 0) { /* only modifier1 0, a WSGI request, is served */
        req->error = (cg_http_error_t){.code = CG_HTTP_E_UNSUPPORTED_UWSGI_MODIFIER, .n1 = u[0]};
        return -EPROTO;
    }
    size_t datasize = cg__le16(u + 1);
    if (len < 4 + datasize)
        return CG_EAGAIN;

    cg_str_t method = CG_STR_LIT("GET"), path = CG_STR_LIT("/"), query = CG_STR_LIT("");
    cg_str_t https = {NULL, 0}, url_scheme = {NULL, 0}, connection = {NULL, 0};
    uint64_t content_length = 0;
    size_t pos = 4, end = 4 + datasize, nvars = 0;
    while (pos < end) {
        if (nvars++ >= CG__UWSGI_MAX_VARS)
            return cg__bad(req, "too many variables");
        if (pos + 2 > end)
            return cg__bad(req, "truncated key size");
        size_t klen = cg__le16(u + pos);
        pos += 2;
        if (pos + klen > end)
            return cg__bad(req, "truncated key");
        cg_str_t key = {buf + pos, klen};
        pos += klen;
        if (pos + 2 > end)
            return cg__bad(req, "truncated value size");
        size_t vlen = cg__le16(u + pos);
        pos += 2;
        if (pos + vlen > end)
            return cg__bad(req, "truncated value");
        cg_str_t val = {buf + pos, vlen};
        pos += vlen;

        if (cg__is(key, "REQUEST_METHOD")) {
            method = val;
        } else if (cg__is(key, "PATH_INFO")) {
            path = val;
        } else if (cg__is(key, "QUERY_STRING")) {
            query = val;
        } else if (cg__is(key, "HTTPS")) {
            https = val;
        } else if (cg__is(key, "wsgi.url_scheme")) {
            url_scheme = val;
        } else if (cg__is(key, "HTTP_CONNECTION")) {
            connection = val;
        } else if (cg__is(key, "CONTENT_LENGTH")) {
            content_length = cg__content_length(val);
        }
        /* headers: HTTP_NAME as NAME with '-' for '_', and the two CGI
         * names that have no HTTP_ prefix; rewritten in place (the key's
         * bytes are not looked at again) */
        bool http = klen >= 5 && memcmp(key.ptr, "HTTP_", 5) == 0;
        if (http || cg__is(key, "CONTENT_TYPE") || cg__is(key, "CONTENT_LENGTH")) {
            char *name = buf + (key.ptr - buf) + (http ? 5 : 0);
            size_t nlen = klen - (http ? 5 : 0);
            for (size_t i = 0; i < nlen; i++)
                if (name[i] == '_')
                    name[i] = '-';
            if (cg__header(req, (cg_str_t){name, nlen}, val) < 0)
                return cg__bad(req, "too many headers");
        }
    }

    req->method = method;
    req->path = path;
    req->query = query;
    req->version_major = req->version_minor = 1; /* as HTTP/1.1 */
    if (query.len > 0) {
        /* the request line Gunicorn makes: PATH_INFO?QUERY_STRING */
        size_t ulen = path.len + 1 + query.len;
        if (scratch->cap < ulen) {
            char *grown = realloc(scratch->buf, ulen);
            if (grown == NULL)
                return cg__bad(req, "out of memory");
            scratch->buf = grown;
            scratch->cap = ulen;
        }
        memcpy(scratch->buf, path.ptr, path.len);
        scratch->buf[path.len] = '?';
        memcpy(scratch->buf + path.len + 1, query.ptr, query.len);
        req->uri = (cg_str_t){scratch->buf, ulen};
    } else {
        req->uri = path;
    }
    if (https.ptr != NULL &&
        (cg_str_caseeq(https, "on") || cg_str_caseeq(https, "1") || cg_str_caseeq(https, "true")))
        req->scheme_https = 1;
    else if (url_scheme.ptr != NULL)
        req->scheme_https = cg_str_eq(url_scheme, "https", 5);
    req->body_kind = content_length > 0 ? CG_HTTP_BODY_LENGTH : CG_HTTP_BODY_NONE;
    req->content_length = content_length;
    req->keep_alive = !cg_str_caseeq(connection, "close");
    req->head_len = end;
    return (ssize_t)end;
}
