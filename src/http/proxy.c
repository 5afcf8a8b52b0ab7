/*
 * proxy.c - HAProxy PROXY protocol v1 (text) and v2 (binary) headers, as
 * Gunicorn accepts them on the first request of a connection.
 */
#include "http.h"

#include <arpa/inet.h>
#include <string.h>

static const char cg__pp2_sig[12] = {'\r', '\n', '\r', '\n', '\0', '\r',
                                     '\n', 'Q',  'U',  'I',  'T',  '\n'};

/* A v1 line is at most 107 bytes; Gunicorn reads until CRLF without limit. */
#define CG__PP1_MAX 536

static ssize_t perr(cg_http_error_t *err, cg_http_errcode_t code, const char *lit,
                    const char *p, size_t n, size_t n1)
{
    memset(err, 0, sizeof(*err));
    err->code = code;
    err->lit = lit;
    err->arg = (cg_str_t){p, n};
    err->n1 = n1;
    return -EPROTO;
}

/* Python int(s) for a base-10 literal; false where int() raises ValueError. */
static bool py_int(const char *p, size_t n, long *v)
{
    const char *e = p + n;
    while (p < e && cg_py_isspace_latin1((unsigned char)*p))
        p++;
    while (e > p && cg_py_isspace_latin1((unsigned char)e[-1]))
        e--;
    bool neg = false;
    if (p < e && (*p == '+' || *p == '-'))
        neg = *p++ == '-';
    if (p == e)
        return false;
    long x = 0;
    bool prev_digit = false;
    for (; p < e; p++) {
        if (*p == '_') {
            if (!prev_digit || p + 1 == e)
                return false;
            prev_digit = false;
            continue;
        }
        if (*p < '0' || *p > '9')
            return false;
        prev_digit = true;
        if (x < 1000000)
            x = x * 10 + (*p - '0');
    }
    *v = neg ? -x : x;
    return true;
}

static bool addr_ok(int af, const char *p, size_t n, char dst[46])
{
    unsigned char tmp[16];
    if (n >= 46 || memchr(p, '\0', n))
        return false;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return inet_pton(af, dst, tmp) == 1;
}

static ssize_t parse_v1(const char *buf, size_t len, cg_http_proxy_t *out, cg_http_error_t *err)
{
    const char *cr = NULL;
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] == '\r' && buf[i + 1] == '\n') {
            cr = buf + i;
            break;
        }
    }
    if (!cr) {
        /* Too long already, unless the line is exactly CG__PP1_MAX bytes
         * and its CR came without the LF yet: the verdict must not depend
         * on where the reads split the input. */
        if (len > CG__PP1_MAX && !(len == CG__PP1_MAX + 1 && buf[CG__PP1_MAX] == '\r'))
            return perr(err, CG_HTTP_E_INVALID_PROXY_LINE, NULL, buf, CG__PP1_MAX, 0);
        return CG_EAGAIN;
    }
    size_t n = (size_t)(cr - buf);
    if (n > CG__PP1_MAX)
        return perr(err, CG_HTTP_E_INVALID_PROXY_LINE, NULL, buf, CG__PP1_MAX, 0);

    cg_str_t bits[6];
    size_t nb = 0;
    const char *p = buf, *end = buf + n;
    for (;;) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *e = sp ? sp : end;
        if (nb == 6)
            return perr(err, CG_HTTP_E_INVALID_PROXY_LINE, NULL, buf, n, 0);
        bits[nb++] = (cg_str_t){p, (size_t)(e - p)};
        if (!sp)
            break;
        p = sp + 1;
    }
    if (nb != 6)
        return perr(err, CG_HTTP_E_INVALID_PROXY_LINE, NULL, buf, n, 0);

    int af;
    if (cg_str_eq(bits[1], "TCP4", 4)) {
        af = AF_INET;
        out->protocol = "TCP4";
    } else if (cg_str_eq(bits[1], "TCP6", 4)) {
        af = AF_INET6;
        out->protocol = "TCP6";
    } else {
        return perr(err, CG_HTTP_E_INVALID_PROXY_LINE, "protocol '%s' not supported",
                    bits[1].ptr, bits[1].len, 0);
    }
    if (!addr_ok(af, bits[2].ptr, bits[2].len, out->client_addr) ||
        !addr_ok(af, bits[3].ptr, bits[3].len, out->proxy_addr))
        return perr(err, CG_HTTP_E_INVALID_PROXY_LINE, NULL, buf, n, 0);
    long sport, dport;
    if (!py_int(bits[4].ptr, bits[4].len, &sport) || !py_int(bits[5].ptr, bits[5].len, &dport) ||
        sport < 0 || sport > 65535 || dport < 0 || dport > 65535)
        return perr(err, CG_HTTP_E_INVALID_PROXY_LINE, "invalid port %s", buf, n, 0);
    out->client_port = (int)sport;
    out->proxy_port = (int)dport;
    return (ssize_t)(n + 2);
}

static ssize_t parse_v2(const unsigned char *b, size_t len, cg_http_proxy_t *out,
                        cg_http_error_t *err)
{
    if (len < 16)
        return CG_EAGAIN;
    unsigned ver = b[12] >> 4, cmd = b[12] & 0x0f;
    if (ver != 2)
        return perr(err, CG_HTTP_E_INVALID_PROXY_HEADER, "unsupported version %d", NULL, 0, ver);
    if (cmd > 1)
        return perr(err, CG_HTTP_E_INVALID_PROXY_HEADER, "unsupported command %d", NULL, 0, cmd);
    size_t alen = (size_t)b[14] << 8 | b[15], total = 16 + alen;
    if (len < total)
        return CG_EAGAIN;
    if (cmd == 0) { /* LOCAL: a health check from the proxy itself */
        out->protocol = "LOCAL";
        return (ssize_t)total;
    }
    unsigned fam = b[13] >> 4, proto = b[13] & 0x0f;
    if (proto != 1)
        return perr(err, CG_HTTP_E_INVALID_PROXY_HEADER, "only TCP protocol is supported", NULL,
                    0, 0);
    const unsigned char *a = b + 16;
    if (fam == 1) {
        if (alen < 12)
            return perr(err, CG_HTTP_E_INVALID_PROXY_HEADER,
                        "insufficient address data for IPv4", NULL, 0, 0);
        inet_ntop(AF_INET, a, out->client_addr, sizeof(out->client_addr));
        inet_ntop(AF_INET, a + 4, out->proxy_addr, sizeof(out->proxy_addr));
        out->client_port = a[8] << 8 | a[9];
        out->proxy_port = a[10] << 8 | a[11];
        out->protocol = "TCP4";
    } else if (fam == 2) {
        if (alen < 36)
            return perr(err, CG_HTTP_E_INVALID_PROXY_HEADER,
                        "insufficient address data for IPv6", NULL, 0, 0);
        inet_ntop(AF_INET6, a, out->client_addr, sizeof(out->client_addr));
        inet_ntop(AF_INET6, a + 16, out->proxy_addr, sizeof(out->proxy_addr));
        out->client_port = a[32] << 8 | a[33];
        out->proxy_port = a[34] << 8 | a[35];
        out->protocol = "TCP6";
    } else if (fam == 0) {
        out->protocol = "UNSPEC";
    } else {
        return perr(err, CG_HTTP_E_INVALID_PROXY_HEADER, "unsupported address family %d", NULL,
                    0, fam);
    }
    return (ssize_t)total;
}

ssize_t cg_http_parse_proxy(cg_http_proxy_mode_t mode, const char *buf, size_t len,
                            bool peer_allowed, cg_http_proxy_t *out, cg_http_error_t *err)
{
    memset(out, 0, sizeof(*out));
    out->client_port = out->proxy_port = -1;
    if (mode == CG_HTTP_PROXY_OFF)
        return 0;
    if (len < 12)
        return CG_EAGAIN;
    bool v2 = (mode == CG_HTTP_PROXY_V2 || mode == CG_HTTP_PROXY_AUTO) &&
              memcmp(buf, cg__pp2_sig, 12) == 0;
    bool v1 = !v2 && (mode == CG_HTTP_PROXY_V1 || mode == CG_HTTP_PROXY_AUTO) &&
              memcmp(buf, "PROXY ", 6) == 0;
    if (!v1 && !v2)
        return 0;
    if (!peer_allowed)
        return perr(err, CG_HTTP_E_FORBIDDEN_PROXY_REQUEST, NULL, NULL, 0, 0);
    if (v2)
        return parse_v2((const unsigned char *)buf, len, out, err);
    return parse_v1(buf, len, out, err);
}
