/*
 * fuzz_proxy.c - libFuzzer target for the PROXY protocol v1/v2 header parser
 * (cg_http_parse_proxy). The first input byte picks the mode (bits 0-1), whether
 * the peer may send a header (bit 2) and how many bytes arrive per read (bits
 * 3-7: 1..32); the rest is what the connection receives first.
 *
 * The whole input is parsed once, then fed read by read as a worker does, each
 * prefix copied so that it ends right before a guard page: every call may read
 * only the bytes it was given. Checked besides memory safety:
 *   - the verdict does not depend on the split: the first call that is not
 *     CG_EAGAIN gives the same length, error and result as the whole input,
 *     and an input that ends while still CG_EAGAIN is CG_EAGAIN whole;
 *   - a header length never exceeds what was given, a v1 line ends in CRLF
 *     and a v2 header is 16 + its length field;
 *   - the result is one of the documented protocols, its addresses are
 *     NUL-terminated and parse back, its ports are 0..65535 (-1 without one);
 *   - an error is one of the three PROXY errors, its arg views the input, and
 *     its log text and error page render within bounds.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>

#include "guard.h"
#include "src/http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What one call decided, kept past the buffer it viewed. */
typedef struct verdict {
    ssize_t rc;
    cg_http_proxy_t px;
    cg_http_errcode_t code;
    char text[640];
} verdict_t;

static bool addr_valid(int af, const char addr[46])
{
    unsigned char tmp[16];
    return memchr(addr, '\0', 46) != NULL && inet_pton(af, addr, tmp) == 1;
}

static void check_result(const char *buf, size_t len, const cg_http_proxy_t *px, ssize_t rc)
{
    if ((size_t)rc > len)
        abort();
    bool v2 = len >= 12 && memcmp(buf, "\r\n\r\n\0\r\nQUIT\n", 12) == 0;
    if (v2) {
        if ((size_t)rc != 16 + ((size_t)(unsigned char)buf[14] << 8 | (unsigned char)buf[15]))
            abort();
    } else if (rc < 8 || memcmp(buf, "PROXY ", 6) != 0 || memcmp(buf + rc - 2, "\r\n", 2) != 0 ||
               memmem(buf, (size_t)rc - 2, "\r\n", 2) != NULL) {
        abort();
    }
    if (px->protocol == NULL)
        abort();
    if (strcmp(px->protocol, "TCP4") == 0 || strcmp(px->protocol, "TCP6") == 0) {
        int af = px->protocol[3] == '4' ? AF_INET : AF_INET6;
        if (!addr_valid(af, px->client_addr) || !addr_valid(af, px->proxy_addr))
            abort();
        if (px->client_port < 0 || px->client_port > 65535 || px->proxy_port < 0 ||
            px->proxy_port > 65535)
            abort();
    } else if (strcmp(px->protocol, "LOCAL") == 0 || strcmp(px->protocol, "UNSPEC") == 0) {
        if (!v2 || px->client_addr[0] || px->proxy_addr[0] || px->client_port != -1 ||
            px->proxy_port != -1)
            abort();
    } else {
        abort();
    }
}

static void check_error(const char *buf, size_t len, cg_http_error_t *e, verdict_t *v)
{
    if (e->code != CG_HTTP_E_INVALID_PROXY_LINE && e->code != CG_HTTP_E_INVALID_PROXY_HEADER &&
        e->code != CG_HTTP_E_FORBIDDEN_PROXY_REQUEST)
        abort();
    if (e->arg.len && (e->arg.ptr < buf || e->arg.ptr + e->arg.len > buf + len))
        abort();
    /* the worker names the peer in ForbiddenProxyRequest */
    if (e->code == CG_HTTP_E_FORBIDDEN_PROXY_REQUEST)
        e->arg = (cg_str_t){"203.0.113.7", 11};
    size_t n = cg_http_error_text(e, v->text, sizeof(v->text));
    if (n >= sizeof(v->text) || strlen(v->text) != n)
        abort();
    char small[8];
    if (cg_http_error_text(e, small, sizeof(small)) >= sizeof(small) ||
        strlen(small) >= sizeof(small))
        abort();
    static char page[8192];
    if (cg_http_error_response(e, page, sizeof(page)) > sizeof(page))
        abort();
}

static void parse(cg_http_proxy_mode_t mode, const char *buf, size_t len, bool allowed,
                  verdict_t *v)
{
    cg_http_error_t err;
    memset(v, 0, sizeof(*v));
    v->rc = cg_http_parse_proxy(mode, buf, len, allowed, &v->px, &err);
    if (v->rc > 0)
        check_result(buf, len, &v->px, v->rc);
    else if (v->rc == 0 && mode != CG_HTTP_PROXY_OFF && len < 12)
        abort(); /* too few bytes to say there is no header */
    else if (v->rc < 0 && v->rc != CG_EAGAIN) {
        v->code = err.code;
        check_error(buf, len, &err, v);
    }
    if (v->rc < 0 && v->rc != CG_EAGAIN && v->rc != -EPROTO)
        abort();
}

static bool same(const verdict_t *a, const verdict_t *b)
{
    if (a->rc != b->rc)
        return false;
    if (a->rc < 0)
        return a->rc == CG_EAGAIN || (a->code == b->code && strcmp(a->text, b->text) == 0);
    if (a->rc == 0)
        return true;
    return strcmp(a->px.protocol, b->px.protocol) == 0 &&
           strcmp(a->px.client_addr, b->px.client_addr) == 0 &&
           strcmp(a->px.proxy_addr, b->px.proxy_addr) == 0 &&
           a->px.client_port == b->px.client_port && a->px.proxy_port == b->px.proxy_port;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    cg_http_proxy_mode_t mode = (cg_http_proxy_mode_t)(data[0] & 3);
    bool allowed = !(data[0] & 4);
    size_t step = (size_t)(data[0] >> 3) + 1;
    const char *src = (const char *)data + 1;
    size_t n = size - 1;

    guarded_t g;
    char *whole = guard_copy(&g, data + 1, n);
    verdict_t all, part;
    parse(mode, whole, n, allowed, &all);

    /* Read by read; each prefix moved to end at the guard page. */
    for (size_t have = 0;;) {
        have += n - have < step ? n - have : step;
        char *pre = whole + n - have;
        memcpy(pre, src, have);
        parse(mode, pre, have, allowed, &part);
        if (part.rc != CG_EAGAIN || have == n) {
            if (!same(&part, &all)) {
                fprintf(stderr,
                        "fuzz_proxy: split verdict differs: %zu of %zu bytes give %zd \"%s\","
                        " all of them %zd \"%s\"\n",
                        have, n, part.rc, part.text, all.rc, all.text);
                abort();
            }
            break;
        }
    }
    guard_free(&g);
    return 0;
}
