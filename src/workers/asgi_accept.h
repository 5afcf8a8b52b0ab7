/*
 * asgi_accept.h - the ASGI worker's accepting, balanced across workers.
 *
 * asyncio's create_server() accepts up to its backlog (ours: --backlog)
 * connections per wake-up, uvloop's all that wait: whichever worker runs
 * first takes a burst whole, and with keep-alive the connections stay
 * there. Instead each listener is watched with loop.add_reader(); its
 * callback accepts in C, one connection at a time while the workers' load
 * table lets this worker take one (balance.h), and hands each to
 * loop.connect_accepted_socket() with the worker's protocol factory, in a
 * task (what create_server() does per connection too).
 */
#ifndef CG_WORKER_ASGI_ACCEPT_H
#define CG_WORKER_ASGI_ACCEPT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../asgi/asgi.h"

typedef struct cg_asgi_acc cg_asgi_acc_t;

/* Start watching a->w's listeners on a's loop (GIL held; a->ssl set
 * already). The acceptor, or NULL with an exception set. */
cg_asgi_acc_t *cg_asgi_accept_start(cg_asgi_t *a);
/* Accept no more: the listeners unwatched, the worker no longer counted
 * as accepting in the load table. Idempotent; acc may be NULL. */
void cg_asgi_accept_stop(cg_asgi_acc_t *acc);
/* Release it (GIL held; stops it first). acc may be NULL. */
void cg_asgi_accept_free(cg_asgi_acc_t *acc);

#endif
