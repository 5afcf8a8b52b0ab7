/*
 * systemd.c - the two halves of systemd's protocol a server needs: the
 * notification datagram (sd_notify) and socket activation (sd_listen_fds),
 * written from the documented wire format, without libsystemd.
 */
#include "os.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int cg_os_notify(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0')
        return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n >= sizeof(sa.sun_path) || (path[0] != '/' && path[0] != '@'))
        return -EINVAL;
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace: the length says where it ends */
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ssize_t r = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
    int e = errno;
    close(fd);
    return r < 0 ? -e : 1;
}

static long cg__env_long(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return -1;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < 0)
        return -1;
    return n;
}

int cg_os_listen_fds(void)
{
    long pid = cg__env_long("LISTEN_PID");
    if (pid < 0 || (pid_t)pid != getpid())
        return 0;
    long n = cg__env_long("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return n > 0 && n < 4096 ? (int)n : 0;
}

uint64_t cg_os_watchdog_usec(void)
{
    long pid = cg__env_long("WATCHDOG_PID");
    if (getenv("WATCHDOG_PID") != NULL && (pid < 0 || (pid_t)pid != getpid()))
        return 0;
    const char *v = getenv("WATCHDOG_USEC");
    if (v == NULL || *v == '\0')
        return 0;
    char *end;
    errno = 0;
    unsigned long long us = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0')
        return 0;
    return (uint64_t)us;
}
