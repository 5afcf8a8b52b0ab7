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

/*
 * Start the interpreter (PEP 587 PyConfig): Debian's python3 by default, or the
 * interpreter of $VIRTUAL_ENV when set, our argv as sys.argv, no Python signal
 * handlers (the C worker owns signals). Puts cfg->chdir (the working directory)
 * and then every cfg->pythonpath entry at the front of sys.path, as Gunicorn.
 * Returns 0 with the GIL held, or -1 with a message in err.
 */
int cg_py_init(const cg_config_t *cfg, char *err, size_t errlen);

/* Format the current exception (which must be set) with its traceback, log it
 * as one record after `prefix`, and clear it. */
void cg_py_log_exception(cg_log_t *log, cg_log_level_t level, const char *prefix);

/* Same, into a malloc'd string the caller frees (NULL if none is set). */
char *cg_py_format_exception(void);

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

/*
 * --check-config: start the interpreter, import the app, report. Returns the
 * process exit status (0 ok, 1 failure with Gunicorn's message on stderr).
 */
int cg_py_check_app(const cg_config_t *cfg);

#endif
