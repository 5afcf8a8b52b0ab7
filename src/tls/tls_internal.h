/*
 * tls_internal.h - what context.c and transport.c share; not for other parts.
 */
#ifndef CG_TLS_INTERNAL_H
#define CG_TLS_INTERNAL_H

#include "tls.h"

#include <openssl/ssl.h>

/* The OpenSSL context (borrowed) and the connection settings it carries. */
SSL_CTX *cg_tls__ssl_ctx(const cg_tls_ctx_t *t, bool *suppress_ragged_eofs, int *keylog_fd);
/* The key log descriptor of ssl's connection (transport.c), -1: none. */
int cg_tls__keylog_fd(const SSL *ssl);

#endif
