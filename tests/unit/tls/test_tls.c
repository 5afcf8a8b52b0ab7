/* test_tls.c - the TLS context and transport (src/tls/) against an
 * in-process OpenSSL client over a socketpair: handshake, reads, writes
 * (gathered, retried after the socket filled, with a shorter second
 * offer), the file path, handshake failures and their texts, ragged EOFs,
 * and the context's start-up errors. One thread drives both ends, so every
 * socket is non-blocking and every step is explicit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "src/config/config.h"
#include "src/os/os.h"
#include "src/tls/tls.h"
#include "src/workers/conn.h"

typedef struct fx {
    char dir[64];
    char cert[96], key[96], key2[96];
    cg_config_t cfg;
    cg_tls_ctx_t *tls;
    SSL_CTX *cctx;
    SSL *client;
    int cfd;
    cg_conn_t conn;
} fx_t;

/* A self-signed P-256 certificate and key (and a second, unrelated key). */
static void make_cert(fx_t *f)
{
    EVP_PKEY *k = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256");
    assert_non_null(k);
    assert_non_null(k2);
    X509 *x = X509_new();
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, n);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    FILE *fp = fopen(f->cert, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_X509(fp, x), 1);
    fclose(fp);
    fp = fopen(f->key, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(fp);
    fp = fopen(f->key2, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_PrivateKey(fp, k2, NULL, NULL, 0, NULL, NULL), 1);
    fclose(fp);
    X509_free(x);
    EVP_PKEY_free(k);
    EVP_PKEY_free(k2);
}

static void set(fx_t *f, const char *name, const char *value)
{
    char err[256];
    assert_int_equal(cg_config_set_string(&f->cfg, name, value, CG_SRC_CLI, err, sizeof(err)), 0);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char err[256];
    snprintf(f->dir, sizeof(f->dir), "/tmp/cg-tls-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->cert, sizeof(f->cert), "%s/cert.pem", f->dir);
    snprintf(f->key, sizeof(f->key), "%s/key.pem", f->dir);
    snprintf(f->key2, sizeof(f->key2), "%s/key2.pem", f->dir);
    make_cert(f);
    assert_int_equal(cg_config_init(&f->cfg, err, sizeof(err)), 0);
    set(f, "certfile", f->cert);
    set(f, "keyfile", f->key);
    f->cfd = -1;
    f->conn.fd = -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->conn.ops != NULL && f->conn.fd >= 0)
        f->conn.ops->close(&f->conn);
    SSL_free(f->client);
    SSL_CTX_free(f->cctx);
    if (f->cfd >= 0)
        close(f->cfd);
    cg_tls_ctx_free(f->tls);
    cg_config_free(&f->cfg);
    unlink(f->cert);
    unlink(f->key);
    unlink(f->key2);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Server context, a socketpair, the server end attached to TLS, the client
 * end an OpenSSL client; sndbuf > 0 shrinks the server's send buffer. */
static void connect_pair(fx_t *f, int sndbuf)
{
    char err[256];
    int sv[2];
    assert_int_equal(cg_tls_ctx_new(&f->cfg, &f->tls, err, sizeof(err)), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    if (sndbuf > 0) {
        assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
        assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf)), 0);
    }
    cg_conn_attach_tcp(&f->conn, sv[0], true);
    assert_int_equal(cg_tls_attach(&f->conn, f->tls), 0);
    assert_true(f->conn.tls);
    f->cfd = sv[1];
    f->cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(f->cctx);
    SSL_CTX_set_verify(f->cctx, SSL_VERIFY_NONE, NULL);
    f->client = SSL_new(f->cctx);
    assert_non_null(f->client);
    assert_int_equal(SSL_set_fd(f->client, f->cfd), 1);
    SSL_set_connect_state(f->client);
}

/* Both handshakes to their end, taking turns. */
static void handshake(fx_t *f)
{
    bool sdone = false, cdone = false;
    for (int i = 0; i < 100 && !(sdone && cdone); i++) {
        if (!cdone) {
            int r = SSL_do_handshake(f->client);
            if (r == 1)
                cdone = true;
            else
                assert_true(SSL_get_error(f->client, r) == SSL_ERROR_WANT_READ ||
                            SSL_get_error(f->client, r) == SSL_ERROR_WANT_WRITE);
        }
        if (!sdone) {
            int r = f->conn.ops->handshake(&f->conn);
            if (r == 0)
                sdone = true;
            else
                assert_true(r == CG_CONN_WANT_READ || r == CG_CONN_WANT_WRITE);
        }
    }
    assert_true(sdone && cdone);
}

/* Everything the client can read now (it stops at the first WANT_READ). */
static size_t client_drain(fx_t *f, char *dst, size_t cap)
{
    size_t got = 0, n;
    while (got < cap && SSL_read_ex(f->client, dst + got, cap - got, &n) == 1)
        got += n;
    ERR_clear_error();
    return got;
}

static void test_roundtrip(void **state)
{
    fx_t *f = *state;
    connect_pair(f, 0);
    handshake(f);

    /* client -> server */
    size_t w;
    assert_int_equal(SSL_write_ex(f->client, "GET / HTTP/1.1\r\n\r\n", 18, &w), 1);
    char buf[64];
    ssize_t n = f->conn.ops->recv(&f->conn, buf, sizeof(buf));
    assert_int_equal(n, 18);
    assert_memory_equal(buf, "GET / HTTP/1.1\r\n\r\n", 18);
    assert_int_equal(f->conn.ops->recv(&f->conn, buf, sizeof(buf)), CG_EAGAIN);
    assert_int_equal(f->conn.ops->pending(&f->conn), 0);

    /* a record bigger than the read: the rest waits in the transport */
    char big[4000];
    memset(big, 'b', sizeof(big));
    assert_int_equal(SSL_write_ex(f->client, big, sizeof(big), &w), 1);
    assert_int_equal(f->conn.ops->recv(&f->conn, buf, 10), 10);
    assert_int_equal(f->conn.ops->pending(&f->conn), sizeof(big) - 10);
    char rest[4000];
    assert_int_equal(f->conn.ops->recv(&f->conn, rest, sizeof(rest)), sizeof(big) - 10);

    /* server -> client: a head and a body gathered into one record */
    struct iovec iov[2] = {{"HTTP/1.1 200 OK\r\n\r\n", 19}, {"hello", 5}};
    assert_int_equal(cg_conn_writev_all(&f->conn, iov, 2), 0);
    char out[64];
    assert_int_equal(client_drain(f, out, sizeof(out)), 24);
    assert_memory_equal(out, "HTTP/1.1 200 OK\r\n\r\nhello", 24);

    /* the file path: read from the file, written through OpenSSL */
    char path[128];
    snprintf(path, sizeof(path), "%s/file", f->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "0123456789", 10), 10);
    assert_int_equal(cg_conn_sendfile(&f->conn, fd, 2, 6), 0);
    assert_int_equal(client_drain(f, out, sizeof(out)), 6);
    assert_memory_equal(out, "234567", 6);
    close(fd);
    unlink(path);

    /* close_notify from the client: a clean end of the stream */
    assert_int_equal(SSL_shutdown(f->client), 0);
    assert_int_equal(f->conn.ops->recv(&f->conn, buf, sizeof(buf)), 0);
    assert_int_equal(f->conn.ops->shutdown(&f->conn), 0);
}

/* The socket fills: OpenSSL wants the same record again; the transport
 * keeps it, so a caller offering fewer bytes the next time (the gthread
 * spool's segments) still gets a consistent count, and the client
 * receives every byte once, in order. */
static void test_write_retry(void **state)
{
    fx_t *f = *state;
    connect_pair(f, 4096);
    handshake(f);

    enum { TOTAL = 1 << 20 };
    char *data = malloc(TOTAL), *got = malloc(TOTAL);
    for (size_t i = 0; i < TOTAL; i++)
        data[i] = (char)(i * 7 + i / 251);
    size_t sent = 0, recvd = 0;
    int eagains = 0, shorter = 0;
    while (recvd < TOTAL) {
        bool again = false;
        while (sent < TOTAL && !again) {
            size_t offer = TOTAL - sent;
            /* after a refusal, offer less than a record */
            if (eagains > shorter && offer > 1000) {
                offer = 1000;
                shorter++;
            }
            struct iovec iov = {data + sent, offer};
            ssize_t n = f->conn.ops->writev(&f->conn, &iov, 1);
            if (n == CG_EAGAIN) {
                eagains++;
                again = true;
                break;
            }
            assert_true(n > 0 && (size_t)n <= offer);
            sent += (size_t)n;
        }
        recvd += client_drain(f, got + recvd, TOTAL - recvd);
    }
    assert_true(eagains > 0);
    assert_true(shorter > 0);
    assert_int_equal(sent, TOTAL);
    assert_memory_equal(got, data, TOTAL);
    free(data);
    free(got);
}

/* Plain HTTP to a TLS port: Python's "[SSL: HTTP_REQUEST] http request". */
static void test_plain_http(void **state)
{
    fx_t *f = *state;
    connect_pair(f, 0);
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(f->cfd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    assert_int_equal(f->conn.ops->handshake(&f->conn), -EPROTO);
    assert_string_equal(f->conn.ops->error(&f->conn), "[SSL: HTTP_REQUEST] http request");
    /* and the connection is dead for good, without touching the socket */
    char buf[8];
    assert_int_equal(f->conn.ops->recv(&f->conn, buf, sizeof(buf)), -EPIPE);
}

/* Random bytes after a partial handshake: an error, never a crash. */
static void test_garbage_mid_handshake(void **state)
{
    fx_t *f = *state;
    connect_pair(f, 0);
    assert_int_equal(SSL_do_handshake(f->client), -1); /* ClientHello out */
    unsigned seed = 12345;
    for (int round = 0; round < 4; round++) {
        int r = f->conn.ops->handshake(&f->conn);
        if (r < 0)
            break;
        char junk[512];
        for (size_t i = 0; i < sizeof(junk); i++)
            junk[i] = (char)(rand_r(&seed) & 0xff);
        (void)write(f->cfd, junk, sizeof(junk));
    }
    char buf[8];
    ssize_t r = f->conn.ops->recv(&f->conn, buf, sizeof(buf));
    assert_true(r < 0 && r != CG_EAGAIN);
}

/* EOF during the handshake is Python's SSLEOFError ("ssl connection
 * closed"), whatever suppress_ragged_eofs says. */
static void test_eof_in_handshake(void **state)
{
    fx_t *f = *state;
    connect_pair(f, 0);
    assert_int_equal(write(f->cfd, "\x16\x03\x01", 3), 3);
    shutdown(f->cfd, SHUT_WR);
    assert_int_equal(f->conn.ops->handshake(&f->conn), CG_CONN_ETLSEOF);
}

/* A ragged EOF (no close_notify) after the handshake: end of stream with
 * suppress_ragged_eofs (the default), an error without. */
static void ragged(void **state, bool suppress)
{
    fx_t *f = *state;
    set(f, "suppress_ragged_eofs", suppress ? "true" : "false");
    connect_pair(f, 0);
    handshake(f);
    shutdown(f->cfd, SHUT_WR);
    char buf[8];
    assert_int_equal(f->conn.ops->recv(&f->conn, buf, sizeof(buf)), suppress ? 0 : CG_CONN_ETLSEOF);
}

static void test_ragged_suppressed(void **state)
{
    ragged(state, true);
}

static void test_ragged_reported(void **state)
{
    ragged(state, false);
}

/* Client certificates: required and not sent. */
static void test_client_cert_required(void **state)
{
    fx_t *f = *state;
    set(f, "cert_reqs", "2");
    set(f, "ca_certs", f->cert);
    connect_pair(f, 0);
    int r = 0;
    for (int i = 0; i < 20; i++) {
        (void)SSL_do_handshake(f->client);
        r = f->conn.ops->handshake(&f->conn);
        if (r < 0 || r == 0)
            break;
    }
    assert_int_equal(r, -EPROTO);
    assert_string_equal(f->conn.ops->error(&f->conn),
                        "[SSL: PEER_DID_NOT_RETURN_A_CERTIFICATE] peer did not return a certificate");
}

/* The context's start-up errors, with Gunicorn's / Python's texts. */
static void test_context_errors(void **state)
{
    fx_t *f = *state;
    char err[256];
    cg_tls_ctx_t *t = NULL;
    assert_true(cg_tls_configured(&f->cfg));
    assert_int_equal(cg_tls_check_files(&f->cfg, err, sizeof(err)), 0);

    set(f, "keyfile", "/nonexistent/key.pem");
    assert_int_equal(cg_tls_check_files(&f->cfg, err, sizeof(err)), -ENOENT);
    assert_string_equal(err, "keyfile \"/nonexistent/key.pem\" does not exist");
    set(f, "certfile", "/nonexistent/cert.pem");
    assert_int_equal(cg_tls_check_files(&f->cfg, err, sizeof(err)), -ENOENT);
    assert_string_equal(err, "certfile \"/nonexistent/cert.pem\" does not exist");

    /* a key that is not the certificate's */
    set(f, "certfile", f->cert);
    set(f, "keyfile", f->key2);
    assert_int_equal(cg_tls_ctx_new(&f->cfg, &t, err, sizeof(err)), -EINVAL);
    assert_null(t);
    assert_non_null(strstr(err, "KEY_VALUES_MISMATCH"));

    /* the key inside the certificate file: not there */
    set(f, "keyfile", "");
    assert_int_equal(cg_tls_ctx_new(&f->cfg, &t, err, sizeof(err)), -EINVAL);
    assert_null(t);

    set(f, "keyfile", f->key);
    set(f, "ciphers", "NO-SUCH-CIPHER");
    assert_int_equal(cg_tls_ctx_new(&f->cfg, &t, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "No cipher can be selected.");

    set(f, "ciphers", "ECDHE+AESGCM");
    assert_int_equal(cg_tls_ctx_new(&f->cfg, &t, err, sizeof(err)), 0);
    cg_tls_ctx_free(t);
}

/* kTLS is asked of OpenSSL exactly when sendfile is on and the kernel has
 * the tls module (the probe); never on a socketpair connection, which the
 * kernel cannot offload: there file bodies are encrypted in user space. */
static void test_ktls_choice(void **state)
{
    fx_t *f = *state;
    char err[256];
    const char *why = NULL;
    cg_tls_ctx_t *t = NULL;
    set(f, "sendfile", "false");
    assert_int_equal(cg_tls_ctx_new(&f->cfg, &t, err, sizeof(err)), 0);
    assert_false(cg_tls_ctx_ktls(t, &why));
    assert_string_equal(why, "off: sendfile is off");
    cg_tls_ctx_free(t);
    set(f, "sendfile", "true");
    assert_int_equal(cg_tls_ctx_new(&f->cfg, &f->tls, err, sizeof(err)), 0);
    bool kernel = cg_os_ktls_probe() == 0;
    assert_int_equal(cg_tls_ctx_ktls(f->tls, &why), kernel);
    assert_non_null(strstr(why, kernel ? "on: " : "off: "));

    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    cg_conn_attach_tcp(&f->conn, sv[0], true);
    assert_int_equal(cg_tls_attach(&f->conn, f->tls), 0);
    f->cfd = sv[1];
    f->cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(f->cctx);
    f->client = SSL_new(f->cctx);
    assert_non_null(f->client);
    assert_int_equal(SSL_set_fd(f->client, f->cfd), 1);
    SSL_set_connect_state(f->client);
    handshake(f);
    assert_false(cg_tls_ktls_send(&f->conn));
}

/* An adopted SSL_CTX (the ssl_context hook's): refused without a
 * certificate; served as it is otherwise, its own settings kept (here a
 * TLS 1.2 maximum), with the transport's modes and no renegotiation
 * added, and the peer's view (cg_tls_peer) after the handshake. */
static void test_adopt(void **state)
{
    fx_t *f = *state;
    char err[256];
    cg_tls_ctx_t *t = NULL;
    SSL_CTX *bare = SSL_CTX_new(TLS_server_method());
    assert_non_null(bare);
    assert_int_equal(cg_tls_ctx_adopt(&f->cfg, bare, NULL, &t, err, sizeof(err)), -EINVAL); /* freed */
    assert_null(t);
    assert_non_null(strstr(err, "without a certificate"));

    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(sctx);
    assert_int_equal(SSL_CTX_use_certificate_chain_file(sctx, f->cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(sctx, f->key, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(sctx, TLS1_2_VERSION), 1);
    assert_int_equal(SSL_CTX_up_ref(sctx), 1); /* ours, to look at it after */
    assert_int_equal(cg_tls_ctx_adopt(&f->cfg, sctx, NULL, &f->tls, err, sizeof(err)), 0);
    assert_true((SSL_CTX_get_options(sctx) & SSL_OP_NO_RENEGOTIATION) != 0);
    assert_true((SSL_CTX_get_mode(sctx) & SSL_MODE_ENABLE_PARTIAL_WRITE) != 0);
    SSL_CTX_free(sctx);

    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    cg_conn_attach_tcp(&f->conn, sv[0], true);
    cg_tls_peer_t p;
    assert_int_equal(cg_tls_peer(&f->conn, &p), -EINVAL); /* not on TLS yet */
    assert_int_equal(cg_tls_attach(&f->conn, f->tls), 0);
    f->cfd = sv[1];
    f->cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(f->cctx);
    f->client = SSL_new(f->cctx);
    assert_non_null(f->client);
    assert_int_equal(SSL_set_fd(f->client, f->cfd), 1);
    SSL_set_connect_state(f->client);
    handshake(f);
    assert_string_equal(SSL_get_version(f->client), "TLSv1.2");
    assert_int_equal(cg_tls_peer(&f->conn, &p), 0);
    assert_null(p.der); /* no client certificate asked for */
    assert_false(p.asked);
    assert_string_equal(p.version, "TLSv1.2");
    assert_non_null(p.cipher);
    assert_string_equal(p.cipher, SSL_get_cipher_name(f->client));
    assert_true(p.secret_bits >= 128);
    assert_null(p.alpn);
    cg_tls_peer_free(&p);
}

/* cert_reqs 1 and a client certificate: cg_tls_peer gives its DER. */
static void test_peer_certificate(void **state)
{
    fx_t *f = *state;
    set(f, "cert_reqs", "1");
    set(f, "ca_certs", f->cert);
    connect_pair(f, 0);
    assert_int_equal(SSL_use_certificate_chain_file(f->client, f->cert), 1);
    assert_int_equal(SSL_use_PrivateKey_file(f->client, f->key, SSL_FILETYPE_PEM), 1);
    handshake(f);
    /* TLS 1.3 sends the client's certificate after the client's finish:
     * a read on the server takes it in */
    char b[8];
    (void)f->conn.ops->recv(&f->conn, b, sizeof(b));
    cg_tls_peer_t p;
    assert_int_equal(cg_tls_peer(&f->conn, &p), 0);
    assert_true(p.asked);
    assert_non_null(p.der);
    X509 *mine = SSL_get_certificate(f->client);
    unsigned char *want = NULL;
    int n = i2d_X509(mine, &want);
    assert_true(n > 0);
    assert_int_equal(p.der_len, (size_t)n);
    assert_memory_equal(p.der, want, (size_t)n);
    OPENSSL_free(want);
    cg_tls_peer_free(&p);
    assert_null(p.der);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_http, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_mid_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eof_in_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ragged_suppressed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ragged_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_cert_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_context_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ktls_choice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_certificate, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
