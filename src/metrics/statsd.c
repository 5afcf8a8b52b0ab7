/*
 * statsd.c - the StatsD client behind Gunicorn's Statsd logger, in plain C.
 *
 * A datagram is sent as three iovecs, [prefix][name:value|type][|#tags], so
 * the parts fixed at start-up are never copied per metric and a request's
 * three metrics leave in one sendmmsg(2).
 */
/* sendmmsg() needs _GNU_SOURCE, which the build defines */
#include "statsd.h"

#include "../config/config.h"

#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct cg_statsd {
    int fd; /* -1 for a client that only formats */
    /* unix datagram sockets are not connected: each send names the path, so
     * an agent that starts (or restarts, binding the path anew) after us is
     * reached, where a connected socket would stay refused for good */
    bool unconnected;
    /* a UDP agent on this host: no MTU to respect, so batches use the unix
     * socket's packet size */
    bool loopback;
    struct sockaddr_un addr;
    socklen_t addrlen;
    char *prefix; /* after Gunicorn's dot rule */
    size_t plen;
    char *tags; /* "|#" + dogstatsd_tags, or "" */
    size_t tlen;
    bool ascii; /* prefix and tags are ASCII: else Gunicorn sends nothing */
};

/* The middle part of a datagram: "name:value|type". Names are Gunicorn's
 * or a hook's, values numbers: 512 bytes leave room; longer ones are
 * dropped rather than cut (a cut metric would be a wrong one). */
#define CG__BODY_MAX 512

static bool is_ascii(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] >= 0x80)
            return false;
    return true;
}

/* Writes s[0:k] + "." + s[m:] (truncated to cap - 1, NUL-terminated). */
static size_t prefix_out(const char *s, size_t n, size_t k, size_t m, char *out, size_t cap)
{
    size_t w = 0;
    for (size_t i = 0; i < k && w < cap - 1; i++)
        out[w++] = s[i];
    if (w < cap - 1)
        out[w++] = '.';
    for (size_t i = m; i < n && w < cap - 1; i++)
        out[w++] = s[i];
    out[w] = '\0';
    return w;
}

size_t cg_statsd_prefix(const char *prefix, char *out, size_t cap)
{
    const char *s = prefix ? prefix : "";
    size_t n = strlen(s);
    if (cap == 0)
        return 0;
    /* The regex's own backtracking order, so odd prefixes (a newline, which
     * "." does not match and "$" may stand before) come out as Python's:
     * .+ is s[0:j] without a newline, [^.]+ is s[j:k] without a dot, \.*
     * is s[k:m], and "$" holds at the end or before a final newline. The
     * first (greediest) split that matches is re.sub's. */
    const char *nl = memchr(s, '\n', n);
    size_t jmax = nl ? (size_t)(nl - s) : n;
    for (size_t j = jmax; j >= 1; j--) {
        for (size_t k = n; k > j; k--) {
            if (memchr(s + j, '.', k - j) != NULL)
                continue;
            size_t d = k;
            while (d < n && s[d] == '.')
                d++;
            for (size_t m = d;; m--) {
                if (m == n || (m + 1 == n && s[m] == '\n'))
                    return prefix_out(s, n, k, m, out, cap);
                if (m == k)
                    break;
            }
        }
    }
    size_t w = n < cap - 1 ? n : cap - 1;
    memcpy(out, s, w);
    out[w] = '\0';
    return w;
}

/* Decimal digits of v at out (no NUL); returns how many. The per-request
 * path formats its numbers by hand: snprintf() is most of its cost. */
static size_t utoa(uint64_t v, char *out)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

size_t cg_statsd_format_ms(int64_t us, char *out, size_t cap)
{
    if (us < 0)
        us = 0; /* a clock step backwards is not a negative duration */
    /* timedelta.seconds * 1000 + float(timedelta.microseconds) / 10 ** 3,
     * rounded twice as Python does it; timedelta.seconds leaves the days
     * out, so a request of more than a day is reported modulo one */
    uint64_t whole = (uint64_t)(us / 1000000) % 86400 * 1000 + (uint64_t)(us % 1000000) / 1000;
    unsigned frac = (unsigned)(us % 1000);
    double ms = (double)((us / 1000000) % 86400 * 1000) + (double)(us % 1000000) / 1e3;
    /* repr() is the shortest decimal that reads back as the same double.
     * The exact value has at most three decimals, and the double is almost
     * always the one nearest to it, so that decimal, trailing zeros dropped
     * (one kept, "3.0"), is tried first; else more digits until one reads
     * back. */
    int n;
    if (cap < 40)
        return out[0] = '\0', 0;
    n = (int)utoa(whole, out);
    out[n++] = '.';
    out[n++] = (char)('0' + frac / 100);
    out[n++] = (char)('0' + frac / 10 % 10);
    out[n++] = (char)('0' + frac % 10);
    out[n] = '\0';
    /* whole * 1000 + frac < 2^53, so both it and 1000 are exact doubles and
     * IEEE division rounds their quotient correctly: the very double
     * strtod(out) would give, without parsing text on every request */
    if ((double)(whole * 1000 + frac) / 1000.0 != ms) {
        for (int prec = 4; prec <= 17; prec++) {
            n = snprintf(out, cap, "%.*f", prec, ms);
            if (n < 0 || (size_t)n >= cap)
                return out[0] = '\0', 0;
            if (strtod(out, NULL) == ms)
                break;
        }
    }
    while (n > 2 && out[n - 1] == '0' && out[n - 2] != '.')
        n--;
    out[n] = '\0';
    return (size_t)n;
}

/* Python's str.split() whitespace among ASCII characters. */
static bool py_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

long cg_statsd_status_code(cg_str_t status)
{
    const char *p = status.ptr, *end = status.ptr + status.len;
    while (p < end && py_space((unsigned char)*p))
        p++;
    const char *tok = p;
    while (p < end && !py_space((unsigned char)*p))
        p++;
    /* int(): an optional "+", digits with single underscores between them
     * (a negative status is not one a server can send: treated as none) */
    const char *q = tok;
    if (q < p && *q == '+')
        q++;
    long v = 0;
    int digits = 0;
    for (; q < p; q++) {
        if (*q == '_' && digits > 0 && q + 1 < p && q[1] >= '0' && q[1] <= '9')
            continue;
        if (*q < '0' || *q > '9' || v > 99999999)
            return -1;
        v = v * 10 + (*q - '0');
        digits++;
    }
    return digits > 0 ? v : -1;
}

static const char *type_suffix(cg_statsd_type_t type)
{
    switch (type) {
    case CG_STATSD_GAUGE:
        return "|g";
    case CG_STATSD_COUNTER:
        return "|c|@1.0";
    case CG_STATSD_HISTOGRAM:
        return "|h";
    case CG_STATSD_TIMER:
    default:
        return "|ms";
    }
}

/* "name:value|type" into buf; its length, 0 when it does not fit or is not
 * ASCII. */
static size_t format_body(char *buf, size_t cap, cg_statsd_type_t type, const char *name,
                          size_t nlen, const char *value, size_t vlen)
{
    const char *suf = type_suffix(type);
    size_t slen = strlen(suf);
    if (nlen + 1 + vlen + slen > cap || !is_ascii(name, nlen) || !is_ascii(value, vlen))
        return 0;
    memcpy(buf, name, nlen);
    buf[nlen] = ':';
    memcpy(buf + nlen + 1, value, vlen);
    memcpy(buf + nlen + 1 + vlen, suf, slen);
    return nlen + 1 + vlen + slen;
}

size_t cg_statsd_format(const cg_statsd_t *s, char *buf, size_t cap, cg_statsd_type_t type,
                        const char *name, size_t nlen, const char *value, size_t vlen)
{
    char body[CG__BODY_MAX];
    size_t b = format_body(body, sizeof(body), type, name, nlen, value, vlen);
    if (b == 0 || !s->ascii || s->plen + b + s->tlen + 1 > cap)
        return 0;
    memcpy(buf, s->prefix, s->plen);
    memcpy(buf + s->plen, body, b);
    memcpy(buf + s->plen + b, s->tags, s->tlen);
    buf[s->plen + b + s->tlen] = '\0';
    return s->plen + b + s->tlen;
}

/* One datagram being assembled: its iovecs point at the client's prefix and
 * tags and at `body`. */
typedef struct {
    struct iovec iov[3];
    char body[CG__BODY_MAX];
} cg__dgram_t;

static bool dgram_init(const cg_statsd_t *s, cg__dgram_t *d, struct mmsghdr *m,
                       cg_statsd_type_t type, const char *name, size_t nlen, const char *value,
                       size_t vlen)
{
    size_t b = format_body(d->body, sizeof(d->body), type, name, nlen, value, vlen);
    if (b == 0)
        return false;
    d->iov[0] = (struct iovec){s->prefix, s->plen};
    d->iov[1] = (struct iovec){d->body, b};
    d->iov[2] = (struct iovec){s->tags, s->tlen};
    memset(m, 0, sizeof(*m));
    m->msg_hdr.msg_iov = d->iov;
    m->msg_hdr.msg_iovlen = 3;
    if (s->unconnected) {
        /* sendmsg() does not write through msg_name: the cast drops a const
         * the kernel interface lacks */
        m->msg_hdr.msg_name = (void *)&s->addr;
        m->msg_hdr.msg_namelen = s->addrlen;
    }
    return true;
}

static void send_all(const cg_statsd_t *s, struct mmsghdr *m, unsigned n)
{
    unsigned done = 0;
    bool retried = false;
    while (done < n) {
        int r = sendmmsg(s->fd, m + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r > 0) {
            done += (unsigned)r;
            continue;
        }
        /* ECONNREFUSED on a connected UDP socket reports an ICMP "port
         * unreachable" for an earlier datagram, and clears it: these ones may
         * still get through (an agent that just started), so once more. */
        if (r < 0 && (errno == EINTR || (errno == ECONNREFUSED && !retried))) {
            retried = retried || errno == ECONNREFUSED;
            continue;
        }
        /* Anything else (nobody listening, EAGAIN on a full receive buffer,
         * a unix path gone) drops the rest: StatsD is lossy by design, and
         * a request must never wait or fail for its metrics. */
        return;
    }
}

void cg_statsd_send(const cg_statsd_t *s, cg_statsd_type_t type, const char *name, size_t nlen,
                    const char *value, size_t vlen)
{
    if (s == NULL || s->fd < 0 || !s->ascii)
        return;
    cg__dgram_t d;
    struct mmsghdr m;
    if (dgram_init(s, &d, &m, type, name, nlen, value, vlen))
        send_all(s, &m, 1);
}

void cg_statsd_send_long(const cg_statsd_t *s, cg_statsd_type_t type, const char *name,
                         long value)
{
    if (s == NULL)
        return;
    char v[24];
    int n = snprintf(v, sizeof(v), "%ld", value);
    if (n > 0 && (size_t)n < sizeof(v))
        cg_statsd_send(s, type, name, strlen(name), v, (size_t)n);
}

void cg_statsd_count(const cg_statsd_t *s, const char *name)
{
    if (s != NULL && name != NULL)
        cg_statsd_send(s, CG_STATSD_COUNTER, name, strlen(name), "1", 1);
}

const char *cg_statsd_level_counter(cg_log_level_t level)
{
    switch (level) {
    case CG_LOG_WARNING:
        return "gunicorn.log.warning";
    case CG_LOG_ERROR:
        return "gunicorn.log.error";
    case CG_LOG_CRITICAL:
        return "gunicorn.log.critical";
    default:
        return NULL;
    }
}

void cg_statsd_request(const cg_statsd_t *s, long code, int64_t request_us)
{
    if (s == NULL || s->fd < 0 || !s->ascii || code < 0)
        return;
    static const char status[] = "gunicorn.request.status.";
    char ms[40], name[sizeof(status) + 24];
    size_t mlen = cg_statsd_format_ms(request_us, ms, sizeof(ms));
    memcpy(name, status, sizeof(status) - 1);
    size_t nlen = sizeof(status) - 1 + utoa((uint64_t)code, name + sizeof(status) - 1);
    if (mlen == 0)
        return;
    /* Gunicorn's order: duration, requests, status */
    cg__dgram_t d[3];
    struct mmsghdr m[3];
    static const char dur[] = "gunicorn.request.duration", req[] = "gunicorn.requests";
    if (!dgram_init(s, &d[0], &m[0], CG_STATSD_TIMER, dur, sizeof(dur) - 1, ms, mlen) ||
        !dgram_init(s, &d[1], &m[1], CG_STATSD_COUNTER, req, sizeof(req) - 1, "1", 1) ||
        !dgram_init(s, &d[2], &m[2], CG_STATSD_COUNTER, name, nlen, "1", 1))
        return;
    send_all(s, m, 3);
}

/* ---- batching ---- */

/* Distinct status codes one packet's counters may hold; a seventeenth
 * sends the packet first. */
#define CG__STATUS_SLOTS 16
/* The longest counter value: UINT64_MAX's 20 digits. */
#define CG__COUNT_DIGITS 20

static const char cg__req_name[] = "gunicorn.requests";
static const char cg__status_name[] = "gunicorn.request.status.";
static const char cg__dur_name[] = "gunicorn.request.duration";

struct cg_statsd_batch {
    const cg_statsd_t *s;
    /* app threads add, the loop thread flushes: held only to copy lines in
     * or the packet out, never across a system call */
    pthread_mutex_t lock;
    uint64_t interval_us;
    uint64_t first_us; /* when the oldest metric not yet sent was added */
    size_t cap;        /* the packet size */
    size_t outcap;     /* a packet with its counter lines, at most */
    size_t len;
    /* The request counters are summed until their packet leaves: a StatsD
     * agent adds up a counter's values over its own flush interval (10 s
     * typically), so "gunicorn.requests:38|c" tells it what 38 lines of
     * ":1|c" did, in a fraction of the bytes and datagrams. */
    uint64_t requests;
    unsigned nstatus;
    struct {
        long code;
        uint64_t n;
    } status[CG__STATUS_SLOTS];
    size_t reserve; /* the most bytes the counter lines can take */
    char buf[];
};

/* The most bytes "\n<prefix><name>:<count>|c|@1.0<tags>" can take. */
static size_t counter_line_max(const cg_statsd_t *s, size_t nlen)
{
    return 1 + s->plen + nlen + 1 + CG__COUNT_DIGITS + strlen(type_suffix(CG_STATSD_COUNTER)) +
           s->tlen;
}

/* Decimal digits of a status code as Gunicorn names it (what the app gave,
 * 3 digits in practice). */
static size_t status_name(long code, char *out)
{
    memcpy(out, cg__status_name, sizeof(cg__status_name) - 1);
    return sizeof(cg__status_name) - 1 + utoa((uint64_t)code, out + sizeof(cg__status_name) - 1);
}

/* One datagram of `len` bytes (lines already joined). */
static void send_raw(const cg_statsd_t *s, const char *p, size_t len)
{
    struct iovec iov = {(void *)p, len}; /* sendmsg() only reads it */
    struct mmsghdr m;
    memset(&m, 0, sizeof(m));
    m.msg_hdr.msg_iov = &iov;
    m.msg_hdr.msg_iovlen = 1;
    if (s->unconnected) {
        m.msg_hdr.msg_name = (void *)&s->addr;
        m.msg_hdr.msg_namelen = s->addrlen;
    }
    send_all(s, &m, 1);
}

/* text's lines in as few datagrams of at most cap bytes as whole lines
 * allow; a line longer than cap alone in one (what Gunicorn would send). */
static void send_packed(const cg_statsd_t *s, const char *text, size_t len, size_t cap)
{
    const char *p = text, *end = text + len;
    while (p < end) {
        /* the first line whatever its length, then whole lines while the
         * datagram stays within cap */
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl != NULL ? nl : end;
        while (e < end) {
            const char *next = memchr(e + 1, '\n', (size_t)(end - e - 1));
            const char *ne = next != NULL ? next : end;
            if ((size_t)(ne - p) > cap)
                break;
            e = ne;
        }
        if (e > p)
            send_raw(s, p, (size_t)(e - p));
        p = e < end ? e + 1 : end;
    }
}

cg_statsd_batch_t *cg_statsd_batch_new_sized(const cg_statsd_t *s, long interval_ms,
                                             size_t packet)
{
    if (s == NULL || s->fd < 0 || !s->ascii || interval_ms <= 0 || packet == 0)
        return NULL;
    char name[sizeof(cg__status_name) + 24];
    size_t counters = counter_line_max(s, sizeof(cg__req_name) - 1) +
                      CG__STATUS_SLOTS * counter_line_max(s, status_name(LONG_MAX, name));
    cg_statsd_batch_t *b = cg_xmalloc(sizeof(*b) + packet + counters);
    b->s = s;
    b->interval_us = (uint64_t)interval_ms * 1000;
    b->first_us = 0;
    b->cap = packet;
    b->outcap = packet + counters;
    b->len = 0;
    b->requests = 0;
    b->nstatus = 0;
    b->reserve = 0;
    int e = pthread_mutex_init(&b->lock, NULL);
    if (e != 0) {
        /* only ENOMEM/EAGAIN, which cg_xmalloc's rule treats as fatal too */
        fprintf(stderr, "statsd: pthread_mutex_init: %s\n", strerror(e));
        abort();
    }
    return b;
}

cg_statsd_batch_t *cg_statsd_batch_new(const cg_statsd_t *s, long interval_ms)
{
    if (s == NULL)
        return NULL;
    return cg_statsd_batch_new_sized(s, interval_ms,
                                     s->unconnected || s->loopback ? CG_STATSD_UNIX_PACKET
                                                                   : CG_STATSD_UDP_PACKET);
}

static bool pending_locked(const cg_statsd_batch_t *b)
{
    return b->len > 0 || b->requests > 0;
}

/* "\n" (unless first) + one counter line at out + n; the new length. */
static size_t put_counter(const cg_statsd_t *s, char *out, size_t n, size_t cap, const char *name,
                          size_t nlen, uint64_t count)
{
    char v[CG__COUNT_DIGITS + 1];
    size_t vlen = utoa(count, v);
    size_t at = n > 0 ? n + 1 : n;
    if (at >= cap)
        return n;
    size_t l = cg_statsd_format(s, out + at, cap - at, CG_STATSD_COUNTER, name, nlen, v, vlen);
    if (l == 0)
        return n; /* cannot happen: counter_line_max() reserved it */
    if (n > 0)
        out[n] = '\n';
    return at + l;
}

/* Move the buffer and the summed counters into out (b->outcap bytes); its
 * length. Lock held. */
static size_t take_locked(cg_statsd_batch_t *b, char *out)
{
    size_t n = b->len;
    memcpy(out, b->buf, n);
    if (b->requests > 0)
        n = put_counter(b->s, out, n, b->outcap, cg__req_name, sizeof(cg__req_name) - 1,
                        b->requests);
    for (unsigned i = 0; i < b->nstatus; i++) {
        char name[sizeof(cg__status_name) + 24];
        size_t nlen = status_name(b->status[i].code, name);
        n = put_counter(b->s, out, n, b->outcap, name, nlen, b->status[i].n);
    }
    b->len = 0;
    b->requests = 0;
    b->nstatus = 0;
    b->reserve = 0;
    return n;
}

/* Room for a packet on the stack when it is small enough, else the heap. */
#define CG__OUT_STACK 16384

void cg_statsd_batch_flush(cg_statsd_batch_t *b)
{
    if (b == NULL)
        return;
    char out[CG__OUT_STACK];
    char *o = b->outcap <= sizeof(out) ? out : cg_xmalloc(b->outcap);
    pthread_mutex_lock(&b->lock);
    size_t n = take_locked(b, o);
    pthread_mutex_unlock(&b->lock);
    if (n > 0)
        send_packed(b->s, o, n, b->cap);
    if (o != out)
        free(o);
}

static long due_locked(const cg_statsd_batch_t *b, uint64_t now_us)
{
    if (!pending_locked(b))
        return -1;
    uint64_t at = b->first_us + b->interval_us;
    /* rounded up: a loop woken a little early must not spin on a 0 */
    return now_us >= at ? 0 : (long)((at - now_us + 999) / 1000);
}

long cg_statsd_batch_due_ms(cg_statsd_batch_t *b, uint64_t now_us)
{
    if (b == NULL)
        return -1;
    pthread_mutex_lock(&b->lock);
    long d = due_locked(b, now_us);
    pthread_mutex_unlock(&b->lock);
    return d;
}

long cg_statsd_batch_flush_due(cg_statsd_batch_t *b, uint64_t now_us)
{
    long d = cg_statsd_batch_due_ms(b, now_us);
    if (d != 0)
        return d;
    cg_statsd_batch_flush(b);
    /* lines another thread added meanwhile start a new interval */
    return cg_statsd_batch_due_ms(b, now_us);
}

/* Lines of text (len bytes) into the buffer, taking the packet out first
 * into o when they would not fit beside it (with extra more bytes of
 * counters) or it is due. Lock held; returns the bytes taken into o. */
static size_t append_locked(cg_statsd_batch_t *b, const char *text, size_t len, size_t extra,
                            uint64_t now_us, char *o)
{
    size_t n = 0;
    if (pending_locked(b) &&
        (b->len + 1 + len + b->reserve + extra > b->cap || due_locked(b, now_us) == 0))
        n = take_locked(b, o);
    if (!pending_locked(b))
        b->first_us = now_us;
    if (len > 0) {
        if (b->len > 0)
            b->buf[b->len++] = '\n';
        memcpy(b->buf + b->len, text, len);
        b->len += len;
    }
    return n;
}

void cg_statsd_batch_add(cg_statsd_batch_t *b, const char *text, size_t len, uint64_t now_us)
{
    if (b == NULL || len == 0)
        return;
    if (len > b->cap) {
        /* more than one packet's worth at once (a huge prefix or tags):
         * what is buffered goes first, then line by line, each line alone,
         * so no datagram holds more than a packet unless one line does */
        cg_statsd_batch_flush(b);
        send_packed(b->s, text, len, 1);
        return;
    }
    char out[CG__OUT_STACK];
    char *o = b->outcap <= sizeof(out) ? out : cg_xmalloc(b->outcap);
    pthread_mutex_lock(&b->lock);
    size_t n = append_locked(b, text, len, 0, now_us, o);
    pthread_mutex_unlock(&b->lock);
    if (n > 0)
        send_packed(b->s, o, n, b->cap);
    if (o != out)
        free(o);
}

void cg_statsd_batch_free(cg_statsd_batch_t *b)
{
    if (b == NULL)
        return;
    cg_statsd_batch_flush(b);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* Where code's counter is among the packet's, or -1. Lock held. */
static int status_slot_locked(const cg_statsd_batch_t *b, long code)
{
    for (unsigned i = 0; i < b->nstatus; i++)
        if (b->status[i].code == code)
            return (int)i;
    return -1;
}

void cg_statsd_batch_request(cg_statsd_batch_t *b, long code, int64_t request_us,
                             uint64_t now_us)
{
    if (b == NULL || code < 0)
        return;
    const cg_statsd_t *s = b->s;
    char ms[40], line[1024], name[sizeof(cg__status_name) + 24];
    size_t mlen = cg_statsd_format_ms(request_us, ms, sizeof(ms));
    if (mlen == 0)
        return;
    size_t l = cg_statsd_format(s, line, sizeof(line), CG_STATSD_TIMER, cg__dur_name,
                                sizeof(cg__dur_name) - 1, ms, mlen);
    size_t req_max = counter_line_max(s, sizeof(cg__req_name) - 1);
    size_t st_max = counter_line_max(s, status_name(code, name));
    if (l == 0 || l + req_max + st_max > b->cap) {
        /* a prefix or tags too long to batch: Gunicorn's datagrams, after
         * what was buffered */
        cg_statsd_batch_flush(b);
        cg_statsd_request(s, code, request_us);
        return;
    }
    char out[CG__OUT_STACK];
    char *o = b->outcap <= sizeof(out) ? out : cg_xmalloc(b->outcap);
    pthread_mutex_lock(&b->lock);
    int slot = status_slot_locked(b, code);
    size_t extra = (b->requests == 0 ? req_max : 0) + (slot < 0 ? st_max : 0);
    size_t n = 0;
    if (slot < 0 && b->nstatus == CG__STATUS_SLOTS)
        n = take_locked(b, o);
    n += append_locked(b, line, l, extra, now_us, o + n);
    if (n > 0) {
        /* the counters were taken: this request's are new ones */
        slot = -1;
        extra = req_max + st_max;
    }
    b->reserve += extra;
    b->requests++;
    if (slot < 0) {
        slot = (int)b->nstatus++;
        b->status[slot].code = code;
        b->status[slot].n = 0;
    }
    b->status[slot].n++;
    pthread_mutex_unlock(&b->lock);
    if (n > 0)
        send_packed(s, o, n, b->cap);
    if (o != out)
        free(o);
}

long cg_statsd_backlog(const cg_listener_t *l, size_t n)
{
    long sum = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t queued, limit;
        int r = cg_net_backlog(&l[i], &queued, &limit);
        if (r == -EOPNOTSUPP)
            sum -= 1; /* Gunicorn's BaseSocket.get_backlog() for a unix socket */
        else if (r == 0)
            sum += (long)queued; /* a failure counts 0, as in Gunicorn */
    }
    return sum;
}

static cg_statsd_t *client_new(const char *prefix, const char *tags)
{
    cg_statsd_t *s = cg_xmalloc(sizeof(*s));
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    size_t pn = prefix ? strlen(prefix) : 0;
    s->prefix = cg_xmalloc(pn + 3);
    s->plen = cg_statsd_prefix(prefix ? prefix : "", s->prefix, pn + 3);
    size_t tn = tags ? strlen(tags) : 0;
    s->tags = cg_xmalloc(tn + 3);
    if (tn > 0) {
        memcpy(s->tags, "|#", 2);
        memcpy(s->tags + 2, tags, tn);
        s->tlen = tn + 2;
    }
    s->tags[s->tlen] = '\0';
    s->ascii = is_ascii(s->prefix, s->plen) && is_ascii(s->tags, s->tlen);
    return s;
}

cg_statsd_t *cg_statsd_new_unbound(const char *prefix, const char *tags)
{
    return client_new(prefix, tags);
}

cg_statsd_t *cg_statsd_new_fd(int fd, const char *prefix, const char *tags)
{
    cg_statsd_t *s = client_new(prefix, tags);
    s->fd = fd;
    return s;
}

static int open_unix(cg_statsd_t *s, const char *path, char *err, size_t errlen)
{
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(s->addr.sun_path)) {
        snprintf(err, errlen, "statsd: unix socket path too long or empty: '%s'", path);
        return -ENAMETOOLONG;
    }
    s->addr.sun_family = AF_UNIX;
    memcpy(s->addr.sun_path, path, n + 1);
    s->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    s->unconnected = true;
    s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        int e = errno;
        snprintf(err, errlen, "statsd: socket(AF_UNIX): %s", strerror(e));
        return -e;
    }
    return 0;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

static int open_udp(cg_statsd_t *s, const char *host, long port, char *err, size_t errlen)
{
    char service[16];
    snprintf(service, sizeof(service), "%ld", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM};
    struct addrinfo *res = NULL;
    int gr = getaddrinfo(host, service, &hints, &res);
    if (gr != 0) {
        snprintf(err, errlen, "statsd: cannot resolve %s:%ld: %s", host, port,
                 gr == EAI_SYSTEM ? strerror(errno) : gai_strerror(gr));
        return -EHOSTUNREACH;
    }
    int e = EADDRNOTAVAIL;
    /* connect(): the address is resolved and routed once, and the kernel
     * filters what could come back; the first address that takes wins */
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            s->fd = fd;
            s->loopback = is_loopback(ai->ai_addr);
            break;
        }
        e = errno;
        if (close(fd) < 0) {
            /* nothing was sent on it: nothing is lost */
        }
    }
    freeaddrinfo(res);
    if (s->fd < 0) {
        snprintf(err, errlen, "statsd: cannot connect to %s:%ld: %s", host, port, strerror(e));
        return -e;
    }
    return 0;
}

int cg_statsd_open(cg_statsd_t **out, const char *host, const char *prefix, const char *tags,
                   char *err, size_t errlen)
{
    *out = NULL;
    if (host == NULL)
        return 0;
    char *h = NULL, *path = NULL;
    long port = 0;
    if (cg_config_statsd_address(host, &h, &port, &path) < 0) {
        snprintf(err, errlen, "statsd: cannot send to '%s'", host);
        return -EINVAL;
    }
    cg_statsd_t *s = client_new(prefix, tags);
    int r = path != NULL ? open_unix(s, path, err, errlen) : open_udp(s, h, port, err, errlen);
    free(h);
    free(path);
    if (r < 0) {
        cg_statsd_close(s);
        return r;
    }
    *out = s;
    return 0;
}

void cg_statsd_close(cg_statsd_t *s)
{
    if (s == NULL)
        return;
    if (s->fd >= 0 && close(s->fd) < 0) {
        /* a datagram socket has nothing left to flush: nothing is lost */
    }
    free(s->prefix);
    free(s->tags);
    free(s);
}
