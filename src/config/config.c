/*
 * config.c - the descriptor table generated from settings.def, defaults, the
 * typed setters, and the one place values are stored (so precedence and
 * ownership are handled once).
 */
#include "config_internal.h"

#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const cg_setting_desc_t cg_config_settings[CG_SETTING__COUNT] = {
#define CG_SETTING(name, section, type, flags, action, meta, def, validator, help)               \
    {#name, section, type, flags, action, meta, def, help, CG_SETTING_##name,                    \
     offsetof(cg_config_t, name), cg__validate_##validator, 0},
#define CG_SETTING_INT(name, section, type, flags, action, meta, def, max, validator, help)      \
    {#name, section, type, flags, action, meta, def, help, CG_SETTING_##name,                    \
     offsetof(cg_config_t, name), cg__validate_##validator, max},
#include "settings.def"
#undef CG_SETTING_INT
#undef CG_SETTING
};

const cg_setting_desc_t *cg_config_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < CG_SETTING__COUNT; i++)
        if (strcmp(cg_config_settings[i].name, name) == 0)
            return &cg_config_settings[i];
    return NULL;
}

static void *cg__field(cg_config_t *cfg, const cg_setting_desc_t *d)
{
    return (char *)cfg + d->offset;
}

/* Gunicorn's Config.sendfile property: an explicit value of any kind turns
 * sendfile off; otherwise $SENDFILE decides; otherwise on. */
static bool cg__sendfile_effective(const cg_config_t *cfg)
{
    const char *env;
    if (cfg->source[CG_SETTING_sendfile] != CG_SRC_DEFAULT && !cfg->none[CG_SETTING_sendfile])
        return false;
    env = getenv("SENDFILE");
    if (env != NULL)
        return strcasecmp(env, "y") == 0 || strcasecmp(env, "1") == 0 ||
               strcasecmp(env, "yes") == 0 || strcasecmp(env, "true") == 0;
    return true;
}

static void cg__release_value(cg_config_t *cfg, const cg_setting_desc_t *d)
{
    void *f = cg__field(cfg, d);
    switch (d->type) {
    case CG_T_STR:
        free(*(char **)f);
        *(char **)f = NULL;
        break;
    case CG_T_LIST:
    case CG_T_CSV:
    case CG_T_DICT:
        cg_strv_clear((cg_strv_t *)f);
        break;
    case CG_T_CALLABLE:
        if (*(void **)f != NULL && cfg->callable_release != NULL)
            cfg->callable_release(*(void **)f);
        *(void **)f = NULL;
        free(cfg->callable_name[d->id]);
        cfg->callable_name[d->id] = NULL;
        break;
    default:
        break;
    }
}

static void cg__store(cg_config_t *cfg, const cg_setting_desc_t *d, cg_config_value_t *v,
                      const cg_config_input_t *in)
{
    void *f = cg__field(cfg, d);

    cg__release_value(cfg, d);
    switch (d->type) {
    case CG_T_INT:
    case CG_T_OCTAL:
        *(long *)f = v->i;
        break;
    case CG_T_BOOL:
        *(bool *)f = v->b;
        /* validate_bool returns None for None: kept apart from False */
        cfg->none[d->id] = in->kind == CG_IN_NONE;
        break;
    case CG_T_STR:
        *(char **)f = v->s;
        break;
    case CG_T_LIST:
    case CG_T_CSV:
    case CG_T_DICT:
        *(cg_strv_t *)f = v->v;
        break;
    case CG_T_CALLABLE:
        *(void **)f = v->p;
        if (in->qualname != NULL)
            cfg->callable_name[d->id] = cg_xstrdup(in->qualname);
        break;
    }
    cfg->source[d->id] = in->src;
    if (d->id == CG_SETTING_sendfile) {
        cfg->sendfile_raw = v->b;
        cfg->sendfile = cg__sendfile_effective(cfg);
    }
}

int cg__config_set(cg_config_t *cfg, const cg_setting_desc_t *d, const cg_config_input_t *in,
                   char *err, size_t errlen)
{
    cg_config_value_t v;
    int rc;

    if (in->src < cfg->source[d->id])
        return 0;
    memset(&v, 0, sizeof(v));
    rc = d->validate(d, in, &v, err, errlen);
    if (rc < 0)
        return rc;
    /* The one upper-bound check, for every numeric setting and source, so
     * no later multiplication or cast of the value can overflow. */
    if ((d->type == CG_T_INT || d->type == CG_T_OCTAL) && v.i > d->max)
        return cg__errf(err, errlen, "Value must be at most %ld: %ld", d->max, v.i);
    cg__store(cfg, d, &v, in);
    return 0;
}

static const cg_setting_desc_t *cg__lookup(const char *name, char *err, size_t errlen)
{
    const cg_setting_desc_t *d = cg_config_find(name);
    if (d == NULL)
        cg__errf(err, errlen, "No configuration setting for: %s", name ? name : "None");
    return d;
}

int cg_config_set_string(cg_config_t *cfg, const char *name, const char *value,
                         cg_config_source_t src, char *err, size_t errlen)
{
    const cg_setting_desc_t *d = cg__lookup(name, err, errlen);
    cg_config_input_t in = {.kind = value ? CG_IN_STR : CG_IN_NONE, .src = src, .s = value};
    if (d == NULL)
        return -ENOENT;
    return cg__config_set(cfg, d, &in, err, errlen);
}

int cg_config_set_int(cg_config_t *cfg, const char *name, long value, cg_config_source_t src,
                      char *err, size_t errlen)
{
    const cg_setting_desc_t *d = cg__lookup(name, err, errlen);
    cg_config_input_t in = {.kind = CG_IN_INT, .src = src, .i = value};
    if (d == NULL)
        return -ENOENT;
    return cg__config_set(cfg, d, &in, err, errlen);
}

int cg_config_set_bool(cg_config_t *cfg, const char *name, bool value, cg_config_source_t src,
                       char *err, size_t errlen)
{
    const cg_setting_desc_t *d = cg__lookup(name, err, errlen);
    cg_config_input_t in = {.kind = CG_IN_BOOL, .src = src, .b = value};
    if (d == NULL)
        return -ENOENT;
    return cg__config_set(cfg, d, &in, err, errlen);
}

int cg_config_set_list(cg_config_t *cfg, const char *name, const char *const *items, size_t n,
                       cg_config_source_t src, char *err, size_t errlen)
{
    const cg_setting_desc_t *d = cg__lookup(name, err, errlen);
    cg_config_input_t in = {.kind = CG_IN_LIST, .src = src, .items = items, .n = n};
    if (d == NULL)
        return -ENOENT;
    return cg__config_set(cfg, d, &in, err, errlen);
}

/* Appending to a value that came from a lower source starts a new list, the
 * way a higher source replaces the whole list in Gunicorn. */
int cg_config_list_append(cg_config_t *cfg, const char *name, const char *item,
                          cg_config_source_t src, char *err, size_t errlen)
{
    const cg_setting_desc_t *d = cg__lookup(name, err, errlen);
    const char **items;
    const cg_strv_t *cur;
    size_t n = 0;
    int rc;

    if (d == NULL)
        return -ENOENT;
    if (d->type != CG_T_LIST)
        return cg__errf(err, errlen, "%s is not a list setting", name);
    if (src < cfg->source[d->id])
        return 0;
    cur = (const cg_strv_t *)cg__field(cfg, d);
    items = cg_xcalloc(cur->n + 2, sizeof(char *));
    if (src == cfg->source[d->id])
        for (; n < cur->n; n++)
            items[n] = cur->v[n];
    items[n++] = item;
    {
        cg_config_input_t in = {.kind = CG_IN_LIST, .src = src, .items = items, .n = n};
        rc = cg__config_set(cfg, d, &in, err, errlen);
    }
    free(items);
    return rc;
}

int cg_config_set_dict(cg_config_t *cfg, const char *name, const char *const *kv, size_t n,
                       cg_config_source_t src, char *err, size_t errlen)
{
    const cg_setting_desc_t *d = cg__lookup(name, err, errlen);
    cg_config_input_t in = {.kind = CG_IN_DICT, .src = src, .items = kv, .n = n};
    if (d == NULL)
        return -ENOENT;
    return cg__config_set(cfg, d, &in, err, errlen);
}

int cg_config_set_other(cg_config_t *cfg, const char *name, const char *type_name,
                        const char *str_value, cg_config_source_t src, char *err, size_t errlen)
{
    const cg_setting_desc_t *d = cg__lookup(name, err, errlen);
    cg_config_input_t in = {.kind = CG_IN_OTHER, .src = src,
                            .s = str_value ? str_value : "", .type_name = type_name};
    if (d == NULL)
        return -ENOENT;
    if (in.type_name == NULL)
        in.type_name = "object";
    return cg__config_set(cfg, d, &in, err, errlen);
}

int cg_config_set_callable(cg_config_t *cfg, const char *name, void *obj, const char *qualname,
                           cg_config_source_t src, char *err, size_t errlen)
{
    const cg_setting_desc_t *d = cg__lookup(name, err, errlen);
    cg_config_input_t in = {.kind = obj ? CG_IN_CALLABLE : CG_IN_NONE, .src = src, .obj = obj,
                            .qualname = qualname};
    if (d == NULL)
        return -ENOENT;
    return cg__config_set(cfg, d, &in, err, errlen);
}

/* Gunicorn's default control socket path (config.py _get_default_control_socket). */
static char *cg__default_control_socket(void)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR"), *home = getenv("HOME");
    struct stat st;

    if (xdg != NULL && xdg[0] != '\0' && stat(xdg, &st) == 0 && S_ISDIR(st.st_mode)) {
        return cg__strf("%s/gunicorn.ctl", xdg);
    }
    if (home == NULL) {
        struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : "~";
    }
    return cg__strf("%s%s.gunicorn/gunicorn.ctl", home,
                    home[0] != '\0' && home[strlen(home) - 1] == '/' ? "" : "/");
}

/* Defaults Gunicorn computes from the environment when config.py is imported. */
static int cg__env_defaults(cg_config_t *cfg, char *err, size_t errlen)
{
    const char *port = getenv("PORT"), *wc = getenv("WEB_CONCURRENCY");
    const char *fwd = getenv("FORWARDED_ALLOW_IPS");
    char *sock;
    int rc;


    if (port != NULL) {
        char *b = cg__strf("0.0.0.0:%s", port);
        rc = cg_config_set_string(cfg, "bind", b, CG_SRC_DEFAULT, err, errlen);
        free(b);
        if (rc < 0)
            return rc;
    }
    if (wc != NULL) {
        long n;
        if (cg__py_int(wc, 10, &n) < 0) {
            char *r = cg__py_repr(wc);
            cg__errf(err, errlen, "invalid literal for int() with base 10: %s", r);
            free(r);
            return -EINVAL;
        }
        rc = cg_config_set_int(cfg, "workers", n, CG_SRC_DEFAULT, err, errlen);
        if (rc < 0)
            return rc;
    }
    if (fwd != NULL) {
        rc = cg_config_set_string(cfg, "forwarded_allow_ips", fwd, CG_SRC_DEFAULT, err, errlen);
        if (rc < 0)
            return rc;
    }
    sock = cg__default_control_socket();
    rc = cg_config_set_string(cfg, "control_socket", sock, CG_SRC_DEFAULT, err, errlen);
    free(sock);
    return rc;
}

int cg_config_init(cg_config_t *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < CG_SETTING__COUNT; i++) {
        const cg_setting_desc_t *d = &cg_config_settings[i];
        cg_config_input_t in = {.kind = d->def ? CG_IN_STR : CG_IN_NONE,
                                .src = CG_SRC_DEFAULT, .s = d->def};
        int rc;
        /* A hook's default is Gunicorn's no-op function: NULL here. */
        if (d->type == CG_T_CALLABLE)
            continue;
        rc = cg__config_set(cfg, d, &in, err, errlen);
        if (rc < 0)
            return rc;
    }
    return cg__env_defaults(cfg, err, errlen);
}

void cg_config_free(cg_config_t *cfg)
{
    for (size_t i = 0; i < CG_SETTING__COUNT; i++)
        cg__release_value(cfg, &cg_config_settings[i]);
    free(cfg->app_uri);
    cfg->app_uri = NULL;
    if (cfg->app_object != NULL && cfg->callable_release != NULL)
        cfg->callable_release(cfg->app_object);
    cfg->app_object = NULL;
}

static void cg__strv_dup(cg_strv_t *dst, const cg_strv_t *src)
{
    memset(dst, 0, sizeof(*dst));
    for (size_t i = 0; i < src->n; i++)
        cg_strv_push(dst, src->v[i]);
}

void cg_config_copy(cg_config_t *dst, const cg_config_t *src)
{
    *dst = *src; /* scalars, sources, flags, borrowed pointers */
    for (size_t i = 0; i < CG_SETTING__COUNT; i++) {
        const cg_setting_desc_t *d = &cg_config_settings[i];
        const void *from = (const char *)src + d->offset;
        void *to = cg__field(dst, d);
        switch (d->type) {
        case CG_T_STR:
            *(char **)to = *(char *const *)from ? cg_xstrdup(*(char *const *)from) : NULL;
            break;
        case CG_T_LIST:
        case CG_T_CSV:
        case CG_T_DICT:
            cg__strv_dup(to, from);
            break;
        case CG_T_CALLABLE:
            if (*(void *const *)from != NULL)
                src->callable_retain(*(void *const *)from);
            dst->callable_name[i] =
                src->callable_name[i] ? cg_xstrdup(src->callable_name[i]) : NULL;
            break;
        default:
            break;
        }
    }
    dst->app_uri = src->app_uri ? cg_xstrdup(src->app_uri) : NULL;
    if (src->app_object != NULL)
        src->callable_retain(src->app_object);
}
