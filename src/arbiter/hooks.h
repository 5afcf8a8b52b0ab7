/*
 * hooks.h - Gunicorn's server hooks, seen from C.
 *
 * The arbiter and the workers are plain C and call hooks through this table
 * at Gunicorn's moments (gunicorn-behaviour.md). src/python fills it when a
 * configuration file defines hooks; a NULL entry (or a NULL table) means the
 * hook is not set and costs one branch. Hooks that take a request
 * (pre_request, post_request) are called by the WSGI layer directly, since it
 * already runs Python there.
 *
 * Every function is called with no Python state assumed: the implementation
 * takes the GIL itself. A hook that raises is logged by the implementation
 * (with its traceback) and never stops the caller.
 */
#ifndef CG_HOOKS_H
#define CG_HOOKS_H

#include <stddef.h>

struct cg_arbiter;
struct cg_worker;
struct cg_config;

typedef struct cg_hooks {
    void *ctx;
    /* master */
    void (*on_starting)(void *ctx, struct cg_arbiter *a);
    void (*on_reload)(void *ctx, struct cg_arbiter *a);
    void (*when_ready)(void *ctx, struct cg_arbiter *a);
    void (*pre_fork)(void *ctx, struct cg_arbiter *a, struct cg_worker *w);
    void (*pre_exec)(void *ctx, struct cg_arbiter *a);
    void (*child_exit)(void *ctx, struct cg_arbiter *a, struct cg_worker *w);
    void (*nworkers_changed)(void *ctx, struct cg_arbiter *a, int new_value, int old_value);
    void (*on_exit)(void *ctx, struct cg_arbiter *a);
    /* the dirty arbiter, before it starts (the other dirty hooks are
     * called by the Python dirty worker itself) */
    void (*on_dirty_starting)(void *ctx, struct cg_arbiter *a);
    /* worker process */
    void (*post_fork)(void *ctx, struct cg_arbiter *a, struct cg_worker *w);
    void (*post_worker_init)(void *ctx, struct cg_worker *w);
    void (*worker_int)(void *ctx, struct cg_worker *w);
    void (*worker_abort)(void *ctx, struct cg_worker *w);
    void (*worker_exit)(void *ctx, struct cg_arbiter *a, struct cg_worker *w);
    /* not Gunicorn hooks: keep an interpreter started in the master sane
     * across fork (PyOS_AfterFork_*); called around every fork the master does */
    void (*fork_prepare)(void *ctx);
    void (*fork_parent)(void *ctx);
    void (*fork_child)(void *ctx);
    /* not a Gunicorn hook: the configuration-file loader main() passed to
     * cg_config_load(), so HUP re-reads the file the same way; NULL: files
     * cannot be read (a HUP that would need one keeps the old settings) */
    int (*config_loader)(struct cg_config *cfg, const char *location, void *ctx, char *err,
                         size_t errlen);
    void *config_loader_ctx;
    /* not a Gunicorn hook: HUP for an application object of the Python API
     * (cfg->app_object): its reload(), then a copy of its cfg into *fresh.
     * 0, or -1 with a message in err (the old settings are kept). */
    int (*config_reload)(void *ctx, struct cg_config *fresh, char *err, size_t errlen);
    /* not a Gunicorn hook: the ssl_context setting, for the C transport
     * (src/python/tlshook.c): calls cfg's hook and gives the context
     * (cg_tls_ctx_t, src/tls/tls.h, the caller's to free) serving the
     * OpenSSL SSL_CTX inside the ssl.SSLContext it returned, with its
     * sni_callback and keylog_filename, in *tls. 0, or -errno with the
     * reason (a Python traceback when the hook raised) in err. */
    int (*tls_context)(void *ctx, const struct cg_config *cfg, void **tls, char *err,
                       size_t errlen);
} cg_hooks_t;

/* Call hook `name` of table `h` (may be NULL) with the remaining arguments. */
#define CG_HOOK(h, name, ...)                                                                     \
    do {                                                                                          \
        const cg_hooks_t *cg__h = (h);                                                            \
        if (cg__h != NULL && cg__h->name != NULL)                                                 \
            cg__h->name(cg__h->ctx, __VA_ARGS__);                                                 \
    } while (0)
#define CG_HOOK0(h, name)                                                                         \
    do {                                                                                          \
        const cg_hooks_t *cg__h = (h);                                                            \
        if (cg__h != NULL && cg__h->name != NULL)                                                 \
            cg__h->name(cg__h->ctx);                                                              \
    } while (0)

#endif
