/*
 * test_values.c - config-file values of kinds the typed setters do not name
 * (cg_config_set_other) and a bool explicitly set to None: what Gunicorn's
 * validators say of them and what --print-config shows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/config/config_internal.h"

/* The --print-config line of one setting, value part only. Owned. */
static char *printed(const cg_config_t *cfg, const char *name)
{
    char *buf = NULL, *line, *r = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cg_config_print(cfg, f);
    fclose(f);
    for (line = strtok(buf, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        size_t n = strlen(name);
        if (strncmp(line, name, n) == 0 && line[n] == ' ') {
            r = strdup(strstr(line, " = ") + 3);
            break;
        }
    }
    free(buf);
    return r;
}

static void expect_other_error(const char *name, const char *type, const char *str,
                               const char *msg)
{
    cg_config_t cfg;
    char err[256];
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
    err[0] = '\0';
    assert_int_equal(cg_config_set_other(&cfg, name, type, str, CG_SRC_FILE, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, msg);
    /* the old value stays */
    assert_int_equal(cfg.source[cg_config_find(name)->id], CG_SRC_DEFAULT);
    cg_config_free(&cfg);
}

static void test_other_refused_like_gunicorn(void **state)
{
    (void)state;
    expect_other_error("workers", "float", "2.5",
                       "int() can't convert non-string with explicit base");
    expect_other_error("umask", "list", "['022']",
                       "int() can't convert non-string with explicit base");
    expect_other_error("user", "float", "2.5", "'float' object has no attribute 'isdigit'");
    expect_other_error("group", "list", "[1]", "'list' object has no attribute 'isdigit'");
    expect_other_error("reload", "list", "[True]", "Invalid type for casting: [True]");
    expect_other_error("loglevel", "tuple", "('x', 1)", "Not a string: ('x', 1)");
    expect_other_error("forwarded_allow_ips", "list", "['1.2.3.4']",
                       "Not a string: ['1.2.3.4']");
    expect_other_error("http_protocols", "list", "['h1']", "http_protocols must be a string");
    expect_other_error("header_map", "tuple", "('drop',)",
                       "Invalid type for casting: ('drop',)");
    expect_other_error("proxy_protocol", "float", "1.0", "proxy_protocol must be string or bool");
    expect_other_error("reload_engine", "list", "['poll']", "Invalid reload_engine: ['poll']");
    expect_other_error("secure_scheme_headers", "list", "['a']",
                       "Value is not a dictionary: ['a'] ");
    expect_other_error("bind", "float", "1.5", "'float' object is not iterable");
    expect_other_error("on_starting", "float", "1.5", "Value is not callable: 1.5");
}

static void test_other_accepted_by_ssl_version(void **state)
{
    cg_config_t cfg;
    char err[256], *p;
    (void)state;
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_other(&cfg, "ssl_version", "float", "3.5", CG_SRC_FILE, err,
                                         sizeof(err)),
                     0);
    p = printed(&cfg, "ssl_version");
    assert_string_equal(p, "3.5");
    free(p);
    assert_int_equal(cg_config_set_other(&cfg, "no_such_setting_q", "float", "1", CG_SRC_FILE,
                                         err, sizeof(err)),
                     -ENOENT);
    assert_string_equal(err, "No configuration setting for: no_such_setting_q");
    cg_config_free(&cfg);
}

static void test_bool_none(void **state)
{
    cg_config_t cfg;
    char err[256], *p;
    (void)state;
    unsetenv("SENDFILE");
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);

    /* reload = None: Gunicorn keeps None */
    assert_int_equal(cg_config_set_string(&cfg, "reload", NULL, CG_SRC_FILE, err, sizeof(err)),
                     0);
    assert_false(cfg.reload);
    p = printed(&cfg, "reload");
    assert_string_equal(p, "None");
    free(p);
    /* a later real value replaces the None */
    assert_int_equal(cg_config_set_bool(&cfg, "reload", true, CG_SRC_CLI, err, sizeof(err)), 0);
    p = printed(&cfg, "reload");
    assert_string_equal(p, "True");
    free(p);

    /* sendfile = None is Gunicorn's "unset": sendfile() stays in use */
    assert_int_equal(cg_config_set_string(&cfg, "sendfile", NULL, CG_SRC_FILE, err, sizeof(err)),
                     0);
    assert_true(cfg.sendfile);
    p = printed(&cfg, "sendfile");
    assert_string_equal(p, "None");
    free(p);
    setenv("SENDFILE", "no", 1);
    assert_int_equal(cg_config_set_string(&cfg, "sendfile", NULL, CG_SRC_FILE, err, sizeof(err)),
                     0);
    assert_false(cfg.sendfile);
    unsetenv("SENDFILE");
    /* an explicit True still turns it off, as in Gunicorn */
    assert_int_equal(cg_config_set_bool(&cfg, "sendfile", true, CG_SRC_ENV, err, sizeof(err)), 0);
    assert_false(cfg.sendfile);
    p = printed(&cfg, "sendfile");
    assert_string_equal(p, "True");
    free(p);
    cg_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_other_refused_like_gunicorn),
        cmocka_unit_test(test_other_accepted_by_ssl_version),
        cmocka_unit_test(test_bool_none),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
