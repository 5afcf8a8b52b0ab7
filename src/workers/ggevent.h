/*
 * ggevent.h - the gevent worker's connections (-k gevent): HTTP in C on
 * greenlets, its waiting done by gevent's hub (ggevent.c). The worker
 * itself is the Python class cgunicorn.workers.ggevent.GeventWorker.
 */
#ifndef CG_WORKER_GGEVENT_H
#define CG_WORKER_GGEVENT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "worker.h"

/* Add the type cgunicorn._core.GeventServer to `module` (GIL held).
 * Returns 0, or -1 with an exception set. */
int cg_worker_gevent_add_type(PyObject *module);

#endif
