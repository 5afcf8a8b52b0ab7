/*
 * setup.c - the logs as a whole configuration sets them up (Gunicorn's
 * Logger.setup): error log, access log, syslog, capture_output.
 */
#include "log.h"
#include "syslog.h"

#include "../config/config.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int cg_log_open_config(cg_log_t *log, const cg_config_t *cfg, char *err, size_t errlen)
{
    int r = cg_log_open(log, cfg->errorlog, cfg->loglevel, cfg->accesslog,
                        cfg->access_log_format, err, errlen);
    if (r < 0)
        return r;
    if ((r = cg_syslog_open(log, cfg, err, errlen)) < 0)
        goto fail;
    log->syslog_access = cg_syslog_wants_access(log->syslog);
    /* access lines go to syslog even without an access log file: the
     * format is needed then too */
    if (log->syslog_access && log->access_fmt == NULL &&
        (r = cg_access_fmt_compile(cfg->access_log_format ? cfg->access_log_format : "",
                                   &log->access_fmt, err, errlen)) < 0)
        goto fail;
    log->capture = cfg->capture_output;
    return 0;

fail:
    cg_log_close(log);
    return r;
}

int cg_log_capture_output(cg_log_t *log)
{
    /* Gunicorn leaves stdout and stderr alone when errorlog is "-" */
    if (!log->capture || log->error_path == NULL || log->error_fd < 0)
        return 0;
    /* What C stdio holds was written before: it belongs to the old file.
     * (Python's own buffers are flushed by whoever prints; they need the
     * GIL, which the log never takes.) */
    fflush(stdout);
    fflush(stderr);
    /* A description of its own, opened as Gunicorn's open(errorlog, 'a+'):
     * the error log's descriptor is close-on-exec, fds 1 and 2 must not be,
     * and dup2() clears the flag on the copies. */
    int fd = open(log->error_path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return -errno;
    int r = 0;
    if (dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
        r = -errno;
    close(fd);
    return r;
}
