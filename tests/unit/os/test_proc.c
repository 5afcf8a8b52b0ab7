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
#include <stdbool.h>
#include <signal.h>
#include <sys/syscall.h>
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

/* A child that blocks TERM and waits to be told to leave (pipe closed). */
static pid_t cg__blocked_child(int *wfd)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigset_t old;
    sigprocmask(SIG_BLOCK, &term, &old);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[1]);
        char c;
        while (read(p[0], &c, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(p[0]);
    *wfd = p[1];
    return pid;
}

static void test_children(void **state)
{
    (void)state;
    int wfd;
    pid_t kids[4] = {0};
    pid_t a = cg__blocked_child(&wfd);
    int wfd2;
    pid_t b = cg__blocked_child(&wfd2);
    size_t n = cg_os_proc_children(getpid(), kids, 4);
    bool seen_a = false, seen_b = false;
    for (size_t i = 0; i < n; i++) {
        seen_a = seen_a || kids[i] == a;
        seen_b = seen_b || kids[i] == b;
    }
    assert_true(seen_a && seen_b);
    /* cap respected */
    assert_int_equal(cg_os_proc_children(getpid(), kids, 1), 1);
    close(wfd);
    close(wfd2);
    int st;
    assert_int_equal(waitpid(a, &st, 0), a);
    assert_int_equal(waitpid(b, &st, 0), b);
    assert_int_equal(cg_os_proc_children(99999999, kids, 4), 0);
}

static void test_signal_pending(void **state)
{
    (void)state;
    int wfd;
    pid_t pid = cg__blocked_child(&wfd);
    assert_int_equal(cg_os_proc_signal_pending(pid, SIGTERM), 0);
    assert_int_equal(kill(pid, SIGTERM), 0);
    /* blocked in the child: it stays pending */
    assert_int_equal(cg_os_proc_signal_pending(pid, SIGTERM), 1);
    assert_int_equal(cg_os_proc_signal_pending(pid, SIGUSR1), 0);
    close(wfd); /* the child leaves; the pending TERM never ran */
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(cg_os_proc_signal_pending(pid, SIGTERM), -ESRCH);
}

static void test_signal_pending_thread(void **state)
{
    (void)state;
    int wfd;
    pid_t pid = cg__blocked_child(&wfd);
    /* sent to the main thread, not the process: SigPnd, not ShdPnd */
    assert_int_equal(syscall(SYS_tgkill, pid, pid, SIGTERM), 0);
    assert_int_equal(cg_os_proc_signal_pending(pid, SIGTERM), 1);
    assert_int_equal(cg_os_proc_signal_pending(pid, SIGHUP), 0);
    close(wfd);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self),
        cmocka_unit_test(test_exited_child),
        cmocka_unit_test(test_no_such_pid),
        cmocka_unit_test(test_children),
        cmocka_unit_test(test_signal_pending),
        cmocka_unit_test(test_signal_pending_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
