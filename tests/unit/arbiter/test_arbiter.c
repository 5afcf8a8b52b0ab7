/*
 * test_arbiter.c - the master loop with fake workers.
 *
 * Each test forks a process that runs cg_arbiter_run_with() with a fake
 * worker main (chosen through `fake_mode`, inherited across fork), then
 * drives it with signals and watches its children (via /proc) and its error
 * log. Every wait is bounded; the teardown SIGKILLs the whole process group.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "src/arbiter/arbiter.h"
#include "src/os/os.h"

enum fake_mode {
    FAKE_SERVE,      /* notify, exit 0 on TERM/QUIT/INT */
    FAKE_BOOT_FAIL,  /* return 3 at once */
    FAKE_LOAD_FAIL,  /* return 4 at once */
    FAKE_HANG,       /* never notify, ignore SIGABRT */
    FAKE_STUBBORN,   /* notify, ignore TERM, exit 0 on QUIT */
    FAKE_HANG_ON_TERM, /* notify until TERM, then hang (no notify, ignore ABRT) until QUIT */
};

static enum fake_mode fake_mode;
static char test_dir[64];
static char log_path[128];
static pid_t master = -1;

/* ---- the fake worker ---------------------------------------------------- */

static volatile sig_atomic_t fake_stop, fake_quit, fake_usr1;

static void fake_on_stop(int s)
{
    fake_stop = 1;
    if (s != SIGTERM)
        fake_quit = 1;
}

static void fake_on_usr1(int s)
{
    fake_usr1 = 1;
}

static int fake_worker_main(cg_worker_t *w)
{
    struct sigaction sa = {0};
    sigemptyset(&sa.sa_mask);
    switch (fake_mode) {
    case FAKE_BOOT_FAIL:
        return CG_WORKER_EXIT_BOOT_ERROR;
    case FAKE_LOAD_FAIL:
        return CG_WORKER_EXIT_APP_LOAD_ERROR;
    case FAKE_HANG:
        sa.sa_handler = SIG_IGN;
        sigaction(SIGABRT, &sa, NULL);
        for (;;)
            pause();
    case FAKE_SERVE:
    case FAKE_STUBBORN:
    case FAKE_HANG_ON_TERM:
        break;
    }
    sa.sa_handler = fake_on_stop;
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (fake_mode == FAKE_STUBBORN) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGTERM, &sa, NULL);
    } else {
        sigaction(SIGTERM, &sa, NULL);
    }
    sa.sa_handler = fake_on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    while (!fake_stop) {
        cg_heartbeat_notify(&w->hb);
        if (fake_usr1) {
            fake_usr1 = 0;
            char p[200];
            snprintf(p, sizeof(p), "%s/usr1-%d", test_dir, (int)getpid());
            FILE *fp = fopen(p, "w");
            if (fp)
                fclose(fp);
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (fake_mode == FAKE_HANG_ON_TERM) {
        /* a worker stuck in its last request: only QUIT or SIGKILL ends it */
        sa.sa_handler = SIG_IGN;
        sigaction(SIGABRT, &sa, NULL);
        while (!fake_quit)
            pause();
    }
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0)
        ;
}

static char *slurp(const char *path)
{
    static char buf[1 << 18];
    FILE *fp = fopen(path, "r");
    size_t n = fp ? fread(buf, 1, sizeof(buf) - 1, fp) : 0;
    if (fp)
        fclose(fp);
    buf[n] = '\0';
    return buf;
}

static bool log_has(const char *needle)
{
    return strstr(slurp(log_path), needle) != NULL;
}

static bool wait_log(const char *needle, unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        if (log_has(needle))
            return true;
        sleep_ms(20);
    }
    return false;
}

/* Live (non-zombie) children of the master, from /proc. */
static size_t children(pid_t *out, size_t cap)
{
    size_t n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char p[300], buf[512];
        snprintf(p, sizeof(p), "/proc/%s/stat", e->d_name);
        FILE *fp = fopen(p, "r");
        if (!fp)
            continue;
        size_t k = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[k] = '\0';
        char *rp = strrchr(buf, ')');
        char st;
        int ppid;
        if (rp && sscanf(rp + 2, "%c %d", &st, &ppid) == 2 && ppid == master && st != 'Z') {
            if (n < cap)
                out[n] = atoi(e->d_name);
            n++;
        }
    }
    if (d)
        closedir(d);
    return n;
}

static bool wait_children(size_t want, unsigned timeout_ms)
{
    pid_t p[64];
    uint64_t end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        if (children(p, 64) == want)
            return true;
        sleep_ms(20);
    }
    return false;
}

/* Wait for the master to exit; returns its exit status or -1 on timeout. */
static int wait_master(unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        int st;
        pid_t r = waitpid(master, &st, WNOHANG);
        if (r == master) {
            master = -1;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        sleep_ms(20);
    }
    return -1;
}

typedef struct opts {
    long workers, timeout, graceful_timeout;
    const char *bind;
    const char *pidfile;
    bool hooks;
    long dirty_workers; /* with one dirty app, "m:App" */
} opts_t;

/* ---- a hook table that logs each call ------------------------------------ */

static void h_on_starting(void *ctx, struct cg_arbiter *a)
{
    cg_log_info(a->log, "hook on_starting");
}
static void h_when_ready(void *ctx, struct cg_arbiter *a)
{
    cg_log_info(a->log, "hook when_ready");
}
static void h_pre_fork(void *ctx, struct cg_arbiter *a, struct cg_worker *w)
{
    cg_log_info(a->log, "hook pre_fork age=%d", w->age);
}
static void h_child_exit(void *ctx, struct cg_arbiter *a, struct cg_worker *w)
{
    cg_log_info(a->log, "hook child_exit pid=%d", (int)w->pid);
}
static void h_nworkers(void *ctx, struct cg_arbiter *a, int new_value, int old_value)
{
    cg_log_info(a->log, "hook nworkers_changed %d %d", new_value, old_value);
}
static void h_on_exit(void *ctx, struct cg_arbiter *a)
{
    cg_log_info(a->log, "hook on_exit");
}
static void h_on_reload(void *ctx, struct cg_arbiter *a)
{
    cg_log_info(a->log, "hook on_reload");
}
static int fork_counts[3];
static void h_fork_prepare(void *ctx)
{
    fork_counts[0]++;
}
static void h_fork_parent(void *ctx)
{
    fork_counts[1]++;
}
static void h_fork_child(void *ctx)
{
    fork_counts[2]++;
}
static const cg_hooks_t test_hooks = {
    .on_starting = h_on_starting,
    .on_reload = h_on_reload,
    .when_ready = h_when_ready,
    .pre_fork = h_pre_fork,
    .child_exit = h_child_exit,
    .nworkers_changed = h_nworkers,
    .on_exit = h_on_exit,
    .fork_prepare = h_fork_prepare,
    .fork_parent = h_fork_parent,
    .fork_child = h_fork_child,
};

static void start_master(enum fake_mode mode, const opts_t *o)
{
    fake_mode = mode;
    fflush(NULL);
    master = fork();
    assert_true(master >= 0);
    if (master > 0) {
        setpgid(master, master);
        /* booted once "Using worker" is logged (or it failed early) */
        return;
    }
    setpgid(0, 0);
    static cg_config_t cfg;
    static cg_log_t log;
    char err[256];
    memset(&cfg, 0, sizeof(cfg));
    cg_strv_push(&cfg.bind, o->bind ? o->bind : "127.0.0.1:0");
    cfg.backlog = 64;
    cfg.workers = o->workers;
    cfg.worker_class = "sync";
    cfg.threads = 1;
    cfg.timeout = o->timeout;
    cfg.graceful_timeout = o->graceful_timeout;
    cfg.pidfile = (char *)o->pidfile;
    if (o->hooks)
        cfg.hooks = &test_hooks;
    if (o->dirty_workers > 0) {
        cfg.dirty_workers = o->dirty_workers;
        cfg.dirty_timeout = 30;
        cfg.dirty_graceful_timeout = 2;
        cg_strv_push(&cfg.dirty_apps, "m:App");
    }
    if (cg_log_open(&log, log_path, "debug", NULL, NULL, err, sizeof(err)) < 0)
        _exit(99);
    _exit(cg_arbiter_run_with(&cfg, &log, fake_worker_main));
}

static int setup(void **state)
{
    strcpy(test_dir, "/tmp/cg-arb-XXXXXX");
    if (!mkdtemp(test_dir))
        return -1;
    snprintf(log_path, sizeof(log_path), "%s/err.log", test_dir);
    /* the masters' default control socket goes in the test's directory,
     * not in ~/.gunicorn where parallel runs would take it from each other */
    setenv("XDG_RUNTIME_DIR", test_dir, 1);
    /* and so do the dirty socket directory and the dirty pid file */
    setenv("TMPDIR", test_dir, 1);
    master = -1;
    return 0;
}

static int teardown(void **state)
{
    if (master > 0) {
        kill(-master, SIGKILL);
        waitpid(master, NULL, 0);
        master = -1;
    }
    if (getenv("CG_TEST_SHOW_LOG"))
        fputs(slurp(log_path), stderr);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", test_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_startup_lines_and_term(void **state)
{
    char sock[128], spec[160], pidfile[160], want[256];
    snprintf(sock, sizeof(sock), "%s/s.sock", test_dir);
    snprintf(spec, sizeof(spec), "unix:%s", sock);
    snprintf(pidfile, sizeof(pidfile), "%s/g.pid", test_dir);
    opts_t o = {.workers = 2, .timeout = 30, .graceful_timeout = 5, .bind = spec,
                .pidfile = pidfile};
    start_master(FAKE_SERVE, &o);
    assert_true(wait_log("[INFO] Using worker: sync\n", 3000));
    assert_true(wait_children(2, 3000));

    assert_true(log_has("[INFO] Starting gunicorn 27.0.1\n"));
    assert_true(log_has("[DEBUG] Arbiter booted\n"));
    snprintf(want, sizeof(want), "[INFO] Listening at: unix:%s (%d)\n", sock, (int)master);
    assert_true(log_has(want));
    assert_true(log_has("[DEBUG] 2 workers\n"));
    snprintf(want, sizeof(want), "%d\n", (int)master);
    assert_string_equal(slurp(pidfile), want);
    struct stat st;
    assert_int_equal(stat(sock, &st), 0);

    kill(master, SIGTERM);
    assert_int_equal(wait_master(4000), 0);
    assert_true(log_has("[INFO] Handling signal: term\n"));
    assert_true(log_has("[INFO] Shutting down: Master\n"));
    assert_false(log_has("Reason:"));
    assert_int_equal(stat(sock, &st), -1);    /* unix socket unlinked */
    assert_int_equal(stat(pidfile, &st), -1); /* pidfile removed */
}

/* Find "<prefix><number>" in the log; the number, or -1. */
static long log_number(const char *prefix)
{
    const char *p = strstr(slurp(log_path), prefix);
    return p != NULL ? strtol(p + strlen(prefix), NULL, 10) : -1;
}

/* The dirty arbiter (src/arbiter/dirty.c): a child of the master running
 * the same arbiter with the fake workers, restarted when it dies, stopped
 * with the master; its socket directory goes with it. */
static void test_dirty_arbiter(void **state)
{
    opts_t o = {.workers = 1, .timeout = 30, .graceful_timeout = 2, .dirty_workers = 2};
    start_master(FAKE_SERVE, &o);
    assert_true(wait_log("[INFO] Using worker: cgunicorn.dirty._worker.DirtyWorker\n", 3000));
    pid_t darb = (pid_t)log_number("[INFO] Spawned dirty arbiter (pid: ");
    assert_true(darb > 0);
    /* the HTTP worker and the dirty arbiter are the master's children */
    assert_true(wait_children(2, 3000));
    pid_t kids[8];
    uint64_t end = now_ms() + 3000;
    while (now_ms() < end && cg_os_proc_children(darb, kids, 8) != 2)
        sleep_ms(20);
    assert_int_equal(cg_os_proc_children(darb, kids, 8), 2);
    char want[256];
    snprintf(want, sizeof(want), "[INFO] Dirty arbiter starting (pid: %d)\n", (int)darb);
    assert_true(log_has(want));
    const char *l = strstr(slurp(log_path), "Listening at: unix:");
    assert_non_null(l);
    char sock[160];
    assert_int_equal(sscanf(l, "Listening at: unix:%159s", sock), 1);
    struct stat st;
    assert_int_equal(stat(sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    char dir[160];
    snprintf(dir, sizeof(dir), "%s", sock);
    *strrchr(dir, '/') = '\0';
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    /* Gunicorn's well-known pid file: $TMPDIR/gunicorn-dirty-NAME.pid */
    char pidfile[192], line[32];
    snprintf(pidfile, sizeof(pidfile), "%s/gunicorn-dirty-gunicorn.pid", test_dir);
    snprintf(line, sizeof(line), "%d\n", (int)darb);
    assert_string_equal(slurp(pidfile), line);
    assert_int_equal(stat(pidfile, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* a dead dirty arbiter is replaced (after a second at most); its
     * workers, orphaned (the fake ones never look at their parent, the
     * Python DirtyWorker does), are ended here */
    kill(darb, SIGKILL);
    kill(kids[0], SIGKILL);
    kill(kids[1], SIGKILL);
    snprintf(want, sizeof(want), "[ERROR] Dirty arbiter (pid:%d) was sent SIGKILL!", (int)darb);
    assert_true(wait_log(want, 3000));
    end = now_ms() + 5000;
    pid_t again = -1;
    while (now_ms() < end) {
        const char *p = slurp(log_path);
        const char *last = NULL;
        for (const char *q = p; (q = strstr(q, "Spawned dirty arbiter (pid: ")) != NULL; q++)
            last = q;
        again = last ? (pid_t)strtol(last + strlen("Spawned dirty arbiter (pid: "), NULL, 10) : -1;
        if (again != darb)
            break;
        sleep_ms(20);
    }
    assert_true(again > 0 && again != darb);

    kill(master, SIGTERM);
    assert_int_equal(wait_master(8000), 0);
    assert_true(log_has("[INFO] Shutting down: Dirty arbiter\n"));
    assert_int_equal(kill(again, 0), -1);
    assert_int_equal(stat(dir, &st), -1); /* the directory is gone */
    assert_int_equal(stat(pidfile, &st), -1);
}

/* TTOU's floor in a dirty arbiter: the largest `:N` of dirty_apps or limit
 * a worker reported in <i>.limit beside the app's socket, at least 1. */
static void test_dirty_floor(void **state)
{
    static cg_config_t cfg;
    char path[192];
    memset(&cfg, 0, sizeof(cfg));
    cfg.dirty_arbiter = true;
    const char *apps[] = {"m:A", "m:B:3", "m:C:x", "m:D:1:2", "m:E"};
    for (size_t i = 0; i < 5; i++)
        cg_strv_push(&cfg.dirty_apps, apps[i]);
    cg_arbiter_t a;
    memset(&a, 0, sizeof(a));
    a.cfg = &cfg;
    a.dirty_dir = (char *)test_dir; /* the apps' sockets and limits */
    assert_int_equal(cg_arbiter_dirty_floor(&a), 3);
    /* a class's `workers` = 5, reported for m:E */
    snprintf(path, sizeof(path), "%s/4.limit", test_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("5\n", f);
    fclose(f);
    assert_int_equal(cg_arbiter_dirty_floor(&a), 5);
    /* `:N` wins over a report for the same app: only apps without one
     * are looked up */
    snprintf(path, sizeof(path), "%s/1.limit", test_dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("9\n", f);
    fclose(f);
    assert_int_equal(cg_arbiter_dirty_floor(&a), 5);
    /* garbage or nothing: no limit; no app limited: 1 */
    snprintf(path, sizeof(path), "%s/4.limit", test_dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("lots\n", f);
    fclose(f);
    assert_int_equal(cg_arbiter_dirty_floor(&a), 3);
    cg_strv_clear(&cfg.dirty_apps);
    cg_strv_push(&cfg.dirty_apps, "m:A");
    assert_int_equal(cg_arbiter_dirty_floor(&a), 1);
    cg_strv_clear(&cfg.dirty_apps);
    assert_int_equal(cg_arbiter_dirty_floor(&a), 1);
}

static void test_boot_error_halts_with_3(void **state)
{
    opts_t o = {.workers = 2, .timeout = 30, .graceful_timeout = 2};
    start_master(FAKE_BOOT_FAIL, &o);
    assert_int_equal(wait_master(4000), 3);
    const char *log = slurp(log_path);
    assert_non_null(strstr(log, ") exited with code 3.\n"));
    assert_non_null(strstr(log, "[ERROR] Shutting down: Master\n"));
    assert_non_null(strstr(log, "[ERROR] Reason: Worker failed to boot.\n"));
}

static void test_app_load_error_halts_with_4(void **state)
{
    opts_t o = {.workers = 1, .timeout = 30, .graceful_timeout = 2};
    start_master(FAKE_LOAD_FAIL, &o);
    assert_int_equal(wait_master(4000), 4);
    assert_true(log_has("[ERROR] Reason: App failed to load.\n"));
}

static void test_respawn_after_kill(void **state)
{
    opts_t o = {.workers = 1, .timeout = 30, .graceful_timeout = 2};
    start_master(FAKE_SERVE, &o);
    assert_true(wait_children(1, 3000));
    pid_t p[4];
    assert_int_equal(children(p, 4), 1);
    pid_t old = p[0];
    kill(old, SIGKILL);

    char want[128];
    snprintf(want, sizeof(want), "[ERROR] Worker (pid:%d) was sent SIGKILL! Perhaps out of memory?",
             (int)old);
    assert_true(wait_log(want, 3000));
    assert_true(log_has("[DEBUG] Handling signal: cld\n"));
    uint64_t end = now_ms() + 3000;
    bool replaced = false;
    while (now_ms() < end && !replaced) {
        size_t n = children(p, 4);
        replaced = n == 1 && p[0] != old;
        sleep_ms(20);
    }
    assert_true(replaced);
    kill(master, SIGTERM);
    assert_int_equal(wait_master(4000), 0);
}

static void test_ttin_ttou(void **state)
{
    opts_t o = {.workers = 2, .timeout = 30, .graceful_timeout = 2};
    start_master(FAKE_SERVE, &o);
    assert_true(wait_children(2, 3000));
    kill(master, SIGTTIN);
    assert_true(wait_children(3, 3000));
    assert_true(wait_log("[DEBUG] 3 workers\n", 2000));
    kill(master, SIGTTOU);
    assert_true(wait_children(2, 3000));
    kill(master, SIGTTOU);
    assert_true(wait_children(1, 3000));
    /* never below one */
    kill(master, SIGTTOU);
    assert_true(wait_log("[INFO] Handling signal: ttou\n", 1000));
    sleep_ms(1300);
    assert_true(wait_children(1, 100));
    assert_true(log_has("[INFO] Handling signal: ttin\n"));
    kill(master, SIGTERM);
    assert_int_equal(wait_master(4000), 0);
}

static void test_ttou_kills_oldest(void **state)
{
    opts_t o = {.workers = 1, .timeout = 30, .graceful_timeout = 2};
    start_master(FAKE_SERVE, &o);
    assert_true(wait_children(1, 3000));
    pid_t first[4], now[4];
    children(first, 4);
    kill(master, SIGTTIN);
    assert_true(wait_children(2, 3000));
    kill(master, SIGTTOU);
    assert_true(wait_children(1, 3000));
    children(now, 4);
    assert_int_not_equal(now[0], first[0]);
    kill(master, SIGTERM);
    assert_int_equal(wait_master(4000), 0);
}

static void test_timeout_abort_then_kill(void **state)
{
    opts_t o = {.workers = 1, .timeout = 1, .graceful_timeout = 1};
    start_master(FAKE_HANG, &o);
    assert_true(wait_children(1, 3000));
    pid_t p[4];
    children(p, 4);
    char want[128];
    snprintf(want, sizeof(want), "[CRITICAL] WORKER TIMEOUT (pid:%d)\n", (int)p[0]);
    assert_true(wait_log(want, 4000));
    /* SIGABRT is ignored by this worker: the next pass must SIGKILL it */
    snprintf(want, sizeof(want), "[ERROR] Worker (pid:%d) was sent SIGKILL! Perhaps out of memory?",
             (int)p[0]);
    assert_true(wait_log(want, 4000));
    kill(master, SIGTERM);
    assert_int_equal(wait_master(4000), 0);
}

static void test_graceful_timeout_then_kill(void **state)
{
    opts_t o = {.workers = 1, .timeout = 30, .graceful_timeout = 1};
    start_master(FAKE_STUBBORN, &o);
    assert_true(wait_children(1, 3000));
    uint64_t t0 = now_ms();
    kill(master, SIGTERM);
    assert_int_equal(wait_master(4000), 0);
    uint64_t took = now_ms() - t0;
    assert_true(took >= 900 && took < 3000);
}

static void test_quick_shutdown_during_graceful(void **state)
{
    opts_t o = {.workers = 2, .timeout = 30, .graceful_timeout = 20};
    start_master(FAKE_STUBBORN, &o);
    assert_true(wait_children(2, 3000));
    kill(master, SIGTERM);
    assert_true(wait_log("[INFO] Handling signal: term\n", 2000));
    sleep_ms(200);
    uint64_t t0 = now_ms();
    kill(master, SIGINT);
    assert_int_equal(wait_master(3000), 0);
    assert_true(now_ms() - t0 < 2500);
    assert_true(log_has("[INFO] Quick shutdown requested\n"));
}

static void test_int_is_quick(void **state)
{
    opts_t o = {.workers = 2, .timeout = 30, .graceful_timeout = 20};
    start_master(FAKE_STUBBORN, &o); /* ignores TERM: only QUIT ends it fast */
    assert_true(wait_children(2, 3000));
    uint64_t t0 = now_ms();
    kill(master, SIGINT);
    assert_int_equal(wait_master(3000), 0);
    assert_true(now_ms() - t0 < 2000);
    assert_true(log_has("[INFO] Handling signal: int\n"));
    assert_true(log_has("[INFO] Shutting down: Master\n"));
}

static void test_usr1_forwarded(void **state)
{
    opts_t o = {.workers = 2, .timeout = 30, .graceful_timeout = 2};
    start_master(FAKE_SERVE, &o);
    assert_true(wait_children(2, 3000));
    pid_t p[4];
    children(p, 4);
    kill(master, SIGUSR1);
    assert_true(wait_log("[INFO] Handling signal: usr1\n", 2000));
    for (int i = 0; i < 2; i++) {
        char f[200];
        snprintf(f, sizeof(f), "%s/usr1-%d", test_dir, (int)p[i]);
        uint64_t end = now_ms() + 2000;
        while (access(f, F_OK) != 0 && now_ms() < end)
            sleep_ms(20);
        assert_int_equal(access(f, F_OK), 0);
    }
    kill(master, SIGTERM);
    assert_int_equal(wait_master(4000), 0);
}

static void test_hup_replaces_workers(void **state)
{
    opts_t o = {.workers = 2, .timeout = 30, .graceful_timeout = 3};
    start_master(FAKE_SERVE, &o);
    assert_true(wait_children(2, 3000));
    pid_t old[4], now[8];
    children(old, 4);
    kill(master, SIGHUP);
    assert_true(wait_log("[INFO] Hang up: Master\n", 2000));
    uint64_t end = now_ms() + 4000;
    bool fresh = false;
    while (now_ms() < end && !fresh) {
        size_t n = children(now, 8);
        fresh = n == 2;
        for (size_t i = 0; i < n && fresh; i++)
            fresh = now[i] != old[0] && now[i] != old[1];
        sleep_ms(20);
    }
    assert_true(fresh);
    kill(master, SIGTERM);
    assert_int_equal(wait_master(4000), 0);
}

/* The hand-over state on its own, with a made-up clock. */
static void test_reload_state(void **state)
{
    cg_arbiter_reload_t r = {0};
    assert_false(cg_arbiter_reload_retired(&r, 1)); /* nothing retired before a HUP */
    assert_false(cg_arbiter_reload_finish(&r, 1, 0));

    cg_arbiter_reload_begin(&r, 2, 1000, 30); /* workers 1, 2 retired at t=1 s */
    assert_true(r.active);
    assert_true(cg_arbiter_reload_retired(&r, 1));
    assert_true(cg_arbiter_reload_retired(&r, 2));
    assert_false(cg_arbiter_reload_retired(&r, 3));
    assert_false(cg_arbiter_reload_finish(&r, 2, 2000)); /* worker 2 still there */
    assert_true(cg_arbiter_reload_finish(&r, 3, 2000));  /* only new ones left */
    assert_false(r.active);
    assert_false(cg_arbiter_reload_finish(&r, 3, 2000)); /* once */
    assert_true(cg_arbiter_reload_retired(&r, 2));       /* stays retired */

    /* the deadline ends the wait whoever is left; no worker at all too */
    cg_arbiter_reload_begin(&r, 4, 5000, 2);
    assert_false(cg_arbiter_reload_finish(&r, 1, 6999));
    assert_true(cg_arbiter_reload_finish(&r, 1, 7000));
    cg_arbiter_reload_begin(&r, 6, 8000, 10);
    assert_true(cg_arbiter_reload_finish(&r, -1, 8000));

    /* a second HUP during the first: the retired ages only grow, the wait
     * restarts; a negative graceful_timeout counts as 0 */
    cg_arbiter_reload_begin(&r, 8, 10000, 10);
    cg_arbiter_reload_begin(&r, 7, 15000, 10);
    assert_int_equal(r.retired_age, 8);
    assert_int_equal(r.deadline_ms, 25000);
    cg_arbiter_reload_begin(&r, 9, 30000, -1);
    assert_true(cg_arbiter_reload_finish(&r, 9, 30000));
}

/* The old generation ignores TERM, so the HUP's hand-over lasts the whole
 * graceful_timeout (30 s): QUIT during it still stops the master at once. */
static void test_quit_during_hup_is_prompt(void **state)
{
    opts_t o = {.workers = 2, .timeout = 30, .graceful_timeout = 30};
    start_master(FAKE_STUBBORN, &o);
    assert_true(wait_children(2, 3000));
    kill(master, SIGHUP);
    assert_true(wait_log("[INFO] Hang up: Master\n", 2000));
    assert_true(wait_children(4, 3000)); /* both generations */
    uint64_t t0 = now_ms();
    kill(master, SIGQUIT);
    assert_int_equal(wait_master(5000), 0);
    assert_true(now_ms() - t0 < 3000);
    assert_true(log_has("[INFO] Handling signal: quit\n"));
}

/* During a hand-over: TTIN adds a worker, a second HUP retires the second
 * generation too (TERM once: a worker that ignores it is not counted again),
 * and a new-generation worker that dies is replaced. */
static void test_signals_during_hup(void **state)
{
    opts_t o = {.workers = 1, .timeout = 30, .graceful_timeout = 30};
    start_master(FAKE_STUBBORN, &o);
    assert_true(wait_children(1, 3000));
    kill(master, SIGHUP);
    assert_true(wait_children(2, 3000));
    kill(master, SIGTTIN);
    assert_true(wait_children(3, 3000)); /* 1 retired + 2 new */
    pid_t before[8], p[8];
    assert_int_equal(children(before, 8), 3);
    kill(master, SIGHUP);
    assert_true(wait_children(4, 3000)); /* 3 retired (config says 1) + 1 new */
    /* the only counted worker is the newest: kill it, it is replaced */
    size_t n = children(p, 8);
    assert_int_equal(n, 4);
    pid_t newest = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] != before[0] && p[i] != before[1] && p[i] != before[2])
            newest = p[i];
    assert_true(newest > 0);
    kill(newest, SIGKILL);
    char want[128];
    snprintf(want, sizeof(want), "Worker (pid:%d) was sent SIGKILL!", (int)newest);
    assert_true(wait_log(want, 3000));
    assert_true(wait_children(4, 3000));
    uint64_t t0 = now_ms();
    kill(master, SIGINT);
    assert_int_equal(wait_master(5000), 0);
    assert_true(now_ms() - t0 < 3000);
}

/* An old worker that hangs on its way out is still timed out (SIGABRT,
 * then SIGKILL on the next pass) while the hand-over waits for it. */
static void test_timeout_during_hup(void **state)
{
    opts_t o = {.workers = 1, .timeout = 1, .graceful_timeout = 60};
    start_master(FAKE_HANG_ON_TERM, &o);
    assert_true(wait_children(1, 3000));
    pid_t old[4];
    children(old, 4);
    uint64_t t0 = now_ms();
    kill(master, SIGHUP);
    char want[128];
    snprintf(want, sizeof(want), "[CRITICAL] WORKER TIMEOUT (pid:%d)\n", (int)old[0]);
    assert_true(wait_log(want, 5000));
    snprintf(want, sizeof(want), "[ERROR] Worker (pid:%d) was sent SIGKILL!", (int)old[0]);
    assert_true(wait_log(want, 5000));
    assert_true(now_ms() - t0 < 8000);
    assert_true(wait_children(1, 2000)); /* the new worker serves on */
    kill(master, SIGQUIT);
    assert_int_equal(wait_master(5000), 0);
}

static void test_unsupported_signals_warn(void **state)
{
    opts_t o = {.workers = 1, .timeout = 30, .graceful_timeout = 2};
    start_master(FAKE_SERVE, &o);
    assert_true(wait_children(1, 3000));
    kill(master, SIGUSR2); /* no command line to re-exec in this harness */
    assert_true(wait_log("[ERROR] USR2 upgrade impossible: the command line is unknown", 2000));
    kill(master, SIGWINCH);
    assert_true(wait_log("[DEBUG] SIGWINCH ignored. Not daemonized\n", 2000));
    kill(master, SIGTERM);
    assert_int_equal(wait_master(4000), 0);
}

/* Master-side hooks fire at Gunicorn's moments, in Gunicorn's order. */
static void test_hooks_order(void **state)
{
    opts_t o = {.workers = 2, .timeout = 30, .graceful_timeout = 2, .hooks = true};
    start_master(FAKE_SERVE, &o);
    assert_true(wait_children(2, 3000));
    assert_true(wait_log("hook pre_fork age=2", 2000));
    kill(master, SIGTTIN);
    assert_true(wait_log("hook nworkers_changed 3 2", 2000));
    assert_true(wait_log("hook pre_fork age=3", 2000));
    kill(master, SIGTTOU);
    assert_true(wait_log("hook nworkers_changed 2 3", 2000));
    assert_true(wait_log("hook child_exit pid=", 3000));
    kill(master, SIGTERM);
    assert_int_equal(wait_master(4000), 0);
    const char *text = slurp(log_path);
    const char *order[] = {"hook nworkers_changed 2 -1", "Starting gunicorn", "hook on_starting",
                           "Listening at:", "hook when_ready", "hook pre_fork age=1",
                           "Shutting down: Master", "hook on_exit"};
    const char *at = text;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        const char *p = strstr(at, order[i]);
        if (p == NULL)
            fail_msg("'%s' missing or out of order in:\n%s", order[i], text);
        at = p;
    }
}

static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/*
 * HUP re-reads the configuration from the command line: a master started
 * with a bind that differs from its argv (as if argv had been edited) moves
 * to argv's address on HUP and logs the new "Listening at:" line; the new
 * worker count and log level come along.
 */
static void test_hup_reloads_config_and_rebinds(void **state)
{
    int port = free_port();
    char bind[64], want[128];
    snprintf(bind, sizeof(bind), "127.0.0.1:%d", port);
    fake_mode = FAKE_SERVE;
    fflush(NULL);
    master = fork();
    assert_true(master >= 0);
    if (master == 0) {
        setpgid(0, 0);
        static cg_config_t cfg;
        static cg_log_t log;
        static char *argv[] = {"cgunicorn", "-b", NULL, "-w", "2", "--graceful-timeout", "2",
                               "--log-level", "debug", "--error-logfile", log_path, "app:app",
                               NULL};
        const char *initial = "127.0.0.1:0";
        char err[256];
        argv[2] = bind;
        unsetenv("GUNICORN_CMD_ARGS");
        unsetenv("WEB_CONCURRENCY");
        if (cg_config_load(&cfg, 12, argv, NULL, NULL) != 0)
            _exit(98);
        cfg.argc = 12;
        cfg.argv = argv;
        if (cg_config_set_list(&cfg, "bind", &initial, 1, CG_SRC_CLI, err, sizeof(err)) < 0 ||
            cg_config_set_int(&cfg, "workers", 1, CG_SRC_CLI, err, sizeof(err)) < 0)
            _exit(97);
        /* the log as configured after the HUP, except for the level */
        if (cg_log_open(&log, log_path, "info", NULL, NULL, err, sizeof(err)) < 0)
            _exit(99);
        int rc = cg_arbiter_run_with(&cfg, &log, fake_worker_main);
        cg_log_close(&log);
        cg_config_free(&cfg);
        _exit(rc);
    }
    setpgid(master, master);
    assert_true(wait_children(1, 3000));
    kill(master, SIGHUP);
    snprintf(want, sizeof(want), "[INFO] Listening at: http://127.0.0.1:%d\n", port);
    if (!wait_log(want, 4000))
        fail_msg("'%s' not logged:\n%s", want, slurp(log_path));
    assert_true(wait_children(2, 4000)); /* workers = 2 from argv */
    assert_true(wait_log("[DEBUG] 2 workers", 4000)); /* log level from argv */
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    kill(master, SIGTERM);
    assert_int_equal(wait_master(5000), 0);
}

static void test_pidfile_already_running(void **state)
{
    char pidfile[160];
    snprintf(pidfile, sizeof(pidfile), "%s/g.pid", test_dir);
    FILE *fp = fopen(pidfile, "w");
    fprintf(fp, "%d\n", (int)getpid()); /* a live pid that is not the master */
    fclose(fp);
    opts_t o = {.workers = 1, .timeout = 30, .graceful_timeout = 2, .pidfile = pidfile};
    start_master(FAKE_SERVE, &o);
    assert_int_equal(wait_master(3000), 1);
    char want[64];
    snprintf(want, sizeof(want), "%d\n", (int)getpid());
    assert_string_equal(slurp(pidfile), want); /* left alone */
}

static void test_pidfile_rules(void **state)
{
    char path[160], err[512];
    snprintf(path, sizeof(path), "%s/p.pid", test_dir);
    /* stale content: overwritten */
    FILE *fp = fopen(path, "w");
    fputs("not a pid", fp);
    fclose(fp);
    assert_int_equal(cg_arbiter_pidfile_create(path, 4242, err, sizeof(err)), 0);
    assert_string_equal(slurp(path), "4242\n");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    /* 4242 is probably not alive; if it is, the file must be refused */
    if (kill(4242, 0) != 0) {
        assert_int_equal(cg_arbiter_pidfile_create(path, 77, err, sizeof(err)), 0);
        assert_string_equal(slurp(path), "77\n");
    }
    /* unlink only our own */
    cg_arbiter_pidfile_unlink(path, 78);
    assert_int_equal(stat(path, &st), 0);
    cg_arbiter_pidfile_unlink(path, 77);
    assert_int_equal(stat(path, &st), -1);
    /* missing directory */
    char bad[200];
    snprintf(bad, sizeof(bad), "%s/nope/p.pid", test_dir);
    assert_int_equal(cg_arbiter_pidfile_create(bad, 1, err, sizeof(err)), -ENOENT);
    char want[256];
    snprintf(want, sizeof(want), "%s/nope doesn't exist. Can't create pidfile.", test_dir);
    assert_string_equal(err, want);
    /* live pid */
    fp = fopen(path, "w");
    fprintf(fp, "%d", (int)getppid());
    fclose(fp);
    assert_int_equal(cg_arbiter_pidfile_create(path, 5, err, sizeof(err)), -EEXIST);
    snprintf(want, sizeof(want), "Already running on PID %d (or pid file '%s' is stale)",
             (int)getppid(), path);
    assert_string_equal(err, want);
}

static void test_signal_names(void **state)
{
    assert_string_equal(cg_arbiter_signal_name(SIGKILL), "SIGKILL");
    assert_string_equal(cg_arbiter_signal_name(SIGABRT), "SIGABRT");
    assert_string_equal(cg_arbiter_signal_name(SIGIO), "SIGIO");
    assert_string_equal(cg_arbiter_signal_name(SIGRTMIN), "SIGRTMIN");
    assert_null(cg_arbiter_signal_name(SIGRTMIN + 1));
}

static void test_heartbeat(void **state)
{
    cg_heartbeat_t hb;
    assert_int_equal(cg_heartbeat_create(&hb), 0);
    assert_true(cg_heartbeat_age_ms(&hb) < 100);
    sleep_ms(120);
    assert_true(cg_heartbeat_age_ms(&hb) >= 100);
    /* shared across fork */
    pid_t p = fork();
    if (p == 0) {
        cg_heartbeat_notify(&hb);
        _exit(0);
    }
    waitpid(p, NULL, 0);
    assert_true(cg_heartbeat_age_ms(&hb) < 100);
    cg_heartbeat_destroy(&hb);
    assert_null(hb.slot);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_startup_lines_and_term),
        T(test_boot_error_halts_with_3),
        T(test_app_load_error_halts_with_4),
        T(test_respawn_after_kill),
        T(test_dirty_arbiter),
        T(test_dirty_floor),
        T(test_ttin_ttou),
        T(test_ttou_kills_oldest),
        T(test_timeout_abort_then_kill),
        T(test_graceful_timeout_then_kill),
        T(test_quick_shutdown_during_graceful),
        T(test_int_is_quick),
        T(test_usr1_forwarded),
        T(test_hup_replaces_workers),
        T(test_reload_state),
        T(test_quit_during_hup_is_prompt),
        T(test_signals_during_hup),
        T(test_timeout_during_hup),
        T(test_unsupported_signals_warn),
        T(test_hooks_order),
        T(test_hup_reloads_config_and_rebinds),
        T(test_pidfile_already_running),
        T(test_pidfile_rules),
        T(test_signal_names),
        T(test_heartbeat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
