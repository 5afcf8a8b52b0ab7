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
 *
 * The context's keylog_filename and sni_callback are Python's own
 * callbacks, which expect a Python SSLSocket behind each SSL; ours stand in
 * for them (the C transport has no SSLSocket): the key log file is opened
 * here, in the master, and the workers inherit it; the sni_callback is
 * called as CPython's Modules/_ssl.c calls it, with the GIL taken for that
 * call only, and a context it assigns to the socket's `context` is
 * switched to with SSL_set_SSL_CTX.
 */
#include "python.h"

#include "../arbiter/hooks.h"

#include "../tls/tls.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
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

#if CG__SSLCTX_LAYOUT_KNOWN
/* What the servername callback needs; freed with the context. */
typedef struct {
    PyObject *pyctx;            /* the hook's ssl.SSLContext */
    PyObject *sni;              /* its sni_callback */
    PyObject *sock_cls;         /* cgunicorn._tls.SNISocket */
    const cg_tls_ctx_t *served; /* the context serving pyctx's SSL_CTX */
} cg__sni_t;

static void cg__sni_release(void *arg)
{
    cg__sni_t *s = arg;
    /* at the master's exit Python may be finalized: its objects are gone */
    if (Py_IsInitialized()) {
        PyGILState_STATE g = PyGILState_Ensure();
        Py_XDECREF(s->pyctx);
        Py_XDECREF(s->sni);
        Py_XDECREF(s->sock_cls);
        PyGILState_Release(g);
    }
    free(s);
}

/*
 * OpenSSL's servername callback, as CPython's _servername_callback:
 * sni_callback(ssl_socket, server_name, ssl_context), server_name the SNI
 * host name as an ASCII str (None without SNI); None goes on, an int is
 * the alert to fail with, an exception fails with handshake_failure
 * (printed as unraisable). ssl_socket is a cgunicorn._tls.SNISocket whose
 * `context` the callback may set: that context then serves the handshake.
 * Runs in the worker, inside the handshake, which holds no GIL: take it
 * for this call only.
 */
static int cg__servername_cb(SSL *ssl, int *al, void *arg)
{
    cg__sni_t *s = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    PyGILState_STATE g = PyGILState_Ensure();
    int ret = SSL_TLSEXT_ERR_ALERT_FATAL;
    *al = SSL_AD_INTERNAL_ERROR;
    PyObject *sock = PyObject_CallOneArg(s->sock_cls, s->pyctx); /* new */
    PyObject *pyname = sock == NULL ? NULL
                       : name != NULL
                           ? PyUnicode_DecodeASCII(name, (Py_ssize_t)strlen(name), NULL)
                           : Py_NewRef(Py_None); /* new */
    if (pyname == NULL) {
        PyErr_WriteUnraisable(s->pyctx);
        goto out;
    }
    PyObject *result = PyObject_CallFunctionObjArgs(s->sni, sock, pyname, s->pyctx, NULL);
    if (result == NULL) {
        PyErr_WriteUnraisable(s->sni);
        *al = SSL_AD_HANDSHAKE_FAILURE;
        goto out;
    }
    if (result != Py_None) {
        *al = (int)PyLong_AsLong(result);
        if (PyErr_Occurred()) {
            PyErr_WriteUnraisable(result);
            *al = SSL_AD_INTERNAL_ERROR;
        }
        Py_DECREF(result);
        goto out;
    }
    Py_DECREF(result);
    PyObject *chosen = PyObject_GetAttrString(sock, "context"); /* new */
    if (chosen == NULL) {
        PyErr_WriteUnraisable(s->sni);
        goto out;
    }
    if (chosen != s->pyctx) {
        char err[256];
        SSL_CTX *sctx = cg__ssl_ctx_of(chosen, err, sizeof(err));
        if (sctx == NULL || cg_tls_switch_ctx(ssl, sctx, s->served, err, sizeof(err)) < 0) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "sni_callback: %s", err);
            PyErr_WriteUnraisable(s->sni);
            Py_DECREF(chosen);
            goto out;
        }
    }
    Py_DECREF(chosen);
    ret = SSL_TLSEXT_ERR_OK;
out:
    Py_XDECREF(pyname);
    Py_XDECREF(sock);
    PyErr_Clear();
    PyGILState_Release(g);
    return ret;
}

/* The context's keylog_filename opened for appending (-1: none set; -2
 * with the reason in err). Python writes a comment line first in a new
 * file; so do we. GIL held. */
static int cg__keylog_open(PyObject *ctx, char *err, size_t errlen)
{
    PyObject *name = PyObject_GetAttrString(ctx, "keylog_filename"); /* new */
    if (name == NULL) {
        cg__exc_text(err, errlen);
        return -2;
    }
    if (name == Py_None) {
        Py_DECREF(name);
        return -1;
    }
    PyObject *path = NULL; /* new, bytes */
    int ok = PyUnicode_FSConverter(name, &path);
    Py_DECREF(name);
    if (!ok) {
        cg__exc_text(err, errlen);
        return -2;
    }
    const char *p = PyBytes_AS_STRING(path);
    int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "keylog_filename: [Errno %d] %s: '%s'", errno, strerror(errno), p);
        if (fd >= 0)
            close(fd);
        Py_DECREF(path);
        return -2;
    }
    Py_DECREF(path);
    static const char head[] = "# TLS secrets log file, generated by OpenSSL / Python\n";
    if (st.st_size == 0 && write(fd, head, sizeof(head) - 1) < 0) {
        snprintf(err, errlen, "keylog_filename: [Errno %d] %s", errno, strerror(errno));
        close(fd);
        return -2;
    }
    return fd;
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
        cg_tls_adopt_t o = {.keylog_fd = -1};
        cg__sni_t *sni = NULL;
        PyObject *cb = sctx != NULL ? PyObject_GetAttrString(ctx, "sni_callback") : NULL;
        if (sctx != NULL && cb == NULL) {
            cg__exc_text(err, errlen);
            sctx = NULL;
        } else if (cb != NULL && cb != Py_None) {
            PyObject *cls = PyObject_GetAttrString(mod, "SNISocket"); /* new */
            if (cls == NULL) {
                cg__exc_text(err, errlen);
                sctx = NULL;
            } else {
                sni = cg_xcalloc(1, sizeof(*sni));
                sni->pyctx = Py_NewRef(ctx);
                sni->sni = Py_NewRef(cb);
                sni->sock_cls = cls;
                o.servername = cg__servername_cb;
                o.servername_arg = sni;
                o.release = cg__sni_release;
            }
        }
        Py_XDECREF(cb);
        if (sctx != NULL && (o.keylog_fd = cg__keylog_open(ctx, err, errlen)) == -2) {
            o.keylog_fd = -1;
            sctx = NULL;
        }
        cg_tls_ctx_t *t = NULL;
        /* our own reference: the Python object may go now (the sni
         * callback's state keeps it while the context lives) */
        if (sctx != NULL && SSL_CTX_up_ref(sctx) == 1) {
            rc = cg_tls_ctx_adopt(cfg, sctx, &o, &t, err, errlen);
            if (rc == 0 && sni != NULL)
                sni->served = t;
            *out = t;
        } else {
            if (sctx != NULL)
                snprintf(err, errlen, "SSL_CTX_up_ref failed");
            if (o.keylog_fd >= 0)
                close(o.keylog_fd);
            if (sni != NULL) {
                Py_DECREF(sni->pyctx);
                Py_DECREF(sni->sni);
                Py_DECREF(sni->sock_cls);
                free(sni);
            }
            rc = -EINVAL;
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
