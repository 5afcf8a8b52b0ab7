/*
 * run.c - the production entry point. Kept apart from arbiter.c so that
 * tests link the arbiter with a fake worker without needing cg_worker_main
 * (which lives with the Python side).
 */
#include "arbiter.h"

int cg_arbiter_run(cg_config_t *cfg, cg_log_t *log)
{
    return cg_arbiter_run_with(cfg, log, cg_worker_main);
}

int cg_arbiter_run_preload(cg_config_t *cfg, cg_log_t *log, cg_arbiter_preload_t preload,
                           void *preload_ctx)
{
    return cg_arbiter_run_full(cfg, log, cg_worker_main, preload, preload_ctx);
}
