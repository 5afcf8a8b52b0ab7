/*
 * gthread.c - the gthread worker. The loop thread owns every connection while
 * it waits for or reads a request head: non-blocking reads, the incremental
 * parser, a timer per connection (keep-alive wait, head deadline, lingering
 * close). A slow or idle client therefore costs a connection slot and never a
 * thread. A complete head goes to a pool thread, which takes the GIL only for
 * the app and does the body and response I/O itself on the (still
 * non-blocking) socket with poll(2) waits, so a slow reader blocks only its
 * own request. With threads == 1 the app runs inline on the loop thread: no
 * queue, no hand-off.
 *
 * With a pool on plain (non-TLS) listeners the pool threads accept too, and
 * the loop does not watch the listeners: an idle thread waits in its own
 * epoll on the listeners (EPOLLEXCLUSIVE: a connection wakes one idle
 * thread) and an eventfd the loop writes when it queues work for it; it
 * accepts, reads the head TCP_DEFER_ACCEPT brought along, runs the app and,
 * for a `Connection: close` request, sends and closes without the loop (the
 * hand-off loop -> pool -> loop cost a futex wake and a context switch or
 * two per request). Whatever must wait goes to the loop as the loop would
 * have it (cg__take_done, CG_GT_HAND_*): a head not all in, a body to read
 * ahead, an h2c preface or upgrade, a connection kept alive, a response the
 * client did not take. nconns is shared (atomic) so --worker-connections,
 * the balance table and the graceful stop count the threads' connections.
 *
 * Every idle thread waits on the listeners, not one at a time: with
 * hello-world requests a connection arriving while a thread serves wakes
 * another that the first would have served a few microseconds later (0.27
 * context switches per request against sync's 0.06). Keeping one thread on
 * the listeners and adding one only when those serving were stuck for a
 * 1 ms tick (tried 2026-12-07) cut the switches to 0.1 but gave no CPU
 * difference that 7 rounds could show, and cost an app that waits 50 us per
 * request two thirds of its throughput; judging "stuck" by the process's
 * CPU share instead still cost a 20 us wait a fifth.
 */
#include "gthread.h"

#include "spool.h"

#include "../h2/h2.h"
#include "../metrics/statsd.h"
#include "../tls/tls.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* Gunicorn's finish_body(): an unread body is drained up to this much and
 * this long before the connection is reused; more and it is closed. */
#define CG_DRAIN_MAX 65536
#define CG_DRAIN_MS 5000
/* Gunicorn 26 waits this long for the first bytes of a new connection before
 * parking it for `keepalive` more seconds. */
#define CG_FIRST_DATA_MS 5000

/*
 * A Content-Length body up to this size is read on the loop, with the head's
 * deadline, before the app sees the request (nginx buffers bodies in front of
 * Gunicorn for the same reason): a client that stops half-way through a form
 * post then holds a connection slot, never a thread, nor with --threads 1 the
 * loop. Larger bodies are streamed to wsgi.input as they come.
 */
#define CG_PREBUF_MAX 65536
/*
 * Larger bodies are read on the loop too, into a spool (memory up to
 * CG_SPOOL_MEM, then an unlinked temporary file), up to CG_SPOOL_BODY_MAX
 * before the app runs; only what lies beyond that streams to wsgi.input
 * while the app waits. And what the app writes while the client is not
 * reading goes to a spool as well (up to CG_SPOOL_OUT_MAX on disk; file
 * ranges from wsgi.file_wrapper by reference), which the loop sends on. So
 * a client stalling half-way through an upload, or reading slowly, costs a
 * connection slot and never the thread running the app: with --threads 1
 * the other clients go on being served.
 */
#define CG_SPOOL_MEM (256u * 1024)
#define CG_SPOOL_BODY_MAX (16u << 20)
#define CG_SPOOL_OUT_MAX (64u << 20)
/* A connection's buffer to begin with, and what it shrinks back to once
 * it has grown beyond CG_CONN_BUF_SHRINK: a usual head plus the room
 * cg_conn_begin_body() wants after it, so that it is not reallocated (and
 * copied) for every request. */
#define CG_CONN_BUF_INITIAL (4096 + CG_CONN_BODY_ROOM)
#define CG_CONN_BUF_SHRINK 65536
/* Closed connections kept for the next ones, with their buffers: with
 * `Connection: close` every request is a new connection, and allocating,
 * zeroing and freeing its ~26 KiB (struct, buffer, header array) cost more
 * than parsing the request, and made the heap's top grow and shrink (brk,
 * page faults). */
#define CG_GT_SPARE_MAX 64

/* HANDSHAKE: the TLS handshake of a new connection, on the loop; HEAD:
 * reading a request head; BODY: reading a small body into the buffer
 * before dispatch (CG_PREBUF_MAX); SPOOL: reading a larger one into the
 * spool; BUSY: in a pool thread; FLUSH: sending what the response left in
 * the spool; LINGER: closing; H2: an HTTP/2 connection (src/h2/), whose
 * streams go to the pool one by one while the loop reads and writes its
 * frames. */
typedef enum {
    CG_GT_H2,
    CG_GT_HANDSHAKE,
    CG_GT_HEAD,
    CG_GT_BODY,
    CG_GT_SPOOL,
    CG_GT_BUSY,
    CG_GT_FLUSH,
    CG_GT_LINGER
} cg_gt_state_t;

typedef struct cg_gt cg_gt_t;

typedef struct cg_gt_conn {
    cg_conn_t c;
    cg_gt_t *gt;
    uv_poll_t poll;
    uv_timer_t timer;
    struct cg_gt_conn *next; /* pool queues */
    cg_gt_state_t state;
    int open_handles;  /* libuv handles initialised: 0 until cg__watch() */
    uint64_t nreq;
    bool watched;      /* poll and timer are libuv handles now */
    bool closing;      /* cg__conn_close() was called */
    bool polling;
    bool head_started; /* bytes of the current head have arrived */
    bool keepalived;   /* idle after a keep-alive response (counted in gt->nkeep) */
    bool keep;         /* result of serving: reuse the connection */
    bool request_done; /* result: request fully read, nothing beyond it */
    size_t lingered;
    bool body_begun;   /* SPOOL started the body reader of the current request */
    size_t body_end;   /* BODY: buffer length at which the body is all in */
    uint64_t deadline; /* loop time (ms) when the timer closes it; 0 none */
    cg_spool_t in;     /* request body read ahead of the app */
    cg_spool_t out;    /* response bytes the client has not taken yet */
    cg_h2_session_t *h2; /* H2: the session (owned) */
    int h2_events;       /* H2: what the poll watches */
    bool h2_feeding;     /* H2: inside nghttp2's receive (no sending now) */
    uint8_t hand;        /* what the loop does with it from the done queue (CG_GT_HAND_*) */
} cg_gt_conn_t;

/* A connection a pool thread hands to the loop: AFTER, it was served
 * (cg__after); WAIT, its head is not all in yet; PARSED, its head is
 * complete but it needs the loop (a body to read ahead, an h2c upgrade);
 * REFUSED, its head was refused and the error page is out (linger). */
enum { CG_GT_HAND_AFTER, CG_GT_HAND_WAIT, CG_GT_HAND_PARSED, CG_GT_HAND_REFUSED };

/* An HTTP/2 stream waiting for a pool thread. */
typedef struct cg_gt_h2job {
    struct cg_gt_h2job *next;
    cg_h2_stream_t *st;
} cg_gt_h2job_t;

typedef struct cg_gt_thread {
    cg_gt_t *gt;
    pthread_t tid;
    bool started;
    bool turn; /* alternates between HTTP/1.1 requests and HTTP/2 streams */
    cg_wsgi_t ws;
    /* Idle, it waits in epoll_wait on epfd: the listeners (thread accept,
     * EPOLLEXCLUSIVE: a new connection wakes one idle thread) and evfd,
     * which the loop writes when it queues work for it or the pool stops. */
    int epfd, evfd;
    bool idle; /* in g->idle, under g->mu */
    struct cg_gt_thread *idle_next;
    size_t next_l;           /* the listener it tries first */
    cg_balance_gate_t gate;  /* its own run of refusals (balance.h) */
    struct cg_gt_conn *spare; /* a connection struct kept for its next accept */
} cg_gt_thread_t;

struct cg_gt {
    cg_worker_t *w;
    cg_wsgi_t *ws;
    uv_loop_t loop;
    uv_poll_t *lpolls;
    size_t nl;
    bool accepting;
    /* even load (balance.h): above its share the worker stops watching the
     * listeners and looks again after CG_GT_GATE_MS */
    uv_timer_t gate;
    uint64_t gate_first, gate_last; /* loop ms of this run of refusals; 0 none */
    uint64_t gate_others;           /* the others' connections at gate_first */
    uv_poll_t wake;
    uv_timer_t tick;
    uv_timer_t stats; /* sends batched statsd metrics when due */
    uv_async_t async;

    cg_conn_policy_t pol;

    /* nconns: every thread's (atomic: pool threads accept too); nkeep:
     * the loop's, read by the threads */
    size_t nconns, nkeep, max_conns, max_keep;
    uint64_t keepalive_ms, first_ms, head_ms;
    bool stopping; /* written by the loop, read by the pool (atomic) */
    bool closing_all; /* teardown: closing every handle */
    uint64_t stop_deadline;

    /* threads == 1: the request runs on the loop thread, so the loop's tick
     * cannot beat the heartbeat meanwhile; this thread does (see
     * cg__inline_watch). */
    bool inline_busy;
    pthread_t watch_tid;
    bool watch_started, watch_quit;
    uint64_t beat_ms;

    /* HTTP/2: ALPN may choose it (TLS); h2c with prior knowledge, by the
     * HTTP/1.1 Upgrade, or both (http2_cleartext) */
    bool h2_tls, h2c, h2c_upgrade;
    cg_h2_config_t h2cfg;

    /* pool (threads > 1, or HTTP/2 on: a stream must never run on the
     * loop that feeds it its body and drains its response) */
    bool pool;
    int nthreads;
    cg_gt_thread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    cg_gt_conn_t *batch_head, *batch_tail; /* loop thread only */
    size_t nbatch;
    uv_check_t check;
    cg_gt_conn_t *todo_head, *todo_tail;
    cg_gt_conn_t *done_head, *done_tail;
    cg_gt_h2job_t *h2batch_head, *h2batch_tail; /* loop thread only */
    cg_gt_h2job_t *h2todo_head, *h2todo_tail;
    /* sessions whose streams' threads left work for the loop */
    cg_h2_session_t **h2ready;
    size_t nh2ready, h2ready_cap;
    bool pool_quit;
    cg_wsgi_orphans_t orphans; /* gunicorn.socket objects of closed connections */
    cg_gt_conn_t *spare;       /* loop thread only: freed connections to reuse */
    size_t nspare;
    int nready, nfailed;
    size_t nbusy; /* atomic */
    /* Pool threads accept from the (plain) listeners themselves, read the
     * head and run the app, so a `Connection: close` exchange never
     * touches the loop; the loop does not watch the listeners then. */
    bool thr_accept;
    bool accept_on;       /* under mu: the loop is up, threads may accept */
    cg_gt_thread_t *idle; /* threads waiting in epoll_wait, under mu */
};

static size_t cg__nconns(const cg_gt_t *g)
{
    return __atomic_load_n(&g->nconns, __ATOMIC_SEQ_CST);
}

static bool cg__stopping(const cg_gt_t *g)
{
    return __atomic_load_n(&g->stopping, __ATOMIC_SEQ_CST);
}

/* Wake one idle pool thread (under g->mu). False when none is idle: the
 * queued work waits for the next thread to finish its request. */
static bool cg__wake_one(cg_gt_t *g)
{
    cg_gt_thread_t *t = g->idle;
    if (t == NULL)
        return false;
    g->idle = t->idle_next;
    t->idle = false;
    uint64_t one = 1;
    /* EAGAIN only with the counter near overflow: it is readable then */
    (void)!write(t->evfd, &one, sizeof(one));
    return true;
}

static void cg__wake_all(cg_gt_t *g)
{
    while (cg__wake_one(g))
        ;
}

/* A request is about to be served, on any thread: count it (w->nr is
 * shared by the loop and the pool threads), past max_requests stop. */
static void cg__count_request(cg_gt_t *g)
{
    cg_worker_t *w = g->w;
    uint64_t nr = __atomic_add_fetch(&w->nr, 1, __ATOMIC_RELAXED);
    if (nr >= w->max_requests && w->alive) {
        cg_log_info(w->log, "Autorestarting worker after current request.");
        w->alive = 0;
    }
}

/* The pool's queues are singly linked lists with a tail, of connections
 * and of HTTP/2 stream jobs: appending a node, and moving a whole list to
 * the end of another. */
#define CG__QPUSH(head, tail, node)                                                                \
    do {                                                                                           \
        (node)->next = NULL;                                                                       \
        if ((tail) != NULL)                                                                        \
            (tail)->next = (node);                                                                 \
        else                                                                                       \
            (head) = (node);                                                                       \
        (tail) = (node);                                                                           \
    } while (0)
#define CG__QSPLICE(head, tail, from_head, from_tail)                                              \
    do {                                                                                           \
        if ((from_head) != NULL) {                                                                 \
            if ((tail) != NULL)                                                                    \
                (tail)->next = (from_head);                                                        \
            else                                                                                   \
                (head) = (from_head);                                                              \
            (tail) = (from_tail);                                                                  \
            (from_head) = (from_tail) = NULL;                                                      \
        }                                                                                          \
    } while (0)

/* ---- connection life on the loop ---- */

/* This worker's row in the shared load table: its connections, and whether
 * it takes new ones now (not while stopping, nor while its only thread runs
 * the app: the others must not wait for it then). */
static void cg__balance_publish(cg_gt_t *g)
{
    cg_balance_publish(g->w->balance, g->w->balance_slot,
                       !cg__stopping(g) && !__atomic_load_n(&g->inline_busy, __ATOMIC_RELAXED),
                       (uint32_t)cg__nconns(g));
}

static void cg__listen_start(cg_gt_t *g);
static void cg__listen_stop(cg_gt_t *g);
static void cg__process(cg_gt_conn_t *gc);
static void cg__on_poll(uv_poll_t *p, int status, int events);
static void cg__read_step(cg_gt_conn_t *gc);
static void cg__handshake_step(cg_gt_conn_t *gc);
static void cg__take_done(cg_gt_t *g);

/* ASan (cg.h): a spare connection, struct and buffers, is unaddressable
 * from when it is put aside (on) until it is taken (off). */
static void cg__spare_poison(const cg_gt_t *g, cg_gt_conn_t *gc, bool on)
{
#ifdef CG_ASAN /* elsewhere not even the table's size is worth a call */
    size_t nh = cg_conn_headers_cap(&g->pol) * sizeof(*gc->c.req.headers);
    if (on) {
        CG_POISON(gc->c.buf.data, CG_CONN_BUF_INITIAL);
        CG_POISON(gc->c.req.headers, nh);
        CG_POISON(gc, sizeof(*gc));
    } else {
        CG_UNPOISON(gc, sizeof(*gc));
        CG_UNPOISON(gc->c.buf.data, CG_CONN_BUF_INITIAL);
        CG_UNPOISON(gc->c.req.headers, nh);
    }
#else
    CG_UNUSED(g);
    CG_UNUSED(gc);
    CG_UNUSED(on);
#endif
}

/* Release a closed connection: its socket, buffers and the struct. */
static void cg__conn_free(cg_gt_conn_t *gc)
{
    cg_gt_t *g = gc->gt;
    if (gc->h2 != NULL) {
        cg_h2_session_close(gc->h2); /* streams in the app see a reset */
        gc->h2 = NULL;
    }
    if (gc->c.app_sock != NULL) {
        /* Its gunicorn.socket holds a duplicate of the descriptor, so the
         * close below alone would not end the connection: FIN now. */
        (void)gc->c.ops->shutdown(&gc->c);
        /* Releasing it needs the GIL. Inline, the loop thread owns the one
         * WSGI context and does it now; with a pool, an idle thread does
         * (or the next one to take a request). */
        if (!g->pool) {
            cg_wsgi_orphans_add(&g->ws->orphans, &gc->c);
            cg_wsgi_release_orphans(g->ws);
        } else {
            pthread_mutex_lock(&g->mu);
            cg_wsgi_orphans_add(&g->orphans, &gc->c);
            (void)cg__wake_one(g);
            pthread_mutex_unlock(&g->mu);
        }
    }
    gc->c.ops->close(&gc->c);
    cg_spool_clear(&gc->in);
    cg_spool_clear(&gc->out);
    cg_conn_t *c = &gc->c;
    char *buf = c->buf.data;
    cg_http_header_t *headers = c->req.headers;
    size_t headers_cap = c->req.headers_cap;
    bool keep = !g->closing_all && g->nspare < CG_GT_SPARE_MAX && buf != NULL &&
                c->buf.cap == CG_CONN_BUF_INITIAL && headers != NULL &&
                headers_cap == cg_conn_headers_cap(&g->pol);
    if (keep) /* what cg_conn_release() would free besides them */
        c->buf.data = NULL, c->req.headers = NULL;
    cg_conn_release(c);
    if (!keep) {
        free(gc);
        return;
    }
    /* only the buffers are carried over: cg__conn_get() clears the rest */
    c->buf.data = buf;
    c->req.headers = headers;
    gc->next = g->spare;
    g->spare = gc;
    g->nspare++;
    cg__spare_poison(g, gc, true);
}

/* A spare connection cleared for its next use, its buffers kept. */
static void cg__conn_reuse(cg_gt_t *g, cg_gt_conn_t *gc)
{
    char *buf = gc->c.buf.data;
    cg_http_header_t *headers = gc->c.req.headers;
    memset(gc, 0, sizeof(*gc));
    gc->c.fd = -1;
    cg_conn_adopt(&gc->c, &g->pol, buf, CG_CONN_BUF_INITIAL, headers);
}

/* A cleared connection, with its buffers allocated (a spare one if any). */
static cg_gt_conn_t *cg__conn_get(cg_gt_t *g)
{
    cg_gt_conn_t *gc = g->spare;
    if (gc == NULL) {
        gc = cg_xcalloc(1, sizeof(*gc));
        cg_conn_init(&gc->c, &g->pol, CG_CONN_BUF_INITIAL);
        return gc;
    }
    cg__spare_poison(g, gc, false);
    g->spare = gc->next;
    g->nspare--;
    cg__conn_reuse(g, gc);
    return gc;
}

/* Teardown: the spare connections' memory. */
static void cg__spare_free(cg_gt_t *g)
{
    while (g->spare != NULL) {
        cg_gt_conn_t *gc = g->spare;
        cg__spare_poison(g, gc, false);
        g->spare = gc->next;
        cg_conn_release(&gc->c);
        free(gc);
    }
    g->nspare = 0;
}

static void cg__conn_handle_closed(uv_handle_t *h)
{
    cg_gt_conn_t *gc = h->data;
    if (--gc->open_handles == 0)
        cg__conn_free(gc);
}

/* Forget the connection: plain close once libuv lets go of its handles.
 * One never watched is freed by whoever holds it (cg__settle() on the
 * loop) once the calls that still look at it have returned. */
static void cg__conn_close(cg_gt_conn_t *gc)
{
    cg_gt_t *g = gc->gt;
    if (gc->closing)
        return;
    gc->closing = true;
    if (gc->keepalived) {
        gc->keepalived = false;
        g->nkeep--;
    }
    if (gc->watched) {
        uv_close((uv_handle_t *)&gc->poll, cg__conn_handle_closed);
        if (gc->open_handles == 2)
            uv_close((uv_handle_t *)&gc->timer, cg__conn_handle_closed);
    }
    size_t n = __atomic_sub_fetch(&g->nconns, 1, __ATOMIC_SEQ_CST);
    cg_board_conns_open(g->pol.board, n);
    cg__balance_publish(g);
    if (g->closing_all)
        return;
    if (g->stopping) {
        if (n == 0)
            uv_stop(&g->loop);
    } else if (!g->accepting && n < g->max_conns) {
        cg__listen_start(g);
    }
}

static void cg__timer_set(cg_gt_conn_t *gc, uint64_t ms);
static void cg__on_timer(uv_timer_t *t);

/*
 * Make the connection's poll and timer libuv handles, arming a deadline
 * set meanwhile. Done only when the connection must wait for something:
 * a request that came with the connection and was answered at once (the
 * usual `Connection: close` exchange, served inline) never needs them,
 * which spares uv_poll_init's descriptor check (an ioctl and two
 * epoll_ctl calls), the epoll_ctl of its removal and two timer-heap
 * operations. 0, or a libuv error (logged): the caller closes.
 */
static int cg__watch(cg_gt_conn_t *gc)
{
    cg_gt_t *g = gc->gt;
    if (gc->watched)
        return 0;
    int r = uv_poll_init_socket(&g->loop, &gc->poll, gc->c.fd);
    if (r < 0) {
        cg_log_error(g->w->log, "Cannot watch a connection: %s", uv_strerror(r));
        return r;
    }
    gc->watched = true;
    gc->open_handles = 1;
    gc->poll.data = gc;
    r = uv_timer_init(&g->loop, &gc->timer);
    if (r < 0) {
        cg_log_error(g->w->log, "Cannot time a connection: %s", uv_strerror(r));
        return r;
    }
    gc->open_handles = 2;
    gc->timer.data = gc;
    if (gc->deadline != 0) {
        uint64_t now = uv_now(&g->loop);
        r = uv_timer_start(&gc->timer, cg__on_timer, gc->deadline > now ? gc->deadline - now : 0,
                           0);
        if (r < 0) {
            cg_log_error(g->w->log, "Cannot time a connection: %s", uv_strerror(r));
            return r;
        }
    }
    return 0;
}

/* Bytes the transport (TLS) holds decrypted: the socket's readiness does
 * not tell of them. */
static bool cg__transport_pending(cg_conn_t *c)
{
    return c->ops->pending != NULL && c->ops->pending(c) > 0;
}

/* Watch the socket for reading. 0, or a libuv error (logged): then the
 * caller closes the connection. */
static int cg__poll_start(cg_gt_conn_t *gc)
{
    if (!gc->polling) {
        int r = cg__watch(gc);
        if (r < 0)
            return r;
        r = uv_poll_start(&gc->poll, UV_READABLE, cg__on_poll);
        if (r < 0) {
            cg_log_error(gc->gt->w->log, "Cannot watch a connection: %s", uv_strerror(r));
            return r;
        }
        gc->polling = true;
    }
    return 0;
}

/* The socket is closed for writing with the client possibly still sending:
 * read and drop what comes (bounded) so our close cannot turn into an RST
 * that destroys the response in flight. On the loop, never blocking it. */
static void cg__conn_linger(cg_gt_conn_t *gc, bool request_done)
{
    if (request_done || gc->c.ops->shutdown(&gc->c) < 0) {
        cg__conn_close(gc);
        return;
    }
    gc->state = CG_GT_LINGER;
    gc->lingered = 0;
    if (gc->keepalived) {
        gc->keepalived = false;
        gc->gt->nkeep--;
    }
    if (cg__poll_start(gc) < 0) {
        cg__conn_close(gc);
        return;
    }
    cg__timer_set(gc, CG_CONN_LINGER_MS);
}

static void cg__on_timer(uv_timer_t *t)
{
    cg_gt_conn_t *gc = t->data;
    if (gc->deadline == 0)
        return; /* disarmed meanwhile */
    uint64_t now = uv_now(t->loop);
    if (now < gc->deadline) {
        int r = uv_timer_start(t, cg__on_timer, gc->deadline - now, 0);
        if (r == 0)
            return;
        cg_log_error(gc->gt->w->log, "Cannot time a connection: %s", uv_strerror(r));
    }
    if (gc->state == CG_GT_HEAD && gc->head_started)
        cg_log_debug(gc->gt->w->log, "Closing connection: request head not complete in time");
    else if (gc->state == CG_GT_HANDSHAKE)
        cg_log_debug(gc->gt->w->log, "Closing connection: TLS handshake not complete in time");
    else if (gc->state == CG_GT_BODY || gc->state == CG_GT_SPOOL)
        cg_log_debug(gc->gt->w->log, "Closing connection: request body not complete in time");
    else if (gc->state == CG_GT_FLUSH)
        cg_log_debug(gc->gt->w->log, "Closing connection: response not taken in time");
    else if (gc->state == CG_GT_H2 && cg_h2_session_running(gc->h2) > 0) {
        /* the app is still at work on a stream: its own I/O waits are
         * bounded; the connection waits for it */
        cg__timer_set(gc, gc->gt->head_ms);
        return;
    } else if (gc->state == CG_GT_H2)
        cg_log_debug(gc->gt->w->log, "Closing connection: HTTP/2 connection idle");
    cg__conn_close(gc);
}

/*
 * Arm the connection's deadline `ms` from now (0: none). Lazily: deadlines
 * move a little later with every request, so the libuv timer usually stays
 * as it is and, when it fires early, re-arms for what is left. Saves two
 * timer-heap operations per request.
 */
static void cg__timer_set(cg_gt_conn_t *gc, uint64_t ms)
{
    if (ms == 0) {
        gc->deadline = 0;
        return;
    }
    gc->deadline = uv_now(&gc->gt->loop) + ms;
    if (!gc->watched)
        return; /* cg__watch() arms it if the connection comes to wait */
    if (!uv_is_active((uv_handle_t *)&gc->timer) || uv_timer_get_due_in(&gc->timer) > ms) {
        int r = uv_timer_start(&gc->timer, cg__on_timer, ms, 0);
        if (r < 0) /* only a closing handle refuses: it is going away anyway */
            cg_log_debug(gc->gt->w->log, "Cannot time a connection: %s", uv_strerror(r));
    }
}

/*
 * Run one parsed request through the app, then settle what the connection
 * can do next. Any thread, without the GIL.
 */
static void cg__serve(cg_wsgi_t *ws, cg_gt_conn_t *gc)
{
    cg_conn_t *c = &gc->c;
    cg_spool_attach(&gc->out, c);
    int rc = cg_wsgi_handle(ws, c);
    bool keep = rc == 0 && c->keep_alive;
    if (keep && c->body.done && !cg_conn_body_done(c)) {
        /* the rest was read ahead of the app: nothing on the socket to
         * skip, the spooled bytes just go */
        cg_spool_clear(&gc->in);
    }
    if (keep && !cg_conn_body_done(c))
        cg_conn_skip_body(c, CG_DRAIN_MAX, CG_DRAIN_MS); /* what the app left unread */
    cg_spool_detach(&gc->out, c);
    bool done = cg_conn_body_done(c) && !c->body.truncated;
    gc->request_done = done && c->buf.off == c->buf.len;
    gc->keep = keep && done;
}

static void cg__stats_arm(cg_gt_t *g);

static void cg__on_stats(uv_timer_t *t)
{
    cg__stats_arm(t->data);
}

/* Requests add their metrics to the worker's batch from any thread; the
 * loop sends them once due, so a lone request's metrics do not wait for
 * the next one. Called on the loop thread after each request (and by the
 * timer itself): sends what is due, then sets the timer for the rest. */
static void cg__stats_arm(cg_gt_t *g)
{
    cg_statsd_batch_t *b = g->w->statsd_batch;
    if (b == NULL || g->closing_all || uv_is_active((uv_handle_t *)&g->stats))
        return;
    long due = cg_statsd_batch_flush_due(b, cg_monotonic_us());
    if (due < 0)
        return;
    int r = uv_timer_start(&g->stats, cg__on_stats, (uint64_t)due, 0);
    if (r < 0) {
        /* cannot happen on an initialised timer; the exit flush remains */
        cg_log_error(g->w->log, "Cannot start the statsd timer: %s", uv_strerror(r));
    }
}

/*
 * Back on the loop after a request: close, linger, or get ready for the next
 * request. Returns true when pipelined bytes are already buffered and
 * cg__process() should parse them now.
 */
static bool cg__after(cg_gt_conn_t *gc)
{
    cg_gt_t *g = gc->gt;
    cg_conn_t *c = &gc->c;
    cg__stats_arm(g);
    if (cg_spool_pending(&gc->out) > 0) {
        /* the client has not taken the whole response yet: the loop sends
         * the rest as it reads, then comes back here */
        int r = cg__watch(gc);
        if (r < 0 || (r = uv_poll_start(&gc->poll, UV_WRITABLE, cg__on_poll)) < 0) {
            cg_log_error(g->w->log, "Cannot watch a connection: %s", uv_strerror(r));
            cg__conn_close(gc);
            return false;
        }
        gc->polling = true;
        gc->state = CG_GT_FLUSH;
        cg__timer_set(gc, (uint64_t)c->io_timeout_ms);
        return false;
    }
    if (gc->out.seg != NULL || gc->out.tmp_fd >= 0)
        cg_spool_clear(&gc->out);
    if (gc->in.seg != NULL || gc->in.tmp_fd >= 0)
        cg_spool_clear(&gc->in);
    gc->nreq++;
    c->has_proxy = false; /* gthread: PROXY data belongs to the first request only */
    gc->state = CG_GT_HEAD;
    if (!gc->keep) {
        cg__conn_linger(gc, gc->request_done);
        return false;
    }
    cg_conn_next_request(c, CG_CONN_BUF_INITIAL, CG_CONN_BUF_SHRINK);
    size_t rest = c->buf.len;
    if (cg__poll_start(gc) < 0) {
        cg__conn_close(gc);
        return false;
    }
    if (rest == 0 && cg__transport_pending(c)) {
        /* TLS: the next request's bytes may sit decrypted in the
         * transport, where no poll sees them */
        ssize_t n = cg_conn_fill_nowait(c);
        if (n > 0)
            rest = (size_t)n;
    }
    if (rest > 0) {
        gc->head_started = true;
        cg__timer_set(gc, g->head_ms);
        return true;
    }
    gc->head_started = false;
    gc->keepalived = true;
    g->nkeep++;
    cg__timer_set(gc, g->keepalive_ms);
    return false;
}

/* Queue a request for the pool. Collected on the loop thread while it
 * works through one batch of ready sockets, and handed over once by
 * cg__on_check(): one lock and one wake-up per batch rather than per
 * request, so pool threads do not preempt the loop thread one by one. */
static void cg__pool_push(cg_gt_t *g, cg_gt_conn_t *gc)
{
    CG__QPUSH(g->batch_head, g->batch_tail, gc);
    g->nbatch++;
}

static void cg__on_check(uv_check_t *h)
{
    cg_gt_t *g = h->data;
    if (g->batch_head == NULL && g->h2batch_head == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    CG__QSPLICE(g->todo_head, g->todo_tail, g->batch_head, g->batch_tail);
    CG__QSPLICE(g->h2todo_head, g->h2todo_tail, g->h2batch_head, g->h2batch_tail);
    __atomic_add_fetch(&g->nbusy, g->nbatch, __ATOMIC_RELAXED);
    for (size_t i = 0; i < g->nbatch && cg__wake_one(g); i++)
        ;
    pthread_mutex_unlock(&g->mu);
    g->nbatch = 0;
}

static void cg__h2_pump(cg_gt_conn_t *gc);

static void cg__h2_goaway_walk(uv_handle_t *h, void *arg)
{
    if (h->type != UV_POLL || h->data == arg || uv_is_closing(h))
        return;
    cg_gt_conn_t *gc = h->data;
    if (gc->state != CG_GT_H2 || (uv_poll_t *)h != &gc->poll)
        return;
    cg_h2_session_goaway(gc->h2);
    if (!gc->h2_feeding) /* else its feed sends it right after */
        cg__h2_pump(gc);
}

static void cg__begin_stop(cg_gt_t *g)
{
    if (g->stopping)
        return;
    __atomic_store_n(&g->stopping, true, __ATOMIC_SEQ_CST);
    g->stop_deadline = cg_monotonic_ms() + (uint64_t)g->w->cfg->graceful_timeout * 1000;
    cg__listen_stop(g);
    if (g->pool) { /* idle threads stop waiting on the listeners */
        pthread_mutex_lock(&g->mu);
        cg__wake_all(g);
        pthread_mutex_unlock(&g->mu);
    }
    uv_timer_stop(&g->gate);
    cg__balance_publish(g);
    /* HTTP/2 connections: GOAWAY, their open streams finish */
    uv_walk(&g->loop, cg__h2_goaway_walk, g);
    if (cg__nconns(g) == 0)
        uv_stop(&g->loop);
}

/*
 * A complete head is in the buffer: the worker's keep-alive policy, then the
 * app (inline, or on the pool). Returns true when served inline and more
 * pipelined bytes wait.
 */
static bool cg__dispatch(cg_gt_conn_t *gc)
{
    cg_gt_t *g = gc->gt;
    cg_worker_t *w = g->w;
    cg_conn_t *c = &gc->c;

    cg__timer_set(gc, 0);
    if (!gc->body_begun)
        cg_conn_begin_body(c, &g->pol);
    gc->body_begun = false;

    cg__count_request(g);
    /* Gunicorn's gthread: close when stopping, keep-alive off, or too many
     * connections already parked in keep-alive. */
    c->must_close = !w->alive || g->keepalive_ms == 0 || g->nkeep >= g->max_keep;
    if (!w->alive)
        cg__begin_stop(g);

    if (!g->pool) {
        __atomic_store_n(&g->inline_busy, true, __ATOMIC_RELEASE);
        cg__balance_publish(g);
        cg__serve(g->ws, gc);
        __atomic_store_n(&g->inline_busy, false, __ATOMIC_RELEASE);
        cg__balance_publish(g);
        /* the loop's clock stood still while the app ran: deadlines set
         * from here on (keep-alive) must count from now */
        uv_update_time(&g->loop);
        return cg__after(gc);
    }
    /* The poll stays registered: clients rarely send while waiting for an
     * answer, and stopping then restarting it costs two epoll_ctl calls per
     * request. cg__on_poll() stops it if the socket does become readable. */
    gc->state = CG_GT_BUSY;
    cg__pool_push(g, gc);
    return false;
}

/* A complete head was parsed: should its body be read before dispatch?
 * Then make room for it and enter BODY. */
static bool cg__prebuffer(cg_gt_conn_t *gc)
{
    cg_conn_t *c = &gc->c;
    cg_http_request_t *req = &c->req;
    /* 100-continue: the client waits for our word before sending the body */
    if (req->body_kind != CG_HTTP_BODY_LENGTH || req->expect_continue ||
        req->content_length > CG_PREBUF_MAX || c->buf.len >= req->head_len + req->content_length)
        return false;
    size_t end = req->head_len + (size_t)req->content_length;
    /* at least the room cg_conn_begin_body() will want, or it grows it again */
    size_t cap = end > req->head_len + CG_CONN_BODY_ROOM ? end : req->head_len + CG_CONN_BODY_ROOM;
    if (c->buf.cap < cap) {
        char *old = c->buf.data;
        c->buf.data = cg_xrealloc(c->buf.data, cap);
        c->buf.cap = cap;
        cg_conn_rebase(req, old, c->buf.data, c->buf.len);
    }
    gc->body_end = end;
    gc->state = CG_GT_BODY;
    return true;
}

/* recv for the body reader while the loop reads ahead: never waits. */
static ssize_t cg__recv_nowait(void *conn, char *dst, size_t cap)
{
    cg_conn_t *c = conn;
    for (;;) {
        ssize_t n = c->ops->recv(c, dst, cap);
        if (n != -EINTR)
            return n;
    }
}

/* A complete head whose body is not all in the buffer: read it ahead of the
 * app into the spool. Returns 1 when the request now waits in SPOOL, 0 when
 * there is nothing to read ahead, -1 when the connection was closed. */
static int cg__spool_begin(cg_gt_conn_t *gc)
{
    cg_gt_t *g = gc->gt;
    cg_conn_t *c = &gc->c;
    cg_http_request_t *req = &c->req;
    if (req->body_kind == CG_HTTP_BODY_NONE ||
        (req->body_kind == CG_HTTP_BODY_LENGTH &&
         (req->content_length == 0 || c->buf.len - req->head_len >= req->content_length)))
        return 0;
    cg_conn_begin_body(c, &g->pol);
    gc->body_begun = true;
    if (req->expect_continue) {
        /* the client waits for our word before it sends the body */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        req->expect_continue = false;
        if (cg_conn_write_nowait(c, cont, sizeof(cont) - 1) != (ssize_t)(sizeof(cont) - 1)) {
            cg__conn_close(gc);
            return -1;
        }
    }
    c->body.recv = cg__recv_nowait;
    gc->state = CG_GT_SPOOL;
    cg__timer_set(gc, (uint64_t)c->io_timeout_ms);
    return 1;
}

/* SPOOL: take what the socket has. Once the body is in (or the spool holds
 * CG_SPOOL_BODY_MAX), the request goes to the app. */
static void cg__spool_step(cg_gt_conn_t *gc)
{
    cg_conn_t *c = &gc->c;
    cg_log_t *log = gc->gt->w->log;
    char tmp[16384];
    bool progress = false;
    for (;;) {
        uint64_t have = cg_spool_pending(&gc->in);
        if (c->body.done || have >= CG_SPOOL_BODY_MAX)
            break;
        size_t want = CG_SPOOL_BODY_MAX - have < sizeof(tmp) ? (size_t)(CG_SPOOL_BODY_MAX - have)
                                                             : sizeof(tmp);
        ssize_t n = cg_http_body_read(&c->body, tmp, want);
        if (n > 0) {
            int r = cg_spool_add(&gc->in, tmp, (size_t)n);
            if (r < 0) {
                cg_log_error(log, "Cannot keep a request body: %s", strerror(-r));
                cg__conn_close(gc);
                return;
            }
            progress = true;
            continue;
        }
        if (n == 0)
            break; /* all in (a Content-Length body cut short: the app gets that) */
        if (n == CG_EAGAIN) {
            if (progress) /* the body's deadline counts from the last byte */
                cg__timer_set(gc, (uint64_t)c->io_timeout_ms);
            return;
        }
        if (n == -EPROTO && c->body.error.code != CG_HTTP_E_NO_MORE_DATA) {
            /* A framing error Gunicorn meets while the app reads: the same
             * outcome, before the app. Errors with a status (a trailer
             * refused like a header) are answered with it; the others are
             * its "Socket error" and the connection just closes. */
            if (cg_http_error_status(c->body.error.code) != 0) {
                cg_conn_refuse(c, &gc->gt->pol, log, &c->body.error);
            } else {
                char text[512];
                cg_http_error_text(&c->body.error, text, sizeof(text));
                cg_log_exception(log, "Socket error processing request.\n%s: %s",
                                 cg_http_error_name(c->body.error.code), text);
            }
            cg__conn_linger(gc, false);
            return;
        }
        cg_conn_log_read_end(c, log, n == -EPROTO ? 0 : n);
        cg__conn_close(gc);
        return;
    }
    c->body.recv = cg_conn_recv; /* the rest, if any, streams to the app */
    gc->state = CG_GT_HEAD;
    if (cg__dispatch(gc))
        cg__process(gc);
}

/* FLUSH: send what the response left in the spool, then carry on. */
static void cg__flush(cg_gt_conn_t *gc)
{
    cg_conn_t *c = &gc->c;
    bool progress = false;
    for (;;) {
        ssize_t n = cg_spool_send(&gc->out, c);
        if (n > 0) {
            progress = true;
            continue;
        }
        if (n == 0)
            break;
        if (n == CG_EAGAIN || n == -EINTR) {
            if (progress) /* the send deadline counts from the last progress */
                cg__timer_set(gc, (uint64_t)c->io_timeout_ms);
            return;
        }
        cg_log_debug(gc->gt->w->log, "Ignoring socket error: %s", strerror((int)-n));
        cg__conn_close(gc);
        return;
    }
    gc->polling = false; /* back to watching for the next request */
    if (cg__after(gc))
        cg__process(gc);
}

/* ---- HTTP/2 connections (src/h2/) ---- */

/* Owner side of a stream the session found ready: count it as a request,
 * and queue it for the pool (handed over in cg__on_check, as HTTP/1.1
 * requests are). On the loop thread, inside the session's callbacks. */
static void cg__h2_dispatch(void *owner, cg_h2_stream_t *st)
{
    cg_gt_conn_t *gc = owner;
    cg_gt_t *g = gc->gt;
    cg__count_request(g);
    if (!g->w->alive)
        cg__begin_stop(g); /* max_requests: GOAWAY, this stream still runs */
    cg_gt_h2job_t *job = cg_xmalloc(sizeof(*job));
    job->st = st;
    CG__QPUSH(g->h2batch_head, g->h2batch_tail, job);
    g->nbatch++;
}

/* Any thread: a session has work for the loop (cg__take_h2). */
static void cg__h2_wake(void *ctx, cg_h2_session_t *s)
{
    cg_gt_t *g = ctx;
    pthread_mutex_lock(&g->mu);
    if (g->nh2ready == g->h2ready_cap) {
        g->h2ready_cap = g->h2ready_cap ? g->h2ready_cap * 2 : 16;
        g->h2ready = cg_xrealloc(g->h2ready, g->h2ready_cap * sizeof(*g->h2ready));
    }
    g->h2ready[g->nh2ready++] = s;
    pthread_mutex_unlock(&g->mu);
    /* fails only for a closing handle, and the loop closes it only after
     * the pool is gone */
    (void)uv_async_send(&g->async);
}

/* Write what the session has, then watch for what it needs; close once
 * it is done. */
static void cg__h2_pump(cg_gt_conn_t *gc)
{
    cg_gt_t *g = gc->gt;
    int r = cg_h2_session_send(gc->h2);
    if (r < 0 && r != CG_EAGAIN) {
        cg_log_debug(g->w->log, "Ignoring socket error: %s", strerror(-r));
        cg__conn_close(gc);
        return;
    }
    if (r == 0 && cg_h2_session_finished(gc->h2)) {
        /* GOAWAY and the last responses are out: FIN, and drain what the
         * client still sends so that no RST destroys them in flight */
        gc->polling = false;
        if (gc->watched)
            uv_poll_stop(&gc->poll);
        cg__conn_linger(gc, false);
        return;
    }
    int events = UV_READABLE | (r == CG_EAGAIN ? UV_WRITABLE : 0);
    if (events != gc->h2_events) {
        int ue = cg__watch(gc);
        if (ue == 0)
            ue = uv_poll_start(&gc->poll, events, cg__on_poll);
        if (ue < 0) {
            cg_log_error(g->w->log, "Cannot watch a connection: %s", uv_strerror(ue));
            cg__conn_close(gc);
            return;
        }
        gc->h2_events = events;
        gc->polling = true;
    }
}

static void cg__h2_on_poll(cg_gt_conn_t *gc, int status, int events)
{
    cg_gt_t *g = gc->gt;
    if (status < 0) {
        cg__conn_close(gc);
        return;
    }
    if (events & UV_READABLE) {
        gc->h2_feeding = true;
        int r = cg_h2_session_on_readable(gc->h2);
        gc->h2_feeding = false;
        if (r == -EPIPE) { /* the client is gone; so are its streams */
            cg__conn_close(gc);
            return;
        }
        if (r < 0 && r != -EPROTO) {
            cg_conn_log_read_end(&gc->c, g->w->log, r);
            cg__conn_close(gc);
            return;
        }
        /* -EPROTO: the GOAWAY is queued, the pump sends it and closes */
        cg__timer_set(gc, cg_h2_session_streams(gc->h2) > 0 || g->keepalive_ms == 0
                              ? g->head_ms
                              : g->keepalive_ms);
    }
    cg__h2_pump(gc);
}

static int cg__h2_session(cg_gt_conn_t *gc)
{
    cg_gt_t *g = gc->gt;
    cg_h2_hooks_t hooks = {.dispatch = cg__h2_dispatch, .wake = cg__h2_wake, .wake_ctx = g};
    return cg_h2_session_new(&gc->h2, &g->h2cfg, &g->pol, g->w->log, &gc->c, gc, &hooks);
}

/* Turn the connection into an HTTP/2 one: after ALPN chose h2, on the h2c
 * preface, or after a 101 to an Upgrade: h2c (`pre`: bytes already read,
 * the preface first). The session exists (or is made here). */
static void cg__h2_begin(cg_gt_conn_t *gc, const char *pre, size_t n)
{
    cg_gt_t *g = gc->gt;
    /* an HTTP/2 connection lives on the loop from now on (and the GOAWAY
     * at shutdown finds it among the loop's handles) */
    if (cg__watch(gc) < 0 || (gc->h2 == NULL && cg__h2_session(gc) < 0)) {
        cg__conn_close(gc);
        return;
    }
    gc->state = CG_GT_H2;
    gc->h2_events = 0;
    cg__timer_set(gc, g->first_ms);
    if (n > 0) {
        gc->h2_feeding = true;
        int r = cg_h2_session_feed(gc->h2, (const uint8_t *)pre, n);
        gc->h2_feeding = false;
        (void)r; /* -EPROTO: the pump sends the GOAWAY and closes */
    }
    gc->c.buf.off = gc->c.buf.len = gc->c.buf.keep = 0;
    /* SETTINGS, and the answers to what came with the preface; then the
     * rest, which often came with it (TLS holds it decrypted) */
    cg__h2_on_poll(gc, 0, n > 0 ? 0 : UV_READABLE);
}

/*
 * A complete HTTP/1.1 head asking for Upgrade: h2c (RFC 7540 section 3.2):
 * 101, then the request is stream 1 of an HTTP/2 session. Returns false
 * when it stays HTTP/1.1 (HTTP2-Settings that do not decode: the upgrade
 * is ignored, as a server may) and true when the connection is HTTP/2 now
 * (or closed).
 */
static bool cg__h2_upgrade(cg_gt_conn_t *gc, cg_str_t settings)
{
    cg_conn_t *c = &gc->c;
    static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             "Upgrade: h2c\r\n\r\n";
    if (cg__h2_session(gc) < 0) {
        cg__conn_close(gc);
        return true;
    }
    size_t head_len = c->req.head_len;
    if (cg_h2_session_upgrade(gc->h2, c->buf.data, head_len, cg_str_eq(c->req.method, "HEAD", 4),
                              settings) < 0) {
        cg_h2_session_close(gc->h2);
        gc->h2 = NULL;
        return false;
    }
    /* before any frame of the session; the response comes later, from the
     * pool, through the session */
    if (cg_conn_write_nowait(c, sw, sizeof(sw) - 1) != (ssize_t)(sizeof(sw) - 1)) {
        cg__conn_close(gc);
        return true;
    }
    cg__timer_set(gc, 0);
    /* what followed the request (the preface, SETTINGS) is the session's */
    cg__h2_begin(gc, c->buf.data + head_len, c->buf.len - head_len);
    return true;
}

/* h2c prior knowledge: 1 when the buffer starts with the connection
 * preface, 0 when it may (more bytes needed), -1 when it does not. */
static int cg__h2c_preface(const cg_conn_t *c)
{
    return cg_h2_preface_match(c->buf.data + c->buf.off, c->buf.len - c->buf.off);
}

/* The loop's side of what stream threads did: responses to submit, window
 * to give back, streams done. */
static void cg__take_h2(cg_gt_t *g)
{
    pthread_mutex_lock(&g->mu);
    cg_h2_session_t **v = g->h2ready;
    size_t n = g->nh2ready;
    g->h2ready = NULL;
    g->nh2ready = g->h2ready_cap = 0;
    pthread_mutex_unlock(&g->mu);
    for (size_t i = 0; i < n; i++) {
        cg_h2_session_t *s = v[i];
        if (!cg_h2_session_sync(s))
            continue; /* its connection is gone */
        cg_gt_conn_t *gc = cg_h2_session_owner(s);
        if (!gc->h2_feeding && !gc->closing &&
            gc->state == CG_GT_H2)
            cg__h2_pump(gc);
    }
    free(v);
    if (n > 0)
        cg__stats_arm(g);
}

/* A complete head was parsed: an h2c upgrade, a body to read ahead, or
 * the app. True when cg__process() should parse on (a body read ahead is
 * all in, or pipelined bytes follow a request served inline). */
static bool cg__parsed(cg_gt_conn_t *gc)
{
    cg_conn_t *c = &gc->c;
    cg_str_t settings;
    if (gc->gt->h2c_upgrade && !c->tls && cg_h2_upgrade_wanted(&c->req, &settings) &&
        cg__h2_upgrade(gc, settings))
        return false;
    if (cg__prebuffer(gc))
        return true;
    int sp = cg__spool_begin(gc);
    if (sp < 0)
        return false;
    if (sp > 0) {
        cg__spool_step(gc);
        return false;
    }
    return cg__dispatch(gc);
}

/* Parse what the buffer holds; dispatch every complete request (pipelining:
 * in order, one at a time). */
static void cg__process(cg_gt_conn_t *gc)
{
    cg_conn_t *c = &gc->c;
    for (;;) {
        if (gc->state == CG_GT_BODY) {
            if (c->buf.len < gc->body_end)
                return; /* more to come */
            gc->state = CG_GT_HEAD;
            if (!cg__dispatch(gc))
                return;
            continue;
        }
        if (gc->gt->h2c && gc->nreq == 0 && !c->tls) {
            /* h2c with prior knowledge: the preface instead of a request */
            int pk = cg__h2c_preface(c);
            if (pk == 0)
                return;
            if (pk > 0) {
                cg__h2_begin(gc, c->buf.data + c->buf.off, c->buf.len - c->buf.off);
                return;
            }
        }
        int h = cg_conn_head_step(c, &gc->gt->pol, gc->gt->w->log);
        if (h == 0)
            return;
        if (h < 0) {
            cg__conn_linger(gc, false);
            return;
        }
        if (!cg__parsed(gc))
            return;
    }
}

static void cg__on_poll(uv_poll_t *p, int status, int events)
{
    cg_gt_conn_t *gc = p->data;
    cg_conn_t *c = &gc->c;
    if (gc->state == CG_GT_LINGER) {
        char sink[4096];
        for (;;) { /* until the socket is empty: TLS may hold decrypted bytes */
            ssize_t n = c->ops->recv(c, sink, sizeof(sink));
            if (n == CG_EAGAIN || n == -EINTR)
                return;
            gc->lingered += n > 0 ? (size_t)n : 0;
            if (n <= 0 || gc->lingered >= CG_CONN_LINGER_MAX) {
                cg__conn_close(gc);
                return;
            }
        }
    }
    if (gc->state == CG_GT_H2) {
        cg__h2_on_poll(gc, status, events);
        return;
    }
    if (gc->state == CG_GT_HANDSHAKE) {
        cg__handshake_step(gc);
        return;
    }
    if (gc->state == CG_GT_FLUSH) {
        cg__flush(gc);
        return;
    }
    if (gc->state == CG_GT_SPOOL) {
        cg__spool_step(gc);
        return;
    }
    if (gc->state == CG_GT_BUSY) {
        /* The client usually sends its next request as soon as it has the
         * response, which the pool thread writes before it reports back:
         * the report is then already queued. Take it now rather than stop
         * and restart the poll (two epoll_ctl calls). */
        cg__take_done(gc->gt);
        /* Taken back, the connection has set up its own next wait: a
         * response the socket did not take yet polls for writable (FLUSH;
         * stopping that poll below would leave it unsent until the send
         * deadline), lingering, the body spool and HTTP/2 theirs. Only a
         * next request (or one still busy) goes on below. */
        if (gc->closing || (gc->state != CG_GT_BUSY && gc->state != CG_GT_HEAD &&
                            gc->state != CG_GT_BODY))
            return;
    }
    if (gc->state != CG_GT_HEAD && gc->state != CG_GT_BODY) {
        /* Busy in a pool thread, which owns the socket now: stop watching
         * until the thread hands it back (level-triggered would spin). */
        uv_poll_stop(&gc->poll);
        gc->polling = false;
        return;
    }
    cg__read_step(gc);
}

/* One read and parse; false when the connection closed or must wait. */
static bool cg__read_once(cg_gt_conn_t *gc, cg_worker_t *w, cg_conn_t *c)
{
    ssize_t n = cg_conn_fill_nowait(c);
    if (n == CG_EAGAIN)
        return false;
    if (n == 0 && gc->state == CG_GT_BODY) {
        /* The client ended its side before the whole body: as Gunicorn, the
         * app gets the short body (wsgi.input meets the EOF) and answers. */
        gc->body_end = c->buf.len;
        cg__process(gc);
        return false;
    }
    if (n <= 0) {
        cg_conn_log_read_end(c, w->log, n);
        cg__conn_close(gc);
        return false;
    }
    if (!gc->head_started) {
        gc->head_started = true;
        if (gc->keepalived) {
            gc->keepalived = false;
            gc->gt->nkeep--;
        }
        cg__timer_set(gc, gc->gt->head_ms);
    }
    cg__process(gc);
    return true;
}

/* HEAD or BODY: take what the connection has and parse it. Again while the
 * transport still holds decrypted bytes (TLS records larger than the
 * buffer's room): no poll would report them. */
static void cg__read_step(cg_gt_conn_t *gc)
{
    cg_worker_t *w = gc->gt->w;
    cg_conn_t *c = &gc->c;
    do {
        if (!cg__read_once(gc, w, c))
            return;
    } while ((gc->state == CG_GT_HEAD || gc->state == CG_GT_BODY) &&
             !gc->closing && cg__transport_pending(c));
}

/* HANDSHAKE: one step of the TLS handshake, on the loop (a connection in
 * its handshake costs a slot and a timer, never a thread). Done: read the
 * request as on a fresh connection. */
static void cg__handshake_step(cg_gt_conn_t *gc)
{
    cg_gt_t *g = gc->gt;
    cg_conn_t *c = &gc->c;
    int r = c->ops->handshake(c);
    if (r == CG_CONN_WANT_READ || r == CG_CONN_WANT_WRITE) {
        int ue = uv_poll_start(&gc->poll, r == CG_CONN_WANT_READ ? UV_READABLE : UV_WRITABLE,
                               cg__on_poll);
        if (ue < 0) {
            cg_log_error(g->w->log, "Cannot watch a connection: %s", uv_strerror(ue));
            cg__conn_close(gc);
        }
        return;
    }
    if (r == -EINTR)
        return; /* level-triggered: the poll comes back */
    if (r < 0) {
        cg_conn_log_read_end(c, g->w->log, r);
        cg__conn_close(gc); /* a failed session: nothing to send, no lingering */
        return;
    }
    if (g->h2_tls && cg_tls_alpn_h2(c)) {
        cg__h2_begin(gc, NULL, 0);
        return;
    }
    gc->state = CG_GT_HEAD;
    int ue = uv_poll_start(&gc->poll, UV_READABLE, cg__on_poll);
    if (ue < 0) {
        cg_log_error(g->w->log, "Cannot watch a connection: %s", uv_strerror(ue));
        cg__conn_close(gc);
        return;
    }
    cg__timer_set(gc, g->first_ms);
    /* the request often came with the client's last handshake flight */
    cg__read_step(gc);
}

/* After the loop thread is done with a connection for now: free it if it
 * was closed before it ever waited, else make sure it waits for its next
 * bytes (unless a pool thread has it). */
static void cg__settle(cg_gt_conn_t *gc)
{
    if (!gc->closing && !gc->polling && gc->state != CG_GT_BUSY && cg__poll_start(gc) < 0)
        cg__conn_close(gc);
    if (gc->closing && !gc->watched)
        cg__conn_free(gc);
}

/* A cleared connection struct takes an accepted descriptor, on the loop
 * (cg__conn_new) or on a pool thread that accepted it (cg__thr_serve). */
static void cg__conn_setup(cg_gt_t *g, cg_gt_conn_t *gc, int fd, const cg_listener_t *l,
                           const struct sockaddr_storage *peer, socklen_t peerlen)
{
    cg_conn_t *c = &gc->c;
    gc->gt = g;
    c->peer = *peer;
    c->peerlen = peerlen;
    cg_conn_accepted(c, &g->pol, fd, l, true);
    c->quit = &g->w->quick;
    /* A client that stops sending its body or reading the response while
     * a thread serves it frees that thread after this long without
     * progress (Gunicorn has no setting for it; its timeout fits). */
    c->io_timeout_ms = (int)g->head_ms;
    cg_spool_init(&gc->in, CG_SPOOL_MEM, CG_SPOOL_BODY_MAX, g->w->cfg->worker_tmp_dir);
    cg_spool_init(&gc->out, CG_SPOOL_MEM, CG_SPOOL_OUT_MAX, g->w->cfg->worker_tmp_dir);
    c->body_spool = &gc->in;
    gc->state = CG_GT_HEAD;
    gc->poll.data = gc->timer.data = gc;
}

static void cg__conn_new(cg_gt_t *g, int fd, const cg_listener_t *l, struct sockaddr_storage *peer,
                         socklen_t peerlen)
{
    cg_gt_conn_t *gc = cg__conn_get(g);
    cg_conn_t *c = &gc->c;
    cg__conn_setup(g, gc, fd, l, peer, peerlen);
    int r = 0;
    if (g->w->tls != NULL) {
        r = cg_tls_attach(c, g->w->tls);
        if (r < 0) {
            cg_log_error(g->w->log, "Cannot set up TLS for a connection: %s", strerror(-r));
            c->ops->close(c);
            cg_conn_release(c);
            free(gc);
            return;
        }
        gc->state = CG_GT_HANDSHAKE;
    }
    size_t nc = __atomic_add_fetch(&g->nconns, 1, __ATOMIC_SEQ_CST);
    cg_board_conns_open(g->pol.board, nc);
    cg__balance_publish(g);
    /* A connection gets its libuv handles only when it has to wait on the
     * loop (cg__watch): one whose request came with it and was answered at
     * once, inline or by a pool thread, never does. A TLS one at once (its
     * handshake waits). Without them, only this function and
     * cg__take_done() see it, and free it once it is closed. */
    bool lazy = gc->state != CG_GT_HANDSHAKE;
    if (!lazy && cg__poll_start(gc) < 0) {
        cg__conn_close(gc);
        if (!gc->watched)
            cg__conn_free(gc);
        return;
    }
    if (gc->state == CG_GT_HANDSHAKE) {
        /* the whole handshake within the head's deadline */
        cg__timer_set(gc, g->head_ms);
        cg__handshake_step(gc); /* the ClientHello usually came with the connection */
        return;
    }
    cg__timer_set(gc, g->first_ms);
    /* Most clients send the request with the connection: read it now. */
    cg__on_poll(&gc->poll, 0, UV_READABLE);
    if (!lazy)
        return;
    cg__settle(gc);
}

/* Above its share, the worker looks at the listeners again this often. */
#define CG_GT_GATE_MS 1
/* A run of refusals ends after this long with the connection still waiting
 * and the other workers' connections unchanged (none of them is taking it:
 * blocked, or starved of CPU): the worker takes it after all, so balancing
 * never delays a connection by more. */
#define CG_GT_GATE_MAX_MS 100

static void cg__on_gate(uv_timer_t *t)
{
    cg_gt_t *g = t->data;
    if (!g->stopping && !g->accepting && cg__nconns(g) < g->max_conns)
        cg__listen_start(g);
}

/* May this worker take one more connection (balance.h)? Else it stops
 * watching the listeners for CG_GT_GATE_MS. */
static bool cg__take_one(cg_gt_t *g)
{
    uint64_t others;
    if (cg_balance_fair(g->w->balance, g->w->balance_slot, (uint32_t)cg__nconns(g), &others)) {
        g->gate_first = g->gate_last = 0;
        return true;
    }
    uint64_t now = uv_now(&g->loop);
    /* a refusal more than a few periods after the last one, or after the
     * others took or closed connections, starts a new run */
    if (g->gate_last == 0 || now - g->gate_last > 5 * CG_GT_GATE_MS || others != g->gate_others) {
        g->gate_first = now;
        g->gate_others = others;
    }
    g->gate_last = now;
    if (now - g->gate_first >= CG_GT_GATE_MAX_MS)
        return true;
    cg__listen_stop(g);
    int r = uv_timer_start(&g->gate, cg__on_gate, CG_GT_GATE_MS, 0);
    if (r < 0) {
        cg_log_error(g->w->log, "Cannot arm the accept timer: %s", uv_strerror(r));
        return true;
    }
    return false;
}

static void cg__on_listen(uv_poll_t *p, int status, int events)
{
    cg_gt_t *g = p->data;
    const cg_listener_t *l = &g->w->listeners[p - g->lpolls];
    for (int i = 0; i < 64; i++) {
        if (g->stopping || cg__nconns(g) >= g->max_conns) {
            cg__listen_stop(g);
            return;
        }
        if (!cg__take_one(g))
            return;
        struct sockaddr_storage peer;
        socklen_t peerlen = sizeof(peer);
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &peerlen, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED &&
                errno != EINTR && errno != EPROTO)
                cg_log_error(g->w->log, "accept() failed: %s", strerror(errno));
            return;
        }
        cg__conn_new(g, fd, l, &peer, peerlen);
    }
}

static void cg__listen_start(cg_gt_t *g)
{
    if (g->thr_accept)
        return; /* the pool threads accept */
    for (size_t i = 0; i < g->nl; i++) {
        int r = uv_poll_start(&g->lpolls[i], UV_READABLE, cg__on_listen);
        if (r < 0) {
            /* nothing accepts here any more: leave, the master starts another */
            cg_log_error(g->w->log, "Cannot watch a listening socket: %s", uv_strerror(r));
            g->w->alive = 0;
        }
    }
    g->accepting = true;
}

static void cg__listen_stop(cg_gt_t *g)
{
    if (!g->accepting)
        return;
    for (size_t i = 0; i < g->nl; i++)
        uv_poll_stop(&g->lpolls[i]);
    g->accepting = false;
}

/* ---- worker-level events ---- */

static void cg__check_flags(cg_gt_t *g)
{
    cg_worker_t *w = g->w;
    if (w->reopen_logs) {
        w->reopen_logs = 0;
        cg_log_reopen(w->log);
    }
    if (w->quick) {
        uv_stop(&g->loop);
        return;
    }
    if (!w->alive)
        cg__begin_stop(g);
}

static void cg__on_wake(uv_poll_t *p, int status, int events)
{
    cg_gt_t *g = p->data;
    char sink[64];
    while (read(g->w->wake_pipe[0], sink, sizeof(sink)) > 0)
        ;
    cg__check_flags(g);
}

static void cg__on_tick(uv_timer_t *t)
{
    cg_gt_t *g = t->data;
    cg_worker_t *w = g->w;
    cg_heartbeat_notify(&w->hb);
    if (!g->stopping && getppid() != w->ppid) {
        cg_log_info(w->log, "Parent changed, shutting down: <Worker %d>", (int)w->pid);
        w->alive = 0;
    }
    cg__check_flags(g);
    if (g->stopping && cg_monotonic_ms() >= g->stop_deadline)
        uv_stop(&g->loop);
}

/* Pool threads hand finished connections back here. */
static void cg__take_done(cg_gt_t *g)
{
    pthread_mutex_lock(&g->mu);
    cg_gt_conn_t *list = g->done_head;
    g->done_head = g->done_tail = NULL;
    pthread_mutex_unlock(&g->mu);
    while (list != NULL) {
        cg_gt_conn_t *gc = list;
        list = gc->next;
        gc->next = NULL;
        uint8_t hand = gc->hand;
        gc->hand = CG_GT_HAND_AFTER;
        switch (hand) {
        case CG_GT_HAND_WAIT:
            /* accepted by a pool thread, its head not all in: the loop
             * waits for the rest as for any connection */
            gc->head_started = gc->c.buf.len > 0;
            cg__timer_set(gc, gc->head_started ? g->head_ms : g->first_ms);
            cg__process(gc);
            break;
        case CG_GT_HAND_PARSED:
            gc->head_started = true;
            cg__timer_set(gc, g->head_ms);
            if (cg__parsed(gc))
                cg__process(gc);
            break;
        case CG_GT_HAND_REFUSED:
            cg__conn_linger(gc, false);
            break;
        default:
            if (cg__after(gc))
                cg__process(gc);
        }
        cg__settle(gc);
    }
}

static void cg__on_async(uv_async_t *a)
{
    cg_gt_t *g = a->data;
    cg__take_done(g);
    cg__take_h2(g);
    if (g->thr_accept) {
        /* what a thread that served and closed a connection left */
        cg__stats_arm(g);
        if (!g->w->alive)
            cg__begin_stop(g); /* max_requests reached on a pool thread */
        if (g->stopping && !g->closing_all && cg__nconns(g) == 0)
            uv_stop(&g->loop);
    }
}

/*
 * In Gunicorn's gthread worker the main loop beats the heartbeat while pool
 * threads run requests, so `timeout` catches a stuck loop, never a long
 * request (or a slow client) in the app. Serving inline must not change
 * that: while a request runs on the loop thread, this thread beats for it.
 * Between requests only the loop's own tick does.
 */
static void *cg__inline_watch(void *arg)
{
    cg_gt_t *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->watch_quit) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + g->beat_ms * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        if (__atomic_load_n(&g->inline_busy, __ATOMIC_ACQUIRE))
            cg_heartbeat_notify(&g->w->hb);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

static void cg__inline_watch_stop(cg_gt_t *g)
{
    if (!g->watch_started)
        return;
    pthread_mutex_lock(&g->mu);
    g->watch_quit = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->watch_tid, NULL);
    g->watch_started = false;
}

/* ---- the pool ---- */

/* Not a request of a connection the loop knows: a connection a pool thread
 * accepted (thr_accept) goes back. */
static void cg__thr_unreserve(cg_gt_t *g)
{
    size_t n = __atomic_sub_fetch(&g->nconns, 1, __ATOMIC_SEQ_CST);
    cg_board_conns_open(g->pol.board, n);
    cg__balance_publish(g);
    /* the loop's part: stopping once the last one is gone, metrics to send,
     * max_requests reached here */
    if ((n == 0 && cg__stopping(g)) || g->w->statsd_batch != NULL || !g->w->alive)
        (void)uv_async_send(&g->async);
}

/* A connection the thread took is the loop's from now on (CG_GT_HAND_*). */
static void cg__thr_hand(cg_gt_t *g, cg_gt_conn_t *gc, uint8_t hand)
{
    gc->hand = hand;
    pthread_mutex_lock(&g->mu);
    CG__QPUSH(g->done_head, g->done_tail, gc);
    pthread_mutex_unlock(&g->mu);
    /* fails only for a closing handle, and the loop closes it only after
     * this thread is gone */
    (void)uv_async_send(&g->async);
}

/* A connection served and closed on its pool thread, never seen by the
 * loop: its struct and buffers stay with the thread for the next one. */
static void cg__thr_close(cg_gt_thread_t *t, cg_gt_conn_t *gc)
{
    cg_gt_t *g = t->gt;
    cg_conn_t *c = &gc->c;
    c->ops->close(c);
    cg_spool_clear(&gc->in);
    cg_spool_clear(&gc->out);
    char *buf = c->buf.data;
    cg_http_header_t *headers = c->req.headers;
    bool keep = t->spare == NULL && buf != NULL && c->buf.cap == CG_CONN_BUF_INITIAL &&
                headers != NULL && c->req.headers_cap == cg_conn_headers_cap(&g->pol);
    if (keep)
        c->buf.data = NULL, c->req.headers = NULL;
    cg_conn_release(c);
    if (keep) {
        c->buf.data = buf;
        c->req.headers = headers;
        t->spare = gc;
        cg__spare_poison(g, gc, true);
    } else {
        free(gc);
    }
    cg__thr_unreserve(g);
}

/*
 * A pool thread accepted fd (its slot counted in nconns): read the head,
 * which TCP_DEFER_ACCEPT usually delivered with the connection, run the
 * app, send, close, as the sync worker does, with no hand-off to the loop
 * and back. Whatever must wait goes to the loop as the loop would have it:
 * a head not all in (a slow client costs a slot, never a thread), a body to
 * read ahead, an h2c preface or upgrade, a connection kept alive.
 */
static void cg__thr_serve(cg_gt_thread_t *t, int fd, const cg_listener_t *l,
                          const struct sockaddr_storage *peer, socklen_t peerlen)
{
    cg_gt_t *g = t->gt;
    cg_worker_t *w = g->w;
    cg_gt_conn_t *gc = t->spare;
    if (gc != NULL) {
        t->spare = NULL;
        cg__spare_poison(g, gc, false);
        cg__conn_reuse(g, gc);
    } else {
        gc = cg_xcalloc(1, sizeof(*gc));
        cg_conn_init(&gc->c, &g->pol, CG_CONN_BUF_INITIAL);
    }
    cg_conn_t *c = &gc->c;
    cg__conn_setup(g, gc, fd, l, peer, peerlen);
    cg_board_conns_open(g->pol.board, cg__nconns(g));
    cg__balance_publish(g);

    for (;;) {
        ssize_t n = cg_conn_fill_nowait(c);
        if (n == CG_EAGAIN) {
            cg__thr_hand(g, gc, CG_GT_HAND_WAIT);
            return;
        }
        if (n <= 0) {
            cg_conn_log_read_end(c, w->log, n);
            cg__thr_close(t, gc);
            return;
        }
        if (g->h2c && !c->tls && cg__h2c_preface(c) >= 0) {
            cg__thr_hand(g, gc, CG_GT_HAND_WAIT); /* HTTP/2 lives on the loop */
            return;
        }
        int h = cg_conn_head_step(c, &g->pol, w->log);
        if (h < 0) {
            cg__thr_hand(g, gc, CG_GT_HAND_REFUSED);
            return;
        }
        if (h > 0)
            break;
    }
    cg_http_request_t *req = &c->req;
    cg_str_t settings;
    bool body_in = req->body_kind == CG_HTTP_BODY_NONE ||
                   (req->body_kind == CG_HTTP_BODY_LENGTH &&
                    (req->content_length == 0 || c->buf.len - req->head_len >= req->content_length));
    if (!body_in || (g->h2c_upgrade && !c->tls && cg_h2_upgrade_wanted(req, &settings))) {
        cg__thr_hand(g, gc, CG_GT_HAND_PARSED);
        return;
    }
    /* cg__dispatch()'s part */
    cg_conn_begin_body(c, &g->pol);
    cg__count_request(g);
    c->must_close = !w->alive || cg__stopping(g) || g->keepalive_ms == 0 ||
                    __atomic_load_n(&g->nkeep, __ATOMIC_RELAXED) >= g->max_keep;
    gc->state = CG_GT_BUSY;
    cg__serve(&t->ws, gc);
    if (gc->keep || !gc->request_done || c->app_sock != NULL || cg_spool_pending(&gc->out) > 0) {
        /* kept alive, lingering, a response still to send, a
         * gunicorn.socket to release: cg__after() on the loop */
        cg__thr_hand(g, gc, CG_GT_HAND_AFTER);
        return;
    }
    cg__thr_close(t, gc);
}

/* One accept on the listeners, from an idle pool thread. 1: a connection
 * was served; 0: none waiting; -ms: rest that long off the listeners (the
 * balance gate, the connection cap, accept errors). */
static int cg__thr_accept(cg_gt_thread_t *t)
{
    cg_gt_t *g = t->gt;
    cg_worker_t *w = g->w;
    for (size_t k = 0; k < g->nl; k++) {
        size_t i = (t->next_l + k) % g->nl;
        /* The slot first: --worker-connections holds with every thread
         * accepting, and cg__begin_stop() (stopping, then nconns) and this
         * (nconns, then stopping) cannot both miss the other. */
        size_t n = __atomic_add_fetch(&g->nconns, 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&g->nbusy, 1, __ATOMIC_SEQ_CST);
        int rest = 0;
        if (n > g->max_conns)
            rest = 5; /* until the loop or a thread closes one */
        else if (!cg__stopping(g) && w->alive)
            rest = (int)cg_balance_gate_take(&t->gate, w->balance, w->balance_slot,
                                             (uint32_t)(n - 1), cg_monotonic_ms());
        int fd = -1;
        struct sockaddr_storage peer;
        socklen_t peerlen = sizeof(peer);
        if (rest == 0 && !cg__stopping(g) && w->alive)
            fd = accept4(w->listeners[i].fd, (struct sockaddr *)&peer, &peerlen,
                         SOCK_CLOEXEC | SOCK_NONBLOCK);
        else if (rest == 0)
            errno = EAGAIN; /* stopping */
        if (fd < 0) {
            int e = errno;
            __atomic_sub_fetch(&g->nbusy, 1, __ATOMIC_SEQ_CST);
            cg__thr_unreserve(g);
            if (rest > 0)
                return -rest;
            if (e == EAGAIN || e == EWOULDBLOCK || e == ECONNABORTED || e == EINTR ||
                e == EPROTO) {
                cg_balance_gate_reset(&t->gate);
                continue;
            }
            /* EMFILE and friends: say so and back off */
            cg_log_error(w->log, "accept() failed: %s", strerror(e));
            return -10;
        }
        t->next_l = i + 1;
        cg__thr_serve(t, fd, &w->listeners[i], &peer, peerlen);
        __atomic_sub_fetch(&g->nbusy, 1, __ATOMIC_SEQ_CST);
        return 1;
    }
    return 0;
}

/* Idle: wait for a connection on the listeners (listen), or only for the
 * loop's word, at most ms. */
static void cg__thr_wait(cg_gt_thread_t *t, bool listen, int ms)
{
    bool woken = false;
    if (listen) {
        struct epoll_event ev[8];
        int n = epoll_wait(t->epfd, ev, 8, ms);
        for (int i = 0; i < n; i++)
            woken |= ev[i].data.u32 == UINT32_MAX;
    } else {
        struct pollfd p = {.fd = t->evfd, .events = POLLIN};
        woken = poll(&p, 1, ms) > 0;
    }
    if (woken) {
        uint64_t v;
        (void)!read(t->evfd, &v, sizeof(v));
    }
}

static void *cg__pool_main(void *arg)
{
    cg_gt_thread_t *t = arg;
    cg_gt_t *g = t->gt;
    int rc = cg_wsgi_thread_init(&t->ws, g->ws);
    t->ws.board = cg_board_thread(g->w->board, (uint32_t)(t - g->threads));

    pthread_mutex_lock(&g->mu);
    if (rc < 0)
        g->nfailed++;
    g->nready++;
    pthread_cond_broadcast(&g->cv);
    bool tried = false; /* the listeners were found empty: wait now */
    int rest = 0;       /* ms to keep off the listeners */
    while (rc == 0) {
        if (g->pool_quit)
            break;
        if (g->todo_head == NULL && g->h2todo_head == NULL && g->orphans.n == 0) {
            bool may = g->thr_accept && g->accept_on && !cg__stopping(g) && g->w->alive;
            if (may && !tried && rest == 0) {
                pthread_mutex_unlock(&g->mu);
                int r = cg__thr_accept(t);
                pthread_mutex_lock(&g->mu);
                if (r < 0)
                    rest = -r;
                tried = r == 0; /* served one: as the sync worker, try again at once */
                continue;
            }
            /* idle under the same lock that saw no work: work queued from
             * now on finds this thread in g->idle and wakes it */
            t->idle = true;
            t->idle_next = g->idle;
            g->idle = t;
            pthread_mutex_unlock(&g->mu);
            cg__thr_wait(t, may && rest == 0, rest > 0 ? rest : 1000);
            pthread_mutex_lock(&g->mu);
            if (t->idle) { /* woken by a connection or the time, not the loop */
                cg_gt_thread_t **pp = &g->idle;
                while (*pp != t)
                    pp = &(*pp)->idle_next;
                *pp = t->idle_next;
                t->idle = false;
            }
            tried = false;
            rest = 0;
            continue;
        }
        tried = false;
        if (g->h2todo_head != NULL && (g->todo_head == NULL || (t->turn = !t->turn))) {
            /* an HTTP/2 stream: served on its view; the hand-back is the
             * stream's own (cg_h2_stream_served wakes the loop) */
            cg_gt_h2job_t *job = g->h2todo_head;
            g->h2todo_head = job->next;
            if (g->h2todo_head == NULL)
                g->h2todo_tail = NULL;
            cg_wsgi_orphans_move(&t->ws.orphans, &g->orphans);
            pthread_mutex_unlock(&g->mu);
            int src = cg_wsgi_handle(&t->ws, cg_h2_stream_conn(job->st));
            cg_h2_stream_served(job->st, src);
            free(job);
            pthread_mutex_lock(&g->mu);
            __atomic_sub_fetch(&g->nbusy, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        if (g->todo_head == NULL) {
            /* only gunicorn.socket objects of closed connections: let go of
             * them now, an idle worker must not sit on their descriptors */
            cg_wsgi_orphans_move(&t->ws.orphans, &g->orphans);
            pthread_mutex_unlock(&g->mu);
            cg_wsgi_release_orphans(&t->ws);
            pthread_mutex_lock(&g->mu);
            continue;
        }
        cg_gt_conn_t *gc = g->todo_head;
        g->todo_head = gc->next;
        if (g->todo_head == NULL)
            g->todo_tail = NULL;
        cg_wsgi_orphans_move(&t->ws.orphans, &g->orphans);
        pthread_mutex_unlock(&g->mu);

        cg__serve(&t->ws, gc);

        pthread_mutex_lock(&g->mu);
        gc->next = NULL;
        if (g->done_tail)
            g->done_tail->next = gc;
        else
            g->done_head = gc;
        g->done_tail = gc;
        __atomic_sub_fetch(&g->nbusy, 1, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&g->mu);
        /* fails only for a closing handle, and the loop closes it only
         * after this thread is gone */
        (void)uv_async_send(&g->async);
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);

    cg_wsgi_thread_free(&t->ws);
    return NULL;
}

/* A pool thread's wait: its eventfd, and the listeners when it accepts. */
static int cg__thr_setup(cg_gt_t *g, cg_gt_thread_t *t)
{
    t->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (t->evfd < 0 || t->epfd < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->evfd, &ev) < 0)
        return -errno;
    for (size_t i = 0; g->thr_accept && i < g->nl; i++) {
        /* one idle thread woken per connection, not all of them */
        ev = (struct epoll_event){.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u32 = (uint32_t)i};
        if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, g->w->listeners[i].fd, &ev) < 0)
            return -errno;
    }
    return 0;
}

static void cg__thr_teardown(cg_gt_thread_t *t)
{
    if (t->evfd >= 0)
        close(t->evfd);
    if (t->epfd >= 0)
        close(t->epfd);
    t->evfd = t->epfd = -1;
    if (t->spare != NULL) {
        cg__spare_poison(t->gt, t->spare, false);
        cg_conn_release(&t->spare->c);
        free(t->spare);
        t->spare = NULL;
    }
}

static int cg__pool_start(cg_gt_t *g)
{
    g->threads = cg_xcalloc((size_t)g->nthreads, sizeof(*g->threads));
    for (int i = 0; i < g->nthreads; i++)
        g->threads[i].evfd = g->threads[i].epfd = -1;
    for (int i = 0; i < g->nthreads; i++) {
        int r = cg__thr_setup(g, &g->threads[i]);
        if (r < 0) {
            cg_log_exception(g->w->log, "Exception in worker process\ncannot set up a thread: %s",
                             strerror(-r));
            return r;
        }
    }
    /* Signals belong to the loop thread: pool threads block them all. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = 0;
    for (int i = 0; i < g->nthreads && err == 0; i++) {
        g->threads[i].gt = g;
        err = pthread_create(&g->threads[i].tid, NULL, cg__pool_main, &g->threads[i]);
        if (err == 0)
            g->threads[i].started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    int started = 0;
    for (int i = 0; i < g->nthreads; i++)
        started += g->threads[i].started;
    pthread_mutex_lock(&g->mu);
    while (g->nready < started)
        pthread_cond_wait(&g->cv, &g->mu);
    int failed = g->nfailed;
    pthread_mutex_unlock(&g->mu);
    if (err != 0) {
        cg_log_exception(g->w->log, "Exception in worker process\ncannot start thread: %s",
                         strerror(err));
        return -err;
    }
    return failed > 0 ? -EINVAL : 0;
}

/* QUIT/INT: Gunicorn raises SystemExit in whatever the app is running.
 * The signal reaches the loop thread only, so the threads inside the app get
 * theirs as an asynchronous exception, raised at their next bytecode. */
static void cg__pool_interrupt(cg_gt_t *g)
{
    cg_wsgi_t **v = cg_xcalloc((size_t)g->nthreads, sizeof(*v));
    size_t n = 0;
    for (int i = 0; i < g->nthreads; i++)
        if (g->threads[i].started)
            v[n++] = &g->threads[i].ws;
    cg_wsgi_interrupt(g->ws, v, n);
    free(v);
}

/* Stop the pool. Threads still inside a request (QUIT, or the graceful
 * timeout ran out) are left to the process exit. Returns how many are. */
static size_t cg__pool_stop(cg_gt_t *g)
{
    size_t busy;
    pthread_mutex_lock(&g->mu);
    g->pool_quit = true;
    g->accept_on = false;
    busy = __atomic_load_n(&g->nbusy, __ATOMIC_SEQ_CST);
    cg__wake_all(g);
    pthread_mutex_unlock(&g->mu);
    size_t left = 0;
    for (int i = 0; i < g->nthreads; i++) {
        if (!g->threads[i].started)
            continue;
        if (busy == 0) {
            pthread_join(g->threads[i].tid, NULL);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (pthread_timedjoin_np(g->threads[i].tid, NULL, &ts) != 0) {
            pthread_detach(g->threads[i].tid);
            left++;
        }
    }
    return left;
}

/* Teardown: wakes no loop will sync any more (their sessions are closed
 * by now, so the sync only drops its reference); jobs no thread took. */
static void cg__h2_drop_ready(cg_gt_t *g)
{
    for (size_t i = 0; i < g->nh2ready; i++)
        (void)cg_h2_session_sync(g->h2ready[i]);
    free(g->h2ready);
    g->h2ready = NULL;
    g->nh2ready = 0;
    cg_gt_h2job_t *lists[2] = {g->h2todo_head, g->h2batch_head};
    for (int i = 0; i < 2; i++) {
        while (lists[i] != NULL) {
            cg_gt_h2job_t *job = lists[i];
            lists[i] = job->next;
            cg_h2_stream_served(job->st, -ECONNRESET);
            free(job);
        }
    }
}

static void cg__close_any(uv_handle_t *h, void *arg)
{
    cg_gt_t *g = arg;
    if (uv_is_closing(h))
        return;
    if (h->type == UV_POLL || h->type == UV_TIMER) {
        if (h->data != g) {
            cg__conn_close(h->data);
            return;
        }
    }
    uv_close(h, NULL);
}

int cg_worker_gthread_run(cg_worker_t *w, cg_wsgi_t *ws)
{
    const cg_config_t *cfg = w->cfg;
    cg_gt_t *g = cg_xcalloc(1, sizeof(*g));
    int rc = 0;
    g->w = w;
    g->ws = ws;
    g->nthreads = cfg->threads > 1 ? (int)cfg->threads : 1;
    g->h2_tls = w->tls != NULL && cg_h2_wanted(cfg);
    const char *h2c = cfg->http2_cleartext != NULL ? cfg->http2_cleartext : "off";
    g->h2c = strcmp(h2c, "prior-knowledge") == 0 || strcmp(h2c, "both") == 0;
    g->h2c_upgrade = strcmp(h2c, "upgrade") == 0 || strcmp(h2c, "both") == 0;
    g->pool = g->nthreads > 1 || g->h2_tls || g->h2c || g->h2c_upgrade;
    /* TLS connections keep the loop's accept: their handshake waits there */
    g->thr_accept = g->pool && w->tls == NULL && w->nlisteners > 0;
    g->nl = w->nlisteners;
    cg_h2_config_init(&g->h2cfg, cfg);
    g->max_conns = cfg->worker_connections > 0 ? (size_t)cfg->worker_connections : 1;
    g->max_keep = cfg->worker_connections > cfg->threads
                      ? (size_t)(cfg->worker_connections - cfg->threads) : 0;
    g->keepalive_ms = cfg->keepalive > 0 ? (uint64_t)cfg->keepalive * 1000 : 0;
    g->first_ms = CG_FIRST_DATA_MS + g->keepalive_ms;
    /* No Gunicorn setting bounds a head being read; the worker timeout is the
     * natural bound for a client trickling one. */
    g->head_ms = (cfg->timeout > 0 ? (uint64_t)cfg->timeout : 30) * 1000;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);

    if (cg_wsgi_make_threaded(ws) < 0 || cg_conn_policy_init(&g->pol, w->cfg, w->log) < 0) {
        cg_conn_policy_free(&g->pol);
        free(g);
        return -EINVAL;
    }
    g->pol.board = w->board;
    ws->board = cg_board_thread(w->board, 0); /* the app inline on the loop thread */
    if (g->pool && (rc = cg__pool_start(g)) < 0) {
        cg__pool_stop(g);
        for (int i = 0; g->threads != NULL && i < g->nthreads; i++)
            cg__thr_teardown(&g->threads[i]);
        cg_conn_policy_free(&g->pol);
        free(g->threads);
        free(g);
        return rc;
    }

    /* Nothing below fails short of running out of memory or descriptors;
     * if it does, the worker leaves (the master starts another) without
     * tearing down a half-built loop. */
    int ue = uv_loop_init(&g->loop);
    g->lpolls = cg_xcalloc(g->nl ? g->nl : 1, sizeof(uv_poll_t));
    for (size_t i = 0; i < g->nl && ue == 0; i++) {
        ue = uv_poll_init_socket(&g->loop, &g->lpolls[i], w->listeners[i].fd);
        g->lpolls[i].data = g;
        /* a connection then comes with its request: no wait on the loop
         * for it (an extra recv, epoll_ctl and wake-up each); only a cost
         * saved, so a refusal is no reason to stop */
        int dr = cg_net_defer_accept(&w->listeners[i], CG_NET_DEFER_ACCEPT_S);
        if (dr < 0)
            cg_log_debug(w->log, "TCP_DEFER_ACCEPT on %s: %s", w->listeners[i].display,
                         strerror(-dr));
    }
    if (ue == 0)
        ue = uv_timer_init(&g->loop, &g->gate);
    g->gate.data = g;
    if (ue == 0)
        ue = uv_poll_init(&g->loop, &g->wake, w->wake_pipe[0]);
    g->wake.data = g;
    if (ue == 0)
        ue = uv_poll_start(&g->wake, UV_READABLE, cg__on_wake);
    if (ue == 0)
        ue = uv_timer_init(&g->loop, &g->tick);
    g->tick.data = g;
    uint64_t beat = cfg->timeout > 0 ? (uint64_t)cfg->timeout * 1000 / 2 : 1000;
    if (beat > 1000 || beat == 0)
        beat = beat == 0 ? 500 : 1000;
    if (ue == 0)
        ue = uv_timer_start(&g->tick, cg__on_tick, beat, beat);
    if (ue == 0)
        ue = uv_timer_init(&g->loop, &g->stats);
    g->stats.data = g;
    g->beat_ms = beat;
    if (!g->pool) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        g->watch_started = pthread_create(&g->watch_tid, NULL, cg__inline_watch, g) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (!g->watch_started)
            cg_log_warning(w->log, "No heartbeat thread: a request longer than the timeout "
                                   "will get this worker killed");
    }
    if (ue == 0)
        ue = uv_async_init(&g->loop, &g->async, cg__on_async);
    g->async.data = g;
    if (ue == 0)
        ue = uv_check_init(&g->loop, &g->check);
    g->check.data = g;
    if (ue == 0 && g->pool)
        ue = uv_check_start(&g->check, cg__on_check);
    if (ue < 0) {
        cg_log_exception(w->log, "Exception in worker process\ncannot start the event loop: %s",
                         uv_strerror(ue));
        cg__inline_watch_stop(g);
        w->threads_left = g->pool ? cg__pool_stop(g) : 0;
        return -EIO;
    }

    cg_heartbeat_notify(&w->hb);
    cg__check_flags(g);
    if (!g->stopping && !w->quick) {
        cg__listen_start(g);
        cg__balance_publish(g);
        if (g->thr_accept) { /* the loop's handles are all up now */
            pthread_mutex_lock(&g->mu);
            g->accept_on = true;
            cg__wake_all(g);
            pthread_mutex_unlock(&g->mu);
        }
        uv_run(&g->loop, UV_RUN_DEFAULT);
    }
    if (g->stopping && cg__nconns(g) > 0 && !w->quick)
        cg_log_debug(w->log, "Worker graceful timeout (pid:%d)", (int)w->pid);

    cg__inline_watch_stop(g);
    if (w->quick && g->pool)
        cg__pool_interrupt(g);
    size_t left = g->pool ? cg__pool_stop(g) : 0;
    w->threads_left = left;
    if (left == 0) {
        g->closing_all = true;
        /* connections pool threads handed over after the loop's last turn
         * and never watched: no handle of theirs is left for the walk
         * below to close (it closes the watched ones) */
        cg_gt_conn_t *done = g->done_head;
        g->done_head = g->done_tail = NULL;
        while (done != NULL) {
            cg_gt_conn_t *gc = done;
            done = gc->next;
            if (gc->watched)
                continue;
            gc->c.ops->close(&gc->c);
            cg_spool_clear(&gc->in);
            cg_spool_clear(&gc->out);
            cg_conn_release(&gc->c);
            free(gc);
        }
        uv_run(&g->loop, UV_RUN_NOWAIT); /* clears a pending uv_stop() */
        uv_walk(&g->loop, cg__close_any, g);
        uv_run(&g->loop, UV_RUN_DEFAULT);
        uv_loop_close(&g->loop);
        for (int i = 0; g->threads != NULL && i < g->nthreads; i++)
            cg__thr_teardown(&g->threads[i]);
        cg__spare_free(g);
        cg__h2_drop_ready(g);
        /* the pool is gone: the caller's cg_wsgi_free() releases them */
        cg_wsgi_orphans_move(&ws->orphans, &g->orphans);
        free(g->orphans.v);
        free(g->lpolls);
        free(g->threads);
        cg_conn_policy_free(&g->pol);
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cv);
        free(g);
    }
    /* else: threads still serve requests with this state; the process is
     * about to exit and takes it along. */
    return 0;
}
