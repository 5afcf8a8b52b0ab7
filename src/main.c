/*
 * main.c - the standalone executable: cgunicorn's C core with CPython
 * embedded, started only when Python is needed (see src/python/front.c,
 * which the pip-installed front end shares).
 */
#include "config/config.h"
#include "python/python.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    cg_config_t cfg;

    /* Hidden: the settings table as JSON, from which docs/settings.md is made. */
    if (argc == 2 && strcmp(argv[1], "--dump-settings-json") == 0) {
        cg_config_dump_json(stdout);
        return 0;
    }
    int status = cg_py_front_main(argc, argv, NULL, NULL, &cfg);
    /* Every exit ends here: Python's buffered stdout/stderr (a config
     * file's print() while stdout is a pipe) is written out first. */
    cg_py_flush_stdio();
    cg_config_free(&cfg); /* drops the hooks' references: Python must still run */
    /* The master leaves like a Python process would: atexit handlers the
     * config file registered run, buffered output is flushed. */
    if (Py_IsInitialized() && Py_FinalizeEx() < 0 && status == 0)
        status = 120;
    fflush(NULL);
    return status;
}
