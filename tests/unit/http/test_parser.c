/*
 * test_parser.c - the request parser, body reader and PROXY parser against
 * Gunicorn's own request corpus (shared/conformance/gunicorn-requests.json),
 * fed whole, byte by byte, split at every position and in random pieces:
 * every way of cutting the bytes must give the same transcript.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_mini.h"
#include "src/http/http.h"

#define CORPUS CG_SOURCE_ROOT "/../shared/conformance/gunicorn-requests.json"

/* ------------------------------------------------------------ byte strings */

typedef struct bytes {
    char *p;
    size_t n, cap;
} bytes_t;

static void b_add(bytes_t *b, const void *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void b_str(bytes_t *b, const char *s)
{
    b_add(b, s, strlen(s));
}

/* a length-prefixed field, so any byte may appear inside */
static void b_field(bytes_t *b, const char *tag, const char *p, size_t n)
{
    char hdr[64];
    snprintf(hdr, sizeof(hdr), "%s[%zu]=", tag, n);
    b_str(b, hdr);
    if (n)
        b_add(b, p, n);
    b_str(b, "\n");
}

static size_t b64dec(const char *in, size_t n, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char *q = in[i] ? strchr(tbl, in[i]) : NULL;
        if (!q)
            continue;
        acc = acc << 6 | (unsigned)(q - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    return o;
}

/* ------------------------------------------------------------ case settings */

typedef struct tcase {
    const char *name;
    bool valid;
    char *raw;
    size_t rawlen;
    cg_http_settings_t s;
    cg_http_proxy_mode_t proxy;
    bool trusted;
    const char *error;
    bytes_t expect;
} tcase_t;

static long num_or(const jn_t *set, const char *k, long dflt)
{
    const jn_t *v = jn_get(set, k);
    return v ? (long)v->num : dflt;
}

static bool bool_of(const jn_t *set, const char *k)
{
    const jn_t *v = jn_get(set, k);
    return v && v->num != 0;
}

static void apply_settings(tcase_t *c, const jn_t *set)
{
    cg_http_settings_init(&c->s, num_or(set, "limit_request_line", 4094),
                          num_or(set, "limit_request_fields", 100),
                          num_or(set, "limit_request_field_size", 8190));
    c->s.permit_obsolete_folding = bool_of(set, "permit_obsolete_folding");
    c->s.strip_header_spaces = bool_of(set, "strip_header_spaces");
    c->s.permit_unconventional_http_method = bool_of(set, "permit_unconventional_http_method");
    c->s.permit_unconventional_http_version = bool_of(set, "permit_unconventional_http_version");
    c->s.casefold_http_method = bool_of(set, "casefold_http_method");
    const jn_t *hm = jn_get(set, "header_map");
    if (hm && !strcmp(hm->str, "refuse"))
        c->s.header_map = CG_HTTP_HEADER_MAP_REFUSE;
    else if (hm && !strcmp(hm->str, "dangerous"))
        c->s.header_map = CG_HTTP_HEADER_MAP_DANGEROUS;
    const jn_t *pp = jn_get(set, "proxy_protocol");
    c->proxy = pp && pp->type == JN_BOOL && pp->num ? CG_HTTP_PROXY_AUTO : CG_HTTP_PROXY_OFF;
    if (pp && pp->type == JN_STR)
        c->proxy = !strcmp(pp->str, "v1")   ? CG_HTTP_PROXY_V1
                   : !strcmp(pp->str, "v2") ? CG_HTTP_PROXY_V2
                                            : CG_HTTP_PROXY_AUTO;
    /* Gunicorn's tests parse with peer_addr None: not an IP peer, so trusted */
    c->trusted = true;
}

/*
 * Corpus errata. Case 100 expects path "/keeping_slashes" for the target
 * "///keeping_slashes", but Gunicorn's split_request_uri() (util.py, same
 * commit) keeps a leading "//" as part of the path: urlsplit(".///x") then
 * drops the dot, giving "///keeping_slashes" - checked with Debian's
 * gunicorn and python3. We assert Gunicorn's real behaviour.
 */
static const char *erratum_path(const char *name, const char *path)
{
    if (!strcmp(name, "100") && !strcmp(path, "/keeping_slashes"))
        return "///keeping_slashes";
    return path;
}

/*
 * RFC 9112 exceptions: corpus cases whose expectation is Gunicorn's non-RFC
 * behaviour. cgunicorn follows the RFC there (docs/compatibility.md, section
 * "HTTP/1.1 request parsing"); such a case is checked as an invalid one with
 * the error named here. Every entry must match a corpus case, so the list
 * cannot go stale unnoticed. tests/integration/test_conformance.py keeps the
 * same list.
 */
static const struct rfc_exception {
    const char *group, *name, *error, *why;
} rfc_exceptions[] = {
    {"valid", "009", "InvalidHeader",
     "RFC 9112 6.3 item 4: Transfer-Encoding: identity does not end in chunked"},
    {"valid", "027", "InvalidRequestLine",
     "RFC 9112 3.2: raw non-ASCII bytes in the request-target (Gunicorn 27 refuses them too)"},
};

static const struct rfc_exception *rfc_exception(const char *group, const char *name)
{
    for (size_t i = 0; i < CG_ARRAY_SIZE(rfc_exceptions); i++)
        if (!strcmp(rfc_exceptions[i].group, group) && !strcmp(rfc_exceptions[i].name, name))
            return &rfc_exceptions[i];
    return NULL;
}

static void expect_transcript(tcase_t *c, const jn_t *exp)
{
    for (size_t i = 0; i < exp->n; i++) {
        const jn_t *r = exp->items[i], *u = jn_get(r, "uri"), *v = jn_get(r, "version");
        bytes_t *t = &c->expect;
        b_field(t, "method", jn_get(r, "method")->str, jn_get(r, "method")->len);
        b_field(t, "uri", jn_get(u, "raw")->str, jn_get(u, "raw")->len);
        const char *path = erratum_path(c->name, jn_get(u, "path")->str);
        b_field(t, "path", path, strlen(path));
        b_field(t, "query", jn_get(u, "query")->str, jn_get(u, "query")->len);
        b_field(t, "fragment", jn_get(u, "fragment")->str, jn_get(u, "fragment")->len);
        char ver[16];
        snprintf(ver, sizeof(ver), "%d.%d", (int)v->items[0]->num, (int)v->items[1]->num);
        b_field(t, "version", ver, strlen(ver));
        const jn_t *hs = jn_get(r, "headers");
        for (size_t k = 0; k < hs->n; k++) {
            b_field(t, "h", hs->items[k]->items[0]->str, hs->items[k]->items[0]->len);
            b_field(t, "v", hs->items[k]->items[1]->str, hs->items[k]->items[1]->len);
        }
        const jn_t *b64 = jn_get(r, "body_b64");
        char *body = malloc(b64->len + 1);
        size_t bl = b64dec(b64->str, b64->len, body);
        b_field(t, "body", body, bl);
        free(body);
        const jn_t *tr = jn_get(r, "trailers");
        for (size_t k = 0; tr && k < tr->n; k++) {
            b_field(t, "th", tr->items[k]->items[0]->str, tr->items[k]->items[0]->len);
            b_field(t, "tv", tr->items[k]->items[1]->str, tr->items[k]->items[1]->len);
        }
    }
}

/* ------------------------------------------------------------ simulated peer */

typedef struct feed {
    const char *data;
    size_t len, pos;
    const size_t *cuts; /* transport delivers at most up to the next cut */
    size_t ncuts, ci;
} feed_t;

static ssize_t feed_recv(void *ctx, char *dst, size_t cap)
{
    feed_t *f = ctx;
    if (f->pos >= f->len)
        return 0;
    while (f->ci < f->ncuts && f->cuts[f->ci] <= f->pos)
        f->ci++;
    size_t lim = f->ci < f->ncuts ? f->cuts[f->ci] : f->len;
    size_t n = lim - f->pos;
    if (n > cap)
        n = cap;
    memcpy(dst, f->data + f->pos, n);
    f->pos += n;
    return (ssize_t)n;
}

/* receive more into the connection buffer; 0 at EOF */
static ssize_t buf_fill(cg_http_buf_t *b, feed_t *f)
{
    if (b->off > 0) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    ssize_t r = feed_recv(f, b->data + b->len, b->cap - b->len);
    if (r > 0)
        b->len += (size_t)r;
    return r;
}

#define HDRS 200

/* Run the whole connection; the transcript holds every request and the error. */
static void run(const tcase_t *c, const size_t *cuts, size_t ncuts, size_t readsz, bytes_t *t)
{
    static char storage[1 << 17];
    cg_http_buf_t buf = {storage, 0, 0, sizeof(storage), 0};
    feed_t f = {c->raw, c->rawlen, 0, cuts, ncuts, 0};
    cg_http_header_t hdrs[HDRS], trl[HDRS];
    cg_http_request_t req = {.headers = hdrs, .headers_cap = HDRS};
    cg_http_error_t err;
    const char *ename = NULL;

    for (int nreq = 0;; nreq++) {
        if (nreq == 0 && c->proxy != CG_HTTP_PROXY_OFF) {
            for (;;) {
                cg_http_proxy_t px;
                ssize_t r = cg_http_parse_proxy(c->proxy, buf.data + buf.off, buf.len - buf.off,
                                                true, &px, &err);
                if (r == CG_EAGAIN) {
                    if (buf_fill(&buf, &f) == 0) {
                        ename = buf.len ? "NoMoreData" : NULL;
                        goto out;
                    }
                    continue;
                }
                if (r < 0) {
                    ename = cg_http_error_name(err.code);
                    goto out;
                }
                buf.off += (size_t)r;
                break;
            }
        }
        cg_http_parser_t p = {0};
        ssize_t rc;
        for (;;) {
            rc = cg_http_parse_request(&c->s, &p, buf.data + buf.off, buf.len - buf.off,
                                       c->trusted, &req);
            if (rc != CG_EAGAIN)
                break;
            if (buf_fill(&buf, &f) == 0) {
                ename = buf.len - buf.off ? "NoMoreData" : NULL;
                goto out;
            }
        }
        if (rc < 0) {
            assert_int_equal(rc, -EPROTO);
            ename = cg_http_error_name(req.error.code);
            /* every error renders as text; those with a status as a page */
            char text[512], page[4096];
            assert_true(cg_http_error_text(&req.error, text, sizeof(text)) > 0);
            if (cg_http_error_status(req.error.code))
                assert_true(cg_http_error_response(&req.error, page, sizeof(page)) > 0);
            goto out;
        }
        assert_int_equal((size_t)rc, req.head_len);
        b_field(t, "method", req.method.ptr, req.method.len);
        b_field(t, "uri", req.uri.ptr, req.uri.len);
        b_field(t, "path", req.path.ptr, req.path.len);
        b_field(t, "query", req.query.ptr, req.query.len);
        b_field(t, "fragment", req.fragment.ptr, req.fragment.len);
        char ver[16];
        snprintf(ver, sizeof(ver), "%d.%d", req.version_major, req.version_minor);
        b_field(t, "version", ver, strlen(ver));
        for (size_t i = 0; i < req.nheaders; i++) {
            if (req.headers[i].flags & CG_HTTP_HF_DROPPED)
                continue;
            b_field(t, "h", req.headers[i].name.ptr, req.headers[i].name.len);
            b_field(t, "v", req.headers[i].value.ptr, req.headers[i].value.len);
        }
        buf.off += (size_t)rc;

        cg_http_body_t body;
        cg_http_body_init(&body, &req, &c->s, &buf, feed_recv, &f);
        body.chunked.trailers = trl;
        body.chunked.trailers_cap = HDRS;
        bytes_t got = {0};
        char chunk[64];
        ssize_t n;
        while ((n = cg_http_body_read(&body, chunk, readsz)) > 0)
            b_add(&got, chunk, (size_t)n);
        if (n < 0) {
            assert_int_equal(n, -EPROTO);
            ename = cg_http_error_name(body.error.code);
            free(got.p);
            goto out;
        }
        b_field(t, "body", got.p, got.n);
        free(got.p);
        for (size_t i = 0; i < body.chunked.ntrailers; i++) {
            if (trl[i].flags & CG_HTTP_HF_DROPPED)
                continue;
            b_field(t, "th", trl[i].name.ptr, trl[i].name.len);
            b_field(t, "tv", trl[i].value.ptr, trl[i].value.len);
        }
        if (!req.keep_alive)
            break;
    }
out:
    if (ename)
        b_field(t, "error", ename, strlen(ename));
}

/* ------------------------------------------------------------ the corpus test */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static bool check_case(tcase_t *c)
{
    bytes_t ref = {0};
    if (c->valid) {
        b_add(&ref, c->expect.p ? c->expect.p : "", c->expect.n);
    } else {
        b_field(&ref, "error", c->error, strlen(c->error));
    }
    bool ok = true;
    size_t ncuts_max = c->rawlen + 1;
    size_t *cuts = calloc(ncuts_max, sizeof(*cuts));

    /* mode 0 whole, 1 byte by byte, 2 every split, 3 random */
    for (int mode = 0; mode < 4 && ok; mode++) {
        size_t iters = mode == 2 ? c->rawlen : mode == 3 ? 40 : 1;
        for (size_t it = 0; it < iters && ok; it++) {
            size_t nc = 0;
            size_t readsz = mode == 1 ? 1 : (size_t)(1 + rng() % 64);
            if (mode == 1)
                for (size_t k = 1; k < c->rawlen; k++)
                    cuts[nc++] = k;
            else if (mode == 2)
                cuts[nc++] = it + 1;
            else if (mode == 3)
                for (size_t k = 1; k < c->rawlen; k++)
                    if (rng() % 7 == 0)
                        cuts[nc++] = k;
            bytes_t t = {0};
            /* a transcript of a valid case ends with no error; an invalid one
             * ends with it, after any requests that were fine */
            run(c, cuts, nc, readsz, &t);
            bool match;
            if (c->valid) {
                match = t.n == ref.n && (t.n == 0 || !memcmp(t.p, ref.p, t.n));
            } else {
                match = t.n >= ref.n && !memcmp(t.p + t.n - ref.n, ref.p, ref.n);
            }
            if (!match) {
                ok = false;
                size_t d = 0, tn = c->valid ? t.n : (t.n > 300 ? 300 : t.n);
                const char *tp = c->valid ? t.p : (t.p ? t.p + t.n - tn : NULL);
                if (c->valid)
                    while (d < t.n && d < ref.n && t.p[d] == ref.p[d])
                        d++;
                size_t from = d > 80 ? d - 80 : 0;
                fprintf(stderr, "FAIL %s %s (mode %d iter %zu) at %zu\n--- expected\n%.*s\n--- got\n%.*s\n",
                        c->valid ? "valid" : "invalid", c->name, mode, it, d,
                        (int)(ref.n > from ? (ref.n - from > 300 ? 300 : ref.n - from) : 0),
                        ref.p ? ref.p + from : "",
                        (int)(tn > from ? (tn - from > 300 ? 300 : tn - from) : 0),
                        tp ? tp + (c->valid ? from : 0) : "");
            }
            free(t.p);
        }
    }
    free(cuts);
    free(ref.p);
    return ok;
}

static void test_corpus(void **state)
{
    (void)state;
    FILE *fp = fopen(CORPUS, "rb");
    if (!fp) /* a missing corpus must not pass as a skipped test */
        fail_msg("corpus %s not found: the parser is untested", CORPUS);
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    rewind(fp);
    char *text = malloc((size_t)sz + 1);
    assert_int_equal(fread(text, 1, (size_t)sz, fp), (size_t)sz);
    text[sz] = '\0';
    fclose(fp);

    jn_t *root = jn_parse(text), *cases = jn_get(root, "cases");
    assert_non_null(cases);
    size_t pass = 0, nexc = 0;
    for (size_t i = 0; i < cases->n; i++) {
        const jn_t *j = cases->items[i];
        tcase_t c = {0};
        c.name = jn_get(j, "name")->str;
        c.valid = !strcmp(jn_get(j, "group")->str, "valid");
        const jn_t *b64 = jn_get(j, "raw_b64");
        c.raw = malloc(b64->len + 1);
        c.rawlen = b64dec(b64->str, b64->len, c.raw);
        apply_settings(&c, jn_get(j, "settings"));
        const struct rfc_exception *x = rfc_exception(jn_get(j, "group")->str, c.name);
        if (x) {
            nexc++;
            c.valid = false;
            c.error = x->error;
        } else if (c.valid) {
            expect_transcript(&c, jn_get(j, "expect"));
        } else {
            c.error = jn_get(j, "error")->str;
        }
        if (check_case(&c))
            pass++;
        free(c.raw);
        free(c.expect.p);
    }
    fprintf(stderr, "gunicorn corpus: %zu of %zu cases pass (%zu as RFC 9112 exceptions)\n",
            pass, cases->n, nexc);
    assert_int_equal(pass, cases->n);
    assert_int_equal(nexc, CG_ARRAY_SIZE(rfc_exceptions));
    jn_free(root);
    free(text);
}

/* ------------------------------------------------------------ RFC 9112 rules */

/*
 * Cases where cgunicorn follows RFC 9112 and Gunicorn does not (see
 * docs/compatibility.md). Each goes through check_case(): whole, byte by
 * byte, split at every position and in random pieces.
 */

static tcase_t rfc_case(const char *raw, size_t n, long limit_request_line)
{
    tcase_t c = {0};
    c.name = "rfc";
    c.raw = malloc(n + 1);
    memcpy(c.raw, raw, n);
    c.rawlen = n;
    cg_http_settings_init(&c.s, limit_request_line, 100, 8190);
    c.trusted = true;
    return c;
}

static void check_invalid_n(const char *raw, size_t n, long limit_line, const char *error)
{
    tcase_t c = rfc_case(raw, n, limit_line);
    c.error = error;
    bool ok = check_case(&c);
    free(c.raw);
    if (!ok)
        fail_msg("expected %s for %.*s", error, (int)(n > 200 ? 200 : n), raw);
}

static void check_invalid(const char *raw, const char *error)
{
    check_invalid_n(raw, strlen(raw), 4094, error);
}

/* One request: method, target, path, query, version, header pairs, body. */
static void exp_req(bytes_t *t, const char *method, const char *uri, const char *path,
                    const char *query, const char *ver, const char *const *hv, size_t nhv,
                    const char *body)
{
    b_field(t, "method", method, strlen(method));
    b_field(t, "uri", uri, strlen(uri));
    b_field(t, "path", path, strlen(path));
    b_field(t, "query", query ? query : "", query ? strlen(query) : 0);
    b_field(t, "fragment", "", 0);
    b_field(t, "version", ver, strlen(ver));
    for (size_t i = 0; i + 1 < nhv; i += 2) {
        b_field(t, "h", hv[i], strlen(hv[i]));
        b_field(t, "v", hv[i + 1], strlen(hv[i + 1]));
    }
    b_field(t, "body", body, strlen(body));
}

/* n == 0: strlen(raw) */
static void check_valid_n(const char *raw, size_t n, long limit_line, const bytes_t *expect)
{
    if (n == 0)
        n = strlen(raw);
    tcase_t c = rfc_case(raw, n, limit_line);
    c.valid = true;
    c.expect = *expect;
    bool ok = check_case(&c);
    free(c.raw);
    if (!ok)
        fail_msg("unexpected transcript for %.*s", (int)(n > 200 ? 200 : n), raw);
}

/* Parse one complete head whole; returns the parser's result. */
static ssize_t parse_once(const char *raw, cg_http_request_t *req, long limit_line)
{
    static char storage[1 << 16];
    static cg_http_header_t hdrs[HDRS];
    cg_http_settings_t s;
    cg_http_settings_init(&s, limit_line, 100, 8190);
    size_t n = strlen(raw);
    assert_true(n < sizeof(storage));
    memcpy(storage, raw, n);
    *req = (cg_http_request_t){.headers = hdrs, .headers_cap = HDRS};
    cg_http_parser_t p = {0};
    return cg_http_parse_request(&s, &p, storage, n, true, req);
}

/* RFC 9112 3.2: no control character in any form of request-target. */
static void test_target_ctl(void **state)
{
    (void)state;
    for (int ch = 0; ch < 0x80; ch++) {
        if (ch >= 0x20 && ch != 0x7f)
            continue;
        char raw[64];
        int n = snprintf(raw, sizeof(raw), "GET /a%cb?q HTTP/1.1\r\nHost: h\r\n\r\n", 'X');
        raw[6] = (char)ch; /* "GET /a" is 6 bytes */
        check_invalid_n(raw, (size_t)n, 4094, "InvalidRequestLine");
        /* leading and trailing, absolute-form too */
        n = snprintf(raw, sizeof(raw), "GET XhttP://h/ HTTP/1.1\r\n\r\n");
        raw[4] = (char)ch;
        check_invalid_n(raw, (size_t)n, 4094, "InvalidRequestLine");
        n = snprintf(raw, sizeof(raw), "OPTIONS /X HTTP/1.1\r\n\r\n");
        raw[9] = (char)ch;
        check_invalid_n(raw, (size_t)n, 4094, "InvalidRequestLine");
    }
    /* the log line gets the whole request line, repr()'d */
    cg_http_request_t req;
    assert_int_equal(parse_once("GET /x\x1b[2J\r1.2.3.4 - - HTTP/1.1\r\n\r\n", &req, 4094),
                     -EPROTO);
    assert_int_equal(req.error.code, CG_HTTP_E_INVALID_REQUEST_LINE);
    char text[256];
    cg_http_error_text(&req.error, text, sizeof(text));
    assert_string_equal(text, "Invalid HTTP request line: 'GET /x\\x1b[2J\\r1.2.3.4 - - HTTP/1.1'");
    /* an LF ends the line too early: Gunicorn 27 names the bare LF instead */
    assert_int_equal(parse_once("GET /x\n1.2.3.4 - - HTTP/1.1\r\n\r\n", &req, 4094), -EPROTO);
    cg_http_error_text(&req.error, text, sizeof(text));
    assert_string_equal(text, "Invalid HTTP request line: 'bare LF as line terminator'");
    /* raw bytes 0x80-0xFF are refused too (Gunicorn 27, RFC 3986 2.1) */
    for (int ch = 0x80; ch < 0x100; ch++) {
        char raw[64];
        int n = snprintf(raw, sizeof(raw), "GET /aXb HTTP/1.1\r\nHost: h\r\n\r\n");
        raw[6] = (char)ch;
        check_invalid_n(raw, (size_t)n, 4094, "InvalidRequestLine");
    }
    /* percent-encoded, controls and non-ASCII stay the application's business */
    bytes_t t = {0};
    exp_req(&t, "GET", "/a%00%7f%c3%a0", "/a%00%7f%c3%a0", NULL, "1.1", NULL, 0, "");
    check_valid_n("GET /a%00%7f%c3%a0 HTTP/1.1\r\n\r\n", 0, 4094, &t);
    free(t.p);
}

/* RFC 9112 6.3 item 4: a Transfer-Encoding not ending in chunked is a 400. */
static void test_te_final_not_chunked(void **state)
{
    (void)state;
    static const char *const codings[] = {
        "identity", "gzip", "deflate", "compress", "gzip, identity", "identity,gzip", "GZIP",
    };
    for (size_t i = 0; i < CG_ARRAY_SIZE(codings); i++) {
        char raw[256];
        snprintf(raw, sizeof(raw),
                 "POST / HTTP/1.1\r\nTransfer-Encoding: %s\r\nContent-Length: 5\r\n\r\nhello",
                 codings[i]);
        check_invalid(raw, "InvalidHeader");
        snprintf(raw, sizeof(raw), "POST / HTTP/1.0\r\nTransfer-Encoding: %s\r\n\r\n", codings[i]);
        check_invalid(raw, "InvalidHeader");
        cg_http_request_t req;
        assert_int_equal(parse_once(raw, &req, 4094), -EPROTO);
        assert_string_equal(req.error.lit, "TRANSFER-ENCODING");
    }
    /* split over two fields: the last field's last coding counts */
    check_invalid("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nX: y\r\n"
                  "Transfer-Encoding: identity\r\n\r\n",
                  "InvalidHeader");
    /* an unknown coding stays Gunicorn's 501 */
    check_invalid("POST / HTTP/1.1\r\nTransfer-Encoding: br\r\n\r\n", "UnsupportedTransferCoding");
    /* chunked last is fine, after any known coding */
    bytes_t t = {0};
    const char *hv[] = {"TRANSFER-ENCODING", "gzip, identity, chunked"};
    exp_req(&t, "POST", "/", "/", NULL, "1.1", hv, 2, "abc");
    check_valid_n("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, identity, chunked\r\n\r\n"
                  "3\r\nabc\r\n0\r\n\r\n",
                  0, 4094, &t);
    free(t.p);
}

/* RFC 9110 5.6.1: list elements are separated by OWS (SP / HTAB) only. */
static void test_te_cl_ows_only(void **state)
{
    (void)state;
    /* Python's str.strip() would make these "chunked" */
    check_invalid("POST / HTTP/1.1\r\nTransfer-Encoding: \xa0" "chunked\xa0\r\n\r\n"
                  "3\r\nabc\r\n0\r\n\r\n",
                  "UnsupportedTransferCoding");
    check_invalid("POST / HTTP/1.1\r\nTransfer-Encoding: gzip,\x85" "chunked\r\n\r\n0\r\n\r\n",
                  "UnsupportedTransferCoding");
    check_invalid("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\xa0\r\n\r\n0\r\n\r\n",
                  "UnsupportedTransferCoding");
    check_invalid("POST / HTTP/1.1\r\nContent-Length: \xa0" "5\r\n\r\nhello", "InvalidHeader");
    check_invalid("POST / HTTP/1.1\r\nContent-Length: 5\xa0\r\n\r\nhello", "InvalidHeader");
    check_invalid("POST / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\nhello", "InvalidHeader");
    /* SP and HTAB around a coding are OWS */
    bytes_t t = {0};
    const char *hv[] = {"TRANSFER-ENCODING", "gzip \t,\t chunked"};
    exp_req(&t, "POST", "/", "/", NULL, "1.1", hv, 2, "abc");
    check_valid_n("POST / HTTP/1.1\r\nTransfer-Encoding: \tgzip \t,\t chunked \r\n\r\n"
                  "3\r\nabc\r\n0\r\n\r\n",
                  0, 4094, &t);
    free(t.p);
}

/* RFC 9112 6.3 item 5: a Content-Length we cannot represent is invalid. */
static void test_cl_range(void **state)
{
    (void)state;
    cg_http_request_t req;
    assert_true(parse_once("POST / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n",
                           &req, 4094) > 0);
    assert_int_equal(req.body_kind, CG_HTTP_BODY_LENGTH);
    assert_true(req.content_length == (uint64_t)INT64_MAX);
    assert_true(parse_once("POST / HTTP/1.1\r\nContent-Length: 0000000000000000000000007\r\n\r\n",
                           &req, 4094) > 0);
    assert_true(req.content_length == 7);
    static const char *const bad[] = {
        "9223372036854775808", "9223372036854775810", "18446744073709551615",
        "18446744073709551616", "99999999999999999999999",
    };
    for (size_t i = 0; i < CG_ARRAY_SIZE(bad); i++) {
        char raw[128];
        snprintf(raw, sizeof(raw), "POST / HTTP/1.1\r\nContent-Length: %s\r\n\r\nbody", bad[i]);
        /* refused with the head: no body byte is read */
        check_invalid(raw, "InvalidHeader");
        assert_int_equal(parse_once(raw, &req, 4094), -EPROTO);
        assert_string_equal(req.error.lit, "CONTENT-LENGTH");
    }
}

/* RFC 9112 2.2: empty lines before a request line are ignored, up to a bound. */
static void test_empty_lines(void **state)
{
    (void)state;
    bytes_t t = {0};
    /* RFC 9112 2.2 as Gunicorn 27 reads it: one empty line is ignored... */
    exp_req(&t, "GET", "/", "/", NULL, "1.1", NULL, 0, "");
    check_valid_n("\r\nGET / HTTP/1.1\r\n\r\n", 0, 4094, &t);
    free(t.p);
    /* ...a second one is an empty request line */
    check_invalid("\r\n\r\nGET / HTTP/1.1\r\n\r\n", "InvalidRequestLine");
    cg_http_request_t req;
    assert_int_equal(parse_once("\r\n\r\nGET / HTTP/1.1\r\n\r\n", &req, 4094), -EPROTO);
    char text[256];
    cg_http_error_text(&req.error, text, sizeof(text));
    assert_string_equal(text, "Invalid HTTP request line: ''");

    /* between pipelined requests: one after a length and after a chunked body */
    t = (bytes_t){0};
    const char *h1[] = {"CONTENT-LENGTH", "1"}, *h2[] = {"TRANSFER-ENCODING", "chunked"};
    const char *h3[] = {"CONNECTION", "close"};
    exp_req(&t, "POST", "/a", "/a", NULL, "1.1", h1, 2, "x");
    exp_req(&t, "POST", "/b", "/b", NULL, "1.1", h2, 2, "yz");
    exp_req(&t, "GET", "/c", "/c", NULL, "1.1", h3, 2, "");
    const char *pipe = "POST /a HTTP/1.1\r\nContent-Length: 1\r\n\r\nx\r\n"
                       "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nyz\r\n0\r\n\r\n"
                       "\r\nGET /c HTTP/1.1\r\nConnection: close\r\n\r\n";
    check_valid_n(pipe, strlen(pipe), 4094, &t);
    free(t.p);

    /* head_len counts the empty line, the views skip it */
    assert_int_equal(parse_once("\r\nGET /x HTTP/1.1\r\n\r\n", &req, 4094), 21);
    assert_int_equal(req.head_len, 21);
    assert_int_equal(req.method.len, 3);
    assert_memory_equal(req.method.ptr, "GET", 3);

    /* a bare CR, a bare LF or SP is no empty line */
    check_invalid("\r\r\nGET / HTTP/1.1\r\n\r\n", "InvalidRequestLine");
    check_invalid("\nGET / HTTP/1.1\r\n\r\n", "InvalidRequestLine"); /* a bare LF */
    check_invalid(" \r\nGET / HTTP/1.1\r\n\r\n", "InvalidRequestLine");

    /* the request line after the empty line has the whole limit */
    static char line[5000];
    memcpy(line, "\r\nGET /", 7);
    memset(line + 7, 'a', 4094 - 14);
    strcpy(line + 7 + 4094 - 14, " HTTP/1.1\r\n\r\n");
    assert_true(parse_once(line, &req, 4094) > 0);
    memcpy(line, "\r\nGET /", 7);
    memset(line + 7, 'a', 4094 - 14 + 1);
    strcpy(line + 7 + 4094 - 14 + 1, " HTTP/1.1\r\n\r\n");
    check_invalid(line, "LimitRequestLine");

    /* one empty line, then EOF: no request, nothing to answer */
    check_invalid("\r\n", "NoMoreData");
}

/* RFC 9112 2.2: a bare LF is refused as soon as it arrives, not waited on. */
static void test_bare_lf(void **state)
{
    (void)state;
    cg_http_request_t req;
    char text[256];
    /* request line without its CRLF yet */
    assert_int_equal(parse_once("GET / HTTP/1.1\nHost: a\n", &req, 4094), -EPROTO);
    cg_http_error_text(&req.error, text, sizeof(text));
    assert_string_equal(text, "Invalid HTTP request line: 'bare LF as line terminator'");
    /* a header line ended by LF, the head not ended yet or ended */
    assert_int_equal(parse_once("GET / HTTP/1.1\r\nHost: a\nX: 1\r\n", &req, 4094), -EPROTO);
    cg_http_error_text(&req.error, text, sizeof(text));
    assert_string_equal(text, "Invalid HTTP Header: 'bare LF as line terminator'");
    check_invalid("GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n", "InvalidHeader");
    check_invalid("GET / HTTP/1.1\r\nHost: a\n\n", "InvalidHeader");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_target_ctl),
        cmocka_unit_test(test_te_final_not_chunked),
        cmocka_unit_test(test_te_cl_ows_only),
        cmocka_unit_test(test_cl_range),
        cmocka_unit_test(test_empty_lines),
        cmocka_unit_test(test_bare_lf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
