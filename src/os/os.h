/*
 * os.h - process-level plumbing of the master: process titles, daemon mode,
 * systemd's notification protocol and socket activation, privilege drop.
 * Plain C, no logging: callers decide what to say about a failure.
 */
#ifndef CG_OS_H
#define CG_OS_H

#include "../cg.h"

#include <sys/types.h>

/*
 * Take over the argv/environ block so cg_proctitle_set() can overwrite it,
 * as nginx does: environ strings are copied to the heap (environ is rebuilt)
 * and every argv[i] is repointed to a heap copy, so argv stays usable (USR2
 * re-exec, HUP re-parse). Call once, with main's argv, before the first
 * set. Returns 0, or -ENOMEM/-EINVAL when the block is not as expected
 * (then cg_proctitle_set() does nothing).
 */
int cg_proctitle_init(int argc, char **argv);

/* The same for a process whose argument strings were all copied already
 * (an embedding Python interpreter copies them at start-up, and the pip
 * front end runs inside one): the block is found from the kernel's record
 * alone, nothing points into it but environ, which is moved. */
int cg_proctitle_adopt(void);

/* Show title as the process's command line (ps, /proc/PID/cmdline); it is
 * cut to the size of the original block. No-op before a successful init. */
void cg_proctitle_set(const char *title);

/*
 * Gunicorn's util.daemonize: fork (parent _exit(0)), setsid, fork again,
 * umask 022, then stdin to /dev/null and stdout/stderr too unless
 * keep_stdio (Gunicorn's enable_stdio_inheritance: only replaced when they
 * are terminals). Returns 0 in the surviving grandchild, -errno on failure
 * (in the original process).
 */
int cg_os_daemonize(bool keep_stdio);

/*
 * sd_notify(): send msg as one datagram to $NOTIFY_SOCKET (a path, or an
 * abstract name written with a leading '@'). Returns 1 when sent, 0 when
 * NOTIFY_SOCKET is unset, -errno on failure.
 */
int cg_os_notify(const char *msg);

/*
 * systemd socket activation: when $LISTEN_PID is our pid, the number of
 * passed fds (starting at 3) from $LISTEN_FDS; both variables are then
 * removed. Returns 0 when there is nothing for us.
 */
int cg_os_listen_fds(void);

/*
 * The watchdog period from $WATCHDOG_USEC (when $WATCHDOG_PID is unset or
 * ours), in microseconds; 0 when no watchdog is asked for.
 */
uint64_t cg_os_watchdog_usec(void);

/*
 * Become uid/gid as Gunicorn's set_owner_process: setgid (or initgroups for
 * the user's name when want_initgroups) when gid differs, then setuid when
 * uid differs. A negative id means "keep". Returns 0 or -errno.
 */
int cg_os_set_owner(long uid, long gid, bool want_initgroups);

/*
 * What a live process costs now: resident memory in bytes and user+system
 * CPU time in microseconds (Linux: /proc/PID/statm and /proc/PID/stat).
 * Returns 0, -ESRCH when it is gone, -ENOSYS where there is no such
 * interface, or another -errno.
 */
int cg_os_proc_usage(pid_t pid, uint64_t *rss_bytes, uint64_t *cpu_us);

/* The pids of pid's children (at most cap, into out), as Linux lists them
 * in /proc/PID/task/PID/children; 0 when it has none, is gone, or the
 * system has no such list. */
size_t cg_os_proc_children(pid_t pid, pid_t *out, size_t cap);

/* Whether sig, sent to process pid or its main thread, is still pending
 * (not yet delivered): 1 or 0 (Linux: ShdPnd and SigPnd in
 * /proc/PID/status); -ESRCH when it is gone,
 * -ENOSYS where the system does not say, another -errno. */
int cg_os_proc_signal_pending(pid_t pid, int sig);

/* Whether the kernel offers kTLS (the "tls" TCP upper-layer protocol,
 * which OpenSSL's SSL_OP_ENABLE_KTLS needs): 0 when it does, -ENOENT when
 * the module is neither built in nor loadable, -ENOSYS off Linux, another
 * -errno. */
int cg_os_ktls_probe(void);

#endif
