/*
 * h2.h - HTTP/2 (RFC 9113) on a worker connection, plain C over nghttp2's
 * callbacks API. No Python, no event loop: the worker feeds the bytes it
 * reads (cg_h2_session_feed / _on_readable), lets the session write what
 * nghttp2 has to send (cg_h2_session_send), and serves the streams the
 * session hands it (hooks.dispatch).
 *
 * Each stream is served through a cg_conn_t "view" (cg_h2_stream_conn), so
 * the WSGI layer runs an HTTP/2 request exactly as an HTTP/1.1 one:
 *  - its head is the stream's HEADERS rewritten as an HTTP/1.1 head
 *    (request line from :method/:path, Host from :authority, cookies
 *    joined) and parsed by the same parser, limits and refusals as on
 *    HTTP/1.1; then it says HTTP/2.0;
 *  - its transport's recv reads the stream's DATA (the request body), and
 *    every byte handed to the app re-opens the peer's window by as much
 *    (no automatic WINDOW_UPDATE: a fast uploader is bounded by what the
 *    app reads);
 *  - its transport's writev takes the response the WSGI layer writes: the
 *    head in HTTP/1.1 syntax (status line and fields, which become a
 *    HEADERS frame, 1xx ones as informational HEADERS) and then the body,
 *    unframed (cg_conn_t.framed turns chunked coding off), which goes to a
 *    per-stream spool (memory, then a temporary file) that nghttp2's data
 *    provider drains as the peer's window allows. A slow reader therefore
 *    holds spool space, not the thread running the app (the same idea as
 *    the gthread write-behind spool for HTTP/1.1).
 * That way every writer of a response (the WSGI response, error pages,
 * refusal pages, early hints, 100-continue) works unchanged.
 *
 * Threads. nghttp2 is not thread-safe: every nghttp2 call happens on the
 * thread that owns the session (the worker's loop). A stream's view is used
 * by one other thread (the app's) at a time; what it does there only moves
 * bytes under the session's mutex and asks the owner to come back
 * (hooks.wake), where cg_h2_session_sync() makes the nghttp2 calls.
 *
 * Memory: allocation failure aborts the worker (cg_xmalloc), as elsewhere.
 */
#ifndef CG_H2_H
#define CG_H2_H

#include "../config/config.h"
#include "../log/log.h"
#include "../workers/conn.h"

/* The client connection preface (RFC 9113 section 3.4) that starts h2c
 * with prior knowledge. */
#define CG_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define CG_H2_PREFACE_LEN 24

/* h2c with prior knowledge: 1 when the `len` bytes at p start with the
 * client preface, 0 when they may (more bytes needed), -1 when not. */
int cg_h2_preface_match(const char *p, size_t len);

typedef struct cg_h2_config {
    uint32_t max_concurrent_streams; /* http2_max_concurrent_streams */
    uint32_t initial_window_size;    /* http2_initial_window_size (<= 2^31-1) */
    uint32_t max_frame_size;         /* http2_max_frame_size */
    uint32_t max_header_list_size;   /* http2_max_header_list_size */
    /* More RST_STREAM frames than this within one second is the rapid
     * reset attack (CVE-2023-44487): GOAWAY ENHANCE_YOUR_CALM. */
    uint32_t max_resets_per_sec;
    const char *tmp_dir; /* response spools past memory (worker_tmp_dir) */
    /* Hand a stream over as soon as its head is parsed. Off (gthread): a
     * stream waits for its body or a full window, so a slow uploader costs
     * no thread. On (asgi, where a stream costs no thread): the app may
     * answer while the body still comes (bidirectional streaming). */
    bool dispatch_at_head;
} cg_h2_config_t;

/* From Gunicorn's http2_* settings, clamped to what RFC 9113 allows. */
void cg_h2_config_init(cg_h2_config_t *hc, const cg_config_t *cfg);

/* Whether `proto` (http_protocols) lists h2. */
bool cg_h2_wanted(const cg_config_t *cfg);

typedef struct cg_h2_session cg_h2_session_t;
typedef struct cg_h2_stream cg_h2_stream_t;

typedef struct cg_h2_hooks {
    /* Owner thread, from inside feed/sync: a request is ready to run on
     * its view; the owner hands it to a thread, which calls
     * cg_h2_stream_served() when done. */
    void (*dispatch)(void *owner, cg_h2_stream_t *st);
    /* Any thread: the session has work for its owner's thread; the owner
     * must call cg_h2_session_sync(s) there (which drops the reference
     * taken for this call). Called once until that sync runs. */
    void (*wake)(void *wake_ctx, cg_h2_session_t *s);
    void *wake_ctx;
} cg_h2_hooks_t;

/*
 * A server session on `conn` (an accepted connection whose transport is
 * set up; borrowed, must outlive the session's cg_h2_session_close), with
 * our SETTINGS queued. Streams copy the peer data (address, listener,
 * TLS, trust) from conn. `pol` and `log` are borrowed for the session's
 * life. Returns 0 and *out, or -ENOMEM / -EINVAL (logged).
 */
int cg_h2_session_new(cg_h2_session_t **out, const cg_h2_config_t *hc, const cg_conn_policy_t *pol,
                      cg_log_t *log, cg_conn_t *conn, void *owner, const cg_h2_hooks_t *hooks);

/* Bytes the peer sent (the preface first). 0, or -EPROTO when the session
 * is over (a GOAWAY is queued: send it, then close). */
int cg_h2_session_feed(cg_h2_session_t *s, const uint8_t *data, size_t len);

/* Read what the connection has (never waiting; TLS's pending bytes too)
 * and feed it. 0 when it must wait for more, -EPIPE on the peer's EOF,
 * -EPROTO (send, then close) or another -errno (close). */
int cg_h2_session_on_readable(cg_h2_session_t *s);

/* Write what nghttp2 has queued, never waiting: 0 when all is out,
 * CG_EAGAIN when the socket is full (call again once writable), -errno. */
int cg_h2_session_send(cg_h2_session_t *s);

/* Owner thread, after hooks.wake: apply what app threads did (response
 * heads and bytes, ends, body bytes read) and drop the wake's reference.
 * Returns false when the session was closed meanwhile (nothing to send). */
bool cg_h2_session_sync(cg_h2_session_t *s);

/*
 * HTTP/1.1 Upgrade to h2c (RFC 7540 section 3.2): whether a parsed request
 * asks for it and may have it: HTTP/1.1, no body, "Upgrade: h2c",
 * "Connection" naming Upgrade and HTTP2-Settings, one HTTP2-Settings
 * field (*settings: its value, a view into req's buffer).
 */
bool cg_h2_upgrade_wanted(const cg_http_request_t *req, cg_str_t *settings);

/*
 * Make `head` (the request that asked for the upgrade, HTTP/1.1 text of
 * head_len bytes) stream 1 of a fresh session, as nghttp2_session_upgrade2
 * does, with the client's settings from `settings` (base64url). The caller
 * has answered 101; the stream runs like any other. 0, or -EPROTO when
 * the settings do not decode (then answer 400 and stay HTTP/1.1: nothing
 * was sent on the session yet; close it).
 */
int cg_h2_session_upgrade(cg_h2_session_t *s, const char *head, size_t head_len, bool head_request,
                          cg_str_t settings);

/* Graceful stop (RFC 9113 section 6.8): GOAWAY with the last stream id
 * accepted; open streams finish. Idempotent. */
void cg_h2_session_goaway(cg_h2_session_t *s);

/* Nothing more to read or write: the connection can close. */
bool cg_h2_session_finished(const cg_h2_session_t *s);

/* Streams open (received, in the app, or still sending). */
size_t cg_h2_session_streams(const cg_h2_session_t *s);
/* The owner given to cg_h2_session_new (valid while the session is not
 * closed: after cg_h2_session_sync() returned true). */
void *cg_h2_session_owner(const cg_h2_session_t *s);
/* Streams an app thread holds right now. */
size_t cg_h2_session_running(const cg_h2_session_t *s);

/* Owner thread: the connection is gone. Streams an app thread still holds
 * see their I/O fail and are freed by cg_h2_stream_served(); the session
 * is freed with the last of them. */
void cg_h2_session_close(cg_h2_session_t *s);

/* The view the WSGI layer serves (cg_wsgi_handle). */
cg_conn_t *cg_h2_stream_conn(cg_h2_stream_t *st);

/* For an owner that serves a stream on its own thread (an event loop that
 * never waits on the view): what a read or a write on the view would meet
 * now. Any thread; takes the session's mutex. */
typedef struct cg_h2_stream_state {
    bool reset;         /* the stream or its connection is gone: reads and writes fail */
    bool readable;      /* body bytes, or the body's end, wait to be read */
    size_t out_pending; /* response bytes the peer has not taken yet */
} cg_h2_stream_state_t;
void cg_h2_stream_state(cg_h2_stream_t *st, cg_h2_stream_state_t *out);

/* App thread, once cg_wsgi_handle returned rc (0: a complete response was
 * written; < 0: reset the stream). The stream is not to be touched after. */
void cg_h2_stream_served(cg_h2_stream_t *st, int rc);

#endif
