/*
 * prom.h - the Prometheus text exposition (format 0.0.4) of the scoreboard,
 * the listeners and the master's view of its workers. Plain C: the master
 * renders it without Python.
 */
#ifndef CG_PROM_H
#define CG_PROM_H

#include "../cg.h"
#include "../net/net.h"
#include "board.h"

typedef struct cg_prom_view {
    cg_board_t *board; /* its slots' last-shown values are updated */
    const cg_listener_t *listeners;
    size_t nlisteners;
    long workers;      /* workers counting towards --workers now */
    long workers_wanted;
    uint64_t now_us;   /* CLOCK_MONOTONIC, for requests in progress */
    uint64_t shed;     /* connections the master refused off a full accept queue */
} cg_prom_view_t;

/* Render the whole page. Returns a malloc'd text (*len bytes, NUL-terminated;
 * the caller frees it), or NULL when memory ran out. */
char *cg_prom_render(const cg_prom_view_t *v, size_t *len);

/* The Content-Type of that text. */
#define CG_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
