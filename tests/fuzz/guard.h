/*
 * guard.h - copy fuzz input so that it ends right before an inaccessible
 * page: any read past the end faults at once, even without ASan redzones.
 */
#ifndef CG_FUZZ_GUARD_H
#define CG_FUZZ_GUARD_H

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct guarded {
    char *map;
    size_t maplen;
    char *data;
} guarded_t;

static char *guard_copy(guarded_t *g, const uint8_t *in, size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = (n + pg - 1) / pg * pg;
    g->maplen = body + pg;
    g->map = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->map == MAP_FAILED)
        abort();
    mprotect(g->map + body, pg, PROT_NONE);
    g->data = g->map + body - n;
    if (n)
        memcpy(g->data, in, n);
    return g->data;
}

static void guard_free(guarded_t *g)
{
    munmap(g->map, g->maplen);
}

#endif
