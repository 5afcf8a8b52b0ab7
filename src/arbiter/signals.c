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

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

void cg_arbiter_signals_wait(cg_arbiter_t *a, int timeout_ms)
{
    struct pollfd p = {.fd = a->sig_pipe[0], .events = POLLIN};
    /* EINTR just means a signal came in: its byte is in the pipe. */
    poll(&p, 1, timeout_ms);
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

static void cg__sleep_ms(unsigned ms)
{
    /* one interruptible sleep: a signal (e.g. CHLD) ends it early */
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/*
 * HUP. Gunicorn re-reads its configuration here; we do not yet, so the new
 * generation runs with the current one. Then, as Gunicorn: reopen the logs,
 * start a full set of new workers, retire the old ones oldest first, and wait
 * (up to graceful_timeout) until only the new generation is left.
 */
static void cg__on_hup(cg_arbiter_t *a)
{
    cg_log_info(a->log, "Hang up: %s", a->master_name);
    cg_log_debug(a->log, "Reloading the configuration on HUP is not supported yet; "
                         "restarting the workers with the current one");
    a->num_workers = a->cfg->workers;
    cg_log_reopen(a->log);
    if (a->pidfile) {
        /* Gunicorn unlinks and re-creates it; the content stays our pid */
        char err[512];
        cg_arbiter_pidfile_unlink(a->pidfile, a->pid);
        if (cg_arbiter_pidfile_create(a->pidfile, a->pid, err, sizeof(err)) < 0)
            cg_log_error(a->log, "%s", err);
    }

    int last_age = a->worker_age;
    for (long i = 0; i < a->cfg->workers; i++)
        cg_arbiter_spawn_worker(a);
    cg_arbiter_manage_workers(a);

    uint64_t deadline = cg_monotonic_ms() + (uint64_t)(a->cfg->graceful_timeout > 0 ?
                                                           a->cfg->graceful_timeout : 0) * 1000u;
    while (cg_monotonic_ms() < deadline && !a->stopping) {
        if (a->nworkers == 0 || a->workers[0]->age > last_age)
            break;
        cg_arbiter_reap_workers(a, true);
        cg__sleep_ms(100);
    }
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
    a->num_workers++;
    cg_arbiter_manage_workers(a);
}

static void cg__on_ttou(cg_arbiter_t *a)
{
    if (a->num_workers <= 1)
        return;
    a->num_workers--;
    cg_arbiter_manage_workers(a);
}

static void cg__on_usr1(cg_arbiter_t *a)
{
    int r = cg_log_reopen(a->log);
    if (r < 0)
        cg_log_error(a->log, "Reopening the log files failed: %s", strerror(-r));
    cg_arbiter_kill_workers(a, SIGUSR1);
}

static void cg__on_usr2(cg_arbiter_t *a)
{
    cg_log_warning(a->log, "USR2 (re-exec / binary upgrade) is not supported yet; signal ignored");
}

/* Gunicorn only acts on WINCH when daemonized; cgunicorn has no daemon mode
 * yet, so this is the whole of the non-daemon behaviour. */
static void cg__on_winch(cg_arbiter_t *a)
{
    cg_log_debug(a->log, "SIGWINCH ignored. Not daemonized");
}

static void cg__on_chld(cg_arbiter_t *a)
{
    cg_arbiter_reap_workers(a, true);
}
