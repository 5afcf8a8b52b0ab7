/*
 * fuzz_websocket.c - libFuzzer target for the WebSocket layer
 * (src/http/websocket.c, wsdeflate.c, utf8.c).
 *
 * First byte: bits 0-1 the mode (0 frames, 1 frames with permessage-deflate
 * negotiated, 2 the same with client_no_context_takeover, 3 a
 * Sec-WebSocket-Extensions value to negotiate), bits 2-5 the read size - 1
 * for the second pass. Second byte: the message limit / 64 (small, so the
 * 1009 paths and the inflate bound are reached). The rest: a client's bytes.
 *
 * Frames are parsed and assembled twice, whole and in small reads; both
 * passes must reach the same messages and the same verdict. Each complete
 * message is compressed and decompressed again and must come back intact.
 */
#include <stdint.h>
#include <stdio.h>

#include "guard.h"
#include "src/http/websocket.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct verdict {
    int rc;
    uint16_t code;
    uint64_t hash; /* FNV-1a over the messages and control frames seen */
    size_t nmsg;
} verdict_t;

static void mix(uint64_t *h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 0x100000001b3ull;
}

/* The message must survive our own compressor and decompressor. */
static void round_trip(const char *msg, size_t n, size_t max)
{
    cg_ws_pmd_params_t tx_p = {.server_max_window_bits = 9};
    cg_ws_pmd_params_t rx_p = {.client_max_window_bits = 9};
    cg_ws_pmd_t *tx, *rx;
    if (cg_ws_pmd_new(&tx_p, -1, 5, &tx) < 0 || cg_ws_pmd_new(&rx_p, -1, 5, &rx) < 0)
        abort();
    cg_ws_buf_t wire = {0}, back = {0};
    if (cg_ws_deflate_message(tx, msg, n, &wire) < 0)
        abort();
    if (cg_ws_inflate_feed(rx, wire.data, wire.len, true, &back, max) < 0)
        abort();
    if (back.len != n || (n && memcmp(back.data, msg, n) != 0))
        abort();
    cg_ws_buf_free(&wire);
    cg_ws_buf_free(&back);
    cg_ws_pmd_free(tx);
    cg_ws_pmd_free(rx);
}

static void run(const char *in, size_t n, size_t step, int mode, size_t max, bool check_rt,
                verdict_t *v)
{
    cg_ws_pmd_t *pmd = NULL;
    if (mode) {
        cg_ws_pmd_params_t p = {.client_no_context_takeover = mode == 2,
                                .client_max_window_bits = 10};
        if (cg_ws_pmd_new(&p, -1, 5, &pmd) < 0)
            abort();
    }
    /* A read buffer the size a worker might use, at least a control frame */
    size_t cap = CG_WS_MAX_CONTROL_FRAME + 64;
    char *buf = malloc(cap);
    cg_ws_parser_t p;
    cg_ws_assembler_t a;
    cg_ws_parser_init(&p, max, pmd != NULL);
    cg_ws_assembler_init(&a, max, pmd);
    size_t have = 0, fed = 0;
    memset(v, 0, sizeof(*v));
    v->hash = 0xcbf29ce484222325ull;
    for (;;) {
        cg_ws_event_t ev;
        ssize_t c = cg_ws_parse(&p, buf, have, &ev);
        if (c == CG_EAGAIN) {
            size_t add = n - fed < step ? n - fed : step;
            if (add > cap - have)
                add = cap - have;
            if (add == 0) {
                /* input exhausted (or the buffer is full, which a control
                 * frame never needs) */
                if (fed < n)
                    abort();
                break;
            }
            memcpy(buf + have, in + fed, add);
            have += add;
            fed += add;
            continue;
        }
        if (c < 0) {
            if (c != -EPROTO || !p.error || p.close_code < 1000)
                abort();
            v->rc = -EPROTO;
            v->code = p.close_code;
            break;
        }
        if (c == 0 || (size_t)c > have)
            abort();
        if (ev.len && (ev.data < buf || ev.data + ev.len > buf + c))
            abort();
        if (ev.kind == CG_WS_EV_DATA) {
            int rc = cg_ws_assembler_feed(&a, &ev);
            if (rc == -EPROTO) {
                if (a.close_code != 1007 && a.close_code != 1009)
                    abort();
                v->rc = rc;
                v->code = a.close_code;
                break;
            }
            if (rc < 0)
                abort();
            if (rc == 1) {
                if (a.msg.len > max)
                    abort();
                if (a.opcode == CG_WS_OP_TEXT && !cg_ws_utf8_valid(a.msg.data, a.msg.len))
                    abort();
                mix(&v->hash, &a.opcode, 1);
                mix(&v->hash, a.msg.data ? a.msg.data : "", a.msg.len);
                v->nmsg++;
                if (check_rt)
                    round_trip(a.msg.data ? a.msg.data : "", a.msg.len, max);
            }
        } else {
            uint8_t k = (uint8_t)ev.kind;
            mix(&v->hash, &k, 1);
            mix(&v->hash, ev.data ? ev.data : "", ev.len);
            if (ev.kind == CG_WS_EV_CLOSE) {
                /* a valid close frame's answer can be written back */
                char out[CG_WS_MAX_CONTROL_FRAME];
                uint16_t code = ev.close_code == CG_WS_CLOSE_NO_STATUS ? 0 : ev.close_code;
                if (cg_ws_close_write(code, ev.close_reason.ptr, code ? ev.close_reason.len : 0,
                                      out, sizeof(out)) < 0)
                    abort();
                break; /* nothing follows a close frame */
            }
        }
        memmove(buf, buf + c, have - (size_t)c);
        have -= (size_t)c;
    }
    cg_ws_assembler_free(&a);
    cg_ws_pmd_free(pmd);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int mode = data[0] & 3;
    size_t step = (size_t)((data[0] >> 2) & 15) + 1;
    size_t max = (size_t)data[1] * 64;
    guarded_t g;
    size_t n = size - 2;
    char *in = guard_copy(&g, data + 2, n);

    if (mode == 3) {
        cg_ws_pmd_config_t cfg;
        cg_ws_pmd_config_default(&cfg);
        cfg.require_client_max_window_bits = data[1] & 1;
        cfg.server_no_context_takeover = data[1] & 2;
        cg_ws_pmd_params_t out;
        cg_str_t v = {in, n};
        int rc = cg_ws_pmd_negotiate(&cfg, &v, 1, &out);
        if (rc == 1) {
            char hdr[160];
            if (cg_ws_pmd_format(&out, hdr, sizeof(hdr)) < 0)
                abort();
            /* what we answer is itself a well-formed offer we would take */
            cg_str_t back = {hdr, strlen(hdr)};
            cg_ws_pmd_params_t again;
            if (cg_ws_pmd_negotiate(&cfg, &back, 1, &again) != 1)
                abort();
        } else if (rc != 0 && rc != -EPROTO) {
            abort();
        }
        guard_free(&g);
        return 0;
    }

    verdict_t v1, v2;
    run(in, n, n ? n : 1, mode, max, true, &v1);
    run(in, n, step, mode, max, false, &v2);
    if (v1.rc != v2.rc || v1.code != v2.code || v1.hash != v2.hash || v1.nmsg != v2.nmsg) {
        fprintf(stderr, "whole: rc %d code %u msgs %zu; step %zu: rc %d code %u msgs %zu\n", v1.rc,
                v1.code, v1.nmsg, step, v2.rc, v2.code, v2.nmsg);
        abort();
    }
    guard_free(&g);
    return 0;
}
