/*
 * cg.h - the few definitions every part of cgunicorn shares.
 *
 * Error vocabulary (libuv style): a function that can fail returns 0 on success
 * and a negative errno value on failure (-ENOMEM, -EINVAL, ...). CG_EAGAIN is the
 * "not yet, call again with more input/output room" answer of non-blocking code.
 *
 * Memory: cg_xmalloc()/cg_xrealloc() abort the process on exhaustion. In a worker
 * this is deliberate: the arbiter respawns a worker that died, which is the only
 * sane recovery from OOM in the middle of a request. The master never calls them
 * on a path driven by client input.
 */
#ifndef CG_H
#define CG_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#define CG_VERSION "27.0.1"
#define CG_SERVER_SOFTWARE "gunicorn/" CG_VERSION

#define CG_EAGAIN (-EAGAIN)

#define CG_UNUSED(x) ((void)(x))
#define CG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define cg_likely(x) __builtin_expect(!!(x), 1)
#define cg_unlikely(x) __builtin_expect(!!(x), 0)
#define CG_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Memory kept for reuse (a spare connection and its buffers) is marked
 * unaddressable under ASan until it is taken again, so that a stale pointer
 * into it fails as a use after free would. No-ops in other builds. */
#if defined(__SANITIZE_ADDRESS__)
#define CG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CG_ASAN 1
#endif
#endif
#ifdef CG_ASAN
#include <sanitizer/asan_interface.h>
#define CG_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define CG_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define CG_POISON(p, n) ((void)(p), (void)(n))
#define CG_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* A view into memory owned by someone else: never NUL-terminated by contract. */
typedef struct cg_str {
    const char *ptr;
    size_t len;
} cg_str_t;

#define CG_STR_LIT(s) ((cg_str_t){(s), sizeof(s) - 1})

/* Python's str.isspace() for an ASCII character (text that may hold UTF-8:
 * its high bytes are parts of other characters). */
static inline bool cg_py_isspace_ascii(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/* Python's str.isspace() for the character a latin-1 byte stands for. */
static inline bool cg_py_isspace_latin1(unsigned char c)
{
    return cg_py_isspace_ascii(c) || c == 0x85 || c == 0xa0;
}

static inline bool cg_str_eq(cg_str_t a, const char *lit, size_t litlen)
{
    if (a.len != litlen)
        return false;
    for (size_t i = 0; i < litlen; i++)
        if (a.ptr[i] != lit[i])
            return false;
    return true;
}

/* ASCII case-insensitive comparison of two views, or of a view with a
 * NUL-terminated string. */
bool cg_str_caseeq_str(cg_str_t a, cg_str_t b);

/* Inline so that the length test, which rejects most candidates, needs no
 * call, and strlen() of a literal folds to a constant. */
static inline bool cg_str_caseeq(cg_str_t a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len == n && cg_str_caseeq_str(a, (cg_str_t){lit, n});
}

/* A growable, owned list of NUL-terminated strings. */
typedef struct cg_strv {
    char **v;
    size_t n;
} cg_strv_t;

void *cg_xmalloc(size_t n);
void *cg_xcalloc(size_t nmemb, size_t size);
void *cg_xrealloc(void *p, size_t n);
char *cg_xstrdup(const char *s);
char *cg_xstrndup(const char *s, size_t n);
void cg_strv_push(cg_strv_t *sv, const char *s);
void cg_strv_clear(cg_strv_t *sv);

#endif
