/*
 * test_server.c - src/ctl/server.c driven as the master drives it (pollfds,
 * poll, serve) with real unix clients: the socket's directory, mode and
 * replacement rules, answers in order (pipelined too), a refused length, a
 * half frame and an idle client past their deadlines, the connection limit,
 * and the file left alone once another master took the path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "src/ctl/ctl.h"

typedef struct fixture {
    char dir[64];
    char path[128];
    char logpath[160];
    cg_log_t log;
    cg_ctl_server_t *srv;
    uint64_t now;
    int handled;
} fixture_t;

/* Answers {"n": <payload length>} to every request. */
static char *handle_cb(void *ctx, const char *payload, size_t len, size_t *outlen,
                       bool *close_after)
{
    fixture_t *f = ctx;
    char data[32];
    (void)payload;
    f->handled++;
    *close_after = false;
    snprintf(data, sizeof(data), "{\"n\": %zu}", len);
    return cg_ctl_answer_ok(CG_STR_LIT("1"), data, strlen(data), outlen);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char err[256];
    strcpy(f->dir, "/tmp/cg-ctl-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/a/b/gunicorn.ctl", f->dir);
    snprintf(f->logpath, sizeof(f->logpath), "%s/log", f->dir);
    if (cg_log_open(&f->log, f->logpath, "debug", NULL, NULL, err, sizeof(err)) < 0)
        return -1;
    f->now = 1000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];
    cg_ctl_server_close(f->srv, true);
    cg_log_close(&f->log);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    int r = system(cmd);
    free(f);
    return r == 0 ? 0 : -1;
}

static void open_ok(fixture_t *f, unsigned mode)
{
    char err[256] = "";
    int r = cg_ctl_server_open(&f->srv, f->path, mode, &f->log, err, sizeof(err));
    if (r < 0)
        fail_msg("open: %s", err);
}

static int client(const fixture_t *f)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    strcpy(sun.sun_path, f->path);
    assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    return fd;
}

/* One master pass: poll (up to 50 ms) and serve at the fixture's clock. */
static void pump(fixture_t *f)
{
    struct pollfd p[CG_CTL_MAX_FDS];
    size_t n = cg_ctl_server_pollfds(f->srv, p, CG_CTL_MAX_FDS);
    assert_true(poll(p, n, 50) >= 0);
    cg_ctl_server_serve(f->srv, p, n, f->now, handle_cb, f);
}

static void send_frame(int fd, const char *payload)
{
    uint32_t n = (uint32_t)strlen(payload);
    unsigned char h[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                          (unsigned char)(n >> 8), (unsigned char)n};
    assert_int_equal(send(fd, h, 4, 0), 4);
    assert_int_equal(send(fd, payload, n, 0), (ssize_t)n);
}

/* Pump until fd has a whole frame (or closes); returns its payload. Bytes
 * past it (the next answer of a pipelined pair) are kept for the next call. */
static char *read_frame(fixture_t *f, int fd)
{
    static char buf[4096], frame[4096];
    static size_t have;
    for (int i = 0; i < 100; i++) {
        uint32_t announced;
        ssize_t n = cg_ctl_frame(buf, have, sizeof(buf), &announced);
        if (n >= 0) {
            memcpy(frame, buf + 4, (size_t)n);
            frame[n] = '\0';
            have -= 4 + (size_t)n;
            memmove(buf, buf + 4 + n, have);
            return frame;
        }
        pump(f);
        ssize_t r = recv(fd, buf + have, sizeof(buf) - 1 - have, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
            have = 0;
            return NULL;
        }
        if (r > 0)
            have += (size_t)r;
    }
    fail_msg("no answer");
    return NULL;
}

/* Whether the server closed fd (pumping a few passes). */
static bool closed_by_server(fixture_t *f, int fd)
{
    for (int i = 0; i < 20; i++) {
        pump(f);
        char b[256];
        ssize_t r = recv(fd, b, sizeof(b), MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            return true;
    }
    return false;
}

static void test_socket_file(void **state)
{
    fixture_t *f = *state;
    struct stat st;
    open_ok(f, 0640);
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0640);
    /* the directory it made is private, as os.makedirs(dir, 0o700) makes it */
    char dir[160];
    snprintf(dir, sizeof(dir), "%s/a/b", f->dir);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_string_equal(cg_ctl_server_path(f->srv), f->path);
    assert_int_equal(cg_ctl_server_mode(f->srv), 0640);
    assert_true(cg_ctl_server_owns_path(f->srv));

    /* a second server takes the path over (the newest master wins) */
    cg_ctl_server_t *second = NULL;
    char err[256];
    assert_int_equal(cg_ctl_server_open(&second, f->path, 0600, &f->log, err, sizeof(err)), 0);
    assert_false(cg_ctl_server_owns_path(f->srv));
    /* closing the first leaves the second's file alone */
    cg_ctl_server_close(f->srv, true);
    f->srv = second;
    assert_int_equal(lstat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    cg_ctl_server_close(f->srv, true);
    f->srv = NULL;
    assert_int_equal(lstat(f->path, &st), -1);

    /* anything but a socket at the path is not ours to remove */
    int fd = open(f->path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(cg_ctl_server_open(&second, f->path, 0600, &f->log, err, sizeof(err)),
                     -EEXIST);
    assert_non_null(strstr(err, "is not a socket"));
    char longpath[200];
    memset(longpath, 'x', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(cg_ctl_server_open(&second, longpath, 0600, &f->log, err, sizeof(err)),
                     -ENAMETOOLONG);
}

static void test_requests_in_order(void **state)
{
    fixture_t *f = *state;
    open_ok(f, 0600);
    int fd = client(f);
    send_frame(fd, "{\"command\": \"a\"}");
    assert_string_equal(read_frame(f, fd), "{\"id\": 1, \"status\": \"ok\", \"data\": {\"n\": 16}}");
    /* two at once, and a third in pieces: each answered, in order */
    send_frame(fd, "{}");
    send_frame(fd, "{\"x\": 1}");
    assert_string_equal(read_frame(f, fd), "{\"id\": 1, \"status\": \"ok\", \"data\": {\"n\": 2}}");
    assert_string_equal(read_frame(f, fd), "{\"id\": 1, \"status\": \"ok\", \"data\": {\"n\": 8}}");
    assert_int_equal(send(fd, "\0\0", 2, 0), 2);
    pump(f);
    assert_int_equal(send(fd, "\0\1x", 3, 0), 3);
    assert_string_equal(read_frame(f, fd), "{\"id\": 1, \"status\": \"ok\", \"data\": {\"n\": 1}}");
    assert_int_equal(f->handled, 4);
    close(fd);
}

static void test_too_large(void **state)
{
    fixture_t *f = *state;
    open_ok(f, 0600);
    int fd = client(f);
    /* 16 MiB + 1, followed by junk that is never read whole */
    assert_int_equal(send(fd, "\x01\x00\x00\x01junkjunk", 12, 0), 12);
    assert_string_equal(read_frame(f, fd),
                        "{\"id\": null, \"status\": \"error\", \"error\": \"Message too large: "
                        "16777217\"}");
    assert_true(closed_by_server(f, fd));
    assert_int_equal(f->handled, 0);
    close(fd);
}

static void test_deadlines(void **state)
{
    fixture_t *f = *state;
    open_ok(f, 0600);
    int half = client(f), idle = client(f);
    pump(f);
    assert_int_equal(send(half, "\0\0\0\x10{\"com", 9, 0), 9);
    pump(f);
    /* a trickle does not extend the frame's deadline */
    f->now += CG_CTL_FRAME_MS / 2;
    assert_int_equal(send(half, "m", 1, 0), 1);
    pump(f);
    f->now += CG_CTL_FRAME_MS / 2;
    assert_true(closed_by_server(f, half));
    /* a quiet client stays until Gunicorn's idle limit */
    assert_false(closed_by_server(f, idle));
    f->now += CG_CTL_IDLE_MS;
    assert_true(closed_by_server(f, idle));
    close(half);
    close(idle);
}

static void test_connection_limit(void **state)
{
    fixture_t *f = *state;
    open_ok(f, 0600);
    int fds[CG_CTL_MAX_CONNS + 1];
    for (int i = 0; i < CG_CTL_MAX_CONNS; i++) {
        fds[i] = client(f);
        pump(f);
        f->now++;
    }
    /* one more: the quietest (the first) makes room, the newcomer is served */
    fds[CG_CTL_MAX_CONNS] = client(f);
    pump(f);
    assert_true(closed_by_server(f, fds[0]));
    send_frame(fds[CG_CTL_MAX_CONNS], "{}");
    assert_non_null(read_frame(f, fds[CG_CTL_MAX_CONNS]));
    for (int i = 0; i <= CG_CTL_MAX_CONNS; i++)
        close(fds[i]);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_socket_file), T(test_requests_in_order), T(test_too_large),
        T(test_deadlines),   T(test_connection_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
