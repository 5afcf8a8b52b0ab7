/*
 * obs_cost.c - what the metrics add to one request, measured in isolation:
 * the exact calls a worker makes per request with --metrics-bind (the
 * scoreboard) and --statsd-host (the batch, its datagrams really sent to a
 * reader in another process, as to a local agent), looped on one thread,
 * its CPU time (user + system, RUSAGE_THREAD) divided by the requests.
 *
 * Why beside bench/observability.sh: a whole server's CPU per request moves
 * by +-2 us between rounds on a shared machine, ten times the cost asked
 * about (issue 13: <= 0.3 us); a single thread doing only this work moves
 * by a few hundredths. The reader's own CPU is not counted: an agent's is
 * not the server's.
 *
 * Usage: bench_obs_cost [requests per round, default 2000000] [rounds, 7]
 * Prints per variant the median and the range of the rounds.
 */
#include "../src/metrics/board.h"
#include "../src/metrics/statsd.h"
#include "../src/workers/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef enum { V_METRICS, V_STATSD, V_BOTH, V_DOWN, V_COUNT } variant_t;
static const char *const names[V_COUNT] = {"--metrics-bind (scoreboard)",
                                           "--statsd-host (batched, default)", "both",
                                           "--statsd-host, nobody listening"};

static double thread_cpu_us(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0) {
        perror("getrusage");
        exit(1);
    }
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* What src/wsgi/request.c does per request when the board (t) and the
 * batch (b) are on; either may be NULL, as there. */
static void one_request(cg_board_thread_t *t, cg_statsd_batch_t *b)
{
    static const cg_str_t status = {"200 OK", 6};
    uint64_t start = cg_monotonic_us();
    cg_board_busy_begin(t, start);
    long code = cg_statsd_status_code(status);
    uint64_t end = cg_monotonic_us();
    cg_board_request(t, code, end - start);
    if (b != NULL)
        cg_statsd_batch_request(b, code, (int64_t)(end - start), end);
    if (t != NULL)
        cg_board_busy_end(t, cg_monotonic_us());
}

/* A UDP socket bound to a free loopback port, named "127.0.0.1:PORT" in
 * host; -1 (said on stderr) when that fails. */
static int udp_loopback(char *host, size_t cap)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        perror("a loopback UDP socket");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    snprintf(host, cap, "127.0.0.1:%u", ntohs(sa.sin_port));
    return fd;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 7;
    if (n <= 0 || rounds <= 0 || rounds > 99) {
        fprintf(stderr, "usage: %s [requests per round] [rounds <= 99]\n", argv[0]);
        return 2;
    }
    /* the agent stand-in: a UDP socket drained by a child */
    char host[64], err[256];
    int rd = udp_loopback(host, sizeof(host));
    if (rd < 0)
        return 1;
    pid_t reader = fork();
    if (reader < 0) {
        perror("fork");
        return 1;
    }
    if (reader == 0) {
        char buf[65536];
        for (;;)
            if (recv(rd, buf, sizeof(buf), 0) < 0 && errno != EINTR)
                _exit(0);
    }
    close(rd);
    cg_statsd_t *s = NULL;
    if (cg_statsd_open(&s, host, "", "", err, sizeof(err)) != 0) {
        fprintf(stderr, "statsd: %s\n", err);
        return 1;
    }
    cg_statsd_batch_t *batch = cg_statsd_batch_new(s, 100);
    /* an agent that is down: a port just bound and closed again */
    int tmp = udp_loopback(host, sizeof(host));
    if (tmp < 0 || close(tmp) != 0)
        return 1;
    cg_statsd_t *down = NULL;
    if (cg_statsd_open(&down, host, "", "", err, sizeof(err)) != 0) {
        fprintf(stderr, "statsd: %s\n", err);
        return 1;
    }
    cg_statsd_batch_t *down_batch = cg_statsd_batch_new(down, 100);
    cg_board_t *board = cg_board_new();
    int slot = board != NULL ? cg_board_claim(board, 1) : -1;
    cg_board_shm_t *shm = slot >= 0 ? cg_board_child(board, slot) : NULL;
    cg_board_thread_t *t = cg_board_thread(shm, 0);
    if (batch == NULL || down_batch == NULL || t == NULL) {
        fprintf(stderr, "cannot make the batch or the board\n");
        return 1;
    }

    double us[V_COUNT][99];
    for (long i = 0; i < n / 10; i++) /* warm up */
        one_request(t, batch);
    for (int r = 0; r < rounds; r++) {
        for (int v = 0; v < V_COUNT; v++) {
            cg_board_thread_t *vt = v == V_STATSD || v == V_DOWN ? NULL : t;
            cg_statsd_batch_t *vb = v == V_METRICS ? NULL : v == V_DOWN ? down_batch : batch;
            double c0 = thread_cpu_us();
            for (long i = 0; i < n; i++)
                one_request(vt, vb);
            cg_statsd_batch_flush(vb);
            us[v][r] = (thread_cpu_us() - c0) / (double)n;
        }
    }
    printf("server CPU per request added by each, %ld requests x %d rounds:\n", n, rounds);
    for (int v = 0; v < V_COUNT; v++) {
        qsort(us[v], (size_t)rounds, sizeof(double), cmp);
        printf("  %-34s %.3f us (%.3f to %.3f)\n", names[v], us[v][rounds / 2], us[v][0],
               us[v][rounds - 1]);
    }
    kill(reader, SIGTERM);
    waitpid(reader, NULL, 0);
    cg_statsd_batch_free(batch);
    cg_statsd_close(s);
    cg_statsd_batch_free(down_batch);
    cg_statsd_close(down);
    return 0;
}
