/*
 * fuzz_ctl.c - libFuzzer target for the control socket's bytes: the framing
 * (cg_ctl_frame), the request decoding (cg_ctl_request_parse: JSON reader,
 * shlex split, args) and the answers built from what it returns. The input
 * is what a client sends on one connection: frames one after another.
 *
 * Checked besides memory safety:
 *   - a frame's payload lies within the input, and a refused length is
 *     larger than the limit;
 *   - a parsed request has at most CG_CTL_MAX_WORDS words, each within its
 *     store, and an id that is one JSON value;
 *   - every answer (ok around the echoed id, error with the message) is one
 *     JSON object whose frame length matches;
 *   - the whole input, when it parses as JSON, unescapes every string to at
 *     most its text's length; the writer turns any bytes into one valid
 *     JSON string.
 */
#include <stdint.h>
#include <stdio.h>

#include "guard.h"
#include "src/ctl/ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cg_json_tok_t toks[CG_CTL_MAX_TOKENS];

/* The framed answer a is one JSON object. */
static void check_answer(const char *a, size_t n)
{
    uint32_t announced;
    if (a == NULL)
        return; /* out of memory or over the answer limit */
    if (cg_ctl_frame(a, n, CG_CTL_MAX_ANSWER, &announced) != (ssize_t)n - 4)
        abort();
    int k = cg_json_parse(a + 4, n - 4, toks, CG_CTL_MAX_TOKENS);
    if (k < 0 || toks[0].type != CG_JSON_OBJECT)
        abort();
}

static void check_request(const char *p, size_t n)
{
    cg_ctl_request_t r;
    char err[512];
    size_t alen;
    int rc = cg_ctl_request_parse(&r, p, n, err, sizeof(err));
    if (rc == 0) {
        if (r.nwords == 0 || r.nwords > CG_CTL_MAX_WORDS)
            abort();
        for (size_t i = 0; i < r.nwords; i++)
            if (r.word[i] < r.store || r.word[i] + strlen(r.word[i]) >= r.store + 2 * n + 2)
                abort();
        if (cg_json_parse(r.id.ptr, r.id.len, toks, CG_CTL_MAX_TOKENS) < 1)
            abort();
        char *a = cg_ctl_answer_ok(r.id, "{}", 2, &alen);
        check_answer(a, alen);
        free(a);
    } else if (rc == CG_CTL_ANSWER_ERROR || rc == -EPROTO) {
        char *a = cg_ctl_answer_error(rc == -EPROTO ? (cg_str_t){NULL, 0} : r.id, err, &alen);
        check_answer(a, alen);
        free(a);
    } else if (rc != -ENOMEM) {
        abort();
    }
    cg_ctl_request_free(&r);
}

static void check_json(const char *s, size_t n)
{
    int k = cg_json_parse(s, n, toks, CG_CTL_MAX_TOKENS);
    for (int i = 0; i < k; i++) {
        if (toks[i].end > n || toks[i].start > toks[i].end || toks[i].next > (uint32_t)k)
            abort();
        if (toks[i].type != CG_JSON_STRING)
            continue;
        size_t len = toks[i].end - toks[i].start;
        char *out = malloc(len + 1);
        if (cg_json_unescape(s, &toks[i], out, len + 1) < 0)
            abort();
        free(out);
    }
    cg_json_out_t o;
    cg_json_out_init(&o, 0, 16 * n + 16);
    cg_json_strn(&o, s, n);
    if (o.failed || cg_json_parse(o.buf, o.len, toks, 1) != 1 || toks[0].type != CG_JSON_STRING)
        abort();
    cg_json_out_free(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    guarded_t g;
    char *buf = guard_copy(&g, data, size);
    check_json(buf, size);
    size_t off = 0;
    while (off < size) {
        uint32_t announced;
        ssize_t n = cg_ctl_frame(buf + off, size - off, CG_CTL_MAX_REQUEST, &announced);
        if (n == CG_EAGAIN)
            break;
        if (n < 0) {
            if (announced <= CG_CTL_MAX_REQUEST)
                abort();
            break;
        }
        if ((size_t)n > size - off - 4)
            abort();
        check_request(buf + off + 4, (size_t)n);
        off += 4 + (size_t)n;
    }
    guard_free(&g);
    return 0;
}
