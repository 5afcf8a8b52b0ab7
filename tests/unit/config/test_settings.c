/*
 * test_settings.c - the descriptor table against Gunicorn's reference dump
 * (/work/shared/reference/gunicorn-settings.json), the setters, precedence and
 * the validators' messages (Gunicorn's texts).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/config/config_internal.h"

#define REF CG_SOURCE_ROOT "/../shared/reference/gunicorn-settings.json"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    long n;
    char *s;
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    s = malloc((size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    s[n] = '\0';
    fclose(f);
    return s;
}

/* The JSON string value following "key": at or after p (minimal unescaping),
 * or NULL for null. *end is set past it. */
static char *json_field(const char *p, const char *key, const char **end)
{
    char pat[64];
    const char *q;
    char *r, *o;
    snprintf(pat, sizeof(pat), "\"%s\": ", key);
    q = strstr(p, pat);
    assert_non_null(q);
    q += strlen(pat);
    if (strncmp(q, "null", 4) == 0) {
        *end = q + 4;
        return NULL;
    }
    if (*q != '"') { /* a JSON array or number: return it raw up to ',' or newline */
        const char *e = q;
        int depth = 0;
        while (*e && !(depth == 0 && (*e == ',' || *e == '\n'))) {
            depth += *e == '[';
            depth -= *e == ']';
            e++;
        }
        *end = e;
        return cg_xstrndup(q, (size_t)(e - q));
    }
    q++;
    r = o = malloc(strlen(q) + 1);
    while (*q && *q != '"') {
        if (*q == '\\') {
            q++;
            *o++ = *q == 'n' ? '\n' : *q;
            q++;
            continue;
        }
        *o++ = *q++;
    }
    *o = '\0';
    *end = q + 1;
    return r;
}

/* repr() of the value as Gunicorn's Setting.value would show it. */
static char *value_repr(const cg_config_t *cfg, const cg_setting_desc_t *d)
{
    const void *f = (const char *)cfg + d->offset;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);

    switch (d->type) {
    case CG_T_INT:
    case CG_T_OCTAL:
        fprintf(m, "%ld", *(const long *)f);
        break;
    case CG_T_BOOL:
        if (d->id == CG_SETTING_sendfile && cfg->source[d->id] == CG_SRC_DEFAULT)
            fputs("None", m);
        else
            fputs(*(const bool *)f ? "True" : "False", m);
        break;
    case CG_T_STR: {
        const char *s = *(char *const *)f;
        char *r = s ? cg__py_repr(s) : cg_xstrdup("None");
        fputs(r, m);
        free(r);
        break;
    }
    case CG_T_CSV: { /* Gunicorn's default is the comma-joined string */
        const cg_strv_t *v = f;
        char *joined = NULL, *r;
        size_t jl = 0;
        FILE *j = open_memstream(&joined, &jl);
        for (size_t i = 0; i < v->n; i++)
            fprintf(j, "%s%s", i ? "," : "", v->v[i]);
        fclose(j);
        r = cg__py_repr(joined);
        fputs(r, m);
        free(r);
        free(joined);
        break;
    }
    case CG_T_LIST:
    case CG_T_DICT: {
        const cg_strv_t *v = f;
        bool dict = d->type == CG_T_DICT;
        fputc(dict ? '{' : '[', m);
        for (size_t i = 0; i < v->n; i++) {
            char *r = cg__py_repr(v->v[i]);
            fprintf(m, "%s%s", i == 0 ? "" : (dict && i % 2) ? ": " : ", ", r);
            free(r);
        }
        fputc(dict ? '}' : ']', m);
        break;
    }
    case CG_T_CALLABLE:
        fputs("callable", m);
        break;
    }
    fclose(m);
    return buf;
}

static void clean_env(void)
{
    unsetenv("PORT");
    unsetenv("WEB_CONCURRENCY");
    unsetenv("FORWARDED_ALLOW_IPS");
    unsetenv("GUNICORN_CMD_ARGS");
    unsetenv("SENDFILE");
}

/* Rows Gunicorn 27.0.1's config.py adds that the reference JSON (written
 * from Gunicorn 26) lacks: checked here instead, at their place in the table,
 * with the values of 27's class definition. */
static const struct {
    const char *name, *section, *flags, *def, *meta;
} gunicorn27_added[] = {
    {"websocket_max_message_size", "Worker Processes", "--websocket-max-message-size", "16777216",
     "INT"},
};
#define GUNICORN27_ADDED (sizeof(gunicorn27_added) / sizeof(gunicorn27_added[0]))

static bool check_gunicorn27_row(cg_config_t *cfg, const cg_setting_desc_t *d)
{
    for (size_t k = 0; k < GUNICORN27_ADDED; k++) {
        if (strcmp(d->name, gunicorn27_added[k].name) != 0)
            continue;
        char *ours = value_repr(cfg, d);
        assert_string_equal(d->section, gunicorn27_added[k].section);
        assert_string_equal(d->flags, gunicorn27_added[k].flags);
        assert_string_equal(d->meta, gunicorn27_added[k].meta);
        assert_string_equal(ours, gunicorn27_added[k].def);
        free(ours);
        return true;
    }
    return false;
}

/* Every row: same order, name, section, CLI spellings, meta and default. */
static void test_table_matches_reference(void **state)
{
    char *json = slurp(REF), err[256];
    const char *p;
    cg_config_t cfg;
    size_t i = 0;
    int checked_defaults = 0;
    size_t added = 0;

    (void)state;
    assert_non_null(json);
    clean_env();
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
    /* Gunicorn's rows, then cgunicorn's own */
    assert_int_equal(CG_SETTING__GUNICORN_COUNT, 119 + GUNICORN27_ADDED);
    for (p = strstr(json, "\"name\": "); p != NULL; p = strstr(p, "\"name\": "), i++) {
        while (i < CG_SETTING__GUNICORN_COUNT && check_gunicorn27_row(&cfg, &cg_config_settings[i]))
            i++, added++;
        const cg_setting_desc_t *d = &cg_config_settings[i];
        char *name = json_field(p, "name", &p);
        char *section = json_field(p, "section", &p);
        char *cli = json_field(p, "cli", &p);
        char *def = json_field(p, "default", &p);
        char *meta = json_field(p, "meta", &p);
        char *ours;

        assert_true(i < CG_SETTING__GUNICORN_COUNT);
        assert_string_equal(d->name, name);
        assert_string_equal(d->section, section);
        if (cli == NULL) {
            assert_null(d->flags);
            assert_int_equal(d->action, CG_A_NONE);
        } else {
            /* ["-w", "--workers"] vs -w|--workers */
            char flat[256] = "";
            for (const char *c = cli; *c; c++) {
                if (*c == '"' || *c == '[' || *c == ']' || *c == ' ' || *c == '\n')
                    continue;
                strncat(flat, *c == ',' ? "|" : (char[]){*c, 0}, sizeof(flat) - strlen(flat) - 1);
            }
            assert_non_null(d->flags);
            assert_string_equal(d->flags, flat);
        }
        if (meta != NULL && d->flags != NULL)
            assert_string_equal(d->meta, meta);
        assert_non_null(d->help);
        assert_true(strlen(d->help) > 10);
        /* Env- or platform-dependent defaults, Python-only reprs and hooks
         * are covered by the print-config comparison instead. */
        if (d->type != CG_T_CALLABLE && d->id != CG_SETTING_chdir &&
            d->id != CG_SETTING_user && d->id != CG_SETTING_group &&
            d->id != CG_SETTING_control_socket && d->id != CG_SETTING_ssl_version &&
            d->id != CG_SETTING_cert_reqs) {
            ours = value_repr(&cfg, d);
            if (d->id == CG_SETTING_http_protocols)
                assert_string_equal(ours, "'h1'"); /* default string 'h1', list ['h1'] */
            else
                assert_string_equal(ours, def);
            free(ours);
            checked_defaults++;
        }
        free(name);
        free(section);
        free(cli);
        free(def);
        free(meta);
    }
    while (i < CG_SETTING__GUNICORN_COUNT && check_gunicorn27_row(&cfg, &cg_config_settings[i]))
        i++, added++;
    assert_int_equal(i, CG_SETTING__GUNICORN_COUNT);
    assert_int_equal(added, GUNICORN27_ADDED);
    assert_int_equal(checked_defaults, 119 - 20 - 6);
    assert_int_equal(cfg.cert_reqs, 0);
    assert_string_equal(cfg.ssl_version, "2");
    assert_int_equal(cfg.user, (long)geteuid());
    assert_int_equal(cfg.group, (long)getegid());
    assert_true(cfg.sendfile);
    assert_false(cfg.control_socket_disable); /* on by default, as Gunicorn 25.1+ */
    cg_config_free(&cfg);
    free(json);
}

static void test_env_defaults(void **state)
{
    cg_config_t cfg;
    char err[256];
    (void)state;
    clean_env();
    setenv("PORT", "9000", 1);
    setenv("WEB_CONCURRENCY", " 5 ", 1);
    setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8, *", 1);
    setenv("SENDFILE", "no", 1);
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.bind.n, 1);
    assert_string_equal(cfg.bind.v[0], "0.0.0.0:9000");
    assert_int_equal(cfg.workers, 5);
    assert_int_equal(cfg.forwarded_allow_ips.n, 2);
    assert_string_equal(cfg.forwarded_allow_ips.v[1], "*");
    assert_false(cfg.sendfile);
    assert_int_equal(cfg.source[CG_SETTING_workers], CG_SRC_DEFAULT);
    cg_config_free(&cfg);

    setenv("WEB_CONCURRENCY", "abc", 1);
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "invalid literal for int() with base 10: 'abc'");
    cg_config_free(&cfg);
    clean_env();
}

static void test_precedence(void **state)
{
    cg_config_t cfg;
    char err[256];
    (void)state;
    clean_env();
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "workers", "3", CG_SRC_ENV, err, sizeof(err)), 0);
    assert_int_equal(cfg.workers, 3);
    /* a config file value must not override GUNICORN_CMD_ARGS */
    assert_int_equal(cg_config_set_int(&cfg, "workers", 7, CG_SRC_FILE, err, sizeof(err)), 0);
    assert_int_equal(cfg.workers, 3);
    assert_int_equal(cfg.source[CG_SETTING_workers], CG_SRC_ENV);
    assert_int_equal(cg_config_set_int(&cfg, "workers", 9, CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cfg.workers, 9);
    assert_int_equal(cg_config_set_string(&cfg, "workers", "4", CG_SRC_ENV, err, sizeof(err)), 0);
    assert_int_equal(cfg.workers, 9);

    /* lists: a higher source replaces, the same source appends */
    assert_int_equal(cg_config_list_append(&cfg, "bind", "a:1", CG_SRC_FILE, err, sizeof(err)), 0);
    assert_int_equal(cg_config_list_append(&cfg, "bind", " b:2 ", CG_SRC_FILE, err, sizeof(err)), 0);
    assert_int_equal(cfg.bind.n, 2);
    assert_string_equal(cfg.bind.v[1], "b:2");
    {
        const char *items[] = {"c:3"};
        assert_int_equal(cg_config_set_list(&cfg, "bind", items, 1, CG_SRC_CLI, err, sizeof(err)), 0);
    }
    assert_int_equal(cfg.bind.n, 1);
    assert_string_equal(cfg.bind.v[0], "c:3");

    /* a rejected value keeps the old one */
    assert_int_equal(cg_config_set_string(&cfg, "workers", "-1", CG_SRC_CLI, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "Value must be positive: -1");
    assert_int_equal(cfg.workers, 9);

    assert_int_equal(cg_config_set_string(&cfg, "nope", "1", CG_SRC_CLI, err, sizeof(err)), -ENOENT);
    assert_string_equal(err, "No configuration setting for: nope");

    /* sendfile: any explicit value disables it (Gunicorn's quirk) */
    assert_true(cfg.sendfile);
    assert_int_equal(cg_config_set_bool(&cfg, "sendfile", true, CG_SRC_FILE, err, sizeof(err)), 0);
    assert_false(cfg.sendfile);
    assert_true(cfg.sendfile_raw);
    cg_config_free(&cfg);
}

typedef struct vcase {
    const char *name, *value, *msg; /* msg NULL: accepted */
} vcase_t;

/* Messages as Gunicorn 26.1 prints them after "Error: ". */
static const vcase_t vcases[] = {
    {"workers", "abc", "invalid literal for int() with base 0: 'abc'"},
    {"workers", "010", "invalid literal for int() with base 0: '010'"},
    {"workers", "0x10", NULL},
    {"workers", " 1_0 ", NULL},
    {"workers", "-3", "Value must be positive: -3"},
    {"http2_max_frame_size", "100", "http2_max_frame_size must be between 16384 and 16777215, got 100"},
    {"reload", "yes", "Invalid boolean: yes"},
    {"reload", " TRUE ", NULL},
    {"forwarded_allow_ips", "192.168.1.1/24", "192.168.1.1/24 has host bits set"},
    {"forwarded_allow_ips", "abc", "'abc' does not appear to be an IPv4 or IPv6 network"},
    {"forwarded_allow_ips", "1.2.3.4/33", "'1.2.3.4/33' does not appear to be an IPv4 or IPv6 network"},
    {"forwarded_allow_ips", "01.2.3.4", "'01.2.3.4' does not appear to be an IPv4 or IPv6 network"},
    {"forwarded_allow_ips", "::1/64", "::1/64 has host bits set"},
    {"forwarded_allow_ips", "10.0.0.0/8,*, fd00::/8", NULL},
    {"proxy_allow_ips", "1.2.3.4, ", NULL},
    {"proxy_allow_ips", "1.2.3.4, ,5.6.7.8", "'' does not appear to be an IPv4 or IPv6 network"},
    {"header_map", "Bogus", "Invalid header map behaviour: Bogus"},
    {"header_map", " REFUSE ", NULL},
    {"proxy_protocol", "v3", "proxy_protocol must be: off, v1, v2, or auto"},
    {"proxy_protocol", "TRUE", NULL},
    {"http_protocols", "h4", "Invalid protocol 'h4'. Valid protocols: h1, h2"},
    {"http_protocols", "h3", "Invalid protocol 'h3'. Valid protocols: h1, h2"},
    {"http2_initial_window_size", "2147483648", "HTTP/2 window size must be at most 2147483647: 2147483648"},
    {"http2_initial_window_size", "2147483647", NULL},
    {"http2_max_concurrent_streams", "0", "HTTP/2 max concurrent streams must be at least 1: 0"},
    {"http2_max_concurrent_streams", "-1", "Value must be positive: -1"},
    {"http2_max_concurrent_streams", "1", NULL},
    {"http_protocols", "h1,H1", "Duplicate protocols specified"},
    {"http2_cleartext", "maybe", "Invalid http2_cleartext: maybe"},
    {"asgi_loop", "Tokio", "Invalid ASGI loop: tokio"},
    {"asgi_lifespan", "x", "Invalid ASGI lifespan: x"},
    {"http_parser", "x", "http_parser must be one of: auto, fast, python"},
    {"reload_engine", "Auto", "Invalid reload_engine: 'Auto'"},
    {"chdir", "/nonexistent-dir", "can't chdir to '/nonexistent-dir'"},
    {"chdir", "/tmp/../tmp", NULL},
    {"user", "no-such-user-xyz", "No such user: 'no-such-user-xyz'"},
    {"group", "no-such-group-xyz", "No such group: 'no-such-group-xyz'"},
    {"reload_extra_files", "/nonexistent-file", "File /nonexistent-file does not exists."},
    {"statsd_host", "host:port", "Value must be one of ('host:port', 'unix://PATH')"},
    {"statsd_host", "fd://x", "Value must be one of ('host:port', 'unix://PATH')"},
    {"statsd_host", "localhost", NULL},
    {"secure_scheme_headers", "A=b", "Value is not a dictionary: A=b "},
    {"on_starting", "nodots", "Value 'nodots' is not import string. Format: module[.submodules...].object"},
    {"umask", "0o22", NULL},
};

/* Cases kept apart from vcases, whose accepted values the test checks after. */
static const vcase_t vcases_limits[] = {
    /* netmask and hostmask forms, as ipaddress.ip_network (and the runtime
     * matcher, which shares the parser) accept them */
    {"forwarded_allow_ips", "10.0.0.0/255.0.0.0", NULL},
    {"forwarded_allow_ips", "10.0.0.0/0.255.255.255", NULL},
    {"forwarded_allow_ips", "10.0.0.1/255.0.0.0", "10.0.0.1/8 has host bits set"},
    {"forwarded_allow_ips", "10.0.0.0/255.0.255.0",
     "'10.0.0.0/255.0.255.0' does not appear to be an IPv4 or IPv6 network"},
    {"proxy_allow_ips", "192.168.0.0/255.255.0.0", NULL},
    /* upper bounds (the max column of settings.def) */
    {"timeout", "2147483", NULL},
    {"timeout", "2147484", "Value must be at most 2147483: 2147484"},
    {"keepalive", "99999999999", "Value must be at most 2147483: 99999999999"},
    {"graceful_timeout", "86400", NULL},
    {"limit_request_field_size", "2147483648", "Value must be at most 2147483647: 2147483648"},
    {"umask", "0o10000", "Value must be at most 4095: 4096"},
};

static void test_validator_limits(void **state)
{
    cg_config_t cfg;
    char err[256];
    (void)state;
    clean_env();
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(vcases_limits) / sizeof(vcases_limits[0]); i++) {
        const vcase_t *c = &vcases_limits[i];
        err[0] = '\0';
        int rc = cg_config_set_string(&cfg, c->name, c->value, CG_SRC_FILE, err, sizeof(err));
        if (c->msg == NULL && rc != 0)
            fail_msg("%s=%s rejected: %s", c->name, c->value, err);
        if (c->msg != NULL && rc == 0)
            fail_msg("%s=%s accepted", c->name, c->value);
        if (c->msg != NULL)
            assert_string_equal(err, c->msg);
    }
    cg_config_free(&cfg);
}

/* Every numeric row carries a maximum; the maximum is accepted and one more
 * is refused from every source, and the seconds settings still fit 32-bit
 * milliseconds. */
static void test_numeric_bounds(void **state)
{
    cg_config_t cfg;
    char err[256];
    (void)state;
    clean_env();
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
    for (size_t i = 0; i < CG_SETTING__COUNT; i++) {
        const cg_setting_desc_t *d = &cg_config_settings[i];
        if (d->type != CG_T_INT && d->type != CG_T_OCTAL) {
            assert_int_equal(d->max, 0);
            continue;
        }
        if (d->max <= 0 || d->max > INT32_MAX * 2L + 1)
            fail_msg("%s: no sane maximum (%ld)", d->name, d->max);
        if (d->id == CG_SETTING_user || d->id == CG_SETTING_group)
            continue; /* resolved through the user database */
        assert_int_equal(cg_config_set_int(&cfg, d->name, d->max, CG_SRC_FILE, err, sizeof(err)),
                         0);
        err[0] = '\0';
        if (cg_config_set_int(&cfg, d->name, d->max + 1, CG_SRC_CLI, err, sizeof(err)) == 0)
            fail_msg("%s accepted %ld", d->name, d->max + 1);
        if (d->id != CG_SETTING_http2_max_frame_size && /* their own range messages */
            d->id != CG_SETTING_http2_initial_window_size)
            assert_non_null(strstr(err, "Value must be at most"));
    }
    const int secs[] = {CG_SETTING_timeout, CG_SETTING_graceful_timeout, CG_SETTING_keepalive};
    for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++)
        assert_true(cg_config_settings[secs[i]].max * 1000 <= INT32_MAX);
    assert_true((int64_t)cg_config_settings[CG_SETTING_limit_request_fields].max *
                    (cg_config_settings[CG_SETTING_limit_request_field_size].max + 2) >
                0);
    cg_config_free(&cfg);
}

static void test_validator_messages(void **state)
{
    cg_config_t cfg;
    char err[256];
    (void)state;
    clean_env();
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++) {
        int rc;
        err[0] = '\0';
        rc = cg_config_set_string(&cfg, vcases[i].name, vcases[i].value, CG_SRC_FILE, err,
                                  sizeof(err));
        if (vcases[i].msg == NULL) {
            if (rc != 0)
                fail_msg("%s=%s rejected: %s", vcases[i].name, vcases[i].value, err);
        } else {
            if (rc == 0)
                fail_msg("%s=%s accepted", vcases[i].name, vcases[i].value);
            assert_string_equal(err, vcases[i].msg);
        }
    }
    assert_int_equal(cfg.workers, 10);
    assert_true(cfg.reload);
    assert_string_equal(cfg.header_map, "refuse");
    assert_string_equal(cfg.proxy_protocol, "auto");
    assert_string_equal(cfg.chdir, "/tmp");
    assert_int_equal(cfg.umask, 18);
    assert_int_equal(cfg.forwarded_allow_ips.n, 3);
    assert_string_equal(cfg.forwarded_allow_ips.v[2], "fd00::/8");

    /* typed setters: Python kinds other than str */
    assert_int_equal(cg_config_set_bool(&cfg, "proxy_protocol", false, CG_SRC_FILE, err, sizeof(err)), 0);
    assert_string_equal(cfg.proxy_protocol, "off");
    assert_int_equal(cg_config_set_int(&cfg, "reload", 1, CG_SRC_FILE, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "Invalid type for casting: 1");
    assert_int_equal(cg_config_set_string(&cfg, "pidfile", NULL, CG_SRC_FILE, err, sizeof(err)), 0);
    assert_null(cfg.pidfile);
    {
        const char *kv[] = {"X-PROTO", "https"};
        assert_int_equal(cg_config_set_dict(&cfg, "secure_scheme_headers", kv, 1, CG_SRC_FILE, err, sizeof(err)), 0);
        assert_int_equal(cfg.secure_scheme_headers.n, 2);
        assert_string_equal(cfg.secure_scheme_headers.v[1], "https");
    }
    {
        static int hook;
        assert_int_equal(cg_config_set_callable(&cfg, "post_fork", &hook, "my_post_fork", CG_SRC_FILE, err, sizeof(err)), 0);
        assert_ptr_equal(cfg.post_fork, &hook);
        assert_string_equal(cfg.callable_name[CG_SETTING_post_fork], "my_post_fork");
        assert_int_equal(cg_config_set_int(&cfg, "post_fork", 3, CG_SRC_FILE, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "Value is not callable: 3");
    }
    cg_config_free(&cfg);
}

static void test_check_supported(void **state)
{
    static const struct {
        const char *name, *value, *feature;
    } cases[] = {
        {"worker_class", "egg:gunicorn#nosuch", "worker_class"},
        {"worker_class", "gunicorn.workers.nosuch.Worker", "worker_class"},
    };
    cg_config_t cfg;
    char err[256];
    (void)state;
    clean_env();
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "worker_class", "sync", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "proxy_protocol", "v2", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "pidfile", "/tmp/p", CG_SRC_CLI, err, sizeof(err)), 0);
    /* process-life settings the arbiter implements */
    assert_int_equal(cg_config_set_string(&cfg, "daemon", "true", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "reuse_port", "true", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "initgroups", "true", CG_SRC_CLI, err, sizeof(err)), 0);
    /* the gthread worker exists: its class names and threads > 1 are accepted */
    assert_int_equal(cg_config_set_string(&cfg, "worker_class", "gthread", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "threads", "4", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "worker_class", "gunicorn.workers.gthread.ThreadWorker", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "worker_class", "sync", CG_SRC_CLI, err, sizeof(err)), 0);
    /* preload and the reloader exist now */
    assert_int_equal(cg_config_set_string(&cfg, "preload_app", "true", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "reload", "true", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "reload_engine", "poll", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    /* the uwsgi protocol */
    assert_int_equal(cg_config_set_string(&cfg, "protocol", "uwsgi", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    /* and statsd */
    assert_int_equal(cg_config_set_string(&cfg, "statsd_host", "localhost:8125", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    /* so do the Python logging configurations */
    assert_int_equal(cg_config_set_string(&cfg, "logconfig", "/tmp/log.ini", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "logconfig_json", "/tmp/log.json", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    /* capture_output is done from C */
    assert_int_equal(cg_config_set_string(&cfg, "capture_output", "true", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    /* syslog too, alongside a Python logging configuration as well */
    assert_int_equal(cg_config_set_string(&cfg, "syslog", "true", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    cg_config_free(&cfg);
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "syslog", "true", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    cg_config_free(&cfg);

    /* dirty arbiters run (src/arbiter/dirty.c) */
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "dirty_workers", "2", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_list_append(&cfg, "dirty_apps", "m:App:1", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    cg_config_free(&cfg);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char want[128];
        assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
        assert_int_equal(cg_config_set_string(&cfg, cases[i].name, cases[i].value, CG_SRC_CLI, err, sizeof(err)), 0);
        assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), -ENOTSUP);
        snprintf(want, sizeof(want), "Error: %s is not supported yet by cgunicorn", cases[i].feature);
        assert_string_equal(err, want);
        cg_config_free(&cfg);
    }

    /* request_timeout: every worker of ours has its watch; another
     * Python worker class has none */
    static const char *const rt_ok[] = {"sync", "gthread", "asgi", "gevent",
                                        "gunicorn.workers.ggevent.GeventWorker"};
    for (size_t i = 0; i < sizeof(rt_ok) / sizeof(rt_ok[0]); i++) {
        assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
        assert_int_equal(cg_config_set_string(&cfg, "request_timeout", "2", CG_SRC_CLI, err, sizeof(err)), 0);
        assert_int_equal(cg_config_set_string(&cfg, "worker_class", rt_ok[i], CG_SRC_CLI, err, sizeof(err)), 0);
        assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
        cg_config_free(&cfg);
    }
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "worker_class", "myapp.MyWorker", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "request_timeout", "2", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), -ENOTSUP);
    assert_string_equal(err, "Error: request_timeout is not supported yet by cgunicorn's "
                             "myapp.MyWorker worker (only by sync, gthread, asgi and gevent)");
    cg_config_free(&cfg);

    /* HTTP/2: gthread and asgi serve it, sync warns and serves HTTP/1.1, a
     * Python worker class refuses; h2c (prior knowledge, Upgrade, both) on
     * gthread and asgi only */
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "http_protocols", "h2,h1", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "worker_class", "gthread", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "http2_cleartext", "prior-knowledge", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "http2_cleartext", "both", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "worker_class", "sync", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), -ENOTSUP);
    assert_string_equal(err, "Error: http2_cleartext is not supported yet by cgunicorn's sync worker");
    assert_int_equal(cg_config_set_string(&cfg, "worker_class", "gthread", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "http2_cleartext", "off", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "worker_class", "asgi", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "http2_cleartext", "both", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "http2_cleartext", "off", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "worker_class", "myapp.MyWorker", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), -ENOTSUP);
    assert_string_equal(err, "Error: HTTP/2 (http_protocols h2) is not supported yet by cgunicorn's myapp.MyWorker worker");
    cg_config_free(&cfg);

    /* TLS: served by the sync and gthread workers (worker kinds without it
     * refuse it in the same place) */
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "certfile", "/tmp/c.pem", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "keyfile", "/tmp/k.pem", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "worker_class", "gthread", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    cg_config_free(&cfg);

    /* the control socket is served: an explicit path is fine */
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "control_socket", "/tmp/ctl", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_check_supported(&cfg, err, sizeof(err)), 0);
    cg_config_free(&cfg);
}

static void test_python_syntax(void **state)
{
    long v;
    cg_strv_t sv = {0};
    const char *msg = NULL;
    char *r;
    (void)state;
    assert_int_equal(cg__py_int("12", 10, &v), 0);
    assert_int_equal(v, 12);
    assert_int_equal(cg__py_int("0x10", 10, &v), -EINVAL);
    assert_int_equal(cg__py_int("010", 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(cg__py_int("000", 0, &v), 0);
    assert_int_equal(cg__py_int("0b_101", 0, &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(cg__py_int("1__0", 0, &v), -EINVAL);
    assert_int_equal(cg__py_int("_1", 0, &v), -EINVAL);
    assert_int_equal(cg__py_int("", 0, &v), -EINVAL);
    assert_int_equal(cg__py_int("-", 0, &v), -EINVAL);
    assert_int_equal(cg__py_int("99999999999999999999", 10, &v), -ERANGE);
    assert_int_equal(cg__py_auto_int("0022", &v), 0);
    assert_int_equal(v, 18);
    assert_int_equal(cg__py_auto_int("08", &v), -EINVAL);
    assert_int_equal(cg__py_auto_int("0xff", &v), 0);
    assert_int_equal(v, 255);

    r = cg__py_repr("it's");
    assert_string_equal(r, "\"it's\"");
    free(r);
    r = cg__py_repr("a'\"\n\\");
    assert_string_equal(r, "'a\\'\"\\n\\\\'");
    free(r);

    assert_int_equal(cg__shlex_split("-w 3  --name 'a b' \"c \\\"d\\\"\" e\\ f ''", &sv, &msg), 0);
    assert_int_equal(sv.n, 7);
    assert_string_equal(sv.v[3], "a b");
    assert_string_equal(sv.v[4], "c \"d\"");
    assert_string_equal(sv.v[5], "e f");
    assert_string_equal(sv.v[6], "");
    cg_strv_clear(&sv);
    assert_int_equal(cg__shlex_split("-n 'abc", &sv, &msg), -EINVAL);
    assert_string_equal(msg, "No closing quotation");
    cg_strv_clear(&sv);
    assert_int_equal(cg__shlex_split("abc\\", &sv, &msg), -EINVAL);
    assert_string_equal(msg, "No escaped character");
    cg_strv_clear(&sv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_matches_reference),
        cmocka_unit_test(test_env_defaults),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_validator_messages),
        cmocka_unit_test(test_numeric_bounds),
        cmocka_unit_test(test_validator_limits),
        cmocka_unit_test(test_check_supported),
        cmocka_unit_test(test_python_syntax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
