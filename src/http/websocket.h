/*
 * websocket.h - the WebSocket protocol (RFC 6455) with permessage-deflate
 * (RFC 7692), server side, as plain functions over caller buffers.
 *
 * No sockets, no event loop, no Python: the caller (the ASGI worker) feeds the
 * bytes it read and gets events back, and asks for the bytes to write. The
 * pieces, in the order a connection uses them:
 *
 *   cg_ws_handshake_check()     is this request a valid upgrade? (RFC 6455 4.2.1)
 *   cg_ws_pmd_negotiate()       pick the permessage-deflate answer (RFC 7692 7.1)
 *   cg_ws_handshake_response()  the 101 head with Sec-WebSocket-Accept
 *   cg_ws_parse()               frames in, events out (payload views, unmasked in place)
 *   cg_ws_assembler_feed()      events in, whole messages out (inflated, UTF-8 checked)
 *   cg_ws_frame_header() ...    server frames out
 *
 * Error vocabulary as everywhere (cg.h): 0 or a length on success, CG_EAGAIN
 * for "feed more bytes", a negative errno otherwise. Where the peer broke the
 * protocol the answer is -EPROTO and the object says which close code
 * (RFC 6455 7.4.1) to fail the connection with and a short static reason.
 *
 * Memory: the parser allocates nothing and returns views into the caller's
 * buffer. The assembler owns one growable message buffer, never grown past
 * the caller's limit (checked before allocating); allocation failure aborts
 * the worker (cg_xrealloc, see cg.h). The deflate state is zlib's, allocated
 * once per connection when first used.
 */
#ifndef CG_WEBSOCKET_H
#define CG_WEBSOCKET_H

#include "http.h"

/* ---------------------------------------------------------------- constants */

/* RFC 6455 5.2 opcodes */
enum {
    CG_WS_OP_CONT = 0x0,
    CG_WS_OP_TEXT = 0x1,
    CG_WS_OP_BINARY = 0x2,
    CG_WS_OP_CLOSE = 0x8,
    CG_WS_OP_PING = 0x9,
    CG_WS_OP_PONG = 0xA,
};

/* RFC 6455 7.4.1 close codes, plus 1012-1014 from the IANA registry (11.7) */
enum {
    CG_WS_CLOSE_NORMAL = 1000,
    CG_WS_CLOSE_GOING_AWAY = 1001,
    CG_WS_CLOSE_PROTOCOL_ERROR = 1002,
    CG_WS_CLOSE_UNSUPPORTED_DATA = 1003,
    CG_WS_CLOSE_NO_STATUS = 1005,   /* never on the wire: a close frame without a code */
    CG_WS_CLOSE_ABNORMAL = 1006,    /* never on the wire: the connection dropped */
    CG_WS_CLOSE_INVALID_DATA = 1007,
    CG_WS_CLOSE_POLICY = 1008,
    CG_WS_CLOSE_TOO_BIG = 1009,
    CG_WS_CLOSE_MANDATORY_EXT = 1010,
    CG_WS_CLOSE_INTERNAL_ERROR = 1011,
    CG_WS_CLOSE_SERVICE_RESTART = 1012,
    CG_WS_CLOSE_TRY_AGAIN_LATER = 1013,
    CG_WS_CLOSE_BAD_GATEWAY = 1014,
};

/* RFC 6455 5.5: a control frame's payload is at most 125 bytes. */
#define CG_WS_MAX_CONTROL_PAYLOAD 125
/* The longest frame header: 2 + 8 (64-bit length) + 4 (mask). */
#define CG_WS_MAX_HEADER 14
/* A whole control frame from a client: the parser needs this much buffer. */
#define CG_WS_MAX_CONTROL_FRAME (2 + 4 + CG_WS_MAX_CONTROL_PAYLOAD)

/* ---------------------------------------------------------------- UTF-8 (utf8.c) */

/*
 * An incremental UTF-8 validator (a DFA over byte classes, RFC 3629 section 4
 * / Unicode table 3-7: no overlongs, no surrogates, nothing above U+10FFFF).
 * The state is one integer: start with CG_WS_UTF8_ACCEPT, feed any split of
 * the text; a character cut between two feeds carries over.
 */
#define CG_WS_UTF8_ACCEPT 0u
#define CG_WS_UTF8_REJECT 8u

/* Feed p[0..n) from *state; returns 0 while valid so far, -EILSEQ once an
 * invalid sequence is seen (the state then stays REJECT). */
int cg_ws_utf8_feed(uint32_t *state, const void *p, size_t n);

/* Whether p[0..n) is complete, valid UTF-8. */
bool cg_ws_utf8_valid(const void *p, size_t n);

/* ---------------------------------------------------------------- handshake */

/* More offered subprotocols than this is refused (400): no real client sends
 * so many, and the list is kept without allocation. */
#define CG_WS_MAX_SUBPROTOCOLS 32
/* Sec-WebSocket-Extensions header lines kept for negotiation. */
#define CG_WS_MAX_EXTENSION_HEADERS 8

typedef struct cg_ws_handshake {
    cg_str_t key;      /* Sec-WebSocket-Key, a view into the header value */
    char accept[29];   /* Sec-WebSocket-Accept for it, NUL-terminated (28 chars) */
    /* Sec-WebSocket-Protocol: the offered subprotocols in order, each a view
     * (a token) into a header value. */
    cg_str_t subprotocols[CG_WS_MAX_SUBPROTOCOLS];
    size_t nsubprotocols;
    /* Sec-WebSocket-Extensions header values, as they came, for
     * cg_ws_pmd_negotiate(). */
    cg_str_t extensions[CG_WS_MAX_EXTENSION_HEADERS];
    size_t nextensions;
    /* On failure: the status to answer (400, or 426 for another version) and
     * a static text saying why. */
    int status;
    const char *reason;
} cg_ws_handshake_t;

/*
 * Whether a request asks for a WebSocket at all: an Upgrade header holding
 * the "websocket" token (RFC 6455 4.2.1 item 3, ASCII case-insensitive). A
 * request that does not is plain HTTP; one that does is then judged by
 * cg_ws_handshake_check(). `headers` as our parser fills them (flagged
 * dropped entries are skipped); names compare case-insensitively, so other
 * producers work too.
 */
bool cg_ws_wants_upgrade(const cg_http_header_t *headers, size_t nheaders);

/*
 * Judge an opening handshake (RFC 6455 4.2.1): GET, HTTP/1.1 or later,
 * Upgrade: websocket, Connection listing "upgrade", one Sec-WebSocket-Key
 * that is base64 of 16 bytes, Sec-WebSocket-Version: 13. Fills `hs` with the
 * key, its accept value, the offered subprotocols and the extension header
 * values (views into the header values: valid while they are).
 *
 * Returns 0 for a valid upgrade, -EPROTO otherwise with hs->status 400 (or
 * 426 when only the version is wrong, RFC 6455 4.2.2 item 4: answer with
 * cg_ws_reject_response()) and hs->reason, -EIO if libcrypto failed.
 */
int cg_ws_handshake_check(cg_str_t method, uint8_t version_major, uint8_t version_minor,
                          const cg_http_header_t *headers, size_t nheaders,
                          cg_ws_handshake_t *hs);

/* base64(SHA-1(key + the RFC 6455 GUID)) into out (28 chars + NUL); 0, or -EIO
 * if libcrypto failed (RFC 6455 4.2.2 item 5.4). */
int cg_ws_accept_key(cg_str_t key, char out[29]);

/* The permessage-deflate parameters a server answered with (RFC 7692 7.1). */
typedef struct cg_ws_pmd_params {
    bool server_no_context_takeover;
    bool client_no_context_takeover;
    uint8_t server_max_window_bits; /* 8..15, or 0: not in the answer (15 is used) */
    uint8_t client_max_window_bits; /* 8..15, or 0: not in the answer (15 assumed) */
} cg_ws_pmd_params_t;

/*
 * Write the 101 Switching Protocols head (RFC 6455 4.2.2 item 5) into
 * buf[0..cap): Upgrade, Connection, Sec-WebSocket-Accept, then
 * Sec-WebSocket-Protocol when `subprotocol` is not empty (it must be a token;
 * RFC 6455 4.2.2 says one of the offered ones, which the caller checks, as the
 * application chose it), Sec-WebSocket-Extensions when `pmd` is not NULL, the
 * `nextra` extra (name, value) pairs in `extra[2*i]`, `extra[2*i+1]` (e.g.
 * Server, Date, the application's headers), and the empty line.
 *
 * Returns the length, -ENOBUFS if cap is too small, -EINVAL for a subprotocol
 * that is not a token or an extra header whose name is not a token or whose
 * value holds CR, LF or NUL (response splitting).
 */
ssize_t cg_ws_handshake_response(const cg_ws_handshake_t *hs, cg_str_t subprotocol,
                                 const cg_ws_pmd_params_t *pmd, const cg_str_t *extra,
                                 size_t nextra, char *buf, size_t cap);

/*
 * The refusal of a failed handshake: the status line for hs->status, for 426
 * "Sec-WebSocket-Version: 13" (RFC 6455 4.4), Connection: close and a
 * text/plain body with hs->reason. Returns the length, or -ENOBUFS.
 */
ssize_t cg_ws_reject_response(const cg_ws_handshake_t *hs, char *buf, size_t cap);

/* ---------------------------------------------------------------- frames in */

typedef enum cg_ws_event_kind {
    CG_WS_EV_DATA = 1, /* a piece of a text or binary message */
    CG_WS_EV_PING,
    CG_WS_EV_PONG,
    CG_WS_EV_CLOSE,
} cg_ws_event_kind_t;

/* The header of the frame an event comes from (RFC 6455 5.2). */
typedef struct cg_ws_frame {
    bool fin;
    bool rsv1;
    uint8_t opcode; /* as on the wire: CONT for a continuation frame */
    uint64_t length;
} cg_ws_frame_t;

typedef struct cg_ws_event {
    cg_ws_event_kind_t kind;
    cg_ws_frame_t frame;
    /* DATA: the message's opcode (TEXT or BINARY, also for its continuation
     * frames), whether this is its first and its last piece, and whether it
     * is compressed (RSV1 on its first frame, RFC 7692 6.1). */
    uint8_t opcode;
    bool first;
    bool fin;
    bool compressed;
    /* The payload (piece), unmasked in place: a view into the caller's buffer
     * inside the bytes this call consumed. Use it before reusing them. */
    char *data;
    size_t len;
    /* CLOSE: the status code (CG_WS_CLOSE_NO_STATUS when the frame had none)
     * and the reason (valid UTF-8, a view inside `data`). */
    uint16_t close_code;
    cg_str_t close_reason;
} cg_ws_event_t;

typedef struct cg_ws_parser {
    /* settings, by cg_ws_parser_init() */
    uint64_t max_message; /* bytes of payload per message on the wire */
    bool rsv1_allowed;    /* permessage-deflate was negotiated */
    /* state between calls */
    bool in_frame;        /* a data frame's payload is being delivered */
    bool in_message;      /* a fragmented message awaits its continuation */
    bool msg_compressed;
    uint8_t msg_opcode;
    uint64_t msg_bytes;   /* payload bytes of the message so far (headers seen) */
    cg_ws_frame_t frame;  /* the data frame being delivered */
    uint64_t remaining;   /* its payload bytes not yet delivered */
    uint8_t mask[4];
    uint8_t mask_pos;     /* offset of the next payload byte in the mask, 0..3 */
    /* after -EPROTO */
    uint16_t close_code;
    const char *error;
} cg_ws_parser_t;

/* Start a parser for one connection. `max_message` bounds the payload of one
 * message (1009 beyond it); `rsv1_allowed` when permessage-deflate was
 * negotiated. */
void cg_ws_parser_init(cg_ws_parser_t *p, uint64_t max_message, bool rsv1_allowed);

/*
 * Parse client frames from buf[0..len) (RFC 6455 5.2, server side: frames
 * must be masked). Control frames are delivered whole (the buffer must be
 * able to hold CG_WS_MAX_CONTROL_FRAME bytes); a data frame's payload is
 * delivered in pieces, as much as is in the buffer.
 *
 * Returns  > 0   bytes consumed (a header and/or payload); *ev describes them.
 *          CG_EAGAIN  nothing consumed: a header, a control frame, or the
 *                 first payload byte of a non-empty data frame is not all there.
 *          -EPROTO    the client broke the protocol: p->close_code (1002, 1007
 *                 for a close reason that is not UTF-8, 1009 for a message over
 *                 max_message) and p->error. The parser must not be used again.
 * Unmasks the consumed payload in place. After a CLOSE event the caller stops
 * feeding (RFC 6455 5.5.1: nothing follows a close frame).
 */
ssize_t cg_ws_parse(cg_ws_parser_t *p, char *buf, size_t len, cg_ws_event_t *ev);

/*
 * Judge a close frame's payload (RFC 6455 5.5.1, 7.4): empty (no code: *code
 * = 1005), or a 2-byte code a peer may send (1000-1003, 1007-1014, 3000-4999)
 * then a UTF-8 reason. Returns 0, or -EPROTO with *code set to the close code
 * to fail with: 1002 for a 1-byte payload or an invalid code, 1007 for a reason
 * that is not UTF-8.
 */
int cg_ws_close_parse(const char *p, size_t n, uint16_t *code, cg_str_t *reason);

/* ---------------------------------------------------------------- frames out */

/*
 * A server frame's header (RFC 6455 5.2: unmasked, the shortest length form)
 * into out; returns its length, 2..10. For a message in pieces, the first
 * frame has the message's opcode and the rest CG_WS_OP_CONT, all but the last
 * with fin false; RSV1 marks a compressed message's first frame only.
 */
size_t cg_ws_frame_header(uint8_t out[10], uint8_t opcode, bool fin, bool rsv1, uint64_t len);

/*
 * A whole message as frames into buf[0..cap): one frame, or frames of at most
 * `fragment` payload bytes each when fragment > 0. Returns the length, -ENOBUFS
 * if cap is too small, -EINVAL for CG_WS_OP_CONT or an unknown opcode, or a
 * control frame with more than 125 bytes, fragmented or with RSV1 (RFC 6455
 * 5.5, RFC 7692 6.1).
 */
ssize_t cg_ws_frame_write(uint8_t opcode, bool rsv1, const void *payload, size_t len,
                          size_t fragment, char *buf, size_t cap);

/*
 * A close frame with `code` and `reason` (RFC 6455 5.5.1); code 0 writes an
 * empty close frame (no code, no reason). Returns the length, -ENOBUFS, or
 * -EINVAL for a code a server may not send (1005, 1006, 1015, outside
 * 1000-4999, unassigned 1004 and 1016-2999), a reason over 123 bytes or not UTF-8.
 */
ssize_t cg_ws_close_write(uint16_t code, const char *reason, size_t reason_len, char *buf,
                          size_t cap);

/* ---------------------------------------------------------------- permessage-deflate */

/* The server's permessage-deflate policy (RFC 7692 7.1.1-7.1.2). */
typedef struct cg_ws_pmd_config {
    bool server_no_context_takeover;      /* always answer it */
    bool client_no_context_takeover;      /* always answer it */
    uint8_t server_max_window_bits;       /* 8..15 cap on ours, or 0: as the client asks */
    uint8_t client_max_window_bits;       /* 8..15 cap on the client's, or 0: none */
    bool require_client_max_window_bits;  /* refuse offers that cannot take the cap */
    int level;                            /* zlib level, -1 (default) .. 9 */
    int mem_level;                        /* zlib memLevel, 1..9 */
} cg_ws_pmd_config_t;

/* The defaults of Python's websockets server: windows of 12 bits both ways
 * and memLevel 5 (32 KiB of zlib state per direction instead of ~300). */
void cg_ws_pmd_config_default(cg_ws_pmd_config_t *cfg);

/*
 * Pick the answer to the client's permessage-deflate offers (RFC 7692 5, 7.1)
 * in the Sec-WebSocket-Extensions values `ext[0..n)`: the first offer whose
 * parameters are all known, not repeated and well-formed is accepted, with
 * the answer Python's websockets server gives for it under `cfg`; other
 * extensions are ignored.
 *
 * Returns 1 with *out filled when an offer was accepted, 0 when none was (no
 * compression), -EPROTO when a header value is not valid RFC 6455 9.1 syntax
 * (answer 400, as websockets does).
 */
int cg_ws_pmd_negotiate(const cg_ws_pmd_config_t *cfg, const cg_str_t *ext, size_t n,
                        cg_ws_pmd_params_t *out);

/* The Sec-WebSocket-Extensions value for `params` into buf[0..cap); returns
 * the length or -ENOBUFS. */
ssize_t cg_ws_pmd_format(const cg_ws_pmd_params_t *params, char *buf, size_t cap);

/* A growable byte buffer, owned by whoever holds it: free with cg_ws_buf_free. */
typedef struct cg_ws_buf {
    char *data;
    size_t len, cap;
} cg_ws_buf_t;

void cg_ws_buf_free(cg_ws_buf_t *b);

/* Make room for `want` more bytes: the capacity grows geometrically but never
 * past `limit` bytes in all (the caller checked len + want <= limit). Aborts
 * the worker when memory is exhausted (cg.h). */
void cg_ws_buf_reserve(cg_ws_buf_t *b, size_t want, size_t limit);

/* One connection's compressor and decompressor (zlib streams). */
typedef struct cg_ws_pmd cg_ws_pmd_t;

/*
 * Allocate the deflate state for the negotiated `params` (the zlib streams
 * themselves are set up when first used). Returns 0 with *out set (free with
 * cg_ws_pmd_free), -ENOMEM.
 */
int cg_ws_pmd_new(const cg_ws_pmd_params_t *params, int level, int mem_level, cg_ws_pmd_t **out);
void cg_ws_pmd_free(cg_ws_pmd_t *z);

/*
 * Compress one whole message (RFC 7692 7.2.1): deflate with a sync flush,
 * the trailing 00 00 ff ff removed, appended to `out` (grown as needed; the
 * application's own message, so no limit). Send it with RSV1 on the first
 * frame. The window is reset after each message under
 * server_no_context_takeover.
 *
 * Returns 0, -ENOTSUP when the client limited our window to 8 bits, which
 * zlib cannot produce for raw deflate: send that message uncompressed (RSV1
 * clear, allowed by RFC 7692 6.1), -ENOMEM or -EIO from zlib.
 */
int cg_ws_deflate_message(cg_ws_pmd_t *z, const void *in, size_t n, cg_ws_buf_t *out);

/*
 * Decompress a piece of a compressed message's payload (RFC 7692 7.2.2),
 * appending to `out` without letting out->len exceed `max` (checked before
 * growing, so a deflate bomb costs at most `max` bytes). `fin` for the
 * message's last piece: the 00 00 ff ff tail is added, and the window is reset
 * under client_no_context_takeover.
 *
 * Returns 0, -EMSGSIZE when the message inflates past `max` (close 1009),
 * -EPROTO for data that is not valid deflate (close 1007), -ENOMEM.
 */
int cg_ws_inflate_feed(cg_ws_pmd_t *z, const void *in, size_t n, bool fin, cg_ws_buf_t *out,
                       size_t max);

/* ---------------------------------------------------------------- messages */

/* Puts the DATA events of cg_ws_parse() together into whole messages. */
typedef struct cg_ws_assembler {
    size_t max_message;  /* bytes of one message, after decompression */
    cg_ws_pmd_t *pmd;    /* borrowed; NULL without permessage-deflate */
    cg_ws_buf_t msg;     /* owned: the message being assembled */
    uint8_t opcode;      /* TEXT or BINARY, once the first piece came */
    uint32_t utf8;       /* validator state for TEXT */
    bool in_message;     /* a message is being put together */
    uint16_t close_code; /* after -EPROTO */
    const char *error;
} cg_ws_assembler_t;

void cg_ws_assembler_init(cg_ws_assembler_t *a, size_t max_message, cg_ws_pmd_t *pmd);

/*
 * Add one DATA event. Text is checked as UTF-8 as it arrives, so an invalid
 * byte fails the connection at once, not at the end of a long message.
 *
 * Returns 1 when the message is complete: a->opcode, a->msg.data, a->msg.len
 * (valid until the next feed; the next feed starts a new message), 0 when more
 * pieces are needed, -EPROTO with a->close_code 1007 (text not UTF-8, data
 * that does not inflate) or 1009 (over max_message) and a->error, -ENOMEM or
 * -EIO from zlib, -EINVAL for an event out of order (not DATA, a first piece
 * inside a message or a later one outside) or compressed without a pmd.
 * When text is both invalid and too long, the first fault in the text wins,
 * so the verdict does not depend on how the frames were cut into reads.
 */
int cg_ws_assembler_feed(cg_ws_assembler_t *a, const cg_ws_event_t *ev);

/* Free the message buffer (the pmd is the caller's). */
void cg_ws_assembler_free(cg_ws_assembler_t *a);

#endif
