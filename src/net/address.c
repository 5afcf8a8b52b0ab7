/*
 * address.c - Gunicorn's bind address syntax (util.parse_address) and the
 * Python-looking text of an address used in Gunicorn's bind error messages.
 */
#include "net.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/*
 * Python's int() on a str: surrounding whitespace, an optional sign, decimal
 * digits with single underscores between them. Values beyond int range are
 * clamped (they can never be valid ports or fds anyway).
 */
static int cg__net_parse_pyint(const char *s, size_t len, long *out)
{
    size_t i = 0, end = len;
    while (i < end && isspace((unsigned char)s[i]))
        i++;
    while (end > i && isspace((unsigned char)s[end - 1]))
        end--;
    bool neg = false;
    if (i < end && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == end)
        return -EINVAL;
    long v = 0;
    bool prev_digit = false;
    for (; i < end; i++) {
        char c = s[i];
        if (c == '_') {
            /* allowed only between two digits */
            if (!prev_digit || i + 1 == end || !isdigit((unsigned char)s[i + 1]))
                return -EINVAL;
            prev_digit = false;
            continue;
        }
        if (!isdigit((unsigned char)c))
            return -EINVAL;
        prev_digit = true;
        if (v < INT_MAX)
            v = v * 10 + (c - '0');
        if (v > INT_MAX)
            v = INT_MAX;
    }
    *out = neg ? -v : v;
    return 0;
}

/*
 * Python's repr() of a str, for the messages Gunicorn builds with %r: single
 * quotes unless the text holds a single quote and no double quote.
 */
static size_t cg__net_pyrepr(const char *s, size_t len, char *buf, size_t cap)
{
    size_t o = 0;
    bool has_sq = memchr(s, '\'', len) != NULL, has_dq = memchr(s, '"', len) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
#define CG__PUT(c)                                                                                 \
    do {                                                                                           \
        if (o + 1 < cap)                                                                           \
            buf[o] = (c);                                                                          \
        o++;                                                                                       \
    } while (0)
    CG__PUT(q);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char hex[5];
        if (c == '\\')
            esc = "\\\\";
        else if (c == (unsigned char)q)
            esc = q == '\'' ? "\\'" : "\\\"";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c < 0x20 || c == 0x7f) {
            snprintf(hex, sizeof(hex), "\\x%02x", c);
            esc = hex;
        }
        if (esc) {
            for (; *esc; esc++)
                CG__PUT(*esc);
        } else {
            CG__PUT((char)c);
        }
    }
    CG__PUT(q);
#undef CG__PUT
    if (cap)
        buf[o < cap ? o : cap - 1] = '\0';
    return o;
}

void cg_net_addr_text(const cg_net_addr_t *a, char *buf, size_t cap)
{
    switch (a->kind) {
    case CG_NET_UNIX:
        snprintf(buf, cap, "%s", a->path);
        break;
    case CG_NET_FD:
        snprintf(buf, cap, "%d", a->fd);
        break;
    case CG_NET_TCP: {
        char host[600];
        cg__net_pyrepr(a->host, strlen(a->host), host, sizeof(host));
        snprintf(buf, cap, "(%s, %d)", host, a->port);
        break;
    }
    }
}

static void cg__net_err_repr(char *err, size_t errlen, const char *s, size_t len,
                             const char *suffix)
{
    char r[700];
    cg__net_pyrepr(s, len, r, sizeof(r));
    snprintf(err, errlen, "%s%s", r, suffix);
}

/* Where `unix:` or `unix://` last matches, as re.split(r'unix:(//)?') keeps
 * only the text after the final match. */
static const char *cg__net_after_unix(const char *spec)
{
    const char *rest = spec, *p;
    while ((p = strstr(rest, "unix:")) != NULL) {
        rest = p + 5;
        if (rest[0] == '/' && rest[1] == '/')
            rest += 2;
    }
    return rest;
}

int cg_net_parse_address(const char *spec, cg_net_addr_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    if (err && errlen)
        err[0] = '\0';

    if (strncmp(spec, "unix:", 5) == 0) {
        const char *path = cg__net_after_unix(spec);
        if (strlen(path) >= sizeof(out->path)) {
            snprintf(err, errlen, "AF_UNIX path too long");
            return -ENAMETOOLONG;
        }
        out->kind = CG_NET_UNIX;
        strcpy(out->path, path);
        return 0;
    }

    if (strncmp(spec, "fd://", 5) == 0) {
        const char *num = spec + 5;
        long fd;
        if (cg__net_parse_pyint(num, strlen(num), &fd) < 0) {
            cg__net_err_repr(err, errlen, num, strlen(num), " is not a valid file descriptor.");
            return -EINVAL;
        }
        if (fd < 0 || fd > INT_MAX - 1) {
            /* Python would accept the number and fail later with EBADF. */
            snprintf(err, errlen, "[Errno %d] %s", EBADF, strerror(EBADF));
            return -EBADF;
        }
        out->kind = CG_NET_FD;
        out->fd = (int)fd;
        return 0;
    }

    const char *netloc = spec;
    size_t nlen;
    if (strncmp(netloc, "tcp://", 6) == 0) {
        /* "a".split("tcp://")[1]: up to a second "tcp://", if any */
        netloc += 6;
        const char *next = strstr(netloc, "tcp://");
        nlen = next ? (size_t)(next - netloc) : strlen(netloc);
    } else {
        nlen = strlen(netloc);
    }

    const char *host, *port;
    size_t hlen, plen;
    const char *lb = memchr(netloc, '[', nlen), *rb = memchr(netloc, ']', nlen);
    if (lb && rb) {
        /* host: text before the first ']' minus its first character;
         * port: after the first "]:" up to a following "]:" */
        host = nlen ? netloc + 1 : netloc;
        hlen = (size_t)(rb - netloc);
        hlen = hlen ? hlen - 1 : 0;
        const char *sep = NULL;
        for (size_t i = 0; i + 1 < nlen; i++)
            if (netloc[i] == ']' && netloc[i + 1] == ':') {
                sep = netloc + i;
                break;
            }
        if (sep) {
            port = sep + 2;
            plen = nlen - (size_t)(port - netloc);
            for (size_t i = 0; i + 1 < plen; i++)
                if (port[i] == ']' && port[i + 1] == ':') {
                    plen = i;
                    break;
                }
        } else {
            port = "8000";
            plen = 4;
        }
    } else if (memchr(netloc, ':', nlen)) {
        const char *c1 = memchr(netloc, ':', nlen);
        host = netloc;
        hlen = (size_t)(c1 - netloc);
        port = c1 + 1;
        const char *c2 = memchr(port, ':', nlen - hlen - 1);
        plen = c2 ? (size_t)(c2 - port) : nlen - hlen - 1;
    } else if (nlen == 0) {
        host = "0.0.0.0";
        hlen = 7;
        port = "8000";
        plen = 4;
    } else {
        host = netloc;
        hlen = nlen;
        port = "8000";
        plen = 4;
    }

    long p;
    if (cg__net_parse_pyint(port, plen, &p) < 0) {
        cg__net_err_repr(err, errlen, port, plen, " is not a valid port number.");
        return -EINVAL;
    }
    if (hlen >= sizeof(out->host)) {
        snprintf(err, errlen, "host name too long");
        return -ENAMETOOLONG;
    }
    out->kind = CG_NET_TCP;
    for (size_t i = 0; i < hlen; i++)
        out->host[i] = (char)tolower((unsigned char)host[i]);
    out->host[hlen] = '\0';
    out->port = (int)p;
    return 0;
}
