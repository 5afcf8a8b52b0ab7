/*
 * board.c - the scoreboard's slots (master side) and the per-request
 * recording (worker side). See board.h for the sharing rules.
 */
#include "board.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CG__BOARD_BOUND_US(b) (uint64_t)((b) * 1e6 + 0.5),
static const uint64_t cg__bounds_us[CG_BOARD_NBUCKETS] = {CG_BOARD_BUCKETS(CG__BOARD_BOUND_US)};
#define CG__BOARD_BOUND(b) b,
const double cg_board_bounds[CG_BOARD_NBUCKETS] = {CG_BOARD_BUCKETS(CG__BOARD_BOUND)};

size_t cg_board_bucket(uint64_t duration_us)
{
    /* Prometheus buckets are "le": a value equal to a bound belongs to it */
    size_t i = 0;
    while (i < CG_BOARD_NBUCKETS && duration_us > cg__bounds_us[i])
        i++;
    return i;
}

static size_t cg__class(long status)
{
    return status >= 100 && status <= 599 ? (size_t)(status / 100) : 0;
}

void cg_board_busy_end(cg_board_thread_t *t, uint64_t now_us)
{
    if (t == NULL)
        return;
    uint64_t since = __atomic_load_n(&t->busy_since, __ATOMIC_RELAXED);
    if (since != 0 && now_us > since)
        CG_BOARD_ADD(t->busy_us, now_us - since);
    __atomic_store_n(&t->busy_since, 0, __ATOMIC_RELAXED);
}

void cg_board_enter(cg_board_thread_t *t, uint64_t now_us)
{
    if (t == NULL)
        return;
    uint64_t n = __atomic_load_n(&t->inflight, __ATOMIC_RELAXED);
    __atomic_store_n(&t->inflight, n + 1, __ATOMIC_RELAXED);
    if (n == 0)
        cg_board_busy_begin(t, now_us);
}

void cg_board_leave(cg_board_thread_t *t, uint64_t now_us)
{
    if (t == NULL)
        return;
    uint64_t n = __atomic_load_n(&t->inflight, __ATOMIC_RELAXED);
    if (n == 0)
        return;
    __atomic_store_n(&t->inflight, n - 1, __ATOMIC_RELAXED);
    if (n == 1)
        cg_board_busy_end(t, now_us);
}

void cg_board_request(cg_board_thread_t *t, long status, uint64_t duration_us)
{
    if (t == NULL)
        return;
    CG_BOARD_ADD(t->requests[cg__class(status)], 1);
    CG_BOARD_ADD(t->buckets[cg_board_bucket(duration_us)], 1);
    CG_BOARD_ADD(t->duration_us, duration_us);
}

void cg_board_refused(cg_board_shm_t *s, int status)
{
    if (s != NULL)
        CG_BOARD_ADD(s->refused[cg__class(status)], 1);
}

/* ---- master side ---- */

cg_board_t *cg_board_new(void)
{
    return cg_xcalloc(1, sizeof(cg_board_t));
}

static size_t cg__size(uint32_t nthreads)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t p = page > 0 ? (size_t)page : 4096;
    size_t need = sizeof(cg_board_shm_t) + (size_t)nthreads * sizeof(cg_board_thread_t);
    return (need + p - 1) / p * p;
}

static cg_board_shm_t *cg__map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p; /* anonymous mappings start zeroed */
}

int cg_board_claim(cg_board_t *b, uint32_t nthreads)
{
    if (nthreads == 0)
        nthreads = 1;
    size_t i = 0;
    while (i < b->nslots && b->slots[i].pid != 0)
        i++;
    if (i == b->nslots) {
        cg_board_slot_t *grown = realloc(b->slots, (b->nslots + 1) * sizeof(*b->slots));
        if (grown == NULL)
            return -ENOMEM;
        b->slots = grown;
        memset(&b->slots[i], 0, sizeof(*b->slots));
        b->nslots++;
    }
    cg_board_slot_t *s = &b->slots[i];
    if (s->shm == NULL || s->shm->nthreads < nthreads) {
        /* a HUP raised --threads: a bigger mapping, the counters carried
         * over (nobody writes them: the slot is free) */
        size_t size = cg__size(nthreads);
        cg_board_shm_t *m = cg__map(size);
        uint64_t *last = m != NULL ? realloc(s->last_busy_us, nthreads * sizeof(*last)) : NULL;
        if (last == NULL) {
            int e = m == NULL ? errno : ENOMEM;
            if (m != NULL)
                munmap(m, size);
            if (s->shm == NULL) /* a slot just added: every slot has a mapping */
                b->nslots--;
            return -e;
        }
        memset(last + (s->shm ? s->shm->nthreads : 0), 0,
               (nthreads - (s->shm ? s->shm->nthreads : 0)) * sizeof(*last));
        s->last_busy_us = last;
        if (s->shm != NULL) {
            memcpy(m, s->shm, sizeof(*m) + s->shm->nthreads * sizeof(cg_board_thread_t));
            munmap(s->shm, s->size);
        }
        m->nthreads = nthreads;
        s->shm = m;
        s->size = size;
    }
    s->nthreads = nthreads;
    s->pid = -1; /* taken; the pid comes with cg_board_bind */
    s->starts++;
    return (int)i;
}

void cg_board_bind(cg_board_t *b, int slot, pid_t pid)
{
    if (slot >= 0 && (size_t)slot < b->nslots)
        b->slots[slot].pid = pid;
}

void cg_board_release(cg_board_t *b, int slot, const struct rusage *ru)
{
    if (slot < 0 || (size_t)slot >= b->nslots)
        return;
    cg_board_slot_t *s = &b->slots[slot];
    s->pid = 0;
    if (s->shm == NULL)
        return;
    if (ru != NULL) {
        uint64_t us = (uint64_t)ru->ru_utime.tv_sec * 1000000u + (uint64_t)ru->ru_utime.tv_usec +
                      (uint64_t)ru->ru_stime.tv_sec * 1000000u + (uint64_t)ru->ru_stime.tv_usec;
        s->cpu_ended_us += us;
    }
    /* what the worker was doing ended with it */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    s->shm->conns_open = 0;
    for (uint32_t i = 0; i < s->shm->nthreads; i++) {
        cg_board_busy_end(&s->shm->threads[i], now);
        s->shm->threads[i].inflight = 0;
    }
}

void cg_board_timed_out(cg_board_t *b, int slot)
{
    if (slot >= 0 && (size_t)slot < b->nslots)
        b->slots[slot].timeouts++;
}

cg_board_shm_t *cg_board_child(cg_board_t *b, int keep)
{
    cg_board_shm_t *mine = NULL;
    for (size_t i = 0; i < b->nslots; i++) {
        if ((int)i == keep) {
            mine = b->slots[i].shm;
        } else if (b->slots[i].shm != NULL) {
            munmap(b->slots[i].shm, b->slots[i].size);
        }
        /* no longer the board's to free: neither the gone mappings nor the
         * one the worker writes until it exits */
        b->slots[i].shm = NULL;
    }
    return mine;
}

void cg_board_free(cg_board_t *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->nslots; i++) {
        if (b->slots[i].shm != NULL)
            munmap(b->slots[i].shm, b->slots[i].size);
        free(b->slots[i].last_busy_us);
    }
    free(b->slots);
    free(b);
}
