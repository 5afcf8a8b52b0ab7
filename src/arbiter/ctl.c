/*
 * ctl.c - the master's control socket (Gunicorn 25.1+, on by default): its
 * life (created once the first workers are spawned, moved by a HUP that
 * changes it, taken over by a USR2 child, removed at exit) and the commands,
 * answered with the fields of Gunicorn 26.1's gunicorn/ctl/handlers.py.
 *
 * Commands act through the arbiter's own machinery: reload, reopen and
 * shutdown queue HUP, USR1 and TERM/INT on the signal pipe (Gunicorn sends
 * them to itself), so they run through the signal table in the loop's next
 * pass, after the answer has left; worker add/remove move the wanted count
 * and manage the workers as TTIN/TTOU do.
 */
#include "arbiter.h"

#include "../ctl/ctl.h"
#include "../os/os.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* the most dirty workers the control socket lists at once */
#define CG__DIRTY_MAX 1024
/* ... and the most TTIN or TTOU one `dirty add|remove` sends */
#define CG__DIRTY_SCALE_MAX 32

/* A command's outcome: 0 with the data written, or CG_CTL_ANSWER_ERROR
 * with the message in err. */
typedef int (*cg__cmd_fn)(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o,
                          char *err, size_t errlen);

typedef struct cg__cmd {
    const char *name;
    cg__cmd_fn fn;
} cg__cmd_t;

static int cg__invalid(char *err, size_t errlen, const char *fmt, const char *what)
{
    char msg[256];
    snprintf(msg, sizeof(msg), fmt, what);
    snprintf(err, errlen, "Invalid argument: %s", msg);
    return CG_CTL_ANSWER_ERROR;
}

/* Run the sub-command argv[0] of `table` (lower-cased first, as Gunicorn
 * does); `missing`/`unknown` are Gunicorn's messages. */
static int cg__route(const cg__cmd_t *table, size_t n, cg_arbiter_t *a, char **argv, size_t argc,
                     cg_json_out_t *o, char *err, size_t errlen, const char *missing,
                     const char *unknown)
{
    if (argc == 0)
        return cg__invalid(err, errlen, "%s", missing);
    for (char *p = argv[0]; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    for (size_t i = 0; i < n; i++)
        if (strcmp(argv[0], table[i].name) == 0)
            return table[i].fn(a, argv + 1, argc - 1, o, err, errlen);
    return cg__invalid(err, errlen, unknown, argv[0]);
}

/* int(argv[0]) if given, else dflt; Gunicorn then takes max(1, n). */
static int cg__count(char **argv, size_t argc, long long dflt, long long *out, char *err,
                     size_t errlen)
{
    char msg[256];
    *out = dflt;
    if (argc > 0 && cg_ctl_parse_int(argv[0], out, msg, sizeof(msg)) < 0)
        return cg__invalid(err, errlen, "%s", msg);
    return 0;
}

/* ---- show -------------------------------------------------------------- */

static double cg__heartbeat_s(const cg_worker_t *w)
{
    return (double)cg_heartbeat_age_ms(&w->hb) / 1000.0;
}

/* One worker of show workers (all: the shape of show all's web_workers). */
static void cg__worker(const cg_worker_t *w, bool all, cg_json_out_t *o)
{
    cg_json_obj_begin(o);
    cg_json_key(o, "pid");
    cg_json_int(o, w->pid);
    if (all) {
        cg_json_key(o, "type");
        cg_json_str(o, "web");
    }
    cg_json_key(o, "age");
    cg_json_int(o, w->age);
    cg_json_key(o, "booted");
    cg_json_bool(o, cg_heartbeat_booted(&w->hb));
    if (!all) {
        cg_json_key(o, "aborted");
        cg_json_bool(o, w->aborted);
    }
    cg_json_key(o, "last_heartbeat");
    cg_json_round2(o, cg__heartbeat_s(w));
    cg_json_obj_end(o);
}

static void cg__workers(const cg_arbiter_t *a, bool all, cg_json_out_t *o)
{
    /* the table is in spawn order: oldest first, as Gunicorn sorts them */
    cg_json_arr_begin(o);
    for (size_t i = 0; i < a->nworkers; i++)
        cg__worker(a->workers[i], all, o);
    cg_json_arr_end(o);
}

static int cg__show_workers(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o,
                            char *err, size_t errlen)
{
    CG_UNUSED(argv), CG_UNUSED(argc), CG_UNUSED(err), CG_UNUSED(errlen);
    cg_json_obj_begin(o);
    cg_json_key(o, "workers");
    cg__workers(a, false, o);
    cg_json_key(o, "count");
    cg_json_int(o, (long long)a->nworkers);
    cg_json_obj_end(o);
    return 0;
}

static int cg__show_all(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o, char *err,
                        size_t errlen)
{
    CG_UNUSED(argv), CG_UNUSED(argc), CG_UNUSED(err), CG_UNUSED(errlen);
    cg_json_obj_begin(o);
    cg_json_key(o, "arbiter");
    cg_json_obj_begin(o);
    cg_json_key(o, "pid");
    cg_json_int(o, a->pid);
    cg_json_key(o, "type");
    cg_json_str(o, "arbiter");
    cg_json_key(o, "role");
    cg_json_str(o, "master");
    cg_json_obj_end(o);
    cg_json_key(o, "web_workers");
    cg__workers(a, true, o);
    cg_json_key(o, "web_worker_count");
    cg_json_int(o, (long long)a->nworkers);
    /* the dirty workers are the dirty arbiter's children, not ours: the
     * kernel lists them (no heartbeat or age is known here) */
    pid_t dpids[CG__DIRTY_MAX];
    size_t nd = a->dirty_pid > 0 ? cg_os_proc_children(a->dirty_pid, dpids, CG__DIRTY_MAX) : 0;
    cg_json_key(o, "dirty_arbiter");
    if (a->dirty_pid > 0) {
        cg_json_obj_begin(o);
        cg_json_key(o, "pid");
        cg_json_int(o, a->dirty_pid);
        cg_json_key(o, "type");
        cg_json_str(o, "dirty_arbiter");
        cg_json_key(o, "role");
        cg_json_str(o, "dirty arbiter");
        cg_json_obj_end(o);
    } else {
        cg_json_null(o);
    }
    cg_json_key(o, "dirty_workers");
    cg_json_arr_begin(o);
    for (size_t i = 0; i < nd; i++) {
        cg_json_obj_begin(o);
        cg_json_key(o, "pid");
        cg_json_int(o, dpids[i]);
        cg_json_key(o, "type");
        cg_json_str(o, "dirty");
        cg_json_obj_end(o);
    }
    cg_json_arr_end(o);
    cg_json_key(o, "dirty_worker_count");
    cg_json_int(o, (long long)nd);
    cg_json_obj_end(o);
    return 0;
}

static int cg__show_dirty(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o,
                          char *err, size_t errlen)
{
    CG_UNUSED(argv), CG_UNUSED(argc), CG_UNUSED(err), CG_UNUSED(errlen);
    bool on = a->dirty_pid > 0;
    pid_t dpids[CG__DIRTY_MAX];
    size_t nd = on ? cg_os_proc_children(a->dirty_pid, dpids, CG__DIRTY_MAX) : 0;
    cg_json_obj_begin(o);
    cg_json_key(o, "enabled");
    cg_json_bool(o, on);
    cg_json_key(o, "pid");
    if (on)
        cg_json_int(o, a->dirty_pid);
    else
        cg_json_null(o);
    cg_json_key(o, "workers");
    cg_json_arr_begin(o);
    for (size_t i = 0; i < nd; i++) {
        cg_json_obj_begin(o);
        cg_json_key(o, "pid");
        cg_json_int(o, dpids[i]);
        cg_json_obj_end(o);
    }
    cg_json_arr_end(o);
    cg_json_key(o, "apps");
    cg_json_arr_begin(o);
    for (size_t i = 0; on && i < a->cfg->dirty_apps.n; i++) {
        /* "module:Class" and its limit from ":N" (the class's own
         * `workers` attribute is known only inside the dirty workers) */
        const char *spec = a->cfg->dirty_apps.v[i];
        const char *first = strchr(spec, ':');
        const char *second = first != NULL ? strchr(first + 1, ':') : NULL;
        size_t plen = second != NULL ? (size_t)(second - spec) : strlen(spec);
        char *path = cg_xmalloc(plen + 1);
        memcpy(path, spec, plen);
        path[plen] = '\0';
        cg_json_obj_begin(o);
        cg_json_key(o, "import_path");
        cg_json_str(o, path);
        cg_json_key(o, "worker_count");
        if (second != NULL)
            cg_json_int(o, atoll(second + 1));
        else
            cg_json_null(o);
        cg_json_obj_end(o);
        free(path);
    }
    cg_json_arr_end(o);
    cg_json_obj_end(o);
    return 0;
}

static void cg__str_or_null(cg_json_out_t *o, const char *key, const char *v)
{
    cg_json_key(o, key);
    if (v != NULL)
        cg_json_str(o, v);
    else
        cg_json_null(o);
}

static void cg__strv(cg_json_out_t *o, const char *key, const cg_strv_t *v)
{
    cg_json_key(o, key);
    cg_json_arr_begin(o);
    for (size_t i = 0; i < v->n; i++)
        cg_json_str(o, v->v[i]);
    cg_json_arr_end(o);
}

static void cg__long(cg_json_out_t *o, const char *key, long v)
{
    cg_json_key(o, key);
    cg_json_int(o, v);
}

static void cg__flag(cg_json_out_t *o, const char *key, bool v)
{
    cg_json_key(o, key);
    cg_json_bool(o, v);
}

/* str() of Gunicorn's cfg.worker_class, a class: "<class 'gunicorn...'>" */
static void cg__worker_class(const cg_config_t *cfg, cg_json_out_t *o)
{
    const char *name;
    switch (cg_config_worker_kind(cfg)) {
    case CG_WORKER_SYNC: name = "gunicorn.workers.sync.SyncWorker"; break;
    case CG_WORKER_GTHREAD: name = "gunicorn.workers.gthread.ThreadWorker"; break;
    case CG_WORKER_ASGI:
        name = cg_config_worker_stand_in(cfg->worker_class) ? cfg->worker_class
                                                             : "gunicorn.workers.gasgi.ASGIWorker";
        break;
    default: name = cfg->worker_class ? cfg->worker_class : "sync"; break;
    }
    char text[512];
    snprintf(text, sizeof(text), "<class '%s'>", name);
    cg_json_key(o, "worker_class");
    cg_json_str(o, text);
}

/* The keys of Gunicorn's show config, in its order. */
static int cg__show_config(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o,
                           char *err, size_t errlen)
{
    CG_UNUSED(argv), CG_UNUSED(argc), CG_UNUSED(err), CG_UNUSED(errlen);
    const cg_config_t *c = a->cfg;
    cg_json_obj_begin(o);
    cg__strv(o, "bind", &c->bind);
    cg__long(o, "workers", c->workers);
    cg__worker_class(c, o);
    cg__long(o, "threads", c->threads);
    cg__long(o, "timeout", c->timeout);
    cg__long(o, "graceful_timeout", c->graceful_timeout);
    cg__long(o, "keepalive", c->keepalive);
    cg__long(o, "max_requests", c->max_requests);
    cg__long(o, "max_requests_jitter", c->max_requests_jitter);
    cg__long(o, "worker_connections", c->worker_connections);
    cg__flag(o, "preload_app", c->preload_app);
    cg__flag(o, "daemon", c->daemon);
    cg__str_or_null(o, "pidfile", c->pidfile);
    cg__str_or_null(o, "proc_name", c->proc_name ? c->proc_name : c->default_proc_name);
    cg__flag(o, "reload", c->reload);
    cg__long(o, "dirty_workers", c->dirty_workers);
    cg__strv(o, "dirty_apps", &c->dirty_apps);
    cg__long(o, "dirty_timeout", c->dirty_timeout);
    cg__str_or_null(o, "control_socket", c->control_socket);
    cg__flag(o, "control_socket_disable", c->control_socket_disable);
    cg_json_obj_end(o);
    return 0;
}

static int cg__show_stats(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o,
                          char *err, size_t errlen)
{
    CG_UNUSED(argv), CG_UNUSED(argc), CG_UNUSED(err), CG_UNUSED(errlen);
    cg_json_obj_begin(o);
    cg_json_key(o, "uptime");
    cg_json_round2(o, (double)(cg_monotonic_ms() - a->stats.start_ms) / 1000.0);
    cg__long(o, "pid", a->pid);
    cg__long(o, "workers_current", (long)a->nworkers);
    cg__long(o, "workers_target", a->num_workers);
    cg__long(o, "workers_spawned", (long)a->stats.workers_spawned);
    cg__long(o, "workers_killed", (long)a->stats.workers_killed);
    cg__long(o, "reloads", (long)a->stats.reloads);
    cg_json_key(o, "dirty_arbiter_pid");
    if (a->dirty_pid > 0)
        cg_json_int(o, a->dirty_pid);
    else
        cg_json_null(o);
    cg_json_obj_end(o);
    return 0;
}

static int cg__show_listeners(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o,
                              char *err, size_t errlen)
{
    CG_UNUSED(argv), CG_UNUSED(argc), CG_UNUSED(err), CG_UNUSED(errlen);
    cg_json_obj_begin(o);
    cg_json_key(o, "listeners");
    cg_json_arr_begin(o);
    for (size_t i = 0; i < a->nlisteners; i++) {
        const cg_listener_t *l = &a->listeners[i];
        cg_json_obj_begin(o);
        cg__str_or_null(o, "address", l->display);
        cg__long(o, "fd", l->fd);
        cg_json_key(o, "type");
        cg_json_str(o, l->family == AF_UNIX    ? "unix"
                       : l->family == AF_INET  ? "tcp"
                       : l->family == AF_INET6 ? "tcp6"
                                               : "unknown");
        cg_json_obj_end(o);
    }
    cg_json_arr_end(o);
    cg__long(o, "count", (long)a->nlisteners);
    cg_json_obj_end(o);
    return 0;
}

static const cg__cmd_t cg__show[] = {
    {"all", cg__show_all},       {"workers", cg__show_workers},
    {"dirty", cg__show_dirty},   {"config", cg__show_config},
    {"stats", cg__show_stats},   {"listeners", cg__show_listeners},
};

static int cg__cmd_show(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o, char *err,
                        size_t errlen)
{
    return cg__route(cg__show, CG_ARRAY_SIZE(cg__show), a, argv, argc, o, err, errlen,
                     "Missing show target (all|workers|dirty|config|stats|listeners)",
                     "Unknown show target: %s");
}

/* ---- worker ------------------------------------------------------------ */

static int cg__worker_add(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o,
                          char *err, size_t errlen)
{
    long long n;
    int r = cg__count(argv, argc, 1, &n, err, errlen);
    if (r != 0)
        return r;
    if (n < 1)
        n = 1;
    long before = a->num_workers;
    if (n > CG_MAX_PROCS - before)
        return cg__invalid(err, errlen, "more than %s workers", "1000000");
    /* what TTIN does, by n at once (one nworkers_changed, as Gunicorn) */
    cg_arbiter_set_num_workers(a, before + (long)n, before);
    cg_arbiter_manage_workers(a);
    cg_json_obj_begin(o);
    cg__long(o, "added", (long)n);
    cg__long(o, "previous", before);
    cg__long(o, "total", a->num_workers);
    cg_json_obj_end(o);
    return 0;
}

static int cg__worker_remove(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o,
                             char *err, size_t errlen)
{
    long long n;
    int r = cg__count(argv, argc, 1, &n, err, errlen);
    if (r != 0)
        return r;
    if (n < 1)
        n = 1;
    long before = a->num_workers;
    /* never below one worker, as TTOU and Gunicorn's handler */
    long after = n >= before ? 1 : before - (long)n;
    if (after < 1)
        after = 1;
    if (after != before) {
        cg_arbiter_set_num_workers(a, after, before);
        cg_arbiter_manage_workers(a);
    }
    cg_json_obj_begin(o);
    cg__long(o, "removed", before - after);
    cg__long(o, "previous", before);
    cg__long(o, "total", after);
    cg_json_obj_end(o);
    return 0;
}

static int cg__worker_kill(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o,
                           char *err, size_t errlen)
{
    if (argc == 0)
        return cg__invalid(err, errlen, "%s", "Missing PID for worker kill");
    long long pid;
    int r = cg__count(argv, argc, 0, &pid, err, errlen);
    if (r != 0)
        return r;
    bool known = false;
    for (size_t i = 0; i < a->nworkers && !known; i++)
        known = a->workers[i]->pid == pid;
    cg_json_obj_begin(o);
    if (!known) {
        char msg[64];
        snprintf(msg, sizeof(msg), "Worker %lld not found", pid);
        cg__flag(o, "success", false);
        cg_json_key(o, "error");
        cg_json_str(o, msg);
    } else {
        /* TERM, as Gunicorn: the worker finishes its requests, and once it
         * is reaped the loop forks its successor */
        cg_arbiter_kill_worker(a, (pid_t)pid, SIGTERM);
        cg__flag(o, "success", true);
        cg__long(o, "killed", (long)pid);
    }
    cg_json_obj_end(o);
    return 0;
}

static const cg__cmd_t cg__worker_cmds[] = {
    {"add", cg__worker_add},
    {"remove", cg__worker_remove},
    {"kill", cg__worker_kill},
};

static int cg__cmd_worker(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o,
                          char *err, size_t errlen)
{
    return cg__route(cg__worker_cmds, CG_ARRAY_SIZE(cg__worker_cmds), a, argv, argc, o, err,
                     errlen, "Missing worker action (add|remove|kill)",
                     "Unknown worker action: %s");
}

/* ---- dirty add|remove: TTIN/TTOU to the dirty arbiter ------------------ */

/* Sends the next queued TTIN (k 0) or TTOU (k 1) if the one before was
 * delivered: 1 sent, 0 nothing to do yet, -1 the dirty arbiter is gone
 * (what was queued is dropped). */
static int cg__dirty_pace_one(cg_arbiter_t *a, int k)
{
    static const int sigs[2] = {SIGTTIN, SIGTTOU};
    static const char *const names[2] = {"TTIN", "TTOU"};
    if (a->dirty_scale_left[k] == 0)
        return 0;
    if (a->dirty_pid <= 0 || a->dirty_pid != a->dirty_scale_pid) {
        cg_log_warning(a->log, "Dirty arbiter gone: %ld %s not sent", a->dirty_scale_left[k],
                       names[k]);
        a->dirty_scale_left[k] = 0;
        return -1;
    }
    if (cg_os_proc_signal_pending(a->dirty_pid, sigs[k]) == 1)
        return 0; /* the one before is still on its way: a later pass */
    /* not pending, or the system cannot say (then two may merge), or the
     * process is going (kill says) */
    if (kill(a->dirty_pid, sigs[k]) < 0) {
        cg_log_warning(a->log, "Cannot send %s to the dirty arbiter (pid: %d): %s", names[k],
                       (int)a->dirty_pid, strerror(errno));
        a->dirty_scale_left[k] = 0;
        return -1;
    }
    a->dirty_scale_left[k]--;
    return 1;
}

static int cg__dirty_scale(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o,
                           char *err, size_t errlen, int sig, const char *op,
                           const char *key)
{
    long long n;
    int r = cg__count(argv, argc, 1, &n, err, errlen);
    if (r != 0)
        return r;
    cg_json_obj_begin(o);
    if (a->dirty_pid <= 0) {
        cg__flag(o, "success", false);
        cg_json_key(o, "error");
        cg_json_str(o, "Dirty arbiter not running");
        cg_json_obj_end(o);
        return 0;
    }
    if (n < 1)
        n = 1; /* Gunicorn's max(1, count) */
    long long queued = n < CG__DIRTY_SCALE_MAX ? n : CG__DIRTY_SCALE_MAX;
    if (sig == SIGTTOU) {
        /* Gunicorn's dirty arbiter removes none below the largest per-app
         * limit and answers what it removed; ours ignores a TTOU there
         * (signals.c), so those are not sent */
        pid_t kids[CG__DIRTY_MAX];
        size_t nk = cg_os_proc_children(a->dirty_pid, kids, CG__DIRTY_MAX);
        /* a TTOU sent to it by hand is seen once its worker is gone */
        long live = (long)nk - a->dirty_scale_left[1];
        if (nk > 0 && live < a->dirty_target)
            a->dirty_target = live;
        long above = a->dirty_target - cg_arbiter_dirty_floor(a);
        if (queued > above)
            queued = above > 0 ? above : 0;
    }
    /* the dirty arbiter runs our arbiter: TTIN/TTOU are its scaling. Two
     * signals of a kind sent before the first is delivered merge into one
     * (the dirty arbiter blocks signals across each fork, and for longer
     * when loaded), so the first goes now and each next one from a later
     * pass of the loop, once the kernel has delivered the one before:
     * however long that takes, none is lost and the loop never blocks. */
    int k = sig == SIGTTIN ? 0 : 1;
    if (a->dirty_scale_pid != a->dirty_pid)
        a->dirty_scale_left[0] = a->dirty_scale_left[1] = 0;
    a->dirty_scale_pid = a->dirty_pid;
    a->dirty_scale_left[k] += queued;
    if (a->dirty_scale_left[k] > CG__DIRTY_MAX)
        a->dirty_scale_left[k] = CG__DIRTY_MAX;
    bool ok = queued == 0 || cg__dirty_pace_one(a, k) >= 0;
    if (ok)
        a->dirty_target += k == 0 ? queued : -queued;
    cg__flag(o, "success", ok);
    cg_json_key(o, "operation");
    cg_json_str(o, op);
    cg_json_key(o, "requested");
    cg_json_int(o, n);
    /* the signals this request sends: the first at once unless one sent
     * before is still pending, the rest from the next passes (the dirty
     * arbiter acts on each in its next pass; TTOU never goes below one
     * worker) */
    cg_json_key(o, key);
    cg_json_int(o, ok ? queued : 0);
    cg_json_obj_end(o);
    return 0;
}

bool cg_arbiter_ctl_dirty_pacing(const cg_arbiter_t *a)
{
    return a->dirty_scale_left[0] > 0 || a->dirty_scale_left[1] > 0;
}

void cg_arbiter_ctl_dirty_pace(cg_arbiter_t *a)
{
    for (int k = 0; k < 2; k++)
        cg__dirty_pace_one(a, k);
}

static int cg__dirty_add(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o,
                         char *err, size_t errlen)
{
    return cg__dirty_scale(a, argv, argc, o, err, errlen, SIGTTIN, "add", "spawned");
}

static int cg__dirty_remove(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o,
                            char *err, size_t errlen)
{
    return cg__dirty_scale(a, argv, argc, o, err, errlen, SIGTTOU, "remove", "removed");
}

static const cg__cmd_t cg__dirty_cmds[] = {
    {"add", cg__dirty_add},
    {"remove", cg__dirty_remove},
};

static int cg__cmd_dirty(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o,
                         char *err, size_t errlen)
{
    return cg__route(cg__dirty_cmds, CG_ARRAY_SIZE(cg__dirty_cmds), a, argv, argc, o, err,
                     errlen, "Missing dirty action (add|remove)", "Unknown dirty action: %s");
}

/* ---- signals ----------------------------------------------------------- */

/* Queue signo for the loop's next pass, as Gunicorn's os.kill(self.pid). */
static int cg__raise(cg_arbiter_t *a, int signo, char *err, size_t errlen)
{
    int r = cg_arbiter_signals_raise(a, signo);
    if (r < 0) {
        snprintf(err, errlen, "Command failed: %s", strerror(-r));
        return CG_CTL_ANSWER_ERROR;
    }
    return 0;
}

static int cg__status(cg_json_out_t *o, const char *status, const char *mode)
{
    cg_json_obj_begin(o);
    cg_json_key(o, "status");
    cg_json_str(o, status);
    if (mode != NULL) {
        cg_json_key(o, "mode");
        cg_json_str(o, mode);
    }
    cg_json_obj_end(o);
    return 0;
}

static int cg__cmd_reload(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o,
                          char *err, size_t errlen)
{
    CG_UNUSED(argv), CG_UNUSED(argc);
    return cg__raise(a, SIGHUP, err, errlen) ? CG_CTL_ANSWER_ERROR : cg__status(o, "reloading", NULL);
}

static int cg__cmd_reopen(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o,
                          char *err, size_t errlen)
{
    CG_UNUSED(argv), CG_UNUSED(argc);
    return cg__raise(a, SIGUSR1, err, errlen) ? CG_CTL_ANSWER_ERROR
                                               : cg__status(o, "reopening", NULL);
}

static int cg__cmd_shutdown(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o,
                            char *err, size_t errlen)
{
    /* any mode but "quick" is graceful, and is echoed as given */
    const char *mode = argc > 0 ? argv[0] : "graceful";
    int sig = strcmp(mode, "quick") == 0 ? SIGINT : SIGTERM;
    return cg__raise(a, sig, err, errlen) ? CG_CTL_ANSWER_ERROR
                                           : cg__status(o, "shutting_down", mode);
}

static int cg__cmd_help(cg_arbiter_t *a, char **argv, size_t argc, cg_json_out_t *o, char *err,
                        size_t errlen)
{
    CG_UNUSED(a), CG_UNUSED(argv), CG_UNUSED(argc), CG_UNUSED(err), CG_UNUSED(errlen);
    static const char *const help[][2] = {
        {"show all", "Show all processes (arbiter, web workers, dirty workers)"},
        {"show workers", "List HTTP workers with their status"},
        {"show dirty", "List dirty workers and apps"},
        {"show config", "Show current effective configuration"},
        {"show stats", "Show server statistics"},
        {"show listeners", "Show bound sockets"},
        {"worker add [N]", "Spawn N workers (default 1)"},
        {"worker remove [N]", "Remove N workers (default 1)"},
        {"worker kill <PID>", "Gracefully terminate specific worker"},
        {"dirty add [N]", "Spawn N dirty workers (default 1)"},
        {"dirty remove [N]", "Remove N dirty workers (default 1)"},
        {"reload", "Graceful reload (HUP)"},
        {"reopen", "Reopen log files (USR1)"},
        {"shutdown [graceful|quick]", "Shutdown server (TERM/INT)"},
        {"help", "Show this help message"},
    };
    cg_json_obj_begin(o);
    cg_json_key(o, "commands");
    cg_json_obj_begin(o);
    for (size_t i = 0; i < CG_ARRAY_SIZE(help); i++) {
        cg_json_key(o, help[i][0]);
        cg_json_str(o, help[i][1]);
    }
    cg_json_obj_end(o);
    cg_json_obj_end(o);
    return 0;
}

static const cg__cmd_t cg__commands[] = {
    {"show", cg__cmd_show},     {"worker", cg__cmd_worker},     {"dirty", cg__cmd_dirty},
    {"reload", cg__cmd_reload}, {"reopen", cg__cmd_reopen},     {"shutdown", cg__cmd_shutdown},
    {"help", cg__cmd_help},
};

/* One request in, one framed answer out (the server's callback). */
static char *cg__handle(void *ctx, const char *payload, size_t len, size_t *outlen,
                        bool *close_after)
{
    cg_arbiter_t *a = ctx;
    cg_ctl_request_t req;
    char err[512] = "";
    char *answer = NULL;
    int r = cg_ctl_request_parse(&req, payload, len, err, sizeof(err));
    if (r == -ENOMEM)
        goto out;
    if (r < 0) {
        /* no request at all: Gunicorn drops the client; we say why first */
        cg_log_debug(a->log, "Control client error: %s", err);
        *close_after = true;
        answer = cg_ctl_answer_error((cg_str_t){NULL, 0}, err, outlen);
        goto out;
    }
    cg_json_out_t data;
    cg_json_out_init(&data, 0, CG_CTL_MAX_ANSWER);
    if (r == 0)
        r = cg__route(cg__commands, CG_ARRAY_SIZE(cg__commands), a, req.word, req.nwords, &data,
                      err, sizeof(err), "Empty command", "Unknown command: %s");
    if (r != 0)
        answer = cg_ctl_answer_error(req.id, err, outlen);
    else if (!data.failed)
        answer = cg_ctl_answer_ok(req.id, data.buf, data.len, outlen);
    cg_json_out_free(&data);
out:
    cg_ctl_request_free(&req);
    return answer;
}

/* ---- life -------------------------------------------------------------- */

/* cfg->control_socket, absolute (Gunicorn joins a relative one to the
 * directory the master runs in). Returns a malloc'd path or NULL. */
static char *cg__path(const cg_arbiter_t *a)
{
    const char *p = a->cfg->control_socket;
    if (p == NULL || p[0] == '\0')
        return NULL;
    if (p[0] == '/')
        return cg_xstrdup(p);
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return NULL;
    size_t n = strlen(cwd) + strlen(p) + 2;
    char *abs = cg_xmalloc(n);
    snprintf(abs, n, "%s/%s", cwd, p);
    return abs;
}

static void cg__open(cg_arbiter_t *a)
{
    char err[768];
    char *path = cg__path(a);
    if (path == NULL) {
        cg_log_warning(a->log, "Failed to start control socket: no path");
        return;
    }
    int r = cg_ctl_server_open(&a->ctl, path, (unsigned)a->cfg->control_socket_mode, a->log, err,
                               sizeof(err));
    if (r < 0) {
        /* as Gunicorn: only a warning, the server runs without it */
        cg_log_warning(a->log, "Failed to start control socket: %s", err);
        a->ctl = NULL;
    } else {
        cg_log_info(a->log, "Control socket listening at %s", path);
    }
    a->ctl_gen++;
    free(path);
}

static void cg__close(cg_arbiter_t *a, bool unlink_path)
{
    cg_ctl_server_close(a->ctl, unlink_path);
    a->ctl = NULL;
    a->ctl_gen++;
}

void cg_arbiter_ctl_start(cg_arbiter_t *a)
{
    if (a->cfg->control_socket_disable) {
        cg_log_debug(a->log, "Control socket disabled");
        return;
    }
    cg__open(a);
}

void cg_arbiter_ctl_reload(cg_arbiter_t *a)
{
    const cg_config_t *c = a->cfg;
    char *path = c->control_socket_disable ? NULL : cg__path(a);
    bool same = a->ctl != NULL && path != NULL &&
                strcmp(path, cg_ctl_server_path(a->ctl)) == 0 &&
                (unsigned)c->control_socket_mode == cg_ctl_server_mode(a->ctl);
    bool was_off = a->ctl == NULL;
    free(path);
    if (same || (was_off && c->control_socket_disable))
        return;
    /* Gunicorn keeps the socket it started with until it exits; we follow
     * the new settings, as a HUP does for bind and metrics_bind */
    cg__close(a, true);
    cg_arbiter_ctl_start(a);
}

void cg_arbiter_ctl_reclaim(cg_arbiter_t *a)
{
    /* our USR2 child took the path and is gone: serve it again */
    if (a->ctl != NULL && !cg_ctl_server_owns_path(a->ctl)) {
        cg__close(a, false);
        cg_arbiter_ctl_start(a);
    }
}

size_t cg_arbiter_ctl_pollfds(const cg_arbiter_t *a, struct pollfd *p, size_t cap)
{
    return a->ctl != NULL ? cg_ctl_server_pollfds(a->ctl, p, cap) : 0;
}

void cg_arbiter_ctl_serve(cg_arbiter_t *a, const struct pollfd *p, size_t n)
{
    if (a->ctl != NULL && n > 0)
        cg_ctl_server_serve(a->ctl, p, n, cg_monotonic_ms(), cg__handle, a);
}

void cg_arbiter_ctl_stop(cg_arbiter_t *a)
{
    if (a->ctl != NULL)
        cg__close(a, true);
}

void cg_arbiter_ctl_child(cg_arbiter_t *a)
{
    /* the socket and its clients are the master's: close our copies, and
     * leave the file alone */
    cg_ctl_server_close(a->ctl, false);
    a->ctl = NULL;
}
