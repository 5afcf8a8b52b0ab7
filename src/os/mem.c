/* mem.c - allocation that cannot fail silently, and small string helpers. */
#include "../cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void cg__oom(size_t n)
{
    /* No stdio: it may itself need memory. */
    static const char msg[] = "cgunicorn: out of memory, aborting process\n";
    ssize_t r = write(2, msg, sizeof(msg) - 1);
    CG_UNUSED(r);
    CG_UNUSED(n);
    abort();
}

void *cg_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (cg_unlikely(p == NULL))
        cg__oom(n);
    return p;
}

void *cg_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (cg_unlikely(p == NULL))
        cg__oom(nmemb * size);
    return p;
}

void *cg_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (cg_unlikely(q == NULL))
        cg__oom(n);
    return q;
}

char *cg_xstrdup(const char *s)
{
    return cg_xstrndup(s, strlen(s));
}

char *cg_xstrndup(const char *s, size_t n)
{
    char *p = cg_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void cg_strv_push(cg_strv_t *sv, const char *s)
{
    sv->v = cg_xrealloc(sv->v, (sv->n + 2) * sizeof(char *));
    sv->v[sv->n++] = cg_xstrdup(s);
    sv->v[sv->n] = NULL;
}

void cg_strv_clear(cg_strv_t *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    sv->v = NULL;
    sv->n = 0;
}

/* ASCII lowercase of every byte value, built at compile time: one load per
 * byte instead of two range tests (header names are compared per request).
 * Lowercasing sets bit 5 ('A' | 0x20 == 'a'); unlike + 32 that stays below 256
 * in the unused branch too, which clang's -Wconstant-conversion checks. */
#define CG__L(c) ((c) >= 'A' && (c) <= 'Z' ? (c) | 0x20 : (c))
#define CG__L4(c) CG__L(c), CG__L((c) + 1), CG__L((c) + 2), CG__L((c) + 3)
#define CG__L16(c) CG__L4(c), CG__L4((c) + 4), CG__L4((c) + 8), CG__L4((c) + 12)
#define CG__L64(c) CG__L16(c), CG__L16((c) + 16), CG__L16((c) + 32), CG__L16((c) + 48)
static const unsigned char cg__lower[256] = {CG__L64(0), CG__L64(64), CG__L64(128), CG__L64(192)};
#undef CG__L64
#undef CG__L16
#undef CG__L4
#undef CG__L

bool cg_str_caseeq_str(cg_str_t a, cg_str_t b)
{
    if (a.len != b.len)
        return false;
    const unsigned char *x = (const unsigned char *)a.ptr, *y = (const unsigned char *)b.ptr;
    for (size_t i = 0; i < a.len; i++)
        if (cg__lower[x[i]] != cg__lower[y[i]])
            return false;
    return true;
}
