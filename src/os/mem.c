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

bool cg_str_caseeq_str(cg_str_t a, cg_str_t b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++) {
        unsigned char x = (unsigned char)a.ptr[i], y = (unsigned char)b.ptr[i];
        if (x >= 'A' && x <= 'Z')
            x += 32;
        if (y >= 'A' && y <= 'Z')
            y += 32;
        if (x != y)
            return false;
    }
    return true;
}
