/*
 * http.h - HTTP/1.1 request parsing, body framing and response heads, in plain C.
 *
 * No Python, no allocation per request or per header: the parser returns views
 * (cg_str_t) into the caller's read buffer, which it may modify in place (header
 * names are upper-cased, a casefolded method is upper-cased, obs-fold lines are
 * joined when permitted). Strict RFC 9112 plus Gunicorn's rules, limits and
 * strictness settings; every failure is a cg_http_error_t that maps to
 * Gunicorn's exception name, status, reason and message.
 */
#ifndef CG_HTTP_H
#define CG_HTTP_H

#include "../cg.h"

#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* RFC 9110 section 5.6.2 tchar: ASCII letters, digits and !#$%&'*+-.^_`|~.
 * A bitmap of the 128 ASCII codes: the parser and the response-header check
 * run it on every byte of every header name. */
static inline bool cg_http_is_tchar(unsigned char c)
{
    static const uint32_t map[4] = {0x00000000u, 0x03ff6cfau, 0xc7fffffeu, 0x57ffffffu};
    return c < 128 && ((map[c >> 5] >> (c & 31)) & 1u) != 0;
}

/* ---------------------------------------------------------------- errors */

/*
 * X(ENUM, "GunicornExceptionName", status, "Reason Phrase")
 * The status/reason are what Gunicorn's handle_error() answers (see
 * gunicorn-workers.md section 2.4); framing errors found while the application
 * reads the body have status 0: the connection is closed with no response.
 */
#define CG_HTTP_ERRORS(X)                                                                       \
    X(NO_MORE_DATA, "NoMoreData", 0, "")                                                        \
    X(INVALID_REQUEST_LINE, "InvalidRequestLine", 400, "Bad Request")                           \
    X(INVALID_REQUEST_METHOD, "InvalidRequestMethod", 400, "Bad Request")                       \
    X(INVALID_HTTP_VERSION, "InvalidHTTPVersion", 400, "Bad Request")                           \
    X(INVALID_HEADER, "InvalidHeader", 400, "Bad Request")                                      \
    X(INVALID_HEADER_NAME, "InvalidHeaderName", 400, "Bad Request")                             \
    X(OBSOLETE_FOLDING, "ObsoleteFolding", 400, "Bad Request")                                  \
    X(LIMIT_REQUEST_LINE, "LimitRequestLine", 414, "URI Too Long")                              \
    X(LIMIT_REQUEST_HEADERS, "LimitRequestHeaders", 431, "Request Header Fields Too Large")     \
    X(INVALID_SCHEME_HEADERS, "InvalidSchemeHeaders", 400, "Bad Request")                       \
    X(INVALID_PROXY_LINE, "InvalidProxyLine", 400, "Bad Request")                               \
    X(INVALID_PROXY_HEADER, "InvalidProxyHeader", 500, "Internal Server Error")                 \
    X(FORBIDDEN_PROXY_REQUEST, "ForbiddenProxyRequest", 403, "Forbidden")                       \
    X(EXPECTATION_FAILED, "ExpectationFailed", 417, "Expectation Failed")                       \
    X(UNSUPPORTED_TRANSFER_CODING, "UnsupportedTransferCoding", 501, "Bad Request")             \
    X(CONFIGURATION_PROBLEM, "ConfigurationProblem", 500, "Bad Request")                        \
    X(INVALID_CHUNK_SIZE, "InvalidChunkSize", 400, "Bad Request")                               \
    X(CHUNK_MISSING_TERMINATOR, "ChunkMissingTerminator", 400, "Bad Request")                   \
    X(INVALID_CHUNK_EXTENSION, "InvalidChunkExtension", 400, "Bad Request")                     \
    /* --protocol uwsgi. Gunicorn's worker answers these with its generic      \
     * 500 (they are not in handle_error's list); we answer the status each    \
     * of its exceptions carries (docs/compatibility.md) */                    \
    X(INVALID_UWSGI_HEADER, "InvalidUWSGIHeader", 400, "Bad Request")                           \
    X(UNSUPPORTED_UWSGI_MODIFIER, "UnsupportedModifier", 501, "Not Implemented")                \
    X(FORBIDDEN_UWSGI_REQUEST, "ForbiddenUWSGIRequest", 403, "Forbidden")

typedef enum cg_http_errcode {
    CG_HTTP_E_NONE = 0,
#define CG__HTTP_ERR_ENUM(e, name, status, reason) CG_HTTP_E_##e,
    CG_HTTP_ERRORS(CG__HTTP_ERR_ENUM)
#undef CG__HTTP_ERR_ENUM
        CG_HTTP_E__COUNT
} cg_http_errcode_t;

/*
 * Details of one error. `arg` views the offending bytes (usually inside the
 * read buffer: valid until that buffer is reused); `lit` is used instead when
 * the argument is a fixed text (e.g. "CONTENT-LENGTH", "max buffer headers");
 * n1/n2 carry numbers (LimitRequestLine: actual, limit).
 */
typedef struct cg_http_error {
    cg_http_errcode_t code;
    cg_str_t arg;
    const char *lit;
    size_t n1, n2;
    cg_str_t arg2; /* ConfigurationProblem: the SCRIPT_NAME (arg is the path) */
} cg_http_error_t;

/* Gunicorn's exception name, status (0: no response) and reason phrase. */
const char *cg_http_error_name(cg_http_errcode_t code);
int cg_http_error_status(cg_http_errcode_t code);
const char *cg_http_error_reason(cg_http_errcode_t code);

/*
 * str(exc) of the Gunicorn exception, as logged in
 * "Invalid request from ip=<addr>: <text>". Always NUL-terminates (truncates to
 * cap-1). Returns the length written.
 */
size_t cg_http_error_text(const cg_http_error_t *err, char *buf, size_t cap);

/*
 * The complete error response Gunicorn writes (util.write_error): HTTP/1.1
 * status line, Connection: close, Content-Type: text/html, Content-Length, and
 * the HTML page with the HTML-escaped message. Returns the length, or 0 if the
 * error has no response (status 0) or cap is too small.
 */
size_t cg_http_error_response(const cg_http_error_t *err, char *buf, size_t cap);

/*
 * util.write_error for any status: the same page around `mesg` (latin-1 text,
 * NUL-terminated, HTML-escaped here; "" for the 500 page). Returns the length,
 * or 0 if cap is too small.
 */
size_t cg_http_error_page(int status, const char *reason, const char *mesg, char *buf,
                          size_t cap);

/* ---------------------------------------------------------------- parser */

typedef enum cg_http_header_map {
    CG_HTTP_HEADER_MAP_DROP = 0,
    CG_HTTP_HEADER_MAP_REFUSE,
    CG_HTTP_HEADER_MAP_DANGEROUS,
} cg_http_header_map_t;

/* Parser settings, filled once per worker from the configuration. */
typedef struct cg_http_settings {
    size_t limit_request_line;       /* effective: 0 = unlimited, clamped to 8190 */
    size_t limit_request_fields;     /* effective: <=0 or >32768 -> 32768 */
    size_t limit_request_field_size; /* effective: 0 -> 8190 */
    bool permit_unconventional_http_method;
    bool permit_unconventional_http_version;
    bool casefold_http_method;
    bool permit_obsolete_folding;
    bool strip_header_spaces;
    cg_http_header_map_t header_map;
    /* Underscore headers a trusted peer may send; upper-case, '-' kept as is. */
    const char *const *forwarder_headers;
    size_t nforwarder_headers;
    bool forwarder_headers_all; /* "*" */
    /* secure_scheme_headers: upper-case names and the values meaning https. */
    const char *const *secure_scheme_names;
    const char *const *secure_scheme_values;
    size_t nsecure_scheme;
} cg_http_settings_t;

/*
 * Fill `s` from Gunicorn's raw setting values, applying Gunicorn's clamping.
 * The string arrays are borrowed from the caller and must outlive `s`.
 */
void cg_http_settings_init(cg_http_settings_t *s, long limit_request_line,
                           long limit_request_fields, long limit_request_field_size);

#define CG_HTTP_HF_DROPPED 0x1u /* underscore header dropped by header_map=drop / untrusted */

typedef struct cg_http_header {
    cg_str_t name;  /* upper-cased in place, as Gunicorn reports it */
    cg_str_t value; /* leading/trailing SP and HTAB stripped */
    uint32_t flags; /* CG_HTTP_HF_* */
} cg_http_header_t;

typedef enum cg_http_body_kind {
    CG_HTTP_BODY_NONE = 0, /* no Content-Length nor Transfer-Encoding: empty body */
    CG_HTTP_BODY_LENGTH,
    CG_HTTP_BODY_CHUNKED,
} cg_http_body_kind_t;

typedef struct cg_http_request {
    cg_str_t method;
    cg_str_t uri;      /* raw request-target, exactly as on the request line */
    cg_str_t path;     /* urlsplit() semantics; absolute-form: path part only */
    cg_str_t query;    /* without '?'; ptr NULL when there is none */
    cg_str_t fragment; /* without '#'; ptr NULL when there is none */
    uint8_t version_major, version_minor;

    /* Caller-provided array of `headers_cap` entries (>= limit_request_fields). */
    cg_http_header_t *headers;
    size_t nheaders; /* entries used, dropped ones included (flagged) */
    size_t headers_cap;

    cg_http_body_kind_t body_kind;
    uint64_t content_length; /* for CG_HTTP_BODY_LENGTH */
    bool expect_continue;    /* Expect: 100-continue on HTTP/1.1+ */
    bool keep_alive;         /* the request's own wish (Gunicorn's not should_close()) */
    bool force_close;        /* compress/deflate/gzip transfer coding */
    bool connection_upgrade;
    int scheme_https;        /* -1: no trusted scheme header; 0: http; 1: https */
    cg_str_t script_name;    /* trusted SCRIPT_NAME header value, ptr NULL if none */

    size_t head_len; /* bytes of the request head including the final CRLF CRLF */
    cg_http_error_t error;
} cg_http_request_t;

/* Incremental state across calls for one request head. Zero it (or call
 * cg_http_parser_reset) before each new request. */
typedef struct cg_http_parser {
    size_t skipped;  /* bytes of empty lines (CRLF) before the request line */
    size_t scanned;  /* bytes after those already searched for the end of the head */
    size_t line_end; /* 0, or offset (after the empty lines) past the request line's CRLF */
} cg_http_parser_t;

static inline void cg_http_parser_reset(cg_http_parser_t *p)
{
    p->skipped = 0;
    p->scanned = 0;
    p->line_end = 0;
}

/*
 * Parse the request head in buf[0..len). Incremental: call again with the same
 * buffer start and more bytes after CG_EAGAIN; any split of the input gives the
 * same result. `peer_trusted` says whether the peer is in forwarded_allow_ips
 * (or a unix socket), which decides scheme and forwarder headers.
 *
 * Empty lines (CRLF) before the request line are skipped (RFC 9112 2.2), up to
 * limit_request_line bytes (8190 when unlimited), then LimitRequestLine; they
 * count in head_len, so the caller consumes them with the head.
 *
 * Returns:  > 0  the head is complete and valid; value = head_len; `req` filled.
 *           CG_EAGAIN  more bytes are needed (limits were checked on what is there).
 *           -EPROTO    invalid request; req->error says why.
 * `req->headers`/`headers_cap` must be set by the caller; other fields are reset.
 */
ssize_t cg_http_parse_request(const cg_http_settings_t *s, cg_http_parser_t *p, char *buf,
                              size_t len, bool peer_trusted, cg_http_request_t *req);

/* ---------------------------------------------------------------- uwsgi */

/* A caller-owned growable buffer for what a uwsgi request needs written out
 * (its request line); free(buf) when the connection goes. */
typedef struct cg_uwsgi_scratch {
    char *buf;
    size_t cap;
} cg_uwsgi_scratch_t;

/*
 * Parse one uwsgi packet header and vars block (--protocol uwsgi) in
 * buf[0..len) into `req`, as the HTTP parser fills it (views into buf,
 * header names rewritten in place; the request line in `scratch`). The body
 * follows the vars: CONTENT_LENGTH bytes.
 * Returns > 0 (the packet's length, = req->head_len), CG_EAGAIN, or -EPROTO
 * with req->error (InvalidUWSGIHeader 400, UnsupportedModifier 501).
 */
ssize_t cg_uwsgi_parse(char *buf, size_t len, cg_uwsgi_scratch_t *scratch, cg_http_request_t *req);

/* uwsgi_allow_ips: the peer's address text is one of `allow` (exactly, as
 * Gunicorn compares) or `allow` has "*"; a unix socket (peer_ip "") is
 * always allowed. */
bool cg_uwsgi_allowed(const char *peer_ip, const char *const *allow, size_t nallow);

/* ---------------------------------------------------------------- body */

/*
 * Incremental chunked decoder (RFC 9112 section 7.1 plus Gunicorn's rules).
 * Decodes in place: data bytes are moved to the front of the buffer.
 */
typedef struct cg_http_chunked {
    int state;
    uint64_t chunk_left;
    size_t line_len;    /* bytes of the current size/trailer line seen */
    size_t trailer_len; /* bytes of trailer section seen, for the limit */
    bool done;
    /* Optional, set by the caller after init: where the trailer fields go.
     * Views into the decoded buffer (valid until it is compacted/reused). */
    cg_http_header_t *trailers;
    size_t ntrailers, trailers_cap;
    size_t out_max; /* if non-zero: stop once a call has produced this many bytes */
} cg_http_chunked_t;

void cg_http_chunked_init(cg_http_chunked_t *d);

/*
 * The error an EOF means in the decoder's current state, given the `rest`
 * bytes left unconsumed (Gunicorn: NoMoreData inside a size line or chunk
 * data, ChunkMissingTerminator after chunk data or inside the trailers).
 * Fills err and returns -EPROTO; returns 0 if the body was complete.
 */
int cg_http_chunked_eof(const cg_http_chunked_t *d, const char *rest, size_t restlen,
                        cg_http_error_t *err);

/*
 * Parse a trailer section (the bytes between the last-chunk line and the
 * final CRLF CRLF, without it) with the header rules plus the names forbidden
 * in trailers (RFC 9110 section 6.5.1). Names are upper-cased in place. Up to
 * `cap` fields (dropped ones flagged) are stored in out (may be NULL), *n gets
 * the number stored. Returns 0 or -EPROTO (err filled).
 */
int cg_http_parse_trailers(const cg_http_settings_t *s, char *buf, size_t len,
                           cg_http_header_t *out, size_t cap, size_t *n, cg_http_error_t *err);

/*
 * Decode buf[0..*len). On return buf[0..*out) holds decoded body bytes, *len is
 * set to the number of input bytes consumed (any rest, e.g. a pipelined next
 * request after the final CRLF, is left in place after them and must be
 * kept by the caller). Returns 0 (need more input or made progress), 1 when the
 * body is complete (last chunk and trailers read), -EPROTO on a framing error
 * (err filled: InvalidChunkSize, ChunkMissingTerminator, InvalidChunkExtension,
 * or a trailer error).
 */
int cg_http_chunked_decode(const cg_http_settings_t *s, cg_http_chunked_t *d, char *buf,
                           size_t *len, size_t *out, cg_http_error_t *err);

/* ---------------------------------------------------------------- scanning */

/* Offset of the first CRLF in p[0..n), or n when there is none. */
static inline size_t cg_http_find_crlf(const char *p, size_t n)
{
    const char *q = p, *end = p + n;
    while (q < end) {
        q = memchr(q, '\r', (size_t)(end - q));
        if (!q || q + 1 >= end)
            return n;
        if (q[1] == '\n')
            return (size_t)(q - p);
        q++;
    }
    return n;
}

/* Offset of the first CRLF CRLF in p[0..n), or n when there is none. */
static inline size_t cg_http_find_crlfcrlf(const char *p, size_t n)
{
    const char *q = p, *end = p + n;
    while (q + 4 <= end) {
        q = memchr(q, '\r', (size_t)(end - q));
        if (!q || q + 4 > end)
            return n;
        if (q[1] == '\n' && q[2] == '\r' && q[3] == '\n')
            return (size_t)(q - p);
        q++;
    }
    return n;
}

/* Reads up to cap bytes from the transport: > 0 bytes, 0 EOF, < 0 -errno. */
typedef ssize_t (*cg_http_recv_fn)(void *ctx, char *dst, size_t cap);

/*
 * A connection's read buffer: bytes [off, len) are received but not consumed.
 * Shared by the parser (head), the body reader and the next request on the
 * connection (pipelining).
 */
typedef struct cg_http_buf {
    char *data;
    size_t off, len, cap;
    /* Bytes [0, keep) are pinned (the current request head, whose views the
     * access log still needs): the body reader never moves or reuses them. */
    size_t keep;
} cg_http_buf_t;

/* Body reader for one request; pulls from the connection buffer first. */
typedef struct cg_http_body {
    cg_http_body_kind_t kind;
    uint64_t remaining; /* LENGTH: bytes still to deliver */
    cg_http_chunked_t chunked;
    const cg_http_settings_t *settings;
    cg_http_buf_t *buf;
    cg_http_recv_fn recv;
    void *recv_ctx;
    bool done;
    cg_http_error_t error; /* set when cg_http_body_read returned -EPROTO */
    bool truncated;        /* LENGTH: the peer closed before the whole body came */
} cg_http_body_t;

void cg_http_body_init(cg_http_body_t *b, const cg_http_request_t *req,
                       const cg_http_settings_t *s, cg_http_buf_t *buf, cg_http_recv_fn recv,
                       void *recv_ctx);

/*
 * Read up to cap decoded body bytes into dst. Returns > 0 bytes, 0 at the end
 * of the body, -EPROTO on a framing error (b->error), -ECONNRESET/-EPIPE/...
 * from the transport, or CG_EAGAIN when a non-blocking transport has nothing.
 * An EOF before a Content-Length body is complete ends the body early (returns
 * 0 and sets b->truncated), as Gunicorn's LengthReader hands the app a short
 * body; an EOF inside a chunked body returns -EPROTO with Gunicorn's error
 * (NoMoreData inside a size line or chunk data, ChunkMissingTerminator after
 * chunk data or in the trailers). Never reads from the transport past the end
 * of this request's Content-Length body; for chunked bodies, bytes after the
 * final CRLF stay in the buffer.
 */
ssize_t cg_http_body_read(cg_http_body_t *b, char *dst, size_t cap);

/* ---------------------------------------------------------------- PROXY protocol */

typedef enum cg_http_proxy_mode {
    CG_HTTP_PROXY_OFF = 0,
    CG_HTTP_PROXY_V1,
    CG_HTTP_PROXY_V2,
    CG_HTTP_PROXY_AUTO,
} cg_http_proxy_mode_t;

typedef struct cg_http_proxy {
    const char *protocol;  /* "TCP4", "TCP6", "LOCAL" or "UNSPEC" (static strings) */
    char client_addr[46];  /* "" for LOCAL/UNSPEC */
    char proxy_addr[46];
    int client_port;       /* -1 for LOCAL/UNSPEC */
    int proxy_port;
} cg_http_proxy_t;

/*
 * Detect and parse a PROXY protocol v1/v2 header at the start of a
 * connection's first bytes (Gunicorn reads until it has 12 bytes to decide).
 * `peer_allowed`: the peer is in proxy_allow_ips (or a unix socket); when a
 * header is present but the peer is not allowed, ForbiddenProxyRequest is
 * returned with an empty arg: the caller points err->arg at the peer's IP text.
 * Returns the header length (> 0) to skip, 0 when no PROXY header is present
 * (or mode is off), CG_EAGAIN when more bytes are needed, -EPROTO on an invalid
 * header (InvalidProxyLine for v1, InvalidProxyHeader for v2). v1 lines longer
 * than 536 bytes are refused (Gunicorn has no limit).
 */
ssize_t cg_http_parse_proxy(cg_http_proxy_mode_t mode, const char *buf, size_t len,
                            bool peer_allowed, cg_http_proxy_t *out, cg_http_error_t *err);

/* ---------------------------------------------------------------- URIs */

/*
 * urllib.parse.unquote_to_bytes(): "%XX" with two hex digits becomes that
 * byte, anything else stays as is. Writes at most `len` bytes to out (which
 * may be `in` itself) and returns how many.
 */
size_t cg_http_unquote(const char *in, size_t len, char *out);

/* ---------------------------------------------------------------- response */

/* "Sun, 06 Nov 1994 08:49:37 GMT" for `t`; buf needs 30 bytes. */
void cg_http_date(time_t t, char buf[30]);

/* The Date header value for now, formatted once per second into `c`
 * (zero it first). Returns c's buffer. */
typedef struct cg_http_date_cache {
    char buf[30];
    time_t t;
} cg_http_date_cache_t;
const char *cg_http_date_now(cg_http_date_cache_t *c);

#endif
