/*
 * test_print.c - --print-config text (Gunicorn's Config.__str__ format) and the
 * JSON descriptor dump, including tools/gen_settings_doc.py run on it.
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

#include "src/config/config.h"

static void assert_string_equal_prefix(const char *s, const char *prefix)
{
    assert_non_null(s);
    if (strncmp(s, prefix, strlen(prefix)) != 0)
        fail_msg("output starts with:\n%.300s", s ? s : "(null)");
}

static char *print_to_string(const cg_config_t *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    cg_config_print(cfg, m);
    fclose(m);
    return buf;
}

static void test_print_config(void **state)
{
    cg_config_t cfg;
    char err[256], *s, *line;
    int lines = 0;
    (void)state;
    unsetenv("PORT");
    unsetenv("WEB_CONCURRENCY");
    unsetenv("FORWARDED_ALLOW_IPS");
    assert_int_equal(cg_config_init(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "default_proc_name", "myapp:app", CG_SRC_APP, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "statsd_host", "Example.com", CG_SRC_CLI, err, sizeof(err)), 0);
    assert_int_equal(cg_config_set_string(&cfg, "umask", "0o22", CG_SRC_CLI, err, sizeof(err)), 0);
    {
        static int hook;
        assert_int_equal(cg_config_set_callable(&cfg, "when_ready", &hook, "when_ready", CG_SRC_FILE, err, sizeof(err)), 0);
    }
    s = print_to_string(&cfg);
    /* sorted, names padded to the longest (34 characters) */
    assert_string_equal_prefix(s, "access_log_format                  = %(h)s %(l)s %(u)s %(t)s "
                                "\"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\"\n"
                                "accesslog                          = None\n");
    assert_non_null(strstr(s, "\nbind                               = ['127.0.0.1:8000']\n"));
    assert_non_null(strstr(s, "\nchild_exit                         = <ChildExit.child_exit()>\n"));
    assert_non_null(strstr(s, "\nwhen_ready                         = <when_ready()>\n"));
    assert_non_null(strstr(s, "\ncontrol_socket_mode                = 384\n"));
    assert_non_null(strstr(s, "\ndefault_proc_name                  = myapp:app\n"));
    assert_non_null(strstr(s, "\ndogstatsd_tags                     = \n"));
    assert_non_null(strstr(s, "\nforwarded_allow_ips                = ['127.0.0.1', '::1']\n"));
    assert_non_null(strstr(s, "\nhttp_protocols                     = ['h1']\n"));
    assert_non_null(strstr(s, "\nlogconfig_dict                     = {}\n"));
    assert_non_null(strstr(s, "\npermit_unconventional_http_version = False\n"));
    assert_non_null(strstr(s, "\nsecure_scheme_headers              = {'X-FORWARDED-PROTOCOL': 'ssl', "
                              "'X-FORWARDED-PROTO': 'https', 'X-FORWARDED-SSL': 'on'}\n"));
    assert_non_null(strstr(s, "\nsendfile                           = None\n"));
    assert_non_null(strstr(s, "\nssl_version                        = 2\n"));
    assert_non_null(strstr(s, "\nstatsd_host                        = ('example.com', 8125)\n"));
    assert_non_null(strstr(s, "\numask                              = 18\n"));
    assert_non_null(strstr(s, "\nwsgi_app                           = None\n"));
    for (line = s; (line = strchr(line, '\n')) != NULL; line++)
        lines++;
    /* Gunicorn's 119, and cgunicorn's own (printed too) */
    assert_non_null(strstr(s, "\nstatsd_flush_interval              = 100\n"));
    assert_non_null(strstr(s, "\nmetrics_bind                       = None\n"));
    assert_int_equal(lines, CG_SETTING__COUNT);
    free(s);

    assert_int_equal(cg_config_set_bool(&cfg, "sendfile", false, CG_SRC_CLI, err, sizeof(err)), 0);
    s = print_to_string(&cfg);
    assert_non_null(strstr(s, "\nsendfile                           = False\n"));
    free(s);
    cg_config_free(&cfg);
}

static void test_dump_json_and_doc(void **state)
{
    char json[] = "/tmp/cg_settings_jsonXXXXXX", md[64], cmd[1024], *buf = NULL;
    int fd = mkstemp(json);
    FILE *f;
    size_t len = 0;
    (void)state;
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    cg_config_dump_json(f);
    fclose(f);

    /* The dump is valid JSON with one object per setting. */
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
             "assert len(d)==%d, len(d); "
             "assert sum(not x.get(\"cgunicorn_only\") for x in d)==120; "
             "assert [x[\"name\"] for x in d if x.get(\"cgunicorn_only\")]=="
             "[\"statsd_flush_interval\",\"max_worker_memory\",\"request_timeout\",\"metrics_bind\"]; "
             "w=[x for x in d if x[\"name\"]==\"workers\"][0]; "
             "assert w[\"cli\"]==[\"-w\",\"--workers\"] and w[\"type\"]==\"int\" and "
             "w[\"default\"]==\"1\" and w[\"action\"]==\"int\", w' %s",
             (int)CG_SETTING__COUNT, json);
    assert_int_equal(system(cmd), 0);

    snprintf(md, sizeof(md), "%s.md", json);
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tools/gen_settings_doc.py %s -o %s",
             CG_SOURCE_ROOT, json, md);
    assert_int_equal(system(cmd), 0);
    f = fopen(md, "r");
    assert_non_null(f);
    {
        char chunk[4096];
        size_t n;
        FILE *m = open_memstream(&buf, &len);
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
            fwrite(chunk, 1, n, m);
        fclose(m);
    }
    fclose(f);
    assert_non_null(strstr(buf, "## Worker Processes"));
    assert_non_null(strstr(buf, "### `workers`"));
    assert_non_null(strstr(buf, "`-w INT`, `--workers INT`"));
    assert_non_null(strstr(buf, "### `limit_request_field_size`"));
    assert_non_null(strstr(buf, "### `on_starting`"));
    free(buf);
    unlink(md);
    unlink(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_print_config),
        cmocka_unit_test(test_dump_json_and_doc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
