/*
 * log.h - Gunicorn's error log and access log, written from C.
 *
 * Error log lines: "[%Y-%m-%d %H:%M:%S %z] [pid] [LEVEL] message\n", local time,
 * each line written with one write(2) so lines from master and workers sharing a
 * file never interleave. The access log format (Gunicorn's %(atom)s syntax) is
 * compiled once into an array of ops and rendered per request without Python.
 */
#ifndef CG_LOG_H
#define CG_LOG_H

#include "../cg.h"
#include "../http/http.h"

#include <stdarg.h>
#include <time.h>

typedef enum cg_log_level {
    CG_LOG_DEBUG = 10,
    CG_LOG_INFO = 20,
    CG_LOG_WARNING = 30,
    CG_LOG_ERROR = 40,
    CG_LOG_CRITICAL = 50,
} cg_log_level_t;

typedef struct cg_access_fmt cg_access_fmt_t; /* compiled access_log_format */
typedef struct cg_access_info cg_access_info_t;
typedef struct cg_log cg_log_t;
typedef struct cg_syslog cg_syslog_t; /* syslog.h */
struct cg_config;
struct cg_statsd;

/*
 * Another logging system the records can be handed to instead of the fds:
 * Python's logging module when logconfig, logconfig_dict or logconfig_json is
 * set (src/python/logging.c). The log only calls it while log->to_sink is
 * set, so without a logging configuration nothing here costs anything.
 *
 * error()  one error-log record: msg is the text alone (no prefix, no final
 *          newline). Returns false when the sink cannot take it now (no
 *          interpreter any more ...): the log then writes it itself.
 * access() one access record, for the sink to format itself. Same return.
 * reopen() USR1: reopen the sink's files. 0 or -errno.
 * reload() HUP: apply cfg's logging settings to `log`, a freshly opened log
 *          the caller swaps in on success (it sets log->to_sink and
 *          log->level). Returns 0, or -1 having reported the failure and
 *          restored the previous logging (the caller keeps its old log).
 */
typedef struct cg_log_sink {
    void *ctx;
    bool (*error)(void *ctx, cg_log_level_t level, const char *msg, size_t len);
    bool (*access)(void *ctx, const cg_access_info_t *info);
    int (*reopen)(void *ctx);
    int (*reload)(void *ctx, cg_log_t *log, const struct cg_config *cfg);
} cg_log_sink_t;

struct cg_log {
    /* Lowest level written. With a sink it mirrors the sink's own threshold
     * and may be changed by another thread: read it with cg_log_enabled(). */
    cg_log_level_t level;
    int error_fd;      /* -1: error log disabled */
    char *error_path;  /* NULL for "-" (stderr) */
    int access_fd;     /* -1: access log disabled (accesslog None) */
    char *access_path; /* NULL for "-" (stdout) */
    cg_access_fmt_t *access_fmt;
    const cg_log_sink_t *sink; /* attached sink (not owned); NULL: none */
    bool to_sink;              /* records go to sink rather than to the fds */
    cg_syslog_t *syslog;       /* records also go to syslog; NULL: off (owned) */
    bool syslog_access;        /* ... access lines too */
    bool capture;              /* capture_output: fds 1 and 2 follow the error log file */
    /* statsd_host's client (src/metrics/statsd.h; not owned, kept across
     * HUP as Gunicorn keeps its logger): warnings, errors, exceptions and
     * critical records are counted there whatever the level. NULL: none. */
    const struct cg_statsd *statsd;
};

/*
 * Open the logs as Gunicorn's settings describe them: errorlog "-" = stderr,
 * accesslog NULL = off, "-" = stdout, else a file opened for append (created
 * 0644... as umask permits). loglevel is matched case-insensitively (debug,
 * info, warning, error, critical; unknown -> info, as Gunicorn).
 * Returns 0, or -errno with a message in err.
 */
int cg_log_open(cg_log_t *log, const char *errorlog, const char *loglevel, const char *accesslog,
                const char *access_log_format, char *err, size_t errlen);

/*
 * cg_log_open() with cfg's logging settings, plus what Gunicorn's Logger
 * sets up besides the two logs: syslog (syslog.h) and capture_output (kept
 * in log->capture; cg_log_capture_output() applies it). Returns 0, or
 * -errno with a message in err (nothing left open then).
 */
int cg_log_open_config(cg_log_t *log, const struct cg_config *cfg, char *err, size_t errlen);

/*
 * capture_output: with log->capture and an error log file (not "-"), point
 * fds 1 and 2 at that file, so whatever the process and its C extensions
 * print lands there (children inherit it). Gunicorn does this when it sets
 * up its logger and again on every reopen; cg_log_reopen() calls it.
 * Returns 0 (also when there is nothing to do) or -errno.
 */
int cg_log_capture_output(cg_log_t *log);

/* Reopen files after rotation (USR1), the sink's too while records go there.
 * Returns 0 or -errno (old fds kept then). */
int cg_log_reopen(cg_log_t *log);

/* Close what cg_log_open() opened; the sink is left alone (not owned). */
void cg_log_close(cg_log_t *log);

static inline bool cg_log_enabled(const cg_log_t *log, cg_log_level_t level)
{
    /* relaxed: a sink may move the threshold from another thread */
    return (log->error_fd >= 0 || log->to_sink || log->syslog != NULL) &&
           level >= __atomic_load_n(&log->level, __ATOMIC_RELAXED);
}

void cg_log_msg(cg_log_t *log, cg_log_level_t level, const char *fmt, ...) CG_PRINTF(3, 4);
void cg_log_vmsg(cg_log_t *log, cg_log_level_t level, const char *fmt, va_list ap);

/*
 * Log `msg` (may contain newlines, e.g. a message plus a Python traceback) as
 * one record: prefix once, text as is, one trailing newline ensured.
 */
void cg_log_text(cg_log_t *log, cg_log_level_t level, const char *msg, size_t len);

/*
 * What Gunicorn's log.exception() does: an ERROR record that statsd counts
 * as gunicorn.log.exception, not gunicorn.log.error.
 */
void cg_log_exception(cg_log_t *log, const char *fmt, ...) CG_PRINTF(2, 3);
/* cg_log_text() counted as the statsd counter `counter` names instead of
 * by level (NULL: not counted; the caller counted it its own way). */
void cg_log_text_counted(cg_log_t *log, cg_log_level_t level, const char *counter,
                         const char *msg, size_t len);

#define cg_log_debug(log, ...) cg_log_msg((log), CG_LOG_DEBUG, __VA_ARGS__)
#define cg_log_info(log, ...) cg_log_msg((log), CG_LOG_INFO, __VA_ARGS__)
#define cg_log_warning(log, ...) cg_log_msg((log), CG_LOG_WARNING, __VA_ARGS__)
#define cg_log_error(log, ...) cg_log_msg((log), CG_LOG_ERROR, __VA_ARGS__)
#define cg_log_critical(log, ...) cg_log_msg((log), CG_LOG_CRITICAL, __VA_ARGS__)

/* Everything an access-log line can show, gathered by the worker in C. */
struct cg_access_info {
    cg_str_t remote_addr; /* environ REMOTE_ADDR ("" for unix sockets) */
    cg_str_t method;      /* REQUEST_METHOD */
    cg_str_t raw_uri;     /* RAW_URI */
    cg_str_t protocol;    /* SERVER_PROTOCOL, e.g. "HTTP/1.1" */
    cg_str_t path_info;   /* decoded PATH_INFO */
    cg_str_t query;       /* QUERY_STRING */
    cg_str_t status;      /* the status string as the app gave it ("200 OK") */
    int64_t sent;         /* body bytes sent; -1 unknown */
    int64_t request_time_us;
    time_t log_time;      /* when the request was logged */
    pid_t pid;
    const cg_http_header_t *req_headers; /* dropped ones are skipped */
    size_t n_req_headers;
    const cg_str_t *resp_headers; /* name, value, name, value, ... after filtering */
    size_t n_resp_headers;        /* number of pairs */
    /* {name}e atoms: look up an environ value (name matched case-insensitively).
     * Return false when absent. May be NULL (then {..}e renders "-"). */
    bool (*environ_lookup)(void *ctx, cg_str_t name, cg_str_t *value);
    void *environ_ctx;
    /* For a Python logger_class's access(resp, req, environ, request_time)
     * (src/python/loggerclass.c): make new references to the request's req
     * and resp objects and its environ (each PyObject *; *env_out may be
     * left NULL when none was built). GIL held. 0, or -1 with an exception
     * set. Set by the WSGI and ASGI workers only while records go to a sink. */
    int (*py_objects)(void *ctx, void **req, void **resp, void **env_out);
    void *py_ctx;
};

/* Whether access records are wanted: accesslog is set, or a logging
 * configuration decides (Gunicorn's access_log_enabled). */
static inline bool cg_log_access_enabled(const cg_log_t *log)
{
    return log->access_fd >= 0 || log->to_sink || log->syslog_access;
}

/* True when the compiled format has {name}e atoms (the caller then must provide
 * environ_lookup, which in the WSGI worker needs the GIL). */
bool cg_log_access_needs_environ(const cg_log_t *log);

/*
 * What a compiled format reads that a WSGI worker keeps in Python objects, so
 * that it gathers (under the GIL) only that before rendering without it.
 * Returns CG_ACCESS_NEEDS_* bits; 0 for NULL. The status and the request
 * itself are always read.
 */
#define CG_ACCESS_NEEDS_ENVIRON 0x1u      /* {name}e atoms */
#define CG_ACCESS_NEEDS_RESP_HEADERS 0x2u /* {name}o atoms */
#define CG_ACCESS_NEEDS_PATH_INFO 0x4u    /* the U atom */
unsigned cg_access_fmt_needs(const cg_access_fmt_t *f);

/*
 * {name}e values looked up ahead of rendering, for a line rendered where the
 * environ cannot be read (without the GIL): set info->environ_lookup to
 * cg_access_env_lookup and info->environ_ctx to one of these. Names are the
 * lower-case ones cg_access_fmt_environ_names() gives, each at most once;
 * a name not in the table renders "-", as an absent value does.
 */
#define CG_ACCESS_ENV_MAX 8
typedef struct cg_access_env {
    size_t n;
    cg_str_t name[CG_ACCESS_ENV_MAX];
    cg_str_t value[CG_ACCESS_ENV_MAX]; /* .ptr NULL: not in the environ */
} cg_access_env_t;

bool cg_access_env_lookup(void *ctx, cg_str_t name, cg_str_t *value);

/* Render and write one access-log line (or hand it to the sink). Needs no
 * interpreter unless info->environ_lookup does; the Python sink takes the
 * GIL itself. */
void cg_log_access(cg_log_t *log, const cg_access_info_t *info);
/* An access line rendered elsewhere (a Python worker class's logging
 * record), without its newline: written as cg_log_access() writes its own
 * (file and syslog), not handed to a sink. */
void cg_log_access_text(cg_log_t *log, const char *line, size_t len);

/* Compile / render, exposed for unit tests. Render returns the line length
 * (without newline), truncated to cap-1 and NUL-terminated. */
int cg_access_fmt_compile(const char *fmt, cg_access_fmt_t **out, char *err, size_t errlen);
void cg_access_fmt_free(cg_access_fmt_t *f);
size_t cg_access_fmt_render(const cg_access_fmt_t *f, const cg_access_info_t *info, char *buf,
                            size_t cap);

/* For a sink that builds Gunicorn's atoms itself. The lower-case names of
 * the {name}e atoms the format uses, up to cap (views into f); returns how
 * many there are. */
size_t cg_access_fmt_environ_names(const cg_access_fmt_t *f, cg_str_t *names, size_t cap);
/* The "u" atom: the Basic-auth user name (UTF-8, malloc'd, *len set), or
 * NULL when there is none or it does not decode (Gunicorn's "-"). */
char *cg_access_user(const cg_access_info_t *info, size_t *len);

#endif
