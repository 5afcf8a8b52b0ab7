/*
 * arbiter.c - the master's start-up, main loop and shutdown (Gunicorn 26's
 * Arbiter.start/run/halt/stop).
 *
 * Loop: wait up to 1 s for the signal pipe (and the metrics endpoint's and
 * the control socket's descriptors), run every queued signal's action
 * in arrival order, reap, end a HUP's hand-over once the old generation has
 * left, time out stale workers, fix the worker count. No action waits: a
 * HUP's retiring workers are waited for here, a pass at a time.
 * Leaving the loop is always a "halt": graceful stop of the workers, the
 * "Shutting down" lines, pidfile removal, and the status as return value.
 */
#include "arbiter.h"

#include <sys/wait.h>

#include "../os/os.h"
#include "../tls/tls.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
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

bool cg_arbiter_may_unlink(const cg_arbiter_t *a)
{
    return a->reexec_pid == 0 && a->master_pid == 0 && !a->systemd && !a->cfg->reuse_port;
}

void cg_arbiter_set_num_workers(cg_arbiter_t *a, long n, long old)
{
    a->num_workers = n;
    CG_HOOK(a->cfg->hooks, nworkers_changed, a, (int)n, (int)old);
}

void cg_arbiter_notify(cg_arbiter_t *a, const char *msg)
{
    int r = cg_os_notify(msg);
    if (r < 0)
        cg_log_debug(a->log, "Failed to notify systemd: %s", strerror(-r));
}

void cg_arbiter_tick(cg_arbiter_t *a)
{
    if (a->watchdog_ms == 0)
        return;
    uint64_t now = cg_monotonic_ms();
    if (now < a->watchdog_next)
        return;
    cg_arbiter_notify(a, "WATCHDOG=1");
    a->watchdog_next = now + a->watchdog_ms / 2;
}

void cg_arbiter_set_title(cg_arbiter_t *a, const char *role)
{
    const cg_config_t *cfg = a->cfg;
    const char *name = cfg->proc_name ? cfg->proc_name
                       : cfg->default_proc_name ? cfg->default_proc_name
                                                : "gunicorn";
    char title[512];
    snprintf(title, sizeof(title), "cgunicorn: %s [%s%s]", role, name,
             a->master_pid != 0 ? ".2" : "");
    cg_proctitle_set(title);
}

int cg_arbiter_bind(cg_arbiter_t *a)
{
    const cg_config_t *cfg = a->cfg;
    /* unix sockets are created under the configured umask, as Gunicorn's
     * UnixSocket.bind does; the process umask is left as it was */
    mode_t old_umask = umask((mode_t)cfg->umask);
    int r = cg_net_listen_all((const char *const *)cfg->bind.v, cfg->bind.n, (int)cfg->backlog,
                              cfg->reuse_port, a->log, &a->listeners, &a->nlisteners);
    umask(old_umask);
    if (r < 0)
        return r;
    bool chown_wanted = cfg->source[CG_SETTING_user] != CG_SRC_DEFAULT ||
                        cfg->source[CG_SETTING_group] != CG_SRC_DEFAULT;
    /* as Gunicorn's logger does: the workers must be able to reopen (USR1)
     * the log files after dropping privileges */
    const char *logs[] = {a->log->error_path, a->log->access_path};
    for (size_t i = 0; chown_wanted && i < CG_ARRAY_SIZE(logs); i++)
        if (logs[i] != NULL && chown(logs[i], (uid_t)cfg->user, (gid_t)cfg->group) < 0)
            cg_log_debug(a->log, "Cannot chown %s: %s", logs[i], strerror(errno));
    for (size_t i = 0; chown_wanted && i < a->nlisteners; i++)
        if (a->listeners[i].unix_path &&
            chown(a->listeners[i].unix_path, (uid_t)cfg->user, (gid_t)cfg->group) < 0)
            cg_log_warning(a->log, "Cannot chown %s: %s", a->listeners[i].unix_path,
                           strerror(errno));
    return 0;
}

/* Listeners handed over by a USR2 parent (GUNICORN_FD) or systemd. */
static int cg__arbiter_adopt(cg_arbiter_t *a, const int *fds, size_t n)
{
    a->listeners = cg_xcalloc(n ? n : 1, sizeof(*a->listeners));
    for (size_t i = 0; i < n; i++) {
        char err[256];
        if (cg_net_adopt_fd(fds[i], (int)a->cfg->backlog, &a->listeners[a->nlisteners], err,
                            sizeof(err)) < 0) {
            cg_log_error(a->log, "Cannot use inherited fd %d: %s", fds[i], err);
            return -EBADF;
        }
        a->nlisteners++;
    }
    return 0;
}

static int cg__arbiter_listen(cg_arbiter_t *a)
{
    int nsd = cg_os_listen_fds();
    if (nsd > 0) {
        int *fds = cg_xmalloc((size_t)nsd * sizeof(*fds));
        for (int i = 0; i < nsd; i++)
            fds[i] = 3 + i;
        a->systemd = true;
        int r = cg__arbiter_adopt(a, fds, (size_t)nsd);
        free(fds);
        return r;
    }
    const char *gfd = getenv("GUNICORN_FD");
    if (gfd != NULL) {
        int fds[256];
        size_t n = 0;
        char *copy = cg_xstrdup(gfd), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t && n < CG_ARRAY_SIZE(fds);
             t = strtok_r(NULL, ",", &save))
            fds[n++] = atoi(t);
        free(copy);
        unsetenv("GUNICORN_FD");
        return cg__arbiter_adopt(a, fds, n);
    }
    if (a->cfg->reuse_port)
        return 0; /* as Gunicorn: each worker binds its own SO_REUSEPORT sockets */
    return cg_arbiter_bind(a);
}

/* An unpromoted USR2 child becomes the master once the old one is gone
 * (we were re-parented). */
static void cg__arbiter_maybe_promote(cg_arbiter_t *a)
{
    if (a->master_pid == 0 || getppid() == a->master_pid)
        return;
    cg_log_info(a->log, "Master has been promoted.");
    a->master_name = "Master";
    a->master_pid = 0;
    unsetenv("GUNICORN_PID");
    if (a->pidfile) {
        char err[512];
        cg_arbiter_pidfile_unlink(a->pidfile, a->pid);
        free(a->pidfile);
        a->pidfile = NULL;
        if (cg_arbiter_pidfile_create(a->cfg->pidfile, a->pid, err, sizeof(err)) < 0)
            cg_log_error(a->log, "%s", err);
        else
            a->pidfile = cg_xstrdup(a->cfg->pidfile);
    }
    cg_arbiter_set_title(a, "master");
}

void cg_arbiter_stop(cg_arbiter_t *a, bool graceful)
{
    cg_net_close_all(a->listeners, a->nlisteners, cg_arbiter_may_unlink(a));
    a->listeners = NULL;
    a->nlisteners = 0;

    long gt = a->cfg->graceful_timeout > 0 ? a->cfg->graceful_timeout : 0;
    uint64_t limit = cg_monotonic_ms() + (uint64_t)gt * 1000u;
    cg_arbiter_kill_workers(a, graceful ? SIGTERM : SIGQUIT);
    if (cg_arbiter_dirty_running(a)) {
        /* the dirty tree stops beside the HTTP workers, with its own
         * graceful timeout (plus a second for its own SIGKILLs) */
        cg_arbiter_dirty_signal_all(a, graceful ? SIGTERM : SIGQUIT);
        long dgt = a->cfg->dirty_graceful_timeout > 0 ? a->cfg->dirty_graceful_timeout : 0;
        uint64_t dlimit = cg_monotonic_ms() + (uint64_t)dgt * 1000u + 1000u;
        if (dlimit > limit)
            limit = dlimit;
    }

    bool quick = !graceful;
    while ((a->nworkers > 0 || cg_arbiter_dirty_running(a)) && cg_monotonic_ms() < limit) {
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
                    cg_arbiter_dirty_signal_all(a, SIGQUIT);
                    limit = cg_monotonic_ms() + 2000u;
                    break;
                }
        }
        cg_arbiter_reap_workers(a, false);
        cg_arbiter_tick(a);
        if (a->nworkers == 0 && !cg_arbiter_dirty_running(a))
            break;
        /* 0.1 s, cut short by any signal (a child's CHLD in particular) */
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    cg_arbiter_kill_workers(a, SIGKILL);
    if (cg_arbiter_dirty_running(a)) {
        /* its workers, orphaned, notice their parent is gone */
        cg_arbiter_dirty_signal_all(a, SIGKILL);
        int st = 0;
        if (a->dirty_pid > 0) {
            while (waitpid(a->dirty_pid, &st, 0) < 0 && errno == EINTR)
                ;
            a->dirty_pid = 0;
        }
        /* each is taken off the list (its directory removed) when reaped */
        while (a->ndirty_old > 0) {
            pid_t pid = a->dirty_old[a->ndirty_old - 1].pid;
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            cg_arbiter_dirty_reaped(a, pid, st);
        }
    }
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

/* Parse every bind address up front: Gunicorn does it when the Arbiter is
 * built, so a bad address fails before "Starting gunicorn" is logged. */
int cg_arbiter_check_binds(const cg_config_t *cfg)
{
    for (size_t i = 0; i <= cfg->bind.n; i++) {
        /* metrics_bind last, with the same syntax */
        const char *spec = i < cfg->bind.n ? cfg->bind.v[i] : cfg->metrics_bind;
        cg_net_addr_t addr;
        char err[512];
        if (spec != NULL && cg_net_parse_address(spec, &addr, err, sizeof(err)) < 0) {
            fprintf(stderr, "\nError: %s%s\n\n", i < cfg->bind.n ? "" : "metrics_bind: ", err);
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

    if (cfg->dirty_arbiter)
        cg_log_info(a->log, "Dirty arbiter starting (pid: %d)", (int)a->pid);
    else
        cg_log_info(a->log, "Starting gunicorn %s", CG_VERSION);

    const char *gpid = getenv("GUNICORN_PID");
    if (gpid != NULL && atoi(gpid) > 0) {
        /* we are the new master of a USR2 upgrade */
        a->master_pid = (pid_t)atoi(gpid);
        a->master_name = "Master.2";
    }

    if (cfg->pidfile) {
        size_t n = strlen(cfg->pidfile) + 3;
        char *path = cg_xmalloc(n);
        snprintf(path, n, "%s%s", cfg->pidfile, a->master_pid ? ".2" : "");
        if ((r = cg_arbiter_pidfile_create(path, a->pid, err, sizeof(err))) < 0) {
            fprintf(stderr, "\nError: %s\n\n", err);
            fflush(stderr);
            free(path);
            return r;
        }
        a->pidfile = path;
    }

    CG_HOOK(cfg->hooks, on_starting, a);

    if ((r = cg_arbiter_signals_init(a)) < 0) {
        cg_log_error(a->log, "Cannot set up signal handling: %s", strerror(-r));
        return r;
    }

    if ((r = cg_arbiter_tls_load(a, false)) < 0)
        return r;
    if ((r = cg__arbiter_listen(a)) < 0)
        return r;
    if (a->tls != NULL)
        cg_net_listeners_set_https(a->listeners, a->nlisteners);

    char *display = cg_net_listeners_display(a->listeners, a->nlisteners);
    cg_log_debug(a->log, "Arbiter booted");
    cg_log_info(a->log, "Listening at: %s (%d)", display, (int)a->pid);
    cg_log_info(a->log, "Using worker: %s", cg_config_worker_class_str(cfg));
    if (cg_config_worker_stand_in(cfg->worker_class)) {
        const char *ours = cg_config_worker_pyclass(cfg->worker_class);
        cg_log_info(a->log, "cgunicorn runs %s with its own %s%s; the class itself is not imported",
                    cfg->worker_class, ours != NULL ? ours : "ASGI worker (-k asgi)",
                    ours != NULL ? " worker" : "");
    }
    free(display);
    if ((r = cg_arbiter_metrics_start(a)) < 0)
        return r;
    cg_arbiter_notify(a, "READY=1\nSTATUS=Gunicorn arbiter booted");
    CG_HOOK(cfg->hooks, when_ready, a);
    return 0;
}

int cg_arbiter_tls_load(cg_arbiter_t *a, bool reload)
{
    char err[512];
    cg_tls_ctx_t *t = NULL;
    if (!cg_tls_configured(a->cfg)) {
        cg_tls_ctx_free(a->tls);
        a->tls = NULL;
        return 0;
    }
    int r = cg_tls_check_files(a->cfg, err, sizeof(err));
    const cg_hooks_t *h = a->cfg->hooks;
    /* the asgi worker and Python worker classes call the hook themselves,
     * for Python's own ssl (cgunicorn._tls, cgunicorn.sock); the master's
     * context then only checks the files */
    bool hook = a->cfg->callable_name[CG_SETTING_ssl_context] != NULL &&
                cg_config_worker_tls_in_c(a->cfg);
    if (r == 0 && hook && (h == NULL || h->tls_context == NULL)) {
        snprintf(err, sizeof(err), "ssl_context is not supported yet without a Python "
                                   "configuration");
        r = -EPROTO;
    } else if (r == 0 && hook) {
        /* Gunicorn calls the hook for every connection; we call it here,
         * at start and on HUP, and serve its context (docs/tls.md) */
        void *ht = NULL;
        r = h->tls_context(h->ctx, a->cfg, &ht, err, sizeof(err));
        if (r == 0)
            t = ht;
        if (r < 0 && r != -ENOENT)
            r = -EPROTO;
    } else if (r == 0) {
        r = cg_tls_ctx_new(a->cfg, &t, err, sizeof(err));
    }
    if (r == 0) {
        const char *why;
        cg_tls_ctx_ktls(t, &why);
        cg_log_debug(a->log, "kTLS %s", why);
        /* workers already running keep the context they were forked with */
        cg_tls_ctx_free(a->tls);
        a->tls = t;
        return 0;
    }
    if (!reload) {
        /* Gunicorn's create_sockets() raises ValueError for a missing file,
         * uncaught: the traceback ends with this line and the master exits
         * 1. It loads the certificate only for the first connection (every
         * connection then fails); we refuse at start, as an ssl.SSLError. */
        if (r == -EPROTO) /* the hook's own text: a traceback or our reason */
            fprintf(stderr, "Error: %s\n", err);
        else
            fprintf(stderr, "%s: %s\n", r == -ENOENT ? "ValueError" : "ssl.SSLError", err);
        fflush(stderr);
        return r;
    }
    if (a->tls != NULL) {
        cg_log_error(a->log, "Reloading the TLS certificate failed, keeping the previous one: %s",
                     err);
        return 0;
    }
    cg_log_error(a->log, "Cannot set up TLS: %s", err);
    cg_arbiter_halt_request(a, 1, NULL);
    return r;
}

static void cg__arbiter_cleanup(cg_arbiter_t *a)
{
    cg_arbiter_ctl_stop(a);
    cg_tls_ctx_free(a->tls);
    a->tls = NULL;
    cg_arbiter_metrics_stop(a);
    cg_net_close_all(a->listeners, a->nlisteners, cg_arbiter_may_unlink(a));
    a->listeners = NULL;
    a->nlisteners = 0;
    for (size_t i = 0; i < a->nworkers; i++) {
        cg_heartbeat_destroy(&a->workers[i]->hb);
        free(a->workers[i]);
    }
    free(a->workers);
    a->workers = NULL;
    a->nworkers = 0;
    cg_balance_free(a->balance);
    a->balance = NULL;
    if (a->pidfile)
        cg_arbiter_pidfile_unlink(a->pidfile, a->pid);
    free(a->pidfile);
    a->pidfile = NULL;
    free(a->exe);
    free(a->cwd);
    a->exe = a->cwd = NULL;
    cg_arbiter_dirty_cleanup(a);
    cg_arbiter_signals_restore(a);
}

/* What USR2 will need: the binary and the directory we started from. */
static void cg__arbiter_start_ctx(cg_arbiter_t *a)
{
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (a->cfg->exec_path != NULL) {
        /* not resolved: a venv's bin/python is a symlink whose target
         * would start outside the venv */
        a->exe = cg_xstrdup(a->cfg->exec_path);
    } else if (n > 0) {
        buf[n] = '\0';
        a->exe = cg_xstrdup(buf);
    } else if (a->cfg->argv && a->cfg->argv[0]) {
        a->exe = cg_xstrdup(a->cfg->argv[0]);
    }
    if (getcwd(buf, sizeof(buf)) != NULL)
        a->cwd = cg_xstrdup(buf);
    uint64_t us = cg_os_watchdog_usec();
    if (us > 0) {
        a->watchdog_ms = us / 1000 > 0 ? us / 1000 : 1;
        a->watchdog_next = 0;
    }
}

/* how often the loop looks whether the dirty arbiter took the last
 * signal of a `dirty add|remove` (ctl.c) */
#define CG__DIRTY_PACE_MS 5

static int cg__arbiter_wait_ms(const cg_arbiter_t *a)
{
    int most = a->overload_ms > 0 ? a->overload_ms : 1000;
    if (cg_arbiter_ctl_dirty_pacing(a) && most > CG__DIRTY_PACE_MS)
        most = CG__DIRTY_PACE_MS;
    if (a->watchdog_ms == 0)
        return most;
    uint64_t now = cg_monotonic_ms();
    uint64_t left = a->watchdog_next > now ? a->watchdog_next - now : 0;
    return left < (uint64_t)most ? (int)left : most;
}

/* What one pass of the loop polled beside the signal pipe: the metrics
 * endpoint's descriptors, then the control socket's. */
typedef struct cg__arbiter_polled {
    struct pollfd p[CG_ARBITER_EXTRA_FDS];
    size_t nmetrics, nctl;
    unsigned ctl_gen;
} cg__arbiter_polled_t;

static void cg__arbiter_wait(cg_arbiter_t *a, cg__arbiter_polled_t *w)
{
    w->nmetrics = cg_arbiter_metrics_pollfds(a, w->p, CG_METRICS_MAX_FDS);
    w->nctl = cg_arbiter_ctl_pollfds(a, w->p + w->nmetrics, CG_CTL_MAX_FDS);
    w->ctl_gen = a->ctl_gen;
    cg_arbiter_signals_wait(a, cg__arbiter_wait_ms(a), w->p, w->nmetrics + w->nctl);
}

/* Serve the sockets that polled ready: after the pass's reaping, so a
 * scrape or a "show workers" sees who is gone. A HUP may have replaced
 * either server since the poll; then its descriptors wait for the next. */
static void cg__arbiter_serve(cg_arbiter_t *a, const cg__arbiter_polled_t *w)
{
    if (a->metrics != NULL && w->nmetrics > 0 && cg_metrics_server_fd(a->metrics) == w->p[0].fd)
        cg_arbiter_metrics_serve(a, w->p, w->nmetrics);
    if (w->nctl > 0 && a->ctl_gen == w->ctl_gen)
        cg_arbiter_ctl_serve(a, w->p + w->nmetrics, w->nctl);
}

int cg_arbiter_run_with(cg_config_t *cfg, cg_log_t *log, cg_arbiter_worker_main_t worker_main)
{
    return cg_arbiter_run_full(cfg, log, worker_main, NULL, NULL);
}

void cg_arbiter_crash(cg_arbiter_t *a)
{
    cg_arbiter_stop(a, false);
    if (a->pidfile)
        cg_arbiter_pidfile_unlink(a->pidfile, a->pid);
    a->crashed = true;
    cg_arbiter_halt_request(a, 255, NULL);
}

int cg_arbiter_run_full(cg_config_t *cfg, cg_log_t *log, cg_arbiter_worker_main_t worker_main,
                        cg_arbiter_preload_t preload, void *preload_ctx)
{
    cg_arbiter_t a;
    memset(&a, 0, sizeof(a));
    a.cfg = cfg;
    a.log = log;
    a.worker_main = worker_main;
    a.preload = preload;
    a.preload_ctx = preload_ctx;
    a.pid = getpid();
    a.master_name = cfg->dirty_arbiter ? "Dirty arbiter" : "Master";
    a.num_workers = cfg->workers;
    a.last_logged_count = -1;
    a.overload_ms = -1;
    a.sig_pipe[0] = a.sig_pipe[1] = -1;
    a.stats.start_ms = cg_monotonic_ms();
    cg__arbiter_seed(&a);

    if (cg_arbiter_check_binds(cfg) < 0)
        return 1;
    if (cfg->daemon && getenv("GUNICORN_FD") == NULL) {
        if (getenv("NOTIFY_SOCKET") != NULL)
            fprintf(stderr, "Warning: NOTIFY_SOCKET is set but daemon mode detaches from the "
                            "service manager; use Type=simple/notify without --daemon\n");
        fflush(NULL);
        CG_HOOK0(cfg->hooks, fork_prepare);
        int r = cg_os_daemonize(cfg->enable_stdio_inheritance);
        if (r < 0) {
            fprintf(stderr, "Error: cannot daemonize: %s\n", strerror(-r));
            return 1;
        }
        CG_HOOK0(cfg->hooks, fork_child);
        a.pid = getpid();
        cg__arbiter_seed(&a);
    }
    /* capture_output: after daemonizing (which points fds 1 and 2 at
     * /dev/null), as Gunicorn's logger is made after it */
    int cr = cg_log_capture_output(log);
    if (cr < 0)
        cg_log_error(log, "capture_output: cannot redirect stdout/stderr to %s: %s",
                     log->error_path, strerror(-cr));
    if (cfg->hosted)
        cg_proctitle_adopt();
    else if (cfg->argv != NULL && cfg->argc > 0)
        cg_proctitle_init(cfg->argc, cfg->argv);
    cg__arbiter_start_ctx(&a);
    setenv("SERVER_SOFTWARE", CG_SERVER_SOFTWARE, 1);
    cg_arbiter_set_num_workers(&a, cfg->workers, -1);
    /* Gunicorn's Arbiter.setup: after the worker count, before a preload */
    if (cg_log_enabled(log, CG_LOG_DEBUG)) {
        char *current = cg_config_format_current(cfg);
        cg_log_debug(log, "%s", current);
        free(current);
    }
    /* Gunicorn imports a preloaded app while building its Arbiter: after
     * daemonizing, before "Starting gunicorn"; a failure is an uncaught
     * exception there (exit 1, nothing logged) */
    if (cfg->preload_app && a.preload != NULL) {
        int st = a.preload(a.preload_ctx, cfg, NULL);
        if (st != 0) {
            cg__arbiter_cleanup(&a);
            return st;
        }
    }

    if (cg__arbiter_start(&a) < 0) {
        /* Gunicorn exits 1 here without the "Shutting down" lines */
        cg__arbiter_cleanup(&a);
        return 1;
    }
    cg_arbiter_set_title(&a, cfg->dirty_arbiter ? "dirty-arbiter" : "master");
    /* before the HTTP workers: they inherit where the dirty apps listen */
    if (cg_arbiter_dirty_start(&a) < 0) {
        cg__arbiter_cleanup(&a);
        return 1;
    }

    cg_arbiter_manage_workers(&a);
    /* as Gunicorn: once the first workers are forked */
    cg_arbiter_ctl_start(&a);
    /* a dirty arbiter outlives no master: it stops once it is orphaned */
    pid_t parent = cfg->dirty_arbiter ? getppid() : 0;
    while (!a.stopping) {
        if (parent != 0 && getppid() != parent) {
            cg_log_info(log, "Parent changed, shutting down: %s", a.master_name);
            break;
        }
        cg__arbiter_maybe_promote(&a);
        cg_arbiter_tick(&a);
        cg__arbiter_polled_t polled;
        cg__arbiter_wait(&a, &polled);
        cg__arbiter_handle_signals(&a);
        if (a.stopping)
            break;
        /* normally a no-op: CHLD already reaped; covers a dropped CHLD byte */
        cg_arbiter_reap_workers(&a, true);
        if (a.stopping)
            break;
        cg_arbiter_reload_poll(&a);
        cg_arbiter_murder_workers(&a);
        cg_arbiter_check_memory(&a);
        cg_arbiter_manage_workers(&a);
        a.overload_ms = cg_arbiter_overload_check(&a);
        cg_arbiter_dirty_manage(&a);
        cg__arbiter_serve(&a, &polled);
        cg_arbiter_ctl_dirty_pace(&a);
    }
    /* Gunicorn's halt() stops the control server first */
    cg_arbiter_ctl_stop(&a);

    if (a.crashed) {
        cg__arbiter_cleanup(&a);
        return a.exit_status;
    }
    /* halt() */
    cg_arbiter_notify(&a, "STOPPING=1");
    cg_arbiter_stop(&a, true);
    cg_log_level_t lvl = a.exit_status == 0 ? CG_LOG_INFO : CG_LOG_ERROR;
    cg_log_msg(log, lvl, "Shutting down: %s", a.master_name);
    if (a.reason)
        cg_log_msg(log, lvl, "Reason: %s", a.reason);
    if (a.pidfile)
        cg_arbiter_pidfile_unlink(a.pidfile, a.pid);
    CG_HOOK(cfg->hooks, on_exit, &a);
    cg__arbiter_cleanup(&a);
    return a.exit_status;
}
