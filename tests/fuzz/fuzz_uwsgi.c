/*
 * fuzz_uwsgi.c - libFuzzer target for the uwsgi packet parser
 * (cg_uwsgi_parse). The first input byte gives how many bytes arrive per
 * read (1..256) and the header table's size (bits: 1..8 entries beyond a
 * small base); the rest is what the connection receives.
 *
 * Each prefix is copied to end right before a guard page, as a worker's
 * buffer grows read by read. Checked besides memory safety:
 *   - the verdict does not depend on the split: the first call that is not
 *     CG_EAGAIN gives the same length and error as the whole input;
 *   - a complete packet's length is 4 + its datasize field, within the input;
 *   - every view (method, path, query, uri, header names and values) lies in
 *     the input or the scratch buffer, header names hold no '_' when they
 *     came from HTTP_ vars, and the request line is PATH?QUERY or PATH;
 *   - an error is one of the two uwsgi parse errors and renders within
 *     bounds.
 */
#include <stdint.h>
#include <stdio.h>

#include "guard.h"
#include "src/http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool within(cg_str_t v, const char *lo, size_t len)
{
    return v.len == 0 || (v.ptr >= lo && v.ptr + v.len <= lo + len);
}

static void check_views(const cg_http_request_t *r, const char *buf, size_t len,
                        const cg_uwsgi_scratch_t *sc)
{
    if (!within(r->method, buf, len) && r->method.ptr != NULL && strcmp(r->method.ptr, "GET"))
        abort();
    if (r->uri.ptr != r->path.ptr && !within(r->uri, sc->buf, sc->cap))
        abort();
    for (size_t i = 0; i < r->nheaders; i++)
        if (!within(r->headers[i].name, buf, len) || !within(r->headers[i].value, buf, len))
            abort();
    size_t want = r->path.len + (r->query.len ? 1 + r->query.len : 0);
    if (r->uri.len != want || memcmp(r->uri.ptr, r->path.ptr, r->path.len) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] + 1, cap = 2 + (data[0] & 7);
    data++;
    size--;
    cg_http_header_t *headers = calloc(cap, sizeof(*headers));
    cg_uwsgi_scratch_t sc = {NULL, 0};
    cg_http_request_t whole = {.headers = headers, .headers_cap = cap};
    guarded_t g;
    char *buf = guard_copy(&g, data, size);
    ssize_t rc_whole = cg_uwsgi_parse(buf, size, &sc, &whole);
    cg_http_errcode_t code_whole = whole.error.code;
    if (rc_whole > 0) {
        size_t datasize = (size_t)data[1] | (size_t)data[2] << 8;
        if ((size_t)rc_whole != 4 + datasize || (size_t)rc_whole > size || data[0] != 0)
            abort();
        check_views(&whole, buf, size, &sc);
    } else if (rc_whole == -EPROTO) {
        if (code_whole != CG_HTTP_E_INVALID_UWSGI_HEADER &&
            code_whole != CG_HTTP_E_UNSUPPORTED_UWSGI_MODIFIER)
            abort();
        char text[512], page[2048];
        cg_http_error_text(&whole.error, text, sizeof(text));
        cg_http_error_response(&whole.error, page, sizeof(page));
    } else if (rc_whole != CG_EAGAIN) {
        abort();
    }
    guard_free(&g);

    /* the same bytes as reads of `step`: the first verdict matches */
    for (size_t n = step;; n += step) {
        if (n > size)
            n = size;
        guarded_t gp;
        char *p = guard_copy(&gp, data, n);
        cg_http_request_t r = {.headers = headers, .headers_cap = cap};
        ssize_t rc = cg_uwsgi_parse(p, n, &sc, &r);
        bool decided = rc != CG_EAGAIN;
        if (decided && (rc != rc_whole || r.error.code != code_whole))
            abort();
        if (rc > 0)
            check_views(&r, p, n, &sc);
        guard_free(&gp);
        if (!decided && n == size && rc_whole != CG_EAGAIN)
            abort();
        if (decided || n == size)
            break;
    }
    free(sc.buf);
    free(headers);
    return 0;
}
