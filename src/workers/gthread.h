/*
 * gthread.h - Gunicorn's gthread worker (ThreadWorker): one libuv loop reads
 * and parses request heads of many keep-alive connections without blocking;
 * complete requests run the app on a pool of `threads` threads (inline on the
 * loop thread when threads is 1).
 */
#ifndef CG_GTHREAD_H
#define CG_GTHREAD_H

#include "../wsgi/wsgi.h"
#include "worker.h"

/*
 * Serve until the worker is told to stop (TERM: graceful up to
 * graceful_timeout; QUIT/INT: at once; max_requests; parent gone). Entered
 * and left without the GIL; `ws` is the worker's WSGI state (used by the loop
 * thread when threads is 1; pool threads make their own). Returns 0, or
 * -errno on a fatal setup error (logged).
 */
int cg_worker_gthread_run(cg_worker_t *w, cg_wsgi_t *ws);

#endif
