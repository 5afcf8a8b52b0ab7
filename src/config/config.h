/*
 * config.h - cgunicorn's settings, declared once in settings.def.
 *
 * Every row of settings.def becomes a field of cg_config_t named exactly like the
 * Gunicorn setting (cfg->workers, cfg->limit_request_line, ...). C storage by type:
 *   CG_T_INT, CG_T_OCTAL -> long          CG_T_BOOL -> bool
 *   CG_T_STR             -> char * (owned; NULL means Python's None)
 *   CG_T_LIST, CG_T_CSV  -> cg_strv_t (owned; LIST appends per occurrence,
 *                           CSV splits one string on commas and strips spaces)
 *   CG_T_DICT            -> cg_strv_t of alternating key, value
 *   CG_T_CALLABLE        -> void * (a PyObject * owned by src/python once config
 *                           files are executed; NULL when unset = Gunicorn's
 *                           default hook)
 * Each value also remembers its source (cg_config_source_t), indexed by
 * CG_SETTING_<name>.
 *
 * Values that differ from a naive reading of the setting:
 *   cfg->sendfile  the EFFECTIVE answer "use sendfile()", computed as Gunicorn
 *                  does: any explicit value (even True) disables it; unset
 *                  consults $SENDFILE; else true. The raw value is sendfile_raw.
 *   cfg->chdir     always an absolute path (validated to exist).
 *   cfg->user/group numeric ids (names are resolved by the validator).
 *   cfg->http_protocols a list (["h1"] by default), like Gunicorn's.
 *   cfg->statsd_host the (stripped) string the user gave; it was validated.
 *   cfg->control_socket Gunicorn's default path ($XDG_RUNTIME_DIR/gunicorn.ctl
 *                  or ~/.gunicorn/gunicorn.ctl) unless set; the master serves
 *                  it unless control_socket_disable (src/arbiter/ctl.c).
 */
#ifndef CG_CONFIG_H
#define CG_CONFIG_H

#include <stdio.h>

#include "../cg.h"

/* Upper bounds of the numeric settings (the max column of settings.def).
 * Seconds times 1000 still fit an int of milliseconds; counts fit an int, so
 * a product of two of them fits 64 bits; process and thread counts stay far
 * below what an int cast or TTIN's increments could overflow. */
#define CG_MAX_SECONDS (INT32_MAX / 1000) /* 2147483 s, about 24.8 days */
#define CG_MAX_COUNT INT32_MAX
#define CG_MAX_PROCS 1000000L
#define CG_MAX_ID 4294967294L /* uid_t/gid_t without (uid_t)-1 */
#define CG_MAX_MODE 07777L
#define CG_MAX_MIB (1L << 24) /* 16 TiB in MiB: * 1048576 stays within 64 bits */

#define CG_CTYPE_CG_T_INT long
#define CG_CTYPE_CG_T_OCTAL long
#define CG_CTYPE_CG_T_BOOL bool
#define CG_CTYPE_CG_T_STR char *
#define CG_CTYPE_CG_T_LIST cg_strv_t
#define CG_CTYPE_CG_T_CSV cg_strv_t
#define CG_CTYPE_CG_T_DICT cg_strv_t
#define CG_CTYPE_CG_T_CALLABLE void *
#define CG_CTYPE(t) CG_CTYPE_##t

typedef enum cg_config_type {
    CG_T_INT,
    CG_T_OCTAL,
    CG_T_BOOL,
    CG_T_STR,
    CG_T_LIST,
    CG_T_CSV,
    CG_T_DICT,
    CG_T_CALLABLE,
} cg_config_type_t;

/* How the command line fills a setting (Gunicorn's argparse action/type). */
typedef enum cg_config_action {
    CG_A_NONE,     /* no CLI flag: config file / API only */
    CG_A_STORE,    /* --opt VALUE, the string goes to the validator */
    CG_A_INT,      /* --opt VALUE, argparse type=int (base 10) first */
    CG_A_AUTO_INT, /* --opt VALUE, Gunicorn's auto_int (0022 is octal) first */
    CG_A_TRUE,     /* store_true */
    CG_A_FALSE,    /* store_const False (--no-sendfile) */
    CG_A_APPEND,   /* repeatable; the occurrences form a list */
    CG_A_OPTIONAL, /* nargs='?': a bare flag means "auto" */
} cg_config_action_t;

/* Lowest to highest precedence. */
typedef enum cg_config_source {
    CG_SRC_DEFAULT = 0,
    CG_SRC_APP,
    CG_SRC_FILE,
    CG_SRC_ENV,
    CG_SRC_CLI,
} cg_config_source_t;

enum {
#define CG_SETTING(name, section, type, flags, action, meta, def, validator, help)               \
    CG_SETTING_##name,
/* CG_SETTING__GUNICORN_COUNT: ids below it are Gunicorn's rows, in its
 * order; cgunicorn's own settings follow it (see settings.def). */
#define CG_SETTING_EXTENSIONS                                                                   \
    CG_SETTING__GUNICORN_COUNT, CG_SETTING__EXTENSIONS_FROM = CG_SETTING__GUNICORN_COUNT - 1,
#include "settings.def"
#undef CG_SETTING_EXTENSIONS
#undef CG_SETTING
    CG_SETTING__COUNT
};

/* statsd_flush_interval's upper bound (ms): a metric held longer would land
 * in a later flush window of any agent (10 s is StatsD's default window). */
#define CG_STATSD_FLUSH_MAX_MS 10000

typedef struct cg_config {
#define CG_SETTING(name, section, type, flags, action, meta, def, validator, help)               \
    CG_CTYPE(type) name;
#include "settings.def"
#undef CG_SETTING
    cg_config_source_t source[CG_SETTING__COUNT];
    char *app_uri;           /* APP_MODULE positional argument (or wsgi_app, or the
                                absolute --paste path) after cg_config_load() */
    char **argv;             /* the original command line, borrowed, for USR2 re-exec */
    const struct cg_hooks *hooks; /* server hooks (src/arbiter/hooks.h); NULL: none set */
    int argc;
    bool sendfile_raw;       /* the sendfile value as set (meaningless while
                                source[CG_SETTING_sendfile] is CG_SRC_DEFAULT) */
    /* True for a CG_T_BOOL setting explicitly set to Python's None (a config
     * file's `reload = None`): Gunicorn keeps None, which --print-config
     * shows, and an explicit None sendfile behaves like an unset one. The
     * bool field then holds false. */
    bool none[CG_SETTING__COUNT];
    /* Qualified names (for --print-config) of hooks set through
     * cg_config_set_callable(); owned; NULL while the default hook is used. */
    char *callable_name[CG_SETTING__COUNT];
    /* Called by cg_config_free() and on replacement for every non-NULL
     * CG_T_CALLABLE value (src/python sets it to drop its reference). */
    void (*callable_release)(void *obj);
    /* Takes one more reference to such a value, for cg_config_copy(). */
    void (*callable_retain)(void *obj);
    /* Gunicorn's programmatic API (cgunicorn.app.base): the application
     * object whose wsgi() gives the WSGI callable in place of importing
     * app_uri. Owned like a CG_T_CALLABLE value; NULL otherwise. */
    void *app_object;
    /* What a USR2 upgrade executes: exec_path with exec_argv (both
     * borrowed, like argv). NULL: this binary (/proc/self/exe) with argv.
     * The pip-installed front end runs inside a Python process and sets
     * them to sys.executable and sys.orig_argv. */
    const char *exec_path;
    char **exec_argv;
    /* Run by the pip front end, inside a Python process: argv above is a
     * copy, the process's own argument block belongs to nobody. */
    bool hosted;
    /* This copy runs a dirty arbiter (src/arbiter/dirty.c), not a master. */
    bool dirty_arbiter;
} cg_config_t;

struct cg_config_input;
union cg_config_value;

/* One row of settings.def, as data. */
typedef struct cg_setting_desc {
    const char *name;
    const char *section;
    cg_config_type_t type;
    const char *flags; /* "-w|--workers" or NULL */
    cg_config_action_t action;
    const char *meta;  /* NULL: argparse shows the upper-cased name */
    const char *def;   /* see settings.def */
    const char *help;
    int id;            /* CG_SETTING_<name> */
    size_t offset;     /* of the field in cg_config_t */
    int (*validate)(const struct cg_setting_desc *d, const struct cg_config_input *in,
                    union cg_config_value *out, char *err, size_t errlen);
    long max;          /* CG_T_INT/CG_T_OCTAL: largest accepted value; 0 otherwise */
} cg_setting_desc_t;

/* The descriptor table, CG_SETTING__COUNT rows in settings.def order. */
extern const cg_setting_desc_t cg_config_settings[CG_SETTING__COUNT];

/*
 * Loads a configuration file for cg_config_load(). location is what the user
 * named, verbatim: "PATH", "file:PATH" or "python:MODULE" (for the first two the
 * file was checked to exist). The loader executes it and, for every module-level
 * name that is a setting, calls a cg_config_set_*() function with
 * CG_SRC_FILE. Returns 0 on success; otherwise a negative errno and either a
 * message in err (printed as "Error: <err>") or an empty err when the loader
 * already printed its own diagnostics (Gunicorn's "Failed to read config
 * file: ..." + traceback). Either failure makes cg_config_load() return 1.
 */
typedef int (*cg_config_file_loader_fn)(cg_config_t *cfg, const char *location, void *ctx,
                                        char *err, size_t errlen);

/*
 * Build the configuration the way Gunicorn's Application.load_config() does:
 * defaults (with PORT, WEB_CONCURRENCY, FORWARDED_ALLOW_IPS, XDG_RUNTIME_DIR /
 * HOME) < application values (default_proc_name = APP_MODULE) < config file
 * (-c/--config from argv, else from GUNICORN_CMD_ARGS, else ./gunicorn.conf.py
 * when it exists; executed through loader) < GUNICORN_CMD_ARGS < argv. Then
 * resolves cfg->app_uri (APP_MODULE, else wsgi_app, else "No application module
 * specified."), computes the effective cfg->sendfile and chdir()s into
 * cfg->chdir, as Gunicorn does after loading.
 * cfg is initialised here (any previous content is ignored); argv is borrowed
 * and kept in cfg->argv. loader may be NULL: then a config file that would be
 * used is an error ("config files are not supported yet").
 * Returns 0 on success; otherwise the process exit status Gunicorn would use
 * (2 for argument errors, 1 for invalid values) after printing its message to
 * stderr. A -h/--help or -v/--version request prints to stdout and returns -1
 * (exit 0). cfg must be released with cg_config_free() in every case.
 */
int cg_config_load(cg_config_t *cfg, int argc, char **argv, cg_config_file_loader_fn loader,
                   void *ctx);

/*
 * Fill cfg with the defaults only (environment-dependent ones included).
 * Returns 0, or -EINVAL with a message in err when the environment makes a
 * default invalid (e.g. WEB_CONCURRENCY=abc). Release with cg_config_free().
 */
int cg_config_init(cg_config_t *cfg, char *err, size_t errlen);

/* Release everything cg_config_init()/cg_config_load() allocated. */
void cg_config_free(cg_config_t *cfg);

/* dst becomes an independent copy of src (dst's old content is ignored):
 * strings and lists duplicated, callables and app_object retained through
 * src->callable_retain (which must be set when src holds any). Release with
 * cg_config_free(). */
void cg_config_copy(cg_config_t *dst, const cg_config_t *src);

/* The descriptor of a setting by its exact Gunicorn name, or NULL. */
const cg_setting_desc_t *cg_config_find(const char *name);

/*
 * Setters. Each runs the setting's Gunicorn validator on the value, as
 * Gunicorn's Setting.set() does for a Python value of that kind, and stores
 * the result with its source. A source lower than the one that set the
 * current value leaves it untouched (returns 0). Returns 0; -ENOENT for an
 * unknown name ("No configuration setting for: <name>"); -EINVAL (or
 * -ENOTSUP) with Gunicorn's message in err (no "Error: " prefix) when the
 * validator rejects the value; the old value is then kept.
 *
 * cg_config_set_string: a Python str (value NULL means None).
 * cg_config_set_int / _bool: a Python int / bool.
 * cg_config_set_list: a Python list of str (replaces the whole list).
 * cg_config_list_append: adds one string to a LIST setting (re-validated).
 * cg_config_set_dict: n pairs kv[0]=key, kv[1]=value, ... for CG_T_DICT.
 * cg_config_set_other: a Python value of any other kind (float, bytes, a
 *   tuple, a dict or a list of non-str items given to a setting that does
 *   not take one, ...): type_name is type(v).__name__ and str_value str(v),
 *   which the validators quote in their messages exactly as Gunicorn's do.
 *   Every validator refuses such a value except ssl_version (which keeps
 *   str(v), as Gunicorn keeps any value).
 * cg_config_set_callable: obj (ownership passes to cfg, released through
 *   cfg->callable_release) with its Python __qualname__ for --print-config;
 *   arity checks are the caller's (Python side) business.
 */
int cg_config_set_string(cg_config_t *cfg, const char *name, const char *value,
                         cg_config_source_t src, char *err, size_t errlen);
int cg_config_set_int(cg_config_t *cfg, const char *name, long value, cg_config_source_t src,
                      char *err, size_t errlen);
int cg_config_set_bool(cg_config_t *cfg, const char *name, bool value, cg_config_source_t src,
                       char *err, size_t errlen);
int cg_config_set_list(cg_config_t *cfg, const char *name, const char *const *items, size_t n,
                       cg_config_source_t src, char *err, size_t errlen);
int cg_config_list_append(cg_config_t *cfg, const char *name, const char *item,
                          cg_config_source_t src, char *err, size_t errlen);
int cg_config_set_dict(cg_config_t *cfg, const char *name, const char *const *kv, size_t n,
                       cg_config_source_t src, char *err, size_t errlen);
int cg_config_set_other(cg_config_t *cfg, const char *name, const char *type_name,
                        const char *str_value, cg_config_source_t src, char *err, size_t errlen);
int cg_config_set_callable(cg_config_t *cfg, const char *name, void *obj, const char *qualname,
                           cg_config_source_t src, char *err, size_t errlen);

/*
 * The arity Gunicorn's validator demands of a hook setting (validate_callable(n)):
 * 1, 2 or 3; 0 for post_request (2, 3 or 4 accepted, shorter ones wrapped);
 * -1 when d is not a CG_T_CALLABLE setting.
 */
int cg_config_callable_arity(const cg_setting_desc_t *d);

/*
 * Print every setting as Gunicorn's `--print-config` does (print(cfg)): one
 * "name = value" line per setting, sorted by name, names padded to the
 * longest; values rendered like Python's str() of Gunicorn's values; hooks as
 * "<Qualname()>" (Gunicorn's default hook names unless set).
 */
void cg_config_print(const cg_config_t *cfg, FILE *out);

/*
 * The text of Gunicorn's debug record "Current configuration:" (Arbiter.setup):
 * that line, then "  name: value" per setting in Gunicorn's definition order,
 * values as str() shows them (as cg_config_print(); hooks as str() of a
 * function). No trailing newline. Returns an owned string; aborts on OOM.
 */
char *cg_config_format_current(const cg_config_t *cfg);

/* Every descriptor as a JSON array (name, section, cli, action, type, meta,
 * default, default_doc, help) for tools/gen_settings_doc.py. */
void cg_config_dump_json(FILE *out);

/*
 * Where statsd_host (a validated value) sends, as Gunicorn's
 * validate_statsd_address reads it: *path for "unix:PATH"/"unix://PATH",
 * else *host (lower-cased) and *port (8125 when not given). "unix:NNN" is
 * Gunicorn's ('unix', NNN) host tuple. Both strings owned (NULL when
 * unused). Returns 0, or -EINVAL for a value that names neither (fd://N).
 */
int cg_config_statsd_address(const char *val, char **host, long *port, char **path);

/* Print argparse-style --help for prog (the program's basename) to out. */
void cg_config_print_help(const char *prog, FILE *out);

/*
 * Reject values that ask for a feature cgunicorn does not have yet (TLS,
 * HTTP/2, the uwsgi protocol, syslog alongside logconfig*, paste,
 * dirty arbiters, worker classes
 * other than sync and gthread). Returns 0 or -ENOTSUP with the complete line to print in err,
 * "Error: <setting> is not supported yet by cgunicorn" (unlike the setters'
 * messages, it carries the prefix); the caller prints it and exits 1.
 */
int cg_config_check_supported(const cg_config_t *cfg, char *err, size_t errlen);

/* ---- worker_kinds.c: the worker classes we run, by every Gunicorn name ---- */
typedef enum {
    CG_WORKER_UNKNOWN, /* one of Gunicorn's own workers cgunicorn does not run: refused */
    CG_WORKER_SYNC,
    CG_WORKER_GTHREAD,
    CG_WORKER_ASGI,
    CG_WORKER_PYTHON, /* any other name: a Python class (src/python/pyworker.c) */
} cg_worker_kind_t;

/* The kind a worker_class name stands for: the C loops by every name
 * Gunicorn gives them, CG_WORKER_UNKNOWN for Gunicorn's other workers
 * (gevent, tornado, eventlet, ...), CG_WORKER_PYTHON for any other name,
 * which the master then imports as Gunicorn's util.load_class would. */
cg_worker_kind_t cg_config_worker_kind_of(const char *name);
/* True when `name` is another project's worker class (Uvicorn's) that
 * cgunicorn runs with its own worker of the same kind. */
bool cg_config_worker_stand_in(const char *name);
/* The dotted path of the Python class of ours that runs worker_class
 * `name` ("gevent" -> cgunicorn.workers.ggevent.GeventWorker), or NULL
 * when the name is the class itself (or not a Python kind). */
const char *cg_config_worker_pyclass(const char *name);
/* The loop a worker runs: worker_class, with Gunicorn's rule that "sync"
 * (or a *SyncWorker) with threads > 1 is the threaded worker. */
cg_worker_kind_t cg_config_worker_kind(const cg_config_t *cfg);
/* Whether the worker serves TLS with cgunicorn's C transport (src/tls/:
 * sync, gthread, gevent), with the master's context; the others (asgi,
 * Python worker classes) wrap their connections with Python's ssl. */
bool cg_config_worker_tls_in_c(const cg_config_t *cfg);
/* Gunicorn's worker_class_str, as "Using worker:" shows it. */
const char *cg_config_worker_class_str(const cg_config_t *cfg);

#endif
