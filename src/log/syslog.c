/*
 * syslog.c - error-log and access records sent to a syslog daemon, as
 * Gunicorn 26's glogging sets up Python's SysLogHandler (behaviour learned
 * from glogging.py and logging/handlers.py; the code is ours).
 *
 * Which records: every error-log record at or above loglevel, and every
 * access line (at INFO) unless disable_redirect_access_to_syslog, whether or
 * not accesslog is set. Nothing here may stall a worker: see syslog.h.
 */
#include "syslog.h"

#include "../config/config.h"

#include <ctype.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct cg_syslog {
    /* records come from the loop and from pool threads at once */
    pthread_mutex_t lock;
    int facility;
    char *tag[2]; /* [0] error, [1] access (NULL: access lines not sent) */

    cg_syslog_addr_t addr;
    struct sockaddr_storage sa; /* resolved destination (udp/tcp) or the unix path */
    socklen_t salen;
    int family;

    int fd;          /* -1: no socket now */
    int socktype;    /* the type of fd */
    pid_t owner;     /* process that connected fd (a stream is not shared) */
    bool connecting; /* a stream connect(2) still in progress */
    int64_t retry_at_ms;
    char *pend; /* stream bytes the socket has not taken yet */
    size_t npend;
};

/* Gunicorn's SYSLOG_FACILITIES. */
static const struct {
    const char *name;
    int code;
} facilities[] = {
    {"auth", 4},    {"authpriv", 10}, {"cron", 9},     {"daemon", 3},   {"ftp", 11},
    {"kern", 0},    {"lpr", 6},       {"mail", 2},     {"news", 7},     {"security", 4},
    {"syslog", 5},  {"user", 1},      {"uucp", 8},     {"local0", 16},  {"local1", 17},
    {"local2", 18}, {"local3", 19},   {"local4", 20},  {"local5", 21},  {"local6", 22},
    {"local7", 23},
};

int cg_syslog_facility(const char *name)
{
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < CG_ARRAY_SIZE(facilities); i++)
        if (strcasecmp(name, facilities[i].name) == 0)
            return facilities[i].code;
    return -1;
}

int cg_syslog_severity(cg_log_level_t level)
{
    switch ((int)level) {
    case CG_LOG_DEBUG:
        return 7;
    case CG_LOG_INFO:
        return 6;
    case CG_LOG_WARNING:
        return 4;
    case CG_LOG_ERROR:
        return 3;
    case CG_LOG_CRITICAL:
        return 2;
    default:
        return 4; /* SysLogHandler.mapPriority's fallback for "Level N" */
    }
}

size_t cg_syslog_format(char *buf, size_t cap, int facility, cg_log_level_t level,
                        const char *tag, long pid, const char *msg, size_t len)
{
    char head[96];
    int h = snprintf(head, sizeof(head), "<%d>", (facility << 3) | cg_syslog_severity(level));
    char pidpart[32];
    int p = snprintf(pidpart, sizeof(pidpart), "[%ld] ", pid);
    if (h < 0 || p < 0)
        return 0;
    size_t tlen = strlen(tag);
    size_t total = (size_t)h + tlen + (size_t)p + len + 1;
    if (total > cap)
        return total;
    char *d = buf;
    memcpy(d, head, (size_t)h);
    d += h;
    memcpy(d, tag, tlen);
    d += tlen;
    memcpy(d, pidpart, (size_t)p);
    d += p;
    memcpy(d, msg, len);
    d += len;
    *d = '\0'; /* part of the record: SysLogHandler.append_nul */
    return total;
}

static void lower_copy(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[n] = '\0';
}

int cg_syslog_parse_addr(const char *addr, cg_syslog_addr_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(addr, "unix://", 7) == 0) {
        /* Gunicorn: only "#dgram" pins the type; any "#..." is cut off */
        const char *path = addr + 7, *hash = strchr(path, '#');
        size_t n = hash ? (size_t)(hash - path) : strlen(path);
        out->is_unix = true;
        out->socktype = hash && strcmp(hash + 1, "dgram") == 0 ? SOCK_DGRAM : 0;
        if (n >= sizeof(out->path)) {
            snprintf(err, errlen, "AF_UNIX path too long");
            return -ENAMETOOLONG;
        }
        memcpy(out->path, path, n);
        out->path[n] = '\0';
        return 0;
    }
    const char *rest;
    if (strncmp(addr, "udp://", 6) == 0) {
        rest = addr + 6;
        out->socktype = SOCK_DGRAM;
    } else if (strncmp(addr, "tcp://", 6) == 0) {
        rest = addr + 6;
        out->socktype = SOCK_STREAM;
    } else {
        snprintf(err, errlen, "invalid syslog address");
        return -EINVAL;
    }
    const char *lb = strchr(rest, '['), *rb = strchr(rest, ']'), *colon = strchr(rest, ':');
    if (lb && rb) {
        /* Gunicorn takes what lies between the first character and the
         * first ']' */
        size_t n = (size_t)(rb - rest);
        lower_copy(out->host, sizeof(out->host), rest + (n ? 1 : 0), n ? n - 1 : 0);
    } else if (colon) {
        lower_copy(out->host, sizeof(out->host), rest, (size_t)(colon - rest));
    } else if (*rest == '\0') {
        strcpy(out->host, "localhost");
    } else {
        lower_copy(out->host, sizeof(out->host), rest, strlen(rest));
    }
    /* the port: after the first ':' of what follows the last ']' */
    const char *tail = strrchr(rest, ']');
    tail = tail ? tail + 1 : rest;
    const char *pc = strchr(tail, ':');
    out->port = 514;
    if (pc) {
        const char *ps = pc + 1;
        bool digits = *ps != '\0';
        for (const char *c = ps; *c; c++)
            digits = digits && isdigit((unsigned char)*c);
        if (!digits) {
            snprintf(err, errlen, "'%s' is not a valid port number.", ps);
            return -EINVAL;
        }
        unsigned long v = strtoul(ps, NULL, 10);
        if (strlen(ps) > 5 || v > 65535) {
            /* Python fails later, on the socket call, with this text */
            snprintf(err, errlen, "getsockaddrarg: port must be 0-65535.");
            return -EINVAL;
        }
        out->port = (unsigned)v;
    }
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *make_tag(const char *prefix, const char *name)
{
    size_t n = strlen(prefix) + strlen(name) + sizeof("gunicorn..: ");
    char *t = cg_xmalloc(n);
    snprintf(t, n, "gunicorn.%s.%s: ", prefix, name);
    return t;
}

int cg_syslog_open(cg_log_t *log, const cg_config_t *cfg, char *err, size_t errlen)
{
    log->syslog = NULL;
    if (!cfg->syslog)
        return 0;
    /* Gunicorn checks the facility before the address */
    int facility = cg_syslog_facility(cfg->syslog_facility);
    if (facility < 0) {
        snprintf(err, errlen, "unknown facility name");
        return -EINVAL;
    }
    cg_syslog_addr_t addr;
    int r = cg_syslog_parse_addr(cfg->syslog_addr ? cfg->syslog_addr : "", &addr, err, errlen);
    if (r < 0)
        return r;

    cg_syslog_t *s = cg_xcalloc(1, sizeof(*s));
    s->fd = -1;
    s->facility = facility;
    s->addr = addr;
    if (addr.is_unix) {
        struct sockaddr_un *un = (struct sockaddr_un *)&s->sa;
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, addr.path, strlen(addr.path) + 1);
        s->salen = (socklen_t)sizeof(*un);
        s->family = AF_UNIX;
    } else {
        /* resolved once here (and again on HUP), not per record as Python's
         * sendto((host, port)) does: a lookup may block */
        struct addrinfo hints = {.ai_socktype = addr.socktype}, *res = NULL;
        char port[8];
        snprintf(port, sizeof(port), "%u", addr.port);
        int g = getaddrinfo(addr.host, port, &hints, &res);
        if (g != 0 || res == NULL) {
            snprintf(err, errlen, "syslog address %s: %s", cfg->syslog_addr,
                     g != 0 ? gai_strerror(g) : "no address");
            if (res)
                freeaddrinfo(res);
            free(s);
            return -EINVAL;
        }
        memcpy(&s->sa, res->ai_addr, res->ai_addrlen);
        s->salen = res->ai_addrlen;
        s->family = res->ai_family;
        freeaddrinfo(res);
    }
    int e = pthread_mutex_init(&s->lock, NULL);
    if (e != 0) {
        snprintf(err, errlen, "pthread_mutex_init: %s", strerror(e));
        free(s);
        return -e;
    }
    char *prefix;
    if (cfg->syslog_prefix) {
        prefix = cg_xstrdup(cfg->syslog_prefix);
    } else {
        const char *pn = cfg->proc_name     ? cfg->proc_name
                         : cfg->default_proc_name ? cfg->default_proc_name
                                                  : "gunicorn";
        prefix = cg_xstrdup(pn);
        /* Gunicorn turns ':' into '.' in the process name only (an app
         * name "app:application" would otherwise end the syslog tag) */
        for (char *c = prefix; *c; c++)
            if (*c == ':')
                *c = '.';
    }
    s->tag[0] = make_tag(prefix, "error");
    if (!cfg->disable_redirect_access_to_syslog)
        s->tag[1] = make_tag(prefix, "access");
    free(prefix);
    log->syslog = s;
    return 0;
}

static void drop_socket(cg_syslog_t *s, int64_t retry_at)
{
    if (s->fd >= 0)
        close(s->fd); /* only this process's reference: siblings keep theirs */
    s->fd = -1;
    s->connecting = false;
    s->npend = 0;
    s->retry_at_ms = retry_at;
}

void cg_syslog_free(cg_syslog_t *s)
{
    if (s == NULL)
        return;
    drop_socket(s, 0);
    pthread_mutex_destroy(&s->lock);
    free(s->tag[0]);
    free(s->tag[1]);
    free(s->pend);
    free(s);
}

bool cg_syslog_wants_access(const cg_syslog_t *s)
{
    return s != NULL && s->tag[1] != NULL;
}

/* A connect still in progress: finished now? Never waits. */
static bool stream_ready(cg_syslog_t *s, int64_t now)
{
    if (!s->connecting)
        return true;
    struct pollfd p = {.fd = s->fd, .events = POLLOUT};
    int r = poll(&p, 1, 0);
    if (r == 0)
        return false;
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (r < 0 || getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
        drop_socket(s, now + 1000);
        return false;
    }
    s->connecting = false;
    return true;
}

/* Make a socket: unix:// tries a datagram one, then (unless "#dgram") a
 * stream one, as SysLogHandler does; udp:// is left unconnected (sendto,
 * as Python); tcp:// starts a non-blocking connect. A failure waits a
 * second before the next attempt, so a missing daemon costs one syscall
 * or two per second, not per record. */
static void open_socket(cg_syslog_t *s, int64_t now)
{
    if (now < s->retry_at_ms)
        return;
    int types[2] = {s->addr.socktype ? s->addr.socktype : SOCK_DGRAM,
                    s->addr.is_unix && s->addr.socktype == 0 ? SOCK_STREAM : 0};
    for (int i = 0; i < 2 && types[i]; i++) {
        int fd = socket(s->family, types[i] | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        bool pending = false;
        if (s->addr.is_unix || types[i] == SOCK_STREAM) {
            if (connect(fd, (struct sockaddr *)&s->sa, s->salen) < 0) {
                /* a unix stream whose backlog is full says EAGAIN */
                if (types[i] == SOCK_STREAM && (errno == EINPROGRESS || errno == EAGAIN)) {
                    pending = true;
                } else {
                    close(fd);
                    continue;
                }
            }
        }
        s->fd = fd;
        s->socktype = types[i];
        s->owner = getpid();
        s->connecting = pending;
        s->npend = 0;
        if (pending)
            stream_ready(s, now); /* on loopback it is usually done already */
        return;
    }
    s->retry_at_ms = now + 1000;
}

static bool is_again(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS || e == EINTR;
}

/* Keep bytes for a stream that cannot take them now; false when full. */
static bool queue_bytes(cg_syslog_t *s, const char *p, size_t n)
{
    if (s->npend + n > CG_SYSLOG_PENDING_MAX)
        return false;
    if (s->pend == NULL)
        s->pend = cg_xmalloc(CG_SYSLOG_PENDING_MAX);
    memcpy(s->pend + s->npend, p, n);
    s->npend += n;
    return true;
}

/* Send what is queued; true when the queue is empty afterwards. */
static bool flush_pending(cg_syslog_t *s, int64_t now)
{
    while (s->npend > 0) {
        ssize_t w = send(s->fd, s->pend, s->npend, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (!is_again(errno))
                drop_socket(s, now + 1000);
            return false;
        }
        memmove(s->pend, s->pend + w, s->npend - (size_t)w);
        s->npend -= (size_t)w;
    }
    return true;
}

static void send_stream(cg_syslog_t *s, const char *rec, size_t n, int64_t now)
{
    if (!stream_ready(s, now) || !flush_pending(s, now)) {
        if (s->fd >= 0)
            (void)queue_bytes(s, rec, n); /* dropped when the queue is full */
        return;
    }
    ssize_t w = send(s->fd, rec, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
        if (is_again(errno))
            (void)queue_bytes(s, rec, n);
        else
            drop_socket(s, now + 1000);
        return;
    }
    /* The rest of a record the socket took only part of must follow it,
     * or the peer would read it run into the next one; if it cannot be
     * kept, end the connection rather than corrupt the stream. */
    if ((size_t)w < n && !queue_bytes(s, rec + w, n - (size_t)w))
        drop_socket(s, now + 1000);
}

static void send_record(cg_syslog_t *s, const char *rec, size_t n)
{
    int64_t now = now_ms();
    /* A stream inherited across fork is the parent's: make our own. */
    if (s->fd >= 0 && s->socktype == SOCK_STREAM && s->owner != getpid())
        drop_socket(s, 0);
    if (s->fd < 0)
        open_socket(s, now);
    if (s->fd < 0)
        return;
    if (s->socktype == SOCK_STREAM) {
        send_stream(s, rec, n, now);
        return;
    }
    ssize_t w;
    if (s->addr.is_unix) {
        w = send(s->fd, rec, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && !is_again(errno)) {
            /* the daemon restarted (a new socket at the path): reconnect
             * once and retry, as SysLogHandler does */
            drop_socket(s, 0);
            open_socket(s, now);
            if (s->fd < 0)
                return;
            if (s->socktype == SOCK_STREAM)
                send_stream(s, rec, n, now);
            else
                (void)send(s->fd, rec, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        return;
    }
    /* udp: unconnected, so an ICMP "port unreachable" never comes back as
     * an error on a later record; what is not taken now is lost */
    (void)sendto(s->fd, rec, n, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&s->sa,
                 s->salen);
}

/* Send a formatted record (n bytes at buf), under the lock: records come
 * from the loop and from pool threads at once. */
static void send_locked(cg_syslog_t *s, const char *buf, size_t n)
{
    if (pthread_mutex_lock(&s->lock) == 0) {
        send_record(s, buf, n);
        pthread_mutex_unlock(&s->lock);
    }
}

void cg_syslog_send(cg_syslog_t *s, bool access, cg_log_level_t level, const char *msg,
                    size_t len)
{
    const char *tag = s->tag[access ? 1 : 0];
    if (tag == NULL)
        return;
    char stackbuf[4096], *buf = stackbuf;
    size_t n = cg_syslog_format(buf, sizeof(stackbuf), s->facility, level, tag, (long)getpid(),
                                msg, len);
    if (n > sizeof(stackbuf)) {
        buf = cg_xmalloc(n);
        cg_syslog_format(buf, n, s->facility, level, tag, (long)getpid(), msg, len);
    }
    send_locked(s, buf, n);
    if (buf != stackbuf)
        free(buf);
}

const char *cg_syslog_tag(const cg_syslog_t *s, bool access)
{
    return s->tag[access ? 1 : 0];
}

void cg_syslog_send_text(cg_syslog_t *s, int severity, const char *text, size_t len)
{
    char head[16];
    int h = snprintf(head, sizeof(head), "<%d>", (s->facility << 3) | (severity & 7));
    if (h < 0 || (size_t)h >= sizeof(head))
        return;
    char stackbuf[4096], *buf = stackbuf;
    size_t n = (size_t)h + len + 1;
    if (n > sizeof(stackbuf))
        buf = cg_xmalloc(n);
    memcpy(buf, head, (size_t)h);
    memcpy(buf + h, text, len);
    buf[n - 1] = '\0'; /* part of the record: SysLogHandler.append_nul */
    send_locked(s, buf, n);
    if (buf != stackbuf)
        free(buf);
}
