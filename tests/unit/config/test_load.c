/*
 * test_load.c - cg_config_load() end to end: argparse forms and messages,
 * exit statuses, GUNICORN_CMD_ARGS / config file / CLI precedence. Each load
 * runs in a child process so its stdout, stderr and chdir() are captured and
 * isolated. Expected texts are what Gunicorn 26.1 prints (prog "cgunicorn").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "src/config/config.h"

typedef struct run {
    int status;
    char out[16384];
    char err[4096];
} run_t;

/* What the child reports on stdout after a successful load. */
typedef void (*report_fn)(const cg_config_t *cfg);

static void read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    lseek(fd, 0, SEEK_SET);
    while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
}

static int file_loader(cg_config_t *cfg, const char *location, void *ctx, char *err,
                       size_t errlen)
{
    /* Stands in for the Python loader: the file holds "name=value" lines. */
    FILE *f;
    char line[256];
    (void)ctx;
    if (strncmp(location, "file:", 5) == 0)
        location += 5;
    f = fopen(location, "r");
    if (f == NULL)
        return -errno;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *eq = strchr(line, '=');
        line[strcspn(line, "\n")] = '\0';
        if (eq == NULL)
            continue;
        *eq = '\0';
        if (cg_config_set_string(cfg, line, eq + 1, CG_SRC_FILE, err, errlen) < 0) {
            fclose(f);
            return -EINVAL;
        }
    }
    fclose(f);
    return 0;
}

static run_t *run_load(const char *cmd_args, bool with_loader, report_fn report, ...)
{
    static run_t r;
    char *argv[32];
    int argc = 0, wstatus;
    va_list ap;
    FILE *o = tmpfile(), *e = tmpfile();
    pid_t pid;

    argv[argc++] = "/usr/local/bin/cgunicorn";
    va_start(ap, report);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cg_config_t cfg;
        int rc;
        dup2(fileno(o), 1);
        dup2(fileno(e), 2);
        unsetenv("PORT");
        unsetenv("WEB_CONCURRENCY");
        unsetenv("FORWARDED_ALLOW_IPS");
        if (cmd_args)
            setenv("GUNICORN_CMD_ARGS", cmd_args, 1);
        else
            unsetenv("GUNICORN_CMD_ARGS");
        setenv("COLUMNS", "80", 1);
        rc = cg_config_load(&cfg, argc, argv, with_loader ? file_loader : NULL, NULL);
        if (rc == 0 && report != NULL)
            report(&cfg);
        cg_config_free(&cfg);
        fflush(stdout);
        fflush(stderr);
        _exit(rc < 0 ? 100 : rc);
    }
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    r.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    read_all(fileno(o), r.out, sizeof(r.out));
    read_all(fileno(e), r.err, sizeof(r.err));
    fclose(o);
    fclose(e);
    return &r;
}

static void report_basic(const cg_config_t *cfg)
{
    printf("workers=%ld threads=%ld timeout=%ld app=%s proc=%s\n", cfg->workers, cfg->threads,
           cfg->timeout, cfg->app_uri, cfg->default_proc_name);
    for (size_t i = 0; i < cfg->bind.n; i++)
        printf("bind=%s\n", cfg->bind.v[i]);
    printf("daemon=%d reload=%d sendfile=%d pp=%s umask=%ld name=%s\n", cfg->daemon, cfg->reload,
           cfg->sendfile, cfg->proxy_protocol, cfg->umask, cfg->proc_name ? cfg->proc_name : "None");
    printf("src workers=%d threads=%d\n", cfg->source[CG_SETTING_workers],
           cfg->source[CG_SETTING_threads]);
}

/* The status, with the child's stderr in the failure message. */
#define assert_status(r, want)                                                                   \
    do {                                                                                         \
        if ((r)->status != (want))                                                               \
            fail_msg("status %d, want %d; stderr: %s", (r)->status, (want), (r)->err);           \
    } while (0)

#define USAGE "usage: cgunicorn [OPTIONS] [APP_MODULE]\n"

static void test_cli_forms(void **state)
{
    run_t *r;
    (void)state;
    r = run_load(NULL, false, report_basic, "-w4", "--threads=3", "-t", "5", "-b", "a:1",
                 "--bind=b:2", "--graceful", "7", "app:application", NULL);
    assert_status(r, 0);
    assert_non_null(strstr(r->out, "workers=4 threads=3 timeout=5 app=app:application "
                                   "proc=app:application\n"));
    assert_non_null(strstr(r->out, "bind=a:1\nbind=b:2\n"));

    /* combined flags, optional argument, store_const, auto_int, -- */
    r = run_load(NULL, false, report_basic, "-DR", "--reload", "--proxy-protocol", "--no-sendfile",
                 "-m", "0022", "-n", "x y", "--", "app:b", NULL);
    assert_status(r, 0);
    assert_non_null(strstr(r->out, "app=app:b"));
    assert_non_null(strstr(r->out, "daemon=1 reload=1 sendfile=0 pp=auto umask=18 name=x y\n"));

    /* a --proxy-protocol value is taken when one follows */
    r = run_load(NULL, false, report_basic, "--proxy-protocol", "v2", "app:c", NULL);
    assert_status(r, 0);
    assert_non_null(strstr(r->out, "pp=v2"));

    /* positionals: only the first run counts */
    r = run_load(NULL, false, report_basic, "app:d", "other", "-w", "2", NULL);
    assert_status(r, 0);
    assert_non_null(strstr(r->out, "app=app:d"));
}

static void test_cli_errors(void **state)
{
    run_t *r;
    (void)state;
    r = run_load(NULL, false, NULL, "-w", "abc", "app:a", NULL);
    assert_status(r, 2);
    assert_string_equal(r->err, USAGE "cgunicorn: error: argument -w/--workers: invalid int value: 'abc'\n");

    r = run_load(NULL, false, NULL, "--bogus", "x", "-w", "2", NULL);
    assert_status(r, 2);
    assert_string_equal(r->err, USAGE "cgunicorn: error: unrecognized arguments: --bogus\n");

    r = run_load(NULL, false, NULL, "app:a", "-w", "2", "extra", NULL);
    assert_status(r, 2);
    assert_string_equal(r->err, USAGE "cgunicorn: error: unrecognized arguments: extra\n");

    r = run_load(NULL, false, NULL, "--wor", "3", NULL);
    assert_status(r, 2);
    assert_string_equal(r->err, USAGE "cgunicorn: error: ambiguous option: --wor could match "
                                      "--workers, --worker-class, --worker-connections, "
                                      "--worker-tmp-dir\n");

    r = run_load(NULL, false, NULL, "-m", "08", NULL);
    assert_status(r, 2);
    assert_string_equal(r->err, USAGE "cgunicorn: error: argument -m/--umask: invalid auto_int value: '08'\n");

    r = run_load(NULL, false, NULL, "--reload=yes", NULL);
    assert_status(r, 2);
    assert_string_equal(r->err, USAGE "cgunicorn: error: argument --reload: ignored explicit argument 'yes'\n");

    r = run_load(NULL, false, NULL, "-w", NULL);
    assert_status(r, 2);
    assert_string_equal(r->err, USAGE "cgunicorn: error: argument -w/--workers: expected one argument\n");

    /* validators run after parsing: "Error:" and status 1 */
    r = run_load(NULL, false, NULL, "-w", "-5", "app:a", NULL);
    assert_status(r, 1);
    assert_string_equal(r->err, "\nError: Value must be positive: -5\n");

    r = run_load(NULL, false, NULL, "--header-map", "bogus", "app:a", NULL);
    assert_status(r, 1);
    assert_string_equal(r->err, "\nError: Invalid header map behaviour: bogus\n");

    r = run_load(NULL, false, NULL, "-w", "2", NULL);
    assert_status(r, 1);
    assert_string_equal(r->err, "\nError: No application module specified.\n");
}

static void test_help_version(void **state)
{
    run_t *r;
    (void)state;
    r = run_load(NULL, false, NULL, "-v", "-w", "abc", NULL);
    assert_status(r, 100); /* -1: the caller exits 0 */
    assert_string_equal(r->out, "cgunicorn (version 27.0.1)\n");

    r = run_load(NULL, false, NULL, "--help", NULL);
    assert_status(r, 100);
    {
        const char *head =
            USAGE "\noptions:\n  -h, --help            show this help message and exit\n"
                  "  -v, --version         show program's version number and exit\n\n"
                  "Config File:\n  -c CONFIG, --config CONFIG\n";
        assert_int_equal(strncmp(r->out, head, strlen(head)), 0);
    }
    assert_non_null(strstr(r->out, "\nWorker Processes:\n  -w INT, --workers INT\n"
                                   "                        How many worker processes serve "
                                   "requests. [1]\n"));
    assert_non_null(strstr(r->out, "  --proxy-protocol [MODE]\n"));
    assert_non_null(strstr(r->out, "  -D, --daemon          "));
    assert_non_null(strstr(r->out, "--proxy-allow-from PROXY_ALLOW_IPS"));
    assert_null(strstr(r->out, "Server Hooks")); /* no CLI flags there */
}

static void test_env_precedence(void **state)
{
    run_t *r;
    (void)state;
    /* GUNICORN_CMD_ARGS < CLI; positionals in the variable are ignored */
    r = run_load("-w 3 --threads '4' ignored:app", false, report_basic, "-w", "2", "app:a", NULL);
    assert_status(r, 0);
    assert_non_null(strstr(r->out, "workers=2 threads=4 timeout=30 app=app:a"));
    assert_non_null(strstr(r->out, "src workers=4 threads=3\n"));

    r = run_load("-w 'abc", false, NULL, "app:a", NULL);
    assert_status(r, 1);
    assert_string_equal(r->err, "\nError: No closing quotation\n");

    r = run_load("--bogus", false, NULL, "app:a", NULL);
    assert_status(r, 2);
    assert_string_equal(r->err, USAGE "cgunicorn: error: unrecognized arguments: --bogus\n");
}

static void test_config_file(void **state)
{
    char path[] = "/tmp/cg_test_cfgXXXXXX";
    int fd = mkstemp(path);
    char arg[64];
    run_t *r;
    FILE *f;
    (void)state;

    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs("workers=5\nthreads=6\ntimeout=7\nwsgi_app=file:app\n", f);
    fclose(f);

    /* file < GUNICORN_CMD_ARGS < CLI */
    r = run_load("--threads 8", true, report_basic, "-c", path, "-t", "9", NULL);
    assert_status(r, 0);
    assert_non_null(strstr(r->out, "workers=5 threads=8 timeout=9 app=file:app"));

    /* -c given only in GUNICORN_CMD_ARGS, with the file: prefix */
    snprintf(arg, sizeof(arg), "-c file:%s", path);
    r = run_load(arg, true, report_basic, NULL);
    assert_status(r, 0);
    assert_non_null(strstr(r->out, "workers=5 threads=6 timeout=7 app=file:app"));

    /* no loader: refuse rather than ignore */
    r = run_load(NULL, false, NULL, "-c", path, "app:a", NULL);
    assert_status(r, 1);
    assert_non_null(strstr(r->err, "Error: config files are not supported yet: "));
    assert_non_null(strstr(r->err, path));

    r = run_load(NULL, true, NULL, "-c", "/nonexistent.conf.py", "app:a", NULL);
    assert_status(r, 1);
    assert_string_equal(r->err, "\nError: '/nonexistent.conf.py' doesn't exist\n");

    /* an invalid value in the file */
    f = fopen(path, "w");
    fputs("workers=x\n", f);
    fclose(f);
    r = run_load(NULL, true, NULL, "-c", path, "app:a", NULL);
    assert_status(r, 1);
    assert_string_equal(r->err, "\nError: invalid literal for int() with base 0: 'x'\n");
    unlink(path);
}

/* The arity each hook must have, as Gunicorn's validators demand it. */
static void test_callable_arity(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int arity;
    } want[] = {
        {"on_starting", 1},      {"on_reload", 1},       {"when_ready", 1},
        {"pre_fork", 2},         {"post_fork", 2},       {"post_worker_init", 1},
        {"worker_int", 1},       {"worker_abort", 1},    {"pre_exec", 1},
        {"pre_request", 2},      {"post_request", 0},    {"child_exit", 2},
        {"worker_exit", 2},      {"nworkers_changed", 3}, {"on_exit", 1},
        {"ssl_context", 2},      {"workers", -1},        {"bind", -1},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const cg_setting_desc_t *d = cg_config_find(want[i].name);
        assert_non_null(d);
        assert_int_equal(cg_config_callable_arity(d), want[i].arity);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_forms),
        cmocka_unit_test(test_cli_errors),
        cmocka_unit_test(test_help_version),
        cmocka_unit_test(test_env_precedence),
        cmocka_unit_test(test_config_file),
        cmocka_unit_test(test_callable_arity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
