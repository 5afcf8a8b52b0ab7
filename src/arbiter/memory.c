/*
 * memory.c - max_worker_memory: a worker whose resident memory grows past
 * the limit is replaced without a failed request.
 *
 * The master reads each worker's RSS from the kernel (no signal, nothing
 * asked of the worker) on every pass of its loop. Past the limit the worker
 * is marked retiring, which takes it out of the count of workers, and a
 * successor is forked at once; the old worker goes on serving until the
 * successor has loaded the app (the heartbeat page's booted word), and only
 * then is sent TERM, Gunicorn's graceful stop: it stops accepting and
 * finishes what it serves. If the successor never boots (it crashed, or
 * hangs), the old one is retired anyway after --timeout, as it would have
 * to be for the memory's sake.
 *
 * A worker holding a request past request_timeout and its grace asks for
 * the same replacement through its heartbeat page (src/wsgi/timeout.c).
 */
#include "arbiter.h"

#include "../os/os.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static cg_worker_t *cg__by_pid(cg_arbiter_t *a, pid_t pid)
{
    for (size_t i = 0; i < a->nworkers; i++)
        if (a->workers[i]->pid == pid)
            return a->workers[i];
    return NULL;
}

/* Send TERM to retiring workers whose successor is ready (or gone, or late). */
static void cg__retire_ready(cg_arbiter_t *a, uint64_t now)
{
    size_t n = a->nworkers;
    pid_t *due = cg_xmalloc((n ? n : 1) * sizeof(*due));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        cg_worker_t *w = a->workers[i];
        if (!w->retiring || w->retire_sent)
            continue;
        const cg_worker_t *s = cg__by_pid(a, w->successor);
        if (s == NULL || cg_heartbeat_booted(&s->hb) || now >= w->retire_deadline) {
            w->retire_sent = true;
            due[k++] = w->pid;
        }
    }
    for (size_t i = 0; i < k; i++)
        cg_arbiter_kill_worker(a, due[i], SIGTERM);
    free(due);
}

/* Mark w retiring and fork its successor; TERM follows in cg__retire_ready. */
static void cg__replace(cg_arbiter_t *a, cg_worker_t *w, uint64_t now)
{
    w->retiring = true;
    size_t before = a->nworkers;
    cg_arbiter_spawn_worker(a);
    /* the successor is the newest in the table; none when the fork
     * failed, and then the old one is retired at once */
    w->successor = a->nworkers > before ? a->workers[a->nworkers - 1]->pid : 0;
    uint64_t t = a->cfg->timeout > 0 ? (uint64_t)a->cfg->timeout * 1000u : 30000u;
    w->retire_deadline = now + t;
}

void cg_arbiter_check_memory(cg_arbiter_t *a)
{
    long limit_mib = a->cfg->max_worker_memory;
    uint64_t now = cg_monotonic_ms();
    if (limit_mib > 0 || a->cfg->request_timeout > 0) {
        uint64_t limit = (uint64_t)limit_mib * 1024u * 1024u;
        /* the table grows as successors are forked: walk a copy */
        size_t n = a->nworkers;
        pid_t *pids = cg_xmalloc((n ? n : 1) * sizeof(*pids));
        for (size_t i = 0; i < n; i++)
            pids[i] = a->workers[i]->pid;
        for (size_t i = 0; i < n && !a->stopping; i++) {
            cg_worker_t *w = cg__by_pid(a, pids[i]);
            if (w == NULL || w->retiring || w->aborted ||
                cg_arbiter_reload_retired(&a->reload, w->age))
                continue;
            /* request_timeout: the worker holds a request it could not
             * stop and asked for a successor (src/wsgi/timeout.c) */
            if (cg_heartbeat_replace_asked(&w->hb)) {
                cg_log_info(a->log,
                            "Worker (pid:%d) holds a request past request_timeout: replacing it",
                            (int)w->pid);
                cg__replace(a, w, now);
                continue;
            }
            uint64_t rss = 0, cpu = 0;
            if (limit_mib <= 0 || cg_os_proc_usage(w->pid, &rss, &cpu) < 0 || rss <= limit)
                continue;
            cg_log_info(a->log,
                        "Worker (pid:%d) uses %llu MiB, more than max_worker_memory %ld MiB: "
                        "replacing it",
                        (int)w->pid, (unsigned long long)(rss >> 20), limit_mib);
            cg__replace(a, w, now);
        }
        free(pids);
    }
    cg__retire_ready(a, now);
}
