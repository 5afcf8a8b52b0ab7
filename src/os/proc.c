/*
 * proc.c - a process's memory and CPU as the kernel reports them, for the
 * master's metrics about its workers.
 */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __linux__
/* Read a small /proc file into buf (NUL-terminated); returns its length or
 * -errno (-ESRCH when the process is gone). */
static ssize_t cg__slurp(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ESRCH : -errno;
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return e == ESRCH ? -ESRCH : -e;
        }
        if (n == 0 || (len += (size_t)n) == cap - 1)
            break;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

int cg_os_proc_usage(pid_t pid, uint64_t *rss_bytes, uint64_t *cpu_us)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    ssize_t n = cg__slurp(path, buf, sizeof(buf));
    if (n < 0)
        return (int)n;
    unsigned long long size, resident;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
        return -EPROTO;
    long page = sysconf(_SC_PAGESIZE);
    *rss_bytes = (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096);

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((n = cg__slurp(path, buf, sizeof(buf))) < 0)
        return (int)n;
    /* the command name (field 2) may hold spaces and parentheses: fields
     * are counted from the last ')' */
    const char *p = strrchr(buf, ')');
    if (p == NULL)
        return -EPROTO;
    unsigned long long utime, stime;
    /* after ")": state ppid pgrp session tty_nr tpgid flags minflt cminflt
     * majflt cmajflt utime stime (fields 3..15 of proc(5)) */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
               &stime) != 2)
        return -EPROTO;
    long hz = sysconf(_SC_CLK_TCK);
    *cpu_us = (uint64_t)(utime + stime) * 1000000u / (uint64_t)(hz > 0 ? hz : 100);
    return 0;
}

size_t cg_os_proc_children(pid_t pid, pid_t *out, size_t cap)
{
    /* the children of its main thread, which forks them all */
    char path[96], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
    if (cg__slurp(path, buf, sizeof(buf)) < 0)
        return 0;
    size_t n = 0;
    char *p = buf, *end;
    while (n < cap) {
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        if (v > 0)
            out[n++] = (pid_t)v;
        p = end;
    }
    return n;
}

int cg_os_proc_signal_pending(pid_t pid, int sig)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    ssize_t n = cg__slurp(path, buf, sizeof(buf));
    if (n < 0)
        return (int)n;
    /* ShdPnd: the signals sent to the process and not yet delivered;
     * SigPnd: those sent to its main thread (tgkill) */
    const char *shd = strstr(buf, "\nShdPnd:");
    const char *own = strstr(buf, "\nSigPnd:");
    if (shd == NULL || own == NULL || sig < 1 || sig > 64)
        return -EPROTO;
    unsigned long long mask = strtoull(shd + 8, NULL, 16) | strtoull(own + 8, NULL, 16);
    return (mask >> (sig - 1)) & 1u ? 1 : 0;
}
#else
int cg_os_proc_signal_pending(pid_t pid, int sig)
{
    (void)pid, (void)sig;
    return -ENOSYS;
}

int cg_os_proc_usage(pid_t pid, uint64_t *rss_bytes, uint64_t *cpu_us)
{
    (void)pid;
    *rss_bytes = *cpu_us = 0;
    return -ENOSYS;
}

size_t cg_os_proc_children(pid_t pid, pid_t *out, size_t cap)
{
    (void)pid, (void)out, (void)cap;
    return 0;
}
#endif
