/*
 * signals.c - the master's signals: one table says which signals the master
 * catches, the name Gunicorn logs for each, and what the main loop does.
 *
 * The handler itself only writes the signal number into a non-blocking,
 * close-on-exec self-pipe (as Gunicorn's queue does, nothing else happens in
 * signal context); the main loop reads the pipe and runs the actions in the
 * order the signals arrived.
 */
#include "arbiter.h"

#include "../tls/tls.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef void (*cg__sig_action_t)(cg_arbiter_t *a);

static void cg__on_hup(cg_arbiter_t *a);
static void cg__on_term(cg_arbiter_t *a);
static void cg__on_quick(cg_arbiter_t *a);
static void cg__on_ttin(cg_arbiter_t *a);
static void cg__on_ttou(cg_arbiter_t *a);
static void cg__on_usr1(cg_arbiter_t *a);
static void cg__on_usr2(cg_arbiter_t *a);
static void cg__on_winch(cg_arbiter_t *a);
static void cg__on_chld(cg_arbiter_t *a);

/*
 * The names are what Gunicorn logs in "Handling signal: %s": Python's
 * signal module names, lower-cased, without "SIG". SIGCHLD shows as "cld"
 * because Gunicorn's name map lets the SIGCLD alias overwrite it.
 */
static const struct cg__sig {
    int signo;
    const char *name;
    cg__sig_action_t action;
} cg__signals[] = {
    {SIGHUP, "hup", cg__on_hup},       {SIGQUIT, "quit", cg__on_quick},
    {SIGINT, "int", cg__on_quick},     {SIGTERM, "term", cg__on_term},
    {SIGTTIN, "ttin", cg__on_ttin},    {SIGTTOU, "ttou", cg__on_ttou},
    {SIGUSR1, "usr1", cg__on_usr1},    {SIGUSR2, "usr2", cg__on_usr2},
    {SIGWINCH, "winch", cg__on_winch}, {SIGCHLD, "cld", cg__on_chld},
};

/* The only state a signal handler must reach: the pipe's write end. */
static volatile sig_atomic_t cg__sig_wfd = -1;

static void cg__sig_handler(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    int fd = cg__sig_wfd;
    /* A full pipe drops the byte: the loop still wakes, and a lost CHLD is
     * covered by the reap that follows every batch. */
    if (fd >= 0) {
        ssize_t r = write(fd, &b, 1);
        CG_UNUSED(r);
    }
    errno = saved;
}

int cg_arbiter_signals_init(cg_arbiter_t *a)
{
    if (pipe2(a->sig_pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        a->sig_pipe[0] = a->sig_pipe[1] = -1;
        return -errno;
    }
    cg__sig_wfd = a->sig_pipe[1];

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = cg__sig_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < CG_ARRAY_SIZE(cg__signals); i++)
        if (sigaction(cg__signals[i].signo, &sa, NULL) < 0)
            return -errno;

    /* The Python master runs with SIGPIPE ignored; a log pipe that went away
     * must not kill ours either. */
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, NULL);
    return 0;
}

static void cg__signals_default(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < CG_ARRAY_SIZE(cg__signals); i++)
        sigaction(cg__signals[i].signo, &sa, NULL);
}

static void cg__signals_close_pipe(cg_arbiter_t *a)
{
    cg__sig_wfd = -1;
    for (int i = 0; i < 2; i++) {
        if (a->sig_pipe[i] >= 0)
            close(a->sig_pipe[i]);
        a->sig_pipe[i] = -1;
    }
}

void cg_arbiter_signals_restore(cg_arbiter_t *a)
{
    cg__signals_default();
    cg__signals_close_pipe(a);
}

void cg_arbiter_signals_child(cg_arbiter_t *a)
{
    /* Runs with every signal blocked (see the fork in workers.c), so nothing
     * can reach the master's pipe before it is closed here. */
    cg__signals_default();
    cg__signals_close_pipe(a);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

size_t cg_arbiter_signals_drain(cg_arbiter_t *a, int *sigs, size_t cap)
{
    size_t n = 0;
    unsigned char buf[64];
    while (n < cap && a->sig_pipe[0] >= 0) {
        size_t want = cap - n < sizeof(buf) ? cap - n : sizeof(buf);
        ssize_t r = read(a->sig_pipe[0], buf, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            sigs[n++] = buf[i];
    }
    return n;
}

int cg_arbiter_signals_raise(cg_arbiter_t *a, int signo)
{
    unsigned char b = (unsigned char)signo;
    for (;;) {
        ssize_t r = write(a->sig_pipe[1], &b, 1);
        if (r == 1)
            return 0;
        if (r < 0 && errno == EINTR)
            continue;
        return r < 0 ? -errno : -EIO;
    }
}

void cg_arbiter_signals_wait(cg_arbiter_t *a, int timeout_ms, struct pollfd *extra, size_t n)
{
    struct pollfd p[1 + CG_ARBITER_EXTRA_FDS];
    if (n > CG_ARBITER_EXTRA_FDS)
        n = CG_ARBITER_EXTRA_FDS;
    p[0] = (struct pollfd){.fd = a->sig_pipe[0], .events = POLLIN};
    for (size_t i = 0; i < n; i++)
        p[1 + i] = extra[i];
    /* EINTR just means a signal came in: its byte is in the pipe. */
    int r = poll(p, (nfds_t)(1 + n), timeout_ms);
    for (size_t i = 0; i < n; i++)
        extra[i].revents = r > 0 ? p[1 + i].revents : 0;
}

void cg_arbiter_signals_dispatch(cg_arbiter_t *a, int signo)
{
    for (size_t i = 0; i < CG_ARRAY_SIZE(cg__signals); i++) {
        const struct cg__sig *s = &cg__signals[i];
        if (s->signo != signo)
            continue;
        cg_log_msg(a->log, signo == SIGCHLD ? CG_LOG_DEBUG : CG_LOG_INFO, "Handling signal: %s",
                   s->name);
        s->action(a);
        return;
    }
    cg_log_info(a->log, "Ignoring unknown signal: %d", signo);
}

/* Python's signal.Signals names; aliases resolve to the smaller name, as the
 * enum does (SIGABRT, not SIGIOT; SIGIO, not SIGPOLL). */
const char *cg_arbiter_signal_name(int signo)
{
    static const char *const names[] = {
        [SIGHUP] = "SIGHUP",       [SIGINT] = "SIGINT",       [SIGQUIT] = "SIGQUIT",
        [SIGILL] = "SIGILL",       [SIGTRAP] = "SIGTRAP",     [SIGABRT] = "SIGABRT",
        [SIGBUS] = "SIGBUS",       [SIGFPE] = "SIGFPE",       [SIGKILL] = "SIGKILL",
        [SIGUSR1] = "SIGUSR1",     [SIGSEGV] = "SIGSEGV",     [SIGUSR2] = "SIGUSR2",
        [SIGPIPE] = "SIGPIPE",     [SIGALRM] = "SIGALRM",     [SIGTERM] = "SIGTERM",
        [SIGSTKFLT] = "SIGSTKFLT", [SIGCHLD] = "SIGCHLD",     [SIGCONT] = "SIGCONT",
        [SIGSTOP] = "SIGSTOP",     [SIGTSTP] = "SIGTSTP",     [SIGTTIN] = "SIGTTIN",
        [SIGTTOU] = "SIGTTOU",     [SIGURG] = "SIGURG",       [SIGXCPU] = "SIGXCPU",
        [SIGXFSZ] = "SIGXFSZ",     [SIGVTALRM] = "SIGVTALRM", [SIGPROF] = "SIGPROF",
        [SIGWINCH] = "SIGWINCH",   [SIGIO] = "SIGIO",         [SIGPWR] = "SIGPWR",
        [SIGSYS] = "SIGSYS",
    };
    if (signo > 0 && (size_t)signo < CG_ARRAY_SIZE(names) && names[signo])
        return names[signo];
    if (signo == SIGRTMIN)
        return "SIGRTMIN";
    if (signo == SIGRTMAX)
        return "SIGRTMAX";
    return NULL;
}

/* ---- actions ---------------------------------------------------------- */

/* Re-read the configuration from every source we support (argv,
 * GUNICORN_CMD_ARGS, the environment) into a fresh table and swap it in
 * place, so every pointer to a->cfg stays valid. On any error the previous
 * configuration is kept. */
static void cg__reload_config(cg_arbiter_t *a)
{
    cg_config_t *cfg = a->cfg;
    cg_config_t fresh;
    char err[512];
    const cg_hooks_t *h = cfg->hooks;
    bool api = h != NULL && h->config_reload != NULL && cfg->app_object != NULL;
    if (cfg->argv == NULL && !api)
        return;
    memset(&fresh, 0, sizeof(fresh));
    int st;
    if (api) {
        /* Gunicorn's arbiter.reload(): app.reload(), then app.cfg */
        st = h->config_reload(h->ctx, &fresh, err, sizeof(err)) < 0 ? 1 : 0;
    } else {
        st = cg_config_load(&fresh, cfg->argc, cfg->argv, h ? h->config_loader : NULL,
                            h ? h->config_loader_ctx : NULL);
        if (st != 0)
            snprintf(err, sizeof(err), "cg_config_load() returned %d", st);
    }
    if (st == 0 && cg_config_check_supported(&fresh, err, sizeof(err)) < 0)
        st = 1;
    if (st != 0) {
        cg_log_error(a->log, "Reloading the configuration failed, keeping the previous one: %s",
                     err);
        cg_config_free(&fresh);
        return;
    }
    fresh.argc = cfg->argc;
    fresh.argv = cfg->argv;
    fresh.exec_path = cfg->exec_path;
    fresh.exec_argv = cfg->exec_argv;
    fresh.hosted = cfg->hosted;
    fresh.hooks = cfg->hooks;

    cg_log_t nl;
    if (cg_log_open_config(&nl, &fresh, err, sizeof(err)) < 0) {
        fprintf(stderr, "Error: reloading the logger configuration failed, keeping the previous "
                        "one\n");
        fflush(stderr);
    } else {
        /* An attached sink (Python logging for logconfig*) applies the new
         * settings too, and stays attached: a later HUP may turn it on. If
         * it refuses them, it has reported that and restored the previous
         * logging, and the old log stays. */
        const cg_log_sink_t *sink = a->log->sink;
        if (sink != NULL && sink->reload != NULL && sink->reload(sink->ctx, &nl, &fresh) < 0) {
            cg_log_close(&nl);
        } else {
            nl.sink = sink;
            nl.statsd = a->log->statsd; /* Gunicorn keeps its Statsd logger too */
            cg_log_close(a->log);
            *a->log = nl;
        }
    }
    for (size_t i = 0; i < fresh.raw_env.n; i++) {
        char *kv = fresh.raw_env.v[i], *eq = strchr(kv, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        setenv(kv, eq + 1, 1);
        *eq = '=';
    }

    bool rebind = fresh.bind.n != cfg->bind.n || fresh.reuse_port != cfg->reuse_port;
    for (size_t i = 0; !rebind && i < fresh.bind.n; i++)
        rebind = strcmp(fresh.bind.v[i], cfg->bind.v[i]) != 0;

    cg_config_t old = *cfg;
    *cfg = fresh;
    old.argv = NULL;
    cg_arbiter_metrics_reload(a, old.metrics_bind);
    cg_arbiter_ctl_reload(a);
    cg_config_free(&old);

    if (rebind && !a->systemd) {
        cg_net_close_all(a->listeners, a->nlisteners, cg_arbiter_may_unlink(a));
        a->listeners = NULL;
        a->nlisteners = 0;
        if (!cfg->reuse_port && cg_arbiter_bind(a) < 0) {
            cg_arbiter_halt_request(a, 1, NULL);
            return;
        }
        if (cg_tls_configured(cfg))
            cg_net_listeners_set_https(a->listeners, a->nlisteners);
        char *display = cg_net_listeners_display(a->listeners, a->nlisteners);
        cg_log_info(a->log, "Listening at: %s", display);
        free(display);
    }
}

/*
 * HUP, as Gunicorn 26: re-read the configuration, reopen the logs, rebind
 * when the addresses changed, start a full set of new workers and send TERM
 * to the old ones, oldest first. Gunicorn then waits here (up to
 * graceful_timeout) for the old ones to leave; we return at once and let the
 * main loop do that waiting (a->reload), so a TERM, QUIT or INT, a worker
 * timeout, a dead worker or a TTIN/TTOU is acted on during a reload as at
 * any other time. A HUP during a reload starts another generation and
 * retires the one before it too; the wait restarts.
 */
static void cg__on_hup(cg_arbiter_t *a)
{
    char msg[96];
    a->stats.reloads++;
    cg_log_info(a->log, "Hang up: %s", a->master_name);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)cg_monotonic_ms() * 1000ull);
    cg_arbiter_notify(a, msg);

    cg__reload_config(a);
    if (a->stopping)
        return;
    /* the certificate and key are read again: the new generation of
     * workers serves them, the old one finishes with what it had */
    if (cg_arbiter_tls_load(a, true) < 0)
        return;
    /* Gunicorn's setup() preloads again; an app already imported is kept */
    if (a->cfg->preload_app && a->preload != NULL &&
        a->preload(a->preload_ctx, a->cfg, a->log) != 0) {
        cg_arbiter_crash(a);
        return;
    }
    cg_arbiter_set_num_workers(a, a->cfg->workers, a->num_workers);
    cg_log_reopen(a->log);
    CG_HOOK(a->cfg->hooks, on_reload, a);
    cg_arbiter_dirty_reload(a); /* before the new workers: they inherit its address */
    if (a->pidfile) {
        /* Gunicorn unlinks and re-creates it (at the new path if changed) */
        cg_arbiter_pidfile_unlink(a->pidfile, a->pid);
        free(a->pidfile);
        a->pidfile = NULL;
    }
    if (a->cfg->pidfile) {
        char err[512];
        size_t n = strlen(a->cfg->pidfile) + 3;
        char *path = cg_xmalloc(n);
        snprintf(path, n, "%s%s", a->cfg->pidfile, a->master_pid ? ".2" : "");
        if (cg_arbiter_pidfile_create(path, a->pid, err, sizeof(err)) < 0) {
            cg_log_error(a->log, "%s", err);
            free(path);
        } else {
            a->pidfile = path;
        }
    }
    cg_arbiter_set_title(a, "master");

    /* Build the whole new generation first, then retire the old one; the
     * main loop waits for it to leave (cg_arbiter_reload_poll), handling
     * every other signal and worker timeout meanwhile. */
    for (long i = 0; i < a->cfg->workers; i++)
        cg_arbiter_spawn_worker(a);
    cg_arbiter_retire_old(a);
    cg_arbiter_manage_workers(a);
    /* READY=1 is sent by cg_arbiter_reload_poll() once the old ones left */
}

static void cg__on_term(cg_arbiter_t *a)
{
    cg_arbiter_halt_request(a, 0, NULL);
}

static void cg__on_quick(cg_arbiter_t *a)
{
    cg_arbiter_stop(a, false);
    cg_arbiter_halt_request(a, 0, NULL);
}

static void cg__on_ttin(cg_arbiter_t *a)
{
    cg_arbiter_set_num_workers(a, a->num_workers + 1, a->num_workers);
    cg_arbiter_manage_workers(a);
}

static void cg__on_ttou(cg_arbiter_t *a)
{
    /* a dirty arbiter keeps enough workers for its most demanding app */
    long least = a->cfg->dirty_arbiter ? cg_arbiter_dirty_floor(a) : 1;
    if (a->num_workers <= least) {
        if (a->cfg->dirty_arbiter)
            cg_log_warning(a->log, "SIGTTOU: Cannot decrease below %ld workers "
                                   "(required by app specs)", least);
        return;
    }
    cg_arbiter_set_num_workers(a, a->num_workers - 1, a->num_workers);
    cg_arbiter_manage_workers(a);
}

static void cg__on_usr1(cg_arbiter_t *a)
{
    int r = cg_log_reopen(a->log);
    if (r < 0)
        cg_log_error(a->log, "Reopening the log files failed: %s", strerror(-r));
    cg_arbiter_kill_workers(a, SIGUSR1);
    cg_arbiter_dirty_signal(a, SIGUSR1);
}

/* In the USR2 child: put the listeners at 3..3+n-1 (what LISTEN_FDS means)
 * without clobbering one another on the way. */
static void cg__move_fds_for_systemd(cg_arbiter_t *a)
{
    int *tmp = cg_xmalloc((a->nlisteners ? a->nlisteners : 1) * sizeof(*tmp));
    for (size_t i = 0; i < a->nlisteners; i++)
        tmp[i] = fcntl(a->listeners[i].fd, F_DUPFD_CLOEXEC, 3 + (int)a->nlisteners);
    for (size_t i = 0; i < a->nlisteners; i++) {
        dup2(tmp[i], 3 + (int)i); /* dup2 leaves the new fd inheritable */
        close(tmp[i]);
        a->listeners[i].fd = 3 + (int)i;
    }
    free(tmp);
}

/* The USR2 child, between fork and exec: Gunicorn's reexec() child half. */
static void cg__reexec_child(cg_arbiter_t *a, pid_t old_master)
{
    char buf[64];
    CG_HOOK(a->cfg->hooks, pre_exec, a);
    snprintf(buf, sizeof(buf), "%d", (int)old_master);
    setenv("GUNICORN_PID", buf, 1);
    if (a->systemd) {
        cg__move_fds_for_systemd(a);
        snprintf(buf, sizeof(buf), "%d", (int)getpid());
        setenv("LISTEN_PID", buf, 1);
        snprintf(buf, sizeof(buf), "%zu", a->nlisteners);
        setenv("LISTEN_FDS", buf, 1);
        unsetenv("GUNICORN_FD");
    } else {
        size_t cap = a->nlisteners * 12 + 1, len = 0;
        char *fds = cg_xmalloc(cap);
        fds[0] = '\0';
        for (size_t i = 0; i < a->nlisteners; i++) {
            int fd = a->listeners[i].fd;
            /* the listeners are close-on-exec for the workers' sake; this
             * exec is the one place they must survive */
            fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) & ~FD_CLOEXEC);
            len += (size_t)snprintf(fds + len, cap - len, "%s%d", i ? "," : "", fd);
        }
        setenv("GUNICORN_FD", fds, 1);
        free(fds);
    }
    cg_arbiter_metrics_hand_over(a);
    if (a->cwd && chdir(a->cwd) < 0) {
        /* keep going from wherever we are, as the exec may still work */
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    execv(a->exe, a->cfg->exec_argv ? a->cfg->exec_argv : a->cfg->argv);
    int e = errno;
    cg_log_error(a->log, "Cannot exec %s for the USR2 upgrade: %s", a->exe, strerror(e));
    _exit(1);
}

static void cg__on_usr2(cg_arbiter_t *a)
{
    if (a->reexec_pid != 0) {
        cg_log_warning(a->log, "USR2 signal ignored. Child exists.");
        return;
    }
    if (a->master_pid != 0) {
        cg_log_warning(a->log, "USR2 signal ignored. Parent exists.");
        return;
    }
    if (a->exe == NULL || a->cfg->argv == NULL) {
        cg_log_error(a->log, "USR2 upgrade impossible: the command line is unknown");
        return;
    }
    pid_t self = a->pid;
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    fflush(NULL);
    CG_HOOK0(a->cfg->hooks, fork_prepare);
    pid_t pid = fork();
    if (pid == 0) {
        CG_HOOK0(a->cfg->hooks, fork_child);
        cg_arbiter_signals_child(a);
        cg__reexec_child(a, self);
    }
    int e = errno;
    CG_HOOK0(a->cfg->hooks, fork_parent);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        cg_log_error(a->log, "fork() failed: %s", strerror(e));
        return;
    }
    a->reexec_pid = pid;
}

/* WINCH only means something to a daemon (no terminal can send it by
 * resizing): stop the workers, keep the master and its listeners. */
static void cg__on_winch(cg_arbiter_t *a)
{
    if (!a->cfg->daemon) {
        cg_log_debug(a->log, "SIGWINCH ignored. Not daemonized");
        return;
    }
    cg_log_info(a->log, "graceful stop of workers");
    cg_arbiter_set_num_workers(a, 0, a->num_workers);
    cg_arbiter_kill_workers(a, SIGTERM);
}

static void cg__on_chld(cg_arbiter_t *a)
{
    cg_arbiter_reap_workers(a, true);
}
