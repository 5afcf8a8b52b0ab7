/*
 * asgi.h - the ASGI worker's loop (-k asgi, and Uvicorn's worker classes):
 * ASGI 3 apps on asyncio's event loop (or uvloop's), see src/asgi/.
 */
#ifndef CG_WORKER_ASGI_H
#define CG_WORKER_ASGI_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "worker.h"

/*
 * Serve w's listeners with the ASGI application `app` (a new reference,
 * taken over) until the worker is told to stop. Called and left with the
 * GIL held: the loop runs Python. Returns the worker's exit status (0, 1
 * after an ABRT, CG_WORKER_EXIT_BOOT_ERROR when the loop or a failed
 * lifespan startup keeps it from serving), or -1 for a crash (logged).
 */
int cg_worker_asgi_run(cg_worker_t *w, PyObject *app);

#endif
