/*
 * worker.h - one worker process: what the arbiter hands it and what it runs.
 *
 * The arbiter fills a cg_worker_t before fork (age, listeners, heartbeat,
 * per-worker max_requests with jitter); the child calls cg_worker_main() and
 * exits with its return value (Gunicorn's worker exit codes: 0 normal, 3 boot
 * error, 4 app load error, 255 crash after boot).
 */
#ifndef CG_WORKER_H
#define CG_WORKER_H

#include "../cg.h"
#include "../config/config.h"
#include "../log/log.h"
#include "../metrics/board.h"
#include "../net/net.h"
#include "balance.h"

#include <pthread.h>
#include <signal.h>

#define CG_WORKER_EXIT_OK 0
#define CG_WORKER_EXIT_BOOT_ERROR 3
#define CG_WORKER_EXIT_APP_LOAD_ERROR 4
#define CG_WORKER_EXIT_CRASH 255

/*
 * Liveness: one shared anonymous page per worker, mapped before fork. The worker
 * stores the CLOCK_MONOTONIC time (ms) of its last sign of life; the master
 * compares it with its own clock. Observably the same as Gunicorn's unlinked
 * tmp file + utime/fstat, without two syscalls per notify.
 */
typedef struct cg_heartbeat {
    volatile uint64_t *slot; /* MAP_SHARED page; NULL when not created */
} cg_heartbeat_t;

int cg_heartbeat_create(cg_heartbeat_t *hb);          /* 0 or -errno */
void cg_heartbeat_notify(cg_heartbeat_t *hb);         /* async-signal-safe */
/* The worker has loaded the app and serves (the second word of the page):
 * what the master waits for before retiring the worker it replaces. */
void cg_heartbeat_set_booted(cg_heartbeat_t *hb);
bool cg_heartbeat_booted(const cg_heartbeat_t *hb);
/* The worker wants a successor (the third word): a request it cannot stop
 * (request_timeout) holds one of its threads. The master replaces it as
 * it does a worker over max_worker_memory (src/arbiter/memory.c). */
void cg_heartbeat_ask_replace(cg_heartbeat_t *hb);
bool cg_heartbeat_replace_asked(const cg_heartbeat_t *hb);
uint64_t cg_heartbeat_age_ms(const cg_heartbeat_t *hb); /* ms since last notify */
void cg_heartbeat_destroy(cg_heartbeat_t *hb);

/* CLOCK_MONOTONIC in ms / us (async-signal-safe). */
uint64_t cg_monotonic_ms(void);
uint64_t cg_monotonic_us(void);

typedef struct cg_worker {
    /* set by the arbiter */
    int age;      /* spawn order */
    pid_t pid;    /* 0 until forked */
    pid_t ppid;   /* the master's pid */
    const cg_config_t *cfg;
    cg_log_t *log;
    cg_listener_t *listeners;
    size_t nlisteners;
    int nworkers; /* for wsgi.multiprocess */
    cg_heartbeat_t hb;
    uint64_t max_requests; /* UINT64_MAX when max_requests is 0 */
    bool aborted;          /* master side: SIGABRT already sent for a timeout */
    /* master side, max_worker_memory: replaced by `successor`; TERM is sent
     * once that one has booted (or at retire_deadline) */
    bool retiring, retire_sent;
    pid_t successor;
    uint64_t retire_deadline;
    struct cg_arbiter *arbiter; /* the master's state as of fork (for hooks); may be NULL */
    int board_slot;         /* scoreboard slot (metrics_bind), -1: none */
    cg_balance_t *balance;  /* the workers' shared load table; NULL: none */
    int balance_slot;       /* this worker's row there, -1: none */
    cg_board_shm_t *board;  /* worker side: that slot, mapped; NULL: none */
    /* TLS on every listener (certfile/keyfile set): the master's context,
     * inherited across fork; NULL: plain TCP */
    struct cg_tls_ctx *tls;

    /* worker side */
    volatile sig_atomic_t alive; /* cleared by TERM/QUIT/INT/ABRT */
    volatile sig_atomic_t quick; /* QUIT/INT: leave now */
    volatile sig_atomic_t reopen_logs; /* USR1 */
    volatile sig_atomic_t in_app;      /* the app runs on the main thread right now
                                        * (pool threads track their own) */
    volatile sig_atomic_t abort_exit;  /* ABRT while idle: leave with status 1 */
    volatile sig_atomic_t got_abort;   /* ABRT received (worker_abort hook due) */
    int wake_pipe[2]; /* self-pipe written by signal handlers; -1 when closed */
    uint64_t nr;      /* requests handled */
    bool booted;
    pthread_t main_tid; /* the thread signals are delivered to */
    size_t threads_left; /* pool threads still inside the app at exit: the
                          * interpreter and the WSGI state stay as they are */
    void *py;         /* the Python side's per-worker state (src/wsgi) */
    /* request_timeout's watchdog (src/wsgi/timeout.c); NULL when off */
    struct cg_wsgi_rt *rt;
    /* the request metrics waiting to be sent (src/metrics/statsd.h); NULL
     * without statsd or with statsd_flush_interval 0. The loop sends them
     * when due (cg_statsd_batch_due_ms), cg_worker_main() on the way out. */
    struct cg_statsd_batch *statsd_batch;
} cg_worker_t;

/* A request is about to be served: count it, and past max_requests (with
 * its jitter) tell the loop to stop after it, as Gunicorn's handle_request. */
static inline void cg_worker_count_request(cg_worker_t *w)
{
    w->nr++;
    if (w->nr >= w->max_requests && w->alive) {
        cg_log_info(w->log, "Autorestarting worker after current request.");
        w->alive = 0;
    }
}

/* Runs in the child after fork; never returns to the arbiter's loop.
 * Returns the process exit status. */
int cg_worker_main(cg_worker_t *w);

#endif
