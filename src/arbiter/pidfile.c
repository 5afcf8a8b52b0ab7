/*
 * pidfile.c - Gunicorn's pidfile rules: refuse to start over a live pid,
 * overwrite a stale one, write atomically, remove only our own.
 */
#include "arbiter.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The pid in the file, 0 when absent, unreadable as a number, or stale.
 * Returns -errno (message in err) when the file exists but cannot be read. */
static long cg__pidfile_read(const char *path, char *err, size_t errlen)
{
    char buf[64];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        int e = errno;
        snprintf(err, errlen, "[Errno %d] %s: '%s'", e, strerror(e), path);
        return -e;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    errno = 0;
    long pid = strtol(buf, &end, 10);
    while (*end == ' ' || *end == '\n' || *end == '\t' || *end == '\r')
        end++;
    if (end == buf || *end || errno || pid <= 0 || pid > INT_MAX)
        return 0; /* not a pid: stale */
    if (kill((pid_t)pid, 0) == 0 || errno == EPERM)
        return pid;
    return 0;
}

int cg_arbiter_pidfile_create(const char *path, pid_t pid, char *err, size_t errlen)
{
    long old = cg__pidfile_read(path, err, errlen);
    if (old < 0)
        return (int)old;
    if (old > 0) {
        if (old == (long)getpid())
            return 0;
        snprintf(err, errlen, "Already running on PID %ld (or pid file '%s' is stale)", old,
                 path);
        return -EEXIST;
    }

    const char *slash = strrchr(path, '/');
    char *dir = slash ? cg_xstrndup(path, (size_t)(slash - path)) : cg_xstrdup("");
    if (slash == path) {
        free(dir);
        dir = cg_xstrdup("/");
    }
    struct stat st;
    if (dir[0] && (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))) {
        snprintf(err, errlen, "%s doesn't exist. Can't create pidfile.", dir);
        free(dir);
        return -ENOENT;
    }
    size_t tlen = strlen(dir) + 16;
    char *tmp = cg_xmalloc(tlen);
    snprintf(tmp, tlen, "%s%stmpXXXXXX", dir, dir[0] && strcmp(dir, "/") ? "/" : "");
    free(dir);

    int r = 0;
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        snprintf(err, errlen, "[Errno %d] %s: '%s'", -r, strerror(-r), tmp);
        free(tmp);
        return r;
    }
    char line[32];
    int len = snprintf(line, sizeof(line), "%d\n", (int)pid);
    if (write(fd, line, (size_t)len) != len || rename(tmp, path) < 0) {
        r = -errno;
        snprintf(err, errlen, "[Errno %d] %s: '%s'", -r, strerror(-r), path);
        unlink(tmp);
    } else if (chmod(path, 0644) < 0) {
        r = -errno;
        snprintf(err, errlen, "[Errno %d] %s: '%s'", -r, strerror(-r), path);
    }
    close(fd);
    free(tmp);
    return r;
}

void cg_arbiter_pidfile_unlink(const char *path, pid_t pid)
{
    char buf[64];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    if (strtol(buf, NULL, 10) == (long)pid)
        unlink(path);
}
