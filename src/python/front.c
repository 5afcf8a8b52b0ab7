/*
 * front.c - what both front ends run: the standalone executable (src/main.c,
 * which embeds the interpreter and starts it only when Python is needed) and
 * the extension module behind the pip-installed console script and the
 * programmatic API (src/python/module.c, inside a running Python process:
 * "hosted"). Settings, the one-shot checks, then the arbiter.
 */
#include "python.h"

#include "../arbiter/arbiter.h"
#include "../metrics/statsd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What the master's Python side needs across the arbiter's life. */
typedef struct cg__front_py {
    cg_py_hooks_t hooks;
    bool hooks_up;
    cg_py_logging_t logging; /* logconfig*: the log's records through Python logging */
    bool logging_up;
    cg_py_loggerclass_t loggerclass; /* a custom logger_class takes them instead */
    bool loggerclass_up;
    cg_log_t *log; /* where hook exceptions go */
    PyThreadState *ts; /* the master's thread state while it idles without the GIL */
} cg__front_py_t;

/* cg_arbiter_preload_t: the interpreter (and its fork hooks) start here when
 * nothing started them before, so without --preload the master stays free
 * of Python. */
static int cg__preload_locked(cg__front_py_t *m, cg_config_t *cfg, cg_log_t *log)
{
    if (!m->hooks_up) {
        char err[1024];
        if (!Py_IsInitialized() && cg_py_init(cfg, err, sizeof(err)) < 0) {
            if (log != NULL)
                cg_log_error(log, "Unhandled exception in main loop\n%s", err);
            else
                fprintf(stderr, "Error: %s\n", err);
            return 1;
        }
        if (cg_py_hooks_init(&m->hooks, cfg, m->log, err, sizeof(err)) < 0) {
            fprintf(stderr, "Error: %s\n", err);
            return 1;
        }
        m->hooks_up = true;
    }
    return cg_py_preload(cfg, log);
}

static int cg__preload(void *ctx, cg_config_t *cfg, cg_log_t *log)
{
    cg__front_py_t *m = ctx;
    cg_py_gil_take(&m->ts);
    int st = cg__preload_locked(m, cfg, log);
    cg_py_gil_release(&m->ts); /* also when this call started the interpreter */
    return st;
}

int cg_py_front_startup_checks(const cg_config_t *cfg)
{
    char err[1024];
    if (cg_config_check_supported(cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    for (size_t i = 0; i < cfg->raw_env.n; i++) {
        if (strchr(cfg->raw_env.v[i], '=') == NULL) {
            fprintf(stderr, "Error: Invalid value for raw_env: %s\n", cfg->raw_env.v[i]);
            return 1;
        }
    }
    if (cg_arbiter_check_binds(cfg) < 0)
        return 1;
    /* Gunicorn 27's Config.validate(): h2 offered where nothing can
     * negotiate it is not an error, but worth a word. */
    bool h2 = false;
    for (size_t i = 0; i < cfg->http_protocols.n; i++)
        h2 = h2 || strcmp(cfg->http_protocols.v[i], "h2") == 0;
    bool is_ssl = (cfg->keyfile != NULL && cfg->keyfile[0] != '\0') ||
                  (cfg->certfile != NULL && cfg->certfile[0] != '\0');
    if (h2 && !is_ssl && (cfg->http2_cleartext == NULL || strcmp(cfg->http2_cleartext, "off") == 0))
        fputs("Warning: http_protocols includes h2 but there is no TLS and http2_cleartext is "
              "off, so HTTP/2 will never be negotiated.\n",
              stderr);
    return 0;
}

int cg_py_front_serve(cg_config_t *cfg)
{
    cg_log_t log;
    char err[1024];
    int status;
    cg__front_py_t py;

    memset(&py, 0, sizeof(py));
    py.log = &log;
    if ((status = cg_py_front_startup_checks(cfg)) != 0)
        return status;
    for (size_t i = 0; i < cfg->raw_env.n; i++) {
        char *kv = cfg->raw_env.v[i], *eq = strchr(kv, '='); /* checked above */
        *eq = '\0';
        setenv(kv, eq + 1, 1);
        *eq = '=';
    }
    if (cg_log_open_config(&log, cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "Error: %s\n", err);
        return 1;
    }
    /* logconfig* needs Python logging set up in the master, and a custom
     * logger_class its instance there, so that the workers forked from it
     * inherit them; a Python worker class is imported there, as Gunicorn's
     * arbiter does, so a bad one stops the server before any worker */
    bool py_worker = cg_config_worker_kind(cfg) == CG_WORKER_PYTHON;
    if ((cg_py_logging_wanted(cfg) || cg_py_loggerclass_wanted(cfg) || py_worker) &&
        !Py_IsInitialized() && cg_py_init(cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "Error: %s\n", err);
        cg_log_close(&log);
        return 1;
    }
    if (Py_IsInitialized()) {
        /* Gunicorn puts pythonpath on sys.path before the arbiter starts, so
         * hooks can import from it too. */
        if (cg_py_sync_environ() < 0) {
            cg_py_log_exception(&log, CG_LOG_ERROR, "Cannot apply raw_env to os.environ");
            PyErr_Clear();
        }
        if (cg_py_setup_path(cfg, err, sizeof(err)) < 0 ||
            cg_py_hooks_init(&py.hooks, cfg, &log, err, sizeof(err)) < 0) {
            fprintf(stderr, "Error: %s\n", err);
            cg_log_close(&log);
            return 1;
        }
        py.hooks_up = true;
        if (cg_py_loggerclass_wanted(cfg)) {
            /* the class's setup() does what logconfig* asks (Gunicorn's
             * Logger.setup) */
            py.loggerclass_up = true;
            status = cg_py_loggerclass_init(&py.loggerclass, cfg, &log);
        } else {
            py.logging_up = true;
            status = cg_py_logging_init(&py.logging, cfg, &log);
        }
        if (status == 0 && py_worker)
            status = cg_py_worker_class_check(cfg);
        if (status == 0 && cfg->spew && cg_py_spew(&log) < 0)
            status = 1;
    }
    cg_statsd_t *statsd = NULL;
    if (status == 0) {
        /* Gunicorn's Statsd logger makes its socket here, in the master,
         * and the workers inherit it. When it cannot, Gunicorn says nothing
         * and sends nothing; we say why once. */
        if (cg_statsd_open(&statsd, cfg->statsd_host, cfg->statsd_prefix, cfg->dogstatsd_tags,
                           err, sizeof(err)) < 0)
            cg_log_warning(&log, "%s: no metrics will be sent", err);
        log.statsd = statsd;
        /* From here the master takes the GIL only to run Python (hooks,
         * logging, HUP, fork), so Python threads run while it idles. */
        cg_py_gil_release(&py.ts);
        status = cg_arbiter_run_preload(cfg, &log, cg__preload, &py);
        cg_py_gil_take(&py.ts);
    }
    cg_py_flush_stdio(); /* also when finalizing later fails half-way */
    if (py.logging_up)
        cg_py_logging_free(&py.logging);
    if (py.loggerclass_up)
        cg_py_loggerclass_free(&py.loggerclass);
    if (py.hooks_up)
        cg_py_hooks_free(&py.hooks, cfg);
    cg_log_close(&log);
    cg_statsd_close(statsd);
    return status;
}

int cg_py_front_main(int argc, char **argv, const char *exec_path, char **exec_argv,
                     cg_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    /* A config file starts the interpreter in the master (its hooks run
     * there); without one the standalone master stays free of Python. */
    int status = cg_config_load(cfg, argc, argv, cg_py_config_loader, NULL);
    if (status != 0)
        return status < 0 ? 0 : status;
    cfg->argc = argc;
    cfg->argv = argv;
    cfg->exec_path = exec_path;
    cfg->exec_argv = exec_argv;
    cfg->hosted = cg_py_hosted();

    if (cfg->print_config)
        cg_config_print(cfg, stdout);
    if (cfg->print_config || cfg->check_config) {
        /* Gunicorn's --check-config loads the app; ours also refuses what
         * our start-up would, with the same message and status.
         * --print-config (alone or with it) shows any configuration, as
         * Gunicorn's does, and only loads the app. */
        status = cfg->check_config && !cfg->print_config ? cg_py_front_startup_checks(cfg) : 0;
        if (status == 0)
            status = cg_py_check_app(cfg);
        return status;
    }
    return cg_py_front_serve(cfg);
}
