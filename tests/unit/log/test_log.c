/*
 * test_log.c - error-log records, log files, reopen after rotation, and the
 * access-log writer (lines, Python-style logging errors on stderr).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <regex.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../../src/log/log.h"

#define S(lit) ((cg_str_t){(lit), sizeof(lit) - 1})

static char dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/cg_test_log.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    setenv("TZ", "UTC", 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *path_in(const char *name)
{
    static char p[8][128];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof(p[k]), "%s/%s", dir, name);
    return p[k];
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 17];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static void assert_matches(const char *text, const char *re)
{
    regex_t rx;
    assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NEWLINE), 0);
    int r = regexec(&rx, text, 0, NULL, 0);
    regfree(&rx);
    if (r != 0)
        fail_msg("'%s' does not match /%s/", text, re);
}

#define PREFIX "^\\[[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}\\] \\[%d\\] "

static void test_error_line_format(void **state)
{
    (void)state;
    cg_log_t log;
    char err[256], re[256];
    char *p = path_in("error.log");
    assert_int_equal(cg_log_open(&log, p, "DeBuG", NULL, NULL, err, sizeof(err)), 0);
    assert_int_equal(log.level, CG_LOG_DEBUG);
    assert_int_equal(log.access_fd, -1);
    cg_log_info(&log, "Starting gunicorn %s", "27.0.1");
    cg_log_critical(&log, "WORKER TIMEOUT (pid:%d)", 12);
    cg_log_debug(&log, "Current configuration:\n  a: 1");
    cg_log_warning(&log, "w");
    cg_log_error(&log, "e");
    cg_log_close(&log);

    char *text = slurp(p, NULL);
    char lines[6][512];
    int n = 0;
    for (char *s = strtok(text, "\n"); s && n < 6; s = strtok(NULL, "\n"))
        snprintf(lines[n++], sizeof(lines[0]), "%s", s);
    assert_int_equal(n, 6);
    int pid = (int)getpid();
    snprintf(re, sizeof(re), PREFIX "\\[INFO\\] Starting gunicorn 27\\.0\\.1$", pid);
    assert_matches(lines[0], re);
    snprintf(re, sizeof(re), PREFIX "\\[CRITICAL\\] WORKER TIMEOUT \\(pid:12\\)$", pid);
    assert_matches(lines[1], re);
    snprintf(re, sizeof(re), PREFIX "\\[DEBUG\\] Current configuration:$", pid);
    assert_matches(lines[2], re);
    assert_string_equal(lines[3], "  a: 1");
    snprintf(re, sizeof(re), PREFIX "\\[WARNING\\] w$", pid);
    assert_matches(lines[4], re);
    snprintf(re, sizeof(re), PREFIX "\\[ERROR\\] e$", pid);
    assert_matches(lines[5], re);

    /* the date is local time, with the offset */
    setenv("TZ", "XYZ-5:30", 1);
    assert_int_equal(cg_log_open(&log, p, "info", NULL, NULL, err, sizeof(err)), 0);
    cg_log_info(&log, "tz");
    cg_log_close(&log);
    setenv("TZ", "UTC", 1);
    text = slurp(p, NULL);
    assert_non_null(strstr(text, " +0530] ["));
    unlink(p);
}

static void test_levels(void **state)
{
    (void)state;
    struct {
        const char *name;
        cg_log_level_t want;
    } cases[] = {
        {"debug", CG_LOG_DEBUG},       {"INFO", CG_LOG_INFO},   {"Warning", CG_LOG_WARNING},
        {"error", CG_LOG_ERROR},       {"CRITICAL", CG_LOG_CRITICAL},
        {"warn", CG_LOG_INFO},         {"", CG_LOG_INFO},       {"verbose", CG_LOG_INFO},
    };
    char err[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cg_log_t log;
        assert_int_equal(cg_log_open(&log, "-", cases[i].name, NULL, NULL, err, sizeof(err)), 0);
        assert_int_equal(log.level, cases[i].want);
        assert_int_equal(log.error_fd, 2);
        assert_null(log.error_path);
        cg_log_close(&log);
    }

    cg_log_t log;
    char *p = path_in("levels.log");
    assert_int_equal(cg_log_open(&log, p, "warning", NULL, NULL, err, sizeof(err)), 0);
    assert_false(cg_log_enabled(&log, CG_LOG_INFO));
    assert_true(cg_log_enabled(&log, CG_LOG_WARNING));
    cg_log_info(&log, "hidden");
    cg_log_debug(&log, "hidden");
    cg_log_error(&log, "shown");
    cg_log_close(&log);
    char *text = slurp(p, NULL);
    assert_null(strstr(text, "hidden"));
    assert_non_null(strstr(text, "[ERROR] shown\n"));
    unlink(p);
}

static void test_text_and_long(void **state)
{
    (void)state;
    cg_log_t log;
    char err[256];
    char *p = path_in("text.log");
    assert_int_equal(cg_log_open(&log, p, "info", NULL, NULL, err, sizeof(err)), 0);
    const char tb[] = "Error handling request /\nTraceback (most recent call last):\n"
                      "  File \"app.py\", line 1\nValueError: x\n";
    cg_log_text(&log, CG_LOG_ERROR, tb, strlen(tb));
    cg_log_text(&log, CG_LOG_ERROR, "no newline", 10);
    static char big[20000];
    memset(big, 'x', sizeof(big) - 1);
    cg_log_info(&log, "%s", big);
    cg_log_text(&log, CG_LOG_INFO, big, sizeof(big) - 1);
    cg_log_close(&log);

    size_t len;
    char *text = slurp(p, &len);
    char *a = strstr(text, "[ERROR] Error handling request /\nTraceback");
    assert_non_null(a);
    assert_non_null(strstr(a, "ValueError: x\n["));
    assert_non_null(strstr(text, "[ERROR] no newline\n["));
    char *b = strstr(text, "[INFO] xxx");
    assert_non_null(b);
    assert_int_equal(strspn(b + 7, "x"), sizeof(big) - 1);
    assert_int_equal(b[7 + sizeof(big) - 1], '\n');
    char *c = strstr(b + 7 + sizeof(big), "[INFO] xxx");
    assert_non_null(c);
    assert_int_equal(strspn(c + 7, "x"), sizeof(big) - 1);
    assert_int_equal(c[7 + sizeof(big) - 1], '\n');
    assert_int_equal(text[len - 1], '\n');
    unlink(p);
}

static void test_open_failure(void **state)
{
    (void)state;
    cg_log_t log;
    char err[256];
    char *p = path_in("missing/dir/error.log");
    assert_int_equal(cg_log_open(&log, p, "info", NULL, NULL, err, sizeof(err)), -ENOENT);
    char want[300];
    snprintf(want, sizeof(want),
             "Error: '%s' isn't writable [FileNotFoundError(2, 'No such file or directory')]", p);
    assert_string_equal(err, want);
    assert_int_equal(log.error_fd, -1);
    assert_int_equal(cg_log_open(&log, "-", "info", dir, "%(h)s", err, sizeof(err)), -EISDIR);
    assert_non_null(strstr(err, "IsADirectoryError(21, 'Is a directory')"));
    assert_int_equal(cg_log_open(&log, "-", "info", "-", "%s", err, sizeof(err)), -ENOTSUP);
}

static void test_file_mode(void **state)
{
    (void)state;
    cg_log_t log;
    char err[256];
    char *p = path_in("mode.log");
    mode_t old = umask(022);
    assert_int_equal(cg_log_open(&log, p, "info", NULL, NULL, err, sizeof(err)), 0);
    umask(old);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_true(fcntl(log.error_fd, F_GETFD) & FD_CLOEXEC);
    cg_log_close(&log);
    unlink(p);
}

static void test_reopen_after_rename(void **state)
{
    (void)state;
    cg_log_t log;
    char err[256];
    char *p = path_in("rot.log"), *a = path_in("access.log");
    char rotated[128], arot[128];
    snprintf(rotated, sizeof(rotated), "%s.1", p);
    snprintf(arot, sizeof(arot), "%s.1", a);
    assert_int_equal(cg_log_open(&log, p, "info", a, "%(m)s %(U)s", err, sizeof(err)), 0);
    int efd = log.error_fd, afd = log.access_fd;
    int shared = dup(efd); /* like a forked worker's copy: must follow the reopen */
    assert_true(shared >= 0);

    cg_access_info_t in = {.method = S("GET"), .path_info = S("/one"), .sent = 1};
    cg_log_info(&log, "before");
    cg_log_access(&log, &in);
    assert_int_equal(rename(p, rotated), 0);
    assert_int_equal(rename(a, arot), 0);
    cg_log_info(&log, "still old");
    assert_int_equal(cg_log_reopen(&log), 0);
    assert_int_equal(log.error_fd, efd);
    assert_int_equal(log.access_fd, afd);
    assert_true(fcntl(efd, F_GETFD) & FD_CLOEXEC);
    cg_log_info(&log, "after");
    in.path_info = S("/two");
    cg_log_access(&log, &in);
    cg_log_close(&log);
    close(shared);

    char *text = slurp(rotated, NULL);
    assert_non_null(strstr(text, "[INFO] before\n"));
    assert_non_null(strstr(text, "[INFO] still old\n"));
    assert_null(strstr(text, "after"));
    text = slurp(p, NULL);
    assert_null(strstr(text, "before"));
    assert_non_null(strstr(text, "[INFO] after\n"));
    assert_string_equal(slurp(arot, NULL), "GET /one\n");
    assert_string_equal(slurp(a, NULL), "GET /two\n");

    /* reopen failing keeps the old descriptors */
    char *sub = path_in("sub"), subfile[160];
    snprintf(subfile, sizeof(subfile), "%s/x.log", sub);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(cg_log_open(&log, subfile, "info", NULL, NULL, err, sizeof(err)), 0);
    efd = log.error_fd;
    assert_int_equal(unlink(subfile), 0);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(cg_log_reopen(&log), -ENOENT);
    assert_int_equal(log.error_fd, efd);
    cg_log_info(&log, "into the unlinked file"); /* fd still valid */
    cg_log_close(&log);
    unlink(p);
    unlink(rotated);
    unlink(arot);
    unlink(a);
}

/* Run fn with fd 2 redirected into a file; return what it wrote there. */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
    char *p = path_in("stderr.txt");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    int saved = dup(2);
    dup2(fd, 2);
    close(fd);
    fn(arg);
    dup2(saved, 2);
    close(saved);
    return slurp(p, NULL);
}

struct access_call {
    cg_log_t *log;
    cg_access_info_t *in;
};

static void do_access(void *arg)
{
    struct access_call *c = arg;
    cg_log_access(c->log, c->in);
}

static void test_access_writer(void **state)
{
    (void)state;
    cg_log_t log;
    char err[256];
    char *a = path_in("acc.log");
    cg_http_header_t h[2] = {
        {S("AUTHORIZATION"), S("Basic dXNlcg"), 0},
        {S("USER-AGENT"), S("ua"), 0},
    };
    cg_access_info_t in = {.remote_addr = S("10.0.0.1"), .method = S("GET"), .status = S("200 OK"),
                           .sent = 5, .req_headers = h, .n_req_headers = 2};

    /* a Python TypeError: no line, a logging-error report on stderr */
    assert_int_equal(cg_log_open(&log, "-", "info", a, "%(h)s %(s)d", err, sizeof(err)), 0);
    struct access_call call = {&log, &in};
    char *out = capture_stderr(do_access, &call);
    assert_string_equal(out, "--- Logging error ---\n"
                             "TypeError: %d format: a real number is required, not str\n"
                             "Message: '%(h)s %(s)d'\n");
    cg_log_close(&log);
    assert_string_equal(slurp(a, NULL), "");

    /* debug level: Gunicorn logs why the Basic user could not be decoded */
    char *e = path_in("err.log");
    assert_int_equal(cg_log_open(&log, e, "debug", a, "%(h)s %(u)s \"%(a)s\" %(s)s", err,
                                 sizeof(err)),
                     0);
    cg_log_access(&log, &in);
    /* a long line takes the heap path and is still written whole */
    static char ua[10000];
    memset(ua, 'u', sizeof(ua) - 1);
    h[1].value = (cg_str_t){ua, sizeof(ua) - 1};
    h[0].value = S("Basic dXNlcg==");
    cg_log_access(&log, &in);
    cg_log_close(&log);
    assert_non_null(strstr(slurp(e, NULL), "[DEBUG] Couldn't get username: Incorrect padding\n"));
    size_t len;
    char *text = slurp(a, &len);
    assert_int_equal(strncmp(text, "10.0.0.1 - \"ua\" 200\n10.0.0.1 user \"uuu", 38), 0);
    assert_int_equal(len, 20 + 15 + sizeof(ua) - 1 + 6);
    assert_string_equal(text + len - 6, "\" 200\n");
    unlink(a);
    unlink(e);

    /* accesslog None: off */
    assert_int_equal(cg_log_open(&log, "-", "info", NULL, "%(h)s", err, sizeof(err)), 0);
    assert_false(cg_log_access_enabled(&log));
    cg_log_access(&log, &in); /* no-op, must not crash */
    cg_log_close(&log);
    assert_int_equal(cg_log_open(&log, "-", "info", "-", "%(h)s", err, sizeof(err)), 0);
    assert_true(cg_log_access_enabled(&log));
    assert_int_equal(log.access_fd, 1);
    cg_log_close(&log);
}

/* A sink that records what the log hands it. */
struct fake_sink {
    int errors, accesses, reopens;
    bool take; /* false: refuse, the log writes itself */
    cg_log_level_t level;
    char msg[256];
    const cg_access_info_t *info;
};

static bool fake_error(void *ctx, cg_log_level_t level, const char *msg, size_t len)
{
    struct fake_sink *f = ctx;
    f->errors++;
    f->level = level;
    snprintf(f->msg, sizeof(f->msg), "%.*s", (int)len, msg);
    return f->take;
}

static bool fake_access(void *ctx, const cg_access_info_t *info)
{
    struct fake_sink *f = ctx;
    f->accesses++;
    f->info = info;
    return f->take;
}

static int fake_reopen(void *ctx)
{
    ((struct fake_sink *)ctx)->reopens++;
    return 0;
}

static void test_sink(void **state)
{
    (void)state;
    cg_log_t log;
    char err[256], re[256];
    char *e = path_in("sink_err.log"), *a = path_in("sink_acc.log");
    struct fake_sink f = {.take = true};
    const cg_log_sink_t sink = {&f, fake_error, fake_access, fake_reopen, NULL};
    cg_http_header_t h[1] = {{S("AUTHORIZATION"), S("Basic dXNlcjpwdw=="), 0}};
    cg_access_info_t in = {.remote_addr = S("10.0.0.1"), .method = S("GET"), .status = S("200 OK"),
                           .sent = 5, .req_headers = h, .n_req_headers = 1};

    /* attached but not in use: nothing changes */
    assert_int_equal(cg_log_open(&log, e, "info", NULL, "%(h)s", err, sizeof(err)), 0);
    log.sink = &sink;
    assert_false(cg_log_access_enabled(&log));
    cg_log_info(&log, "plain %d", 1);
    assert_int_equal(f.errors, 0);

    /* in use: the text alone goes to the sink, the file gets nothing; access
     * records are wanted even without accesslog (Gunicorn's rule) */
    log.to_sink = true;
    assert_true(cg_log_access_enabled(&log));
    cg_log_warning(&log, "to %s\n", "python");
    assert_int_equal(f.errors, 1);
    assert_int_equal(f.level, CG_LOG_WARNING);
    assert_string_equal(f.msg, "to python\n");
    cg_log_text(&log, CG_LOG_ERROR, "tb\nline", 8);
    assert_string_equal(f.msg, "tb\nline");
    cg_log_debug(&log, "below the level: not even formatted");
    assert_int_equal(f.errors, 2);
    cg_log_access(&log, &in);
    assert_int_equal(f.accesses, 1);
    assert_ptr_equal(f.info, &in);
    assert_int_equal(cg_log_reopen(&log), 0);
    assert_int_equal(f.reopens, 1);

    /* a sink that cannot take a record: the log writes it with its prefix */
    f.take = false;
    cg_log_error(&log, "fallback");
    cg_log_access(&log, &in); /* no accesslog: dropped */
    assert_int_equal(f.accesses, 2);
    cg_log_close(&log);
    char *text = slurp(e, NULL);
    snprintf(re, sizeof(re), PREFIX "\\[INFO\\] plain 1\n", (int)getpid());
    assert_matches(text, re);
    assert_null(strstr(text, "python"));
    assert_non_null(strstr(text, "] [ERROR] fallback\n"));
    unlink(e);

    /* ... and with accesslog set it writes the line itself */
    assert_int_equal(cg_log_open(&log, "-", "info", a, "%(h)s %(u)s", err, sizeof(err)), 0);
    log.sink = &sink;
    log.to_sink = true;
    cg_log_access(&log, &in);
    cg_log_close(&log);
    assert_string_equal(slurp(a, NULL), "10.0.0.1 user\n");
    unlink(a);
}

static void test_sink_atoms(void **state)
{
    (void)state;
    cg_access_fmt_t *fmt;
    char err[256];
    cg_str_t names[4];
    assert_int_equal(cg_access_fmt_compile("%(h)s %({X-Req}e)s %({a}i)s %({Other}E)s", &fmt, err,
                                           sizeof(err)),
                     0);
    assert_int_equal(cg_access_fmt_environ_names(fmt, names, 4), 2);
    assert_true(cg_str_eq(names[0], "x-req", 5));
    assert_true(cg_str_eq(names[1], "other", 5));
    assert_int_equal(cg_access_fmt_environ_names(fmt, names, 1), 2); /* count beyond cap */
    assert_int_equal(cg_access_fmt_environ_names(NULL, names, 4), 0);
    cg_access_fmt_free(fmt);

    cg_http_header_t h[1] = {{S("AUTHORIZATION"), S("Basic dXNlcjpwdw=="), 0}};
    cg_access_info_t in = {.req_headers = h, .n_req_headers = 1};
    size_t len = 0;
    char *u = cg_access_user(&in, &len);
    assert_non_null(u);
    assert_int_equal(len, 4);
    assert_string_equal(u, "user");
    free(u);
    h[0].value = S("Basic dXNlcg"); /* bad padding: no user */
    assert_null(cg_access_user(&in, &len));
    h[0].value = S("Bearer abc");
    assert_null(cg_access_user(&in, &len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_line_format), cmocka_unit_test(test_levels),
        cmocka_unit_test(test_text_and_long),     cmocka_unit_test(test_open_failure),
        cmocka_unit_test(test_file_mode),         cmocka_unit_test(test_reopen_after_rename),
        cmocka_unit_test(test_access_writer),     cmocka_unit_test(test_sink),
        cmocka_unit_test(test_sink_atoms),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
