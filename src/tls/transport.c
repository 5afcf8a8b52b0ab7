/*
 * transport.c - a cg_conn_t over TLS: the ops of conn.h on OpenSSL, on a
 * non-blocking socket. Like the TCP ops, none waits: OpenSSL's
 * WANT_READ/WANT_WRITE become CG_EAGAIN, and wait() polls in the direction
 * OpenSSL asked for (a read may need to write, a write to read), so conn.c
 * and the gthread loop wait the same way for every transport.
 *
 * Writes. OpenSSL encrypts a record as soon as SSL_write is called and,
 * when the socket takes none of it, wants the same call again (at least as
 * many bytes, the same ones). conn.c's callers retry with the same bytes,
 * but the gthread write-behind spool may retry with a shorter segment. So
 * the transport keeps what it handed to OpenSSL (at most one record) and
 * retries that itself; the caller's next bytes must begin with those (they
 * do: everyone re-offers what was not taken, from its first byte), and if
 * the record is longer than what the caller offers, the difference is
 * reported as taken on the next calls ("credit").
 */
#include "tls_internal.h"

#include "../workers/spool.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The largest TLS record's plaintext: what one SSL_write encrypts at most
 * in partial-write mode. */
#define CG_TLS_RECORD 16384

typedef struct cg_tls_conn {
    SSL *ssl; /* first: cg_tls__keylog_fd tells ours by it */
    bool suppress_ragged_eofs;
    bool failed;   /* a fatal error: no close_notify, no more I/O */
    int want;      /* CG_CONN_WANT_* of the last CG_EAGAIN; 0 after progress */
    int keylog_fd; /* the context's key log (borrowed), -1: none */
    char *stage;   /* CG_TLS_RECORD bytes, allocated on the first retry */
    size_t staged; /* bytes of stage OpenSSL must be given again */
    size_t credit; /* bytes written beyond what the caller had offered */
    char err[256]; /* the last failure, as Python's ssl.SSLError text */
} cg_tls_conn_t;

/*
 * An SSL_* call returned failure: what it means for the caller. `op` is
 * the call's name for the error text, handshake whether it was the
 * handshake (where any EOF is Python's SSLEOFError), sys_errno the errno
 * right after the call.
 */
static ssize_t cg__fail(cg_tls_conn_t *t, bool handshake, int sys_errno)
{
    int e = SSL_get_error(t->ssl, 0);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        t->want = CG_CONN_WANT_READ;
        return CG_EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        t->want = CG_CONN_WANT_WRITE;
        return CG_EAGAIN;
    case SSL_ERROR_ZERO_RETURN: /* close_notify: a clean end */
        return handshake ? CG_CONN_ETLSEOF : 0;
    case SSL_ERROR_SYSCALL:
        t->failed = true;
        ERR_clear_error();
        if (sys_errno != 0)
            return -sys_errno;
        break; /* EOF without close_notify */
    case SSL_ERROR_SSL: {
        unsigned long ev = ERR_peek_error();
        t->failed = true;
        if (ERR_GET_LIB(ev) == ERR_LIB_SSL &&
            ERR_GET_REASON(ev) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ERR_clear_error();
            break;
        }
        cg_tls_error_text(ev, SSL_get_verify_result(t->ssl), t->err, sizeof(t->err));
        ERR_clear_error();
        return -EPROTO;
    }
    default:
        t->failed = true;
        snprintf(t->err, sizeof(t->err), "[SSL] unexpected SSL_get_error() %d", e);
        ERR_clear_error();
        return -EPROTO;
    }
    /* A ragged EOF: the end of the stream when suppress_ragged_eofs says so
     * (Python's SSLSocket.recv then returns b""), an error otherwise. */
    snprintf(t->err, sizeof(t->err), "EOF occurred in violation of protocol");
    return !handshake && t->suppress_ragged_eofs ? 0 : CG_CONN_ETLSEOF;
}

static ssize_t cg__tls_recv(cg_conn_t *c, char *dst, size_t cap)
{
    cg_tls_conn_t *t = c->transport;
    size_t n = 0;
    if (t->failed)
        return -EPIPE;
    ERR_clear_error();
    errno = 0;
    if (SSL_read_ex(t->ssl, dst, cap, &n) == 1) {
        t->want = 0;
        return (ssize_t)n;
    }
    return cg__fail(t, false, errno);
}

/* Hand OpenSSL p[0..len) (or, after a CG_EAGAIN, the staged record again);
 * `offered` is how many bytes the caller offered. */
static ssize_t cg__tls_write(cg_tls_conn_t *t, const char *p, size_t len, size_t offered)
{
    if (t->credit > 0) {
        size_t n = t->credit < offered ? t->credit : offered;
        t->credit -= n;
        return (ssize_t)n;
    }
    if (t->failed)
        return -EPIPE;
    if (offered == 0)
        return 0;
    if (t->staged > 0) {
        p = t->stage;
        len = t->staged;
    }
    size_t w = 0;
    ERR_clear_error();
    errno = 0;
    if (SSL_write_ex(t->ssl, p, len, &w) == 1) {
        t->staged = 0;
        t->want = 0;
        size_t n = w < offered ? w : offered;
        t->credit = w - n;
        return (ssize_t)n;
    }
    ssize_t r = cg__fail(t, false, errno);
    if (r == CG_EAGAIN && t->staged == 0) {
        /* OpenSSL made one record of (at most) the first CG_TLS_RECORD
         * bytes and wants them again: keep them, the caller's buffer may
         * not be there next time. */
        if (t->stage == NULL)
            t->stage = cg_xmalloc(CG_TLS_RECORD);
        t->staged = len < CG_TLS_RECORD ? len : CG_TLS_RECORD;
        memcpy(t->stage, p, t->staged);
    }
    if (r == 0) /* close_notify from the peer: it will read no more */
        return -EPIPE;
    return r;
}

static ssize_t cg__tls_writev(cg_conn_t *c, const struct iovec *iov, int iovcnt)
{
    cg_tls_conn_t *t = c->transport;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (t->credit > 0 || t->staged > 0 || iovcnt == 1 || iov[0].iov_len >= CG_TLS_RECORD)
        return cg__tls_write(t, iovcnt > 0 ? iov[0].iov_base : NULL,
                             iovcnt > 0 ? iov[0].iov_len : 0, total);
    /* A response head and the start of its body: one record, not two (a
     * record costs a header, a MAC and, most of the time, a segment). */
    char tmp[CG_TLS_RECORD];
    size_t len = 0;
    for (int i = 0; i < iovcnt && len < sizeof(tmp); i++) {
        size_t k = iov[i].iov_len < sizeof(tmp) - len ? iov[i].iov_len : sizeof(tmp) - len;
        memcpy(tmp + len, iov[i].iov_base, k);
        len += k;
    }
    return cg__tls_write(t, tmp, len, total);
}

/* Whether the kernel encrypts what this connection sends (kTLS). */
static bool cg__ktls_send(const cg_tls_conn_t *t)
{
#if defined(SSL_OP_ENABLE_KTLS) && !defined(OPENSSL_NO_KTLS)
    return !t->failed && BIO_get_ktls_send(SSL_get_wbio(t->ssl));
#else
    (void)t;
    return false;
#endif
}

/*
 * With kTLS, the kernel encrypts: the file goes out with SSL_sendfile, no
 * copy through user space (nothing staged: each call is sendfile(2) from
 * the offset given). Without, the file goes through OpenSSL a record at a
 * time.
 */
static ssize_t cg__tls_sendfile(cg_conn_t *c, int in_fd, off_t *offset, size_t count)
{
    cg_tls_conn_t *t = c->transport;
    char buf[CG_TLS_RECORD];
    size_t len = 0;
    if (count == 0)
        return 0;
#if defined(SSL_OP_ENABLE_KTLS) && !defined(OPENSSL_NO_KTLS)
    if (t->credit == 0 && t->staged == 0 && cg__ktls_send(t)) {
        ERR_clear_error();
        errno = 0;
        ossl_ssize_t n = SSL_sendfile(t->ssl, in_fd, *offset, count, 0);
        if (n >= 0) {
            t->want = 0;
            *offset += n;
            return (ssize_t)n;
        }
        return cg__fail(t, false, errno);
    }
#endif
    if (t->credit == 0 && t->staged == 0) {
        /* a retry re-sends the staged record: the file's bytes are those */
        ssize_t r = pread(in_fd, buf, count < sizeof(buf) ? count : sizeof(buf), *offset);
        if (r < 0)
            return -errno;
        if (r == 0)
            return 0;
        len = (size_t)r;
    }
    ssize_t n = cg__tls_write(t, buf, len, len > 0 ? len : count);
    if (n > 0)
        *offset += n;
    return n;
}

int cg_tls_wait_direction(const cg_conn_t *c, int want)
{
    const cg_tls_conn_t *t = c->transport;
    return t->want != 0 ? t->want : want;
}

static int cg__tls_wait(cg_conn_t *c, int want, int timeout_ms)
{
    cg_tls_conn_t *t = c->transport;
    /* what OpenSSL is waiting for, whatever the caller does */
    return cg_conn_poll_fd(c->fd, t->want != 0 ? t->want : want, timeout_ms);
}

static int cg__tls_handshake(cg_conn_t *c)
{
    cg_tls_conn_t *t = c->transport;
    if (t->failed)
        return -EPIPE;
    ERR_clear_error();
    errno = 0;
    if (SSL_do_handshake(t->ssl) == 1) {
        t->want = 0;
        return 0;
    }
    ssize_t r = cg__fail(t, true, errno);
    return r == CG_EAGAIN ? t->want : (int)r;
}

/* No more writes: our close_notify (one attempt, never waiting: a peer
 * that does not take it just gets the FIN), then the FIN itself. Gunicorn
 * (Python's SSLSocket.shutdown) sends only the FIN; the alert tells the
 * client the response was not truncated. */
static int cg__tls_shutdown(cg_conn_t *c)
{
    cg_tls_conn_t *t = c->transport;
    if (!t->failed && SSL_is_init_finished(t->ssl)) {
        ERR_clear_error();
        if (SSL_shutdown(t->ssl) < 0)
            ERR_clear_error(); /* best effort: the FIN below is what matters */
    }
    return shutdown(c->fd, SHUT_WR) == 0 ? 0 : -errno;
}

static void cg__tls_close(cg_conn_t *c)
{
    cg_tls_conn_t *t = c->transport;
    if (t != NULL) {
        SSL_free(t->ssl);
        free(t->stage);
        free(t);
        c->transport = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static size_t cg__tls_pending(cg_conn_t *c)
{
    cg_tls_conn_t *t = c->transport;
    int n = t->failed ? 0 : SSL_pending(t->ssl);
    return n > 0 ? (size_t)n : 0;
}

static const char *cg__tls_error(const cg_conn_t *c)
{
    const cg_tls_conn_t *t = c->transport;
    return t != NULL && t->err[0] != '\0' ? t->err : NULL;
}

const cg_conn_ops_t cg_tls_ops = {
    .name = "tls",
    .recv = cg__tls_recv,
    .writev = cg__tls_writev,
    .sendfile = cg__tls_sendfile,
    .wait = cg__tls_wait,
    .shutdown = cg__tls_shutdown,
    .close = cg__tls_close,
    .handshake = cg__tls_handshake,
    .pending = cg__tls_pending,
    .error = cg__tls_error,
};

int cg_tls_attach(cg_conn_t *c, cg_tls_ctx_t *ctx)
{
    bool suppress;
    int keylog_fd;
    SSL_CTX *sctx = cg_tls__ssl_ctx(ctx, &suppress, &keylog_fd);
    if (!c->nonblocking) {
        int fl = fcntl(c->fd, F_GETFL);
        if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
            return -errno;
        c->nonblocking = true;
    }
    ERR_clear_error();
    SSL *ssl = SSL_new(sctx);
    if (ssl == NULL) {
        ERR_clear_error();
        return -ENOMEM;
    }
    if (SSL_set_fd(ssl, c->fd) != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        return -ENOMEM;
    }
    SSL_set_accept_state(ssl);
    cg_tls_conn_t *t = cg_xcalloc(1, sizeof(*t));
    t->ssl = ssl;
    t->suppress_ragged_eofs = suppress;
    t->keylog_fd = keylog_fd;
    /* the SSL is ours alone (no Python SSLSocket behind it): its app data
     * leads OpenSSL's callbacks (key log) back to the connection */
    SSL_set_app_data(ssl, t);
    c->transport = t;
    c->ops = &cg_tls_ops;
    c->tls = true;
    return 0;
}

bool cg_tls_ktls_send(const cg_conn_t *c)
{
    const cg_conn_ops_t *ops = c->ops;
    void *transport = c->transport;
    if (ops->recv != cg_tls_ops.recv && !cg_spool_inner(c, &ops, &transport))
        return false;
    return ops->recv == cg_tls_ops.recv && cg__ktls_send(transport);
}

int cg_tls__keylog_fd(const SSL *ssl)
{
    const cg_tls_conn_t *t = SSL_get_app_data(ssl);
    /* an SSL of a Python SSLSocket on the same SSL_CTX (an app reusing the
     * hook's ssl.SSLContext) carries Python's object there, whose first
     * word is no SSL pointer: not ours, no key log */
    return t != NULL && t->ssl == ssl ? t->keylog_fd : -1;
}

bool cg_tls_alpn_h2(const cg_conn_t *c)
{
    if (c->ops != &cg_tls_ops)
        return false;
    const cg_tls_conn_t *t = c->transport;
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    return n == 2 && memcmp(p, "h2", 2) == 0;
}

int cg_tls_peer(const cg_conn_t *c, cg_tls_peer_t *out)
{
    memset(out, 0, sizeof(*out));
    const cg_conn_ops_t *ops = c->ops;
    void *transport = c->transport;
    /* gthread runs the app with its write-behind spool over the transport */
    if (ops->recv != cg_tls_ops.recv && !cg_spool_inner(c, &ops, &transport))
        return -EINVAL;
    /* by its recv: the gevent worker replaces the wait and close ops */
    if (ops->recv != cg_tls_ops.recv)
        return -EINVAL;
    const cg_tls_conn_t *t = transport;
    /* the verify mode of the connection's context, as Python's
     * getpeercert() reads it to tell "asked and checked" from "not asked" */
    out->asked = (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) != 0;
    X509 *x = SSL_get0_peer_certificate(t->ssl);
    if (x != NULL) {
        int n = i2d_X509(x, NULL);
        unsigned char *p = n > 0 ? malloc((size_t)n) : NULL;
        if (p == NULL) {
            ERR_clear_error();
            return -ENOMEM;
        }
        out->der = p;
        out->der_len = (size_t)i2d_X509(x, &p); /* advances p */
    }
    const SSL_CIPHER *ci = SSL_get_current_cipher(t->ssl);
    if (ci != NULL) {
        out->cipher = SSL_CIPHER_get_name(ci);
        out->cipher_protocol = SSL_CIPHER_get_version(ci);
        out->secret_bits = SSL_CIPHER_get_bits(ci, NULL);
    }
    out->version = SSL_get_version(t->ssl);
    SSL_get0_alpn_selected(t->ssl, &out->alpn, &out->alpn_len);
    if (out->alpn_len == 0)
        out->alpn = NULL;
    return 0;
}

void cg_tls_peer_free(cg_tls_peer_t *p)
{
    free(p->der);
    p->der = NULL;
}
