/*
 * overload.c - the accept queue seen from the master: its depth in the
 * debug log, and connections refused fast once it is full.
 *
 * When every worker is busy, connections wait in the kernel's accept queue
 * of the listening socket, up to --backlog. Past that Linux drops the
 * client's SYN (or its handshake's last ACK) without a word, and the
 * client retransmits it after 1, 2, 4... seconds until its own connect
 * timeout: a minute and more of silence. The kernel can answer a reset
 * instead (net.ipv4.tcp_abort_on_overflow), but that switch is per network
 * namespace and needs root, so the master does the next best thing: on each
 * pass of its loop (every CG_OVERLOAD_POLL_MS while some queue holds a
 * connection) it reads each TCP listener's depth from TCP_INFO, and when a
 * queue is within an eighth of its limit it takes the connections above
 * that mark itself and answers them "503 Service Unavailable" (over TLS,
 * which the master does not speak: a reset). The queue keeps room, so new
 * clients are queued rather than dropped, and those refused learn at once
 * that the server is saturated. The kernel hands out the oldest connection
 * first: the ones refused are those that have waited longest. A burst of
 * SYNs larger than the free room still meets a full queue between two
 * passes: those clients retry after a second, as before. See
 * docs/load-balancing.md.
 */
#include "arbiter.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* How often the loop looks while a queue holds connections. */
#define CG_OVERLOAD_POLL_MS 50
/* At most this many connections shed per listener per pass. */
#define CG_OVERLOAD_MAX_SHED 1024
/* The debug line about a queue's depth, at most this often. */
#define CG_OVERLOAD_LOG_MS 1000

static const char cg__busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "Connection: close\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 20\r\n"
                               "Retry-After: 1\r\n"
                               "\r\n"
                               "Service Unavailable\n";

/* How many queued connections the master leaves to the workers: an eighth
 * of the queue (at least one place) is kept free, so that the SYNs arriving
 * between two passes find room instead of being dropped. */
static uint32_t cg__keep(uint32_t limit)
{
    uint32_t room = limit / 8 > 0 ? limit / 8 : 1;
    return limit > room ? limit - room : 0;
}

/* Answer one accepted connection and close it, never blocking the master:
 * the 503 fits in an empty socket buffer; what the client sent already is
 * read first so that the close is not a reset that destroys the answer. */
static void cg__refuse(int fd, bool tls)
{
    if (tls) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
        return;
    }
    char sink[4096];
    for (int i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
        ;
    ssize_t n = send(fd, cg__busy, sizeof(cg__busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n; /* a client already gone: nothing to tell it */
    (void)shutdown(fd, SHUT_WR);
    close(fd);
}

/* Take `n` connections off a full queue and refuse them. Returns how many
 * were refused (fewer when the workers took the rest meanwhile). */
static uint32_t cg__shed(cg_arbiter_t *a, const cg_listener_t *l, uint32_t n)
{
    uint32_t done = 0;
    while (done < n) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                cg_log_error(a->log, "accept() on a full queue failed: %s", strerror(errno));
            break;
        }
        cg__refuse(fd, a->tls != NULL);
        done++;
    }
    return done;
}

int cg_arbiter_overload_check(cg_arbiter_t *a)
{
    bool waiting = false;
    uint64_t now = cg_monotonic_ms();
    bool log_now = cg_log_enabled(a->log, CG_LOG_DEBUG) &&
                   now - a->overload.logged_ms >= CG_OVERLOAD_LOG_MS;
    for (size_t i = 0; i < a->nlisteners; i++) {
        const cg_listener_t *l = &a->listeners[i];
        uint32_t queued, limit;
        if (cg_net_backlog(l, &queued, &limit) < 0 || queued == 0)
            continue;
        waiting = true;
        if (log_now) {
            cg_log_debug(a->log, "Accept queue of %s: %u connections waiting for a worker "
                                 "(backlog %u)",
                         l->display, queued, limit);
            a->overload.logged_ms = now;
        }
        uint32_t keep = cg__keep(limit);
        if (queued <= keep)
            continue;
        uint32_t want = queued - keep;
        if (want > CG_OVERLOAD_MAX_SHED)
            want = CG_OVERLOAD_MAX_SHED;
        uint32_t shed = cg__shed(a, l, want);
        if (shed == 0)
            continue;
        a->overload.shed += shed;
        a->stats.shed += shed;
        if (now - a->overload.warned_ms >= CG_OVERLOAD_LOG_MS) {
            cg_log_warning(a->log, "Every worker is busy and the accept queue of %s is nearly "
                                   "full (%u of %u): %lu connection(s) refused",
                           l->display, queued, limit, (unsigned long)a->overload.shed);
            a->overload.shed = 0;
            a->overload.warned_ms = now;
        }
    }
    return waiting ? CG_OVERLOAD_POLL_MS : -1;
}
