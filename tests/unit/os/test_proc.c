/*
 * test_proc.c - a process's resident memory and CPU time from /proc: this
 * process (plausible, and the CPU time grows as it burns some), a child that
 * exited but is not reaped yet, and one reaped (gone: -ESRCH).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "src/os/os.h"

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_self(void **state)
{
    (void)state;
    uint64_t rss = 0, cpu = 0;
    assert_int_equal(cg_os_proc_usage(getpid(), &rss, &cpu), 0);
    assert_true(rss > 1024 * 1024);
    assert_true(rss < (uint64_t)1 << 40);

    /* burn CPU until the kernel's tick count moves (10 ms at 100 Hz) */
    uint64_t deadline = mono_ms() + 20000, cpu2 = cpu, rss2;
    volatile uint64_t sink = 0;
    while (cpu2 == cpu) {
        assert_true(mono_ms() < deadline);
        for (uint64_t i = 0; i < 1000000; i++)
            sink += i * i;
        assert_int_equal(cg_os_proc_usage(getpid(), &rss2, &cpu2), 0);
        assert_true(cpu2 >= cpu);
    }
    assert_true(cpu2 > cpu);
    (void)sink;
}

static void test_exited_child(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    /* exited, not reaped: a zombie has no memory left, and is still there */
    siginfo_t si;
    assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
    uint64_t rss = 1, cpu = 1;
    assert_int_equal(cg_os_proc_usage(pid, &rss, &cpu), 0);
    assert_int_equal(rss, 0);
    /* reaped: gone */
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(cg_os_proc_usage(pid, &rss, &cpu), -ESRCH);
}

static void test_no_such_pid(void **state)
{
    (void)state;
    uint64_t rss, cpu;
    /* above any pid_max the kernel allows (4194304) */
    assert_int_equal(cg_os_proc_usage(99999999, &rss, &cpu), -ESRCH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self),
        cmocka_unit_test(test_exited_child),
        cmocka_unit_test(test_no_such_pid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
