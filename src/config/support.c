/*
 * support.c - which configured features cgunicorn cannot honour yet. Refusing
 * to start is better than silently serving without TLS, as the wrong user, or
 * without the metrics the operator asked for. (logger_class is not here:
 * any class is run, src/python/loggerclass.c.)
 */
#include "config_internal.h"

#include <stdlib.h>
#include <string.h>

static int cg__unsupported(const char *name, char *err, size_t errlen)
{
    cg__errf(err, errlen, "Error: %s is not supported yet by cgunicorn", name);
    return -ENOTSUP;
}

int cg_config_check_supported(const cg_config_t *cfg, char *err, size_t errlen)
{
#define CG__OFF(cond, name)                                                                      \
    do {                                                                                         \
        if (cond)                                                                                \
            return cg__unsupported(name, err, errlen);                                           \
    } while (0)

    /* any class we do not run is refused rather than silently served by
     * another one */
    CG__OFF(cg_config_worker_kind_of(cfg->worker_class) == CG_WORKER_UNKNOWN, "worker_class");
    /* TLS is served by every worker that runs: sync, gthread and gevent
     * with the C transport (src/tls/), asgi with asyncio's SSL transports,
     * Python worker classes with Python's ssl (cgunicorn.sock, as Gunicorn's
     * gunicorn.sock) */
    cg_worker_kind_t kind = cg_config_worker_kind_of(cfg->worker_class);
    const char *pyclass = cg_config_worker_pyclass(cfg->worker_class);
    const char *gevent_class = "cgunicorn.workers.ggevent.GeventWorker";
    bool gevent = kind == CG_WORKER_PYTHON &&
                  strcmp(pyclass != NULL ? pyclass : cfg->worker_class, gevent_class) == 0;
    /* HTTP/2 (src/h2/) is served by the gthread and asgi workers; the sync
     * worker warns and serves HTTP/1.1 as Gunicorn's does (sync.c). */
    bool h2 = false;
    for (size_t i = 0; i < cfg->http_protocols.n; i++) {
        h2 = h2 || strcmp(cfg->http_protocols.v[i], "h2") == 0;
    }
    if (h2 && kind != CG_WORKER_GTHREAD && kind != CG_WORKER_SYNC && kind != CG_WORKER_ASGI) {
        cg__errf(err, errlen,
                 "Error: HTTP/2 (http_protocols h2) is not supported yet by cgunicorn's %s worker",
                 cfg->worker_class);
        return -ENOTSUP;
    }
    const char *h2c = cfg->http2_cleartext != NULL ? cfg->http2_cleartext : "off";
    if (strcmp(h2c, "off") != 0 && kind != CG_WORKER_GTHREAD && kind != CG_WORKER_ASGI) {
        cg__errf(err, errlen,
                 "Error: http2_cleartext is not supported yet by cgunicorn's %s worker",
                 cfg->worker_class);
        return -ENOTSUP;
    }
    /* request_timeout needs a watch per worker kind (src/wsgi/timeout.c,
     * src/asgi/timeout.c, src/workers/ggevent.c); a Python worker class
     * other than ours has none */
    if (cfg->request_timeout > 0 && kind != CG_WORKER_SYNC && kind != CG_WORKER_GTHREAD &&
        kind != CG_WORKER_ASGI && !gevent) {
        cg__errf(err, errlen,
                 "Error: request_timeout is not supported yet by cgunicorn's %s worker "
                 "(only by sync, gthread, asgi and gevent)",
                 cfg->worker_class);
        return -ENOTSUP;
    }
#undef CG__OFF
    return 0;
}
