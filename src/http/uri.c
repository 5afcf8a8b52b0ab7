/*
 * uri.c - decoding a request-target's path for the application (WSGI's
 * PATH_INFO, ASGI's path).
 */
#include "http.h"

static int cg__hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

size_t cg_http_unquote(const char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (in[i] == '%' && i + 2 < len && (hi = cg__hex((unsigned char)in[i + 1])) >= 0 &&
            (lo = cg__hex((unsigned char)in[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    return o;
}
