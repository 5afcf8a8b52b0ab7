/*
 * workers.c - the master's worker table: fork, reap, time out, scale.
 *
 * The table is an array of pointers kept in spawn order, so "oldest first"
 * (TTOU, HUP) is simply the front. Each cg_worker_t is allocated on its own:
 * the child keeps using its copy after fork.
 */
#include "arbiter.h"

#include "../metrics/statsd.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* xorshift64*: the arbiter's own generator for jitter and fork spacing, so
 * the application's use of random() is not disturbed. */
static uint64_t cg__rand(cg_arbiter_t *a)
{
    uint64_t x = a->rng ? a->rng : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    a->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Forget a worker that is gone; ru: its resource usage when reaped. */
static void cg__worker_free(cg_arbiter_t *a, cg_worker_t *w, const struct rusage *ru)
{
    if (a->board != NULL)
        cg_board_release(a->board, w->board_slot, ru);
    cg_balance_release(a->balance, w->balance_slot);
    cg_heartbeat_destroy(&w->hb);
    free(w);
}

static ssize_t cg__find(const cg_arbiter_t *a, pid_t pid)
{
    for (size_t i = 0; i < a->nworkers; i++)
        if (a->workers[i]->pid == pid)
            return (ssize_t)i;
    return -1;
}

static cg_worker_t *cg__remove(cg_arbiter_t *a, size_t i)
{
    cg_worker_t *w = a->workers[i];
    memmove(&a->workers[i], &a->workers[i + 1], (a->nworkers - i - 1) * sizeof(*a->workers));
    a->nworkers--;
    return w;
}

pid_t cg_arbiter_fork(cg_arbiter_t *a)
{
    const cg_config_t *cfg = a->cfg;
    /* Until the child has reset its handlers and closed the self-pipe, a
     * signal sent to it would otherwise land in the master's queue.
     * Buffered stdio is flushed so it is not written twice. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    fflush(NULL);
    CG_HOOK0(cfg->hooks, fork_prepare);
    pid_t pid = fork();
    if (pid == 0) {
        CG_HOOK0(cfg->hooks, fork_child);
        /* do not keep the siblings' heartbeat pages */
        for (size_t i = 0; i < a->nworkers; i++)
            cg_heartbeat_destroy(&a->workers[i]->hb);
        return 0;
    }
    int fork_errno = errno;
    CG_HOOK0(cfg->hooks, fork_parent);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return pid < 0 ? -fork_errno : pid;
}

void cg_arbiter_spawn_worker(cg_arbiter_t *a)
{
    const cg_config_t *cfg = a->cfg;
    cg_worker_t *w = cg_xcalloc(1, sizeof(*w));
    int r;

    a->worker_age++;
    w->age = a->worker_age;
    w->ppid = a->pid;
    w->arbiter = a;
    w->cfg = cfg;
    w->log = a->log;
    w->listeners = a->listeners;
    w->nlisteners = a->nlisteners;
    w->tls = a->tls;
    w->nworkers = (int)a->num_workers;
    w->wake_pipe[0] = w->wake_pipe[1] = -1;
    w->alive = 1;
    if (cfg->max_requests > 0) {
        uint64_t jitter = 0;
        if (cfg->max_requests_jitter > 0)
            jitter = cg__rand(a) % ((uint64_t)cfg->max_requests_jitter + 1);
        w->max_requests = (uint64_t)cfg->max_requests + jitter;
    } else {
        w->max_requests = UINT64_MAX;
    }
    if ((r = cg_heartbeat_create(&w->hb)) < 0) {
        cg_log_error(a->log, "Cannot create the worker heartbeat: %s", strerror(-r));
        free(w);
        return;
    }
    cg_arbiter_metrics_claim(a, w);
    if (a->balance == NULL && !a->balance_tried) {
        a->balance_tried = true;
        a->balance = cg_balance_new();
        if (a->balance == NULL)
            cg_log_warning(a->log, "No shared load table, workers accept unbalanced: %s",
                           strerror(errno));
    }
    w->balance = a->balance;
    w->balance_slot = cg_balance_claim(a->balance);

    if (a->nworkers == a->capworkers) {
        a->capworkers = a->capworkers ? a->capworkers * 2 : 8;
        a->workers = cg_xrealloc(a->workers, a->capworkers * sizeof(*a->workers));
    }

    CG_HOOK(cfg->hooks, pre_fork, a, w);
    pid_t pid = cg_arbiter_fork(a);
    if (pid == 0) {
        w->pid = getpid();
        cg_arbiter_metrics_child(a, w);
        cg_arbiter_ctl_child(a);
        cg_arbiter_signals_child(a);
        cg_arbiter_set_title(a, "worker");
        _exit(a->worker_main(w));
    }
    if (pid < 0) {
        cg_log_error(a->log, "fork() failed: %s", strerror((int)-pid));
        cg__worker_free(a, w, NULL);
        return;
    }
    w->pid = pid;
    if (a->board != NULL)
        cg_board_bind(a->board, w->board_slot, pid);
    a->workers[a->nworkers++] = w;
    a->stats.workers_spawned++;
}

long cg_arbiter_active(const cg_arbiter_t *a)
{
    long n = 0;
    for (size_t i = 0; i < a->nworkers; i++)
        if (!a->workers[i]->retiring && !cg_arbiter_reload_retired(&a->reload, a->workers[i]->age))
            n++;
    return n;
}

void cg_arbiter_spawn_workers(cg_arbiter_t *a)
{
    long n = a->num_workers - cg_arbiter_active(a);
    for (long i = 0; i < n; i++) {
        if (i > 0) {
            /* spread the boots a little, as Gunicorn does */
            unsigned ms = (unsigned)(cg__rand(a) % 100);
            struct timespec ts = {0, (long)ms * 1000000L};
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
        }
        cg_arbiter_spawn_worker(a);
    }
}

void cg_arbiter_manage_workers(cg_arbiter_t *a)
{
    if (cg_arbiter_active(a) < a->num_workers)
        cg_arbiter_spawn_workers(a);

    /* As Gunicorn, the count includes workers already told to stop by TTOU
     * but not yet reaped, so they may be sent SIGTERM again on the next pass.
     * Workers a HUP retired are left out: they were told once, and the new
     * generation has taken their place. */
    long active = cg_arbiter_active(a);
    size_t idx = 0;
    while (active > a->num_workers && idx < a->nworkers) {
        if (a->workers[idx]->retiring || cg_arbiter_reload_retired(&a->reload, a->workers[idx]->age)) {
            idx++;
            continue;
        }
        pid_t pid = a->workers[idx]->pid;
        size_t before = a->nworkers;
        cg_arbiter_kill_worker(a, pid, SIGTERM);
        if (a->nworkers == before) /* still listed (not ESRCH) */
            idx++;
        active--;
    }
    if (active != a->last_logged_count) {
        char msg[96];
        a->last_logged_count = active;
        cg_log_debug(a->log, "%ld workers", active);
        cg_statsd_send_long(a->log->statsd, CG_STATSD_GAUGE, "gunicorn.workers", active);
        snprintf(msg, sizeof(msg), "STATUS=Gunicorn arbiter: %ld workers", active);
        cg_arbiter_notify(a, msg);
    }
    if (a->cfg->enable_backlog_metric) {
        /* Gunicorn's enable_backlog_metric: the debug line and the histogram
         * on every pass, whether statsd is on or not for the line */
        long backlog = cg_statsd_backlog(a->listeners, a->nlisteners);
        if (backlog >= 0) {
            cg_log_debug(a->log, "socket backlog: %ld", backlog);
            cg_statsd_send_long(a->log->statsd, CG_STATSD_HISTOGRAM, "gunicorn.backlog", backlog);
        }
    }
}

void cg_arbiter_retire_old(cg_arbiter_t *a)
{
    /* Ages grow in table order and the retired ones are a prefix of it, so
     * retiring the oldest of the others keeps them a prefix: one number
     * (reload.retired_age) says who is retired. When every spawn of the new
     * generation worked, this is every worker from before the HUP; when a
     * fork failed, the newest old workers keep serving in its place. */
    long excess = cg_arbiter_active(a) - a->num_workers;
    int last = a->reload.retired_age;
    size_t n = a->nworkers;
    pid_t *pids = cg_xmalloc((n ? n : 1) * sizeof(*pids));
    size_t k = 0;
    for (size_t i = 0; i < n && excess > 0; i++) {
        const cg_worker_t *w = a->workers[i];
        if (cg_arbiter_reload_retired(&a->reload, w->age))
            continue;
        pids[k++] = w->pid;
        last = w->age;
        excess--;
    }
    cg_arbiter_reload_begin(&a->reload, last, cg_monotonic_ms(), a->cfg->graceful_timeout);
    for (size_t i = 0; i < k; i++)
        cg_arbiter_kill_worker(a, pids[i], SIGTERM);
    free(pids);
}

void cg_arbiter_reload_poll(cg_arbiter_t *a)
{
    int oldest = a->nworkers > 0 ? a->workers[0]->age : -1;
    if (!cg_arbiter_reload_finish(&a->reload, oldest, cg_monotonic_ms()))
        return;
    char msg[96];
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=Gunicorn arbiter: %ld workers", a->num_workers);
    cg_arbiter_notify(a, msg);
}

void cg_arbiter_murder_workers(cg_arbiter_t *a)
{
    if (a->cfg->timeout <= 0)
        return;
    uint64_t limit = (uint64_t)a->cfg->timeout * 1000u;
    size_t n = a->nworkers;
    pid_t *pids = cg_xmalloc((n ? n : 1) * sizeof(*pids));
    for (size_t i = 0; i < n; i++)
        pids[i] = a->workers[i]->pid;
    for (size_t i = 0; i < n; i++) {
        ssize_t k = cg__find(a, pids[i]);
        if (k < 0)
            continue;
        cg_worker_t *w = a->workers[k];
        if (cg_heartbeat_age_ms(&w->hb) <= limit)
            continue;
        if (!w->aborted) {
            cg_log_critical(a->log, "WORKER TIMEOUT (pid:%d)", (int)w->pid);
            w->aborted = true;
            if (a->board != NULL)
                cg_board_timed_out(a->board, w->board_slot);
            cg_arbiter_kill_worker(a, w->pid, SIGABRT);
        } else {
            cg_arbiter_kill_worker(a, w->pid, SIGKILL);
        }
    }
    free(pids);
}

void cg_arbiter_reap_workers(cg_arbiter_t *a, bool halt_on_boot_error)
{
    for (;;) {
        int status;
        struct rusage ru;
        /* wait4: the CPU time the worker used, kept in its metrics slot */
        pid_t pid = wait4(-1, &status, WNOHANG, &ru);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0) /* 0: none exited yet; ECHILD: no children */
            return;
        if (pid == a->reexec_pid) {
            /* our USR2 child (the new master) went away: a later USR2 may retry */
            a->reexec_pid = 0;
            cg_arbiter_ctl_reclaim(a);
            continue;
        }
        if (cg_arbiter_dirty_reaped(a, pid, status)) {
            if (a->stopping && halt_on_boot_error)
                return;
            continue;
        }
        ssize_t k = cg__find(a, pid);
        if (k < 0) {
            /* e.g. orphans re-parented to us when we run as PID 1 */
            cg_log_debug(a->log, "Reaped unknown child process (pid:%d, status:%d)", (int)pid,
                         status);
            continue;
        }
        cg_worker_t *w = cg__remove(a, (size_t)k);
        int exitcode = -1;
        if (WIFEXITED(status)) {
            exitcode = WEXITSTATUS(status);
        } else if (WIFSIGNALED(status)) {
            int sig = WTERMSIG(status);
            char other[32];
            const char *name = cg_arbiter_signal_name(sig);
            if (!name) {
                snprintf(other, sizeof(other), "signal %d", sig);
                name = other;
            }
            if (sig == SIGKILL)
                cg_log_error(a->log, "Worker (pid:%d) was sent %s! Perhaps out of memory?",
                             (int)pid, name);
            else if (sig == SIGTERM)
                cg_log_info(a->log, "Worker (pid:%d) was sent %s!", (int)pid, name);
            else
                cg_log_warning(a->log, "Worker (pid:%d) was sent %s!", (int)pid, name);
        }
        if (exitcode > 0)
            cg_log_error(a->log, "Worker (pid:%d) exited with code %d.", (int)pid, exitcode);
        if (halt_on_boot_error && exitcode == CG_WORKER_EXIT_BOOT_ERROR) {
            cg__worker_free(a, w, &ru);
            cg_arbiter_halt_request(a, CG_WORKER_EXIT_BOOT_ERROR, "Worker failed to boot.");
            return;
        }
        if (halt_on_boot_error && exitcode == CG_WORKER_EXIT_APP_LOAD_ERROR) {
            cg__worker_free(a, w, &ru);
            cg_arbiter_halt_request(a, CG_WORKER_EXIT_APP_LOAD_ERROR, "App failed to load.");
            return;
        }
        CG_HOOK(a->cfg->hooks, child_exit, a, w);
        cg__worker_free(a, w, &ru);
    }
}

void cg_arbiter_kill_worker(cg_arbiter_t *a, pid_t pid, int sig)
{
    if (kill(pid, sig) == 0) {
        /* Gunicorn counts these two as kills in its stats */
        if (sig == SIGTERM || sig == SIGKILL)
            a->stats.workers_killed++;
        return;
    }
    if (errno == ESRCH) {
        /* already gone (and reaped by someone else): forget it */
        ssize_t k = cg__find(a, pid);
        if (k >= 0)
            cg__worker_free(a, cg__remove(a, (size_t)k), NULL);
        return;
    }
    cg_log_error(a->log, "kill(%d, %s) failed: %s", (int)pid, cg_arbiter_signal_name(sig),
                 strerror(errno));
}

void cg_arbiter_kill_workers(cg_arbiter_t *a, int sig)
{
    size_t n = a->nworkers;
    pid_t *pids = cg_xmalloc((n ? n : 1) * sizeof(*pids));
    for (size_t i = 0; i < n; i++)
        pids[i] = a->workers[i]->pid;
    for (size_t i = 0; i < n; i++)
        cg_arbiter_kill_worker(a, pids[i], sig);
    free(pids);
}
