/*
 * test_prom.c - the Prometheus text of a scoreboard whose counters the test
 * sets: every family declared once before its samples, exact sample lines
 * (status classes, the cumulative histogram, busy time with a request in
 * progress and never going back, free slots), the listener backlog gauges
 * with label escaping, and the whole page through prometheus_client's parser
 * when Python has it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "src/metrics/prom.h"

#define NFAMILIES 17 /* with a board */

static char *render(const cg_prom_view_t *v)
{
    size_t len = 0;
    char *text = cg_prom_render(v, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_true(len > 0 && text[len - 1] == '\n');
    return text;
}

/* How many lines of text are exactly `line`. */
static int count_line(const char *text, const char *line)
{
    int n = 0;
    size_t k = strlen(line);
    for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
        if (strncmp(p, line, k) == 0 && p[k] == '\n')
            n++;
    }
    return n;
}

static void expect_line(const char *text, const char *line)
{
    if (count_line(text, line) != 1)
        fail_msg("want exactly one line \"%s\" in:\n%s", line, text);
}

/* The value of the one sample line starting with `series` (name{labels}). */
static const char *value_of(const char *text, const char *series, char *buf, size_t cap)
{
    size_t k = strlen(series);
    const char *found = NULL;
    for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
        if (strncmp(p, series, k) == 0 && p[k] == ' ') {
            assert_null(found);
            found = p + k + 1;
        }
    }
    if (found == NULL)
        fail_msg("no sample %s in:\n%s", series, text);
    size_t n = strcspn(found, "\n");
    assert_true(n < cap);
    memcpy(buf, found, n);
    buf[n] = '\0';
    return buf;
}

static bool metric_name_char(char c, bool first)
{
    return isalpha((unsigned char)c) || c == '_' || c == ':' || (!first && isdigit((unsigned char)c));
}

/* One sample line of format 0.0.4: name, optional {l="v",...}, a value.
 * Returns the name's length. */
static size_t check_sample_syntax(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && metric_name_char(line[i], i == 0))
        i++;
    if (i == 0)
        fail_msg("no metric name: %.*s", (int)len, line);
    size_t name_len = i;
    if (i < len && line[i] == '{') {
        i++;
        for (;;) {
            size_t start = i;
            while (i < len && metric_name_char(line[i], i == start))
                i++;
            if (i == start || i + 1 >= len || line[i] != '=' || line[i + 1] != '"')
                fail_msg("bad label: %.*s", (int)len, line);
            for (i += 2; i < len && line[i] != '"'; i++) {
                if (line[i] == '\\') {
                    i++;
                    if (i >= len || (line[i] != '\\' && line[i] != '"' && line[i] != 'n'))
                        fail_msg("bad escape: %.*s", (int)len, line);
                }
            }
            if (i >= len)
                fail_msg("unterminated label value: %.*s", (int)len, line);
            i++;
            if (i < len && line[i] == ',') {
                i++;
                continue;
            }
            if (i < len && line[i] == '}') {
                i++;
                break;
            }
            fail_msg("bad label list: %.*s", (int)len, line);
        }
    }
    if (i >= len || line[i] != ' ')
        fail_msg("no value: %.*s", (int)len, line);
    char value[64];
    size_t vlen = len - i - 1;
    assert_true(vlen > 0 && vlen < sizeof(value));
    memcpy(value, line + i + 1, vlen);
    value[vlen] = '\0';
    char *end;
    (void)strtod(value, &end);
    if (*end != '\0')
        fail_msg("bad value: %.*s", (int)len, line);
    return name_len;
}

/* Every family's HELP right before its TYPE, once, before all its samples;
 * every sample in the family declared last and well formed. Returns the
 * number of families; *nsamples the number of samples. */
static size_t check_structure(const char *text, size_t *nsamples)
{
    char families[32][64];
    char type[16] = "";
    size_t nf = 0;
    *nsamples = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        assert_non_null(eol);
        size_t len = (size_t)(eol - p);
        if (strncmp(p, "# HELP ", 7) == 0) {
            char name[64];
            size_t k = strcspn(p + 7, " \n");
            assert_true(k > 0 && k < sizeof(name) && p[7 + k] == ' ');
            memcpy(name, p + 7, k);
            name[k] = '\0';
            for (size_t i = 0; i < nf; i++)
                if (strcmp(families[i], name) == 0)
                    fail_msg("family %s declared twice", name);
            /* the TYPE line follows at once */
            const char *t = eol + 1;
            assert_int_equal(strncmp(t, "# TYPE ", 7), 0);
            assert_int_equal(strncmp(t + 7, name, k), 0);
            assert_int_equal(t[7 + k], ' ');
            size_t tl = strcspn(t + 8 + k, "\n");
            assert_true(tl < sizeof(type));
            memcpy(type, t + 8 + k, tl);
            type[tl] = '\0';
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                        strcmp(type, "histogram") == 0);
            assert_true(nf < 32);
            strcpy(families[nf++], name);
            p = t + 8 + k + tl + 1;
            continue;
        }
        if (*p == '#')
            fail_msg("stray comment: %.*s", (int)len, p);
        size_t k = check_sample_syntax(p, len);
        if (nf == 0)
            fail_msg("sample before any TYPE: %.*s", (int)len, p);
        const char *fam = families[nf - 1];
        size_t fl = strlen(fam);
        bool ok = k == fl && strncmp(p, fam, fl) == 0;
        if (!ok && strcmp(type, "histogram") == 0 && k > fl && strncmp(p, fam, fl) == 0) {
            const char *suffix = p + fl;
            size_t sl = k - fl;
            ok = (sl == 7 && strncmp(suffix, "_bucket", 7) == 0) ||
                 (sl == 4 && strncmp(suffix, "_sum", 4) == 0) ||
                 (sl == 6 && strncmp(suffix, "_count", 6) == 0);
        }
        if (!ok)
            fail_msg("sample outside its family %s: %.*s", fam, (int)len, p);
        (*nsamples)++;
        p = eol + 1;
    }
    return nf;
}

/* The page through prometheus_client's parser: 0, or 77 when Python has no
 * prometheus_client (then the check is skipped). */
static int python_parse(const char *text, size_t nfamilies, size_t nsamples)
{
    static const char script[] =
        "import sys\n"
        "try:\n"
        "    from prometheus_client.parser import text_string_to_metric_families\n"
        "except ImportError:\n"
        "    sys.exit(77)\n"
        "fams = list(text_string_to_metric_families(open(sys.argv[1]).read()))\n"
        "names = [f.name for f in fams]\n"
        "assert len(names) == len(set(names)), names\n"
        "print(len(fams), sum(len(f.samples) for f in fams))\n";
    char dir[] = "/tmp/cg_test_prom.XXXXXX", path[64], spath[64], cmd[256], out[64] = "";
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/page.txt", dir);
    snprintf(spath, sizeof(spath), "%s/check.py", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    f = fopen(spath, "w");
    assert_non_null(f);
    assert_int_equal(fputs(script, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    snprintf(cmd, sizeof(cmd), "'%s' '%s' '%s'", CG_PYTHON, spath, path);
    FILE *pp = popen(cmd, "r");
    assert_non_null(pp);
    size_t n = fread(out, 1, sizeof(out) - 1, pp);
    out[n] = '\0';
    int st = pclose(pp);
    unlink(path);
    unlink(spath);
    rmdir(dir);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) == 77)
        return 77;
    assert_int_equal(WEXITSTATUS(st), 0);
    char want[64];
    snprintf(want, sizeof(want), "%zu %zu\n", nfamilies, nsamples);
    assert_string_equal(out, want);
    return 0;
}

/* A TCP listener on 127.0.0.1:0 as net.c would describe it. */
static void tcp_listener(cg_listener_t *l, int backlog, const char *display)
{
    memset(l, 0, sizeof(*l));
    l->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(l->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(l->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l->fd, backlog), 0);
    l->family = AF_INET;
    l->addrlen = sizeof(l->addr);
    assert_int_equal(getsockname(l->fd, (struct sockaddr *)&l->addr, &l->addrlen), 0);
    l->display = (char *)display;
}

typedef struct fixture {
    cg_board_t *board;
    cg_listener_t l[3];
    char display0[64];
    int client;
    cg_prom_view_t v;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    cg_board_t *b = f->board = cg_board_new();

    /* worker="1": a live worker (this process) in its second start, two
     * threads */
    assert_int_equal(cg_board_claim(b, 2), 0);
    cg_board_release(b, 0, NULL);
    assert_int_equal(cg_board_claim(b, 2), 0);
    cg_board_bind(b, 0, getpid());
    cg_board_shm_t *m = b->slots[0].shm;
    m->threads[0].requests[2] = 5;
    m->threads[0].requests[4] = 1;
    m->threads[1].requests[2] = 3;
    m->threads[1].requests[5] = 2;
    m->refused[4] = 2;
    m->refused[0] = 1;
    m->threads[0].buckets[0] = 1;
    m->threads[0].buckets[9] = 2; /* le 1.0 */
    m->threads[1].buckets[13] = 1; /* le 10.0 */
    m->threads[1].buckets[CG_BOARD_NBUCKETS] = 3;
    m->threads[0].duration_us = 1234567;
    m->threads[1].duration_us = 1000;
    m->threads[0].busy_us = 2000000;
    m->threads[0].busy_since = 10000000; /* serving since 10 s */
    m->threads[1].busy_us = 250;
    m->conns_open = 3;
    m->conns_total = 40;

    /* worker="2": its worker timed out and was reaped */
    assert_int_equal(cg_board_claim(b, 1), 1);
    cg_board_bind(b, 1, 1);
    /* worker="3": claimed, its fork not yet bound */
    assert_int_equal(cg_board_claim(b, 1), 2);
    m = b->slots[1].shm;
    m->threads[0].requests[2] = 1;
    m->threads[0].buckets[0] = 1;
    m->threads[0].duration_us = 1000;
    m->conns_total = 1;
    cg_board_timed_out(b, 1);
    struct rusage ru = {.ru_utime = {.tv_sec = 1}, .ru_stime = {.tv_usec = 500000}};
    cg_board_release(b, 1, &ru);
    m->threads[0].busy_since = 5; /* as if read half-way: a free slot serves nothing */


    tcp_listener(&f->l[0], 7, f->display0);
    snprintf(f->display0, sizeof(f->display0), "http://127.0.0.1:%u",
             ntohs(((struct sockaddr_in *)&f->l[0].addr)->sin_port));
    tcp_listener(&f->l[1], 5, "x\"y\\z\nw");
    f->l[2].fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->l[2].fd >= 0);
    f->l[2].family = AF_UNIX;
    f->l[2].display = (char *)"unix:/tmp/cg-prom-test.sock";

    /* one connection waits in listener 0's accept queue */
    f->client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->client >= 0);
    assert_int_equal(connect(f->client, (struct sockaddr *)&f->l[0].addr, f->l[0].addrlen), 0);
    struct pollfd p = {.fd = f->l[0].fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1);

    f->v = (cg_prom_view_t){
        .board = b,
        .listeners = f->l,
        .nlisteners = 3,
        .workers = 3,
        .workers_wanted = 4,
        .now_us = 10500000,
    };
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    close(f->client);
    for (size_t i = 0; i < 3; i++)
        close(f->l[i].fd);
    cg_board_free(f->board);
    free(f);
    return 0;
}

static void test_structure_and_parser(void **state)
{
    fixture_t *f = *state;
    char *text = render(&f->v);
    size_t nsamples;
    assert_int_equal(check_structure(text, &nsamples), NFAMILIES);
    /* 2 gauges, 3 workers * 6 classes, 17 histogram lines, 3 in flight,
     * 4 threads busy, 3 * 3 of threads and connections, 3 * 5 of CPU, RSS,
     * pid, restarts and timeouts, 2 * 2 backlog, 1 refused */
    assert_int_equal(nsamples, 2 + 18 + 17 + 3 + 4 + 9 + 15 + 4 + 1);
    int r = python_parse(text, NFAMILIES, nsamples);
    free(text);
    if (r == 77)
        skip(); /* prometheus_client is not importable by CG_PYTHON */
}

static void test_requests_and_workers(void **state)
{
    fixture_t *f = *state;
    char *text = render(&f->v);
    static const char *const lines[] = {
        "cgunicorn_workers 3",
        "cgunicorn_workers_wanted 4",
        /* threads + refused, per class */
        "cgunicorn_requests_total{worker=\"1\",status=\"other\"} 1",
        "cgunicorn_requests_total{worker=\"1\",status=\"1xx\"} 0",
        "cgunicorn_requests_total{worker=\"1\",status=\"2xx\"} 8",
        "cgunicorn_requests_total{worker=\"1\",status=\"3xx\"} 0",
        "cgunicorn_requests_total{worker=\"1\",status=\"4xx\"} 3",
        "cgunicorn_requests_total{worker=\"1\",status=\"5xx\"} 2",
        "cgunicorn_requests_total{worker=\"2\",status=\"2xx\"} 1",
        "cgunicorn_requests_total{worker=\"2\",status=\"5xx\"} 0",
        "cgunicorn_requests_total{worker=\"3\",status=\"2xx\"} 0",
        "cgunicorn_requests_in_flight{worker=\"1\"} 1",
        "cgunicorn_requests_in_flight{worker=\"2\"} 0",
        "cgunicorn_requests_in_flight{worker=\"3\"} 0",
        "cgunicorn_worker_threads{worker=\"1\"} 2",
        "cgunicorn_worker_threads{worker=\"2\"} 0",
        "cgunicorn_worker_threads{worker=\"3\"} 0",
        "cgunicorn_worker_connections_open{worker=\"1\"} 3",
        "cgunicorn_worker_connections_open{worker=\"2\"} 0",
        "cgunicorn_worker_connections_accepted_total{worker=\"1\"} 40",
        "cgunicorn_worker_connections_accepted_total{worker=\"2\"} 1",
        "cgunicorn_worker_connections_accepted_total{worker=\"3\"} 0",
        "cgunicorn_worker_cpu_seconds_total{worker=\"2\"} 1.500000",
        "cgunicorn_worker_cpu_seconds_total{worker=\"3\"} 0.000000",
        "cgunicorn_worker_resident_memory_bytes{worker=\"2\"} 0",
        "cgunicorn_worker_resident_memory_bytes{worker=\"3\"} 0",
        "cgunicorn_worker_pid{worker=\"2\"} 0",
        "cgunicorn_worker_pid{worker=\"3\"} 0",
        "cgunicorn_worker_restarts_total{worker=\"1\"} 1",
        "cgunicorn_worker_restarts_total{worker=\"2\"} 0",
        "cgunicorn_worker_restarts_total{worker=\"3\"} 0",
        "cgunicorn_worker_timeouts_total{worker=\"1\"} 0",
        "cgunicorn_worker_timeouts_total{worker=\"2\"} 1",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        expect_line(text, lines[i]);
    char want[96], buf[64];
    snprintf(want, sizeof(want), "cgunicorn_worker_pid{worker=\"1\"} %d", (int)getpid());
    expect_line(text, want);
    /* this process, from /proc */
    assert_true(strtoull(value_of(text, "cgunicorn_worker_resident_memory_bytes{worker=\"1\"}",
                                  buf, sizeof(buf)),
                         NULL, 10) > 1024 * 1024);
    value_of(text, "cgunicorn_worker_cpu_seconds_total{worker=\"1\"}", buf, sizeof(buf));
    assert_true(strlen(buf) > 7 && buf[strlen(buf) - 7] == '.');
    free(text);
}

static void test_histogram(void **state)
{
    fixture_t *f = *state;
    char *text = render(&f->v);
    static const char *const lines[] = {
        "cgunicorn_request_duration_seconds_bucket{le=\"0.005\"} 2",
        "cgunicorn_request_duration_seconds_bucket{le=\"0.01\"} 2",
        "cgunicorn_request_duration_seconds_bucket{le=\"0.025\"} 2",
        "cgunicorn_request_duration_seconds_bucket{le=\"0.05\"} 2",
        "cgunicorn_request_duration_seconds_bucket{le=\"0.075\"} 2",
        "cgunicorn_request_duration_seconds_bucket{le=\"0.1\"} 2",
        "cgunicorn_request_duration_seconds_bucket{le=\"0.25\"} 2",
        "cgunicorn_request_duration_seconds_bucket{le=\"0.5\"} 2",
        "cgunicorn_request_duration_seconds_bucket{le=\"0.75\"} 2",
        "cgunicorn_request_duration_seconds_bucket{le=\"1.0\"} 4",
        "cgunicorn_request_duration_seconds_bucket{le=\"2.5\"} 4",
        "cgunicorn_request_duration_seconds_bucket{le=\"5.0\"} 4",
        "cgunicorn_request_duration_seconds_bucket{le=\"7.5\"} 4",
        "cgunicorn_request_duration_seconds_bucket{le=\"10.0\"} 5",
        "cgunicorn_request_duration_seconds_bucket{le=\"+Inf\"} 8",
        "cgunicorn_request_duration_seconds_sum 1.236567",
        "cgunicorn_request_duration_seconds_count 8",
    };
    /* in this order, one after the other */
    const char *p = strstr(text, lines[0]);
    assert_non_null(p);
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        size_t k = strlen(lines[i]);
        if (strncmp(p, lines[i], k) != 0 || p[k] != '\n')
            fail_msg("want \"%s\" at:\n%s", lines[i], p);
        p += k + 1;
    }
    free(text);
}

static void test_busy_includes_current_and_never_goes_back(void **state)
{
    fixture_t *f = *state;
    cg_board_shm_t *m = f->board->slots[0].shm;
    char *text = render(&f->v);
    /* 2 s ended + 0.5 s of the request in progress */
    expect_line(text, "cgunicorn_worker_busy_seconds_total{worker=\"1\",thread=\"0\"} 2.500000");
    expect_line(text, "cgunicorn_worker_busy_seconds_total{worker=\"1\",thread=\"1\"} 0.000250");
    /* a free slot's stale busy_since counts nothing */
    expect_line(text, "cgunicorn_worker_busy_seconds_total{worker=\"2\",thread=\"0\"} 0.000000");
    expect_line(text, "cgunicorn_worker_busy_seconds_total{worker=\"3\",thread=\"0\"} 0.000000");
    free(text);

    /* read between the worker's two stores: busy_since cleared, busy_us not
     * grown yet. The counter holds, it does not go back to 2 s. */
    m->threads[0].busy_since = 0;
    f->v.now_us = 11000000;
    text = render(&f->v);
    expect_line(text, "cgunicorn_worker_busy_seconds_total{worker=\"1\",thread=\"0\"} 2.500000");
    expect_line(text, "cgunicorn_requests_in_flight{worker=\"1\"} 0");
    free(text);

    m->threads[0].busy_us = 2600000;
    text = render(&f->v);
    expect_line(text, "cgunicorn_worker_busy_seconds_total{worker=\"1\",thread=\"0\"} 2.600000");
    free(text);

    /* busy again, now later than the clock the master passes: nothing added */
    m->threads[0].busy_since = 12000000;
    text = render(&f->v);
    expect_line(text, "cgunicorn_worker_busy_seconds_total{worker=\"1\",thread=\"0\"} 2.600000");
    expect_line(text, "cgunicorn_requests_in_flight{worker=\"1\"} 1");
    free(text);
}

static void test_cpu_never_goes_back(void **state)
{
    fixture_t *f = *state;
    f->board->slots[0].cpu_ended_us = 3000000; /* the slot's earlier workers */
    char *text = render(&f->v), cpu[64], buf[64];
    value_of(text, "cgunicorn_worker_cpu_seconds_total{worker=\"1\"}", cpu, sizeof(cpu));
    assert_true(strtod(cpu, NULL) >= 3.0);
    free(text);
    /* the worker is reaped, and what is known of the slot is less than what
     * the last scrape showed (the rusage is not /proc's figure) */
    struct rusage ru;
    memset(&ru, 0, sizeof(ru));
    cg_board_release(f->board, 0, &ru);
    f->board->slots[0].cpu_ended_us = 1000000;
    text = render(&f->v);
    assert_string_equal(
        value_of(text, "cgunicorn_worker_cpu_seconds_total{worker=\"1\"}", buf, sizeof(buf)), cpu);
    expect_line(text, "cgunicorn_worker_resident_memory_bytes{worker=\"1\"} 0");
    expect_line(text, "cgunicorn_worker_pid{worker=\"1\"} 0");
    expect_line(text, "cgunicorn_worker_threads{worker=\"1\"} 0");
    expect_line(text, "cgunicorn_worker_connections_open{worker=\"1\"} 0");
    expect_line(text, "cgunicorn_requests_in_flight{worker=\"1\"} 0");
    free(text);
}

static void test_listeners(void **state)
{
    fixture_t *f = *state;
    char *text = render(&f->v), want[128];
    snprintf(want, sizeof(want), "cgunicorn_listener_backlog{listener=\"%s\"} 1", f->display0);
    expect_line(text, want);
    snprintf(want, sizeof(want), "cgunicorn_listener_backlog_limit{listener=\"%s\"} 7",
             f->display0);
    expect_line(text, want);
    /* quote, backslash and newline escaped */
    expect_line(text, "cgunicorn_listener_backlog{listener=\"x\\\"y\\\\z\\nw\"} 0");
    expect_line(text, "cgunicorn_listener_backlog_limit{listener=\"x\\\"y\\\\z\\nw\"} 5");
    /* a unix socket has no accept-queue figure */
    assert_null(strstr(text, "unix:"));
    free(text);
    /* what the master refused off full queues: one total */
    cg_prom_view_t v = f->v;
    v.shed = 9;
    text = render(&v);
    expect_line(text, "# TYPE cgunicorn_listener_refused_total counter");
    expect_line(text, "cgunicorn_listener_refused_total 9");
    free(text);
}

static void test_no_board(void **state)
{
    fixture_t *f = *state;
    cg_prom_view_t v = f->v;
    v.board = NULL;
    v.nlisteners = 0;
    char *text = render(&v);
    size_t nsamples;
    assert_int_equal(check_structure(text, &nsamples), 5);
    assert_int_equal(nsamples, 3);
    expect_line(text, "# TYPE cgunicorn_listener_backlog gauge");
    assert_null(strstr(text, "cgunicorn_requests_total"));
    free(text);

    /* a board with no slots yet: every family, no per-worker sample */
    cg_board_t *empty = cg_board_new();
    v.board = empty;
    text = render(&v);
    assert_int_equal(check_structure(text, &nsamples), NFAMILIES);
    assert_int_equal(nsamples, 3 + 17); /* the gauges, the refused total, the histogram */
    expect_line(text, "cgunicorn_request_duration_seconds_count 0");
    expect_line(text, "cgunicorn_request_duration_seconds_sum 0.000000");
    free(text);
    cg_board_free(empty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_structure_and_parser, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_and_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_includes_current_and_never_goes_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cpu_never_goes_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listeners, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_board, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
