/*
 * context.c - the TLS server context, built from the settings the way
 * Gunicorn 26's default ssl_context factory builds an ssl.SSLContext
 * (gunicorn/sock.py), with Python 3's defaults for a server context:
 *
 *   ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca_certs)
 *   context.load_cert_chain(certfile=certfile, keyfile=keyfile)
 *   context.verify_mode = cert_reqs
 *   context.set_ciphers(ciphers)            # when set
 *
 * ssl_version is deprecated and ignored by Gunicorn 26 (a warning at
 * validation, src/config/validate.c); so it is here.
 */
#include "tls_internal.h"

#include "../os/os.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <sys/uio.h>
#include <stdlib.h>
#include <unistd.h>

struct cg_tls_ctx {
    SSL_CTX *ssl_ctx; /* one reference, ours; each SSL holds its own */
    bool suppress_ragged_eofs;
    const struct cg__alpn *alpn; /* NULL: no ALPN */
    int keylog_fd;               /* -1: no key log */
    void (*release)(void *arg);  /* the servername callback's argument */
    void *release_arg;
    bool ktls;                   /* SSL_OP_ENABLE_KTLS asked for */
    const char *ktls_why;        /* why (not), for the log */
};

/* ALPN protocol lists (wire format: length-prefixed names) in the orders
 * http_protocols can ask for. Constant, so that the select callback's
 * argument outlives every SSL_CTX that a connection still holds after a
 * HUP freed our reference. */
typedef struct cg__alpn {
    unsigned char wire[16];
    unsigned int len;
    bool h1; /* http/1.1 is among them */
} cg__alpn_t;
static const cg__alpn_t cg__alpn_h2_h1 = {"\x02h2\x08http/1.1", 12, true};
static const cg__alpn_t cg__alpn_h1_h2 = {"\x08http/1.1\x02h2", 12, true};
static const cg__alpn_t cg__alpn_h2 = {"\x02h2", 3, false};

SSL_CTX *cg_tls__ssl_ctx(const cg_tls_ctx_t *t, bool *suppress_ragged_eofs, int *keylog_fd)
{
    *suppress_ragged_eofs = t->suppress_ragged_eofs;
    *keylog_fd = t->keylog_fd;
    return t->ssl_ctx;
}

bool cg_tls_configured(const cg_config_t *cfg)
{
    return (cfg->certfile != NULL && cfg->certfile[0] != '\0') ||
           (cfg->keyfile != NULL && cfg->keyfile[0] != '\0');
}

int cg_tls_check_files(const cg_config_t *cfg, char *err, size_t errlen)
{
    /* Gunicorn checks existence only (os.path.exists), certfile first */
    if (cfg->certfile != NULL && cfg->certfile[0] != '\0' && access(cfg->certfile, F_OK) != 0) {
        snprintf(err, errlen, "certfile \"%s\" does not exist", cfg->certfile);
        return -ENOENT;
    }
    if (cfg->keyfile != NULL && cfg->keyfile[0] != '\0' && access(cfg->keyfile, F_OK) != 0) {
        snprintf(err, errlen, "keyfile \"%s\" does not exist", cfg->keyfile);
        return -ENOENT;
    }
    return 0;
}

void cg_tls_error_text(unsigned long e, long verify_result, char *buf, size_t cap)
{
    if (cap == 0)
        return;
    const char *reason = ERR_reason_error_string(e);
    const char *lib = ERR_lib_error_string(e);
    if (reason == NULL) {
        snprintf(buf, cap, "[SSL] unknown error (%lu)", e);
        return;
    }
    /* Python prints the library's short name and the reason's mnemonic,
     * which OpenSSL's reason strings spell in lower case with spaces
     * ("key values mismatch" -> KEY_VALUES_MISMATCH). */
    char libname[16] = "SSL", mnemo[96];
    size_t i = 0;
    for (; lib != NULL && lib[i] != '\0' && lib[i] != ' ' && i < sizeof(libname) - 1; i++)
        libname[i] = (char)(lib[i] >= 'a' && lib[i] <= 'z' ? lib[i] - 32 : lib[i]);
    if (i > 0)
        libname[i] = '\0';
    for (i = 0; reason[i] != '\0' && i < sizeof(mnemo) - 1; i++) {
        char ch = reason[i];
        mnemo[i] = ch == ' ' ? '_' : (char)(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
    }
    mnemo[i] = '\0';
    if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
        ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && verify_result != X509_V_OK)
        snprintf(buf, cap, "[%s: %s] %s: %s", libname, mnemo, reason,
                 X509_verify_cert_error_string(verify_result));
    else
        snprintf(buf, cap, "[%s: %s] %s", libname, mnemo, reason);
}

/* The first error OpenSSL queued (the cause), as Python reports it. */
static void cg__ctx_error(const char *what, char *err, size_t errlen)
{
    unsigned long e = ERR_peek_error();
    char text[256];
    if (e == 0)
        snprintf(text, sizeof(text), "[SSL] %s failed", what);
    else
        cg_tls_error_text(e, X509_V_OK, text, sizeof(text));
    snprintf(err, errlen, "%s", text);
    ERR_clear_error();
}

/* An encrypted key: Python would prompt on the terminal; a server started
 * by a service manager has none, so refuse instead of hanging. */
static int cg__no_password_cb(char *buf, int size, int rwflag, void *u)
{
    return 0;
}

/*
 * ALPN (RFC 7301): the first of our protocols (http_protocols' order of
 * preference) that the client offers, as Python's set_alpn_protocols()
 * selects. No match: the handshake goes on without ALPN when HTTP/1.1 is
 * served (a client that offers neither is taken as HTTP/1.1), else it
 * fails with no_application_protocol.
 */
static int cg__alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                              const unsigned char *in, unsigned int inlen, void *arg)
{
    const cg__alpn_t *a = arg;
    unsigned char *sel = NULL;
    unsigned char sel_len = 0;
    if (SSL_select_next_proto(&sel, &sel_len, a->wire, a->len, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        *outlen = sel_len;
        return SSL_TLSEXT_ERR_OK;
    }
    return a->h1 ? SSL_TLSEXT_ERR_NOACK : SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* The ALPN list from http_protocols, when it names h2 (NULL: none). */
static const cg__alpn_t *cg__alpn_of(const cg_config_t *cfg)
{
    int h1 = -1, h2 = -1;
    for (size_t i = 0; i < cfg->http_protocols.n; i++) {
        if (strcmp(cfg->http_protocols.v[i], "h2") == 0)
            h2 = (int)i;
        else if (strcmp(cfg->http_protocols.v[i], "h1") == 0)
            h1 = (int)i;
    }
    /* only the gthread worker speaks HTTP/2: the sync worker must not let
     * a client choose it (Gunicorn's sync worker warns and serves
     * HTTP/1.1, but its context still offers h2) */
    if (h2 < 0 || cg_config_worker_kind_of(cfg->worker_class) != CG_WORKER_GTHREAD)
        return NULL;
    return h1 < 0 ? &cg__alpn_h2 : h1 < h2 ? &cg__alpn_h1_h2 : &cg__alpn_h2_h1;
}

static void cg__alpn_set(SSL_CTX *ctx, const cg__alpn_t *a)
{
    /* the callback only reads *a (NULL: no ALPN) */
    SSL_CTX_set_alpn_select_cb(ctx, a != NULL ? cg__alpn_select_cb : NULL, (void *)a);
}

/*
 * Python's keylog_filename: each secret as an NSS key log line
 * (CLIENT_RANDOM ..., CLIENT_HANDSHAKE_TRAFFIC_SECRET ...), appended with
 * one write so that the workers' lines do not interleave (O_APPEND). The
 * descriptor is the connection's (transport.c, the SSL's app data), which
 * has it from the context it was accepted with.
 */
static void cg__keylog_cb(const SSL *ssl, const char *line)
{
    int fd = cg_tls__keylog_fd(ssl);
    if (fd < 0)
        return;
    struct iovec iov[2] = {{(void *)line, strlen(line)}, {"\n", 1}};
    /* best effort, as Python's: a full disk loses key log lines, never a
     * connection */
    ssize_t n = writev(fd, iov, 2);
    (void)n;
}

/*
 * kTLS for sendfile responses: asked of OpenSSL only when it can work (a
 * kernel without the tls module would cost every connection a failed
 * setsockopt), and only with sendfile on (the only writes it saves a copy
 * for). OpenSSL then switches each connection after its handshake when the
 * negotiated cipher is one the kernel does (transport.c checks per
 * connection).
 */
static void cg__ktls_init(cg_tls_ctx_t *t, const cg_config_t *cfg)
{
#if defined(SSL_OP_ENABLE_KTLS) && !defined(OPENSSL_NO_KTLS)
    int r;
    if (!cfg->sendfile) {
        t->ktls_why = "off: sendfile is off";
    } else if ((r = cg_os_ktls_probe()) < 0) {
        t->ktls_why = r == -ENOENT ? "off: the kernel has no tls module (modprobe tls)"
                                   : "off: the kernel does not offer it";
    } else {
        SSL_CTX_set_options(t->ssl_ctx, SSL_OP_ENABLE_KTLS);
        t->ktls = true;
        t->ktls_why = "on: file bodies are sent with SSL_sendfile where the negotiated cipher "
                      "allows";
    }
#else
    (void)cfg;
    t->ktls_why = "off: OpenSSL was built without kTLS";
#endif
}

bool cg_tls_ctx_ktls(const cg_tls_ctx_t *t, const char **why)
{
    *why = t->ktls_why;
    return t->ktls;
}

/* What a context served by the transport needs, whoever made it. */
static void cg__prepare(SSL_CTX *ctx, const cg__alpn_t *alpn, bool keylog)
{
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    /* Python's callbacks point at its SSLContext object, which may be
     * gone, and expect a Python SSLSocket behind each SSL: none may run.
     * cgunicorn._tls.hook_context refused a context with a _msg_callback;
     * sni_callback and keylog_filename are honoured by ours. */
    SSL_CTX_set_tlsext_servername_callback(ctx, NULL);
    SSL_CTX_set_keylog_callback(ctx, keylog ? cg__keylog_cb : NULL);
    SSL_CTX_set_msg_callback(ctx, NULL);
    SSL_CTX_set_psk_server_callback(ctx, NULL);
    SSL_CTX_set_default_passwd_cb(ctx, cg__no_password_cb);
    cg__alpn_set(ctx, alpn);
}

int cg_tls_ctx_new(const cg_config_t *cfg, cg_tls_ctx_t **out, char *err, size_t errlen)
{
    *out = NULL;
    ERR_clear_error();
    if (cfg->certfile == NULL || cfg->certfile[0] == '\0') {
        /* Python's load_cert_chain(certfile=None) */
        snprintf(err, errlen, "certfile should be a valid filesystem path");
        return -EINVAL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        cg__ctx_error("SSL_CTX_new", err, errlen);
        return -ENOMEM;
    }
    /* Python's server context: no compression, the server's cipher order,
     * no renegotiation (a client-driven renegotiation is a DoS lever and
     * would turn a read into a write mid-request). Session tickets stay on
     * (OpenSSL's default); the session id context lets a session with a
     * verified client certificate be resumed at all. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_RENEGOTIATION);
    /* Partial writes: SSL_write returns after each record, as write(2)
     * does after a short write; moving buffer: a retried write may come
     * from another address with the same bytes (the transport's staging). */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(ctx, cg__no_password_cb);
    static const unsigned char sid_ctx[] = "cgunicorn";
    const char *keyfile =
        cfg->keyfile != NULL && cfg->keyfile[0] != '\0' ? cfg->keyfile : cfg->certfile;
    int mode = cfg->cert_reqs == 2   ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
               : cfg->cert_reqs == 1 ? SSL_VERIFY_PEER
                                     : SSL_VERIFY_NONE;
    const char *what = NULL;
    if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1)
        what = "SSL_CTX_set_session_id_context";
    else if (cfg->ca_certs != NULL && cfg->ca_certs[0] != '\0'
                 ? SSL_CTX_load_verify_locations(ctx, cfg->ca_certs, NULL) != 1
                 : SSL_CTX_set_default_verify_paths(ctx) != 1)
        what = "loading ca_certs";
    else if (SSL_CTX_use_certificate_chain_file(ctx, cfg->certfile) != 1)
        what = "loading certfile";
    else if (SSL_CTX_use_PrivateKey_file(ctx, keyfile, SSL_FILETYPE_PEM) != 1)
        what = "loading keyfile";
    else if (SSL_CTX_check_private_key(ctx) != 1)
        what = "checking the key";
    else if (cfg->ciphers != NULL && cfg->ciphers[0] != '\0' &&
             SSL_CTX_set_cipher_list(ctx, cfg->ciphers) != 1)
        what = "ciphers";
    if (what != NULL) {
        if (strcmp(what, "ciphers") == 0) {
            snprintf(err, errlen, "No cipher can be selected."); /* Python's text */
            ERR_clear_error();
        } else {
            cg__ctx_error(what, err, errlen);
        }
        SSL_CTX_free(ctx);
        return -EINVAL;
    }
    SSL_CTX_set_verify(ctx, mode, NULL);
    cg_tls_ctx_t *t = cg_xcalloc(1, sizeof(*t));
    t->ssl_ctx = ctx;
    t->suppress_ragged_eofs = cfg->suppress_ragged_eofs;
    t->alpn = cg__alpn_of(cfg);
    t->keylog_fd = -1;
    cg__alpn_set(ctx, t->alpn);
    cg__ktls_init(t, cfg);
    *out = t;
    return 0;
}

int cg_tls_ctx_adopt(const cg_config_t *cfg, void *ssl_ctx, const cg_tls_adopt_t *o,
                     cg_tls_ctx_t **out, char *err, size_t errlen)
{
    SSL_CTX *ctx = ssl_ctx;
    *out = NULL;
    ERR_clear_error();
    if (SSL_CTX_get0_certificate(ctx) == NULL) {
        /* Python would fail every handshake ("no shared cipher"): refuse
         * at start as for a bad certfile */
        snprintf(err, errlen, "ssl_context returned a context without a certificate "
                              "(load_cert_chain was not called)");
        SSL_CTX_free(ctx);
        if (o != NULL && o->keylog_fd >= 0)
            close(o->keylog_fd);
        if (o != NULL && o->release != NULL)
            o->release(o->servername_arg);
        return -EINVAL;
    }
    cg_tls_ctx_t *t = cg_xcalloc(1, sizeof(*t));
    t->ssl_ctx = ctx;
    t->suppress_ragged_eofs = cfg->suppress_ragged_eofs;
    t->alpn = cg__alpn_of(cfg);
    t->keylog_fd = o != NULL ? o->keylog_fd : -1;
    cg__prepare(ctx, t->alpn, t->keylog_fd >= 0);
    if (o != NULL && o->servername != NULL) {
        SSL_CTX_set_tlsext_servername_callback(ctx, o->servername);
        SSL_CTX_set_tlsext_servername_arg(ctx, o->servername_arg);
    }
    if (o != NULL) {
        t->release = o->release;
        t->release_arg = o->servername_arg;
    }
    cg__ktls_init(t, cfg);
    *out = t;
    return 0;
}

int cg_tls_switch_ctx(struct ssl_st *ssl, void *ssl_ctx, const cg_tls_ctx_t *served, char *err,
                      size_t errlen)
{
    SSL_CTX *ctx = ssl_ctx;
    if (SSL_CTX_get0_certificate(ctx) == NULL) {
        snprintf(err, errlen, "the SSLContext given to the connection has no certificate");
        return -EINVAL;
    }
    cg__prepare(ctx, served->alpn, served->keylog_fd >= 0);
#if defined(SSL_OP_ENABLE_KTLS) && !defined(OPENSSL_NO_KTLS)
    if (served->ktls)
        SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
#endif
    ERR_clear_error();
    if (SSL_set_SSL_CTX(ssl, ctx) == NULL) {
        cg__ctx_error("SSL_set_SSL_CTX", err, errlen);
        return -EINVAL;
    }
    return 0;
}

void cg_tls_ctx_free(cg_tls_ctx_t *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ssl_ctx);
    if (t->keylog_fd >= 0)
        close(t->keylog_fd);
    if (t->release != NULL)
        t->release(t->release_arg);
    free(t);
}
