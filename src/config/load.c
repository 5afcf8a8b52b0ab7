/*
 * load.c - the command line, GUNICORN_CMD_ARGS and the config file, applied in
 * Gunicorn's order (app/base.py Application.load_config) through an emulation
 * of the argparse parser Gunicorn builds (config.py Config.parser). Argparse is
 * emulated rather than replaced by getopt because users see its behaviour:
 * unique-prefix abbreviations, "-w4", "--opt=value", immediate -h/-v, and its
 * exact error lines and exit status 2.
 */
#include "config_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { CG__OPT_HELP = -1, CG__OPT_VERSION = -2 };

/* One option string, in the order Gunicorn's parser registers them. */
typedef struct cg__opt {
    const char *str;
    int id; /* CG_SETTING_x, or CG__OPT_HELP / CG__OPT_VERSION */
} cg__opt_t;

typedef struct cg__optab {
    cg__opt_t *v;
    size_t n;
    char *storage;
} cg__optab_t;

/* What one parse (argv or GUNICORN_CMD_ARGS) produced: argparse's namespace. */
typedef struct cg__parsed {
    bool given[CG_SETTING__COUNT];
    char *value[CG_SETTING__COUNT];
    long ival[CG_SETTING__COUNT];
    bool bval[CG_SETTING__COUNT];
    cg_strv_t list[CG_SETTING__COUNT];
    cg_strv_t positional;
} cg__parsed_t;

typedef enum { CG__NOT_OPT, CG__KNOWN, CG__UNKNOWN } cg__argclass_t;

typedef struct cg__argc {
    cg__argclass_t cls;
    int id;
    const char *optstr;   /* the option string that matched */
    const char *explicit; /* "4" of -w4 / --workers=4, or NULL */
} cg__arginfo_t;

const char *cg__prog_name(const char *argv0)
{
    const char *s;
    if (argv0 == NULL || argv0[0] == '\0')
        return "cgunicorn";
    s = strrchr(argv0, '/');
    return s ? s + 1 : argv0;
}

static void cg__optab_build(cg__optab_t *t)
{
    size_t total = 0, n = 4, o = 0;
    char *p;

    for (size_t i = 0; i < CG_SETTING__COUNT; i++) {
        const char *f = cg_config_settings[i].flags;
        if (f == NULL)
            continue;
        total += strlen(f) + 1;
        n += 1;
        for (const char *c = f; *c; c++)
            n += *c == '|';
    }
    t->v = cg_xcalloc(n, sizeof(cg__opt_t));
    p = t->storage = cg_xmalloc(total + 1);
    t->v[o++] = (cg__opt_t){"-h", CG__OPT_HELP};
    t->v[o++] = (cg__opt_t){"--help", CG__OPT_HELP};
    t->v[o++] = (cg__opt_t){"-v", CG__OPT_VERSION};
    t->v[o++] = (cg__opt_t){"--version", CG__OPT_VERSION};
    for (size_t i = 0; i < CG_SETTING__COUNT; i++) {
        const char *f = cg_config_settings[i].flags;
        if (f == NULL)
            continue;
        strcpy(p, f);
        for (char *tok = p;;) {
            char *bar = strchr(tok, '|');
            if (bar)
                *bar = '\0';
            t->v[o++] = (cg__opt_t){tok, (int)i};
            if (!bar)
                break;
            tok = bar + 1;
        }
        p += strlen(f) + 1;
    }
    t->n = o;
}

static void cg__optab_free(cg__optab_t *t)
{
    free(t->v);
    free(t->storage);
}

static const cg__opt_t *cg__optab_exact(const cg__optab_t *t, const char *s, size_t len)
{
    for (size_t i = 0; i < t->n; i++)
        if (strlen(t->v[i].str) == len && strncmp(t->v[i].str, s, len) == 0)
            return &t->v[i];
    return NULL;
}

static void cg__usage(const char *prog, FILE *out)
{
    fprintf(out, "usage: %s [OPTIONS] [APP_MODULE]\n", prog);
}

static int cg__argerror(const char *prog, const char *fmt, ...) CG_PRINTF(2, 3);

static int cg__argerror(const char *prog, const char *fmt, ...)
{
    va_list ap;
    cg__usage(prog, stderr);
    fprintf(stderr, "%s: error: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

/* "-w/--workers": how argparse names an option in its errors. */
static char *cg__action_name(const cg_setting_desc_t *d)
{
    char *s = cg_xstrdup(d->flags);
    for (char *c = s; *c; c++)
        if (*c == '|')
            *c = '/';
    return s;
}

static bool cg__negative_number(const char *s)
{
    const char *p = s + 1;
    bool digits = false, dot = false;
    for (; *p; p++) {
        if (*p >= '0' && *p <= '9')
            digits = true;
        else if (*p == '.' && !dot)
            dot = true, digits = false;
        else
            return false;
    }
    return digits;
}

/* argparse's _parse_optional(): is this string an option, and which one.
 * Returns 0, or 2 after printing the "ambiguous option" error. */
static int cg__classify(const cg__optab_t *t, const char *prog, const char *a, cg__arginfo_t *ai)
{
    const cg__opt_t *o;
    const char *eq;
    const cg__opt_t *match[64];
    const char *mexpl[64];
    size_t nm = 0;

    memset(ai, 0, sizeof(*ai));
    ai->cls = CG__NOT_OPT;
    if (a[0] != '-')
        return 0;
    if ((o = cg__optab_exact(t, a, strlen(a))) != NULL)
        goto known;
    if (a[1] == '\0')
        return 0;
    eq = strchr(a, '=');
    if (eq != NULL && (o = cg__optab_exact(t, a, (size_t)(eq - a))) != NULL) {
        ai->explicit = eq + 1;
        goto known;
    }
    if (a[1] == '-') {
        size_t plen = eq ? (size_t)(eq - a) : strlen(a);
        for (size_t i = 0; i < t->n && nm < 64; i++) {
            if (strncmp(t->v[i].str, a, plen) == 0) {
                mexpl[nm] = eq ? eq + 1 : NULL;
                match[nm++] = &t->v[i];
            }
        }
    } else {
        size_t alen = strlen(a);
        for (size_t i = 0; i < t->n && nm < 64; i++) {
            if (strlen(t->v[i].str) == 2 && strncmp(t->v[i].str, a, 2) == 0) {
                mexpl[nm] = a + 2;
                match[nm++] = &t->v[i];
            } else if (strncmp(t->v[i].str, a, alen) == 0) {
                mexpl[nm] = NULL;
                match[nm++] = &t->v[i];
            }
        }
    }
    if (nm > 1) {
        size_t cap = 1, len = 0;
        char *list;
        for (size_t i = 0; i < nm; i++)
            cap += strlen(match[i]->str) + 2;
        list = cg_xmalloc(cap);
        list[0] = '\0';
        for (size_t i = 0; i < nm; i++)
            len += (size_t)sprintf(list + len, "%s%s", i ? ", " : "", match[i]->str);
        cg__argerror(prog, "ambiguous option: %s could match %s", a, list);
        free(list);
        return 2;
    }
    if (nm == 1) {
        o = match[0];
        ai->explicit = mexpl[0];
        goto known;
    }
    if (cg__negative_number(a) || strchr(a, ' ') != NULL)
        return 0;
    ai->cls = CG__UNKNOWN;
    return 0;
known:
    ai->cls = CG__KNOWN;
    ai->id = o->id;
    ai->optstr = o->str;
    return 0;
}

static void cg__parsed_free(cg__parsed_t *p)
{
    for (size_t i = 0; i < CG_SETTING__COUNT; i++) {
        free(p->value[i]);
        cg_strv_clear(&p->list[i]);
    }
    cg_strv_clear(&p->positional);
}

/* Store one option's argument; converts like argparse's type= does. */
static int cg__take_value(const char *prog, const cg_setting_desc_t *d, const char *v,
                          cg__parsed_t *p)
{
    int id = d->id;
    p->given[id] = true;
    switch (d->action) {
    case CG_A_INT:
    case CG_A_AUTO_INT: {
        long n;
        int rc = d->action == CG_A_INT ? cg__py_int(v, 10, &n) : cg__py_auto_int(v, &n);
        if (rc < 0) {
            char *name = cg__action_name(d), *r = cg__py_repr(v);
            cg__argerror(prog, "argument %s: invalid %s value: %s", name,
                         d->action == CG_A_INT ? "int" : "auto_int", r);
            free(name);
            free(r);
            return 2;
        }
        p->ival[id] = n;
        break;
    }
    case CG_A_APPEND:
        cg_strv_push(&p->list[id], v);
        break;
    default:
        free(p->value[id]);
        p->value[id] = cg_xstrdup(v);
        break;
    }
    return 0;
}

/*
 * Parse args[0..n) like Gunicorn's argparse parser. Returns 0, -1 after
 * printing help or version to stdout, or 2 after printing an argparse error.
 */
static int cg__parse_args(const char *prog, char *const *args, size_t n, cg__parsed_t *p)
{
    cg__optab_t t;
    cg__arginfo_t *ai = cg_xcalloc(n + 1, sizeof(*ai));
    cg_strv_t extras = {0};
    size_t dd = n; /* index of the first "--" */
    int rc = 0, pos_state = 0; /* 0 positionals not seen, 1 in the run, 2 done */
    bool dd_removed = false;

    cg__optab_build(&t);
    /* argparse classifies every string before acting on any. */
    for (size_t i = 0; i < n; i++) {
        if (strcmp(args[i], "--") == 0) {
            dd = i;
            break;
        }
        if ((rc = cg__classify(&t, prog, args[i], &ai[i])) != 0)
            goto out;
    }

    for (size_t i = 0; i < n; i++) {
        const char *a = args[i];
        const cg_setting_desc_t *d;
        const char *explicit;
        const char *optstr;
        int id;

        if (i >= dd || ai[i].cls == CG__NOT_OPT) {
            if (pos_state == 2) {
                cg_strv_push(&extras, a);
                continue;
            }
            pos_state = 1;
            if (i == dd && !dd_removed) {
                dd_removed = true;
                continue;
            }
            cg_strv_push(&p->positional, a);
            continue;
        }
        if (pos_state == 1)
            pos_state = 2;
        if (ai[i].cls == CG__UNKNOWN) {
            cg_strv_push(&extras, a);
            continue;
        }
        id = ai[i].id;
        explicit = ai[i].explicit;
        optstr = ai[i].optstr;
    again:
        if (id == CG__OPT_HELP) {
            cg_config_print_help(prog, stdout);
            rc = -1;
            goto out;
        }
        if (id == CG__OPT_VERSION) {
            printf("%s (version %s)\n", prog, CG_VERSION);
            rc = -1;
            goto out;
        }
        d = &cg_config_settings[id];
        switch (d->action) {
        case CG_A_TRUE:
        case CG_A_FALSE:
            p->given[id] = true;
            p->bval[id] = d->action == CG_A_TRUE;
            if (explicit == NULL)
                break;
            /* "-DR": a flag followed by more single-letter options. */
            if (optstr[1] != '-' && explicit[0] != '\0') {
                char next[3] = {'-', explicit[0], '\0'};
                const cg__opt_t *o = cg__optab_exact(&t, next, 2);
                if (o != NULL) {
                    id = o->id;
                    optstr = o->str;
                    explicit = explicit[1] ? explicit + 1 : NULL;
                    goto again;
                }
            }
            {
                char *name = cg__action_name(d), *r = cg__py_repr(explicit);
                rc = cg__argerror(prog, "argument %s: ignored explicit argument %s", name, r);
                free(name);
                free(r);
            }
            goto out;
        case CG_A_OPTIONAL:
            if (explicit != NULL) {
                rc = cg__take_value(prog, d, explicit, p);
            } else if (i + 1 < n && i + 1 < dd && ai[i + 1].cls == CG__NOT_OPT) {
                rc = cg__take_value(prog, d, args[++i], p);
            } else {
                rc = cg__take_value(prog, d, "auto", p);
            }
            if (rc != 0)
                goto out;
            break;
        default:
            if (explicit != NULL) {
                rc = cg__take_value(prog, d, explicit, p);
            } else if (i + 1 < n && i + 1 < dd && ai[i + 1].cls == CG__NOT_OPT) {
                rc = cg__take_value(prog, d, args[++i], p);
            } else {
                char *name = cg__action_name(d);
                rc = cg__argerror(prog, "argument %s: expected one argument", name);
                free(name);
            }
            if (rc != 0)
                goto out;
            break;
        }
    }
    if (extras.n > 0) {
        size_t cap = 1, len = 0;
        char *all;
        for (size_t i = 0; i < extras.n; i++)
            cap += strlen(extras.v[i]) + 1;
        all = cg_xmalloc(cap);
        all[0] = '\0';
        for (size_t i = 0; i < extras.n; i++)
            len += (size_t)sprintf(all + len, "%s%s", i ? " " : "", extras.v[i]);
        rc = cg__argerror(prog, "unrecognized arguments: %s", all);
        free(all);
    }
out:
    cg_strv_clear(&extras);
    cg__optab_free(&t);
    free(ai);
    return rc;
}

static int cg__error(const char *msg)
{
    /* Gunicorn: print("\nError: %s" % str(e), file=sys.stderr); exit 1 */
    fprintf(stderr, "\nError: %s\n", msg);
    fflush(stderr);
    return 1;
}

/* Apply one parse result as Gunicorn does: every option that was given. */
static int cg__apply(cg_config_t *cfg, const cg__parsed_t *p, cg_config_source_t src)
{
    char err[512];
    for (size_t i = 0; i < CG_SETTING__COUNT; i++) {
        const cg_setting_desc_t *d = &cg_config_settings[i];
        cg_config_input_t in = {.src = src};
        if (!p->given[i])
            continue;
        switch (d->action) {
        case CG_A_TRUE:
        case CG_A_FALSE:
            in.kind = CG_IN_BOOL;
            in.b = p->bval[i];
            break;
        case CG_A_INT:
        case CG_A_AUTO_INT:
            in.kind = CG_IN_INT;
            in.i = p->ival[i];
            break;
        case CG_A_APPEND:
            in.kind = CG_IN_LIST;
            in.items = (const char *const *)p->list[i].v;
            in.n = p->list[i].n;
            break;
        default:
            in.kind = CG_IN_STR;
            in.s = p->value[i];
            break;
        }
        err[0] = '\0';
        if (cg__config_set(cfg, d, &in, err, sizeof(err)) < 0)
            return cg__error(err);
    }
    return 0;
}

static char *cg__abspath(const char *path)
{
    char *cwd, *r;
    if (path[0] == '/')
        return cg_xstrdup(path);
    cwd = getcwd(NULL, 0);
    if (cwd == NULL)
        return cg_xstrdup(path);
    r = cg__strf("%s/%s", cwd, path);
    free(cwd);
    return r;
}

/* configparser's has_section('loggers'), near enough: a "[loggers]" line. */
static bool cg__ini_has_loggers(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    bool found = false;
    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        char *t = cg__py_strip(line);
        found = strcmp(t, "[loggers]") == 0;
        free(t);
    }
    fclose(f);
    return found;
}

/* WSGIApplication.init(): what the stock application contributes. */
static int cg__app_init(cg_config_t *cfg, const cg__parsed_t *cli)
{
    char err[512];
    if (cli->given[CG_SETTING_paste] && cli->value[CG_SETTING_paste] != NULL &&
        cli->value[CG_SETTING_paste][0] != '\0') {
        char *uri = cg__abspath(cli->value[CG_SETTING_paste]);
        char *file = cg_xstrdup(uri), *hash = strchr(file, '#');
        struct stat st;
        if (hash)
            *hash = '\0';
        if (stat(file, &st) != 0) {
            char *r = cg__py_repr(file), *msg = cg__strf("%s not found", r);
            cg__error(msg);
            free(msg);
            free(r);
            free(file);
            free(uri);
            return 1;
        }
        cg_config_set_string(cfg, "default_proc_name", file, CG_SRC_APP, err, sizeof(err));
        if (cg__ini_has_loggers(file))
            cg_config_set_string(cfg, "logconfig", file, CG_SRC_APP, err, sizeof(err));
        free(cfg->app_uri);
        cfg->app_uri = uri;
        free(file);
        return 0;
    }
    if (cli->positional.n > 0) {
        if (cg_config_set_string(cfg, "default_proc_name", cli->positional.v[0], CG_SRC_APP, err,
                                 sizeof(err)) < 0)
            return cg__error(err);
        free(cfg->app_uri);
        cfg->app_uri = cg_xstrdup(cli->positional.v[0]);
    }
    return 0;
}

static int cg__load_file(cg_config_t *cfg, const char *location, cg_config_file_loader_fn loader,
                         void *ctx)
{
    char err[1024];
    int rc;

    if (strncmp(location, "python:", 7) != 0) {
        const char *file = strncmp(location, "file:", 5) == 0 ? location + 5 : location;
        struct stat st;
        if (stat(file, &st) != 0) {
            char *r = cg__py_repr(file), *msg = cg__strf("%s doesn't exist", r);
            rc = cg__error(msg);
            free(msg);
            free(r);
            return rc;
        }
    }
    if (loader == NULL) {
        snprintf(err, sizeof(err), "config files are not supported yet: %s", location);
        return cg__error(err);
    }
    err[0] = '\0';
    rc = loader(cfg, location, ctx, err, sizeof(err));
    if (rc != 0) {
        if (err[0] != '\0')
            return cg__error(err);
        fflush(stderr);
        return 1;
    }
    return 0;
}

int cg_config_load(cg_config_t *cfg, int argc, char **argv, cg_config_file_loader_fn loader,
                   void *ctx)
{
    const char *prog = cg__prog_name(argc > 0 ? argv[0] : NULL);
    const char *env = getenv("GUNICORN_CMD_ARGS");
    cg__parsed_t *cli = cg_xcalloc(1, sizeof(*cli)), *envp = cg_xcalloc(1, sizeof(*envp));
    cg_strv_t envargs = {0};
    char err[512];
    const char *location = NULL;
    char *default_file = NULL;
    int rc;

    /* Gunicorn's defaults are computed before anything else can fail. */
    err[0] = '\0';
    if (cg_config_init(cfg, err, sizeof(err)) < 0) {
        rc = cg__error(err);
        goto out;
    }
    cfg->argc = argc;
    cfg->argv = argv;

    rc = cg__parse_args(prog, argc > 1 ? argv + 1 : NULL, argc > 1 ? (size_t)argc - 1 : 0, cli);
    if (rc != 0)
        goto out;
    if ((rc = cg__app_init(cfg, cli)) != 0)
        goto out;

    if (env != NULL) {
        const char *msg = NULL;
        if (cg__shlex_split(env, &envargs, &msg) < 0) {
            rc = cg__error(msg);
            goto out;
        }
        rc = cg__parse_args(prog, envargs.v, envargs.n, envp);
        if (rc != 0)
            goto out;
    }

    /* Which config file: argv's -c, else GUNICORN_CMD_ARGS' -c, else
     * ./gunicorn.conf.py if present (an empty -c counts as not given). */
    if (cli->value[CG_SETTING_config] != NULL && cli->value[CG_SETTING_config][0] != '\0') {
        location = cli->value[CG_SETTING_config];
    } else if (envp->value[CG_SETTING_config] != NULL &&
               envp->value[CG_SETTING_config][0] != '\0') {
        location = envp->value[CG_SETTING_config];
    } else {
        struct stat st;
        default_file = cg__abspath("gunicorn.conf.py");
        if (stat(default_file, &st) == 0)
            location = default_file;
    }
    if (location != NULL && (rc = cg__load_file(cfg, location, loader, ctx)) != 0)
        goto out;

    if ((rc = cg__apply(cfg, envp, CG_SRC_ENV)) != 0)
        goto out;
    if ((rc = cg__apply(cfg, cli, CG_SRC_CLI)) != 0)
        goto out;

    if (cfg->app_uri == NULL) {
        if (cfg->wsgi_app == NULL) {
            rc = cg__error("No application module specified.");
            goto out;
        }
        cfg->app_uri = cg_xstrdup(cfg->wsgi_app);
    }
    /* The config may have moved the working directory: Gunicorn chdir()s
     * again once everything is applied. */
    if (cfg->chdir != NULL && chdir(cfg->chdir) != 0) {
        char *r = cg__py_repr(cfg->chdir);
        snprintf(err, sizeof(err), "[Errno %d] %s: %s", errno, strerror(errno), r);
        free(r);
        rc = cg__error(err);
        goto out;
    }
    rc = 0;
out:
    cg__parsed_free(cli);
    cg__parsed_free(envp);
    free(cli);
    free(envp);
    cg_strv_clear(&envargs);
    free(default_file);
    return rc;
}
