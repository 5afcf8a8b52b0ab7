/*
 * server.c - the control socket's sockets, in the master's poll loop. See
 * ctl.h for the bounds that keep a hostile client from stalling the master:
 * nothing here blocks, every buffer has a ceiling, every connection a
 * deadline, and one call does a bounded amount of work.
 */
#include "ctl.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* connections accepted per call: a connect flood costs a bounded pass */
#define CG__CTL_ACCEPTS 64
/* bytes read per connection per call */
#define CG__CTL_READ_BUDGET (CG_CTL_MAX_REQUEST + 4)
/* requests answered per connection per call (a pipelining client) */
#define CG__CTL_ANSWERS 8

typedef struct cg__cconn {
    int fd; /* -1: unused */
    uint64_t deadline_ms;
    uint64_t active;    /* s->clock at the last progress: whom a newcomer replaces */
    uint64_t since_ms;  /* when the current phase (idle, request, answer) began */
    int phase;
    char *in;           /* bytes received, not yet answered */
    size_t inlen, incap;
    char *out; /* the answer being written */
    size_t outlen, outoff;
    bool closing; /* close once out is written */
} cg__cconn_t;

struct cg_ctl_server {
    int fd;
    char *path;
    unsigned mode;
    dev_t dev; /* what path named once bound: whether it is still ours */
    ino_t ino;
    cg_log_t *log;
    /* counts accepts and progress: an order without ties, where several
     * clients accepted in one pass share a millisecond */
    uint64_t clock;
    cg__cconn_t conns[CG_CTL_MAX_CONNS];
};

/* mkdir -p of path's directory, as Python's os.makedirs(dir, mode=0o700):
 * the missing parents with 0777, the directory itself with 0700 (both
 * under the umask). */
static int cg__mkdirs(const char *path)
{
    char *dir = strdup(path);
    int r = 0;
    if (dir == NULL)
        return -ENOMEM;
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        goto out;
    *slash = '\0';
    struct stat st;
    if (stat(dir, &st) == 0)
        goto out;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
            r = -errno;
            goto out;
        }
        *p = '/';
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        r = -errno;
out:
    free(dir);
    return r;
}

int cg_ctl_server_open(cg_ctl_server_t **out, const char *path, unsigned mode, cg_log_t *log,
                       char *err, size_t errlen)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stat st;
    int r;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "%s: path too long for a unix socket", path);
        return -ENAMETOOLONG;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if ((r = cg__mkdirs(path)) < 0) {
        snprintf(err, errlen, "cannot create the directory of %s: %s", path, strerror(-r));
        return r;
    }
    /* Gunicorn removes what is there; we only remove a socket (a stale one,
     * or another master's: the newest master takes the path, as there) */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket", path);
            return -EEXIST;
        }
        if (unlink(path) < 0 && errno != ENOENT) {
            r = -errno;
            snprintf(err, errlen, "cannot remove the old %s: %s", path, strerror(-r));
            return r;
        }
    }
    cg_ctl_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->path = strdup(path)) == NULL) {
        free(s);
        snprintf(err, errlen, "%s", strerror(ENOMEM));
        return -ENOMEM;
    }
    s->mode = mode;
    s->log = log;
    for (size_t i = 0; i < CG_CTL_MAX_CONNS; i++)
        s->conns[i].fd = -1;
    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s->fd < 0) {
        r = -errno;
        snprintf(err, errlen, "socket: %s", strerror(-r));
        goto fail;
    }
    /* The socket file gets its mode when bind creates it: under this umask
     * nobody else can connect in the moment before the chmod (Gunicorn
     * binds first and chmods after). */
    mode_t old = umask((mode_t)(~mode & 0777));
    r = bind(s->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ? -errno : 0;
    umask(old);
    if (r < 0) {
        snprintf(err, errlen, "cannot bind %s: %s", path, strerror(-r));
        goto fail;
    }
    if (chmod(path, (mode_t)mode) < 0 || listen(s->fd, 64) < 0 || stat(path, &st) < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot set up %s: %s", s->path, strerror(-r));
        unlink(s->path);
        goto fail;
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    *out = s;
    return 0;
fail:
    if (s->fd >= 0)
        close(s->fd);
    free(s->path);
    free(s);
    return r;
}

const char *cg_ctl_server_path(const cg_ctl_server_t *s)
{
    return s->path;
}

unsigned cg_ctl_server_mode(const cg_ctl_server_t *s)
{
    return s->mode;
}

bool cg_ctl_server_owns_path(const cg_ctl_server_t *s)
{
    struct stat st;
    return lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino;
}

size_t cg_ctl_server_pollfds(const cg_ctl_server_t *s, struct pollfd *p, size_t cap)
{
    size_t n = 0;
    if (cap == 0)
        return 0;
    p[n++] = (struct pollfd){.fd = s->fd, .events = POLLIN};
    for (size_t i = 0; i < CG_CTL_MAX_CONNS && n < cap; i++) {
        const cg__cconn_t *c = &s->conns[i];
        if (c->fd >= 0)
            p[n++] = (struct pollfd){.fd = c->fd, .events = c->out ? POLLOUT : POLLIN};
    }
    return n;
}

static void cg__drop(cg__cconn_t *c)
{
    close(c->fd);
    free(c->in);
    free(c->out);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

enum { CG__IDLE, CG__REQUEST, CG__ANSWER };

/* The deadline that applies now. A request must arrive whole within
 * CG_CTL_FRAME_MS of its first byte and an answer leave within as long,
 * however slowly the bytes trickle (progress does not extend them); a
 * client with nothing in flight may stay CG_CTL_IDLE_MS after its last
 * answer. */
static void cg__deadline(cg__cconn_t *c, uint64_t now_ms)
{
    int phase = c->out != NULL ? CG__ANSWER : c->inlen > 0 ? CG__REQUEST : CG__IDLE;
    if (phase != c->phase || phase == CG__IDLE) {
        c->phase = phase;
        c->since_ms = now_ms;
    }
    c->deadline_ms = c->since_ms + (phase == CG__IDLE ? CG_CTL_IDLE_MS : CG_CTL_FRAME_MS);
}

/* Answer every complete request in the buffer (up to a few), one at a
 * time: the next is looked at once the answer before it is written. */
static void cg__answer(cg_ctl_server_t *s, cg__cconn_t *c, cg_ctl_handle_cb handle, void *ctx)
{
    uint32_t announced = 0;
    ssize_t n = cg_ctl_frame(c->in, c->inlen, CG_CTL_MAX_REQUEST, &announced);
    if (n == CG_EAGAIN)
        return;
    bool close_after = false;
    if (n < 0) {
        char msg[64];
        snprintf(msg, sizeof(msg), "Message too large: %u", announced);
        cg_log_debug(s->log, "Control client: %s", msg);
        c->out = cg_ctl_answer_error((cg_str_t){NULL, 0}, msg, &c->outlen);
        close_after = true;
        c->inlen = 0;
    } else {
        c->out = handle(ctx, c->in + 4, (size_t)n, &c->outlen, &close_after);
        memmove(c->in, c->in + 4 + n, c->inlen - 4 - (size_t)n);
        c->inlen -= 4 + (size_t)n;
    }
    c->outoff = 0;
    c->closing = close_after || c->out == NULL;
}

/* Write what is left of the answer; returns false once c was dropped. */
static bool cg__write(cg__cconn_t *c)
{
    while (c->out != NULL && c->outoff < c->outlen) {
        ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0) {
            cg__drop(c); /* the client went away */
            return false;
        }
        c->outoff += (size_t)n;
    }
    free(c->out);
    c->out = NULL;
    if (c->closing) {
        cg__drop(c);
        return false;
    }
    return true;
}

/* Read what has come (within the budget); returns false once c was dropped. */
static bool cg__read(cg__cconn_t *c)
{
    size_t budget = CG__CTL_READ_BUDGET;
    while (budget > 0) {
        /* never more than the largest frame we accept */
        size_t want = CG_CTL_MAX_REQUEST + 4 - c->inlen;
        if (want == 0)
            return true;
        if (c->incap - c->inlen < (want < 4096 ? want : 4096)) {
            size_t cap = c->incap ? c->incap * 2 : 512;
            if (cap > CG_CTL_MAX_REQUEST + 4)
                cap = CG_CTL_MAX_REQUEST + 4;
            char *b = realloc(c->in, cap);
            if (b == NULL) {
                cg__drop(c);
                return false;
            }
            c->in = b;
            c->incap = cap;
        }
        size_t room = c->incap - c->inlen;
        if (room > want)
            room = want;
        if (room > budget)
            room = budget;
        ssize_t n = recv(c->fd, c->in + c->inlen, room, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0) {
            /* closed (mid-frame or not) or failed: as Gunicorn, just close */
            cg__drop(c);
            return false;
        }
        c->inlen += (size_t)n;
        budget -= (size_t)n;
        uint32_t announced;
        if (cg_ctl_frame(c->in, c->inlen, CG_CTL_MAX_REQUEST, &announced) != CG_EAGAIN)
            return true; /* a whole frame (or a refused one) is in: answer first */
    }
    return true;
}

static void cg__accept(cg_ctl_server_t *s, uint64_t now_ms)
{
    for (int k = 0; k < CG__CTL_ACCEPTS; k++) {
        int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return; /* EAGAIN, or a failure the next poll retries */
        cg__cconn_t *c = NULL, *quiet = NULL;
        for (size_t i = 0; i < CG_CTL_MAX_CONNS && c == NULL; i++) {
            if (s->conns[i].fd < 0)
                c = &s->conns[i];
            else if (quiet == NULL || s->conns[i].active < quiet->active)
                quiet = &s->conns[i];
        }
        if (c == NULL) {
            /* full: the newcomer replaces the client quiet the longest, so
             * idle connections cannot lock everyone else out */
            cg_log_debug(s->log, "Control socket: %d clients, closing the quietest",
                         CG_CTL_MAX_CONNS);
            cg__drop(quiet);
            c = quiet;
        }
        c->fd = fd;
        c->active = ++s->clock;
        cg__deadline(c, now_ms);
    }
}

static void cg__serve_one(cg_ctl_server_t *s, cg__cconn_t *c, short revents, uint64_t now_ms,
                          cg_ctl_handle_cb handle, void *ctx)
{
    c->active = ++s->clock;
    if (c->out != NULL) {
        if (!cg__write(c))
            return;
    } else if (revents & (POLLIN | POLLHUP | POLLERR)) {
        if (!cg__read(c))
            return;
    }
    for (int k = 0; k < CG__CTL_ANSWERS && c->out == NULL && c->inlen > 0; k++) {
        cg__answer(s, c, handle, ctx);
        if (c->out == NULL && !c->closing)
            break; /* the next frame is not complete yet */
        if (!cg__write(c))
            return;
    }
    cg__deadline(c, now_ms);
}

void cg_ctl_server_serve(cg_ctl_server_t *s, const struct pollfd *p, size_t n, uint64_t now_ms,
                         cg_ctl_handle_cb handle, void *ctx)
{
    for (size_t k = 1; k < n; k++) {
        if (p[k].revents == 0)
            continue;
        cg__cconn_t *c = NULL;
        for (size_t i = 0; i < CG_CTL_MAX_CONNS && c == NULL; i++)
            if (s->conns[i].fd == p[k].fd)
                c = &s->conns[i];
        if (c != NULL)
            cg__serve_one(s, c, p[k].revents, now_ms, handle, ctx);
    }
    if (n > 0 && (p[0].revents & POLLIN))
        cg__accept(s, now_ms);
    for (size_t i = 0; i < CG_CTL_MAX_CONNS; i++)
        if (s->conns[i].fd >= 0 && now_ms >= s->conns[i].deadline_ms)
            cg__drop(&s->conns[i]);
}

void cg_ctl_server_close(cg_ctl_server_t *s, bool unlink_path)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < CG_CTL_MAX_CONNS; i++)
        if (s->conns[i].fd >= 0)
            cg__drop(&s->conns[i]);
    /* a USR2 child that bound the same path owns it now: leave it */
    if (unlink_path && cg_ctl_server_owns_path(s))
        unlink(s->path);
    close(s->fd);
    free(s->path);
    free(s);
}
