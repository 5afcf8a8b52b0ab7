/*
 * dirty.c - Gunicorn's dirty arbiter: a second process tree beside the HTTP
 * workers whose workers load the dirty_apps classes once and serve the calls
 * HTTP workers make with get_dirty_client().execute().
 *
 * The dirty arbiter is a child of the master running this same arbiter
 * (cg_arbiter_run_full) on a copy of the settings: dirty_workers workers,
 * dirty_timeout as the heartbeat timeout, dirty_graceful_timeout as the
 * graceful one, one unix listening socket per dirty app as its binds, and
 * the Python worker class cgunicorn.dirty._worker.DirtyWorker as the worker.
 * So a dirty worker is watched, timed out (ABRT, then KILL), replaced and
 * scaled (TTIN/TTOU sent to the dirty arbiter) exactly as an HTTP worker
 * is, with no second implementation of any of it.
 *
 * The sockets live in a private directory (mode 0700) the master makes
 * before it forks anything, so the HTTP workers know the paths from the
 * start: <dir>/<i>.sock for the i-th entry of dirty_apps. The master tells
 * them through the environment (CGUNICORN_DIRTY_DIR, CGUNICORN_DIRTY_APPS,
 * CGUNICORN_DIRTY_TIMEOUT), as Gunicorn tells them GUNICORN_DIRTY_SOCKET.
 *
 * The master restarts a dirty arbiter that died (at most once a second),
 * forwards HUP and USR1 to it, stops it with TERM (QUIT on a quick stop)
 * with the HTTP workers, and stops altogether when it exits 3 or 4 (a dirty
 * worker failed to boot or to load its apps), as for an HTTP worker.
 */
#include "arbiter.h"

#include <ftw.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CG__DIRTY_WORKER_CLASS "cgunicorn.dirty._worker.DirtyWorker"

static void cg__remove_dir(cg_arbiter_t *a, const char *dir);

bool cg_arbiter_dirty_enabled(const cg_config_t *cfg)
{
    return !cfg->dirty_arbiter && cfg->dirty_workers > 0 && cfg->dirty_apps.n > 0;
}

/* The HTTP hooks must not run in the dirty tree: those a dirty worker
 * would otherwise call (it calls the dirty_* ones itself). */
static void cg__drop_http_hooks(cg_config_t *d)
{
    void **hooks[] = {&d->post_fork,  &d->post_worker_init, &d->worker_int, &d->worker_abort,
                      &d->worker_exit, &d->pre_request,     &d->post_request, &d->child_exit,
                      &d->pre_fork,    &d->on_starting,     &d->when_ready, &d->on_exit,
                      &d->on_reload,   &d->nworkers_changed, &d->pre_exec};
    for (size_t i = 0; i < CG_ARRAY_SIZE(hooks); i++) {
        if (*hooks[i] != NULL && d->callable_release != NULL)
            d->callable_release(*hooks[i]);
        *hooks[i] = NULL;
    }
}

static void cg__set_str(char **field, const char *value)
{
    free(*field);
    *field = value != NULL ? cg_xstrdup(value) : NULL;
}

/* The dirty arbiter process: never returns. */
static void cg__dirty_main(cg_arbiter_t *a)
{
    const cg_config_t *cfg = a->cfg;
    static cg_config_t d; /* lives until _exit */
    static cg_hooks_t hooks;
    char path[4096];

    /* what the master inherited from a USR2 parent or systemd is not ours */
    const char *env[] = {"GUNICORN_PID", "GUNICORN_FD",    "LISTEN_FDS",
                         "LISTEN_PID",   "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"};
    for (size_t i = 0; i < CG_ARRAY_SIZE(env); i++)
        unsetenv(env[i]);
    /* the trees a HUP replaced are the master's to clean up */
    for (size_t i = 0; i < a->ndirty_old; i++)
        free(a->dirty_old[i].dir);
    free(a->dirty_old);
    a->dirty_old = NULL;
    a->ndirty_old = 0;
    /* the HTTP listeners stay with the master and its workers */
    cg_net_close_all(a->listeners, a->nlisteners, false);
    a->listeners = NULL;
    a->nlisteners = 0;

    cg_config_copy(&d, cfg);
    d.dirty_arbiter = true;
    d.workers = d.dirty_workers;
    d.timeout = d.dirty_timeout;
    d.graceful_timeout = d.dirty_graceful_timeout;
    d.threads = 1;
    d.max_requests = 0;
    d.max_worker_memory = 0;
    d.daemon = false;
    d.preload_app = false;
    d.reuse_port = false;
    d.reload = false;
    d.control_socket_disable = true;
    d.argv = NULL; /* a HUP restarts the dirty workers with these settings */
    d.argc = 0;
    cg__set_str(&d.worker_class, CG__DIRTY_WORKER_CLASS);
    cg__set_str(&d.pidfile, NULL);
    cg__set_str(&d.metrics_bind, NULL);
    cg__set_str(&d.certfile, NULL);
    cg__set_str(&d.keyfile, NULL);
    for (size_t i = 0; i < d.bind.n; i++)
        free(d.bind.v[i]);
    d.bind.n = 0;
    for (size_t i = 0; i < cfg->dirty_apps.n; i++) {
        snprintf(path, sizeof(path), "unix:%s/%zu.sock", a->dirty_dir, i);
        char err[256];
        if (cg_config_list_append(&d, "bind", path, CG_SRC_CLI, err, sizeof(err)) < 0) {
            cg_log_error(a->log, "Dirty arbiter: %s", err);
            _exit(1);
        }
    }
    cg__drop_http_hooks(&d);
    if (cfg->hooks != NULL) {
        /* the Python glue (fork hooks, the worker object) without the
         * HTTP hooks; on_starting becomes on_dirty_starting */
        memset(&hooks, 0, sizeof(hooks));
        hooks.ctx = cfg->hooks->ctx;
        hooks.fork_prepare = cfg->hooks->fork_prepare;
        hooks.fork_parent = cfg->hooks->fork_parent;
        hooks.fork_child = cfg->hooks->fork_child;
        hooks.on_starting = cfg->hooks->on_dirty_starting;
        d.hooks = &hooks;
    }
    fflush(NULL);
    pid_t parent = getppid();
    int status = cg_arbiter_run_full(&d, a->log, a->worker_main, NULL, NULL);
    /* orphaned: no master is left to remove the socket directory */
    if (getppid() != parent)
        cg_arbiter_dirty_cleanup(a);
    _exit(status);
}

/* Gunicorn's well-known file of the dirty arbiter's pid (its docs send
 * TTIN/TTOU to `cat /tmp/gunicorn-dirty-NAME.pid`): $TMPDIR, proc_name
 * with '/' and ' ' made '_', ".2" for the new master of a USR2. */
static char *cg__dirty_pidfile_path(const cg_arbiter_t *a)
{
    const cg_config_t *cfg = a->cfg;
    const char *name = cfg->proc_name           ? cfg->proc_name
                       : cfg->default_proc_name ? cfg->default_proc_name
                                                : "gunicorn";
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    size_t len = strlen(base) + strlen(name) + 32;
    char *path = cg_xmalloc(len);
    int n = snprintf(path, len, "%s/gunicorn-dirty-", base);
    for (const char *c = name; *c != '\0'; c++)
        path[n++] = *c == '/' || *c == ' ' ? '_' : *c;
    snprintf(path + n, len - (size_t)n, "%s.pid", a->master_pid != 0 ? ".2" : "");
    return path;
}

/* Written whole (a temporary file renamed), mode 0600; never over what is
 * not a regular file of ours (a link planted in a shared /tmp). Failing is
 * a warning, as in Gunicorn: the file is a convenience. */
static void cg__dirty_pidfile_write(cg_arbiter_t *a, pid_t pid)
{
    const char *path = a->dirty_pidfile;
    if (path == NULL)
        return;
    struct stat st;
    if (lstat(path, &st) == 0 && (!S_ISREG(st.st_mode) || st.st_uid != geteuid())) {
        cg_log_warning(a->log,
                       "Not writing dirty arbiter PID file %s: it exists and is not a regular "
                       "file owned by this user",
                       path);
        return;
    }
    size_t len = strlen(path) + 8;
    char *tmp = cg_xmalloc(len);
    snprintf(tmp, len, "%s.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        cg_log_warning(a->log, "Failed to write PID file: %s: %s", tmp, strerror(errno));
        free(tmp);
        return;
    }
    char line[32];
    int n = snprintf(line, sizeof(line), "%d\n", (int)pid);
    bool ok = write(fd, line, (size_t)n) == n;
    if (close(fd) < 0)
        ok = false;
    if (!ok || rename(tmp, path) < 0) {
        cg_log_warning(a->log, "Failed to write PID file: %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
}

static void cg__dirty_spawn(cg_arbiter_t *a)
{
    pid_t pid = cg_arbiter_fork(a);
    if (pid == 0) {
        cg_arbiter_ctl_child(a);
        cg_arbiter_signals_child(a);
        cg__dirty_main(a);
    }
    a->dirty_spawned_ms = cg_monotonic_ms();
    if (pid < 0) {
        cg_log_error(a->log, "fork() of the dirty arbiter failed: %s", strerror((int)-pid));
        return;
    }
    a->dirty_pid = pid;
    a->dirty_target = a->cfg->dirty_workers;
    cg_log_info(a->log, "Spawned dirty arbiter (pid: %d)", (int)pid);
    cg__dirty_pidfile_write(a, pid);
}

/* The dirty_* settings a dirty tree runs with, as one string (NULL when
 * none is configured): a HUP that changes it starts a new tree. */
static char *cg__dirty_settings(const cg_config_t *cfg)
{
    if (!cg_arbiter_dirty_enabled(cfg))
        return NULL;
    size_t len = 128;
    for (size_t i = 0; i < cfg->dirty_apps.n; i++)
        len += strlen(cfg->dirty_apps.v[i]) + 1;
    char *s = cg_xmalloc(len);
    size_t n = (size_t)snprintf(s, len, "%ld %ld %ld %ld", cfg->dirty_workers, cfg->dirty_timeout,
                                cfg->dirty_graceful_timeout, cfg->dirty_threads);
    for (size_t i = 0; i < cfg->dirty_apps.n; i++)
        n += (size_t)snprintf(s + n, len - n, ",%s", cfg->dirty_apps.v[i]);
    return s;
}

int cg_arbiter_dirty_start(cg_arbiter_t *a)
{
    const cg_config_t *cfg = a->cfg;
    if (!cg_arbiter_dirty_enabled(cfg))
        return 0;
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof(tmpl), "%s/cgunicorn-dirty-XXXXXX",
             base != NULL && base[0] != '\0' ? base : "/tmp");
    if (mkdtemp(tmpl) == NULL) {
        int e = errno;
        cg_log_error(a->log, "Cannot create the dirty socket directory %s: %s", tmpl, strerror(e));
        return -e;
    }
    /* sun_path holds 108 bytes: "<dir>/<i>.sock" must fit */
    if (strlen(tmpl) + 24 > 107) {
        cg_log_error(a->log, "The dirty socket directory %s is too long for a unix socket path",
                     tmpl);
        rmdir(tmpl);
        return -ENAMETOOLONG;
    }
    a->dirty_dir = cg_xstrdup(tmpl);

    /* the HTTP workers' side: where each app listens, and the timeout */
    size_t len = 1;
    for (size_t i = 0; i < cfg->dirty_apps.n; i++)
        len += strlen(cfg->dirty_apps.v[i]) + 1;
    char *apps = cg_xmalloc(len);
    apps[0] = '\0';
    for (size_t i = 0; i < cfg->dirty_apps.n; i++) {
        if (i > 0)
            strcat(apps, ",");
        strcat(apps, cfg->dirty_apps.v[i]);
    }
    char num[32];
    snprintf(num, sizeof(num), "%ld", cfg->dirty_timeout);
    int r = 0;
    /* Gunicorn's name for where its dirty arbiter listens; ours is the
     * directory, which DirtyClient(), set_dirty_socket_path() and
     * StashClient() take, so code handing it to them works unchanged */
    if (setenv("CGUNICORN_DIRTY_DIR", a->dirty_dir, 1) < 0 ||
        setenv("GUNICORN_DIRTY_SOCKET", a->dirty_dir, 1) < 0 ||
        setenv("CGUNICORN_DIRTY_APPS", apps, 1) < 0 ||
        setenv("CGUNICORN_DIRTY_TIMEOUT", num, 1) < 0) {
        r = -errno;
        cg_log_error(a->log, "Cannot set the dirty environment: %s", strerror(-r));
    }
    free(apps);
    if (r == 0) {
        a->dirty_settings = cg__dirty_settings(cfg);
        a->dirty_pidfile = cg__dirty_pidfile_path(a);
        cg__dirty_spawn(a);
    }
    return r;
}

bool cg_arbiter_dirty_reaped(cg_arbiter_t *a, pid_t pid, int status)
{
    if (pid <= 0)
        return false;
    for (size_t i = 0; i < a->ndirty_old; i++) {
        if (a->dirty_old[i].pid != pid)
            continue;
        /* a dirty arbiter a HUP replaced: it stopped its workers and
         * unlinked its sockets; the rest of its directory goes now */
        cg_log_info(a->log, "Replaced dirty arbiter (pid:%d) exited", (int)pid);
        cg__remove_dir(a, a->dirty_old[i].dir);
        free(a->dirty_old[i].dir);
        if (a->dirty_pidfile != NULL)
            cg_arbiter_pidfile_unlink(a->dirty_pidfile, pid);
        a->dirty_old[i] = a->dirty_old[--a->ndirty_old];
        return true;
    }
    if (pid != a->dirty_pid)
        return false;
    a->dirty_pid = 0;
    if (a->dirty_pidfile != NULL)
        cg_arbiter_pidfile_unlink(a->dirty_pidfile, pid);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (WIFSIGNALED(status))
        cg_log_error(a->log, "Dirty arbiter (pid:%d) was sent %s!", (int)pid,
                     cg_arbiter_signal_name(WTERMSIG(status)) ? cg_arbiter_signal_name(WTERMSIG(status))
                                                              : "a signal");
    else if (code != 0)
        cg_log_error(a->log, "Dirty arbiter (pid:%d) exited with code %d.", (int)pid, code);
    if (!a->stopping && (code == CG_WORKER_EXIT_BOOT_ERROR || code == CG_WORKER_EXIT_APP_LOAD_ERROR))
        cg_arbiter_halt_request(a, code,
                                code == CG_WORKER_EXIT_BOOT_ERROR ? "Dirty worker failed to boot."
                                                                  : "Dirty app failed to load.");
    return true;
}

void cg_arbiter_dirty_manage(cg_arbiter_t *a)
{
    if (a->dirty_dir == NULL || a->dirty_pid > 0 || a->stopping)
        return;
    /* a dirty arbiter that dies at once is not restarted in a tight loop */
    if (cg_monotonic_ms() - a->dirty_spawned_ms < 1000)
        return;
    cg__dirty_spawn(a);
}

/* The N of "module:Class:N", else 0 (the parsing of app.py's
 * parse_dirty_app_spec: exactly three fields, the last an integer). */
static long cg__spec_limit(const char *spec)
{
    const char *c1 = strchr(spec, ':');
    const char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
    if (c2 == NULL || strchr(c2 + 1, ':') != NULL)
        return 0;
    char *end;
    errno = 0;
    long n = strtol(c2 + 1, &end, 10);
    return errno == 0 && end != c2 + 1 && *end == '\0' && n > 0 ? n : 0;
}

/* The limit a dirty worker found on the i-th app's class (<dir>/<i>.limit
 * beside its socket <dir>/<i>.sock), else 0. Read by the dirty arbiter
 * (TTOU) and by the master (`dirty remove`), which share the directory. */
static long cg__reported_limit(const char *dir, size_t i)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%zu.limit", dir, i) >= (int)sizeof(path))
        return 0;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    long v = 0;
    if (fscanf(f, "%ld", &v) != 1 || v < 0)
        v = 0;
    fclose(f);
    return v;
}

long cg_arbiter_dirty_floor(const cg_arbiter_t *a)
{
    const cg_config_t *cfg = a->cfg;
    /* the master made the directory; the dirty arbiter, a fresh arbiter
     * on the dirty settings, has it from the environment the master set */
    const char *dir = a->dirty_dir != NULL ? a->dirty_dir : getenv("CGUNICORN_DIRTY_DIR");
    long floor = 1;
    for (size_t i = 0; i < cfg->dirty_apps.n; i++) {
        long n = cg__spec_limit(cfg->dirty_apps.v[i]);
        if (n == 0 && dir != NULL)
            n = cg__reported_limit(dir, i);
        if (n > floor)
            floor = n;
    }
    return floor;
}

void cg_arbiter_dirty_signal(cg_arbiter_t *a, int sig)
{
    if (a->dirty_pid > 0 && kill(a->dirty_pid, sig) < 0 && errno != ESRCH)
        cg_log_error(a->log, "kill(%d, %s) failed: %s", (int)a->dirty_pid,
                     cg_arbiter_signal_name(sig), strerror(errno));
}

static int cg__remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    CG_UNUSED(st);
    CG_UNUSED(ftw);
    /* what cannot be removed stays (the rmdir of its directory then fails
     * and is logged); the walk goes on, as nftw stops on a non-0 return */
    int r = flag == FTW_DP ? rmdir(path) : unlink(path);
    CG_UNUSED(r);
    return 0;
}

/* A dirty socket directory and what is left in it: the dirty arbiter
 * unlinked its sockets; the lock files of the per-app places and of the
 * workers' presence (pylib/cgunicorn/dirty/_worker.py, _avail.py), the
 * apps' reported limits and the stash tables (stash/<table>/<key>,
 * pylib/cgunicorn/dirty/stash.py) stay. */
static void cg__remove_dir(cg_arbiter_t *a, const char *dir)
{
    if (nftw(dir, cg__remove_entry, 8, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
        cg_log_debug(a->log, "Cannot walk %s: %s", dir, strerror(errno));
    /* gone already when the walk removed everything */
    if (rmdir(dir) < 0 && errno != ENOENT)
        cg_log_debug(a->log, "Cannot remove %s: %s", dir, strerror(errno));
}

void cg_arbiter_dirty_signal_all(cg_arbiter_t *a, int sig)
{
    cg_arbiter_dirty_signal(a, sig);
    for (size_t i = 0; i < a->ndirty_old; i++)
        if (kill(a->dirty_old[i].pid, sig) < 0 && errno != ESRCH)
            cg_log_error(a->log, "kill(%d, %s) failed: %s", (int)a->dirty_old[i].pid,
                         cg_arbiter_signal_name(sig), strerror(errno));
}

bool cg_arbiter_dirty_running(const cg_arbiter_t *a)
{
    return a->dirty_pid > 0 || a->ndirty_old > 0;
}

void cg_arbiter_dirty_reload(cg_arbiter_t *a)
{
    char *now = cg__dirty_settings(a->cfg);
    bool same = now == NULL ? a->dirty_settings == NULL
                            : a->dirty_settings != NULL && strcmp(now, a->dirty_settings) == 0;
    free(now);
    if (same) {
        /* it replaces its workers, on the settings it has, and goes back
         * to dirty_workers of them as our arbiter's HUP does */
        cg_arbiter_dirty_signal(a, SIGHUP);
        a->dirty_target = a->cfg->dirty_workers;
        return;
    }
    /* Gunicorn 27's dirty arbiter keeps the settings it was forked with
     * until it is respawned; here the changed ones apply now: the old
     * tree stops gracefully (its calls in progress finish) beside a new
     * one in a new directory, which the HTTP workers forked from now on
     * call. Its stash tables go with it. */
    if (a->dirty_dir != NULL) {
        cg_log_info(a->log, "Dirty settings changed: replacing the dirty arbiter");
        if (a->dirty_pid > 0) {
            cg_arbiter_dirty_signal(a, SIGTERM);
            a->dirty_old = cg_xrealloc(a->dirty_old, (a->ndirty_old + 1) * sizeof(*a->dirty_old));
            a->dirty_old[a->ndirty_old].pid = a->dirty_pid;
            a->dirty_old[a->ndirty_old].dir = a->dirty_dir;
            a->ndirty_old++;
            a->dirty_pid = 0;
        } else {
            cg__remove_dir(a, a->dirty_dir);
            free(a->dirty_dir);
        }
        a->dirty_dir = NULL;
    }
    free(a->dirty_settings);
    a->dirty_settings = NULL;
    free(a->dirty_pidfile); /* the old one unlinks its pid when reaped */
    a->dirty_pidfile = NULL;
    const char *env[] = {"CGUNICORN_DIRTY_DIR", "CGUNICORN_DIRTY_APPS", "CGUNICORN_DIRTY_TIMEOUT",
                         "GUNICORN_DIRTY_SOCKET"};
    for (size_t i = 0; i < CG_ARRAY_SIZE(env); i++)
        unsetenv(env[i]);
    if (cg_arbiter_dirty_start(a) < 0)
        cg_log_error(a->log, "No dirty arbiter runs until the next HUP");
}

void cg_arbiter_dirty_cleanup(cg_arbiter_t *a)
{
    for (size_t i = 0; i < a->ndirty_old; i++) {
        cg__remove_dir(a, a->dirty_old[i].dir);
        free(a->dirty_old[i].dir);
    }
    free(a->dirty_old);
    a->dirty_old = NULL;
    a->ndirty_old = 0;
    free(a->dirty_settings);
    a->dirty_settings = NULL;
    if (a->dirty_pidfile != NULL)
        /* an orphaned dirty arbiter removes its own pid */
        cg_arbiter_pidfile_unlink(a->dirty_pidfile, getpid());
    free(a->dirty_pidfile);
    a->dirty_pidfile = NULL;
    if (a->dirty_dir == NULL)
        return;
    cg__remove_dir(a, a->dirty_dir);
    free(a->dirty_dir);
    a->dirty_dir = NULL;
}
