/*
 * arbiter.c - the master's start-up, main loop and shutdown (Gunicorn 26's
 * Arbiter.start/run/halt/stop).
 *
 * Loop: wait up to 1 s for the signal pipe, run every queued signal's action
 * in arrival order, reap, time out stale workers, fix the worker count.
 * Leaving the loop is always a "halt": graceful stop of the workers, the
 * "Shutting down" lines, pidfile removal, and the status as return value.
 */
#include "arbiter.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CG__MAX_BATCH 4096

void cg_arbiter_halt_request(cg_arbiter_t *a, int status, const char *reason)
{
    if (a->stopping)
        return;
    a->stopping = true;
    a->exit_status = status;
    a->reason = reason;
}

void cg_arbiter_stop(cg_arbiter_t *a, bool graceful)
{
    /* no USR2 / systemd / reuse_port yet, so unix sockets are always ours */
    cg_net_close_all(a->listeners, a->nlisteners, true);
    a->listeners = NULL;
    a->nlisteners = 0;

    long gt = a->cfg->graceful_timeout > 0 ? a->cfg->graceful_timeout : 0;
    uint64_t limit = cg_monotonic_ms() + (uint64_t)gt * 1000u;
    cg_arbiter_kill_workers(a, graceful ? SIGTERM : SIGQUIT);

    bool quick = !graceful;
    while (a->nworkers > 0 && cg_monotonic_ms() < limit) {
        if (!quick) {
            /* INT/QUIT during a graceful stop: hurry everyone up */
            int sigs[64];
            size_t n;
            while (!quick && (n = cg_arbiter_signals_drain(a, sigs, CG_ARRAY_SIZE(sigs))) > 0)
                for (size_t i = 0; i < n; i++) {
                    if (sigs[i] != SIGINT && sigs[i] != SIGQUIT)
                        continue;
                    cg_log_info(a->log, "Quick shutdown requested");
                    quick = true;
                    cg_arbiter_kill_workers(a, SIGQUIT);
                    limit = cg_monotonic_ms() + 2000u;
                    break;
                }
        }
        cg_arbiter_reap_workers(a, false);
        if (a->nworkers == 0)
            break;
        /* 0.1 s, cut short by any signal (a child's CHLD in particular) */
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    cg_arbiter_kill_workers(a, SIGKILL);
    cg_arbiter_reap_workers(a, false);
}

/* Run every signal that is queued, in order. An action that ends the loop
 * drops the rest of the batch, as Gunicorn's StopIteration does. */
static void cg__arbiter_handle_signals(cg_arbiter_t *a)
{
    int *batch = cg_xmalloc(CG__MAX_BATCH * sizeof(*batch));
    size_t n = cg_arbiter_signals_drain(a, batch, CG__MAX_BATCH);
    for (size_t i = 0; i < n && !a->stopping; i++)
        cg_arbiter_signals_dispatch(a, batch[i]);
    free(batch);
}

static const char *cg__arbiter_worker_class(const cg_config_t *cfg)
{
    const char *wc = cfg->worker_class ? cfg->worker_class : "sync";
    size_t n = strlen(wc);
    bool is_sync = strcmp(wc, "sync") == 0 ||
                   (n >= 10 && strcmp(wc + n - 10, "SyncWorker") == 0);
    return is_sync && cfg->threads > 1 ? "gthread" : wc;
}

/* Parse every bind address up front: Gunicorn does it when the Arbiter is
 * built, so a bad address fails before "Starting gunicorn" is logged. */
static int cg__arbiter_check_binds(const cg_config_t *cfg)
{
    for (size_t i = 0; i < cfg->bind.n; i++) {
        cg_net_addr_t addr;
        char err[512];
        if (cg_net_parse_address(cfg->bind.v[i], &addr, err, sizeof(err)) < 0) {
            fprintf(stderr, "\nError: %s\n\n", err);
            fflush(stderr);
            return -EINVAL;
        }
    }
    return 0;
}

static void cg__arbiter_seed(cg_arbiter_t *a)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    a->rng = ((uint64_t)ts.tv_sec * 1000000007ull) ^ (uint64_t)ts.tv_nsec ^
             ((uint64_t)a->pid << 32) ^ 0x9e3779b97f4a7c15ull;
}

static int cg__arbiter_start(cg_arbiter_t *a)
{
    cg_config_t *cfg = a->cfg;
    char err[768];
    int r;

    cg_log_info(a->log, "Starting gunicorn %s", CG_VERSION);

    if (cfg->pidfile) {
        if ((r = cg_arbiter_pidfile_create(cfg->pidfile, a->pid, err, sizeof(err))) < 0) {
            fprintf(stderr, "\nError: %s\n\n", err);
            fflush(stderr);
            return r;
        }
        a->pidfile = cg_xstrdup(cfg->pidfile);
    }

    if ((r = cg_arbiter_signals_init(a)) < 0) {
        cg_log_error(a->log, "Cannot set up signal handling: %s", strerror(-r));
        return r;
    }

    /* unix sockets are created under the configured umask, as Gunicorn's
     * UnixSocket.bind does; the process umask is left as it was */
    mode_t old_umask = umask((mode_t)cfg->umask);
    r = cg_net_listen_all((const char *const *)cfg->bind.v, cfg->bind.n, (int)cfg->backlog, false,
                          a->log, &a->listeners, &a->nlisteners);
    umask(old_umask);
    if (r < 0)
        return r;

    char *display = cg_net_listeners_display(a->listeners, a->nlisteners);
    cg_log_debug(a->log, "Arbiter booted");
    cg_log_info(a->log, "Listening at: %s (%d)", display, (int)a->pid);
    cg_log_info(a->log, "Using worker: %s", cg__arbiter_worker_class(cfg));
    free(display);
    return 0;
}

static void cg__arbiter_cleanup(cg_arbiter_t *a)
{
    cg_net_close_all(a->listeners, a->nlisteners, true);
    a->listeners = NULL;
    a->nlisteners = 0;
    for (size_t i = 0; i < a->nworkers; i++) {
        cg_heartbeat_destroy(&a->workers[i]->hb);
        free(a->workers[i]);
    }
    free(a->workers);
    a->workers = NULL;
    a->nworkers = 0;
    if (a->pidfile)
        cg_arbiter_pidfile_unlink(a->pidfile, a->pid);
    free(a->pidfile);
    a->pidfile = NULL;
    cg_arbiter_signals_restore(a);
}

int cg_arbiter_run_with(cg_config_t *cfg, cg_log_t *log, cg_arbiter_worker_main_t worker_main)
{
    cg_arbiter_t a;
    memset(&a, 0, sizeof(a));
    a.cfg = cfg;
    a.log = log;
    a.worker_main = worker_main;
    a.pid = getpid();
    a.master_name = "Master";
    a.num_workers = cfg->workers;
    a.last_logged_count = -1;
    a.sig_pipe[0] = a.sig_pipe[1] = -1;
    cg__arbiter_seed(&a);

    if (cg__arbiter_check_binds(cfg) < 0)
        return 1;
    setenv("SERVER_SOFTWARE", CG_SERVER_SOFTWARE, 1);

    if (cg__arbiter_start(&a) < 0) {
        /* Gunicorn exits 1 here without the "Shutting down" lines */
        cg__arbiter_cleanup(&a);
        return 1;
    }

    cg_arbiter_manage_workers(&a);
    while (!a.stopping) {
        cg_arbiter_signals_wait(&a, 1000);
        cg__arbiter_handle_signals(&a);
        if (a.stopping)
            break;
        /* normally a no-op: CHLD already reaped; covers a dropped CHLD byte */
        cg_arbiter_reap_workers(&a, true);
        if (a.stopping)
            break;
        cg_arbiter_murder_workers(&a);
        cg_arbiter_manage_workers(&a);
    }

    /* halt() */
    cg_arbiter_stop(&a, true);
    cg_log_level_t lvl = a.exit_status == 0 ? CG_LOG_INFO : CG_LOG_ERROR;
    cg_log_msg(log, lvl, "Shutting down: %s", a.master_name);
    if (a.reason)
        cg_log_msg(log, lvl, "Reason: %s", a.reason);
    cg__arbiter_cleanup(&a);
    return a.exit_status;
}
