/*
 * metrics.c - the master's side of metrics_bind: the endpoint in the main
 * loop, the scoreboard slots of the workers it forks and reaps, and the
 * hand-over of the endpoint across a USR2 upgrade.
 */
#include "arbiter.h"

#include "../metrics/prom.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The endpoint's fd across the USR2 exec, as GUNICORN_FD carries the
 * listeners'. */
#define CG__METRICS_FD_ENV "CGUNICORN_METRICS_FD"

static int cg__open(cg_arbiter_t *a, int inherited)
{
    char err[640];
    int r = cg_metrics_server_open(&a->metrics, a->cfg->metrics_bind, inherited,
                                   (int)a->cfg->backlog, a->log, err, sizeof(err));
    if (r < 0) {
        cg_log_error(a->log, "%s", err);
        a->metrics = NULL;
        return r;
    }
    cg_log_info(a->log, "Metrics at: %s", cg_metrics_server_display(a->metrics));
    return 0;
}

int cg_arbiter_metrics_start(cg_arbiter_t *a)
{
    const char *env = getenv(CG__METRICS_FD_ENV);
    int inherited = env != NULL ? atoi(env) : -1;
    unsetenv(CG__METRICS_FD_ENV);
    if (a->cfg->metrics_bind == NULL) {
        if (inherited >= 0)
            close(inherited); /* the old master served metrics; we do not */
        return 0;
    }
    a->board = cg_board_new();
    return cg__open(a, inherited);
}

void cg_arbiter_metrics_reload(cg_arbiter_t *a, const char *old)
{
    const char *now = a->cfg->metrics_bind;
    if ((old == NULL && now == NULL) || (old != NULL && now != NULL && strcmp(old, now) == 0))
        return;
    cg_metrics_server_close(a->metrics, cg_arbiter_may_unlink(a));
    a->metrics = NULL;
    if (now == NULL)
        return; /* the scoreboard stays: workers still write it */
    if (a->board == NULL)
        a->board = cg_board_new();
    (void)cg__open(a, -1); /* logged; the server goes on without it */
}

size_t cg_arbiter_metrics_pollfds(const cg_arbiter_t *a, struct pollfd *p, size_t cap)
{
    return a->metrics != NULL ? cg_metrics_server_pollfds(a->metrics, p, cap) : 0;
}

static char *cg__render(void *ctx, size_t *len)
{
    cg_arbiter_t *a = ctx;
    cg_prom_view_t v = {
        .board = a->board,
        .listeners = a->listeners,
        .nlisteners = a->nlisteners,
        .workers = cg_arbiter_active(a),
        .workers_wanted = a->num_workers,
        .now_us = cg_monotonic_us(),
        .shed = a->stats.shed,
    };
    return cg_prom_render(&v, len);
}

void cg_arbiter_metrics_serve(cg_arbiter_t *a, const struct pollfd *p, size_t n)
{
    if (a->metrics != NULL && n > 0)
        cg_metrics_server_serve(a->metrics, p, n, cg_monotonic_ms(), cg__render, a);
}

void cg_arbiter_metrics_stop(cg_arbiter_t *a)
{
    cg_metrics_server_close(a->metrics, cg_arbiter_may_unlink(a));
    a->metrics = NULL;
    cg_board_free(a->board);
    a->board = NULL;
}

void cg_arbiter_metrics_hand_over(cg_arbiter_t *a)
{
    if (a->metrics == NULL)
        return;
    int fd = cg_metrics_server_fd(a->metrics);
    char buf[16];
    /* close-on-exec for the workers' sake; this exec must keep it */
    if (fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) & ~FD_CLOEXEC) < 0)
        return;
    snprintf(buf, sizeof(buf), "%d", fd);
    setenv(CG__METRICS_FD_ENV, buf, 1);
}

void cg_arbiter_metrics_claim(cg_arbiter_t *a, cg_worker_t *w)
{
    w->board_slot = -1;
    if (a->board == NULL)
        return;
    uint32_t threads = cg_config_worker_kind(a->cfg) == CG_WORKER_GTHREAD && a->cfg->threads > 1
                           ? (uint32_t)a->cfg->threads
                           : 1;
    int slot = cg_board_claim(a->board, threads);
    if (slot < 0) {
        cg_log_warning(a->log, "No metrics slot for a new worker: %s", strerror(-slot));
        return;
    }
    w->board_slot = slot;
}

void cg_arbiter_metrics_child(cg_arbiter_t *a, cg_worker_t *w)
{
    /* neither the endpoint nor the other workers' slots are the worker's */
    cg_metrics_server_close(a->metrics, false);
    a->metrics = NULL;
    w->board = a->board != NULL ? cg_board_child(a->board, w->board_slot) : NULL;
}
