/* daemon.c - daemon mode and the switch to the configured user. */
#include "os.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/types.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int cg__fork_and_leave(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    return 0;
}

int cg_os_daemonize(bool keep_stdio)
{
    int r;
    if ((r = cg__fork_and_leave()) < 0)
        return r;
    if (setsid() < 0)
        return -errno;
    if ((r = cg__fork_and_leave()) < 0)
        return r;
    umask(022);

    int null = open("/dev/null", O_RDWR);
    if (null < 0)
        return -errno;
    dup2(null, 0);
    for (int fd = 1; fd <= 2; fd++)
        if (!keep_stdio || isatty(fd))
            dup2(null, fd);
    if (null > 2)
        close(null);
    return 0;
}

int cg_os_set_owner(long uid, long gid, bool want_initgroups)
{
    if (gid >= 0 && (gid_t)gid != getgid()) {
        if (setgid((gid_t)gid) < 0)
            return -errno;
    }
    if (want_initgroups && gid >= 0 && uid >= 0) {
        /* Gunicorn skips initgroups when the uid has no name */
        struct passwd *pw = getpwuid((uid_t)uid);
        if (pw != NULL && initgroups(pw->pw_name, (gid_t)gid) < 0)
            return -errno;
    } else if (gid >= 0 && geteuid() == 0) {
        /* Unlike Gunicorn, do not let a worker keep root's supplementary
         * groups after dropping to another user: only the configured group. */
        gid_t g = (gid_t)gid;
        if (setgroups(1, &g) < 0)
            return -errno;
    }
    if (uid >= 0 && (uid_t)uid != getuid()) {
        if (setuid((uid_t)uid) < 0)
            return -errno;
    }
    return 0;
}
