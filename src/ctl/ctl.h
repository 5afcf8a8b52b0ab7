/*
 * ctl.h - Gunicorn's control socket (25.1+), in plain C: the protocol's
 * framing, a small strict JSON reader and writer, the request decoding, and
 * a unix socket server that lives in the master's poll loop.
 *
 * The protocol (Gunicorn's gunicorn/ctl/protocol.py): every message is a
 * 4-byte big-endian length and that many bytes of UTF-8 JSON. A request is
 * {"id": N, "command": "show", "args": ["workers"]}; the answer is
 * {"id": N, "status": "ok", "data": {...}} or
 * {"id": N, "status": "error", "error": "message"}. A connection carries any
 * number of requests, one answer each, in order.
 *
 * Nothing here knows the arbiter: src/arbiter/ctl.c runs the commands. No
 * function here aborts on a lack of memory (the input comes from clients and
 * this runs in the master): allocations are checked and fail with -ENOMEM.
 */
#ifndef CG_CTL_H
#define CG_CTL_H

#include "../cg.h"
#include "../log/log.h"

#include <poll.h>

/* ---- JSON reader (json.c) ------------------------------------------------
 *
 * RFC 8259, strictly: no NaN/Infinity, no trailing commas, no comments, no
 * BOM, valid UTF-8 and paired \u surrogates only, nothing after the value
 * but whitespace. The parser is allocation-free: it fills an array of tokens
 * the caller owns, each a view into the input (jsmn's shape), so a request
 * is decoded without copying it.
 */
typedef enum cg_json_type {
    CG_JSON_OBJECT = 1,
    CG_JSON_ARRAY,
    CG_JSON_STRING,
    CG_JSON_NUMBER,
    CG_JSON_TRUE,
    CG_JSON_FALSE,
    CG_JSON_NULL,
} cg_json_type_t;

#define CG_JSON_MAX_DEPTH 32

typedef struct cg_json_tok {
    cg_json_type_t type;
    uint32_t start, end; /* the text [start, end); a string's without its quotes */
    uint32_t size;       /* an object's members, an array's elements, else 0 */
    uint32_t next;       /* index of the first token after this value's subtree */
} cg_json_tok_t;

/*
 * Parse s[0..len) into toks (an object's members are a key token, a string,
 * followed by the value's tokens). Returns the token count (toks[0] is the
 * top value), -EINVAL when the text is not one JSON value or nests deeper
 * than CG_JSON_MAX_DEPTH, -E2BIG when it needs more than cap tokens.
 */
int cg_json_parse(const char *s, size_t len, cg_json_tok_t *toks, size_t cap);

/* The value of member `key` of the object at toks[obj], or -1 when absent.
 * The last one wins when a key repeats, as Python's json.loads decides. */
int cg_json_get(const char *s, const cg_json_tok_t *toks, int obj, const char *key);

/* Decode the string token t (escapes resolved) into out, NUL-terminated.
 * Returns its length, or -ENOSPC when it needs more than cap - 1 bytes. The
 * result is never longer than the token's text. */
ssize_t cg_json_unescape(const char *s, const cg_json_tok_t *t, char *out, size_t cap);

/* ---- JSON writer (json.c) ------------------------------------------------
 *
 * Writes what Python's json.dumps() writes with its defaults: ", " and ": "
 * separators, ensure_ascii (every byte outside space..'~' escaped, non-ASCII
 * as \uXXXX). Grows its buffer with realloc; a failure (or passing max)
 * marks it failed and later calls do nothing.
 */
typedef struct cg_json_out {
    char *buf;
    size_t len, cap, max;
    bool failed;
    bool after_key;
    unsigned depth;
    bool more[CG_JSON_MAX_DEPTH + 1]; /* a value was written at this depth */
} cg_json_out_t;

/* Start empty with `reserve` leading bytes kept for the caller (the frame's
 * length prefix); the text may grow to max bytes. */
void cg_json_out_init(cg_json_out_t *o, size_t reserve, size_t max);
void cg_json_out_free(cg_json_out_t *o);
void cg_json_obj_begin(cg_json_out_t *o);
void cg_json_obj_end(cg_json_out_t *o);
void cg_json_arr_begin(cg_json_out_t *o);
void cg_json_arr_end(cg_json_out_t *o);
void cg_json_key(cg_json_out_t *o, const char *key);
void cg_json_str(cg_json_out_t *o, const char *s);
void cg_json_strn(cg_json_out_t *o, const char *s, size_t n);
void cg_json_int(cg_json_out_t *o, long long v);
/* Python's repr(round(v, 2)) for the values we report (seconds) */
void cg_json_round2(cg_json_out_t *o, double v);
void cg_json_bool(cg_json_out_t *o, bool v);
void cg_json_null(cg_json_out_t *o);
/* A value that is already JSON text (an echoed request id, a nested answer). */
void cg_json_raw(cg_json_out_t *o, const char *s, size_t n);

/* ---- framing and requests (request.c) ----------------------------------- */

/* Gunicorn refuses a message longer than 16 MiB; we refuse more than a
 * request can need, so a client cannot make the master hold 16 MiB for it. */
#define CG_CTL_MAX_REQUEST (64 * 1024)
#define CG_CTL_MAX_WORDS 32
#define CG_CTL_MAX_TOKENS 512
/* an answer's largest size (show config with a long bind list stays far below) */
#define CG_CTL_MAX_ANSWER (1024 * 1024)

/*
 * One frame at the start of buf[0..len)? Returns the payload's length (the
 * payload starts at buf + 4), CG_EAGAIN while the prefix or the payload is
 * incomplete, or -EMSGSIZE when the prefix announces more than max (then
 * *announced holds the length, for the error message).
 */
ssize_t cg_ctl_frame(const char *buf, size_t len, size_t max, uint32_t *announced);

typedef struct cg_ctl_request {
    cg_str_t id;                      /* the request's "id" as JSON text ("0" when absent) */
    char *word[CG_CTL_MAX_WORDS];     /* shlex.split(command) + str(arg) for each arg */
    size_t nwords;
    char *store;                      /* owns the words */
} cg_ctl_request_t;

/* What cg_ctl_request_parse found, besides a request to run (0). */
#define CG_CTL_ANSWER_ERROR 1 /* answer err to this request; the connection goes on */

/*
 * Decode one request payload as Gunicorn's ControlSocketServer._dispatch
 * does: "command" split as shlex.split() splits (POSIX quotes and
 * backslashes), then every element of "args" appended as Python's str()
 * writes it (true -> "True", null -> "None"). Returns 0 with the words set,
 * CG_CTL_ANSWER_ERROR with Gunicorn's message in err ("Empty command",
 * "Invalid argument: No closing quotation"), -EPROTO when the payload is no
 * request at all (not JSON, not an object, a command that is not a string:
 * answer err and close), or -ENOMEM. r->id is a view into payload. Free
 * with cg_ctl_request_free() whatever the result.
 */
int cg_ctl_request_parse(cg_ctl_request_t *r, const char *payload, size_t len, char *err,
                         size_t errlen);
void cg_ctl_request_free(cg_ctl_request_t *r);

/* Python's int() of a command argument ("  +1_000 " is 1000). 0, or -EINVAL
 * with "invalid literal for int() with base 10: '<text>'" in err, or
 * -ERANGE beyond long long. */
int cg_ctl_parse_int(const char *text, long long *out, char *err, size_t errlen);

/* A framed answer: {"id": id, "status": "ok", "data": <data>} where data
 * is JSON text, or {"id": id, "status": "error", "error": msg}. Returns a
 * malloc'd buffer of *outlen bytes, or NULL when out of memory. An empty
 * id view writes null (a frame that never became a request). */
char *cg_ctl_answer_ok(cg_str_t id, const char *data, size_t datalen, size_t *outlen);
char *cg_ctl_answer_error(cg_str_t id, const char *msg, size_t *outlen);

/* ---- the server (server.c) ----------------------------------------------
 *
 * A unix stream socket in the master's poll loop. Every socket is
 * non-blocking; at most CG_CTL_MAX_CONNS clients are served at once (a new
 * one takes the place of the one quiet the longest); a request must arrive
 * whole within CG_CTL_FRAME_MS of its first byte and its answer leave within
 * as long; a client with nothing in flight is closed after Gunicorn's 300 s.
 * A frame announcing more than CG_CTL_MAX_REQUEST is answered with an error
 * and the connection closed.
 */
#define CG_CTL_MAX_CONNS 16
#define CG_CTL_MAX_FDS (CG_CTL_MAX_CONNS + 1)
#define CG_CTL_FRAME_MS 10000
#define CG_CTL_IDLE_MS 300000

typedef struct cg_ctl_server cg_ctl_server_t;

/* Run one request (payload of len bytes); returns the framed answer
 * (malloc'd, *outlen bytes) or NULL (out of memory: the client is closed).
 * Set *close_after to close the connection once the answer is written. */
typedef char *(*cg_ctl_handle_cb)(void *ctx, const char *payload, size_t len, size_t *outlen,
                                  bool *close_after);

/*
 * Create the socket at path (absolute), as Gunicorn does: the missing
 * directories made (the last one 0700), a socket file already there replaced
 * (anything else there is an error), and `mode` given to the socket before
 * anyone can connect: it is bound under the umask that yields exactly that
 * mode, then chmod'ed as Gunicorn does. Returns 0 with *out set, or -errno
 * with a message in err.
 */
int cg_ctl_server_open(cg_ctl_server_t **out, const char *path, unsigned mode, cg_log_t *log,
                       char *err, size_t errlen);
const char *cg_ctl_server_path(const cg_ctl_server_t *s);
unsigned cg_ctl_server_mode(const cg_ctl_server_t *s);
/* Whether path still names the socket we bound (a USR2 child that bound the
 * same path replaced it). */
bool cg_ctl_server_owns_path(const cg_ctl_server_t *s);

/* Fill up to cap pollfds (CG_CTL_MAX_FDS at most) with what the server
 * waits for; returns how many. */
size_t cg_ctl_server_pollfds(const cg_ctl_server_t *s, struct pollfd *p, size_t cap);
/* After poll: accept, read, answer, write, and close clients past their
 * deadline. Bounded work per call whatever the clients send. */
void cg_ctl_server_serve(cg_ctl_server_t *s, const struct pollfd *p, size_t n, uint64_t now_ms,
                         cg_ctl_handle_cb handle, void *ctx);
/* Close everything and free (NULL is fine). With unlink_path, remove the
 * socket file if it is still ours. A forked worker passes false. */
void cg_ctl_server_close(cg_ctl_server_t *s, bool unlink_path);

#endif
