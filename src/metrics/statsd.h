/*
 * statsd.h - Gunicorn's StatsD instrumentation (gunicorn/instrument/statsd.py),
 * sent from C.
 *
 * When statsd_host is set, Gunicorn swaps its logger for one that also sends
 * metrics: per request a timer, a counter and a per-status counter; a gauge
 * of the worker count from the master; a counter per warning, error,
 * exception and critical log call; and whatever a log call's
 * extra={"metric", "value", "mtype"} names. Each metric is one datagram
 * "<prefix><name>:<value>|<type>[|#<dogstatsd_tags>]".
 *
 * The client is created once in the master, before any fork, and never
 * changes afterwards (Gunicorn keeps its logger across HUP), so every
 * process and thread may send through it at once without a lock: sending is
 * one non-blocking sendmmsg(2) per call, whose failures (nobody listening,
 * a full receive buffer) are dropped, as StatsD datagrams are meant to be.
 * Nothing here needs Python or the GIL.
 *
 * A worker batches its request metrics (cg_statsd_batch_t): the lines of
 * many requests leave newline-separated in one datagram, which every StatsD
 * server splits again (Etsy statsd >= 0.4, Telegraf, the Datadog agent,
 * statsd_exporter). The kernel's cost is per datagram, not per byte, so this
 * is most of what metrics cost a request. See docs/statsd.md.
 */
#ifndef CG_STATSD_H
#define CG_STATSD_H

#include "../cg.h"
#include "../log/log.h"
#include "../net/net.h"

typedef struct cg_statsd cg_statsd_t;

typedef enum cg_statsd_type {
    CG_STATSD_GAUGE,     /* "|g" */
    CG_STATSD_COUNTER,   /* "|c|@1.0" (Gunicorn always writes its sampling rate) */
    CG_STATSD_HISTOGRAM, /* "|h" */
    CG_STATSD_TIMER,     /* "|ms" */
} cg_statsd_type_t;

/*
 * Create the client for statsd_host `host` (as the statsd_address validator
 * accepts it: "HOST[:PORT]" with port 8125 by default, "[v6]:PORT",
 * "unix:PATH", "unix://PATH"), with Gunicorn's statsd_prefix and
 * dogstatsd_tags. A host name is resolved now, once. Returns 0 with *out set
 * (NULL when host is NULL: no metrics), or -errno with a message in err when
 * the address cannot be resolved or no socket can be made; the caller then
 * runs without metrics, as Gunicorn does when its connect() fails.
 */
int cg_statsd_open(cg_statsd_t **out, const char *host, const char *prefix, const char *tags,
                   char *err, size_t errlen);
/* Close the socket and free. NULL is fine. */
void cg_statsd_close(cg_statsd_t *s);

/*
 * Send one metric; value is the text Python's str.format would give it.
 * Does nothing when s is NULL, and drops metrics whose text is not ASCII
 * (Gunicorn's encode("ascii") fails on them) or does not fit a datagram.
 */
void cg_statsd_send(const cg_statsd_t *s, cg_statsd_type_t type, const char *name, size_t nlen,
                    const char *value, size_t vlen);
/* A gauge/counter/histogram of an integer value (the master's metrics). */
void cg_statsd_send_long(const cg_statsd_t *s, cg_statsd_type_t type, const char *name,
                         long value);

/*
 * The three metrics of a served request, in one system call: the timer
 * gunicorn.request.duration (request_us as Gunicorn's milliseconds float),
 * gunicorn.requests and gunicorn.request.status.<code>. code is what
 * cg_statsd_status_code() read from the status line; when it is negative
 * (Gunicorn's int() raised before anything was sent) nothing is sent.
 */
void cg_statsd_request(const cg_statsd_t *s, long code, int64_t request_us);

/* The counter Gunicorn's logger increments for a record at this level from
 * its warning()/error()/critical() methods ("gunicorn.log.warning" ...), or
 * NULL for the levels it does not count. */
const char *cg_statsd_level_counter(cg_log_level_t level);
/* Increment counter `name` by 1 (NULL s or name: nothing). */
void cg_statsd_count(const cg_statsd_t *s, const char *name);

/*
 * Gunicorn's optional gunicorn.backlog metric: the connections waiting in
 * the accept queues of the TCP listeners (TCP_INFO's tcpi_unacked on a
 * listening socket), summed as Gunicorn sums get_backlog(): a unix
 * listener counts -1. Returns the sum; negative means "do not report".
 */
long cg_statsd_backlog(const cg_listener_t *l, size_t n);

/* ---- batching, in a worker ---- */

/* The largest datagram a batch sends: 1432 bytes over UDP (what fits an
 * Ethernet MTU of 1500 after IPv6/UDP headers and options, so nothing is
 * fragmented; the DogStatsD clients' default too), 8192 over a unix socket
 * (no MTU there; the Datadog agent reads unix datagrams into 8 KiB buffers
 * by default, statsd_exporter and Telegraf into 64 KiB). */
#define CG_STATSD_UDP_PACKET 1432
#define CG_STATSD_UNIX_PACKET 8192

typedef struct cg_statsd_batch cg_statsd_batch_t;

/*
 * A worker's buffer of metric lines for client s, sent as one datagram of at
 * most the packet size above when the next line would not fit, when the
 * oldest line is interval_ms old (checked as lines are added, and by the
 * worker's loop through cg_statsd_batch_due_ms()), and by
 * cg_statsd_batch_flush(). Thread-safe: a mutex held while lines are
 * copied in or out; the datagram is sent after it is released. Returns NULL
 * (send each metric at once, Gunicorn's way) when s is NULL or cannot send,
 * or interval_ms is 0. Allocation failure aborts (cg_xmalloc).
 */
cg_statsd_batch_t *cg_statsd_batch_new(const cg_statsd_t *s, long interval_ms);
/* The same with another packet size, for tests. */
cg_statsd_batch_t *cg_statsd_batch_new_sized(const cg_statsd_t *s, long interval_ms,
                                             size_t packet);
/* Send what is buffered, then free. NULL is fine. Not while other threads
 * may still add (the worker keeps it when pool threads outlive its loop). */
void cg_statsd_batch_free(cg_statsd_batch_t *b);
/* Send what is buffered now (nothing when empty). */
void cg_statsd_batch_flush(cg_statsd_batch_t *b);
/*
 * How many ms from now_us (CLOCK_MONOTONIC, cg_monotonic_us) the buffer is
 * due: -1 when it is empty, 0 when it is due now. A loop that may block
 * waits at most that long, then calls cg_statsd_batch_flush_due().
 */
long cg_statsd_batch_due_ms(cg_statsd_batch_t *b, uint64_t now_us);
/* Send the buffer if it is due at now_us; returns cg_statsd_batch_due_ms()
 * after that (-1 when nothing is left). */
long cg_statsd_batch_flush_due(cg_statsd_batch_t *b, uint64_t now_us);
/*
 * Add text (one or more metric lines separated by '\n', no trailing one) at
 * now_us. A line that does not fit an empty packet leaves in a datagram of
 * its own (what Gunicorn would send), after what was buffered.
 */
void cg_statsd_batch_add(cg_statsd_batch_t *b, const char *text, size_t len, uint64_t now_us);
/* cg_statsd_request()'s three metrics into the batch (now_us: when the
 * request ended). */
void cg_statsd_batch_request(cg_statsd_batch_t *b, long code, int64_t request_us,
                             uint64_t now_us);

/* ---- formatting, exposed for unit tests ---- */

/* Gunicorn's prefix rule, re.sub(r"^(.+[^.]+)\.*$", r"\g<1>.", prefix): a
 * prefix of two or more characters ending in a non-dot gets one dot, trailing
 * dots collapse to one; shorter ones stay as written ("a" stays "a"). Writes
 * it NUL-terminated into out (truncated to cap - 1); returns its length. */
size_t cg_statsd_prefix(const char *prefix, char *out, size_t cap);
/* repr() of Gunicorn's duration_in_ms for a request of `us` microseconds:
 * seconds * 1000 + microseconds / 1e3 as a Python float ("12.345", "3.0").
 * Returns the length written (NUL-terminated; 0 when cap < 40). */
size_t cg_statsd_format_ms(int64_t us, char *out, size_t cap);
/* The integer Gunicorn reads from a status line (int(status.split()[0])),
 * or -1 when there is none. */
long cg_statsd_status_code(cg_str_t status);
/* One datagram's text into buf; returns its length, 0 when it does not fit
 * or is not ASCII. */
size_t cg_statsd_format(const cg_statsd_t *s, char *buf, size_t cap, cg_statsd_type_t type,
                        const char *name, size_t nlen, const char *value, size_t vlen);
/* A client that only formats (no socket), for tests. */
cg_statsd_t *cg_statsd_new_unbound(const char *prefix, const char *tags);
/* A client sending on fd (a connected datagram socket; the client owns it),
 * for tests. */
cg_statsd_t *cg_statsd_new_fd(int fd, const char *prefix, const char *tags);

#endif
