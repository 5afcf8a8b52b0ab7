/*
 * fuzz_chunked.c - libFuzzer target for the in-place chunked decoder: the
 * input is decoded in pieces whose sizes come from the first byte, and the
 * result must equal decoding it in one go.
 */
#include <stdint.h>
#include <stdio.h>

#include "guard.h"
#include "src/http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decode feeding `step` new bytes at a time; returns rc, output in out. */
static int decode_all(const cg_http_settings_t *s, const char *in, size_t n, size_t step,
                      char *work, char *out, size_t *outlen, cg_http_error_t *err)
{
    cg_http_chunked_t d;
    cg_http_header_t trl[8];
    cg_http_chunked_init(&d);
    d.trailers = trl;
    d.trailers_cap = 8;
    size_t have = 0, fed = 0;
    *outlen = 0;
    for (;;) {
        size_t add = n - fed < step ? n - fed : step;
        memcpy(work + have, in + fed, add);
        have += add;
        fed += add;
        size_t len = have, o = 0;
        int rc = cg_http_chunked_decode(s, &d, work, &len, &o, err);
        if (o > len)
            abort();
        memcpy(out + *outlen, work, o);
        *outlen += o;
        memmove(work, work + len, have - len);
        have -= len;
        if (rc != 0)
            return rc;
        if (fed == n)
            return cg_http_chunked_eof(&d, work, have, err) < 0 ? -EPROTO : 2;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    guarded_t g;
    size_t n = size - 1;
    char *in = guard_copy(&g, data + 1, n);
    cg_http_settings_t s;
    cg_http_settings_init(&s, 4094, 4, 64);
    char *work = malloc(n + 1), *o1 = malloc(n + 1), *o2 = malloc(n + 1);
    size_t l1, l2;
    cg_http_error_t e1, e2;
    int r1 = decode_all(&s, in, n, n ? n : 1, work, o1, &l1, &e1);
    int r2 = decode_all(&s, in, n, step, work, o2, &l2, &e2);
    /* same verdict whatever the split; same bytes when both succeed */
    if (r1 != r2 || (r1 < 0 && e1.code != e2.code))
        abort();
    if (r1 >= 0 && (l1 != l2 || memcmp(o1, o2, l1)))
        abort();
    if (r1 < 0) {
        char t[256];
        cg_http_error_text(&e1, t, sizeof(t));
    }
    free(work);
    free(o1);
    free(o2);
    guard_free(&g);
    return 0;
}
