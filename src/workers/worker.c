/*
 * worker.c - life of a worker process: signals, booting the interpreter and the
 * app (with Gunicorn's exit codes for failures), running the worker loop, and
 * leaving.
 */
#include "worker.h"

#include "../arbiter/hooks.h"
#include "../metrics/statsd.h"
#include "../os/os.h"
#include "../python/python.h"
#include "../asgi/asgi.h"
#include "../wsgi/wsgi.h"
#include "asgi.h"
#include "gthread.h"
#include "sync.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The one pointer a signal handler needs to reach this process's worker. */
static cg_worker_t *cg__self;

static void cg__wake(void)
{
    int saved = errno;
    if (cg__self->wake_pipe[1] >= 0) {
        ssize_t r = write(cg__self->wake_pipe[1], "!", 1);
        CG_UNUSED(r);
    }
    errno = saved;
}

static void cg__on_signal(int signo)
{
    switch (signo) {
    case SIGTERM:
        cg__self->alive = 0;
        break;
    case SIGQUIT:
    case SIGINT:
    case SIGABRT:
        cg__self->alive = 0;
        if (signo == SIGABRT)
            cg__self->got_abort = 1;
        if (signo != SIGABRT)
            cg__self->quick = 1;
        else if (!cg__self->in_app)
            cg__self->abort_exit = 1; /* idle: exit 1; in the app: a 500, then exit 0 */
        /* Gunicorn raises SystemExit in whatever frame runs: do the same for
         * the app through Python's own pending-signal machinery, which is
         * async-signal-safe. Idle, the loop sees `alive` and leaves. */
        if (cg__self->in_app)
            cg_py_interrupt_main(signo);
        break;
    case SIGUSR1:
        cg__self->reopen_logs = 1;
        break;
    }
    cg__wake();
}

/* c_handlers false: a Python worker class, whose init_signals() installs
 * its own handlers; until then every signal has its default action (what
 * init_signals resets them to), SIGPIPE excepted. */
static int cg__install_signals(cg_worker_t *w, bool c_handlers)
{
    static const int handled[] = {SIGTERM, SIGQUIT, SIGINT, SIGUSR1, SIGABRT};
    static const int defaulted[] = {SIGHUP, SIGUSR2, SIGCHLD, SIGTTIN, SIGTTOU};
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);

    cg__self = w;
    if (c_handlers && pipe2(w->wake_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
        return -errno;
    sa.sa_handler = SIG_DFL;
    for (size_t i = 0; i < CG_ARRAY_SIZE(defaulted); i++)
        sigaction(defaulted[i], &sa, NULL);
    for (size_t i = 0; !c_handlers && i < CG_ARRAY_SIZE(handled); i++)
        sigaction(handled[i], &sa, NULL);
    /* A write to a closed socket is an error code, never a process kill
     * (Python ignores SIGPIPE too). */
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGWINCH, &sa, NULL);
    if (!c_handlers)
        goto unblock;
    /* As Gunicorn (siginterrupt(sig, False) for TERM and USR1 only): those
     * two let a blocking syscall resume, since the loop acts on them between
     * requests. QUIT, INT and ABRT interrupt it (EINTR): a worker waiting on
     * a half-sent request head leaves at once, and an app hung in recv(2)
     * gets its SystemExit (and, on ABRT, its stack logged). */
    sa.sa_handler = cg__on_signal;
    for (size_t i = 0; i < CG_ARRAY_SIZE(handled); i++) {
        int sig = handled[i];
        sa.sa_flags = sig == SIGTERM || sig == SIGUSR1 ? SA_RESTART : 0;
        if (sigaction(sig, &sa, NULL) < 0)
            return -errno;
    }
unblock:;
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    return 0;
}

/* Import the app (or take the one --preload imported in the master); on
 * failure log as Gunicorn and return the exit status. */
static int cg__load(cg_worker_t *w, cg_py_reloader_t *reloader, PyObject **app)
{
    char *msg = NULL;
    if (cg_py_preloaded_app() != NULL) {
        *app = Py_NewRef(cg_py_preloaded_app());
        return 0;
    }
    int rc = cg_py_load_cfg_app(w->cfg, app, &msg);
    if (rc == -1 && w->cfg->reload && PyErr_ExceptionMatches(PyExc_SyntaxError))
        rc = cg_py_load_syntax_error(w->log, reloader, app);
    if (rc == 0)
        return 0;
    if (rc == CG_PY_APP_IMPORT_ERROR) {
        /* Gunicorn prints an AppImportError's message on stderr, no traceback. */
        cg_log_debug(w->log, "Exception while loading the application");
        fprintf(stderr, "%s\n", msg);
        fflush(stderr);
        free(msg);
        return CG_WORKER_EXIT_APP_LOAD_ERROR;
    }
    cg_py_log_exception(w->log, CG_LOG_ERROR, "Exception in worker process");
    return CG_WORKER_EXIT_BOOT_ERROR;
}

/* --user/--group (Gunicorn's set_owner_process in init_process). Returns
 * 0 or the boot error status, logged. */
static int cg__set_owner(cg_worker_t *w)
{
    if (w->cfg->source[CG_SETTING_user] == CG_SRC_DEFAULT &&
        w->cfg->source[CG_SETTING_group] == CG_SRC_DEFAULT)
        return 0;
    int r = cg_os_set_owner(w->cfg->user, w->cfg->group, w->cfg->initgroups);
    if (r == 0)
        return 0;
    cg_log_exception(w->log, "Exception in worker process\ncannot switch to uid %ld gid %ld: %s",
                     w->cfg->user, w->cfg->group, strerror(-r));
    return CG_WORKER_EXIT_BOOT_ERROR;
}

/* A Python worker class (src/python/pyworker.c), in Gunicorn's
 * spawn_worker order: the instance, post_fork with it, then its
 * init_process(), which installs its Python signal handlers, loads the
 * app and runs its loop. Sets *py_up once the interpreter runs. Returns
 * the exit status. */
static int cg__run_python(cg_worker_t *w, bool *py_up)
{
    char err[1024];
    PyObject *obj = NULL; /* new, from cg_py_worker_boot */
    if (cg__install_signals(w, false) < 0) {
        cg_log_exception(w->log, "Exception in worker process\ncannot reset signals: %s",
                         strerror(errno));
        return CG_WORKER_EXIT_BOOT_ERROR;
    }
    cg_heartbeat_notify(&w->hb);
    if (cg_py_init(w->cfg, err, sizeof(err)) < 0) {
        cg_log_exception(w->log, "Exception in worker process\n%s", err);
        return CG_WORKER_EXIT_BOOT_ERROR;
    }
    *py_up = true;
    int status = cg_py_worker_boot(w, &obj);
    if (status != 0)
        return status;
    CG_HOOK(w->cfg->hooks, post_fork, w->arbiter, w);
    /* Gunicorn's init_process() switches user first thing; done here in C
     * (initgroups included), before any of the class's code runs */
    status = cg__set_owner(w);
    if (status == 0)
        status = cg_py_worker_run(w, obj);
    Py_DECREF(obj);
    return status;
}

int cg_worker_main(cg_worker_t *w)
{
    int status = CG_WORKER_EXIT_OK;
    char err[1024];
    cg_wsgi_t ws;
    bool py_up = false, ws_up = false;
    cg_listener_t *own_listeners = NULL;
    cg_py_reloader_t *reloader = NULL;

    w->pid = getpid();
    w->main_tid = pthread_self();
    w->alive = 1;
    w->wake_pipe[0] = w->wake_pipe[1] = -1;
    /* after fork: each worker batches its own metrics */
    w->statsd_batch = cg_statsd_batch_new(w->log->statsd, w->cfg->statsd_flush_interval);
    cg_log_info(w->log, "Booting worker with pid: %d", (int)w->pid);
    const cg_hooks_t *hooks = w->cfg->hooks;
    if (w->cfg->reuse_port) {
        /* Gunicorn's reuse_port: the master bound nothing, each worker binds
         * its own SO_REUSEPORT sockets and the kernel spreads connections */
        cg_listener_t *own = NULL;
        size_t nown = 0;
        mode_t old_umask = umask((mode_t)w->cfg->umask);
        int r = cg_net_listen_all((const char *const *)w->cfg->bind.v, w->cfg->bind.n,
                                  (int)w->cfg->backlog, true, w->log, &own, &nown);
        umask(old_umask);
        if (r < 0) {
            status = CG_WORKER_EXIT_BOOT_ERROR;
            goto out;
        }
        own_listeners = own;
        w->listeners = own;
        w->nlisteners = nown;
    }
    if (cg_config_worker_kind(w->cfg) == CG_WORKER_PYTHON) {
        status = cg__run_python(w, &py_up);
        goto out;
    }
    CG_HOOK(hooks, post_fork, w->arbiter, w);
    if ((status = cg__set_owner(w)) != 0)
        goto out;
    if (cg__install_signals(w, true) < 0) {
        cg_log_exception(w->log, "Exception in worker process\ncannot install signal handlers: %s",
                         strerror(errno));
        status = CG_WORKER_EXIT_BOOT_ERROR;
        goto out;
    }
    cg_heartbeat_notify(&w->hb);

    if (cg_py_init(w->cfg, err, sizeof(err)) < 0) {
        cg_log_exception(w->log, "Exception in worker process\n%s", err);
        status = CG_WORKER_EXIT_BOOT_ERROR;
        goto out;
    }
    py_up = true;
    cg_py_loggerclass_worker_init(w->log); /* Gunicorn's init_process: log.close_on_exec() */
    if (cg_py_worker_signals(cg__on_signal, w->log) < 0) {
        cg_py_log_exception(w->log, CG_LOG_ERROR, "Exception in worker process");
        status = CG_WORKER_EXIT_BOOT_ERROR;
        goto out;
    }
    if (w->cfg->spew && cg_py_spew(w->log) < 0) {
        status = CG_WORKER_EXIT_BOOT_ERROR;
        goto out;
    }
    if (w->cfg->reload) {
        cg_log_warning(w->log, "Reloader is on. Use in development only!");
        if (cg_py_reloader_new(w->cfg, w, &reloader) < 0) {
            cg_py_log_exception(w->log, CG_LOG_ERROR, "Exception in worker process");
            status = CG_WORKER_EXIT_BOOT_ERROR;
            goto out;
        }
    }
    PyObject *app = NULL;
    status = cg__load(w, reloader, &app);
    if (status != 0)
        goto out;
    if (reloader != NULL && cg_py_reloader_start(reloader) < 0) {
        cg_log_exception(w->log, "Exception in worker process\ncannot start the reloader thread");
        Py_DECREF(app);
        status = CG_WORKER_EXIT_BOOT_ERROR;
        goto out;
    }
    cg_worker_kind_t kind = cg_config_worker_kind(w->cfg);
    int is_asgi = cg_asgi_is_app(app, kind == CG_WORKER_ASGI);
    if (is_asgi < 0 || is_asgi != (kind == CG_WORKER_ASGI)) {
        /* the wrong interface would fail every request: say so at boot,
         * as an app that cannot be loaded (exit code 4) */
        if (is_asgi < 0)
            cg_py_log_exception(w->log, CG_LOG_ERROR, "Exception in worker process");
        else if (is_asgi)
            cg_log_error(w->log, "%s is an ASGI application (a coroutine function): run it "
                                 "with -k asgi",
                         w->cfg->app_uri ? w->cfg->app_uri : "The application");
        else
            cg_log_error(w->log, "%s is not an ASGI application (neither a coroutine function "
                                 "nor an object with an async __call__): the asgi worker "
                                 "needs one; a WSGI application runs with -k sync or gthread",
                         w->cfg->app_uri ? w->cfg->app_uri : "The application");
        Py_DECREF(app);
        status = CG_WORKER_EXIT_APP_LOAD_ERROR;
        goto out;
    }
    if (kind == CG_WORKER_ASGI) {
        CG_HOOK(hooks, post_worker_init, w);
        w->booted = true;
        cg_heartbeat_set_booted(&w->hb);
        int arc = cg_worker_asgi_run(w, app);
        if (w->quick)
            CG_HOOK(hooks, worker_int, w);
        else if (w->got_abort)
            CG_HOOK(hooks, worker_abort, w);
        status = arc < 0 ? CG_WORKER_EXIT_CRASH : arc;
        goto out;
    }
    if (cg_wsgi_init(&ws, w, app) < 0) {
        cg_py_log_exception(w->log, CG_LOG_ERROR, "Exception in worker process");
        status = CG_WORKER_EXIT_BOOT_ERROR;
        goto out;
    }
    ws_up = true;
    CG_HOOK(hooks, post_worker_init, w);
    w->booted = true;
    cg_heartbeat_set_booted(&w->hb);

    if (w->cfg->request_timeout > 0 && (w->rt = cg_wsgi_rt_new(w)) == NULL) {
        status = CG_WORKER_EXIT_BOOT_ERROR;
        goto out;
    }
    ws.tstate = PyEval_SaveThread(); /* the loop runs without the GIL */
    cg_wsgi_rt_add(w->rt, &ws);
    int rc = kind == CG_WORKER_GTHREAD ? cg_worker_gthread_run(w, &ws) : cg_worker_sync_run(w, &ws);
    /* stuck pool threads (threads_left) stay registered: nothing frees them */
    cg_wsgi_rt_free(w->rt);
    w->rt = NULL;
    PyEval_RestoreThread(ws.tstate);
    /* Gunicorn runs these from its Python signal handlers; ours run once the
     * loop has let go (the app already got its SystemExit) */
    if (w->quick)
        CG_HOOK(hooks, worker_int, w);
    else if (w->got_abort)
        CG_HOOK(hooks, worker_abort, w);
    if (rc < 0)
        status = CG_WORKER_EXIT_CRASH;
    else if (w->abort_exit)
        status = 1; /* Gunicorn's sys.exit(1) from an idle worker's SIGABRT */

out:
    /* joined before the app and the interpreter go away */
    cg_py_reloader_free(reloader);
    if (w->threads_left > 0) {
        /* Pool threads are still inside the app (the graceful timeout ran
         * out, or QUIT): they use the app, the WSGI state and the
         * interpreter until the process is gone, so none of it is torn
         * down; the process just flushes and leaves. */
        cg_log_warning(w->log, "Worker exiting with %zu request(s) still in the application",
                       w->threads_left);
        ws_up = false;
    }
    if (ws_up)
        cg_wsgi_free(&ws);
    cg_log_info(w->log, "Worker exiting (pid: %d)", (int)w->pid);
    /* before the interpreter goes away: the hook may be Python */
    CG_HOOK(hooks, worker_exit, w->arbiter, w);
    if (own_listeners != NULL)
        cg_net_close_all(own_listeners, w->nlisteners, false);
    if (py_up && !w->quick && w->threads_left == 0) {
        /* Flush what the app printed and run its atexit handlers, as a
         * Python process leaving with sys.exit() would. */
        if (cg_py_finalize() < 0 && status == 0)
            status = 120;
    } else if (py_up) {
        cg_py_flush_stdio();
    }
    /* Last, after the worker_exit hook: the metrics of the last requests
     * (max_requests, TERM, QUIT) still go out. Pool threads still in the
     * app may add to it until the process is gone: then it is only sent. */
    if (w->threads_left == 0) {
        cg_statsd_batch_free(w->statsd_batch);
        w->statsd_batch = NULL;
    } else {
        cg_statsd_batch_flush(w->statsd_batch);
    }
    return status;
}
