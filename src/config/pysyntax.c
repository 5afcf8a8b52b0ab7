/*
 * pysyntax.c - the few pieces of Python syntax Gunicorn's configuration leans on:
 * int() parsing, str.strip(), repr() of a str, shlex.split(). Reproducing them
 * (rather than using strtol & co.) keeps what is accepted and what the error
 * messages quote identical to Gunicorn's.
 */
#include "config_internal.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cg__errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

char *cg__py_strip(const char *s)
{
    const char *e = s + strlen(s);
    while (*s != '\0' && cg_py_isspace_ascii((unsigned char)*s))
        s++;
    while (e > s && cg_py_isspace_ascii((unsigned char)e[-1]))
        e--;
    return cg_xstrndup(s, (size_t)(e - s));
}

static int cg__digit(int c, int base)
{
    int v;
    if (c >= '0' && c <= '9')
        v = c - '0';
    else if (c >= 'a' && c <= 'z')
        v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'Z')
        v = c - 'A' + 10;
    else
        return -1;
    return v < base ? v : -1;
}

/*
 * int(s, base) for base 0 (prefix decides, "010" is rejected) or 10 (no
 * prefix, leading zeros fine). Underscores may separate digits, and one may
 * follow a base prefix. Returns 0, -EINVAL (Python would raise ValueError) or
 * -ERANGE (valid but does not fit a long).
 */
int cg__py_int(const char *s, int base, long *out)
{
    const char *p = s, *e = s + strlen(s);
    bool neg = false, only_zeros = true, leading_zero = false;
    unsigned long long acc = 0, limit;
    size_t ndigits = 0;

    while (p < e && cg_py_isspace_ascii((unsigned char)*p))
        p++;
    while (e > p && cg_py_isspace_ascii((unsigned char)e[-1]))
        e--;
    if (p < e && (*p == '+' || *p == '-'))
        neg = *p++ == '-';
    if (base == 0) {
        if (e - p >= 2 && p[0] == '0' && strchr("xXoObB", p[1]) != NULL) {
            base = (p[1] == 'x' || p[1] == 'X') ? 16 : (p[1] == 'o' || p[1] == 'O') ? 8 : 2;
            p += 2;
            if (p < e && *p == '_')
                p++;
        } else {
            base = 10;
            leading_zero = p < e && *p == '0';
        }
    }
    limit = neg ? (unsigned long long)LONG_MAX + 1 : (unsigned long long)LONG_MAX;
    for (; p < e; p++) {
        int v;
        if (*p == '_') {
            if (ndigits == 0 || p + 1 >= e || p[1] == '_')
                return -EINVAL;
            continue;
        }
        v = cg__digit((unsigned char)*p, base);
        if (v < 0)
            return -EINVAL;
        if (v != 0)
            only_zeros = false;
        ndigits++;
        if (acc > (limit - (unsigned)v) / (unsigned)base)
            return -ERANGE;
        acc = acc * (unsigned)base + (unsigned)v;
    }
    if (ndigits == 0 || (leading_zero && !only_zeros))
        return -EINVAL;
    *out = neg ? (long)(0 - acc) : (long)acc;
    return 0;
}

/* Gunicorn's auto_int(): a leading "0<digit>" means octal, else int(x, 0). */
int cg__py_auto_int(const char *s, long *out)
{
    if (s[0] == '0' && s[1] >= '0' && s[1] <= '9') {
        size_t n = strlen(s);
        char *t = cg_xmalloc(n + 2);
        int rc;
        t[0] = '0';
        t[1] = 'o';
        memcpy(t + 2, s + 1, n);
        rc = cg__py_int(t, 0, out);
        free(t);
        return rc;
    }
    return cg__py_int(s, 0, out);
}

/* repr() of a str: quotes chosen like CPython, control bytes escaped.
 * Bytes >= 0x80 are passed through (UTF-8 text is printable). Owned. */
char *cg__py_repr(const char *s)
{
    char q = (strchr(s, '\'') != NULL && strchr(s, '"') == NULL) ? '"' : '\'';
    size_t n = strlen(s), o = 0;
    char *r = cg_xmalloc(4 * n + 3);

    r[o++] = q;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '\\' || *p == (unsigned char)q) {
            r[o++] = '\\';
            r[o++] = (char)*p;
        } else if (*p == '\t' || *p == '\n' || *p == '\r') {
            r[o++] = '\\';
            r[o++] = *p == '\t' ? 't' : *p == '\n' ? 'n' : 'r';
        } else if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)sprintf(r + o, "\\x%02x", *p);
        } else {
            r[o++] = (char)*p;
        }
    }
    r[o++] = q;
    r[o] = '\0';
    return r;
}

/*
 * shlex.split(s) (POSIX mode, no comments): whitespace separates words, '...'
 * is literal, "..." honours \" and \\, a bare backslash escapes any character.
 * Appends the words to out. Returns 0 or -EINVAL with shlex's message in *msg.
 */
int cg__shlex_split(const char *s, cg_strv_t *out, const char **msg)
{
    size_t n = strlen(s), o = 0;
    char *tok = cg_xmalloc(n + 1);
    bool in_tok = false;
    enum { WORD, SQ, DQ } st = WORD;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (st == SQ) {
            if (c == '\'')
                st = WORD;
            else
                tok[o++] = c;
        } else if (st == DQ) {
            if (c == '"') {
                st = WORD;
            } else if (c == '\\') {
                if (i + 1 >= n)
                    goto no_escaped;
                if (s[i + 1] == '"' || s[i + 1] == '\\')
                    i++;
                tok[o++] = s[i];
            } else {
                tok[o++] = c;
            }
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            if (in_tok) {
                tok[o] = '\0';
                cg_strv_push(out, tok);
                o = 0;
                in_tok = false;
            }
        } else {
            in_tok = true;
            if (c == '\\') {
                if (i + 1 >= n)
                    goto no_escaped;
                tok[o++] = s[++i];
            } else if (c == '\'') {
                st = SQ;
            } else if (c == '"') {
                st = DQ;
            } else {
                tok[o++] = c;
            }
        }
    }
    if (st != WORD) {
        *msg = "No closing quotation";
        free(tok);
        return -EINVAL;
    }
    if (in_tok) {
        tok[o] = '\0';
        cg_strv_push(out, tok);
    }
    free(tok);
    return 0;

no_escaped:
    *msg = "No escaped character";
    free(tok);
    return -EINVAL;
}

/* Gunicorn's util.getcwd(): $PWD when it names the current directory (keeps
 * symlinks as the user typed them), else getcwd(). Owned. */
char *cg__getcwd(void)
{
    const char *pwd = getenv("PWD");
    struct stat a, b;
    char *cwd;

    if (pwd != NULL && pwd[0] == '/' && stat(pwd, &a) == 0 && stat(".", &b) == 0 &&
        a.st_ino == b.st_ino && a.st_dev == b.st_dev)
        return cg_xstrdup(pwd);
    cwd = getcwd(NULL, 0);
    if (cwd == NULL)
        return cg_xstrdup(".");
    return cwd;
}

/* printf into a new string; aborts on exhaustion like cg_xmalloc. Owned. */
char *cg__strf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int n;
    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    return s;
}
