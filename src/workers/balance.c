/*
 * balance.c - the workers' shared load table (see balance.h).
 */
#include "balance.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/mman.h>

/* One cache line per slot: each worker stores into its own on every accept
 * and close, and a shared line would bounce between the cores. */
typedef struct cg_balance_slot {
    _Atomic uint32_t conns;
    _Atomic uint32_t accepting;
    uint32_t claimed; /* master only */
    char pad[64 - 3 * sizeof(uint32_t)];
} cg_balance_slot_t;

struct cg_balance {
    _Atomic uint32_t hi; /* 1 + the highest slot ever claimed: what workers scan */
    char pad[64 - sizeof(uint32_t)];
    cg_balance_slot_t slots[CG_BALANCE_SLOTS];
};

cg_balance_t *cg_balance_new(void)
{
    /* anonymous shared memory starts zeroed: every slot free, nothing counted */
    void *p = mmap(NULL, sizeof(cg_balance_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int cg_balance_claim(cg_balance_t *b)
{
    if (b == NULL)
        return -1;
    for (uint32_t i = 0; i < CG_BALANCE_SLOTS; i++) {
        cg_balance_slot_t *s = &b->slots[i];
        if (s->claimed)
            continue;
        s->claimed = 1;
        atomic_store_explicit(&s->conns, 0, memory_order_relaxed);
        atomic_store_explicit(&s->accepting, 0, memory_order_relaxed);
        if (i + 1 > atomic_load_explicit(&b->hi, memory_order_relaxed))
            atomic_store_explicit(&b->hi, i + 1, memory_order_relaxed);
        return (int)i;
    }
    return -1;
}

void cg_balance_release(cg_balance_t *b, int slot)
{
    if (b == NULL || slot < 0 || slot >= CG_BALANCE_SLOTS)
        return;
    cg_balance_slot_t *s = &b->slots[slot];
    atomic_store_explicit(&s->accepting, 0, memory_order_relaxed);
    atomic_store_explicit(&s->conns, 0, memory_order_relaxed);
    s->claimed = 0;
}

void cg_balance_free(cg_balance_t *b)
{
    if (b != NULL)
        munmap(b, sizeof(*b));
}

void cg_balance_publish(cg_balance_t *b, int slot, bool accepting, uint32_t conns)
{
    if (b == NULL || slot < 0 || slot >= CG_BALANCE_SLOTS)
        return;
    cg_balance_slot_t *s = &b->slots[slot];
    atomic_store_explicit(&s->conns, conns, memory_order_relaxed);
    atomic_store_explicit(&s->accepting, accepting ? 1u : 0u, memory_order_relaxed);
}

bool cg_balance_fair(const cg_balance_t *b, int slot, uint32_t conns, uint64_t *others)
{
    if (others != NULL)
        *others = 0;
    if (b == NULL || slot < 0 || slot >= CG_BALANCE_SLOTS)
        return true;
    uint32_t hi = atomic_load_explicit(&b->hi, memory_order_relaxed);
    if (hi > CG_BALANCE_SLOTS)
        hi = CG_BALANCE_SLOTS;
    uint64_t sum = conns, n = 1;
    for (uint32_t i = 0; i < hi; i++) {
        if (i == (uint32_t)slot)
            continue;
        const cg_balance_slot_t *s = &b->slots[i];
        if (atomic_load_explicit(&s->accepting, memory_order_relaxed)) {
            sum += atomic_load_explicit(&s->conns, memory_order_relaxed);
            n++;
        }
    }
    if (others != NULL)
        *others = sum - conns;
    /* conns < sum / n + 1, without the division */
    return (uint64_t)conns * n < sum + n;
}

unsigned cg_balance_gate_take(cg_balance_gate_t *g, const cg_balance_t *b, int slot,
                              uint32_t conns, uint64_t now_ms)
{
    uint64_t others;
    if (cg_balance_fair(b, slot, conns, &others)) {
        cg_balance_gate_reset(g);
        return 0;
    }
    /* a +1 keeps last_ms nonzero on a clock that starts at 0 */
    if (g->last_ms == 0 || now_ms + 1 - g->last_ms > CG_BALANCE_GATE_GAP_MS || others != g->others) {
        g->first_ms = now_ms + 1;
        g->others = others;
    }
    g->last_ms = now_ms + 1;
    if (now_ms + 1 - g->first_ms >= CG_BALANCE_GATE_MAX_MS) {
        cg_balance_gate_reset(g);
        return 0;
    }
    /* the doubling goes on across runs (the others' counts move all the
     * time under close-mode traffic); only a take or a reset ends it */
    g->rest_ms = g->rest_ms == 0 ? CG_BALANCE_GATE_MS
                 : g->rest_ms * 2 > CG_BALANCE_GATE_REST_MAX_MS ? CG_BALANCE_GATE_REST_MAX_MS
                                                               : g->rest_ms * 2;
    return g->rest_ms;
}

void cg_balance_gate_reset(cg_balance_gate_t *g)
{
    g->first_ms = g->last_ms = 0;
    g->others = 0;
    g->rest_ms = 0;
}
