/*
 * log.c - the error log and the access-log writer.
 *
 * Every record is built in memory and handed to the kernel with one write(2):
 * master and workers share the same O_APPEND descriptors, so a record is never
 * interleaved with another process's (for regular files O_APPEND makes each
 * write atomic with respect to the file offset; pipes keep writes up to
 * PIPE_BUF whole).
 */
#include "log.h"
#include "syslog.h"

#include "../metrics/statsd.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* from access.c */
size_t cg__access_render_line(const cg_access_fmt_t *f, const cg_access_info_t *in, char *buf,
                              size_t cap, char **line, const char **pyerr, char *ebuf,
                              size_t elen);
size_t cg__access_fmt_repr(const cg_access_fmt_t *f, char *buf, size_t cap);
bool cg__access_user_error(const cg_access_info_t *in, char *err, size_t errlen);

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere to report a failing log */
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Python's exception class for an errno, for Gunicorn's "[%r]" of an OSError. */
static const char *py_oserror_name(int e)
{
    switch (e) {
    case EACCES:
    case EPERM:
        return "PermissionError";
    case ENOENT:
        return "FileNotFoundError";
    case EISDIR:
        return "IsADirectoryError";
    case ENOTDIR:
        return "NotADirectoryError";
    case EEXIST:
        return "FileExistsError";
    default:
        return "OSError";
    }
}

/* Python's open(path, 'a'): mode 0666 before the umask, like Gunicorn's
 * FileHandler (Gunicorn never forces 0644 itself). */
static int open_append(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    return fd < 0 ? -errno : fd;
}

static int open_target(const char *path, int std_fd, int *fd, char **owned, char *err,
                       size_t errlen)
{
    if (strcmp(path, "-") == 0) {
        *fd = std_fd;
        *owned = NULL;
        return 0;
    }
    int r = open_append(path);
    if (r < 0) {
        /* util.check_is_writable's message */
        snprintf(err, errlen, "Error: '%s' isn't writable [%s(%d, '%s')]", path,
                 py_oserror_name(-r), -r, strerror(-r));
        return r;
    }
    *fd = r;
    *owned = cg_xstrdup(path);
    return 0;
}

static cg_log_level_t parse_level(const char *s)
{
    static const struct {
        const char *name;
        cg_log_level_t level;
    } levels[] = {
        {"debug", CG_LOG_DEBUG},     {"info", CG_LOG_INFO},        {"warning", CG_LOG_WARNING},
        {"error", CG_LOG_ERROR},     {"critical", CG_LOG_CRITICAL},
    };
    if (s)
        for (size_t i = 0; i < CG_ARRAY_SIZE(levels); i++)
            if (cg_str_caseeq((cg_str_t){s, strlen(s)}, levels[i].name))
                return levels[i].level;
    return CG_LOG_INFO;
}

int cg_log_open(cg_log_t *log, const char *errorlog, const char *loglevel, const char *accesslog,
                const char *access_log_format, char *err, size_t errlen)
{
    int r;
    *log = (cg_log_t){.level = parse_level(loglevel), .error_fd = -1, .access_fd = -1};
    tzset(); /* localtime_r() is not required to look at TZ itself */

    if (errorlog && (r = open_target(errorlog, STDERR_FILENO, &log->error_fd, &log->error_path,
                                     err, errlen)) < 0)
        goto fail;
    if (accesslog) {
        r = cg_access_fmt_compile(access_log_format ? access_log_format : "", &log->access_fmt,
                                  err, errlen);
        if (r < 0)
            goto fail;
        r = open_target(accesslog, STDOUT_FILENO, &log->access_fd, &log->access_path, err,
                        errlen);
        if (r < 0)
            goto fail;
    }
    return 0;

fail:
    cg_log_close(log);
    return r;
}

static int reopen_one(int fd, const char *path)
{
    if (fd < 0 || !path)
        return 0;
    int nfd = open_append(path);
    if (nfd < 0)
        return nfd;
    /* dup3 keeps the number (forked workers hold it too) and close-on-exec. */
    int r = dup3(nfd, fd, O_CLOEXEC) < 0 ? -errno : 0;
    close(nfd);
    return r;
}

int cg_log_reopen(cg_log_t *log)
{
    int r1 = reopen_one(log->error_fd, log->error_path);
    int r2 = reopen_one(log->access_fd, log->access_path);
    int r3 = log->to_sink && log->sink->reopen != NULL ? log->sink->reopen(log->sink->ctx) : 0;
    int r4 = cg_log_capture_output(log);
    return r1 < 0 ? r1 : r2 < 0 ? r2 : r3 < 0 ? r3 : r4;
}

void cg_log_close(cg_log_t *log)
{
    if (log->error_path && log->error_fd >= 0)
        close(log->error_fd);
    if (log->access_path && log->access_fd >= 0)
        close(log->access_fd);
    free(log->error_path);
    free(log->access_path);
    cg_access_fmt_free(log->access_fmt);
    cg_syslog_free(log->syslog);
    log->syslog = NULL;
    log->syslog_access = false;
    log->error_path = log->access_path = NULL;
    log->access_fmt = NULL;
    log->error_fd = log->access_fd = -1;
}

/* "[2026-11-26 14:12:25 +0000] [12111] [INFO] " */
static size_t record_prefix(char *d, size_t cap, cg_log_level_t level)
{
    static const char *const names[] = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"};
    char lvl[24];
    const char *name = lvl;
    if (level % 10 == 0 && level >= 10 && level <= 50)
        name = names[level / 10 - 1];
    else
        snprintf(lvl, sizeof(lvl), "Level %d", (int)level); /* Python's unnamed level */

    time_t now = time(NULL);
    struct tm tm;
    if (!localtime_r(&now, &tm))
        memset(&tm, 0, sizeof(tm));
    long off = tm.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    int n = snprintf(d, cap, "[%04d-%02d-%02d %02d:%02d:%02d %c%02ld%02ld] [%ld] [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, sign, off / 3600, off / 60 % 60, (long)getpid(), name);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Hand one record (text at buf + pre, len bytes, room for a newline after
 * it) to the sink, else complete it with its prefix and write it. The
 * newline: always added (nl_always, a formatted message, as Python's
 * StreamHandler does), or only when the text lacks one (cg_log_text). */
static void emit_record(cg_log_t *log, cg_log_level_t level, char *buf, size_t pre, size_t len,
                        bool nl_always)
{
    if (log->to_sink && log->sink->error(log->sink->ctx, level, buf + pre, len))
        return;
    if (log->syslog != NULL)
        cg_syslog_send(log->syslog, false, level, buf + pre, len);
    if (log->error_fd < 0)
        return;
    /* the prefix was reserved, not written: the time is taken now */
    char head[128];
    size_t n = record_prefix(head, sizeof(head), level);
    if (n > pre)
        n = pre;
    memcpy(buf + pre - n, head, n);
    size_t end = pre + len;
    if (nl_always || !len || buf[end - 1] != '\n')
        buf[end++] = '\n';
    write_all(log->error_fd, buf + pre - n, end - (pre - n));
}

/* Room kept in front of a record's text for its prefix ("[date] [pid]
 * [LEVEL] " is at most 80 bytes even for "Level 2147483647"). */
#define CG__PREFIX_ROOM 96

static void log_vmsg(cg_log_t *log, cg_log_level_t level, const char *fmt, va_list ap);

void cg_log_vmsg(cg_log_t *log, cg_log_level_t level, const char *fmt, va_list ap)
{
    cg_statsd_count(log->statsd, cg_statsd_level_counter(level));
    log_vmsg(log, level, fmt, ap);
}

void cg_log_exception(cg_log_t *log, const char *fmt, ...)
{
    va_list ap;
    cg_statsd_count(log->statsd, "gunicorn.log.exception");
    va_start(ap, fmt);
    log_vmsg(log, CG_LOG_ERROR, fmt, ap);
    va_end(ap);
}

static void log_vmsg(cg_log_t *log, cg_log_level_t level, const char *fmt, va_list ap)
{
    /* fmt NULL: nothing to say (the test also spares UBSan builds a NULL
     * path into vsnprintf, which -Wformat-truncation reports) */
    if (!cg_log_enabled(log, level) || fmt == NULL)
        return;
    char stackbuf[2048], *buf = stackbuf;
    size_t pre = CG__PREFIX_ROOM;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(stackbuf + pre, sizeof(stackbuf) - pre, fmt, ap);
    if (n < 0)
        n = 0;
    if ((size_t)n + pre + 1 >= sizeof(stackbuf)) {
        buf = cg_xmalloc(pre + (size_t)n + 2);
        vsnprintf(buf + pre, (size_t)n + 1, fmt, ap2);
    }
    va_end(ap2);
    emit_record(log, level, buf, pre, (size_t)n, true);
    if (buf != stackbuf)
        free(buf);
}

void cg_log_msg(cg_log_t *log, cg_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cg_log_vmsg(log, level, fmt, ap);
    va_end(ap);
}

void cg_log_text(cg_log_t *log, cg_log_level_t level, const char *msg, size_t len)
{
    cg_log_text_counted(log, level, cg_statsd_level_counter(level), msg, len);
}

void cg_log_text_counted(cg_log_t *log, cg_log_level_t level, const char *counter,
                         const char *msg, size_t len)
{
    cg_statsd_count(log->statsd, counter);
    if (!cg_log_enabled(log, level))
        return;
    char stackbuf[2048], *buf = stackbuf;
    size_t pre = CG__PREFIX_ROOM;
    if (pre + len + 1 > sizeof(stackbuf))
        buf = cg_xmalloc(pre + len + 1);
    memcpy(buf + pre, msg, len);
    emit_record(log, level, buf, pre, len, false);
    if (buf != stackbuf)
        free(buf);
}

/* What Python's logging prints on sys.stderr when formatting the access line
 * raised (Handler.handleError), minus the traceback we do not have. */
static void report_logging_error(const cg_access_fmt_t *f, const char *pyerr)
{
    char buf[4096];
    size_t n = 0;
    const char head[] = "--- Logging error ---\n";
    memcpy(buf, head, sizeof(head) - 1);
    n = sizeof(head) - 1;
    int k = snprintf(buf + n, sizeof(buf) - n, "%s\nMessage: ", pyerr);
    if (k > 0)
        n += (size_t)k < sizeof(buf) - n ? (size_t)k : sizeof(buf) - n - 1;
    n += cg__access_fmt_repr(f, buf + n, sizeof(buf) - n - 1);
    buf[n++] = '\n';
    write_all(STDERR_FILENO, buf, n);
}

/* One rendered access line (ending in a newline) to the access file and,
 * when asked, syslog. */
static void cg__access_emit(cg_log_t *log, const char *line, size_t n)
{
    if (log->access_fd >= 0)
        write_all(log->access_fd, line, n);
    if (log->syslog_access) {
        /* the record is the line itself; the file's newline is not part of it */
        size_t m = n > 0 && line[n - 1] == '\n' ? n - 1 : n;
        cg_syslog_send(log->syslog, true, CG_LOG_INFO, line, m);
    }
}

void cg_log_access(cg_log_t *log, const cg_access_info_t *info)
{
    if (!cg_log_access_enabled(log))
        return;
    if (cg_log_enabled(log, CG_LOG_DEBUG)) {
        /* Gunicorn computes every atom, "u" included, whatever the format. */
        char uerr[200];
        if (cg__access_user_error(info, uerr, sizeof(uerr)))
            cg_log_debug(log, "Couldn't get username: %s", uerr);
    }
    if (log->to_sink && log->sink->access(log->sink->ctx, info))
        return;
    if (!log->access_fmt || (log->access_fd < 0 && !log->syslog_access))
        return;
    char stackbuf[4096], ebuf[160];
    char *line;
    const char *pyerr;
    size_t n = cg__access_render_line(log->access_fmt, info, stackbuf, sizeof(stackbuf), &line,
                                      &pyerr, ebuf, sizeof(ebuf));
    if (pyerr) {
        report_logging_error(log->access_fmt, pyerr);
        return;
    }
    cg__access_emit(log, line, n);
    if (line != stackbuf)
        free(line);
}

void cg_log_access_text(cg_log_t *log, const char *line, size_t len)
{
    if (log->access_fd < 0 && !log->syslog_access)
        return;
    char stackbuf[4096];
    char *buf = len + 1 <= sizeof(stackbuf) ? stackbuf : cg_xmalloc(len + 1);
    memcpy(buf, line, len);
    buf[len] = '\n';
    cg__access_emit(log, buf, len + 1);
    if (buf != stackbuf)
        free(buf);
}
