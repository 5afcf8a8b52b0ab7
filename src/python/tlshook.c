/*
 * tlshook.c - the ssl_context setting for the sync and gthread workers: the
 * configuration's hook is called as Gunicorn calls it,
 * hook(config, default_ssl_context_factory), and the OpenSSL context inside
 * the ssl.SSLContext it returns becomes the one the C transport (src/tls/)
 * serves with. Nothing is read back through Python's API (which cannot
 * return a loaded certificate chain or key): the SSL_CTX itself is taken.
 *
 * CPython's _ssl module keeps it as the first field after PyObject_HEAD of
 * its PySSLContext (Modules/_ssl.c, 3.10 to 3.13). That layout is private,
 * so it is used only on those versions, only for an instance of
 * _ssl._SSLContext, only when Python's OpenSSL is the one this program runs
 * (same version number), and only when the pointer's options, verify mode
 * and protocol bounds agree with what the Python object reports.
 */
#include "python.h"

#include "../arbiter/hooks.h"

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if PY_VERSION_HEX >= 0x030A0000 && PY_VERSION_HEX < 0x030E0000
#define CG__SSLCTX_LAYOUT_KNOWN 1
typedef struct {
    PyObject_HEAD
    SSL_CTX *ctx;
} cg__pysslcontext_t;
#else
#define CG__SSLCTX_LAYOUT_KNOWN 0
#endif

/* The exception's last line ("ValueError: ..."), traceback in full when
 * the hook itself raised. */
static void cg__exc_text(char *err, size_t errlen)
{
    char *tb = cg_py_format_exception();
    snprintf(err, errlen, "%s", tb != NULL ? tb : "ssl_context hook failed");
    size_t n = strlen(err);
    while (n > 0 && err[n - 1] == '\n')
        err[--n] = '\0';
    free(tb);
}

/* A Python int attribute as an unsigned long (options are a 64-bit mask);
 * -1 with an exception set. */
static int cg__attr_ulong(PyObject *obj, const char *name, unsigned long long *out)
{
    PyObject *v = PyObject_GetAttrString(obj, name); /* new */
    if (v == NULL)
        return -1;
    *out = PyLong_AsUnsignedLongLongMask(v);
    Py_DECREF(v);
    return PyErr_Occurred() ? -1 : 0;
}

#if CG__SSLCTX_LAYOUT_KNOWN
/* The SSL_CTX behind ctx when everything says it is one; NULL and a reason
 * otherwise. GIL held. */
static SSL_CTX *cg__ssl_ctx_of(PyObject *ctx, char *err, size_t errlen)
{
    PyObject *ssl_mod = PyImport_ImportModule("_ssl"); /* new */
    PyObject *cls = ssl_mod ? PyObject_GetAttrString(ssl_mod, "_SSLContext") : NULL; /* new */
    PyObject *ver = ssl_mod ? PyObject_GetAttrString(ssl_mod, "OPENSSL_VERSION_NUMBER") : NULL;
    Py_XDECREF(ssl_mod);
    int is = cls != NULL && PyType_Check(cls) ? PyObject_IsInstance(ctx, cls) : -1;
    unsigned long long pyver = ver != NULL ? PyLong_AsUnsignedLongLongMask(ver) : 0;
    Py_XDECREF(cls);
    Py_XDECREF(ver);
    if (is < 0 || PyErr_Occurred()) {
        cg__exc_text(err, errlen);
        return NULL;
    }
    if (is == 0) {
        snprintf(err, errlen, "ssl_context must return an ssl.SSLContext");
        return NULL;
    }
    if (pyver != (unsigned long long)OpenSSL_version_num()) {
        snprintf(err, errlen,
                 "ssl_context is not supported by cgunicorn with this Python: its ssl module "
                 "runs OpenSSL %#llx, cgunicorn %#lx",
                 pyver, (unsigned long)OpenSSL_version_num());
        return NULL;
    }
    SSL_CTX *sctx = ((cg__pysslcontext_t *)ctx)->ctx;
    unsigned long long options, verify_mode, minv, maxv;
    if (cg__attr_ulong(ctx, "options", &options) < 0 ||
        cg__attr_ulong(ctx, "verify_mode", &verify_mode) < 0 ||
        cg__attr_ulong(ctx, "minimum_version", &minv) < 0 ||
        cg__attr_ulong(ctx, "maximum_version", &maxv) < 0) {
        cg__exc_text(err, errlen);
        return NULL;
    }
    int vm = sctx != NULL ? SSL_CTX_get_verify_mode(sctx) : -1;
    unsigned long long want_vm = (vm & SSL_VERIFY_FAIL_IF_NO_PEER_CERT) ? 2
                                 : (vm & SSL_VERIFY_PEER)             ? 1
                                                                      : 0;
    /* Python shows an unset bound as MINIMUM_SUPPORTED (-2) and
     * MAXIMUM_SUPPORTED (-1), OpenSSL as 0 */
    long smin = sctx != NULL ? SSL_CTX_get_min_proto_version(sctx) : -3;
    long smax = sctx != NULL ? SSL_CTX_get_max_proto_version(sctx) : -3;
    bool min_ok = smin == 0 ? (long long)minv == -2 || minv == (unsigned long long)-2
                            : (long long)minv == smin;
    bool max_ok = smax == 0 ? (long long)maxv == -1 || maxv == (unsigned long long)-1
                            : (long long)maxv == smax;
    if (sctx == NULL || (unsigned long long)SSL_CTX_get_options(sctx) != options ||
        want_vm != verify_mode || !min_ok || !max_ok) {
        snprintf(err, errlen,
                 "ssl_context is not supported by cgunicorn with this Python: its "
                 "ssl.SSLContext does not have the layout cgunicorn knows");
        return NULL;
    }
    return sctx;
}
#endif

int cg_py_tls_context(void *hctx, const cg_config_t *cfg, void **out, char *err, size_t errlen)
{
    (void)hctx;
    *out = NULL;
#if !CG__SSLCTX_LAYOUT_KNOWN
    (void)cfg;
    snprintf(err, errlen,
             "ssl_context is not supported yet by cgunicorn's sync and gthread workers on "
             "Python %s",
             PY_VERSION);
    return -ENOTSUP;
#else
    PyGILState_STATE g = PyGILState_Ensure();
    int rc = -EINVAL;
    PyObject *mod = PyImport_ImportModule("cgunicorn._tls"); /* new */
    PyObject *conf = mod != NULL ? cg_py_config_object(cfg) : NULL; /* new */
    PyObject *hook = (PyObject *)cfg->ssl_context;                  /* borrowed */
    PyObject *ctx = conf != NULL && hook != NULL
                        ? PyObject_CallMethod(mod, "hook_context", "OO", conf, hook)
                        : NULL; /* new */
    if (ctx == NULL) {
        if (PyErr_Occurred())
            cg__exc_text(err, errlen);
        else
            snprintf(err, errlen, "ssl_context is not set");
    } else {
        SSL_CTX *sctx = cg__ssl_ctx_of(ctx, err, errlen);
        /* our own reference: the Python object may go now */
        if (sctx != NULL && SSL_CTX_up_ref(sctx) == 1) {
            *out = sctx;
            rc = 0;
        } else if (sctx != NULL) {
            snprintf(err, errlen, "SSL_CTX_up_ref failed");
        }
    }
    Py_XDECREF(ctx);
    Py_XDECREF(conf);
    Py_XDECREF(mod);
    PyErr_Clear();
    PyGILState_Release(g);
    return rc;
#endif
}
