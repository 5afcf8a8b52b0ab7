/*
 * ktls.c - whether the kernel can take over TLS record encryption (kTLS,
 * Linux's "tls" upper-layer protocol), for OpenSSL's SSL_sendfile.
 */
#include "os.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

int cg_os_ktls_probe(void)
{
#ifdef __linux__
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* The tls ULP attaches only to an established connection: on a fresh
     * socket a kernel that has it (built in, loaded, or loaded now on
     * demand) says ENOTCONN, one without it ENOENT. Nothing is attached. */
    int r = setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) == 0 ? 0 : -errno;
    close(fd);
    if (r == 0 || r == -ENOTCONN)
        return 0;
    return r;
#else
    return -ENOSYS;
#endif
}
