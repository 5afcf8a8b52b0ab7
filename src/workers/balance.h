/*
 * balance.h - the workers' shared load table: even accepting across workers.
 *
 * Every worker accepts from the same listening sockets, and Linux wakes all
 * of them for a new connection: the one that runs first takes it, and a
 * loop that accepts a batch per wake-up takes a burst whole. With keep-alive
 * the connections then stay where they landed (one gthread worker held all
 * 64 of wrk's connections). The master maps one shared table before the
 * first fork; each worker publishes there how many connections it holds and
 * whether it accepts right now, and accepts only while it holds fewer than
 * the accepting workers' average plus one. A worker above that leaves the
 * connection to the others (see docs/load-balancing.md).
 *
 * One writer per slot (its worker; the master only clears a reaped worker's
 * slot), relaxed atomics: a stale read costs at most one connection's
 * imbalance, never a lost connection. A worker without a slot (the table
 * full, or none) accepts as before.
 */
#ifndef CG_BALANCE_H
#define CG_BALANCE_H

#include <stdbool.h>
#include <stdint.h>

/* Slots in the table; workers beyond it accept without balancing. */
#define CG_BALANCE_SLOTS 1024

typedef struct cg_balance cg_balance_t;

/* Master: map the table (MAP_SHARED, inherited by every worker). NULL with
 * errno set when the mapping fails: the caller logs it and runs without. */
cg_balance_t *cg_balance_new(void);
/* Master: the lowest free slot for a worker about to be forked, or -1 when
 * the table is full (or b is NULL). */
int cg_balance_claim(cg_balance_t *b);
/* Master: the worker of `slot` is gone (reaped or never forked): its slot
 * stops counting and becomes free. A slot of -1 or a NULL b is a no-op. */
void cg_balance_release(cg_balance_t *b, int slot);
/* Master: unmap (a worker keeps its inherited mapping until it exits). */
void cg_balance_free(cg_balance_t *b);

/* Worker: publish its open connections and whether it accepts now (false
 * while it cannot: stopping, or its only thread inside the app). */
void cg_balance_publish(cg_balance_t *b, int slot, bool accepting, uint32_t conns);
/* Worker: may the worker of `slot`, holding `conns` connections, take one
 * more? True when it holds fewer than the average of the accepting workers
 * (itself counted) plus one, or when it has no slot. *others (may be NULL)
 * is set to the other accepting workers' connections: a caller that was
 * refused sees from it whether they are taking any. */
bool cg_balance_fair(const cg_balance_t *b, int slot, uint32_t conns, uint64_t *others);

/*
 * A worker's gate before each accept(): cg_balance_fair(), and what to do
 * when it says no. Refused, the worker leaves the connection to the others
 * for a while (it stops watching the listeners, or sleeps) and then looks
 * again: CG_BALANCE_GATE_MS after its first refusal, twice as long after
 * each further one in a row, up to CG_BALANCE_GATE_REST_MAX_MS. Under
 * steady Connection: close traffic a worker above its share is refused
 * over and over, and each look costs a loop in Python a few calls: the
 * doubling keeps that to about a hundred a second. A run of refusals
 * during which the other workers' connections do not move (none of them
 * is taking the waiting connection: blocked in the app, or starved of
 * CPU) ends after CG_BALANCE_GATE_MAX_MS with the worker taking it after
 * all, so balancing never delays a connection by more. Zeroed: no run.
 */
#define CG_BALANCE_GATE_MS 1
#define CG_BALANCE_GATE_REST_MAX_MS 8
#define CG_BALANCE_GATE_MAX_MS 100
/* A refusal this long after the previous one starts a new run (the worker's
 * loop was busy meanwhile, or the listener was quiet). */
#define CG_BALANCE_GATE_GAP_MS 50

typedef struct cg_balance_gate {
    uint64_t first_ms, last_ms; /* this run of refusals; last_ms 0: none */
    uint64_t others;            /* the others' connections when it began */
    unsigned rest_ms;           /* the last rest; 0 after a take */
} cg_balance_gate_t;

/* Worker: may it accept one connection now (now_ms: a monotonic clock in
 * ms), holding `conns`? 0: yes; else the milliseconds to step aside. */
unsigned cg_balance_gate_take(cg_balance_gate_t *g, const cg_balance_t *b, int slot,
                              uint32_t conns, uint64_t now_ms);
/* Worker: the listeners were found empty (another worker took what
 * waited): the run of refusals is over. */
void cg_balance_gate_reset(cg_balance_gate_t *g);

#endif
