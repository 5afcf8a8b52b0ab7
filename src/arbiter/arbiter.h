/*
 * arbiter.h - the master process: binds the listeners, forks and watches the
 * workers, and turns signals into actions, as Gunicorn 26's Arbiter does.
 *
 * Signal handlers never do work: they write the signal number into a
 * non-blocking self-pipe that the main loop polls once a second at most.
 */
#ifndef CG_ARBITER_H
#define CG_ARBITER_H

#include "../cg.h"
#include "../config/config.h"
#include "../ctl/ctl.h"
#include "../log/log.h"
#include "../metrics/board.h"
#include "../metrics/server.h"
#include "../net/net.h"
#include "../workers/worker.h"
#include "hooks.h"

/* What a forked child runs; its return value is the child's exit status. */
typedef int (*cg_arbiter_worker_main_t)(cg_worker_t *w);

/*
 * Run the master until it stops. Borrows cfg and log (both must outlive the
 * call). Returns the master's exit status: 0 after TERM/INT/QUIT, 1 when the
 * listeners or the pidfile cannot be set up, 3/4 when a worker failed to boot
 * or load the app. Workers run cg_worker_main().
 */
int cg_arbiter_run(cg_config_t *cfg, cg_log_t *log);

/* The same with another worker entry point (tests fork fake workers). */
int cg_arbiter_run_with(cg_config_t *cfg, cg_log_t *log, cg_arbiter_worker_main_t worker_main);

/*
 * Gunicorn's preload_app, supplied by the caller (the arbiter is plain C):
 * import the app in the master. Called after daemonizing and before
 * "Starting gunicorn" (log NULL: errors go to stderr), and again on every HUP
 * while cfg->preload_app (log set: errors are logged). Returns 0, or the
 * status the master leaves with: at start-up at once, on HUP as Gunicorn's
 * "Unhandled exception in main loop" (quick stop, exit 255).
 */
typedef int (*cg_arbiter_preload_t)(void *ctx, cg_config_t *cfg, cg_log_t *log);

/* Parse every bind address up front: Gunicorn does it when the Arbiter is
 * built, so a bad address fails before "Starting gunicorn" is logged (and
 * --check-config fails the same way). Prints "\nError: <why>\n\n" to stderr
 * and returns -EINVAL for the first bad one; 0 when all parse. */
int cg_arbiter_check_binds(const cg_config_t *cfg);

/* cg_arbiter_run() with a preload function (NULL: --preload is ignored). */
int cg_arbiter_run_preload(cg_config_t *cfg, cg_log_t *log, cg_arbiter_preload_t preload,
                           void *preload_ctx);
/* Both: the worker entry point and the preload function (may be NULL). */
int cg_arbiter_run_full(cg_config_t *cfg, cg_log_t *log, cg_arbiter_worker_main_t worker_main,
                        cg_arbiter_preload_t preload, void *preload_ctx);

/* ------------------------------------------------------------------------
 * Shared between the files of src/arbiter; not for other parts.
 */

/*
 * A HUP's hand-over from one generation of workers to the next, as state the
 * main loop advances instead of a wait inside the HUP handler (so TERM, QUIT,
 * CHLD, TTIN/TTOU and worker timeouts are handled while it lasts). Workers
 * are aged in spawn order, so every generation a HUP retired is simply the
 * ages up to retired_age: those workers were sent TERM once, are never sent
 * it again, and no longer count towards the wanted number of workers.
 * Plain data: reload.c's functions take the clock as a parameter.
 */
typedef struct cg_arbiter_reload {
    bool active;          /* retired workers are still being waited for */
    int retired_age;      /* workers with age <= this were retired by a HUP (0: none) */
    uint64_t deadline_ms; /* monotonic ms when the wait ends, whoever is left */
} cg_arbiter_reload_t;

/* reload.c */
/* A HUP retired every worker up to age retired_age at time now_ms: wait for
 * them at most graceful_timeout seconds (negative counts as 0). A HUP during
 * another one extends the retired ages and restarts the wait. */
void cg_arbiter_reload_begin(cg_arbiter_reload_t *r, int retired_age, uint64_t now_ms,
                             long graceful_timeout);
/* Whether a worker of this age was retired by a HUP. */
bool cg_arbiter_reload_retired(const cg_arbiter_reload_t *r, int age);
/* The wait is over when no worker is left (oldest_age < 0), the oldest is
 * newer than every retired age, or the deadline has passed. Returns true
 * exactly once per wait, when it ends (and clears r->active). */
bool cg_arbiter_reload_finish(cg_arbiter_reload_t *r, int oldest_age, uint64_t now_ms);

typedef struct cg_arbiter {
    cg_config_t *cfg;
    cg_log_t *log;
    cg_arbiter_worker_main_t worker_main;
    pid_t pid;
    const char *master_name; /* "Master" */

    cg_listener_t *listeners;
    size_t nlisteners;

    cg_worker_t **workers; /* live workers, in spawn order (oldest first) */
    size_t nworkers;
    size_t capworkers;
    long num_workers;      /* wanted count (TTIN/TTOU change it) */
    int worker_age;        /* last age handed out */
    long last_logged_count; /* -1 before the first "%d workers" line */

    uint64_t rng;  /* max_requests jitter, fork spacing */
    char *pidfile; /* path we created, NULL when none */
    int sig_pipe[2];

    /* set when the loop must end: halt status/reason (HaltServer) */
    bool stopping;
    int exit_status;
    const char *reason;

    /* USR2 upgrades, systemd, process life */
    pid_t master_pid;      /* the old master while we are its unpromoted USR2 child, else 0 */
    pid_t reexec_pid;      /* our USR2 child until it is reaped, else 0 */
    bool systemd;          /* listeners came from LISTEN_FDS */
    char *exe;             /* binary to exec on USR2 (/proc/self/exe at start); owned */
    char *cwd;             /* directory at start, where USR2 execs; owned */
    uint64_t watchdog_ms;  /* systemd watchdog period (WATCHDOG_USEC), 0: none */
    uint64_t watchdog_next; /* monotonic ms of the next WATCHDOG=1 */

    cg_arbiter_preload_t preload; /* may be NULL */
    void *preload_ctx;
    bool crashed; /* leave with 255 and no halt() lines (an "unhandled exception") */

    cg_arbiter_reload_t reload; /* the last HUP's hand-over */

    /* metrics_bind: the scoreboard the workers write and its endpoint
     * (both NULL when off) */
    cg_board_t *board;
    /* the workers' shared load table (src/workers/balance.h), mapped at the
     * first fork; NULL when that failed (workers accept unbalanced) */
    cg_balance_t *balance;
    bool balance_tried;
    cg_metrics_server_t *metrics;

    /* TLS (certfile/keyfile): the server context the next workers inherit;
     * NULL when TLS is off. Built at start and again on HUP. */
    struct cg_tls_ctx *tls;

    /* the control socket (NULL when off or when it could not be made), and
     * a count of its replacements: the loop serves the pollfds it polled
     * only if the server is still the one it polled */
    cg_ctl_server_t *ctl;
    unsigned ctl_gen;

    /* dirty_workers and dirty_apps set: the dirty arbiter (dirty.c) */
    pid_t dirty_pid;           /* 0 while none runs */
    char *dirty_dir;           /* private directory of the app sockets; owned */
    uint64_t dirty_spawned_ms; /* monotonic ms of the last fork of one */
    char *dirty_settings;      /* the dirty_* settings it runs with; owned */
    char *dirty_pidfile;       /* Gunicorn's $TMPDIR/gunicorn-dirty-NAME.pid; owned */
    /* dirty arbiters a HUP replaced (changed dirty_* settings), stopping
     * on their own: their socket directories go when they are reaped */
    struct cg_dirty_old {
        pid_t pid;
        char *dir;
    } *dirty_old;
    size_t ndirty_old;
    /* TTIN [0] and TTOU [1] that `dirty add|remove` still has to send to
     * dirty_scale_pid, one per loop pass once the one before was taken
     * (ctl.c) */
    long dirty_scale_left[2];
    pid_t dirty_scale_pid;
    /* the dirty arbiter's num_workers as the master's signals set it
     * (dirty_workers at its start and on a HUP): `dirty remove` answers
     * how many it removes, as Gunicorn's, stopping at the apps' floor */
    long dirty_target;

    /* Gunicorn's Arbiter._stats, for the control socket's show stats */
    struct {
        uint64_t start_ms; /* monotonic ms at start */
        uint64_t workers_spawned;
        uint64_t workers_killed; /* TERM or KILL sent and delivered */
        uint64_t reloads;        /* HUPs handled */
        uint64_t shed;           /* connections refused off a full accept queue */
    } stats;
    /* overload.c: what was refused since the last warning, and when the
     * last warning and depth line were logged (monotonic ms) */
    struct {
        uint64_t shed;
        uint64_t warned_ms, logged_ms;
    } overload;
    int overload_ms; /* the loop's wait while a queue holds connections, -1: none */
} cg_arbiter_t;

/* Descriptors the loop polls beside the signal pipe: the metrics endpoint's
 * and the control socket's. */
#define CG_ARBITER_EXTRA_FDS (CG_METRICS_MAX_FDS + CG_CTL_MAX_FDS)

/* signals.c */
int cg_arbiter_signals_init(cg_arbiter_t *a);  /* pipe + handlers; 0 or -errno */
void cg_arbiter_signals_restore(cg_arbiter_t *a); /* default dispositions, close pipe */
void cg_arbiter_signals_child(cg_arbiter_t *a);   /* in a fresh child: defaults, unblock */
/* Read queued signal numbers (up to cap) without blocking; returns the count. */
size_t cg_arbiter_signals_drain(cg_arbiter_t *a, int *sigs, size_t cap);
/* Wait up to timeout_ms for the pipe to become readable, or for one of the
 * n `extra` descriptors (whose revents are filled; at most
 * CG_ARBITER_EXTRA_FDS). */
void cg_arbiter_signals_wait(cg_arbiter_t *a, int timeout_ms, struct pollfd *extra, size_t n);
/* Queue signo as if it had arrived (the control socket's reload, reopen and
 * shutdown): its action runs in the loop's next pass. 0 or -errno. */
int cg_arbiter_signals_raise(cg_arbiter_t *a, int signo);
/* Run the action of one queued signal (logs "Handling signal: ..."). */
void cg_arbiter_signals_dispatch(cg_arbiter_t *a, int signo);
/* Python's signal.Signals(n).name ("SIGKILL"), or NULL when it has none. */
const char *cg_arbiter_signal_name(int signo);

/* workers.c */
/* Workers that count towards num_workers: all but those a HUP retired. */
long cg_arbiter_active(const cg_arbiter_t *a);
/*
 * fork() for a child of the master (a worker, the dirty arbiter), with
 * every signal blocked across it. In the child (0): the fork_child hook has
 * run, the siblings' heartbeat pages are unmapped, signals stay blocked
 * until cg_arbiter_signals_child(). In the master: the fork_parent hook has
 * run and the signal mask is back; the pid, or -errno when fork() failed.
 */
pid_t cg_arbiter_fork(cg_arbiter_t *a);
void cg_arbiter_spawn_worker(cg_arbiter_t *a);
void cg_arbiter_spawn_workers(cg_arbiter_t *a);
void cg_arbiter_manage_workers(cg_arbiter_t *a);
void cg_arbiter_murder_workers(cg_arbiter_t *a);
/* Reap exited children. When halt_on_boot_error, a worker exit 3/4 sets
 * a->stopping with Gunicorn's HaltServer reason and stops reaping. */
void cg_arbiter_reap_workers(cg_arbiter_t *a, bool halt_on_boot_error);
void cg_arbiter_kill_worker(cg_arbiter_t *a, pid_t pid, int sig);
void cg_arbiter_kill_workers(cg_arbiter_t *a, int sig);
/* HUP's hand-over, after the new generation was spawned: send TERM to the
 * oldest workers not yet retired, as many as exceed num_workers, and start
 * waiting for them (a->reload). */
void cg_arbiter_retire_old(cg_arbiter_t *a);
/* Main loop: once the retired workers are gone or graceful_timeout passed,
 * end the reload (READY=1 to systemd). */
void cg_arbiter_reload_poll(cg_arbiter_t *a);

/* arbiter.c */
/* Close listeners, signal the workers (TERM when graceful, else QUIT), wait up
 * to graceful_timeout, then SIGKILL and reap. */
void cg_arbiter_stop(cg_arbiter_t *a, bool graceful);
/* Gunicorn's "Unhandled exception in main loop" (already logged): quick
 * stop, pidfile removed, the loop ends and the master exits 255. */
void cg_arbiter_crash(cg_arbiter_t *a);
/* Ask the loop to end with this status/reason (NULL reason: none). */
void cg_arbiter_halt_request(cg_arbiter_t *a, int status, const char *reason);

/* Set num_workers and fire the nworkers_changed hook (old -1 = None). */
void cg_arbiter_set_num_workers(cg_arbiter_t *a, long n, long old);
/* sd_notify(msg) when NOTIFY_SOCKET is set; failures logged at debug. */
void cg_arbiter_notify(cg_arbiter_t *a, const char *msg);
/* Periodic duties that must not wait for the loop: the systemd watchdog. */
void cg_arbiter_tick(cg_arbiter_t *a);
/* "cgunicorn: master [name]" (".2" while an unpromoted USR2 child). */
void cg_arbiter_set_title(cg_arbiter_t *a, const char *role);
/* Whether unix socket files are ours to unlink (not mid-USR2, not systemd,
 * not reuse_port), as Gunicorn's stop() decides. */
bool cg_arbiter_may_unlink(const cg_arbiter_t *a);
/* Open the configured listeners (binds) under the configured umask and
 * chown unix sockets to user/group; 0 or -errno (already logged). */
int cg_arbiter_bind(cg_arbiter_t *a);

/* memory.c: max_worker_memory. Replace workers over the limit, or asking
 * for it (request_timeout), successor first, and retire the replaced ones
 * once their successor has booted. */
void cg_arbiter_check_memory(cg_arbiter_t *a);

/* overload.c: log each TCP listener's accept-queue depth (debug), and
 * refuse the connections above a full queue's keep mark (503; a reset over
 * TLS). Returns the wait (ms) the loop should poll with next while some
 * queue holds connections, else -1. */
int cg_arbiter_overload_check(cg_arbiter_t *a);

/* Build the TLS context from a->cfg (none when TLS is off). At start
 * (reload false) a failure prints Gunicorn's error to stderr and returns
 * -errno: the master exits 1. On HUP a failure is logged and the previous
 * context is kept (new workers serve the old certificate); with none to
 * keep the master stops (exit 1) rather than serve plain HTTP. */
int cg_arbiter_tls_load(cg_arbiter_t *a, bool reload);

/* metrics.c: the metrics_bind endpoint */
/* Open it when metrics_bind is set (a USR2 parent's, when it handed one
 * over) and make the scoreboard. 0, or -errno (logged). */
int cg_arbiter_metrics_start(cg_arbiter_t *a);
/* After a HUP: follow a changed metrics_bind (old: the value before). */
void cg_arbiter_metrics_reload(cg_arbiter_t *a, const char *old);
/* The main loop's part: what to poll, and serving what came in. */
size_t cg_arbiter_metrics_pollfds(const cg_arbiter_t *a, struct pollfd *p, size_t cap);
void cg_arbiter_metrics_serve(cg_arbiter_t *a, const struct pollfd *p, size_t n);
/* Close the endpoint and free the scoreboard (master exit). */
void cg_arbiter_metrics_stop(cg_arbiter_t *a);
/* The USR2 child, before exec: let the endpoint survive it. */
void cg_arbiter_metrics_hand_over(cg_arbiter_t *a);
/* The worker about to be forked: its slot (w->board_slot, -1 when none).
 * Then, in the child, cg_arbiter_metrics_child; in the parent, bind or
 * release. */
void cg_arbiter_metrics_claim(cg_arbiter_t *a, cg_worker_t *w);
void cg_arbiter_metrics_child(cg_arbiter_t *a, cg_worker_t *w);

/* ctl.c: the control socket (control_socket, --no-control-socket) */
/* Create it unless disabled; a failure is a warning, as in Gunicorn. */
void cg_arbiter_ctl_start(cg_arbiter_t *a);
/* After a HUP: follow a changed path, mode or control_socket_disable. */
void cg_arbiter_ctl_reload(cg_arbiter_t *a);
/* Our USR2 child went away: take the path back if it had replaced ours. */
void cg_arbiter_ctl_reclaim(cg_arbiter_t *a);
/* The main loop's part: what to poll, and serving what came in. */
size_t cg_arbiter_ctl_pollfds(const cg_arbiter_t *a, struct pollfd *p, size_t cap);
void cg_arbiter_ctl_serve(cg_arbiter_t *a, const struct pollfd *p, size_t n);
/* Close it and remove the file if it is still ours (master exit). */
void cg_arbiter_ctl_stop(cg_arbiter_t *a);
/* In a forked worker: close the master's descriptors, keep the file. */
void cg_arbiter_ctl_child(cg_arbiter_t *a);
/* Main loop: send the next TTIN / TTOU a `dirty add|remove` queued, if
 * the one before is no longer pending in the dirty arbiter. */
void cg_arbiter_ctl_dirty_pace(cg_arbiter_t *a);
/* Whether some are queued (the loop then wakes up every few ms). */
bool cg_arbiter_ctl_dirty_pacing(const cg_arbiter_t *a);

/* dirty.c: the dirty arbiter (Gunicorn's dirty_apps / dirty_workers) */
/* Whether this master runs one (never inside a dirty arbiter). */
bool cg_arbiter_dirty_enabled(const cg_config_t *cfg);
/* Make the socket directory, tell the environment of the workers to come,
 * fork the dirty arbiter. 0 when none is configured or it started, else
 * -errno (logged): the master does not start. */
int cg_arbiter_dirty_start(cg_arbiter_t *a);
/* In reaping: true when pid was the dirty arbiter (then handled; an exit
 * 3/4 halts the master with Gunicorn's reason). */
bool cg_arbiter_dirty_reaped(cg_arbiter_t *a, pid_t pid, int status);
/* Main loop: restart a dirty arbiter that died (at most once a second). */
void cg_arbiter_dirty_manage(cg_arbiter_t *a);
/* In a dirty arbiter: the fewest workers TTOU leaves, as Gunicorn's: the
 * largest per-app limit (`:N` in dirty_apps, else the class's `workers` a
 * worker reported in <dir>/<i>.limit), at least 1. */
long cg_arbiter_dirty_floor(const cg_arbiter_t *a);
/* Send sig to the dirty arbiter if one runs. */
void cg_arbiter_dirty_signal(cg_arbiter_t *a, int sig);
/* Send sig to it and to those a HUP replaced that still run. */
void cg_arbiter_dirty_signal_all(cg_arbiter_t *a, int sig);
/* Whether a dirty arbiter runs (the current one or one a HUP replaced). */
bool cg_arbiter_dirty_running(const cg_arbiter_t *a);
/* HUP, after the configuration was read again: the dirty arbiter replaces
 * its workers when the dirty_* settings are unchanged; when they changed,
 * a new dirty tree (a new socket directory, told to the HTTP workers
 * forked from now on) starts on them and the old one is stopped. Call it
 * before the new HTTP workers are forked. */
void cg_arbiter_dirty_reload(cg_arbiter_t *a);
/* Master exit, after it was reaped: remove the socket directory. */
void cg_arbiter_dirty_cleanup(cg_arbiter_t *a);

/* pidfile.c (Gunicorn's pidfile.py rules) */
/* Returns 0, or -EEXIST / -ENOENT / -errno with Gunicorn's message in err. */
int cg_arbiter_pidfile_create(const char *path, pid_t pid, char *err, size_t errlen);
/* Remove path only if it still holds pid; errors ignored. */
void cg_arbiter_pidfile_unlink(const char *path, pid_t pid);

#endif
