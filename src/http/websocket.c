/*
 * websocket.c - RFC 6455 on the server side: the opening handshake (section
 * 4.2), the frame parser (5.2-5.5), message assembly (5.4, 8.1) and server
 * frames. Plain functions over the caller's buffers; see websocket.h.
 */
#include "websocket.h"

#include <stdio.h>

#include <openssl/evp.h>

/* RFC 6455 1.3: the GUID appended to the key before hashing. */
#define CG__WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Above this, an idle assembler gives its message buffer back rather than
 * keep a large message's memory for the life of the connection. */
#define CG__WS_KEEP_BUFFER (64 * 1024)

/* ------------------------------------------------------------ handshake */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Next element of a comma-separated header list (RFC 9110 5.6.1), with the
 * optional whitespace around it stripped; empty elements are skipped, as
 * recipients must accept them. Returns false at the end of the list.
 */
static bool list_next(cg_str_t *rest, cg_str_t *item)
{
    const char *p = rest->ptr, *end = p + rest->len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end, *s = p;
        p = comma ? comma + 1 : end;
        while (s < e && is_ows(*s))
            s++;
        while (e > s && is_ows(e[-1]))
            e--;
        if (e > s) {
            *item = (cg_str_t){s, (size_t)(e - s)};
            *rest = (cg_str_t){p, (size_t)(end - p)};
            return true;
        }
    }
    *rest = (cg_str_t){end, 0};
    return false;
}

/* Whether any element of any `name` header equals `token`, ignoring case. */
static bool header_has_token(const cg_http_header_t *h, size_t n, const char *name,
                             const char *token)
{
    for (size_t i = 0; i < n; i++) {
        if ((h[i].flags & CG_HTTP_HF_DROPPED) || !cg_str_caseeq(h[i].name, name))
            continue;
        cg_str_t rest = h[i].value, item;
        while (list_next(&rest, &item))
            if (cg_str_caseeq(item, token))
                return true;
    }
    return false;
}

/* The value of the only `name` header: 1 found, 0 absent, -1 more than one. */
static int header_single(const cg_http_header_t *h, size_t n, const char *name, cg_str_t *out)
{
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if ((h[i].flags & CG_HTTP_HF_DROPPED) || !cg_str_caseeq(h[i].name, name))
            continue;
        if (found)
            return -1;
        *out = h[i].value;
        found = 1;
    }
    return found;
}

static bool is_token(cg_str_t s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!cg_http_is_tchar((unsigned char)s.ptr[i]))
            return false;
    return true;
}

static bool is_base64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

/* RFC 6455 4.1 item 7 / 11.3.1: base64 of a 16-byte nonce is 22 characters
 * and "==". The unused low bits of the last character are not checked, as
 * Python's base64 decoder (which websockets uses) does not check them. */
static bool key_ok(cg_str_t k)
{
    if (k.len != 24 || k.ptr[22] != '=' || k.ptr[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!is_base64_char(k.ptr[i]))
            return false;
    return true;
}

int cg_ws_accept_key(cg_str_t key, char out[29])
{
    unsigned char in[64], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t glen = sizeof(CG__WS_GUID) - 1;
    if (key.len > sizeof(in) - glen)
        return -EINVAL;
    memcpy(in, key.ptr, key.len);
    memcpy(in + key.len, CG__WS_GUID, glen);
    if (EVP_Digest(in, key.len + glen, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        return -EIO;
    /* 20 bytes -> 28 characters and a NUL */
    if (EVP_EncodeBlock((unsigned char *)out, md, 20) != 28)
        return -EIO;
    return 0;
}

bool cg_ws_wants_upgrade(const cg_http_header_t *headers, size_t nheaders)
{
    return header_has_token(headers, nheaders, "upgrade", "websocket");
}

static int refuse(cg_ws_handshake_t *hs, int status, const char *reason)
{
    hs->status = status;
    hs->reason = reason;
    return -EPROTO;
}

int cg_ws_handshake_check(cg_str_t method, uint8_t version_major, uint8_t version_minor,
                          const cg_http_header_t *h, size_t n, cg_ws_handshake_t *hs)
{
    memset(hs, 0, sizeof(*hs));
    /* RFC 6455 4.1 item 2: a GET of HTTP/1.1 or later (method names are
     * case-sensitive, RFC 9110 9.1) */
    if (!cg_str_eq(method, "GET", 3))
        return refuse(hs, 400, "WebSocket handshake must use GET");
    if (version_major < 1 || (version_major == 1 && version_minor < 1))
        return refuse(hs, 400, "WebSocket handshake needs HTTP/1.1");
    /* 4.2.1 items 3 and 4 */
    if (!header_has_token(h, n, "upgrade", "websocket"))
        return refuse(hs, 400, "missing Upgrade: websocket");
    if (!header_has_token(h, n, "connection", "upgrade"))
        return refuse(hs, 400, "missing Connection: Upgrade");
    /* 4.2.1 item 6, judged before the key: a client of an older draft sends
     * a key too, and what it needs to hear is which version we speak
     * (4.2.2 item 4, 4.4). */
    cg_str_t v;
    int rc = header_single(h, n, "sec-websocket-version", &v);
    if (rc == 0)
        return refuse(hs, 400, "missing Sec-WebSocket-Version");
    if (rc < 0 || !cg_str_eq(v, "13", 2))
        return refuse(hs, 426, "unsupported Sec-WebSocket-Version");
    /* 4.2.1 item 5 */
    rc = header_single(h, n, "sec-websocket-key", &hs->key);
    if (rc == 0)
        return refuse(hs, 400, "missing Sec-WebSocket-Key");
    if (rc < 0 || !key_ok(hs->key))
        return refuse(hs, 400, "invalid Sec-WebSocket-Key");

    /* 4.2.1 items 8 and 9: what the client offers, for the application and
     * the extension negotiation */
    for (size_t i = 0; i < n; i++) {
        if (h[i].flags & CG_HTTP_HF_DROPPED)
            continue;
        if (cg_str_caseeq(h[i].name, "sec-websocket-protocol")) {
            cg_str_t rest = h[i].value, item;
            while (list_next(&rest, &item)) {
                if (!is_token(item))
                    return refuse(hs, 400, "invalid Sec-WebSocket-Protocol");
                if (hs->nsubprotocols == CG_WS_MAX_SUBPROTOCOLS)
                    return refuse(hs, 400, "too many subprotocols offered");
                hs->subprotocols[hs->nsubprotocols++] = item;
            }
        } else if (cg_str_caseeq(h[i].name, "sec-websocket-extensions")) {
            if (hs->nextensions == CG_WS_MAX_EXTENSION_HEADERS)
                return refuse(hs, 400, "too many Sec-WebSocket-Extensions headers");
            hs->extensions[hs->nextensions++] = h[i].value;
        }
    }
    if (cg_ws_accept_key(hs->key, hs->accept) < 0) {
        hs->status = 500;
        hs->reason = "cannot compute Sec-WebSocket-Accept";
        return -EIO;
    }
    return 0;
}

/* Appends to a fixed buffer; remembers running out of room instead of
 * failing each call, so a writer checks once at the end. */
typedef struct out {
    char *p;
    size_t len, cap;
    bool full;
} out_t;

static void put(out_t *o, const void *s, size_t n)
{
    if (o->full || n > o->cap - o->len) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void puts_(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_header(out_t *o, const char *name, cg_str_t value)
{
    puts_(o, name);
    put(o, ": ", 2);
    put(o, value.ptr, value.len);
    put(o, "\r\n", 2);
}

/* A header value that cannot end the line or the head early. */
static bool value_ok(cg_str_t v)
{
    for (size_t i = 0; i < v.len; i++)
        if (v.ptr[i] == '\r' || v.ptr[i] == '\n' || v.ptr[i] == '\0')
            return false;
    return true;
}

ssize_t cg_ws_handshake_response(const cg_ws_handshake_t *hs, cg_str_t subprotocol,
                                 const cg_ws_pmd_params_t *pmd, const cg_str_t *extra,
                                 size_t nextra, char *buf, size_t cap)
{
    if (subprotocol.len && !is_token(subprotocol))
        return -EINVAL;
    for (size_t i = 0; i < nextra; i++)
        if (!is_token(extra[2 * i]) || !value_ok(extra[2 * i + 1]))
            return -EINVAL;

    out_t o = {buf, 0, cap, false};
    puts_(&o, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
    put_header(&o, "Sec-WebSocket-Accept", (cg_str_t){hs->accept, 28});
    if (subprotocol.len)
        put_header(&o, "Sec-WebSocket-Protocol", subprotocol);
    if (pmd) {
        char ext[160];
        ssize_t el = cg_ws_pmd_format(pmd, ext, sizeof(ext));
        if (el < 0)
            return el;
        put_header(&o, "Sec-WebSocket-Extensions", (cg_str_t){ext, (size_t)el});
    }
    for (size_t i = 0; i < nextra; i++) {
        put(&o, extra[2 * i].ptr, extra[2 * i].len);
        put(&o, ": ", 2);
        put(&o, extra[2 * i + 1].ptr, extra[2 * i + 1].len);
        put(&o, "\r\n", 2);
    }
    put(&o, "\r\n", 2);
    return o.full ? -ENOBUFS : (ssize_t)o.len;
}

ssize_t cg_ws_reject_response(const cg_ws_handshake_t *hs, char *buf, size_t cap)
{
    out_t o = {buf, 0, cap, false};
    const char *reason = hs->reason ? hs->reason : "";
    char line[160];
    /* RFC 9110 15.5.22: a 426 names the protocol to upgrade to, and an
     * Upgrade header goes with the "upgrade" connection option (7.8). */
    if (hs->status == 426)
        puts_(&o, "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade, close\r\nSec-WebSocket-Version: 13\r\n");
    else if (hs->status == 500)
        puts_(&o, "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n");
    else
        puts_(&o, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n");
    int l = snprintf(line, sizeof(line), "Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n",
                     strlen(reason) + 1);
    put(&o, line, (size_t)l);
    puts_(&o, reason);
    put(&o, "\n", 1);
    return o.full ? -ENOBUFS : (ssize_t)o.len;
}

/* ------------------------------------------------------------ frames in */

static int proto_fail(cg_ws_parser_t *p, uint16_t code, const char *why)
{
    p->close_code = code;
    p->error = why;
    return -EPROTO;
}

void cg_ws_parser_init(cg_ws_parser_t *p, uint64_t max_message, bool rsv1_allowed)
{
    memset(p, 0, sizeof(*p));
    p->max_message = max_message;
    p->rsv1_allowed = rsv1_allowed;
}

/* XOR d[0..n) with the mask, starting at mask byte `pos` (RFC 6455 5.3).
 * Eight bytes at a time: a mask repeated twice is periodic in 8 as in 4. */
static void unmask(char *d, size_t n, const uint8_t mask[4], unsigned pos)
{
    uint8_t m[8];
    for (unsigned i = 0; i < 8; i++)
        m[i] = mask[(pos + i) & 3];
    uint64_t m64;
    memcpy(&m64, m, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, d + i, 8);
        w ^= m64;
        memcpy(d + i, &w, 8);
    }
    for (; i < n; i++)
        d[i] = (char)(d[i] ^ m[i & 7]);
}

/* The next piece of the current data frame's payload from buf[0..len). */
static size_t deliver(cg_ws_parser_t *p, char *buf, size_t len, bool first, cg_ws_event_t *ev)
{
    size_t n = p->remaining < len ? (size_t)p->remaining : len;
    unmask(buf, n, p->mask, p->mask_pos);
    p->mask_pos = (uint8_t)((p->mask_pos + n) & 3);
    p->remaining -= n;
    ev->kind = CG_WS_EV_DATA;
    ev->frame = p->frame;
    ev->opcode = p->msg_opcode;
    ev->first = first;
    ev->compressed = p->msg_compressed;
    ev->data = buf;
    ev->len = n;
    if (p->remaining == 0) {
        p->in_frame = false;
        if (p->frame.fin) {
            p->in_message = false;
            ev->fin = true;
        }
    }
    return n;
}

static bool opcode_known(uint8_t op)
{
    return op <= CG_WS_OP_BINARY || (op >= CG_WS_OP_CLOSE && op <= CG_WS_OP_PONG);
}

ssize_t cg_ws_parse(cg_ws_parser_t *p, char *buf, size_t len, cg_ws_event_t *ev)
{
    memset(ev, 0, sizeof(*ev));
    if (p->in_frame)
        return len ? (ssize_t)deliver(p, buf, len, false, ev) : CG_EAGAIN;
    if (len < 2)
        return CG_EAGAIN;

    /* RFC 6455 5.2. Everything the first two bytes can refute is refuted
     * before waiting for the rest of the header. */
    uint8_t b0 = (uint8_t)buf[0], b1 = (uint8_t)buf[1];
    bool fin = b0 & 0x80, rsv1 = b0 & 0x40, control = b0 & 0x08;
    uint8_t op = b0 & 0x0f, len7 = b1 & 0x7f;
    if (b0 & 0x30)
        return proto_fail(p, CG_WS_CLOSE_PROTOCOL_ERROR, "reserved bits RSV2/RSV3 set");
    if (!opcode_known(op))
        return proto_fail(p, CG_WS_CLOSE_PROTOCOL_ERROR, "unknown opcode");
    if (control) {
        /* 5.5: control frames are short, whole, and (RFC 7692 6.1) never
         * compressed */
        if (!fin)
            return proto_fail(p, CG_WS_CLOSE_PROTOCOL_ERROR, "fragmented control frame");
        if (len7 > CG_WS_MAX_CONTROL_PAYLOAD)
            return proto_fail(p, CG_WS_CLOSE_PROTOCOL_ERROR, "control frame too long");
        if (rsv1)
            return proto_fail(p, CG_WS_CLOSE_PROTOCOL_ERROR, "RSV1 set on a control frame");
    } else if (op == CG_WS_OP_CONT) {
        /* 5.4: a continuation continues something; RFC 7692 6.1: RSV1 only
         * on a message's first frame */
        if (!p->in_message)
            return proto_fail(p, CG_WS_CLOSE_PROTOCOL_ERROR, "continuation frame outside a message");
        if (rsv1)
            return proto_fail(p, CG_WS_CLOSE_PROTOCOL_ERROR, "RSV1 set on a continuation frame");
    } else {
        /* 5.4: fragments of two messages are never interleaved */
        if (p->in_message)
            return proto_fail(p, CG_WS_CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one");
        /* 5.2: RSV1 means something only with an extension that defines it */
        if (rsv1 && !p->rsv1_allowed)
            return proto_fail(p, CG_WS_CLOSE_PROTOCOL_ERROR, "RSV1 set without permessage-deflate");
    }
    /* 5.1: a server must close on an unmasked client frame */
    if (!(b1 & 0x80))
        return proto_fail(p, CG_WS_CLOSE_PROTOCOL_ERROR, "unmasked client frame");

    /* the length is judged as soon as it is there, without the mask */
    size_t hlen = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
    if (len < hlen)
        return CG_EAGAIN;
    uint64_t plen = len7;
    if (len7 == 126) {
        plen = (uint64_t)(uint8_t)buf[2] << 8 | (uint8_t)buf[3];
    } else if (len7 == 127) {
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | (uint8_t)buf[2 + i];
        /* 5.2: "the most significant bit MUST be 0" */
        if (plen >> 63)
            return proto_fail(p, CG_WS_CLOSE_PROTOCOL_ERROR, "payload length over 2^63");
    }
    /* The message limit is judged on the header, before its payload is read
     * or anything is allocated for it. */
    if (!control) {
        uint64_t before = op == CG_WS_OP_CONT ? p->msg_bytes : 0;
        if (plen > p->max_message - before)
            return proto_fail(p, CG_WS_CLOSE_TOO_BIG, "message too big");
    }
    hlen += 4;
    if (len < hlen)
        return CG_EAGAIN;
    const uint8_t *mask = (const uint8_t *)buf + hlen - 4;

    if (control) {
        if (len - hlen < plen)
            return CG_EAGAIN;
        char *payload = buf + hlen;
        unmask(payload, (size_t)plen, mask, 0);
        ev->kind = op == CG_WS_OP_PING   ? CG_WS_EV_PING
                   : op == CG_WS_OP_PONG ? CG_WS_EV_PONG
                                         : CG_WS_EV_CLOSE;
        ev->frame = (cg_ws_frame_t){fin, rsv1, op, plen};
        ev->opcode = op;
        ev->first = ev->fin = true;
        ev->data = payload;
        ev->len = (size_t)plen;
        if (op == CG_WS_OP_CLOSE &&
            cg_ws_close_parse(payload, (size_t)plen, &ev->close_code, &ev->close_reason) < 0)
            return proto_fail(p, ev->close_code,
                              ev->close_code == CG_WS_CLOSE_INVALID_DATA
                                  ? "close reason is not UTF-8"
                                  : "invalid close frame payload");
        return (ssize_t)(hlen + plen);
    }

    /* A data frame: the header is consumed together with its first payload
     * byte, so each successful call reports an event. */
    if (plen > 0 && len == hlen)
        return CG_EAGAIN;
    if (op != CG_WS_OP_CONT) {
        p->in_message = true;
        p->msg_opcode = op;
        p->msg_compressed = rsv1;
        p->msg_bytes = 0;
    }
    p->msg_bytes += plen;
    p->frame = (cg_ws_frame_t){fin, rsv1, op, plen};
    p->remaining = plen;
    memcpy(p->mask, mask, 4);
    p->mask_pos = 0;
    p->in_frame = true;
    return (ssize_t)(hlen + deliver(p, buf + hlen, len - hlen, op != CG_WS_OP_CONT, ev));
}

/* RFC 6455 7.4.1-7.4.2 with the IANA registry (11.7): the codes an endpoint
 * may put on the wire. 1004 is reserved, 1005 and 1006 mean "no frame" and
 * 1015 "TLS failed", so never appear in one; 1016-2999 are unassigned. */
static bool close_code_ok(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

int cg_ws_close_parse(const char *p, size_t n, uint16_t *code, cg_str_t *reason)
{
    *reason = (cg_str_t){p, 0};
    if (n == 0) {
        *code = CG_WS_CLOSE_NO_STATUS;
        return 0;
    }
    if (n == 1) {
        *code = CG_WS_CLOSE_PROTOCOL_ERROR;
        return -EPROTO;
    }
    unsigned c = (unsigned)(uint8_t)p[0] << 8 | (uint8_t)p[1];
    if (!close_code_ok(c)) {
        *code = CG_WS_CLOSE_PROTOCOL_ERROR;
        return -EPROTO;
    }
    if (!cg_ws_utf8_valid(p + 2, n - 2)) {
        *code = CG_WS_CLOSE_INVALID_DATA;
        return -EPROTO;
    }
    *code = (uint16_t)c;
    *reason = (cg_str_t){p + 2, n - 2};
    return 0;
}

/* ------------------------------------------------------------ frames out */

size_t cg_ws_frame_header(uint8_t out[10], uint8_t opcode, bool fin, bool rsv1, uint64_t len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0f));
    /* 5.2: the minimal number of bytes for the length; no mask from a server */
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

ssize_t cg_ws_frame_write(uint8_t opcode, bool rsv1, const void *payload, size_t len,
                          size_t fragment, char *buf, size_t cap)
{
    bool control = opcode & 0x08;
    if (!opcode_known(opcode) || opcode == CG_WS_OP_CONT)
        return -EINVAL;
    if (control && (len > CG_WS_MAX_CONTROL_PAYLOAD || rsv1 || (fragment && len > fragment)))
        return -EINVAL;
    if (fragment == 0 || len <= fragment)
        fragment = len;

    const char *src = payload;
    size_t off = 0, pos = 0;
    do {
        size_t n = len - off < fragment ? len - off : fragment;
        bool first = off == 0, last = off + n == len;
        uint8_t h[10];
        size_t hl = cg_ws_frame_header(h, first ? opcode : CG_WS_OP_CONT, last, rsv1 && first, n);
        if (hl > cap - pos || n > cap - pos - hl)
            return -ENOBUFS;
        memcpy(buf + pos, h, hl);
        if (n)
            memcpy(buf + pos + hl, src + off, n);
        pos += hl + n;
        off += n;
    } while (off < len);
    return (ssize_t)pos;
}

ssize_t cg_ws_close_write(uint16_t code, const char *reason, size_t reason_len, char *buf,
                          size_t cap)
{
    char payload[CG_WS_MAX_CONTROL_PAYLOAD];
    if (code == 0)
        return reason_len ? -EINVAL : cg_ws_frame_write(CG_WS_OP_CLOSE, false, "", 0, 0, buf, cap);
    /* 5.5.1: the reason fits in a control frame after the 2-byte code and is
     * UTF-8 */
    if (!close_code_ok(code) || reason_len > CG_WS_MAX_CONTROL_PAYLOAD - 2 ||
        !cg_ws_utf8_valid(reason, reason_len))
        return -EINVAL;
    payload[0] = (char)(code >> 8);
    payload[1] = (char)(code & 0xff);
    if (reason_len)
        memcpy(payload + 2, reason, reason_len);
    return cg_ws_frame_write(CG_WS_OP_CLOSE, false, payload, reason_len + 2, 0, buf, cap);
}

/* ------------------------------------------------------------ messages */

void cg_ws_assembler_init(cg_ws_assembler_t *a, size_t max_message, cg_ws_pmd_t *pmd)
{
    memset(a, 0, sizeof(*a));
    a->max_message = max_message;
    a->pmd = pmd;
}

void cg_ws_assembler_free(cg_ws_assembler_t *a)
{
    cg_ws_buf_free(&a->msg);
}

static int msg_fail(cg_ws_assembler_t *a, uint16_t code, const char *why)
{
    a->close_code = code;
    a->error = why;
    return -EPROTO;
}

int cg_ws_assembler_feed(cg_ws_assembler_t *a, const cg_ws_event_t *ev)
{
    /* the parser's events come in message order; anything else is the
     * caller's mistake */
    if (ev->kind != CG_WS_EV_DATA || ev->first == a->in_message)
        return -EINVAL;
    if (ev->first) {
        if (a->msg.cap > CG__WS_KEEP_BUFFER)
            cg_ws_buf_free(&a->msg);
        a->msg.len = 0;
        a->opcode = ev->opcode;
        a->utf8 = CG_WS_UTF8_ACCEPT;
        a->in_message = true;
    }
    size_t old = a->msg.len;
    int zrc = 0;
    if (ev->compressed) {
        if (!a->pmd)
            return -EINVAL;
        zrc = cg_ws_inflate_feed(a->pmd, ev->data, ev->len, ev->fin, &a->msg, a->max_message);
        if (zrc < 0 && zrc != -EMSGSIZE && zrc != -EPROTO)
            return zrc;
    } else {
        if (ev->len > a->max_message - a->msg.len)
            return msg_fail(a, CG_WS_CLOSE_TOO_BIG, "message too big");
        if (ev->len) {
            cg_ws_buf_reserve(&a->msg, ev->len, a->max_message);
            memcpy(a->msg.data + a->msg.len, ev->data, ev->len);
            a->msg.len += ev->len;
        }
    }
    /* RFC 6455 8.1: text is UTF-8; judged as it comes, so a bad byte early in
     * a long message ends it at once. The text inflated before a limit or a
     * deflate error is judged first, so the verdict does not depend on how
     * the frames were cut into reads. */
    size_t upto = a->msg.len < a->max_message ? a->msg.len : a->max_message;
    if (a->opcode == CG_WS_OP_TEXT && upto > old &&
        cg_ws_utf8_feed(&a->utf8, a->msg.data + old, upto - old) < 0)
        return msg_fail(a, CG_WS_CLOSE_INVALID_DATA, "text message is not UTF-8");
    if (zrc == -EMSGSIZE)
        return msg_fail(a, CG_WS_CLOSE_TOO_BIG, "message too big after decompression");
    if (zrc == -EPROTO)
        return msg_fail(a, CG_WS_CLOSE_INVALID_DATA, "invalid compressed data");
    if (!ev->fin)
        return 0;
    if (a->opcode == CG_WS_OP_TEXT && a->utf8 != CG_WS_UTF8_ACCEPT)
        return msg_fail(a, CG_WS_CLOSE_INVALID_DATA, "text message ends inside a character");
    a->in_message = false;
    return 1;
}
