/* test_balance.c - the workers' shared load table (src/workers/balance.c):
 * slots claimed lowest first and reused, the "fewer than the average plus
 * one" rule over the accepting workers only, a burst spread evenly when the
 * workers take turns, the table seen across fork, and the gate: rests that
 * double while refused, and a run of refusals that ends in a take after
 * CG_BALANCE_GATE_MAX_MS only while the others' connections stand still. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "src/workers/balance.h"

static void test_claim_lowest_free(void **state)
{
    (void)state;
    cg_balance_t *b = cg_balance_new();
    assert_non_null(b);
    assert_int_equal(cg_balance_claim(b), 0);
    assert_int_equal(cg_balance_claim(b), 1);
    assert_int_equal(cg_balance_claim(b), 2);
    cg_balance_release(b, 1);
    assert_int_equal(cg_balance_claim(b), 1);
    assert_int_equal(cg_balance_claim(b), 3);
    for (int i = 4; i < CG_BALANCE_SLOTS; i++)
        assert_int_equal(cg_balance_claim(b), i);
    assert_int_equal(cg_balance_claim(b), -1); /* full */
    cg_balance_release(b, -1);                 /* no-ops */
    cg_balance_release(NULL, 0);
    assert_int_equal(cg_balance_claim(NULL), -1);
    cg_balance_free(b);
}

static void test_fair_rule(void **state)
{
    (void)state;
    cg_balance_t *b = cg_balance_new();
    assert_non_null(b);
    int s[4];
    for (int i = 0; i < 4; i++) {
        s[i] = cg_balance_claim(b);
        cg_balance_publish(b, s[i], true, 0);
    }
    uint64_t others = 99;
    /* all at 0: 0 < 0 + 1 */
    assert_true(cg_balance_fair(b, s[0], 0, &others));
    assert_int_equal(others, 0);
    /* 1 of 1 total: 1 < 1/4 + 1 */
    cg_balance_publish(b, s[0], true, 1);
    assert_true(cg_balance_fair(b, s[0], 1, NULL));
    /* 2 of 2: 2 >= 2/4 + 1 */
    cg_balance_publish(b, s[0], true, 2);
    assert_false(cg_balance_fair(b, s[0], 2, NULL));
    assert_true(cg_balance_fair(b, s[1], 0, &others));
    assert_int_equal(others, 2);
    /* 10 / 9 / 9 / 9: 10 < 37/4 + 1 = 10.25 */
    cg_balance_publish(b, s[1], true, 9);
    cg_balance_publish(b, s[2], true, 9);
    cg_balance_publish(b, s[3], true, 9);
    assert_true(cg_balance_fair(b, s[0], 10, NULL));
    /* 11 / 9 / 9 / 9: 11 >= 38/4 + 1 = 10.5 */
    assert_false(cg_balance_fair(b, s[0], 11, &others));
    assert_int_equal(others, 27);
    /* the others stop accepting (stopping, or inside the app): only this
     * worker counts, so it takes the connection */
    cg_balance_publish(b, s[1], false, 9);
    cg_balance_publish(b, s[2], false, 9);
    cg_balance_publish(b, s[3], false, 9);
    assert_true(cg_balance_fair(b, s[0], 11, &others));
    assert_int_equal(others, 0);
    /* a reaped worker's slot no longer counts */
    cg_balance_publish(b, s[1], true, 0);
    assert_false(cg_balance_fair(b, s[0], 11, NULL));
    cg_balance_release(b, s[1]);
    assert_true(cg_balance_fair(b, s[0], 11, NULL));
    /* no table or no slot: accept as before */
    assert_true(cg_balance_fair(NULL, 0, 1000, &others));
    assert_true(cg_balance_fair(b, -1, 1000, NULL));
    cg_balance_free(b);
}

/* Workers that each try to take one connection per turn, in turns, with a
 * greedy one that tries 64 times per turn (the old accept loop): a burst of
 * 64 ends within one of 16 each (a worker may reach the average plus one). */
static void test_burst_spreads(void **state)
{
    (void)state;
    cg_balance_t *b = cg_balance_new();
    assert_non_null(b);
    int s[4];
    uint32_t conns[4] = {0};
    for (int i = 0; i < 4; i++) {
        s[i] = cg_balance_claim(b);
        cg_balance_publish(b, s[i], true, 0);
    }
    int left = 64;
    for (int turn = 0; left > 0; turn++) {
        assert_true(turn < 1000);
        for (int w = 0; w < 4 && left > 0; w++) {
            for (int k = 0; k < (w == 0 ? 64 : 1) && left > 0; k++) {
                if (!cg_balance_fair(b, s[w], conns[w], NULL))
                    break;
                conns[w]++;
                left--;
                cg_balance_publish(b, s[w], true, conns[w]);
            }
        }
    }
    for (int w = 0; w < 4; w++)
        assert_in_range(conns[w], 15, 17);
    cg_balance_free(b);
}

static void test_shared_across_fork(void **state)
{
    (void)state;
    cg_balance_t *b = cg_balance_new();
    assert_non_null(b);
    int mine = cg_balance_claim(b), child_slot = cg_balance_claim(b);
    cg_balance_publish(b, mine, true, 5);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cg_balance_publish(b, child_slot, true, 7);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    uint64_t others;
    /* the child's 7 is seen here: 5 < 12/2 + 1 */
    assert_true(cg_balance_fair(b, mine, 5, &others));
    assert_int_equal(others, 7);
    cg_balance_free(b);
}

#define TAKE(g, b, slot, conns, now) (cg_balance_gate_take((g), (b), (slot), (conns), (now)) == 0)

static void test_gate(void **state)
{
    (void)state;
    cg_balance_t *b = cg_balance_new();
    assert_non_null(b);
    int me = cg_balance_claim(b), other = cg_balance_claim(b);
    cg_balance_publish(b, other, true, 0);
    cg_balance_gate_t g = {0};
    /* fair: taken, no run */
    assert_true(TAKE(&g, b, me, 0, 0));
    assert_int_equal(g.last_ms, 0);
    /* refused: rests of 1, 2, 4, 8, 8 ... ms */
    uint64_t t = 1000;
    assert_int_equal(cg_balance_gate_take(&g, b, me, 3, t), 1);
    assert_int_equal(cg_balance_gate_take(&g, b, me, 3, t + 1), 2);
    assert_int_equal(cg_balance_gate_take(&g, b, me, 3, t + 3), 4);
    assert_int_equal(cg_balance_gate_take(&g, b, me, 3, t + 7), CG_BALANCE_GATE_REST_MAX_MS);
    assert_int_equal(cg_balance_gate_take(&g, b, me, 3, t + 15), CG_BALANCE_GATE_REST_MAX_MS);
    /* 3 against 0 standing still: refused until the run is MAX_MS long */
    for (uint64_t i = 16; i < CG_BALANCE_GATE_MAX_MS; i++)
        assert_false(TAKE(&g, b, me, 3, t + i));
    assert_true(TAKE(&g, b, me, 3, t + CG_BALANCE_GATE_MAX_MS));
    /* ... and a take starts the rests over */
    assert_int_equal(cg_balance_gate_take(&g, b, me, 3, t + CG_BALANCE_GATE_MAX_MS + 1), 1);
    /* the others moving restarts the run (not the doubling) */
    cg_balance_gate_reset(&g);
    t = 5000;
    for (uint64_t i = 0; i < CG_BALANCE_GATE_MAX_MS / 2; i++)
        assert_false(TAKE(&g, b, me, 3, t + i));
    cg_balance_publish(b, other, true, 1);
    t += CG_BALANCE_GATE_MAX_MS / 2;
    for (uint64_t i = 0; i < CG_BALANCE_GATE_MAX_MS; i++)
        assert_int_equal(cg_balance_gate_take(&g, b, me, 3, t + i), CG_BALANCE_GATE_REST_MAX_MS);
    assert_true(TAKE(&g, b, me, 3, t + CG_BALANCE_GATE_MAX_MS));
    /* a gap longer than GAP_MS restarts it too */
    cg_balance_gate_reset(&g);
    t = 9000;
    assert_false(TAKE(&g, b, me, 3, t));
    t += CG_BALANCE_GATE_GAP_MS + 1;
    assert_false(TAKE(&g, b, me, 3, t));
    assert_false(TAKE(&g, b, me, 3, t + CG_BALANCE_GATE_MAX_MS - 1));
    /* a fair answer ends the run; so does a reset */
    assert_true(TAKE(&g, b, me, 0, t + CG_BALANCE_GATE_MAX_MS - 1));
    assert_int_equal(g.last_ms, 0);
    assert_int_equal(g.rest_ms, 0);
    /* a clock at 0 still counts as a run */
    cg_balance_gate_reset(&g);
    assert_false(TAKE(&g, b, me, 3, 0));
    assert_int_not_equal(g.last_ms, 0);
    /* no slot: always taken */
    cg_balance_gate_reset(&g);
    assert_true(TAKE(&g, b, -1, 1000, 0));
    assert_true(TAKE(&g, NULL, me, 1000, 0));
    cg_balance_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_lowest_free),
        cmocka_unit_test(test_fair_rule),
        cmocka_unit_test(test_burst_spreads),
        cmocka_unit_test(test_shared_across_fork),
        cmocka_unit_test(test_gate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
