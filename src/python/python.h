/*
 * python.h - the embedded CPython interpreter: start-up, app loading, tracebacks.
 *
 * Reference discipline at this boundary: every PyObject * is either "new" (we
 * own it and must Py_DECREF it on every path) or "borrowed" (we don't), and the
 * comment at each call says which when it is not obvious from the API name.
 * Functions here must be called with the GIL held unless they say otherwise.
 */
#ifndef CG_PYTHON_H
#define CG_PYTHON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../cg.h"
#include "../config/config.h"
#include "../log/log.h"
#include "../arbiter/hooks.h"
#include "../workers/worker.h"

/*
 * Start the interpreter (PEP 587 PyConfig): Debian's python3 by default, or the
 * interpreter of $VIRTUAL_ENV when set, our argv as sys.argv, no Python signal
 * handlers (the C worker owns signals). Puts cfg->chdir (the working directory)
 * and then every cfg->pythonpath entry at the front of sys.path, as Gunicorn.
 * Returns 0 with the GIL held, or -1 with a message in err. Where the
 * interpreter runs already (a worker forked from a master that runs it, or
 * a HUP), takes the GIL when the calling thread does not hold it.
 */
int cg_py_init(const cg_config_t *cfg, char *err, size_t errlen);

/*
 * The pip-installed front end runs inside a Python process that owns the
 * interpreter ("hosted"): cg_py_adopt() tells this code so, once, with the
 * GIL held. cg_py_init() then only prepares that interpreter, and
 * cg_py_finalize() does not tear it down under the host's frames.
 */
void cg_py_adopt(void);
bool cg_py_hosted(void);

/* A process that ran Python leaving: Py_FinalizeEx() (atexit handlers,
 * flushed output) for an interpreter we started; for a hosted one, its
 * atexit handlers and flushed output only, since the host's Python frames
 * are still on this stack and the process is about to _exit. GIL held.
 * Returns 0, or -1 when finalizing failed (exit status 120). */
int cg_py_finalize(void);

/* ---- front.c: what the standalone executable and the extension module run ---- */

/* The command line as the `cgunicorn` program: settings from argv (and
 * the environment, a config file), --print-config / --check-config, or the
 * arbiter until it stops. exec_path/exec_argv: what USR2 executes (see
 * cg_config_t; NULL for this binary with argv). cfg is filled here and left
 * to the caller to free (cg_config_free) once Python is done with it.
 * Returns the exit status. */
int cg_py_front_main(int argc, char **argv, const char *exec_path, char **exec_argv,
                     cg_config_t *cfg);

/* The arbiter over loaded settings (start-up refusals first, as
 * --check-config has them). Returns the exit status. */
int cg_py_front_serve(cg_config_t *cfg);

/* The refusals start-up makes before the arbiter runs, printed as it does:
 * settings cgunicorn lacks, raw_env without '=', bind addresses. Returns
 * the exit status (0: none). */
int cg_py_front_startup_checks(const cg_config_t *cfg);

/* Flush Python's sys.stdout and sys.stderr, as an exiting Python process
 * would: text a configuration file or an app print()ed sits in their buffers
 * while stdout is a pipe, and a C exit (or _exit after fork) would drop it.
 * Call before every exit of a process that ran Python, and before fork.
 * Takes the GIL itself; errors are cleared; no-op without an interpreter. */
void cg_py_flush_stdio(void);

/* ---- spew.c ---- */

/* The spew setting: cgunicorn.debug.spew() on the calling thread. 0, or -1
 * with the exception logged to log. */
int cg_py_spew(cg_log_t *log);

/* ---- signals.c ---- */

/* QUIT/INT/ABRT in a worker: Python handlers that raise SystemExit (0, or
 * 1 for ABRT, whose handler first logs the interrupted stack to `log`),
 * then `c_handler` back in front of them at the OS level, without
 * SA_RESTART. GIL held. 0, or -1 with an exception set. */
int cg_py_worker_signals(void (*c_handler)(int), cg_log_t *log);
/* From a C signal handler (async-signal-safe): have the main thread run the
 * Python handler for signo at its next bytecode. */
void cg_py_interrupt_main(int signo);

/* Put cfg->chdir (else the working directory) and the cfg->pythonpath entries
 * at the front of sys.path when missing. Returns 0 or -1 with err set. */
int cg_py_setup_path(const cg_config_t *cfg, char *err, size_t errlen);

/* Make os.environ match the C environment again (the interpreter copies it
 * once at start-up; setenv() calls made later are invisible to Python).
 * Returns 0 or -1 with an exception set. */
int cg_py_sync_environ(void);

/* In a process forked from one running the interpreter: PyOS_AfterFork_Child()
 * once (no-op in the process that owns the interpreter, or without one). */
void cg_py_after_fork_child(void);

/*
 * The master holds the GIL only while it runs Python, so that threads a
 * configuration file or a logging handler started there run while it
 * idles, as in Gunicorn's master. release() ends the caller's hold
 * (PyEval_SaveThread) and keeps its thread state in *saved (which must be
 * NULL; nothing happens without an interpreter); take() gets it back and
 * sets *saved to NULL (nothing happens when *saved is NULL). In between,
 * every entry into Python (hooks, the logging sink, the HUP re-read, fork)
 * takes the GIL itself with PyGILState_Ensure().
 */
void cg_py_gil_release(PyThreadState **saved);
void cg_py_gil_take(PyThreadState **saved);

/* Format the current exception (which must be set) with its traceback, log it
 * as one record after `prefix`, and clear it. */
void cg_py_log_exception(cg_log_t *log, cg_log_level_t level, const char *prefix);

/* Same, into a malloc'd string the caller frees (NULL if none is set). */
char *cg_py_format_exception(void);

/* Print the current exception to stderr as Python would report it uncaught
 * at start-up, Gunicorn's way: "\nError: <message>\n\n" for a RuntimeError
 * (BaseApplication.run()), else the traceback. Clears it. */
void cg_py_print_startup_error(void);

/*
 * Import the WSGI application named by `uri` as Gunicorn's util.import_app:
 * "module", "module:name", "module:factory()", "module:factory('a', k=1)"
 * (literal arguments only). Returns:
 *    0  *app_out is a new reference to a callable;
 *   CG_PY_APP_IMPORT_ERROR  Gunicorn's AppImportError; *msg_out is a malloc'd
 *       message (e.g. "Failed to find attribute 'x' in 'mod'."), no exception set;
 *   -1  another exception is set (ImportError of the module, an exception
 *       raised by the module or the factory ...).
 */
#define CG_PY_APP_IMPORT_ERROR (-2)
int cg_py_load_app(const char *uri, PyObject **app_out, char **msg_out);

/* The app cfg names: cfg->app_object's wsgi() (the programmatic API), else
 * cg_py_load_app(cfg->app_uri). Returns as cg_py_load_app(). */
int cg_py_load_cfg_app(const cg_config_t *cfg, PyObject **app_out, char **msg_out);

/*
 * --preload (Gunicorn's app.wsgi() in the master): start the interpreter if
 * needed and import cfg->app_uri, once per process lifetime; later calls (HUP)
 * do nothing, as Gunicorn keeps the callable it has. The app is kept for
 * cg_py_preloaded_app(), which forked workers use instead of importing.
 * Returns 0, or the status Gunicorn's master would leave with (1), having
 * written Gunicorn's report: with log NULL (start-up) the uncaught exception
 * on stderr (RuntimeError as "Error: ..."), otherwise (HUP) ERROR
 * "Unhandled exception in main loop" with the traceback in log.
 */
int cg_py_preload(const cg_config_t *cfg, cg_log_t *log);

/* The app cg_py_preload() imported in this process or its parent (borrowed),
 * or NULL. */
PyObject *cg_py_preloaded_app(void);

/*
 * --reload (reload.c): Gunicorn's per-worker reloader thread. new() picks the
 * engine as Gunicorn does (GIL held; -1 with ImportError set for "inotify"
 * without Python's inotify package); add_file() adds a watched file (any
 * thread); start() runs the watcher (0 or -errno); on a change it logs
 * "Worker reloading: %s modified", clears w->alive, wakes the worker and runs
 * worker_int. free() stops and joins the thread (releasing the GIL meanwhile
 * when the caller holds it) and frees; NULL is fine.
 */
typedef struct cg_py_reloader cg_py_reloader_t;
int cg_py_reloader_new(const cg_config_t *cfg, cg_worker_t *w, cg_py_reloader_t **out);
void cg_py_reloader_add_file(cg_py_reloader_t *r, const char *path);
int cg_py_reloader_start(cg_py_reloader_t *r);
void cg_py_reloader_free(cg_py_reloader_t *r);

/* Gunicorn's make_fail_app: a WSGI app answering 500 text/plain with msg as
 * the body. New reference, or NULL with an exception set. */
PyObject *cg_py_fail_app(const char *msg);

/* Gunicorn's load_wsgi() under --reload: a SyntaxError in the app does not
 * end the worker; it is logged, its file watched (reloader may be NULL), and
 * *app set to an app answering every request with Gunicorn's 500 traceback
 * page. Takes the pending SyntaxError; returns 0, or -1 (exception set). */
int cg_py_load_syntax_error(cg_log_t *log, cg_py_reloader_t *reloader, PyObject **app);

/*
 * --check-config: start the interpreter, import the app, report. Returns the
 * process exit status (0 ok, 1 failure with Gunicorn's message on stderr).
 */
int cg_py_check_app(const cg_config_t *cfg);

/* ------------------------------------------------------------------------
 * Configuration files and server hooks (conffile.c, hooks.c, objects.c).
 */

/*
 * cg_config_file_loader_fn for cg_config_load(): starts the interpreter (GIL
 * kept by the calling thread when this call started it; otherwise taken
 * for the call and given back), executes the file ("PATH",
 * "file:PATH") or imports the module ("python:MOD") as Gunicorn does, and
 * applies every module-level name that is a setting with CG_SRC_FILE. Hooks
 * are arity-checked like Gunicorn's validate_callable(). ctx is unused.
 */
int cg_py_config_loader(cg_config_t *cfg, const char *location, void *ctx, char *err,
                        size_t errlen);

/* cfg->callable_release / callable_retain for the Python objects a
 * configuration holds (hooks, the API's application object). */
void cg_py_callable_release(void *obj);
void cg_py_callable_retain(void *obj);

/* Gunicorn's cfg.set(name, v) for a Python value v of setting d, with
 * source src: hooks arity-checked, lists, dicts, None, bools, ints and
 * strings to the typed setters; any other kind to the validator's
 * refusal. mod is the helper module. Returns as the setters (err set). */
int cg_py_config_apply(cg_config_t *cfg, PyObject *mod, const cg_setting_desc_t *d, PyObject *v,
                       cg_config_source_t src, char *err, size_t errlen);

/* hooks.c's config_reload for cfg->app_object (module.c): the
 * application's reload(), then a copy of its cfg into *fresh. */
int cg_py_api_config_reload(void *ctx, cg_config_t *fresh, char *err, size_t errlen);

/* The cgunicorn._core module (module.c): new reference, or NULL with an
 * exception set. The standalone executable registers it in sys.modules;
 * the extension module's PyInit__core returns it. */
PyObject *cg_py_core_module_new(void);

/* The state behind the cg_hooks_t table; lives as long as the arbiter. */
typedef struct cg_py_hooks {
    cg_hooks_t table;           /* cfg->hooks points here */
    const cg_config_t *cfg;
    cg_log_t *log;
    PyObject *mod;              /* the helper module (new reference) */
    PyObject *server;           /* the Server object, made on first use */
    struct cg_arbiter *arbiter; /* the arbiter the hooks were last called with */
    PyObject *worker_obj;       /* Worker of this worker process, or pre_fork's */
    const struct cg_worker *worker_for; /* the cg_worker_t worker_obj describes */
    pid_t worker_pid;           /* process that adopted worker_obj; 0: pre_fork's */
    PyGILState_STATE fork_gil;  /* fork_prepare's hold, given back in parent and child */
    bool in_worker;             /* a worker process (post_fork ran here), or forked from one */
    bool worker_live;           /* worker_obj is a Python worker class's instance */
} cg_py_hooks_t;

/*
 * Fill h->table from the hooks set in cfg (plus the fork_* wrappers) and
 * point cfg->hooks at it. Only when the interpreter runs (a config file was
 * read); the GIL must be held. Returns 0 or -1 with a message in err.
 */
int cg_py_hooks_init(cg_py_hooks_t *h, cg_config_t *cfg, cg_log_t *log, char *err,
                     size_t errlen);
/* Drop h's Python references (GIL held) and unhook cfg. */
void cg_py_hooks_free(cg_py_hooks_t *h, cg_config_t *cfg);
/* The hooks table's tls_context entry (tlshook.c); takes the GIL. */
int cg_py_tls_context(void *hctx, const cg_config_t *cfg, void **ssl_ctx, char *err,
                      size_t errlen);

/*
 * The per-request hooks, called by src/wsgi and src/asgi with the GIL held.
 * req is a Request object from cg_py_request_new(). pre_request returns 0, or -1 with
 * the hook's exception set (the request then fails like an app error).
 * post_request logs its own exceptions ("Exception in post_request hook").
 */
int cg_py_hook_pre_request(const cg_config_t *cfg, cg_worker_t *w, PyObject *req);
void cg_py_hook_post_request(const cg_config_t *cfg, cg_worker_t *w, PyObject *req,
                             PyObject *env, PyObject *resp);
/* A Python worker class's instance (pyworker.c) becomes this worker
 * process's object: the worker hooks get it, as Gunicorn's get the worker
 * itself, and its attributes are never overwritten from C. Attributes a
 * pre_fork hook set on the snapshot it got are copied to it. No-op
 * without hooks. GIL held; 0, or -1 with an exception set. */
int cg_py_hooks_adopt_worker(const cg_config_t *cfg, const cg_worker_t *w, PyObject *obj);
/* True when either per-request hook is set. */
static inline bool cg_py_request_hooks(const cg_config_t *cfg)
{
    return cfg->pre_request != NULL || cfg->post_request != NULL;
}
/* A new instance of helper class `cls` ("Request", "Response") whose
 * attributes are kwargs' items; NULL with an exception set. */
PyObject *cg_py_helper_new(const char *cls, PyObject *kwargs);

/* The `req` the pre_request/post_request hooks and a logger_class's
 * access() get: Gunicorn's Request attributes (method, uri, path, query,
 * fragment, version, headers, remote_addr, scheme) of request q on
 * connection c, as a snapshot. New reference or NULL with an exception set. */
struct cg_conn;
PyObject *cg_py_request_new(const cg_http_request_t *q, const struct cg_conn *c);

/* objects.c, shared with hooks.c/conffile.c: the helper module (new ref),
 * created on first use and kept in sys.modules; NULL with an exception set. */
PyObject *cg_py_helper_module(void);
void cg_py_helper_bind(PyObject *mod, cg_py_hooks_t *h);
/* cfg value of setting `name` as Gunicorn's cfg.<name> would give it. */
PyObject *cg_py_setting_value(const cg_config_t *cfg, const cg_setting_desc_t *d,
                              PyObject *mod);

/* ------------------------------------------------------------------------
 * Python's logging module for Gunicorn's logconfig, logconfig_dict and
 * logconfig_json (logging.c). Without them the logs never touch Python.
 */
typedef struct cg_py_logging {
    cg_log_sink_t sink;       /* what the log calls; ctx points here */
    cg_log_t *log;            /* the master's log (HUP swaps its contents in place) */
    const cg_config_t *cfg;   /* the live settings (HUP swaps them in place) */
    PyObject *mod;            /* the helper module (new reference), NULL before use */
    PyObject *error_log;      /* logging.getLogger("gunicorn.error") (new reference) */
    PyObject *access_log;     /* logging.getLogger("gunicorn.access") (new reference) */
    PyObject *access_fn;      /* the helper's access() (new reference) */
    PyObject *access_format;  /* access_log_format of the last setup (new reference) */
    cg_access_fmt_t *fmt;     /* the same compiled, for its {name}e atoms; may be NULL */
} cg_py_logging_t;

/* The logging machinery itself failed (a handler, a logger class's method
 * raised): no log is left to put that in, so the pending exception goes to
 * stderr after `what`, as Python's logging reports its own errors; it is
 * cleared. GIL held. */
void cg_py_report_logging_error(const char *what);

/* True when cfg sets logconfig_dict (non-empty), logconfig_json or logconfig. */
bool cg_py_logging_wanted(const cg_config_t *cfg);

/*
 * In the master once the interpreter runs (GIL held): attach lg's sink to
 * log, so that a HUP can turn Python logging on or off, and when cfg wants
 * it do what Gunicorn's Logger.setup() does (its handlers for errorlog and
 * accesslog, then dictConfig over CONFIG_DEFAULTS, the JSON file, or
 * fileConfig). Records of log then go to the gunicorn.error and
 * gunicorn.access loggers, here and in the workers forked later. lg, cfg
 * and log must outlive the arbiter. Returns 0, or 1 (the exit status)
 * having printed what Gunicorn prints: "
Error: <msg>
" for its
 * RuntimeErrors (bad dict, bad JSON, "log config '...' not found"), the
 * traceback for other exceptions (a malformed ini file).
 */
int cg_py_logging_init(cg_py_logging_t *lg, const cg_config_t *cfg, cg_log_t *log);

/* Detach the sink from the log (records go to its fds again) and drop the
 * Python references. GIL held (or no interpreter any more). */
void cg_py_logging_free(cg_py_logging_t *lg);

/* Used by cg_py_log_exception(): when log's records go to Python logging,
 * log the pending exception there with exc_info (formatters see a real
 * exception), clear it and return true; otherwise return false untouched. */
bool cg_py_logging_exception(cg_log_t *log, cg_log_level_t level, const char *prefix);

/* A configuration file's logconfig_dict (any dict, nested values and
 * objects included): the setting stores each key with repr() of its value,
 * which is what --print-config shows, and the object itself is kept for
 * dictConfig. GIL held. Returns as cg_config_set_dict(). */
int cg_py_logging_set_dict(cg_config_t *cfg, PyObject *dict, char *err, size_t errlen);

/* ------------------------------------------------------------------------
 * A custom logger_class (loggerclass.c): Gunicorn's default Logger keeps
 * the C log; any other class is instantiated in the master, as Gunicorn's
 * arbiter does, and takes every record.
 */
typedef struct cg_py_loggerclass {
    cg_log_sink_t sink;  /* what the log calls; ctx points here */
    cg_log_t *log;       /* the master's log (HUP swaps its contents in place) */
    PyObject *mod;       /* cgunicorn._loggerclass (new reference) */
    PyObject *instance;  /* logger_class(cfg) (new reference) */
    PyObject *cfg_obj;   /* the Config its last setup() was given (new reference) */
    PyObject *error_fn;  /* mod.error, mod.exception, mod.access (new references) */
    PyObject *exc_fn;
    PyObject *access_fn;
} cg_py_loggerclass_t;

/* True when cfg names a logger class other than Gunicorn's default
 * ("gunicorn.glogging.Logger" or "simple"). */
bool cg_py_loggerclass_wanted(const cg_config_t *cfg);

/*
 * In the master once the interpreter runs (GIL held): logger_class(cfg)
 * with a cgunicorn.config.Config holding cfg's settings, its
 * close_on_exec(), and lc's sink attached to log with every record going
 * to the instance (here and in the workers forked later). lc and log must
 * outlive the arbiter. Returns 0, or 1 (the exit status) having printed
 * what Gunicorn prints ("\nError: class uri ... invalid or not found" for
 * a class that cannot be imported, the traceback of an exception raised by
 * the class).
 */
int cg_py_loggerclass_init(cg_py_loggerclass_t *lc, const cg_config_t *cfg, cg_log_t *log);

/* Detach the sink and drop the references. GIL held (or no interpreter). */
void cg_py_loggerclass_free(cg_py_loggerclass_t *lc);

/* In a worker, once its interpreter runs (GIL held): the instance's
 * close_on_exec(), as Gunicorn's Worker.init_process() calls it. No-op
 * without a logger class. */
void cg_py_loggerclass_worker_init(cg_log_t *log);

/* The logger class instance log's records go to (borrowed), or NULL. */
PyObject *cg_py_loggerclass_instance(cg_log_t *log);

/* Used by cg_py_log_exception(): when log's records go to a logger class,
 * hand the pending exception to it (as the exception being handled, so
 * logger.exception() and traceback.format_exc() see it), clear it and
 * return true; otherwise return false untouched. */
bool cg_py_loggerclass_exception(cg_log_t *log, cg_log_level_t level, const char *prefix);

/* ------------------------------------------------------------------------
 * A worker_class that is a Python class (pyworker.c; the Python half is
 * cgunicorn._pyworker): Gunicorn's spawn_worker over the C arbiter.
 */

/* In the master at start-up (GIL held): import cfg->worker_class as
 * Gunicorn's util.load_class and call its setup(). Returns 0, or 1 (the
 * exit status) having printed Gunicorn's report ("\nError: class uri ...
 * invalid or not found: ..." with the traceback). */
int cg_py_worker_class_check(const cg_config_t *cfg);

/* In the worker, interpreter up (GIL held): the instance of the class,
 * made with Gunicorn's arguments (its sockets over duplicates of
 * w->listeners, the app, timeout / 2, a Config copy of w->cfg, the log),
 * adopted as the worker hooks' object. Returns 0 with *out a new
 * reference, or CG_WORKER_EXIT_BOOT_ERROR with the exception logged. */
int cg_py_worker_boot(cg_worker_t *w, PyObject **out);

/* obj.init_process() as Gunicorn's spawn_worker calls it (GIL held):
 * returns the worker's exit status (SystemExit's code, 3 for an exception
 * before boot, 4 for AppImportError, 255 after boot), everything logged. */
int cg_py_worker_run(cg_worker_t *w, PyObject *obj);

/* The worker a Python worker class runs in (this process), or NULL in a
 * master or a C worker. */
cg_worker_t *cg_py_worker_self(void);

/* cgunicorn._core's _worker_* functions for the instance (module.c adds
 * them): heartbeat, C log, the app import. */
extern PyMethodDef cg_py_worker_methods[];

/* cgunicorn._core's _dirty_* functions (dirty.c): the dirty arbiters'
 * frames, sent and received with their out-of-band buffers uncopied. */
extern PyMethodDef cg_py_dirty_methods[];

/* A cgunicorn.config.Config holding a copy of cfg (module.c): new
 * reference, or NULL with an exception set. */
PyObject *cg_py_config_object(const cg_config_t *cfg);

#endif
