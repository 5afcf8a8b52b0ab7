/*
 * syslog.h - Gunicorn's syslog output (the syslog, syslog_addr,
 * syslog_prefix, syslog_facility and disable_redirect_access_to_syslog
 * settings), written from C without the interpreter.
 *
 * Each record becomes what Python's logging.handlers.SysLogHandler sends
 * with Gunicorn's formatter:
 *
 *     <PRI>gunicorn.<prefix>.<error|access>: [<pid>] <message>\0
 *
 * PRI = facility * 8 + severity (RFC 3164), no timestamp or host name, a
 * NUL at the end (SysLogHandler.append_nul), and over a stream (tcp://,
 * unix:// when only a stream socket answers) no other framing.
 *
 * A syslog daemon that is absent, slow or gone never holds up the caller:
 * sockets are non-blocking, a datagram the kernel will not take now is
 * dropped, a stream connection is made lazily (at most one attempt a
 * second while it fails) and queues at most CG_SYSLOG_PENDING_MAX bytes
 * while it connects or the peer reads slowly; beyond that records are
 * dropped. A stream connection belongs to the process that made it: a
 * forked worker makes its own on first use rather than interleave bytes
 * with its siblings on a shared one.
 */
#ifndef CG_SYSLOG_H
#define CG_SYSLOG_H

#include "log.h"

#include <sys/socket.h>

struct cg_config;

#define CG_SYSLOG_PENDING_MAX 65536

/* Where syslog_addr points, as Gunicorn's parse_syslog_address reads it. */
typedef struct cg_syslog_addr {
    bool is_unix;
    /* SOCK_DGRAM or SOCK_STREAM; 0 for unix:// without "#dgram": try a
     * datagram socket, then a stream one (SysLogHandler's socktype=None) */
    int socktype;
    char path[108];  /* unix:// */
    char host[256];  /* udp:// tcp://, lower-cased; [v6] without brackets */
    unsigned port;   /* default 514 */
} cg_syslog_addr_t;

/* Parse syslog_addr. Returns 0, or -EINVAL with Gunicorn's message in err
 * ("invalid syslog address", "'x' is not a valid port number."). */
int cg_syslog_parse_addr(const char *addr, cg_syslog_addr_t *out, char *err, size_t errlen);

/* Gunicorn's facility table (case-insensitive): the code, or -1 for a name
 * it does not know. */
int cg_syslog_facility(const char *name);

/* The RFC 3164 severity SysLogHandler maps a level to (by its name; an
 * unnamed level is "warning"). */
int cg_syslog_severity(cg_log_level_t level);

/*
 * One record as SysLogHandler sends it: "<PRI>", tag (the program name and
 * colon-space), "[pid] ", msg, NUL. Writes at most cap bytes (nothing when
 * cap is too small) and returns the record's full length, like snprintf
 * without the terminator.
 */
size_t cg_syslog_format(char *buf, size_t cap, int facility, cg_log_level_t level,
                        const char *tag, long pid, const char *msg, size_t len);

/*
 * Set up log->syslog from cfg when cfg->syslog is on (log->syslog stays
 * NULL otherwise): the tags "gunicorn.<syslog_prefix or proc_name with ':'
 * as '.'>.error: " (and ".access: " unless
 * disable_redirect_access_to_syslog), the facility, the address resolved
 * now. No socket is opened yet. Returns 0, or -errno with a message in err
 * (unknown facility, bad address, a host that does not resolve).
 */
int cg_syslog_open(cg_log_t *log, const struct cg_config *cfg, char *err, size_t errlen);

/* Free what cg_syslog_open() made (NULL is fine). */
void cg_syslog_free(cg_syslog_t *s);

/* Whether the syslog takes access lines. */
bool cg_syslog_wants_access(const cg_syslog_t *s);

/* Send one error-log (access false) or access record; thread-safe, never
 * blocks, silently drops what cannot be sent now. */
void cg_syslog_send(cg_syslog_t *s, bool access, cg_log_level_t level, const char *msg,
                    size_t len);

/* The program-name part of the error (access false) or access records,
 * "gunicorn.<prefix>.error: "; NULL for access lines when
 * disable_redirect_access_to_syslog is on. */
const char *cg_syslog_tag(const cg_syslog_t *s, bool access);

/* Send a record a Python formatter already made (tag, pid and message:
 * what SysLogHandler.format() gives) as "<PRI>" text NUL, with `severity`
 * (RFC 3164, 0-7) and the configured facility; as cg_syslog_send(). For the
 * handlers Python's logging holds when a logconfig* setting is on. */
void cg_syslog_send_text(cg_syslog_t *s, int severity, const char *text, size_t len);

#endif
