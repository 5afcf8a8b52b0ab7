/*
 * prom.c - the scoreboard as Prometheus text (exposition format 0.0.4).
 *
 * Series per worker carry worker="N", the scoreboard slot (1-based), not the
 * pid: a restarted worker continues its slot's counters, so the label set
 * stays as small as the most workers ever alive at once, and a counter only
 * resets when the master does.
 */
#include "prom.h"

#include "../os/os.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CG__LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

static void cg__family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped. */
static void cg__label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f), fputc(*s, f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

/* A thread's busy time including the request it serves now; never less than
 * what the previous scrape showed. */
static uint64_t cg__busy(cg_board_slot_t *s, uint32_t i, uint64_t now_us)
{
    const cg_board_thread_t *t = &s->shm->threads[i];
    uint64_t since = CG__LOAD(t->busy_since);
    uint64_t busy = CG__LOAD(t->busy_us);
    if (since != 0 && s->pid > 0 && now_us > since)
        busy += now_us - since;
    if (busy < s->last_busy_us[i])
        busy = s->last_busy_us[i];
    s->last_busy_us[i] = busy;
    return busy;
}

static void cg__seconds(FILE *f, uint64_t us)
{
    fprintf(f, "%llu.%06llu\n", (unsigned long long)(us / 1000000u),
            (unsigned long long)(us % 1000000u));
}

static const char *const cg__classes[CG_BOARD_NCLASSES] = {"other", "1xx", "2xx",
                                                           "3xx",   "4xx", "5xx"};

static void cg__workers(FILE *f, const cg_prom_view_t *v)
{
    cg_board_t *b = v->board;

    cg__family(f, "cgunicorn_requests_total", "counter",
               "Requests answered, by worker slot and status class (error pages the "
               "server wrote before the app included).");
    for (size_t w = 0; w < b->nslots; w++) {
        const cg_board_shm_t *m = b->slots[w].shm;
        if (m == NULL)
            continue;
        for (size_t c = 0; c < CG_BOARD_NCLASSES; c++) {
            uint64_t n = CG__LOAD(m->refused[c]);
            for (uint32_t i = 0; i < m->nthreads; i++)
                n += CG__LOAD(m->threads[i].requests[c]);
            fprintf(f, "cgunicorn_requests_total{worker=\"%zu\",status=\"%s\"} %llu\n", w + 1,
                    cg__classes[c], (unsigned long long)n);
        }
    }

    /* one histogram over every worker: per-worker ones would multiply the
     * series by the slots for little use */
    uint64_t buckets[CG_BOARD_NBUCKETS + 1] = {0}, sum_us = 0;
    for (size_t w = 0; w < b->nslots; w++) {
        const cg_board_shm_t *m = b->slots[w].shm;
        for (uint32_t i = 0; m != NULL && i < m->nthreads; i++) {
            for (size_t k = 0; k <= CG_BOARD_NBUCKETS; k++)
                buckets[k] += CG__LOAD(m->threads[i].buckets[k]);
            sum_us += CG__LOAD(m->threads[i].duration_us);
        }
    }
    cg__family(f, "cgunicorn_request_duration_seconds", "histogram",
               "Time from a request's head to the end of its response, as the access "
               "log's request_time.");
    uint64_t cum = 0;
    for (size_t k = 0; k < CG_BOARD_NBUCKETS; k++) {
        cum += buckets[k];
        /* the bound as Prometheus' clients print it: "1.0", not "1" */
        double bound = cg_board_bounds[k];
        fprintf(f, bound == (double)(long)bound ? "%s{le=\"%.1f\"} %llu\n" : "%s{le=\"%g\"} %llu\n",
                "cgunicorn_request_duration_seconds_bucket", bound, (unsigned long long)cum);
    }
    cum += buckets[CG_BOARD_NBUCKETS];
    fprintf(f, "cgunicorn_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
            (unsigned long long)cum);
    fputs("cgunicorn_request_duration_seconds_sum ", f);
    cg__seconds(f, sum_us);
    fprintf(f, "cgunicorn_request_duration_seconds_count %llu\n", (unsigned long long)cum);

    cg__family(f, "cgunicorn_requests_in_flight", "gauge",
               "Requests being served now, by worker slot.");
    for (size_t w = 0; w < b->nslots; w++) {
        const cg_board_slot_t *s = &b->slots[w];
        if (s->shm == NULL)
            continue;
        unsigned n = 0;
        for (uint32_t i = 0; s->pid > 0 && i < s->shm->nthreads; i++) {
            uint64_t loop = CG__LOAD(s->shm->threads[i].inflight);
            n += loop ? (unsigned)loop : CG__LOAD(s->shm->threads[i].busy_since) != 0;
        }
        fprintf(f, "cgunicorn_requests_in_flight{worker=\"%zu\"} %u\n", w + 1, n);
    }

    cg__family(f, "cgunicorn_worker_busy_seconds_total", "counter",
               "Time each serving thread spent on requests; its rate is the thread's "
               "utilisation (0 idle, 1 always busy).");
    for (size_t w = 0; w < b->nslots; w++) {
        cg_board_slot_t *s = &b->slots[w];
        for (uint32_t i = 0; s->shm != NULL && i < s->shm->nthreads; i++) {
            fprintf(f, "cgunicorn_worker_busy_seconds_total{worker=\"%zu\",thread=\"%u\"} ", w + 1,
                    i);
            cg__seconds(f, cg__busy(s, i, v->now_us));
        }
    }
    cg__family(f, "cgunicorn_worker_threads", "gauge",
               "Serving threads of the worker in each slot (0: the slot is free).");
    for (size_t w = 0; w < b->nslots; w++) {
        const cg_board_slot_t *s = &b->slots[w];
        if (s->shm != NULL)
            fprintf(f, "cgunicorn_worker_threads{worker=\"%zu\"} %u\n", w + 1,
                    s->pid > 0 ? s->nthreads : 0);
    }

    cg__family(f, "cgunicorn_worker_connections_open", "gauge",
               "Client connections each worker holds open now.");
    for (size_t w = 0; w < b->nslots; w++)
        if (b->slots[w].shm != NULL)
            fprintf(f, "cgunicorn_worker_connections_open{worker=\"%zu\"} %llu\n", w + 1,
                    (unsigned long long)CG__LOAD(b->slots[w].shm->conns_open));
    cg__family(f, "cgunicorn_worker_connections_accepted_total", "counter",
               "Client connections accepted, by worker slot.");
    for (size_t w = 0; w < b->nslots; w++)
        if (b->slots[w].shm != NULL)
            fprintf(f, "cgunicorn_worker_connections_accepted_total{worker=\"%zu\"} %llu\n", w + 1,
                    (unsigned long long)CG__LOAD(b->slots[w].shm->conns_total));

    /* from the kernel, for the workers alive now */
    uint64_t *rss = cg_xcalloc(b->nslots ? b->nslots : 1, sizeof(*rss));
    for (size_t w = 0; w < b->nslots; w++) {
        cg_board_slot_t *s = &b->slots[w];
        uint64_t cpu = 0;
        if (s->pid > 0 && cg_os_proc_usage(s->pid, &rss[w], &cpu) < 0)
            rss[w] = cpu = 0;
        cpu += s->cpu_ended_us;
        if (cpu < s->last_cpu_us)
            cpu = s->last_cpu_us;
        s->last_cpu_us = cpu;
    }
    cg__family(f, "cgunicorn_worker_cpu_seconds_total", "counter",
               "User and system CPU time of the workers that held each slot.");
    for (size_t w = 0; w < b->nslots; w++) {
        fprintf(f, "cgunicorn_worker_cpu_seconds_total{worker=\"%zu\"} ", w + 1);
        cg__seconds(f, b->slots[w].last_cpu_us);
    }
    cg__family(f, "cgunicorn_worker_resident_memory_bytes", "gauge",
               "Resident memory of the worker in each slot now (0: the slot is free).");
    for (size_t w = 0; w < b->nslots; w++)
        fprintf(f, "cgunicorn_worker_resident_memory_bytes{worker=\"%zu\"} %llu\n", w + 1,
                (unsigned long long)rss[w]);
    free(rss);
    cg__family(f, "cgunicorn_worker_pid", "gauge",
               "Process id of the worker in each slot (0: the slot is free).");
    for (size_t w = 0; w < b->nslots; w++)
        fprintf(f, "cgunicorn_worker_pid{worker=\"%zu\"} %d\n", w + 1,
                b->slots[w].pid > 0 ? (int)b->slots[w].pid : 0);
    cg__family(f, "cgunicorn_worker_restarts_total", "counter",
               "Workers started in each slot after its first.");
    for (size_t w = 0; w < b->nslots; w++)
        fprintf(f, "cgunicorn_worker_restarts_total{worker=\"%zu\"} %llu\n", w + 1,
                (unsigned long long)(b->slots[w].starts ? b->slots[w].starts - 1 : 0));
    cg__family(f, "cgunicorn_worker_timeouts_total", "counter",
               "Workers the master killed for not answering within --timeout, by slot.");
    for (size_t w = 0; w < b->nslots; w++)
        fprintf(f, "cgunicorn_worker_timeouts_total{worker=\"%zu\"} %llu\n", w + 1,
                (unsigned long long)b->slots[w].timeouts);
}

/* One gauge per TCP listener: its queue (limit false) or the queue's limit. */
static void cg__backlog(FILE *f, const cg_prom_view_t *v, const char *name, bool limit)
{
    for (size_t i = 0; i < v->nlisteners; i++) {
        uint32_t queued, max;
        if (cg_net_backlog(&v->listeners[i], &queued, &max) < 0)
            continue; /* a unix socket has no such figure */
        fprintf(f, "%s{listener=\"", name);
        cg__label(f, v->listeners[i].display ? v->listeners[i].display : "");
        fprintf(f, "\"} %u\n", limit ? max : queued);
    }
}

char *cg_prom_render(const cg_prom_view_t *v, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (f == NULL)
        return NULL;
    cg__family(f, "cgunicorn_workers", "gauge", "Workers running now (HUP's outgoing ones not counted).");
    fprintf(f, "cgunicorn_workers %ld\n", v->workers);
    cg__family(f, "cgunicorn_workers_wanted", "gauge", "Workers the master keeps (--workers, TTIN/TTOU).");
    fprintf(f, "cgunicorn_workers_wanted %ld\n", v->workers_wanted);
    if (v->board != NULL)
        cg__workers(f, v);
    cg__family(f, "cgunicorn_listener_backlog", "gauge",
               "Connections waiting in each TCP listener's accept queue.");
    cg__backlog(f, v, "cgunicorn_listener_backlog", false);
    cg__family(f, "cgunicorn_listener_backlog_limit", "gauge",
               "The accept queue's length limit (--backlog as the kernel applies it).");
    cg__backlog(f, v, "cgunicorn_listener_backlog_limit", true);
    cg__family(f, "cgunicorn_listener_refused_total", "counter",
               "Connections the master answered 503 (or reset, TLS) because every worker was busy "
               "and an accept queue was full.");
    fprintf(f, "cgunicorn_listener_refused_total %llu\n", (unsigned long long)v->shed);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}
