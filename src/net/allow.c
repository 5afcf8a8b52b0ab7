/*
 * allow.c - forwarded_allow_ips / proxy_allow_ips: which peers may send
 * forwarding headers. Same acceptance as Python's ipaddress.ip_network(strict)
 * and the same membership test (an IPv4 network never contains an IPv6
 * address, not even an IPv4-mapped one).
 */
#include "net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cg__net_net {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network address, host bits zero */
    int prefix;
} cg__net_net_t;

struct cg_net_allow {
    bool any; /* "*" present */
    size_t n;
    cg__net_net_t nets[];
};

/* A decimal prefix length (any number of digits, as Python's isdigit());
 * -1 if not digits or above max. */
static int cg__net_prefix_len(const char *s, int max)
{
    int v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > max)
            return -1;
    }
    return v;
}

/* Prefix length from a dotted mask: a netmask (ones then zeros) or, as Python
 * also accepts for IPv4, a hostmask (zeros then ones). -1 if neither. */
static int cg__net_mask_prefix(const uint8_t m[4])
{
    uint32_t v = (uint32_t)m[0] << 24 | (uint32_t)m[1] << 16 | (uint32_t)m[2] << 8 | m[3];
    for (int p = 0; p <= 32; p++) {
        uint32_t net = p ? ~(uint32_t)0 << (32 - p) : 0;
        if (v == net)
            return p;
    }
    for (int p = 0; p <= 32; p++) {
        uint32_t host = p == 32 ? 0 : ~(uint32_t)0 >> p;
        if (v == host)
            return p;
    }
    return -1;
}

/*
 * One entry. Returns 0, -EINVAL for text that is no network (Python's
 * "... does not appear to be an IPv4 or IPv6 network"), -EDOM when host bits
 * are set ("... has host bits set"); then, when shown is not NULL, it gets the
 * network as Python's str() of it reads ("10.0.0.1/8", "::1%eth0/64").
 */
static int cg__net_parse_net(const char *item, cg__net_net_t *out, char *shown, size_t shownlen)
{
    char buf[128];
    if (strlen(item) >= sizeof(buf))
        return -EINVAL;
    strcpy(buf, item);
    char *slash = strchr(buf, '/'), *pfx = NULL;
    if (slash) {
        *slash = '\0';
        pfx = slash + 1;
        if (strchr(pfx, '/'))
            return -EINVAL;
    }
    /* Python accepts a %scope on IPv6 addresses; membership ignores it */
    char *scope = strchr(buf, '%');
    memset(out, 0, sizeof(*out));
    if (!scope && inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        if (!pfx)
            out->prefix = 32;
        else if ((out->prefix = cg__net_prefix_len(pfx, 32)) >= 0)
            ;
        else {
            uint8_t m[4];
            if (inet_pton(AF_INET, pfx, m) != 1 || (out->prefix = cg__net_mask_prefix(m)) < 0)
                return -EINVAL;
        }
    } else {
        if (scope) {
            if (scope[1] == '\0')
                return -EINVAL;
            *scope = '\0';
        }
        if (inet_pton(AF_INET6, buf, out->addr) != 1)
            return -EINVAL;
        out->family = AF_INET6;
        if (!pfx)
            out->prefix = 128;
        else if ((out->prefix = cg__net_prefix_len(pfx, 128)) < 0)
            return -EINVAL;
    }
    int bytes = out->family == AF_INET ? 4 : 16;
    for (int i = 0; i < bytes; i++) {
        int bits = out->prefix - i * 8;
        uint8_t mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
        if (out->addr[i] & ~mask) {
            char text[INET6_ADDRSTRLEN];
            if (shown != NULL && inet_ntop(out->family, out->addr, text, sizeof(text)) != NULL)
                snprintf(shown, shownlen, "%s%s%s/%d", text, scope ? "%" : "",
                         scope ? scope + 1 : "", out->prefix);
            return -EDOM;
        }
    }
    return 0;
}

int cg_net_allow_check(const char *item, char *shown, size_t shownlen)
{
    cg__net_net_t net;
    if (shownlen)
        shown[0] = '\0';
    if (strcmp(item, "*") == 0)
        return 0;
    return cg__net_parse_net(item, &net, shown, shownlen);
}

int cg_net_allow_parse(const char *const *items, size_t n, cg_net_allow_t **out, char *err,
                       size_t errlen)
{
    cg_net_allow_t *a = cg_xcalloc(1, sizeof(*a) + (n ? n : 1) * sizeof(cg__net_net_t));
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(items[i], "*") == 0) {
            a->any = true;
            continue;
        }
        char shown[INET6_ADDRSTRLEN + 80];
        int r = cg__net_parse_net(items[i], &a->nets[a->n], shown, sizeof(shown));
        if (r == -EDOM) {
            snprintf(err, errlen, "%s has host bits set", shown);
        } else if (r < 0) {
            snprintf(err, errlen, "'%s' does not appear to be an IPv4 or IPv6 network", items[i]);
        }
        if (r < 0) {
            free(a);
            return -EINVAL;
        }
        a->n++;
    }
    *out = a;
    return 0;
}

bool cg_net_allowed(const cg_net_allow_t *allow, const struct sockaddr *peer)
{
    const uint8_t *ip;
    int family = peer->sa_family;
    if (family == AF_UNIX)
        return true;
    if (allow->any)
        return true;
    if (family == AF_INET)
        ip = (const uint8_t *)&((const struct sockaddr_in *)peer)->sin_addr;
    else if (family == AF_INET6)
        ip = (const uint8_t *)&((const struct sockaddr_in6 *)peer)->sin6_addr;
    else
        return false;
    for (size_t k = 0; k < allow->n; k++) {
        const cg__net_net_t *net = &allow->nets[k];
        if (net->family != family)
            continue;
        int full = net->prefix / 8, rest = net->prefix % 8;
        if (memcmp(ip, net->addr, (size_t)full) != 0)
            continue;
        if (rest && ((ip[full] ^ net->addr[full]) & (uint8_t)(0xff << (8 - rest))))
            continue;
        return true;
    }
    return false;
}

void cg_net_allow_free(cg_net_allow_t *allow)
{
    free(allow);
}

void cg_net_peer_text(const struct sockaddr *peer, char *ip, size_t iplen, char *port,
                      size_t portlen)
{
    if (iplen)
        ip[0] = '\0';
    if (portlen)
        port[0] = '\0';
    if (peer->sa_family == AF_INET) {
        /* Once per connection: by hand, since glibc's inet_ntop and snprintf
         * both go through vfprintf. */
        const struct sockaddr_in *s = (const struct sockaddr_in *)peer;
        const unsigned char *b = (const unsigned char *)&s->sin_addr;
        char tmp[16], *p = tmp;
        for (int i = 0; i < 4; i++) {
            unsigned v = b[i];
            if (v >= 100)
                *p++ = (char)('0' + v / 100);
            if (v >= 10)
                *p++ = (char)('0' + v / 10 % 10);
            *p++ = (char)('0' + v % 10);
            *p++ = i < 3 ? '.' : '\0';
        }
        if ((size_t)(p - tmp) <= iplen)
            memcpy(ip, tmp, (size_t)(p - tmp));
        char pt[6], *q = pt + sizeof(pt);
        unsigned v = ntohs(s->sin_port);
        *--q = '\0';
        do {
            *--q = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        if ((size_t)(pt + sizeof(pt) - q) <= portlen)
            memcpy(port, q, (size_t)(pt + sizeof(pt) - q));
    } else if (peer->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)peer;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, (socklen_t)iplen);
        snprintf(port, portlen, "%u", (unsigned)ntohs(s->sin6_port));
    }
}
