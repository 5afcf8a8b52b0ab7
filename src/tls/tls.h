/*
 * tls.h - TLS on the listeners (Gunicorn's keyfile/certfile settings), plain
 * C over OpenSSL 3.
 *
 * Two pieces:
 *  - a server context built from the settings as Gunicorn's default
 *    ssl_context factory builds its ssl.SSLContext
 *    (ssl.create_default_context(Purpose.CLIENT_AUTH, cafile=ca_certs),
 *    load_cert_chain(certfile, keyfile), verify_mode = cert_reqs,
 *    set_ciphers(ciphers)). The master builds it at start and again on HUP;
 *    workers inherit it across fork, so every worker shares one set of
 *    session-ticket keys and a HUP's new generation gets the new
 *    certificate. OpenSSL counts references to the context, so a live
 *    connection keeps the one it started with.
 *  - a transport for a cg_conn_t (cg_tls_ops): the ops table of conn.h over
 *    SSL_read_ex/SSL_write_ex on a non-blocking socket. OpenSSL's
 *    WANT_READ/WANT_WRITE become CG_EAGAIN, and the connection's wait op
 *    polls in the direction OpenSSL asked for, so conn.c's bounded waits
 *    work unchanged.
 *
 * No global state besides OpenSSL's own. Errors come back as negative codes
 * (see CG_CONN_ETLSEOF and -EPROTO below) with text for the logs.
 */
#ifndef CG_TLS_H
#define CG_TLS_H

#include "../config/config.h"
#include "../workers/conn.h"

typedef struct cg_tls_ctx cg_tls_ctx_t;
struct ssl_st; /* OpenSSL's SSL */

/* Gunicorn's is_ssl: certfile or keyfile is set. */
bool cg_tls_configured(const cg_config_t *cfg);

/*
 * Gunicorn's start-up check (sock.create_sockets): the files must exist.
 * Returns 0, or -ENOENT with Gunicorn's ValueError text in err
 * ('certfile "/x.pem" does not exist').
 */
int cg_tls_check_files(const cg_config_t *cfg, char *err, size_t errlen);

/*
 * Build the server context from the settings: certificate chain from
 * certfile, key from keyfile (else from certfile), client verification per
 * cert_reqs (0 none, 1 optional, 2 required) against ca_certs (else the
 * system's default CA paths, as Python's load_default_certs()), ciphers
 * (TLS 1.2 and below, as ssl.SSLContext.set_ciphers), session tickets on.
 * Returns 0 and *out (free with cg_tls_ctx_free), or -EINVAL with Python's
 * ssl.SSLError text in err ("[SSL: KEY_VALUES_MISMATCH] key values
 * mismatch", "No cipher can be selected.", ...).
 */
int cg_tls_ctx_new(const cg_config_t *cfg, cg_tls_ctx_t **out, char *err, size_t errlen);
/*
 * What the hook's ssl.SSLContext asked for beyond OpenSSL's own settings
 * (src/python/tlshook.c honours them):
 *  - keylog_fd: its keylog_filename, open for appending (taken over,
 *    closed with the context; -1: none): every connection's secrets as
 *    NSS key log lines, as Python's keylog writes them;
 *  - servername: its sni_callback's stand-in, installed as OpenSSL's
 *    servername callback with servername_arg (OpenSSL's return values and
 *    alert); release(servername_arg) when the context is freed.
 */
typedef int (*cg_tls_servername_fn)(struct ssl_st *ssl, int *alert, void *arg);
typedef struct {
    int keylog_fd;
    cg_tls_servername_fn servername;
    void *servername_arg;
    void (*release)(void *arg);
} cg_tls_adopt_t;

/*
 * The context of a configuration's ssl_context hook: ssl_ctx is an OpenSSL
 * SSL_CTX (one reference, taken over, freed on failure too) that the hook's
 * ssl.SSLContext holds (src/python/tlshook.c). It is served as it is, with
 * what the transport needs added (partial writes, no renegotiation) and
 * Python's callbacks replaced by ours per `o` (NULL: none); ALPN follows
 * http_protocols. Returns 0 and *out, or -EINVAL with the reason in err
 * (no certificate loaded); o's keylog_fd and release are then applied
 * (closed, called) too.
 */
int cg_tls_ctx_adopt(const cg_config_t *cfg, void *ssl_ctx, const cg_tls_adopt_t *o,
                     cg_tls_ctx_t **out, char *err, size_t errlen);
/*
 * From a servername callback: switch the handshake of `ssl` to ssl_ctx (a
 * borrowed SSL_CTX, as Python's SSLSocket.context setter does with
 * SSL_set_SSL_CTX), after making it servable as cg_tls_ctx_adopt makes
 * `served`'s: the transport's modes, no renegotiation, Python's callbacks
 * removed, served's ALPN and key log. 0, or -EINVAL with the reason in err.
 */
int cg_tls_switch_ctx(struct ssl_st *ssl, void *ssl_ctx, const cg_tls_ctx_t *served, char *err,
                      size_t errlen);
/*
 * Whether the context's connections may hand file bodies to the kernel
 * (kTLS, SSL_sendfile): asked for (SSL_OP_ENABLE_KTLS) when sendfile is on,
 * OpenSSL was built with kTLS and the kernel has its tls module. *why
 * says which (for the log); a connection still uses it only when OpenSSL
 * could turn it on for the cipher it negotiated, and falls back to
 * encrypting in user space otherwise.
 */
bool cg_tls_ctx_ktls(const cg_tls_ctx_t *t, const char **why);
/* Drop this reference (NULL is fine); connections keep their own. */
void cg_tls_ctx_free(cg_tls_ctx_t *t);

/*
 * Put an accepted connection (plain TCP attached by cg_conn_accepted) on
 * TLS: the socket becomes non-blocking (SSL must never block inside
 * OpenSSL; conn.c does the waiting), c->ops = &cg_tls_ops, c->tls = true.
 * No byte moves yet: run the handshake next (cg_conn_handshake() or the
 * handshake op). Returns 0 or -ENOMEM / -errno; on failure c is still a
 * plain connection the caller closes.
 */
int cg_tls_attach(cg_conn_t *c, cg_tls_ctx_t *t);

extern const cg_conn_ops_t cg_tls_ops;

/* For a transport that waits its own way over cg_tls_ops (the gevent
 * worker's hub): the direction to wait in when the caller asked for want,
 * which is the one OpenSSL asked for if it did. */
int cg_tls_wait_direction(const cg_conn_t *c, int want);

/* After the handshake: whether the kernel encrypts what this connection
 * sends (kTLS on: file bodies go out with SSL_sendfile). */
bool cg_tls_ktls_send(const cg_conn_t *c);

/* After the handshake: whether ALPN chose h2 (then the connection speaks
 * HTTP/2, src/h2/). False for a connection not on TLS. */
bool cg_tls_alpn_h2(const cg_conn_t *c);

/*
 * What ssl.SSLSocket's getpeercert(), cipher(), version() and
 * selected_alpn_protocol() return for a connection after its handshake
 * (the environ's gunicorn.socket, src/wsgi/environ.c). Strings are
 * OpenSSL's, valid while the connection lives; der is malloc'd.
 */
typedef struct {
    unsigned char *der;     /* the client's certificate, DER; NULL: none sent */
    size_t der_len;
    bool asked;             /* verify mode has VERIFY_PEER (cert_reqs 1 or 2) */
    const char *cipher;     /* NULL before a handshake */
    const char *cipher_protocol;
    int secret_bits;
    const char *version;    /* "TLSv1.3" */
    const unsigned char *alpn; /* NULL: none chosen */
    unsigned int alpn_len;
} cg_tls_peer_t;
/* 0, or -EINVAL for a connection not on TLS, -ENOMEM. */
int cg_tls_peer(const cg_conn_t *c, cg_tls_peer_t *out);
void cg_tls_peer_free(cg_tls_peer_t *p);

/*
 * Python's str() of an ssl.SSLError for OpenSSL error e (and the peer
 * certificate's verification result when it failed), without Python's
 * "(_ssl.c:NNNN)" suffix: "[SSL: HTTP_REQUEST] http request". Always
 * NUL-terminates.
 */
void cg_tls_error_text(unsigned long e, long verify_result, char *buf, size_t cap);

#endif
