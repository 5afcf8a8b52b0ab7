/*
 * h2_internal.h - what session.c and stream.c share; not for other parts.
 */
#ifndef CG_H2_INTERNAL_H
#define CG_H2_INTERNAL_H

#include "h2.h"

#include "../workers/spool.h"

#include <nghttp2/nghttp2.h>
#include <pthread.h>

/* A response's bytes the peer has not taken yet: memory, then a temporary
 * file, as the HTTP/1.1 write-behind spool (gthread.c). */
#define CG_H2_OUT_MEM (256u * 1024)
#define CG_H2_OUT_MAX (64u << 20)
/* The app's bytes go to the spool in pieces of at most this much, so that
 * a write larger than the room left takes what fits, and a writer waits
 * only until a piece fits again. */
#define CG_H2_OUT_PIECE (64u * 1024)
/* The largest response head (HTTP/1.1 text) a stream takes. */
#define CG_H2_HEAD_MAX (1u << 20)

/* A response head (or a 1xx one) turned into HTTP/2 fields, waiting for
 * the owner thread to submit it. One allocation: the nv array, then the
 * bytes its entries point to. */
typedef struct cg_h2_head {
    struct cg_h2_head *next;
    int status;
    size_t nnv;
    nghttp2_nv *nv;
} cg_h2_head_t;

struct cg_h2_stream {
    cg_conn_t c; /* the view the app is served through */
    cg_h2_session_t *s;
    int32_t id;

    /* ---- owner thread only ---- */
    bool nghttp2_open; /* nghttp2 has it (user data set, not closed) */
    bool parsed;       /* the request head parsed: it will be (or is) served */
    bool ready;        /* queued for, or handed to, a thread */
    bool queued_out;   /* left the dispatch queue */
    bool in_app;       /* a thread holds c (until its served is synced) */
    bool submitted;    /* the final response HEADERS went to nghttp2 */
    bool served_seen;  /* the owner took note of served */
    bool remote_ended; /* the peer's END_STREAM came */
    bool too_large;    /* the header list passed max_header_list_size */
    uint64_t hsize;    /* header list size so far (RFC 9113 6.5.2) */
    /* the request head being rebuilt as HTTP/1.1 text in c.buf */
    char *method, *path, *authority; /* pseudo-header values (copies) */
    size_t method_len, path_len, authority_len;
    char *cookie;      /* cookie fields, joined with "; " (RFC 9113 8.2.3) */
    size_t cookie_len;
    bool line_done;    /* the request line and Host are in c.buf */
    cg_h2_stream_t *qnext;                /* dispatch queue */
    cg_h2_stream_t *all_next, *all_prev;  /* every stream of the session */

    /* ---- shared with the app thread, under s->mu ---- */
    pthread_cond_t cv; /* body bytes came, spool room, reset */
    bool dirty;        /* on s->dirty */
    cg_h2_stream_t *dirty_next;
    char *in; /* request body bytes not read yet: [in_off, in_len) */
    size_t in_off, in_len, in_cap;
    bool in_eof;     /* no more body bytes will come */
    size_t consumed; /* read by the app, not yet given back as window */
    bool reset;      /* the stream or connection is gone: I/O fails */
    bool deferred;   /* the data provider waits for bytes */
    /* the response, as the app thread writes it */
    bool head_done;  /* the final head parsed: bytes now are body */
    char *rh;        /* head bytes not parsed yet */
    size_t rhlen, rhcap;
    cg_h2_head_t *heads, *heads_tail;
    cg_h2_head_t *trailers; /* sent after the body (gunicorn.http2.send_trailers) */
    cg_spool_t out;
    bool out_end; /* the response is complete */
    bool served;  /* cg_h2_stream_served() was called */
    int rc;
};

struct cg_h2_session {
    nghttp2_session *ns;
    cg_h2_config_t cfg;
    const cg_conn_policy_t *pol;
    cg_log_t *log;
    cg_conn_t *conn;
    void *owner;
    cg_h2_hooks_t hooks;

    /* owner thread */
    cg_h2_stream_t *all;
    size_t nstreams;
    cg_h2_stream_t *qhead, *qtail;
    uint32_t napp;
    uint64_t reset_window;
    uint32_t resets;
    const char *calm; /* why we end the session with ENHANCE_YOUR_CALM */
    bool failed;
    bool goaway;
    uint8_t *wbuf; /* frames gathered for one write */
    size_t wlen;
    const uint8_t *pend; /* the rest of nghttp2's last chunk */
    size_t pend_len;

    /* shared, under mu */
    pthread_mutex_t mu;
    int refs;
    bool dead;
    bool wake_pending;
    cg_h2_stream_t *dirty;
};

/* s->mu held: put st on the dirty list. Returns true when the caller must
 * call cg_h2__wake(s) once it has released s->mu (the hook takes the
 * owner's lock, never under ours). */
bool cg_h2__stream_post(cg_h2_stream_t *st);
/* Without s->mu, after a post that said so: hand s to the owner. The
 * reference taken for it keeps s alive through the call; the caller must
 * not touch s (nor, when done serving it, its stream) afterwards. */
void cg_h2__wake(cg_h2_session_t *s);

/* stream.c: the view */
void cg_h2__stream_view_init(cg_h2_stream_t *st, const cg_conn_t *parent,
                             const cg_conn_policy_t *pol);
void cg_h2__stream_view_release(cg_h2_stream_t *st);
/* One request field (pseudo or regular), validated by nghttp2. */
void cg_h2__head_field(cg_h2_stream_t *st, const char *name, size_t namelen, const char *value,
                       size_t valuelen);
/* The block ended: parse the rebuilt head. 1, or -1 when refused (the
 * refusal page is queued on the stream). */
int cg_h2__head_parse(cg_h2_stream_t *st, bool end_stream);
/* An HTTP/1.1 head as the stream's (h2c Upgrade), then cg_h2__head_run. */
void cg_h2__head_text(cg_h2_stream_t *st, const char *text, size_t len);
/* Parse the head in st->c.buf and ready the body reader: as
 * cg_h2__head_parse. */
int cg_h2__head_run(cg_h2_stream_t *st, bool end_stream);

#endif
