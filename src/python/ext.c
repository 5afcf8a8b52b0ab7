/*
 * ext.c - the extension module's front end: `import cgunicorn._core` in a
 * running Python (the pip-installed console script, python -m cgunicorn,
 * the programmatic API). The interpreter is the host process's; everything
 * else is the C core the standalone executable runs (src/python/front.c).
 */
#include "python.h"

PyMODINIT_FUNC PyInit__core(void);

PyMODINIT_FUNC PyInit__core(void)
{
    cg_py_adopt();
    return cg_py_core_module_new();
}
