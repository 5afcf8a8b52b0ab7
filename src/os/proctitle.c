/*
 * proctitle.c - process titles by rewriting the argv/environ block in place
 * (what nginx and Python's setproctitle do on Linux).
 *
 * The kernel shows /proc/PID/cmdline from the original argv area; when the
 * last byte of that area is no longer NUL it assumes setproctitle(3) and
 * shows everything up to the first NUL instead. So the title is written
 * NUL-terminated and, when it is shorter than the argv area, that last byte
 * is made non-NUL: ps and psutil then see the title and nothing else.
 */
#include "os.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

/* The block we may overwrite; NULL until cg_proctitle_init() succeeded.
 * Global because a process has exactly one such block. */
static char *cg__pt_start;
static char *cg__pt_end;     /* one past the last usable byte */
static char *cg__pt_arg_end; /* one past argv's original last NUL */
static char **cg__pt_env;    /* our copy of environ, kept reachable after setenv() replaces it */

/* The kernel's own record of the block (/proc/self/stat fields 48-51:
 * arg_start, arg_end, env_start, env_end), so we never write over memory
 * that only looks like it (a test's argv of string literals, say). */
static int cg__pt_bounds(uintptr_t v[4])
{
    char buf[2048];
    FILE *f = fopen("/proc/self/stat", "re");
    if (f == NULL)
        return -errno;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (p == NULL)
        return -EINVAL;
    p++;
    /* p now points before field 3; we want fields 48..51 */
    for (int field = 3; field < 48; field++) {
        p = strchr(p + 1, ' ');
        if (p == NULL)
            return -EINVAL;
    }
    for (int i = 0; i < 4; i++) {
        char *e;
        v[i] = (uintptr_t)strtoull(p + 1, &e, 10);
        if (e == p + 1)
            return -EINVAL;
        p = e;
    }
    return 0;
}

/* Take the block the kernel recorded (b); environ is moved to the heap. */
static int cg__pt_take(const uintptr_t b[4])
{
    char *start = (char *)b[0];
    char *arg_end = (char *)b[1];
    /* the kernel lets a title run on into the environment block only when
     * it directly follows the arguments */
    char *end = b[2] == b[1] && b[3] > b[2] ? (char *)b[3] : arg_end;

    size_t nenv = 0;
    while (environ[nenv] != NULL)
        nenv++;
    char **env = calloc(nenv + 1, sizeof(*env));
    if (env == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < nenv; i++)
        env[i] = cg_xstrdup(environ[i]);
    environ = env;
    cg__pt_env = env;

    cg__pt_start = start;
    cg__pt_end = end;
    cg__pt_arg_end = arg_end;
    return 0;
}

int cg_proctitle_init(int argc, char **argv)
{
    if (cg__pt_start != NULL)
        return 0;
    if (argc <= 0 || argv == NULL || argv[0] == NULL)
        return -EINVAL;
    uintptr_t b[4];
    int r = cg__pt_bounds(b);
    if (r < 0)
        return r;
    if ((uintptr_t)argv[0] != b[0] || b[1] <= b[0])
        return -EINVAL; /* not the process's real argument block */
    if ((r = cg__pt_take(b)) < 0)
        return r;
    for (int i = 0; i < argc; i++)
        argv[i] = cg_xstrdup(argv[i]);
    return 0;
}

int cg_proctitle_adopt(void)
{
    if (cg__pt_start != NULL)
        return 0;
    uintptr_t b[4];
    int r = cg__pt_bounds(b);
    if (r < 0)
        return r;
    if (b[1] <= b[0])
        return -EINVAL;
    return cg__pt_take(b);
}

void cg_proctitle_set(const char *title)
{
    if (cg__pt_start == NULL)
        return;
    size_t room = (size_t)(cg__pt_end - cg__pt_start);
    size_t n = strlen(title);
    if (n >= room)
        n = room - 1;
    memcpy(cg__pt_start, title, n);
    memset(cg__pt_start + n, 0, room - n);
    if (cg__pt_start + n + 1 < cg__pt_arg_end)
        cg__pt_arg_end[-1] = '.';
}
