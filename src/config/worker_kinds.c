/*
 * worker_kinds.c - the worker classes cgunicorn runs, under every name
 * Gunicorn accepts for them. The one table the config check, the arbiter's
 * "Using worker:" line and the worker's choice of loop all read.
 */
#include "config.h"

#include <string.h>

static const struct {
    const char *name;
    cg_worker_kind_t kind;
    bool stand_in; /* another project's worker, run by ours (see cg_config_worker_stand_in) */
    const char *pyclass; /* CG_WORKER_PYTHON: the class that runs it (cg_config_worker_pyclass) */
} cg__kinds[] = {
    {"sync", CG_WORKER_SYNC, false, NULL},
    {"gunicorn.workers.sync.SyncWorker", CG_WORKER_SYNC, false, NULL},
    {"egg:gunicorn#sync", CG_WORKER_SYNC, false, NULL},
    {"gthread", CG_WORKER_GTHREAD, false, NULL},
    {"gunicorn.workers.gthread.ThreadWorker", CG_WORKER_GTHREAD, false, NULL},
    {"egg:gunicorn#gthread", CG_WORKER_GTHREAD, false, NULL},
    {"asgi", CG_WORKER_ASGI, false, NULL},
    {"gunicorn.workers.gasgi.ASGIWorker", CG_WORKER_ASGI, false, NULL},
    {"egg:gunicorn#asgi", CG_WORKER_ASGI, false, NULL},
    /* Uvicorn's workers for Gunicorn (the ones in uvicorn itself, and the
     * uvicorn-worker package that replaces them): ASGI apps on an asyncio
     * loop, which is what our ASGI worker is. Their own settings (a
     * CONFIG_KWARGS subclass) are not read. */
    {"uvicorn.workers.UvicornWorker", CG_WORKER_ASGI, true, NULL},
    {"uvicorn.workers.UvicornH11Worker", CG_WORKER_ASGI, true, NULL},
    {"uvicorn_worker.UvicornWorker", CG_WORKER_ASGI, true, NULL},
    {"uvicorn_worker.UvicornH11Worker", CG_WORKER_ASGI, true, NULL},
    /* Gunicorn's gevent worker: a Python class of ours (gevent's hub and
     * greenlets) whose connections are served in C (src/workers/ggevent.c) */
    {"gevent", CG_WORKER_PYTHON, false, "cgunicorn.workers.ggevent.GeventWorker"},
    {"gunicorn.workers.ggevent.GeventWorker", CG_WORKER_PYTHON, false,
     "cgunicorn.workers.ggevent.GeventWorker"},
    {"egg:gunicorn#gevent", CG_WORKER_PYTHON, false, "cgunicorn.workers.ggevent.GeventWorker"},
    /* Gunicorn's pywsgi workers: gevent's own WSGI server, in Python */
    {"gevent_wsgi", CG_WORKER_PYTHON, false, "cgunicorn.workers.ggevent.GeventPyWSGIWorker"},
    {"gevent_pywsgi", CG_WORKER_PYTHON, false, "cgunicorn.workers.ggevent.GeventPyWSGIWorker"},
    {"gunicorn.workers.ggevent.GeventPyWSGIWorker", CG_WORKER_PYTHON, false,
     "cgunicorn.workers.ggevent.GeventPyWSGIWorker"},
    {"egg:gunicorn#gevent_wsgi", CG_WORKER_PYTHON, false,
     "cgunicorn.workers.ggevent.GeventPyWSGIWorker"},
    {"egg:gunicorn#gevent_pywsgi", CG_WORKER_PYTHON, false,
     "cgunicorn.workers.ggevent.GeventPyWSGIWorker"},
    /* Gunicorn's tornado worker: Tornado's HTTPServer and IOLoop */
    {"tornado", CG_WORKER_PYTHON, false, "cgunicorn.workers.gtornado.TornadoWorker"},
    {"gunicorn.workers.gtornado.TornadoWorker", CG_WORKER_PYTHON, false,
     "cgunicorn.workers.gtornado.TornadoWorker"},
    {"egg:gunicorn#tornado", CG_WORKER_PYTHON, false, "cgunicorn.workers.gtornado.TornadoWorker"},
    /* gevent-websocket's worker subclasses Gunicorn's GeventPyWSGIWorker:
     * ours with its handler, so a real Gunicorn's Python worker never runs */
    {"geventwebsocket.gunicorn.workers.GeventWebSocketWorker", CG_WORKER_PYTHON, true,
     "cgunicorn.workers.gwebsocket.GeventWebSocketWorker"},
};

/* Other names under Gunicorn's (egg:gunicorn#NAME, gunicorn.workers.) are
 * refused: a Gunicorn installed beside us would otherwise run a Python
 * worker of its own where the operator may expect ours. Any other name is
 * a Python class: "eventlet" too, which Gunicorn 26 no longer has, so that
 * it fails as there, "class uri 'eventlet' invalid or not found". */
static bool cg__gunicorn_own(const char *name)
{
    return strncmp(name, "egg:gunicorn#", 13) == 0 || strncmp(name, "gunicorn.workers.", 17) == 0;
}

cg_worker_kind_t cg_config_worker_kind_of(const char *name)
{
    if (name == NULL)
        return CG_WORKER_UNKNOWN;
    for (size_t i = 0; i < CG_ARRAY_SIZE(cg__kinds); i++)
        if (strcmp(name, cg__kinds[i].name) == 0)
            return cg__kinds[i].kind;
    return cg__gunicorn_own(name) ? CG_WORKER_UNKNOWN : CG_WORKER_PYTHON;
}

bool cg_config_worker_stand_in(const char *name)
{
    for (size_t i = 0; name != NULL && i < CG_ARRAY_SIZE(cg__kinds); i++)
        if (strcmp(name, cg__kinds[i].name) == 0)
            return cg__kinds[i].stand_in;
    return false;
}

const char *cg_config_worker_pyclass(const char *name)
{
    for (size_t i = 0; name != NULL && i < CG_ARRAY_SIZE(cg__kinds); i++)
        if (strcmp(name, cg__kinds[i].name) == 0)
            return cg__kinds[i].pyclass;
    return NULL;
}

/* Gunicorn's Config.worker_class: "sync" or a name ending in SyncWorker
 * with threads > 1 means the threaded worker ("egg:gunicorn#sync" does not). */
static bool cg__sync_upgrades(const cg_config_t *cfg)
{
    const char *wc = cfg->worker_class ? cfg->worker_class : "sync";
    size_t n = strlen(wc);
    bool is_sync = strcmp(wc, "sync") == 0 || (n >= 10 && strcmp(wc + n - 10, "SyncWorker") == 0);
    return is_sync && cfg->threads > 1;
}

cg_worker_kind_t cg_config_worker_kind(const cg_config_t *cfg)
{
    if (cg__sync_upgrades(cfg))
        return CG_WORKER_GTHREAD;
    return cg_config_worker_kind_of(cfg->worker_class ? cfg->worker_class : "sync");
}

bool cg_config_worker_tls_in_c(const cg_config_t *cfg)
{
    cg_worker_kind_t kind = cg_config_worker_kind(cfg);
    if (kind == CG_WORKER_SYNC || kind == CG_WORKER_GTHREAD)
        return true;
    /* the gevent worker is a Python class whose connections are C's
     * (src/workers/ggevent.c); its subclasses (pywsgi, websocket) are not */
    const char *pyclass = cg_config_worker_pyclass(cfg->worker_class);
    return kind == CG_WORKER_PYTHON &&
           strcmp(pyclass != NULL ? pyclass : cfg->worker_class,
                  "cgunicorn.workers.ggevent.GeventWorker") == 0;
}

const char *cg_config_worker_class_str(const cg_config_t *cfg)
{
    if (cg__sync_upgrades(cfg))
        return "gthread";
    return cfg->worker_class ? cfg->worker_class : "sync";
}
