/*
 * board.h - the scoreboard: what each worker has done, in memory the master
 * and the workers share, read by the master's Prometheus endpoint
 * (metrics_bind).
 *
 * The master owns one shared anonymous mapping per *slot*. A worker is given
 * the lowest free slot when it is forked and the slot is free again once the
 * master has reaped it, so the number of slots stays at the most workers
 * alive at once (2N during a HUP), and the "worker" label of every series
 * has a bounded set of values. Counters in a slot add up across the workers
 * that held it: a worker that dies loses nothing it counted, and the master
 * folds in what only it knows at reap time (the CPU time wait4 reports).
 *
 * Every counter has exactly one writer: a request's counters live in the
 * struct of the thread that served it, the connection counters in the slot's
 * header, written by the loop thread. So the hot path is plain loads and
 * stores (relaxed atomics, no lock prefix, no shared cache line between
 * threads) and never needs the GIL. The master reads with relaxed loads and
 * may see a request half-recorded; the exposition keeps every counter
 * monotonic (see prom.c).
 */
#ifndef CG_BOARD_H
#define CG_BOARD_H

#include "../cg.h"

#include <sys/resource.h>
#include <sys/types.h>

/* Upper bounds of the request-duration histogram, in seconds: Prometheus'
 * client libraries' default buckets (+Inf is implied). */
#define CG_BOARD_BUCKETS(X)                                                                     \
    X(0.005) X(0.01) X(0.025) X(0.05) X(0.075) X(0.1) X(0.25) X(0.5) X(0.75) X(1.0) X(2.5)      \
        X(5.0) X(7.5) X(10.0)
#define CG__BOARD_COUNT_ONE(b) +1
enum { CG_BOARD_NBUCKETS = 0 CG_BOARD_BUCKETS(CG__BOARD_COUNT_ONE) };

/* Status classes: [0] a status that is no number, [1]..[5] 1xx..5xx. */
#define CG_BOARD_NCLASSES 6

/* One serving thread (the sync worker's one, each gthread pool thread, or
 * the gthread loop thread when it runs the app inline). 64-byte aligned so
 * two threads never write the same cache line. */
typedef struct cg_board_thread {
    uint64_t busy_us;      /* time spent serving requests, ended ones */
    uint64_t busy_since;   /* CLOCK_MONOTONIC us the current request began; 0 idle */
    uint64_t requests[CG_BOARD_NCLASSES];
    uint64_t buckets[CG_BOARD_NBUCKETS + 1]; /* per bucket (not cumulative); last: +Inf */
    uint64_t duration_us;  /* sum of the histogram's observations */
    uint64_t inflight;     /* requests in progress on an event loop (asgi); the
                            * thread workers serve one at a time: busy_since says */
} __attribute__((aligned(64))) cg_board_thread_t;

/* The shared part of a slot. */
typedef struct cg_board_shm {
    /* written by the worker's loop thread */
    uint64_t conns_open;   /* gauge */
    uint64_t conns_total;  /* accepted */
    uint64_t refused[CG_BOARD_NCLASSES]; /* requests answered with an error page
                                          * before the app (400, 431...) */
    uint32_t nthreads;     /* capacity of threads[] (set by the master) */
    cg_board_thread_t threads[];
} cg_board_shm_t;

/* The master's private record of a slot. */
typedef struct cg_board_slot {
    cg_board_shm_t *shm;
    size_t size;          /* bytes mapped */
    pid_t pid;            /* the worker holding it; 0 when free */
    uint32_t nthreads;    /* threads the holder serves with */
    uint64_t starts;      /* workers started in it */
    uint64_t timeouts;    /* of them, timed out by the master (WORKER TIMEOUT) */
    uint64_t cpu_ended_us; /* user+system CPU of the workers that left it */
    /* what the last scrape showed, so that no counter it reports goes back
     * (a thread's busy time is read as two words the worker writes apart) */
    uint64_t last_cpu_us;
    uint64_t *last_busy_us; /* shm->nthreads entries */
} cg_board_slot_t;

typedef struct cg_board {
    cg_board_slot_t *slots;
    size_t nslots;
} cg_board_t;

/* ---- master side ---- */

/* A board with no slots yet. Free with cg_board_free (in a worker after
 * cg_board_child, that frees only the board's memory: the mappings are
 * gone or the worker's). */
cg_board_t *cg_board_new(void);
void cg_board_free(cg_board_t *b);

/*
 * Give the worker about to be forked the lowest free slot, mapped with room
 * for nthreads serving threads (a slot that had fewer is remapped, its
 * counters copied). Returns the slot index, or -errno when nothing can be
 * mapped (the worker then runs without a slot: its requests are not
 * counted). Call cg_board_bind once the pid is known, or cg_board_release
 * when the fork failed.
 */
int cg_board_claim(cg_board_t *b, uint32_t nthreads);
void cg_board_bind(cg_board_t *b, int slot, pid_t pid);
/* The worker in `slot` is gone: its gauges are zeroed (its connections went
 * with it) and, when ru is not NULL, its CPU time is kept. */
void cg_board_release(cg_board_t *b, int slot, const struct rusage *ru);
/* The master timed the worker in `slot` out. */
void cg_board_timed_out(cg_board_t *b, int slot);
/* In a freshly forked worker: unmap every slot but `keep`, and return it
 * (NULL when keep < 0). The board itself is the parent's copy, left alone. */
cg_board_shm_t *cg_board_child(cg_board_t *b, int keep);

/* ---- worker side (any serving thread, without the GIL) ---- */

/* The struct of serving thread i, or NULL when there is no board or i is
 * beyond its room. */
static inline cg_board_thread_t *cg_board_thread(cg_board_shm_t *s, uint32_t i)
{
    return s != NULL && i < s->nthreads ? &s->threads[i] : NULL;
}

/* Single-writer increments: a load and a store, visible to the master's
 * relaxed loads without tearing. */
#define CG_BOARD_ADD(field, n)                                                                  \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n),              \
                     __ATOMIC_RELAXED)

/* A request starts being served on thread t (NULL: nothing). */
static inline void cg_board_busy_begin(cg_board_thread_t *t, uint64_t now_us)
{
    if (t != NULL)
        __atomic_store_n(&t->busy_since, now_us ? now_us : 1, __ATOMIC_RELAXED);
}

/* The request is over (its response written or abandoned). */
void cg_board_busy_end(cg_board_thread_t *t, uint64_t now_us);
/* An event loop serving many requests at once: one more / one fewer in
 * progress; the loop counts as busy while any is. */
void cg_board_enter(cg_board_thread_t *t, uint64_t now_us);
void cg_board_leave(cg_board_thread_t *t, uint64_t now_us);
/* Count an answered request: its status code (negative: none that parses)
 * and how long it took, as the access log's request_time. */
void cg_board_request(cg_board_thread_t *t, long status, uint64_t duration_us);
/* The loop refused a request with an error page of this status. */
void cg_board_refused(cg_board_shm_t *s, int status);
/* Connections: one accepted / the count now open. */
static inline void cg_board_conn_accepted(cg_board_shm_t *s)
{
    if (s != NULL)
        CG_BOARD_ADD(s->conns_total, 1);
}
static inline void cg_board_conns_open(cg_board_shm_t *s, uint64_t n)
{
    if (s != NULL)
        __atomic_store_n(&s->conns_open, n, __ATOMIC_RELAXED);
}

/* The bucket index of a duration (CG_BOARD_NBUCKETS: +Inf). */
size_t cg_board_bucket(uint64_t duration_us);
/* The bucket bounds in seconds, for the exposition. */
extern const double cg_board_bounds[CG_BOARD_NBUCKETS];

#endif
