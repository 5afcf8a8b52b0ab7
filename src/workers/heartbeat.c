/*
 * heartbeat.c - worker liveness shared between a worker and the master.
 *
 * One MAP_SHARED anonymous page per worker, mapped by the master before fork
 * so both sides see the same 64-bit slot. The worker stores the monotonic
 * time of its last sign of life; the master subtracts it from its own clock.
 * An aligned 64-bit store/load is atomic on every platform we build for, and
 * the master tolerates a stale read by design (it only compares to seconds).
 */
#include "worker.h"

#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

uint64_t cg_monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t cg_monotonic_ms(void)
{
    return cg_monotonic_us() / 1000u;
}

/*
 * The slot starts at "now": a worker that hangs before its first notify (e.g.
 * importing the app) is timed out like one that hangs later. (Gunicorn >= 22
 * compares monotonic time with a wall-clock file mtime, so there a worker that
 * never notifies is never timed out; we keep the classic behaviour.)
 */
int cg_heartbeat_create(cg_heartbeat_t *hb)
{
    long page = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, page > 0 ? (size_t)page : 4096, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        hb->slot = NULL;
        return -errno;
    }
    hb->slot = p;
    hb->slot[0] = cg_monotonic_ms();
    hb->slot[1] = 0; /* not booted */
    hb->slot[2] = 0; /* no replacement asked */
    return 0;
}

void cg_heartbeat_notify(cg_heartbeat_t *hb)
{
    /* clock_gettime is async-signal-safe; so is a plain store */
    if (hb->slot)
        *hb->slot = cg_monotonic_ms();
}

void cg_heartbeat_set_booted(cg_heartbeat_t *hb)
{
    if (hb->slot)
        hb->slot[1] = 1;
}

bool cg_heartbeat_booted(const cg_heartbeat_t *hb)
{
    return hb->slot != NULL && hb->slot[1] != 0;
}

void cg_heartbeat_ask_replace(cg_heartbeat_t *hb)
{
    if (hb->slot)
        __atomic_store_n(&hb->slot[2], 1, __ATOMIC_RELAXED);
}

bool cg_heartbeat_replace_asked(const cg_heartbeat_t *hb)
{
    return hb->slot != NULL && __atomic_load_n(&hb->slot[2], __ATOMIC_RELAXED) != 0;
}

uint64_t cg_heartbeat_age_ms(const cg_heartbeat_t *hb)
{
    if (!hb->slot)
        return 0;
    uint64_t now = cg_monotonic_ms(), last = *hb->slot;
    return now > last ? now - last : 0;
}

void cg_heartbeat_destroy(cg_heartbeat_t *hb)
{
    if (hb->slot) {
        long page = sysconf(_SC_PAGESIZE);
        munmap((void *)hb->slot, page > 0 ? (size_t)page : 4096);
        hb->slot = NULL;
    }
}
