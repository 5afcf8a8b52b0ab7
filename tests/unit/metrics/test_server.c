/*
 * test_server.c - the metrics endpoint driven as the master drives it
 * (pollfds, poll, serve) against real client sockets: the answers to GET,
 * HEAD, other paths and methods, bad and oversized heads, a head in pieces,
 * the connection limit, the deadline, a failing render, a client that leaves
 * early, a unix socket and an inherited fd.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "src/metrics/server.h"

#define PAGE "# TYPE x gauge\nx 1\n"
#define T0 1000 /* the server's clock, in ms, unless a test moves it */

typedef struct fixture {
    char dir[64];
    char logpath[128];
    cg_log_t log;
    cg_metrics_server_t *srv;
    struct sockaddr_storage addr; /* where srv listens */
    socklen_t addrlen;
    uint64_t now_ms;
    int renders;
    bool render_fails;
    const char *page;
    size_t page_len;
    bool reset_ok; /* read_reply takes a reset after the answer as its end */
    char reply[65536];
} fixture_t;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static char *render_cb(void *ctx, size_t *len)
{
    fixture_t *f = ctx;
    f->renders++;
    if (f->render_fails)
        return NULL;
    char *page = malloc(f->page_len + 1);
    memcpy(page, f->page, f->page_len + 1);
    *len = f->page_len;
    return page;
}

static void use_server(fixture_t *f, cg_metrics_server_t *s)
{
    f->srv = s;
    f->addrlen = sizeof(f->addr);
    assert_int_equal(
        getsockname(cg_metrics_server_fd(s), (struct sockaddr *)&f->addr, &f->addrlen), 0);
}

static cg_metrics_server_t *open_ok(fixture_t *f, const char *addr, int fd)
{
    cg_metrics_server_t *s = NULL;
    char err[256] = "";
    int r = cg_metrics_server_open(&s, addr, fd, 16, &f->log, err, sizeof(err));
    if (r != 0)
        fail_msg("open %s: %d %s", addr ? addr : "(fd)", r, err);
    assert_non_null(s);
    return s;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char err[256];
    strcpy(f->dir, "/tmp/cg-msrv-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->logpath, sizeof(f->logpath), "%s/err.log", f->dir);
    if (cg_log_open(&f->log, f->logpath, "debug", NULL, NULL, err, sizeof(err)) < 0)
        return -1;
    f->now_ms = T0;
    f->page = PAGE;
    f->page_len = strlen(PAGE);
    use_server(f, open_ok(f, "127.0.0.1:0", -1));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];
    cg_metrics_server_close(f->srv, true);
    cg_log_close(&f->log);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* One round of the master's loop; returns what poll returned. */
static int pump_once(fixture_t *f, int timeout_ms)
{
    struct pollfd p[CG_METRICS_MAX_FDS];
    size_t n = cg_metrics_server_pollfds(f->srv, p, CG_METRICS_MAX_FDS);
    int r = poll(p, n, timeout_ms);
    assert_true(r >= 0);
    if (r > 0)
        cg_metrics_server_serve(f->srv, p, n, f->now_ms, render_cb, f);
    return r;
}

/* Serve until nothing is pending. */
static void settle(fixture_t *f)
{
    for (int i = 0; pump_once(f, 0) > 0; i++)
        assert_true(i < 10000);
}

/* Connections the server holds (pollfds beyond the listener). */
static size_t held(fixture_t *f)
{
    struct pollfd p[CG_METRICS_MAX_FDS];
    return cg_metrics_server_pollfds(f->srv, p, CG_METRICS_MAX_FDS) - 1;
}

static int client(fixture_t *f)
{
    int fd = socket(f->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&f->addr, f->addrlen), 0);
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    return fd;
}

static void send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            assert_int_equal(poll(&p, 1, 5000), 1);
            continue;
        }
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

/* Serve while reading fd's answer to its end (the server closes); within
 * 5 s. Returns it NUL-terminated in f->reply. */
static const char *read_reply(fixture_t *f, int fd)
{
    uint64_t deadline = mono_ms() + 5000;
    size_t len = 0;
    for (;;) {
        struct pollfd p[CG_METRICS_MAX_FDS + 1];
        size_t n = cg_metrics_server_pollfds(f->srv, p, CG_METRICS_MAX_FDS);
        p[n] = (struct pollfd){.fd = fd, .events = POLLIN};
        if (mono_ms() > deadline)
            fail_msg("no complete answer within 5 s; got: %.*s", (int)len, f->reply);
        int r = poll(p, n + 1, 100);
        assert_true(r >= 0);
        if (r > 0)
            cg_metrics_server_serve(f->srv, p, n, f->now_ms, render_cb, f);
        if (p[n].revents == 0)
            continue;
        ssize_t k = recv(fd, f->reply + len, sizeof(f->reply) - 1 - len, 0);
        if (k < 0 && errno == EAGAIN)
            continue;
        if (k < 0 && errno == ECONNRESET && f->reset_ok && len > 0)
            break;
        if (k < 0)
            fail_msg("recv: %s after %zu bytes: %.*s", strerror(errno), len, (int)len, f->reply);
        if (k == 0)
            break;
        len += (size_t)k;
    }
    f->reply[len] = '\0';
    return f->reply;
}

/* Send one request on a new connection; the whole answer. */
static const char *request(fixture_t *f, const char *req)
{
    int fd = client(f);
    send_all(fd, req, strlen(req));
    read_reply(f, fd);
    close(fd);
    settle(f); /* the server lingers until it sees the close */
    return f->reply;
}

static void assert_starts(const char *s, const char *prefix)
{
    if (strncmp(s, prefix, strlen(prefix)) != 0)
        fail_msg("want \"%s\" at the start of:\n%s", prefix, s);
}

/* The body after the head; asserts Content-Length is its length when
 * `has_body`, or that there is none (HEAD) while Content-Length is want_len. */
static const char *body_of(const char *reply, bool has_body, size_t want_len)
{
    const char *end = strstr(reply, "\r\n\r\n");
    assert_non_null(end);
    const char *cl = strstr(reply, "\r\nContent-Length: ");
    assert_true(cl != NULL && cl < end);
    size_t n = strtoul(cl + 18, NULL, 10);
    assert_int_equal(n, want_len);
    assert_int_equal(strlen(end + 4), has_body ? n : 0);
    assert_non_null(strstr(reply, "\r\nConnection: close\r\n"));
    return end + 4;
}

static void test_get_metrics(void **state)
{
    fixture_t *f = *state;
    char want[80];
    const struct sockaddr_in *a = (const struct sockaddr_in *)&f->addr;
    snprintf(want, sizeof(want), "http://127.0.0.1:%u/metrics", ntohs(a->sin_port));
    assert_string_equal(cg_metrics_server_display(f->srv), want);
    assert_int_equal(held(f), 0);

    const char *r = request(f, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
    assert_starts(r, "HTTP/1.1 200 OK\r\n");
    assert_non_null(strstr(r, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_string_equal(body_of(r, true, strlen(PAGE)), PAGE);
    assert_int_equal(f->renders, 1);
    assert_int_equal(held(f), 0); /* one request per connection */

    r = request(f, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert_starts(r, "HTTP/1.1 200 OK\r\n");
    assert_string_equal(body_of(r, true, strlen(PAGE)), PAGE);
    /* bare LFs end a head too */
    r = request(f, "GET /metrics HTTP/1.1\nHost: x\n\n");
    assert_starts(r, "HTTP/1.1 200 OK\r\n");
    assert_int_equal(f->renders, 3);
}

static void test_head(void **state)
{
    fixture_t *f = *state;
    const char *r = request(f, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_starts(r, "HTTP/1.1 200 OK\r\n");
    body_of(r, false, strlen(PAGE));
    assert_int_equal(f->renders, 1);
    r = request(f, "HEAD / HTTP/1.1\r\n\r\n");
    assert_starts(r, "HTTP/1.1 404 Not Found\r\n");
    body_of(r, false, strlen("Not Found: the metrics are at /metrics\n"));
    assert_int_equal(f->renders, 1);
}

static void test_not_found(void **state)
{
    fixture_t *f = *state;
    static const char *const reqs[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "GET /metricsx HTTP/1.1\r\n\r\n",
        "GET /metric HTTP/1.1\r\n\r\n",
        "GET /metrics/ HTTP/1.1\r\n\r\n",
        "GET http://h/metrics HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        const char *r = request(f, reqs[i]);
        assert_starts(r, "HTTP/1.1 404 Not Found\r\n");
        assert_string_equal(body_of(r, true, 39), "Not Found: the metrics are at /metrics\n");
    }
    assert_int_equal(f->renders, 0);
}

static void test_method_not_allowed(void **state)
{
    fixture_t *f = *state;
    static const char *const reqs[] = {
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "get /metrics HTTP/1.1\r\n\r\n",
        "GETS /metrics HTTP/1.1\r\n\r\n",
        "DELETE / HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        const char *r = request(f, reqs[i]);
        assert_starts(r, "HTTP/1.1 405 Method Not Allowed\r\n");
        assert_non_null(strstr(r, "\r\nAllow: GET, HEAD\r\n"));
        assert_string_equal(body_of(r, true, 19), "Method Not Allowed\n");
    }
    assert_int_equal(f->renders, 0);
}

static void test_bad_request(void **state)
{
    fixture_t *f = *state;
    static const char *const reqs[] = {
        "hello\r\n\r\n",
        "\r\n\r\n",
        "GET /metrics\r\n\r\n",
        "GET /metrics FOO/1.1\r\n\r\n",
        "GET /metrics HTTP/2\r\n\r\n",
        "GET /metrics\r\nX: a b HTTP/1.1\r\n\r\n", /* the version is on line 1 */
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        const char *r = request(f, reqs[i]);
        assert_starts(r, "HTTP/1.1 400 Bad Request\r\n");
        assert_string_equal(body_of(r, true, 12), "Bad Request\n");
    }
    assert_int_equal(f->renders, 0);
}

static void test_head_too_large(void **state)
{
    fixture_t *f = *state;
    static const char line[] = "GET /metrics HTTP/1.1\r\nX-Long: ";
    /* The rest of the long head is unread when the answer goes out: the
     * server shuts its side and reads on until the client closes, so the
     * answer ends with a clean EOF, not a reset (reset_ok stays false). */
    for (size_t total = 4095; total <= 4096 * 3; total += 4096 * 2 - 4095) {
        char *req = malloc(total + 1);
        memcpy(req, line, sizeof(line) - 1);
        memset(req + sizeof(line) - 1, 'a', total - (sizeof(line) - 1));
        req[total] = '\0';
        const char *r = request(f, req);
        free(req);
        assert_starts(r, "HTTP/1.1 431 Request Header Fields Too Large\r\n");
        assert_string_equal(body_of(r, true, 32), "Request Header Fields Too Large\n");
    }
    /* just under: still waiting for the head's end, which then comes */
    char req[4096];
    memcpy(req, line, sizeof(line) - 1);
    memset(req + sizeof(line) - 1, 'a', 4090 - (sizeof(line) - 1));
    memcpy(req + 4090, "\r\n\r\n", 5);
    const char *r = request(f, req);
    assert_starts(r, "HTTP/1.1 200 OK\r\n");
    assert_int_equal(f->renders, 1);
}

static void test_head_in_pieces(void **state)
{
    fixture_t *f = *state;
    static const char *const pieces[] = {"GET /met", "rics HTTP/1.1\r\nHost: x\r", "\n",
                                         "\r\n"};
    int fd = client(f);
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]) - 1; i++) {
        send_all(fd, pieces[i], strlen(pieces[i]));
        /* until the server has read the piece (poll sees it first) */
        assert_true(pump_once(f, 5000) > 0);
        settle(f);
        assert_int_equal(held(f), 1);
        char c;
        assert_int_equal(recv(fd, &c, 1, 0), -1); /* no answer yet */
        assert_int_equal(errno, EAGAIN);
    }
    assert_int_equal(f->renders, 0);
    send_all(fd, pieces[3], strlen(pieces[3]));
    const char *r = read_reply(f, fd);
    close(fd);
    assert_starts(r, "HTTP/1.1 200 OK\r\n");
    assert_string_equal(body_of(r, true, strlen(PAGE)), PAGE);
    assert_int_equal(f->renders, 1);
}

static bool closed_by_peer(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1);
    char c;
    return recv(fd, &c, 1, 0) == 0;
}

static bool still_open(int fd)
{
    char c;
    return recv(fd, &c, 1, 0) == -1 && errno == EAGAIN;
}

static void test_connection_limit(void **state)
{
    fixture_t *f = *state;
    enum { N = CG_METRICS_MAX_CONNS + 3 };
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = client(f);
    assert_true(pump_once(f, 5000) > 0);
    settle(f);
    assert_int_equal(held(f), CG_METRICS_MAX_CONNS);
    struct pollfd p[CG_METRICS_MAX_FDS];
    assert_int_equal(cg_metrics_server_pollfds(f->srv, p, 3), 3);
    assert_int_equal(cg_metrics_server_pollfds(f->srv, p, 0), 0);
    /* the kernel's accept queue is in order: the last ones were closed */
    for (int i = CG_METRICS_MAX_CONNS; i < N; i++)
        assert_true(closed_by_peer(fds[i]));
    for (int i = 0; i < CG_METRICS_MAX_CONNS; i++)
        assert_true(still_open(fds[i]));
    /* and they are served */
    send_all(fds[0], "GET /metrics HTTP/1.1\r\n\r\n", 25);
    assert_starts(read_reply(f, fds[0]), "HTTP/1.1 200 OK\r\n");
    /* answered; held until the client closes its side */
    assert_int_equal(held(f), CG_METRICS_MAX_CONNS);
    close(fds[0]);
    fds[0] = -1;
    settle(f);
    assert_int_equal(held(f), CG_METRICS_MAX_CONNS - 1);
    /* a slot is free again */
    int extra = client(f);
    send_all(extra, "GET /metrics HTTP/1.1\r\n\r\n", 25);
    assert_starts(read_reply(f, extra), "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    close(extra);
}

static void test_idle_deadline(void **state)
{
    fixture_t *f = *state;
    int idle = client(f);
    assert_true(pump_once(f, 5000) > 0);
    settle(f);
    assert_int_equal(held(f), 1);
    /* half a request, 9.999 s later: kept */
    send_all(idle, "GET /", 5);
    f->now_ms = T0 + 9999;
    assert_true(pump_once(f, 5000) > 0);
    assert_int_equal(held(f), 1);
    assert_true(still_open(idle));

    /* no event at all, past the deadline: dropped */
    struct pollfd p[CG_METRICS_MAX_FDS];
    size_t n = cg_metrics_server_pollfds(f->srv, p, CG_METRICS_MAX_FDS);
    f->now_ms = T0 + 10000;
    cg_metrics_server_serve(f->srv, p, n, f->now_ms, render_cb, f);
    assert_int_equal(held(f), 0);
    assert_true(closed_by_peer(idle));
    close(idle);
    assert_int_equal(f->renders, 0);
    /* the clock moves on, new clients get their own deadline */
    f->now_ms = 1000000;
    assert_starts(request(f, "GET /metrics HTTP/1.1\r\n\r\n"), "HTTP/1.1 200 OK\r\n");
}

static void test_render_fails(void **state)
{
    fixture_t *f = *state;
    f->render_fails = true;
    const char *r = request(f, "GET /metrics HTTP/1.1\r\n\r\n");
    assert_starts(r, "HTTP/1.1 500 Internal Server Error\r\n");
    assert_string_equal(body_of(r, true, 22), "Internal Server Error\n");
    r = request(f, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_starts(r, "HTTP/1.1 500 Internal Server Error\r\n");
    body_of(r, false, 22);
    assert_int_equal(f->renders, 2);
}

static void test_client_leaves_early(void **state)
{
    fixture_t *f = *state;
    /* the default action: a write that raised SIGPIPE would end the test */
    struct sigaction sa = {.sa_handler = SIG_DFL}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGPIPE, &sa, &old), 0);
    size_t big = 8u << 20; /* more than the socket buffers take */
    char *page = malloc(big + 1);
    memset(page, 'x', big);
    page[big] = '\0';
    f->page = page;
    f->page_len = big;
    for (int i = 0; i < 3; i++) {
        int fd = client(f);
        send_all(fd, "GET /metrics HTTP/1.1\r\n\r\n", 25);
        if (i == 1) {
            /* read a little of the answer, then leave with the rest unread:
             * the server's next write meets a reset */
            assert_true(pump_once(f, 5000) > 0);
            settle(f);
            struct pollfd p = {.fd = fd, .events = POLLIN};
            assert_int_equal(poll(&p, 1, 5000), 1);
            char buf[16];
            assert_true(recv(fd, buf, sizeof(buf), 0) > 0);
        }
        close(fd);
        uint64_t deadline = mono_ms() + 5000;
        while (held(f) > 0 || pump_once(f, 0) > 0) {
            assert_true(mono_ms() < deadline);
            pump_once(f, 100);
        }
    }
    assert_int_equal(f->renders, 3);
    f->page = PAGE;
    f->page_len = strlen(PAGE);
    free(page);
    assert_starts(request(f, "GET /metrics HTTP/1.1\r\n\r\n"), "HTTP/1.1 200 OK\r\n");
    assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
}

static void test_unix_socket(void **state)
{
    fixture_t *f = *state;
    char path[128], addr[160];
    struct stat st;
    cg_metrics_server_close(f->srv, true);
    snprintf(path, sizeof(path), "%s/m.sock", f->dir);
    snprintf(addr, sizeof(addr), "unix:%s", path);
    use_server(f, open_ok(f, addr, -1));
    assert_int_equal(f->addr.ss_family, AF_UNIX);
    assert_string_equal(cg_metrics_server_display(f->srv), addr); /* no /metrics */
    const char *r = request(f, "GET /metrics HTTP/1.1\r\n\r\n");
    assert_starts(r, "HTTP/1.1 200 OK\r\n");
    assert_string_equal(body_of(r, true, strlen(PAGE)), PAGE);
    /* a worker's close leaves the file; the master's unlinks it */
    cg_metrics_server_close(f->srv, false);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(unlink(path), 0);
    use_server(f, open_ok(f, addr, -1));
    assert_int_equal(stat(path, &st), 0);
    cg_metrics_server_close(f->srv, true);
    f->srv = NULL;
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(errno, ENOENT);
}

static void test_adopt_inherited_fd(void **state)
{
    fixture_t *f = *state;
    cg_metrics_server_close(f->srv, true);
    f->srv = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* blocking */
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 4), 0);
    use_server(f, open_ok(f, "ignored:1", fd));
    assert_int_equal(cg_metrics_server_fd(f->srv), fd);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK); /* the master must never block on it */
    char want[80];
    snprintf(want, sizeof(want), "http://127.0.0.1:%u/metrics",
             ntohs(((struct sockaddr_in *)&f->addr)->sin_port));
    assert_string_equal(cg_metrics_server_display(f->srv), want);
    assert_starts(request(f, "GET /metrics HTTP/1.1\r\n\r\n"), "HTTP/1.1 200 OK\r\n");
}

static void test_open_errors(void **state)
{
    fixture_t *f = *state;
    cg_metrics_server_t *s = NULL;
    char err[256] = "", addr[64];
    /* the port is taken (by the fixture's server): one try, then an error */
    snprintf(addr, sizeof(addr), "127.0.0.1:%u",
             ntohs(((struct sockaddr_in *)&f->addr)->sin_port));
    assert_true(cg_metrics_server_open(&s, addr, -1, 16, &f->log, err, sizeof(err)) < 0);
    assert_null(s);
    assert_non_null(strstr(err, "cannot listen on metrics_bind"));
    assert_non_null(strstr(err, addr));
    err[0] = '\0';
    assert_true(cg_metrics_server_open(&s, "127.0.0.1:notaport", -1, 16, &f->log, err,
                                       sizeof(err)) < 0);
    assert_null(s);
    assert_true(err[0] != '\0');
    /* an inherited fd that is no socket */
    int p[2];
    assert_int_equal(pipe(p), 0);
    err[0] = '\0';
    assert_true(cg_metrics_server_open(&s, NULL, p[0], 16, &f->log, err, sizeof(err)) < 0);
    assert_null(s);
    assert_true(err[0] != '\0');
    close(p[0]);
    close(p[1]);
    cg_metrics_server_close(NULL, true);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_get_metrics),        T(test_head),          T(test_not_found),
        T(test_method_not_allowed), T(test_bad_request),   T(test_head_too_large),
        T(test_head_in_pieces),     T(test_connection_limit), T(test_idle_deadline),
        T(test_render_fails),       T(test_client_leaves_early), T(test_unix_socket),
        T(test_adopt_inherited_fd), T(test_open_errors),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
