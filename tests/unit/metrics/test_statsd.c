/*
 * test_statsd.c - the StatsD client: Gunicorn's metric text (prefix rule,
 * types, tags, the duration as Python prints it, the status code) and real
 * datagrams over UDP and unix sockets, with and without a receiver; the
 * worker's batch (where packets split, their size limit, the interval).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../../src/metrics/statsd.h"

#define S(lit) ((cg_str_t){(lit), sizeof(lit) - 1})

static void test_prefix_rule(void **state)
{
    /* expected values are Python's re.sub(r"^(.+[^.]+)\.*$", r"\g<1>.", p) */
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},           {"a", "a"},           {"a.", "a."},         {"ab", "ab."},
        {"ab.", "ab."},     {"ab...", "ab."},     {".", "."},           {"..", ".."},
        {".a", ".a."},      {"a.b", "a.b."},      {"app.web", "app.web."},
        {"x.y.", "x.y."},   {"ab\n", "ab\n."},    {"a\nb", "a\nb."},    {"ab.\n", "ab.\n."},
        {"a\n", "a\n."},    {"\nab", "\nab"},     {"a.\n.", "a.\n."},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[32];
        size_t n = cg_statsd_prefix(cases[i].in, out, sizeof(out));
        assert_string_equal(out, cases[i].out);
        assert_int_equal(n, strlen(cases[i].out));
    }
    char tiny[3];
    assert_int_equal(cg_statsd_prefix("abcdef", tiny, sizeof(tiny)), 2);
    assert_string_equal(tiny, "ab");
}

static void test_duration_repr(void **state)
{
    /* repr(td.seconds * 1000 + float(td.microseconds) / 10 ** 3) */
    static const struct {
        int64_t us;
        const char *repr;
    } cases[] = {
        {0, "0.0"},
        {1, "0.001"},
        {999, "0.999"},
        {1000, "1.0"},
        {1234, "1.234"},
        {12345, "12.345"},
        {250000, "250.0"},
        {1000000, "1000.0"},
        {1000001, "1000.001"},
        {5000123, "5000.123"},
        {123456789, "123456.789"},
        {86399999999LL, "86399999.999"},
        {86400000001LL, "0.001"}, /* timedelta.seconds leaves the day out */
        {-5, "0.0"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[40];
        size_t n = cg_statsd_format_ms(cases[i].us, out, sizeof(out));
        assert_string_equal(out, cases[i].repr);
        assert_int_equal(n, strlen(cases[i].repr));
    }
}

static void test_status_code(void **state)
{
    (void)state;
    assert_int_equal(cg_statsd_status_code(S("200 OK")), 200);
    assert_int_equal(cg_statsd_status_code(S("404 Not Found")), 404);
    assert_int_equal(cg_statsd_status_code(S("  503\tBusy")), 503);
    assert_int_equal(cg_statsd_status_code(S("200")), 200);
    assert_int_equal(cg_statsd_status_code(S("+201 Created")), 201);
    assert_int_equal(cg_statsd_status_code(S("2_04 No")), 204); /* int() takes it */
    assert_int_equal(cg_statsd_status_code(S("-")), -1);
    assert_int_equal(cg_statsd_status_code(S("")), -1);
    assert_int_equal(cg_statsd_status_code(S("20x OK")), -1);
    assert_int_equal(cg_statsd_status_code(S("2__0 OK")), -1);
    assert_int_equal(cg_statsd_status_code(S("_200 OK")), -1);
    assert_int_equal(cg_statsd_status_code(S("OK 200")), -1);
}

static void test_format_types_prefix_tags(void **state)
{
    char buf[256];
    (void)state;
    cg_statsd_t *s = cg_statsd_new_unbound("web", "env:prod,svc:a");
    assert_non_null(s);
    cg_statsd_format(s, buf, sizeof(buf), CG_STATSD_GAUGE, "gunicorn.workers", 16, "4", 1);
    assert_string_equal(buf, "web.gunicorn.workers:4|g|#env:prod,svc:a");
    cg_statsd_format(s, buf, sizeof(buf), CG_STATSD_COUNTER, "gunicorn.requests", 17, "1", 1);
    assert_string_equal(buf, "web.gunicorn.requests:1|c|@1.0|#env:prod,svc:a");
    cg_statsd_format(s, buf, sizeof(buf), CG_STATSD_HISTOGRAM, "gunicorn.backlog", 16, "0", 1);
    assert_string_equal(buf, "web.gunicorn.backlog:0|h|#env:prod,svc:a");
    cg_statsd_format(s, buf, sizeof(buf), CG_STATSD_TIMER, "gunicorn.request.duration", 25,
                     "1.5", 3);
    assert_string_equal(buf, "web.gunicorn.request.duration:1.5|ms|#env:prod,svc:a");
    /* not ASCII: Gunicorn's encode("ascii") fails, nothing is sent */
    assert_int_equal(cg_statsd_format(s, buf, sizeof(buf), CG_STATSD_GAUGE, "caf\xc3\xa9", 5,
                                      "1", 1),
                     0);
    /* too small a buffer: nothing, rather than a cut metric */
    assert_int_equal(cg_statsd_format(s, buf, 20, CG_STATSD_GAUGE, "gunicorn.workers", 16, "4", 1),
                     0);
    cg_statsd_close(s);

    s = cg_statsd_new_unbound("", "");
    cg_statsd_format(s, buf, sizeof(buf), CG_STATSD_COUNTER, "gunicorn.log.error", 18, "1", 1);
    assert_string_equal(buf, "gunicorn.log.error:1|c|@1.0");
    cg_statsd_close(s);

    assert_string_equal(cg_statsd_level_counter(CG_LOG_WARNING), "gunicorn.log.warning");
    assert_string_equal(cg_statsd_level_counter(CG_LOG_ERROR), "gunicorn.log.error");
    assert_string_equal(cg_statsd_level_counter(CG_LOG_CRITICAL), "gunicorn.log.critical");
    assert_null(cg_statsd_level_counter(CG_LOG_INFO));
    assert_null(cg_statsd_level_counter(CG_LOG_DEBUG));
}

/* One datagram from fd within 5 s, NUL-terminated into buf; its length. */
static size_t recv_one(int fd, char *buf, size_t cap)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1);
    ssize_t n = recv(fd, buf, cap - 1, 0);
    assert_true(n >= 0);
    buf[n] = '\0';
    return (size_t)n;
}

static void expect_request(int fd, const char *status_name)
{
    char buf[256];
    recv_one(fd, buf, sizeof(buf));
    assert_string_equal(buf, "p.gunicorn.request.duration:12.345|ms|#t:1");
    recv_one(fd, buf, sizeof(buf));
    assert_string_equal(buf, "p.gunicorn.requests:1|c|@1.0|#t:1");
    recv_one(fd, buf, sizeof(buf));
    assert_string_equal(buf, status_name);
}

static void test_udp_send(void **state)
{
    (void)state;
    int r = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(r >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(r, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(r, (struct sockaddr *)&a, &alen), 0);
    char host[64], err[256];
    snprintf(host, sizeof(host), "127.0.0.1:%u", ntohs(a.sin_port));
    cg_statsd_t *s;
    assert_int_equal(cg_statsd_open(&s, host, "p.", "t:1", err, sizeof(err)), 0);
    assert_non_null(s);
    cg_statsd_request(s, 404, 12345);
    expect_request(r, "p.gunicorn.request.status.404:1|c|@1.0|#t:1");
    cg_statsd_request(s, -1, 12345); /* no status: nothing */
    cg_statsd_send_long(s, CG_STATSD_GAUGE, "gunicorn.workers", 3);
    char buf[256];
    recv_one(r, buf, sizeof(buf));
    assert_string_equal(buf, "p.gunicorn.workers:3|g|#t:1");
    cg_statsd_count(s, "gunicorn.log.exception");
    recv_one(r, buf, sizeof(buf));
    assert_string_equal(buf, "p.gunicorn.log.exception:1|c|@1.0|#t:1");

    /* the receiver goes away: sends neither fail loudly nor block */
    assert_int_equal(close(r), 0);
    for (int i = 0; i < 1000; i++)
        cg_statsd_request(s, 200, 1);
    cg_statsd_close(s);
}

static void test_unix_send(void **state)
{
    (void)state;
    char dir[] = "/tmp/cg_test_statsd.XXXXXX", path[128], host[160], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/sd.sock", dir);
    snprintf(host, sizeof(host), "unix://%s", path);

    /* the agent is not there yet at start: sends are dropped, and reach it
     * once it binds (the socket is not connected) */
    cg_statsd_t *s;
    /* "p" alone would stay "p" (Gunicorn's rule needs two characters) */
    assert_int_equal(cg_statsd_open(&s, host, "p.", "t:1", err, sizeof(err)), 0);
    cg_statsd_request(s, 200, 12345);

    int r = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(r >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    memcpy(a.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(r, (struct sockaddr *)&a, sizeof(a)), 0);
    cg_statsd_request(s, 200, 12345);
    expect_request(r, "p.gunicorn.request.status.200:1|c|@1.0|#t:1");

    /* a full receive buffer: non-blocking sends drop the surplus */
    for (int i = 0; i < 20000; i++)
        cg_statsd_request(s, 200, 12345);
    cg_statsd_close(s);
    assert_int_equal(close(r), 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_open_errors(void **state)
{
    (void)state;
    cg_statsd_t *s = (cg_statsd_t *)1;
    char err[256];
    assert_int_equal(cg_statsd_open(&s, NULL, "", "", err, sizeof(err)), 0);
    assert_null(s);
    assert_true(cg_statsd_open(&s, "no-such-host.invalid:8125", "", "", err, sizeof(err)) < 0);
    assert_null(s);
    assert_non_null(strstr(err, "no-such-host.invalid"));
    assert_true(cg_statsd_open(&s, "fd://3", "", "", err, sizeof(err)) < 0);
    assert_null(s);
    /* a NULL client is a no-op everywhere */
    cg_statsd_request(NULL, 200, 1);
    cg_statsd_count(NULL, "gunicorn.log.error");
    cg_statsd_send_long(NULL, CG_STATSD_GAUGE, "x", 1);
    cg_statsd_close(NULL);
}

static void test_backlog_unix_counts_minus_one(void **state)
{
    (void)state;
    cg_listener_t l[2];
    memset(l, 0, sizeof(l));
    l[0].fd = -1;
    l[0].family = AF_UNIX;
    l[1].fd = -1; /* getsockopt fails: counts 0, as Gunicorn's except branch */
    l[1].family = AF_INET;
    assert_int_equal(cg_statsd_backlog(l, 2), -1);
    assert_int_equal(cg_statsd_backlog(l + 1, 1), 0);
}

/* ---- the batch, over a socketpair ---- */

/* The next datagram on fd into buf (NUL-terminated); its length, -1 when
 * none is queued. */
static ssize_t next_packet(int fd, char *buf, size_t cap)
{
    ssize_t n = recv(fd, buf, cap - 1, MSG_DONTWAIT);
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

typedef struct {
    cg_statsd_t *s;
    int peer;
} pair_t;

static pair_t pair_open(const char *prefix, const char *tags)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    return (pair_t){cg_statsd_new_fd(sv[0], prefix, tags), sv[1]};
}

static void pair_close(pair_t *p)
{
    cg_statsd_close(p->s);
    assert_int_equal(close(p->peer), 0);
}

static void test_batch_split_points(void **state)
{
    (void)state;
    pair_t p = pair_open("", "");
    char buf[256];
    /* packets of 20 bytes: "aaaa" lines of 4, joined by newlines */
    cg_statsd_batch_t *b = cg_statsd_batch_new_sized(p.s, 1000, 20);
    assert_non_null(b);
    assert_int_equal(cg_statsd_batch_due_ms(b, 0), -1);
    cg_statsd_batch_add(b, "aaaa", 4, 1000);
    cg_statsd_batch_add(b, "bbbb", 4, 1000);
    cg_statsd_batch_add(b, "cccc", 4, 1000);
    cg_statsd_batch_add(b, "dddd", 4, 1000); /* 19 bytes: still fits */
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), -1);
    cg_statsd_batch_add(b, "e", 1, 1000); /* 21: the four leave first */
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), 19);
    assert_string_equal(buf, "aaaa\nbbbb\ncccc\ndddd");
    /* exactly the packet size fits */
    cg_statsd_batch_add(b, "0123456789abcdef12", 18, 1000); /* 1 + 1 + 18 = 20 */
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), -1);
    cg_statsd_batch_flush(b);
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), 20);
    assert_string_equal(buf, "e\n0123456789abcdef12");
    cg_statsd_batch_flush(b); /* empty: nothing */
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), -1);
    /* several lines at once stay together */
    cg_statsd_batch_add(b, "xx", 2, 1000);
    cg_statsd_batch_add(b, "1111\n2222\n3333", 14, 1000); /* 2 + 1 + 14 = 17 */
    cg_statsd_batch_add(b, "4444\n5555", 9, 1000);         /* 27: moves on */
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), 17);
    assert_string_equal(buf, "xx\n1111\n2222\n3333");
    cg_statsd_batch_free(b); /* sends the rest */
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), 9);
    assert_string_equal(buf, "4444\n5555");
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), -1);
    pair_close(&p);
}

static void test_batch_longer_than_a_packet(void **state)
{
    (void)state;
    pair_t p = pair_open("", "");
    char buf[256];
    cg_statsd_batch_t *b = cg_statsd_batch_new_sized(p.s, 1000, 10);
    cg_statsd_batch_add(b, "abc", 3, 0);
    /* 11 bytes in one line: what was buffered goes, then the line alone */
    cg_statsd_batch_add(b, "0123456789X", 11, 0);
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "abc");
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), 11);
    assert_string_equal(buf, "0123456789X");
    /* more than a packet of short lines at once: one datagram per line,
     * none larger than the packet */
    cg_statsd_batch_add(b, "aaaa\nbbbb\ncccc", 14, 0);
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), 4);
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), 4);
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), 4);
    assert_string_equal(buf, "cccc");
    assert_int_equal(cg_statsd_batch_due_ms(b, 0), -1);
    cg_statsd_batch_free(b);
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), -1);
    pair_close(&p);
}

static void test_batch_interval(void **state)
{
    (void)state;
    pair_t p = pair_open("", "");
    char buf[256];
    cg_statsd_batch_t *b = cg_statsd_batch_new_sized(p.s, 100, 1000);
    cg_statsd_batch_add(b, "one", 3, 5000000);
    assert_int_equal(cg_statsd_batch_due_ms(b, 5000000), 100);
    assert_int_equal(cg_statsd_batch_due_ms(b, 5050000), 50);
    assert_int_equal(cg_statsd_batch_due_ms(b, 5099001), 1); /* rounded up, never 0 early */
    /* not yet due: flush_due keeps it */
    assert_int_equal(cg_statsd_batch_flush_due(b, 5099999), 1);
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), -1);
    assert_int_equal(cg_statsd_batch_flush_due(b, 5100000), -1);
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), 3);
    /* a line added once the buffer is due sends the old ones first and
     * starts a new interval */
    cg_statsd_batch_add(b, "two", 3, 6000000);
    cg_statsd_batch_add(b, "three", 5, 6100000);
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "two");
    assert_int_equal(cg_statsd_batch_due_ms(b, 6100000), 100);
    cg_statsd_batch_free(b);
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), 5);
    pair_close(&p);
}

static void test_batch_request_lines(void **state)
{
    (void)state;
    pair_t p = pair_open("web", "env:t");
    char buf[2048];
    /* off, or no client: no batch (each metric is sent at once) */
    assert_null(cg_statsd_batch_new(p.s, 0));
    assert_null(cg_statsd_batch_new(NULL, 100));
    cg_statsd_t *unbound = cg_statsd_new_unbound("", "");
    assert_null(cg_statsd_batch_new(unbound, 100));
    cg_statsd_close(unbound);
    cg_statsd_batch_request(NULL, 200, 1, 0);

    cg_statsd_batch_t *b = cg_statsd_batch_new(p.s, 100);
    cg_statsd_batch_request(b, 200, 12345, 0);
    cg_statsd_batch_request(b, -1, 12345, 0); /* no status code: nothing */
    cg_statsd_batch_request(b, 404, 1000, 0);
    cg_statsd_batch_request(b, 200, 2000, 0);
    cg_statsd_batch_flush(b);
    assert_true(next_packet(p.peer, buf, sizeof(buf)) > 0);
    /* a timer line per request, the counters summed at the end */
    assert_string_equal(buf, "web.gunicorn.request.duration:12.345|ms|#env:t\n"
                             "web.gunicorn.request.duration:1.0|ms|#env:t\n"
                             "web.gunicorn.request.duration:2.0|ms|#env:t\n"
                             "web.gunicorn.requests:3|c|@1.0|#env:t\n"
                             "web.gunicorn.request.status.200:2|c|@1.0|#env:t\n"
                             "web.gunicorn.request.status.404:1|c|@1.0|#env:t");
    assert_int_equal(next_packet(p.peer, buf, sizeof(buf)), -1);
    /* nothing pending after a flush: the counters started again */
    assert_int_equal(cg_statsd_batch_due_ms(b, 0), -1);
    cg_statsd_batch_request(b, 500, 1000, 0);
    assert_int_equal(cg_statsd_batch_due_ms(b, 0), 100);
    cg_statsd_batch_free(b);
    assert_true(next_packet(p.peer, buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, "web.gunicorn.requests:1|c|@1.0|#env:t\n"
                                "web.gunicorn.request.status.500:1|c|@1.0|#env:t"));
    pair_close(&p);
}

/* Sum of the counter named `name` (up to its ':') over the lines of buf,
 * and how many lines start with `timer`. */
static void tally(const char *buf, const char *name, uint64_t *sum, const char *timer,
                  int *timers)
{
    size_t nl = strlen(name);
    for (const char *l = buf; l != NULL && *l; ) {
        if (strncmp(l, name, nl) == 0 && l[nl] == ':')
            *sum += strtoull(l + nl + 1, NULL, 10);
        if (strncmp(l, timer, strlen(timer)) == 0)
            (*timers)++;
        l = strchr(l, '\n');
        l = l ? l + 1 : NULL;
    }
}

static void test_batch_request_packets(void **state)
{
    (void)state;
    pair_t p = pair_open("", "");
    char buf[2048];
    /* many requests: every datagram within the UDP packet size; the counts
     * add up; a packet leaves only when the next timer line (and counters)
     * would not fit */
    cg_statsd_batch_t *b = cg_statsd_batch_new_sized(p.s, 100, CG_STATSD_UDP_PACKET);
    for (int i = 0; i < 600; i++)
        cg_statsd_batch_request(b, i % 7 == 0 ? 404 : 200, 1000 + i, 0);
    cg_statsd_batch_free(b);
    int packets = 0, timers = 0;
    uint64_t reqs = 0, s200 = 0, s404 = 0;
    ssize_t n, prev = 0;
    while ((n = next_packet(p.peer, buf, sizeof(buf))) > 0) {
        assert_true(n <= CG_STATSD_UDP_PACKET);
        /* all but the last packet are nearly full */
        assert_true(prev == 0 || prev > CG_STATSD_UDP_PACKET - 200);
        prev = n;
        tally(buf, "gunicorn.requests", &reqs, "gunicorn.request.duration:", &timers);
        int unused = 0;
        tally(buf, "gunicorn.request.status.200", &s200, "-", &unused);
        tally(buf, "gunicorn.request.status.404", &s404, "-", &unused);
        packets++;
    }
    assert_int_equal(timers, 600);
    assert_int_equal(reqs, 600);
    assert_int_equal(s404, 86);
    assert_int_equal(s200, 514);
    /* about 35 bytes a request: 12 to 20 packets where Gunicorn's lines
     * one by one need 1,800 datagrams (and three lines a request, 60) */
    assert_true(packets >= 12 && packets <= 20);

    /* more distinct status codes than a packet counts: the packet leaves
     * first, every count still right */
    b = cg_statsd_batch_new_sized(p.s, 100, CG_STATSD_UNIX_PACKET);
    for (int code = 100; code < 140; code++)
        cg_statsd_batch_request(b, code, 1, 0);
    cg_statsd_batch_free(b);
    int codes = 0;
    packets = 0;
    while ((n = next_packet(p.peer, buf, sizeof(buf))) > 0) {
        for (const char *l = strstr(buf, "gunicorn.request.status."); l != NULL;
             l = strstr(l + 1, "gunicorn.request.status.")) {
            assert_true(strncmp(strchr(l, ':'), ":1|c", 4) == 0);
            codes++;
        }
        packets++;
    }
    assert_int_equal(codes, 40);
    assert_int_equal(packets, 3);

    /* a prefix too long to batch: each metric its own datagram, Gunicorn's */
    pair_close(&p);
    char prefix[1500];
    memset(prefix, 'p', sizeof(prefix) - 1);
    prefix[sizeof(prefix) - 1] = '\0';
    p = pair_open(prefix, "");
    b = cg_statsd_batch_new_sized(p.s, 100, CG_STATSD_UDP_PACKET);
    cg_statsd_batch_request(b, 200, 1000, 0);
    cg_statsd_batch_free(b);
    char big[4096];
    packets = 0;
    while ((n = next_packet(p.peer, big, sizeof(big))) > 0) {
        assert_null(strchr(big, '\n'));
        packets++;
    }
    assert_int_equal(packets, 3);
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix_rule),
        cmocka_unit_test(test_duration_repr),
        cmocka_unit_test(test_status_code),
        cmocka_unit_test(test_format_types_prefix_tags),
        cmocka_unit_test(test_udp_send),
        cmocka_unit_test(test_unix_send),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_backlog_unix_counts_minus_one),
        cmocka_unit_test(test_batch_split_points),
        cmocka_unit_test(test_batch_longer_than_a_packet),
        cmocka_unit_test(test_batch_interval),
        cmocka_unit_test(test_batch_request_lines),
        cmocka_unit_test(test_batch_request_packets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
