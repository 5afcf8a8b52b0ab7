/*
 * wsdeflate.c - permessage-deflate (RFC 7692): negotiation of the extension
 * parameters (section 7.1) and the per-message compressor and decompressor
 * (7.2) over zlib's raw deflate streams.
 *
 * The negotiation answers as Python's websockets server does (its
 * ServerPerMessageDeflateFactory), so clients see the same answers from us
 * as from the servers ASGI applications are tested with.
 */
#include "websocket.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include <zlib.h>

/* RFC 7692 7.2.1-7.2.2: the end of a sync flush (an empty stored block),
 * removed by the sender and put back by the receiver. */
static const unsigned char cg__pmd_tail[4] = {0x00, 0x00, 0xff, 0xff};

/* ------------------------------------------------------------ buffers */

void cg_ws_buf_free(cg_ws_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void cg_ws_buf_reserve(cg_ws_buf_t *b, size_t want, size_t limit)
{
    if (want <= b->cap - b->len)
        return;
    size_t need = b->len + want;
    size_t ncap = b->cap < 256 ? 256 : b->cap;
    while (ncap < need && ncap <= SIZE_MAX / 2)
        ncap *= 2;
    if (ncap < need)
        ncap = need;
    if (ncap > limit)
        ncap = limit > need ? limit : need;
    b->data = cg_xrealloc(b->data, ncap);
    b->cap = ncap;
}

/* ------------------------------------------------------------ negotiation */

void cg_ws_pmd_config_default(cg_ws_pmd_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->server_max_window_bits = 12;
    cfg->client_max_window_bits = 12;
    cfg->level = Z_DEFAULT_COMPRESSION;
    cfg->mem_level = 5;
}

/* One permessage-deflate offer's parameters (RFC 7692 7.1); -1 absent. */
typedef struct offer {
    int server_no_context_takeover;
    int client_no_context_takeover;
    int server_max_window_bits;
    int client_max_window_bits; /* 0: present without a value */
    bool refused;               /* an unknown, repeated or ill-valued parameter */
} offer_t;

/* A header-value cursor for RFC 6455 9.1's grammar. */
typedef struct cursor {
    const char *p, *end;
} cursor_t;

static void skip_ows(cursor_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

static bool take_token(cursor_t *c, cg_str_t *tok)
{
    const char *s = c->p;
    while (c->p < c->end && cg_http_is_tchar((unsigned char)*c->p))
        c->p++;
    *tok = (cg_str_t){s, (size_t)(c->p - s)};
    return tok->len > 0;
}

/*
 * A parameter value: a token or a quoted-string (RFC 9110 5.6.4) which,
 * unescaped, must be a token (RFC 6455 9.1). Unescaped into buf (values
 * longer than it cannot be valid window bits and are kept as "" so the
 * offer is refused, the syntax still being checked).
 */
static bool take_value(cursor_t *c, char *buf, size_t cap, cg_str_t *val)
{
    if (c->p < c->end && *c->p == '"') {
        size_t n = 0;
        bool fits = true;
        c->p++;
        for (;;) {
            if (c->p >= c->end)
                return false;
            char ch = *c->p++;
            if (ch == '"')
                break;
            if (ch == '\\') {
                if (c->p >= c->end)
                    return false;
                ch = *c->p++;
            }
            if (!cg_http_is_tchar((unsigned char)ch))
                return false;
            if (n < cap)
                buf[n++] = ch;
            else
                fits = false;
        }
        if (n == 0)
            return false;
        *val = fits ? (cg_str_t){buf, n} : (cg_str_t){buf, 0};
        return true;
    }
    return take_token(c, val);
}

/* "8".."15", exactly as websockets accepts them: no sign, no leading zero. */
static int window_bits(cg_str_t v)
{
    if (v.len == 1 && (v.ptr[0] == '8' || v.ptr[0] == '9'))
        return v.ptr[0] - '0';
    if (v.len == 2 && v.ptr[0] == '1' && v.ptr[1] >= '0' && v.ptr[1] <= '5')
        return 10 + v.ptr[1] - '0';
    return -1;
}

static void offer_param(offer_t *o, cg_str_t name, const cg_str_t *val)
{
    int *slot;
    if (cg_str_caseeq(name, "server_no_context_takeover"))
        slot = &o->server_no_context_takeover;
    else if (cg_str_caseeq(name, "client_no_context_takeover"))
        slot = &o->client_no_context_takeover;
    else if (cg_str_caseeq(name, "server_max_window_bits"))
        slot = &o->server_max_window_bits;
    else if (cg_str_caseeq(name, "client_max_window_bits"))
        slot = &o->client_max_window_bits;
    else {
        o->refused = true; /* RFC 7692 7: unknown parameters decline the offer */
        return;
    }
    if (*slot != -1) {
        o->refused = true; /* RFC 7692 7: so do repeated ones */
        return;
    }
    if (slot == &o->server_no_context_takeover || slot == &o->client_no_context_takeover) {
        if (val)
            o->refused = true; /* 7.1.1.1-2: these take no value */
        *slot = 1;
        return;
    }
    if (!val) {
        /* 7.1.2.2: only client_max_window_bits may come without a value,
         * meaning "I can take a limit" */
        if (slot == &o->server_max_window_bits)
            o->refused = true;
        *slot = 0;
        return;
    }
    int bits = window_bits(*val);
    if (bits < 0)
        o->refused = true;
    *slot = bits;
}

/*
 * websockets' answer to one acceptable offer under cfg; false when the
 * offer cannot be accepted (a cap required on the client's window, and the
 * client did not say it can take one).
 */
static bool answer(const cg_ws_pmd_config_t *cfg, const offer_t *o, cg_ws_pmd_params_t *out)
{
    memset(out, 0, sizeof(*out));
    /* 7.1.1: either side's no_context_takeover, asked or imposed */
    out->server_no_context_takeover = o->server_no_context_takeover == 1 ||
                                      cfg->server_no_context_takeover;
    out->client_no_context_takeover = o->client_no_context_takeover == 1 ||
                                      cfg->client_no_context_takeover;
    /* 7.1.2.1: our window is what the client asks, or our cap if lower */
    int s = o->server_max_window_bits;
    if (cfg->server_max_window_bits && (s == -1 || s > cfg->server_max_window_bits))
        s = cfg->server_max_window_bits;
    out->server_max_window_bits = (uint8_t)(s > 0 ? s : 0);
    /* 7.1.2.2: the client's window may be capped only if it said it can be */
    int c = o->client_max_window_bits;
    if (!cfg->client_max_window_bits) {
        if (c == 0)
            c = -1; /* offered without a value, and we set no cap: leave it out */
    } else if (c == -1) {
        if (cfg->require_client_max_window_bits)
            return false;
    } else if (c == 0 || c > cfg->client_max_window_bits) {
        c = cfg->client_max_window_bits;
    }
    out->client_max_window_bits = (uint8_t)(c > 0 ? c : 0);
    return true;
}

int cg_ws_pmd_negotiate(const cg_ws_pmd_config_t *cfg, const cg_str_t *ext, size_t n,
                        cg_ws_pmd_params_t *out)
{
    int accepted = 0;
    /* RFC 6455 9.1: extension-list = 1#( extension-token *( ";" param ) ),
     * param = token [ "=" ( token / quoted-string ) ]. Every value is parsed
     * whole, even after an offer was accepted: a malformed header is refused
     * as a whole, as websockets does. */
    for (size_t h = 0; h < n; h++) {
        cursor_t c = {ext[h].ptr, ext[h].ptr + ext[h].len};
        for (;;) {
            skip_ows(&c);
            if (c.p == c.end)
                break;
            if (*c.p == ',') { /* RFC 9110 5.6.1: empty list elements are allowed */
                c.p++;
                continue;
            }
            cg_str_t name;
            if (!take_token(&c, &name))
                return -EPROTO;
            offer_t o = {-1, -1, -1, -1, false};
            bool pmd = cg_str_caseeq(name, "permessage-deflate");
            skip_ows(&c);
            while (c.p < c.end && *c.p == ';') {
                c.p++;
                skip_ows(&c);
                cg_str_t pname, pval;
                char vbuf[8];
                if (!take_token(&c, &pname))
                    return -EPROTO;
                skip_ows(&c);
                bool has_val = c.p < c.end && *c.p == '=';
                if (has_val) {
                    c.p++;
                    skip_ows(&c);
                    if (!take_value(&c, vbuf, sizeof(vbuf), &pval))
                        return -EPROTO;
                    skip_ows(&c);
                }
                if (pmd)
                    offer_param(&o, pname, has_val ? &pval : NULL);
            }
            if (c.p < c.end && *c.p != ',')
                return -EPROTO;
            /* RFC 7692 5: the first offer we can take is the answer */
            if (pmd && !accepted && !o.refused && answer(cfg, &o, out))
                accepted = 1;
        }
    }
    return accepted;
}

ssize_t cg_ws_pmd_format(const cg_ws_pmd_params_t *params, char *buf, size_t cap)
{
    char s[32] = "", c[32] = "";
    if (params->server_max_window_bits)
        snprintf(s, sizeof(s), "; server_max_window_bits=%u", params->server_max_window_bits);
    if (params->client_max_window_bits)
        snprintf(c, sizeof(c), "; client_max_window_bits=%u", params->client_max_window_bits);
    int n = snprintf(buf, cap, "permessage-deflate%s%s%s%s",
                     params->server_no_context_takeover ? "; server_no_context_takeover" : "",
                     params->client_no_context_takeover ? "; client_no_context_takeover" : "",
                     s, c);
    if (n < 0 || (size_t)n >= cap)
        return -ENOBUFS;
    return n;
}

/* ------------------------------------------------------------ compression */

struct cg_ws_pmd {
    cg_ws_pmd_params_t params;
    int level, mem_level;
    z_stream def, inf;
    bool def_ready, inf_ready;
    bool inf_ended; /* the message's deflate data had a final block (BFINAL) */
};

int cg_ws_pmd_new(const cg_ws_pmd_params_t *params, int level, int mem_level, cg_ws_pmd_t **out)
{
    cg_ws_pmd_t *z = calloc(1, sizeof(*z));
    if (!z)
        return -ENOMEM;
    z->params = *params;
    z->level = level;
    z->mem_level = mem_level;
    *out = z;
    return 0;
}

void cg_ws_pmd_free(cg_ws_pmd_t *z)
{
    if (!z)
        return;
    if (z->def_ready)
        deflateEnd(&z->def);
    if (z->inf_ready)
        inflateEnd(&z->inf);
    free(z);
}

static int zerr(int rc)
{
    return rc == Z_MEM_ERROR ? -ENOMEM : -EIO;
}

/* Point zlib's output at the free end of `out`; returns the room given
 * (zlib counts in uInt, so at most UINT_MAX of it). */
static size_t z_output(z_stream *zs, cg_ws_buf_t *out)
{
    size_t room = out->cap - out->len;
    if (room > UINT_MAX)
        room = UINT_MAX;
    zs->next_out = (unsigned char *)out->data + out->len;
    zs->avail_out = (uInt)room;
    return room;
}

int cg_ws_deflate_message(cg_ws_pmd_t *z, const void *in, size_t n, cg_ws_buf_t *out)
{
    int wbits = z->params.server_max_window_bits ? z->params.server_max_window_bits : 15;
    /* zlib refuses a 256-byte window for raw deflate (it needs 512), and a
     * larger one could emit distances the client's window cannot hold. */
    if (wbits == 8)
        return -ENOTSUP;
    if (!z->def_ready) {
        int rc = deflateInit2(&z->def, z->level, Z_DEFLATED, -wbits, z->mem_level,
                              Z_DEFAULT_STRATEGY);
        if (rc != Z_OK)
            return zerr(rc);
        z->def_ready = true;
    }
    size_t start = out->len;
    const unsigned char *src = in;
    size_t left = n;
    /* zlib counts in uInt: feed pieces, flushing after the last one only */
    do {
        size_t piece = left > UINT_MAX ? UINT_MAX : left;
        left -= piece;
        int flush = left ? Z_NO_FLUSH : Z_SYNC_FLUSH;
        z->def.next_in = (unsigned char *)(uintptr_t)src;
        z->def.avail_in = (uInt)piece;
        src += piece;
        for (;;) {
            cg_ws_buf_reserve(out, piece / 2 + 64, SIZE_MAX);
            size_t room = z_output(&z->def, out);
            int rc = deflate(&z->def, flush);
            out->len += room - z->def.avail_out;
            /* Z_BUF_ERROR: nothing left to do (e.g. a flush right after a
             * flush, for an empty message) */
            if (rc != Z_OK && rc != Z_BUF_ERROR)
                return zerr(rc);
            if (z->def.avail_in == 0 && z->def.avail_out != 0)
                break;
        }
    } while (left);
    /* 7.2.1: remove the sync flush's empty stored block */
    if (out->len - start >= 4 && memcmp(out->data + out->len - 4, cg__pmd_tail, 4) == 0)
        out->len -= 4;
    /* 7.2.3.6: an empty message right after a flush makes zlib write
     * nothing, and an empty payload with 00 00 ff ff added is not deflate
     * (Python's zlib, which websockets uses, then fails on the stream): send
     * the empty stored block's single 00 byte instead */
    if (out->len == start) {
        cg_ws_buf_reserve(out, 1, SIZE_MAX);
        out->data[out->len++] = 0;
    }
    /* 7.1.1.1: without context takeover each message starts afresh */
    if (z->params.server_no_context_takeover && deflateReset(&z->def) != Z_OK)
        return -EIO;
    return 0;
}

/* Inflate in[0..n) into out, never past `limit` bytes in all. */
static int inflate_some(cg_ws_pmd_t *z, const unsigned char *in, size_t n, cg_ws_buf_t *out,
                        size_t max)
{
    /* One byte of room past the limit: producing it proves the message is
     * too big without inflating any further. */
    size_t limit = max < SIZE_MAX ? max + 1 : SIZE_MAX;
    while (n > 0) {
        size_t piece = n > UINT_MAX ? UINT_MAX : n;
        z->inf.next_in = (unsigned char *)(uintptr_t)in;
        z->inf.avail_in = (uInt)piece;
        in += piece;
        n -= piece;
        for (;;) {
            if (z->inf_ended) {
                /* A block with BFINAL set (RFC 7692 7.2.3.4) ends the deflate
                 * stream: no more data may follow it in this message */
                if (z->inf.avail_in)
                    return -EPROTO;
                break;
            }
            if (out->len == out->cap) {
                /* double, never past the limit (out->len <= max < limit here) */
                size_t want = out->cap < 4096 ? 4096 : out->cap;
                if (want > limit - out->len)
                    want = limit - out->len;
                cg_ws_buf_reserve(out, want, limit);
            }
            size_t room = z_output(&z->inf, out);
            int rc = inflate(&z->inf, Z_SYNC_FLUSH);
            out->len += room - z->inf.avail_out;
            if (out->len > max)
                return -EMSGSIZE;
            if (rc == Z_STREAM_END) {
                z->inf_ended = true;
                continue;
            }
            if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT)
                return -EPROTO;
            if (rc != Z_OK && rc != Z_BUF_ERROR)
                return zerr(rc);
            if (z->inf.avail_in == 0 && z->inf.avail_out != 0)
                break;
            if (out->len == limit)
                return -EMSGSIZE;
        }
    }
    return 0;
}

int cg_ws_inflate_feed(cg_ws_pmd_t *z, const void *in, size_t n, bool fin, cg_ws_buf_t *out,
                       size_t max)
{
    if (!z->inf_ready) {
        /* The client deflates with at most its negotiated window; inflating
         * with the same size keeps our state as small (7.1.2.2). */
        int wbits = z->params.client_max_window_bits ? z->params.client_max_window_bits : 15;
        memset(&z->inf, 0, sizeof(z->inf));
        int rc = inflateInit2(&z->inf, -wbits);
        if (rc != Z_OK)
            return zerr(rc);
        z->inf_ready = true;
    }
    int rc = inflate_some(z, in, n, out, max);
    if (rc == 0 && fin && !z->inf_ended)
        rc = inflate_some(z, cg__pmd_tail, sizeof(cg__pmd_tail), out, max);
    if (rc < 0)
        return rc;
    if (fin) {
        /* 7.1.1.2: without the client's context takeover each message starts
         * afresh; after a final block the stream has ended either way */
        if ((z->params.client_no_context_takeover || z->inf_ended) && inflateReset(&z->inf) != Z_OK)
            return -EIO;
        z->inf_ended = false;
    }
    return 0;
}
