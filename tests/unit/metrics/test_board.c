/*
 * test_board.c - the scoreboard: histogram buckets and status classes, the
 * master's slots (lowest free one, reuse with counters kept, growth to more
 * threads, what a worker's exit folds in) and a slot really shared with a
 * forked worker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "src/metrics/board.h"

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void test_bucket_bounds(void **state)
{
    static const uint64_t bounds_us[CG_BOARD_NBUCKETS] = {
        5000,   10000,   25000,   50000,   75000,   100000,  250000,
        500000, 750000, 1000000, 2500000, 5000000, 7500000, 10000000,
    };
    (void)state;
    assert_int_equal(CG_BOARD_NBUCKETS, 14);
    assert_int_equal(cg_board_bucket(0), 0);
    assert_int_equal(cg_board_bucket(1), 0);
    for (size_t k = 0; k < CG_BOARD_NBUCKETS; k++) {
        assert_true(cg_board_bounds[k] * 1e6 > (double)bounds_us[k] - 0.5);
        assert_true(cg_board_bounds[k] * 1e6 < (double)bounds_us[k] + 0.5);
        /* "le": a duration equal to a bound is in that bucket */
        assert_int_equal(cg_board_bucket(bounds_us[k]), k);
        assert_int_equal(cg_board_bucket(bounds_us[k] + 1), k + 1);
        if (k > 0)
            assert_int_equal(cg_board_bucket(bounds_us[k - 1] + 1), k);
    }
    assert_int_equal(cg_board_bucket(10000001), CG_BOARD_NBUCKETS);
    assert_int_equal(cg_board_bucket(UINT64_MAX), CG_BOARD_NBUCKETS);
}

static void test_status_classes(void **state)
{
    static const struct {
        long status;
        size_t cls;
    } cases[] = {
        {100, 1}, {199, 1}, {200, 2}, {204, 2}, {301, 3}, {399, 3}, {404, 4},
        {499, 4}, {500, 5}, {599, 5}, {-1, 0},  {0, 0},   {99, 0},  {600, 0},
        {1000, 0},
    };
    (void)state;
    cg_board_t *b = cg_board_new();
    assert_int_equal(cg_board_claim(b, 1), 0);
    cg_board_shm_t *m = b->slots[0].shm;
    cg_board_thread_t *t = cg_board_thread(m, 0);
    assert_non_null(t);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t before[CG_BOARD_NCLASSES], refused_before[CG_BOARD_NCLASSES];
        memcpy(before, t->requests, sizeof(before));
        memcpy(refused_before, m->refused, sizeof(refused_before));
        cg_board_request(t, cases[i].status, 1000);
        cg_board_refused(m, (int)cases[i].status);
        for (size_t c = 0; c < CG_BOARD_NCLASSES; c++) {
            assert_int_equal(t->requests[c], before[c] + (c == cases[i].cls));
            assert_int_equal(m->refused[c], refused_before[c] + (c == cases[i].cls));
        }
    }
    /* each request also lands in one bucket and in the sum */
    size_t n = sizeof(cases) / sizeof(cases[0]);
    assert_int_equal(t->buckets[cg_board_bucket(1000)], n);
    assert_int_equal(t->duration_us, n * 1000);
    cg_board_free(b);
}

static void test_claim_lowest_free(void **state)
{
    (void)state;
    cg_board_t *b = cg_board_new();
    assert_int_equal(b->nslots, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cg_board_claim(b, 1), i);
        assert_int_equal(b->slots[i].pid, -1); /* taken before bind */
        cg_board_bind(b, i, 100 + i);
        assert_int_equal(b->slots[i].pid, 100 + i);
    }
    assert_int_equal(b->nslots, 3);
    cg_board_release(b, 1, NULL);
    assert_int_equal(b->slots[1].pid, 0);
    cg_board_release(b, 0, NULL);
    assert_int_equal(cg_board_claim(b, 1), 0); /* the lowest of 0 and 1 */
    /* a claimed, not yet bound slot is not free: a failed fork releases it */
    assert_int_equal(cg_board_claim(b, 1), 1);
    cg_board_release(b, 1, NULL);
    assert_int_equal(cg_board_claim(b, 1), 1);
    assert_int_equal(cg_board_claim(b, 1), 3);
    assert_int_equal(b->nslots, 4);
    assert_int_equal(b->slots[1].starts, 3);
    assert_int_equal(b->slots[3].starts, 1);

    /* out of range: nothing happens */
    cg_board_bind(b, -1, 5);
    cg_board_bind(b, 4, 5);
    cg_board_release(b, -1, NULL);
    cg_board_release(b, 4, NULL);
    cg_board_timed_out(b, -1);
    cg_board_timed_out(b, 4);
    for (size_t i = 0; i < b->nslots; i++)
        assert_int_equal(b->slots[i].timeouts, 0);
    cg_board_free(b);
    cg_board_free(NULL);
}

static void test_reuse_continues_counters(void **state)
{
    (void)state;
    cg_board_t *b = cg_board_new();
    assert_int_equal(cg_board_claim(b, 2), 0);
    cg_board_bind(b, 0, 100);
    cg_board_shm_t *m = b->slots[0].shm;
    cg_board_request(cg_board_thread(m, 0), 200, 10);
    cg_board_request(cg_board_thread(m, 1), 500, 20);
    cg_board_conn_accepted(m);
    cg_board_refused(m, 400);
    cg_board_release(b, 0, NULL);

    assert_int_equal(cg_board_claim(b, 2), 0);
    assert_ptr_equal(b->slots[0].shm, m); /* big enough: the same mapping */
    cg_board_bind(b, 0, 101);
    cg_board_request(cg_board_thread(m, 0), 201, 30);
    cg_board_request(cg_board_thread(m, 1), 404, 40);
    cg_board_conn_accepted(m);
    assert_int_equal(m->threads[0].requests[2], 2);
    assert_int_equal(m->threads[0].duration_us, 40);
    assert_int_equal(m->threads[1].requests[5], 1);
    assert_int_equal(m->threads[1].requests[4], 1);
    assert_int_equal(m->threads[1].duration_us, 60);
    assert_int_equal(m->conns_total, 2);
    assert_int_equal(m->refused[4], 1);
    assert_int_equal(b->slots[0].starts, 2);
    cg_board_free(b);
}

static void test_claim_more_threads_remaps(void **state)
{
    (void)state;
    cg_board_t *b = cg_board_new();
    assert_int_equal(cg_board_claim(b, 0), 0); /* 0 threads: room for one */
    cg_board_shm_t *m = b->slots[0].shm;
    assert_int_equal(m->nthreads, 1);
    assert_int_equal(b->slots[0].nthreads, 1);
    cg_board_bind(b, 0, 100);
    cg_board_request(cg_board_thread(m, 0), 200, 7000);
    cg_board_busy_begin(cg_board_thread(m, 0), 10);
    cg_board_busy_end(cg_board_thread(m, 0), 30);
    cg_board_conn_accepted(m);
    cg_board_refused(m, 431);
    b->slots[0].last_busy_us[0] = 20;
    cg_board_release(b, 0, NULL);

    /* a HUP raised --threads: a bigger mapping, the old counters in it */
    size_t threads = 200; /* more than one page */
    assert_int_equal(cg_board_claim(b, (uint32_t)threads), 0);
    cg_board_shm_t *g = b->slots[0].shm;
    assert_non_null(g);
    assert_ptr_not_equal(g, m);
    assert_int_equal(g->nthreads, threads);
    assert_int_equal(b->slots[0].nthreads, threads);
    assert_true(b->slots[0].size >= sizeof(*g) + threads * sizeof(cg_board_thread_t));
    assert_int_equal(g->threads[0].requests[2], 1);
    assert_int_equal(g->threads[0].buckets[1], 1);
    assert_int_equal(g->threads[0].duration_us, 7000);
    assert_int_equal(g->threads[0].busy_us, 20);
    assert_int_equal(g->conns_total, 1);
    assert_int_equal(g->refused[4], 1);
    assert_int_equal(b->slots[0].last_busy_us[0], 20);
    static const cg_board_thread_t zero;
    for (size_t i = 1; i < threads; i++) {
        assert_memory_equal(&g->threads[i], &zero, sizeof(zero));
        assert_int_equal(b->slots[0].last_busy_us[i], 0);
    }
    /* the new threads count */
    cg_board_bind(b, 0, 101);
    cg_board_request(cg_board_thread(g, (uint32_t)threads - 1), 200, 1);
    assert_int_equal(g->threads[threads - 1].requests[2], 1);
    assert_null(cg_board_thread(g, (uint32_t)threads));
    cg_board_release(b, 0, NULL);

    /* fewer threads later: the mapping stays, the slot says how many serve */
    assert_int_equal(cg_board_claim(b, 2), 0);
    assert_ptr_equal(b->slots[0].shm, g);
    assert_int_equal(g->nthreads, threads);
    assert_int_equal(b->slots[0].nthreads, 2);
    assert_int_equal(b->slots[0].starts, 3);
    cg_board_free(b);
}

static void test_release_folds(void **state)
{
    (void)state;
    cg_board_t *b = cg_board_new();
    assert_int_equal(cg_board_claim(b, 2), 0);
    cg_board_bind(b, 0, 100);
    cg_board_shm_t *m = b->slots[0].shm;
    cg_board_conn_accepted(m);
    cg_board_conn_accepted(m);
    cg_board_conns_open(m, 2);
    assert_int_equal(m->conns_open, 2);
    m->threads[0].busy_us = 5;
    /* thread 0 was serving for a second when the worker died; 1 was idle */
    uint64_t began = now_us() - 1000000;
    cg_board_busy_begin(cg_board_thread(m, 0), began);
    uint64_t before = now_us();
    struct rusage ru = {
        .ru_utime = {.tv_sec = 1, .tv_usec = 250000},
        .ru_stime = {.tv_sec = 2, .tv_usec = 999999},
    };
    cg_board_release(b, 0, &ru);
    uint64_t after = now_us();
    assert_int_equal(b->slots[0].pid, 0);
    assert_int_equal(m->conns_open, 0);
    assert_int_equal(m->conns_total, 2);
    assert_int_equal(m->threads[0].busy_since, 0);
    assert_true(m->threads[0].busy_us >= 5 + (before - began));
    assert_true(m->threads[0].busy_us <= 5 + (after - began));
    assert_int_equal(m->threads[1].busy_us, 0);
    assert_int_equal(m->threads[1].busy_since, 0);
    assert_int_equal(b->slots[0].cpu_ended_us, 4249999);

    /* the next worker's CPU adds up; no rusage adds nothing */
    assert_int_equal(cg_board_claim(b, 2), 0);
    cg_board_release(b, 0, &ru);
    assert_int_equal(b->slots[0].cpu_ended_us, 2 * 4249999);
    assert_int_equal(cg_board_claim(b, 2), 0);
    cg_board_release(b, 0, NULL);
    assert_int_equal(b->slots[0].cpu_ended_us, 2 * 4249999);
    cg_board_free(b);
}

static void test_timed_out(void **state)
{
    (void)state;
    cg_board_t *b = cg_board_new();
    assert_int_equal(cg_board_claim(b, 1), 0);
    assert_int_equal(cg_board_claim(b, 1), 1);
    cg_board_timed_out(b, 1);
    cg_board_timed_out(b, 1);
    assert_int_equal(b->slots[0].timeouts, 0);
    assert_int_equal(b->slots[1].timeouts, 2);
    cg_board_release(b, 1, NULL); /* kept across the worker's exit */
    assert_int_equal(b->slots[1].timeouts, 2);
    cg_board_free(b);
}

static void test_busy_accumulates(void **state)
{
    (void)state;
    cg_board_t *b = cg_board_new();
    assert_int_equal(cg_board_claim(b, 1), 0);
    cg_board_thread_t *t = cg_board_thread(b->slots[0].shm, 0);
    cg_board_busy_begin(t, 100);
    assert_int_equal(t->busy_since, 100);
    cg_board_busy_end(t, 150);
    assert_int_equal(t->busy_since, 0);
    assert_int_equal(t->busy_us, 50);
    cg_board_busy_begin(t, 1000);
    cg_board_busy_end(t, 1025);
    assert_int_equal(t->busy_us, 75);
    /* a clock of 0 still marks the thread busy */
    cg_board_busy_begin(t, 0);
    assert_int_equal(t->busy_since, 1);
    cg_board_busy_end(t, 11);
    assert_int_equal(t->busy_us, 85);
    /* an end without a begin, or before it, adds nothing */
    cg_board_busy_end(t, 5000);
    assert_int_equal(t->busy_us, 85);
    cg_board_busy_begin(t, 9000);
    cg_board_busy_end(t, 8000);
    assert_int_equal(t->busy_us, 85);
    assert_int_equal(t->busy_since, 0);
    cg_board_free(b);
}

static void test_thread_lookup_and_null(void **state)
{
    (void)state;
    cg_board_t *b = cg_board_new();
    assert_int_equal(cg_board_claim(b, 3), 0);
    cg_board_shm_t *m = b->slots[0].shm;
    assert_ptr_equal(cg_board_thread(m, 0), &m->threads[0]);
    assert_ptr_equal(cg_board_thread(m, 2), &m->threads[2]);
    assert_null(cg_board_thread(m, 3));
    assert_null(cg_board_thread(m, UINT32_MAX));
    assert_null(cg_board_thread(NULL, 0));
    /* 64-byte aligned: no two threads share a cache line */
    assert_int_equal(sizeof(cg_board_thread_t) % 64, 0);
    assert_int_equal((uintptr_t)&m->threads[1] % 64, 0);
    /* no board: every recording call is a no-op */
    cg_board_busy_begin(NULL, 1);
    cg_board_busy_end(NULL, 2);
    cg_board_request(NULL, 200, 1);
    cg_board_refused(NULL, 400);
    cg_board_conn_accepted(NULL);
    cg_board_conns_open(NULL, 3);
    cg_board_free(b);
}

/* What the forked worker checks; its exit code says which check failed. */
static int child_main(cg_board_t *b, int keep, void *other)
{
    cg_board_shm_t *mine = b->slots[keep].shm;
    if (cg_board_child(b, keep) != mine)
        return 10;
    /* the other slot is gone from this process: mincore fails on it */
    unsigned char vec[1];
    errno = 0;
    if (mincore(other, 1, vec) == 0 || errno != ENOMEM)
        return 11;
    if (mincore(mine, 1, vec) != 0)
        return 12;
    cg_board_thread_t *t1 = cg_board_thread(mine, 1);
    if (t1 == NULL)
        return 13;
    for (int i = 0; i < 5; i++) {
        cg_board_conn_accepted(mine);
        cg_board_busy_begin(t1, 1000);
        cg_board_request(t1, 200, 20000);
        cg_board_busy_end(t1, 1100);
    }
    cg_board_request(cg_board_thread(mine, 0), 503, 3000000);
    cg_board_refused(mine, 400);
    cg_board_conns_open(mine, 4);
    return 0;
}

static void test_shared_across_fork(void **state)
{
    (void)state;
    cg_board_t *b = cg_board_new();
    assert_int_equal(cg_board_claim(b, 1), 0);
    assert_int_equal(cg_board_claim(b, 2), 1);
    cg_board_shm_t *other = b->slots[0].shm, *m = b->slots[1].shm;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(child_main(b, 1, other));
    cg_board_bind(b, 1, pid);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* the parent's mappings are its own still, and saw every write */
    assert_ptr_equal(b->slots[0].shm, other);
    assert_int_equal(other->conns_total, 0);
    assert_int_equal(m->conns_total, 5);
    assert_int_equal(m->conns_open, 4);
    assert_int_equal(m->threads[1].requests[2], 5);
    assert_int_equal(m->threads[1].buckets[cg_board_bucket(20000)], 5);
    assert_int_equal(m->threads[1].duration_us, 100000);
    assert_int_equal(m->threads[1].busy_us, 500);
    assert_int_equal(m->threads[0].requests[5], 1);
    assert_int_equal(m->threads[0].buckets[cg_board_bucket(3000000)], 1);
    assert_int_equal(m->refused[4], 1);
    cg_board_release(b, 1, NULL);
    assert_int_equal(m->conns_open, 0);
    cg_board_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_bounds),
        cmocka_unit_test(test_status_classes),
        cmocka_unit_test(test_claim_lowest_free),
        cmocka_unit_test(test_reuse_continues_counters),
        cmocka_unit_test(test_claim_more_threads_remaps),
        cmocka_unit_test(test_release_folds),
        cmocka_unit_test(test_timed_out),
        cmocka_unit_test(test_busy_accumulates),
        cmocka_unit_test(test_thread_lookup_and_null),
        cmocka_unit_test(test_shared_across_fork),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
