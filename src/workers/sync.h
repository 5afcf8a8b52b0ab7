/* sync.h - Gunicorn's sync worker: one request per connection, one at a time. */
#ifndef CG_SYNC_H
#define CG_SYNC_H

#include "../wsgi/wsgi.h"
#include "worker.h"

/* Accept and serve until the worker is told to stop (TERM/QUIT/INT, max
 * requests, parent gone). Entered without the GIL. Returns 0 or -errno on a
 * fatal error. */
int cg_worker_sync_run(cg_worker_t *w, cg_wsgi_t *ws);

#endif
