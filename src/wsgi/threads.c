/*
 * threads.c - the WSGI side of the gthread worker's threads: a context per
 * pool thread with its own Python thread state, and SystemExit for the ones
 * inside the app. The worker loop calls these without the GIL and never
 * touches CPython itself.
 */
#include "wsgi.h"

#include "../python/python.h"

int cg_wsgi_thread_init(cg_wsgi_t *ws, const cg_wsgi_t *proto)
{
    PyGILState_STATE gs = PyGILState_Ensure();
    int rc = cg_wsgi_init(ws, proto->worker, Py_NewRef(proto->app));
    if (rc == 0)
        rc = cg_wsgi_set_threaded(ws);
    if (rc < 0)
        cg_py_log_exception(proto->log, CG_LOG_ERROR, "Exception in worker process");
    ws->gil_state = (int)gs;
    ws->tstate = PyEval_SaveThread();
    if (rc == 0)
        cg_wsgi_rt_add(proto->worker->rt, ws);
    return rc;
}

void cg_wsgi_thread_free(cg_wsgi_t *ws)
{
    cg_wsgi_rt_remove(ws->worker->rt, ws);
    PyEval_RestoreThread(ws->tstate);
    int gs = ws->gil_state;
    cg_wsgi_free(ws);
    PyGILState_Release((PyGILState_STATE)gs);
}

int cg_wsgi_make_threaded(cg_wsgi_t *ws)
{
    PyEval_RestoreThread(ws->tstate);
    int rc = cg_wsgi_set_threaded(ws);
    if (rc < 0)
        cg_py_log_exception(ws->log, CG_LOG_ERROR, "Exception in worker process");
    ws->tstate = PyEval_SaveThread();
    return rc;
}

void cg_wsgi_release_orphans(cg_wsgi_t *ws)
{
    if (ws->orphans.n == 0)
        return;
    PyEval_RestoreThread(ws->tstate);
    cg_wsgi_orphans_release(&ws->orphans);
    ws->tstate = PyEval_SaveThread();
}

void cg_wsgi_interrupt(cg_wsgi_t *by, cg_wsgi_t *const *targets, size_t n)
{
    PyEval_RestoreThread(by->tstate);
    for (size_t i = 0; i < n; i++)
        if (targets[i]->in_app)
            PyThreadState_SetAsyncExc(targets[i]->thread_id, PyExc_SystemExit);
    by->tstate = PyEval_SaveThread();
}
