/*
 * json_mini.h - just enough JSON for the test data (objects, arrays,
 * strings, numbers, true/false/null). Test-only; aborts on malformed input.
 * Strings are returned as latin-1 bytes (the corpus holds latin-1-decoded
 * text; code points above U+00FF do not occur).
 */
#ifndef CG_TEST_JSON_MINI_H
#define CG_TEST_JSON_MINI_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { JN_NULL, JN_BOOL, JN_NUM, JN_STR, JN_ARR, JN_OBJ } jn_type_t;

typedef struct jn {
    jn_type_t type;
    double num;
    char *str; /* JN_STR: bytes; JN_OBJ: unused */
    size_t len;
    struct jn **items; /* JN_ARR / JN_OBJ values */
    char **keys;       /* JN_OBJ */
    size_t n;
} jn_t;

static const char *jn__p;

static void jn__ws(void)
{
    while (*jn__p == ' ' || *jn__p == '\n' || *jn__p == '\r' || *jn__p == '\t')
        jn__p++;
}

static void jn__die(const char *what)
{
    fprintf(stderr, "json: %s near '%.20s'\n", what, jn__p);
    abort();
}

static jn_t *jn__value(void);

static void jn__putcp(char **out, size_t *n, unsigned long cp)
{
    if (cp > 0xff)
        jn__die("code point above U+00FF");
    (*out)[(*n)++] = (char)cp;
}

static char *jn__string(size_t *len)
{
    if (*jn__p != '"')
        jn__die("expected string");
    jn__p++;
    char *out = malloc(strlen(jn__p) + 1);
    size_t n = 0;
    while (*jn__p != '"') {
        unsigned char c = (unsigned char)*jn__p;
        if (c == 0)
            jn__die("unterminated string");
        if (c == '\\') {
            jn__p++;
            char e = *jn__p++;
            switch (e) {
            case 'n': out[n++] = '\n'; break;
            case 't': out[n++] = '\t'; break;
            case 'r': out[n++] = '\r'; break;
            case 'b': out[n++] = '\b'; break;
            case 'f': out[n++] = '\f'; break;
            case 'u': {
                char hex[5] = {0};
                memcpy(hex, jn__p, 4);
                jn__p += 4;
                jn__putcp(&out, &n, strtoul(hex, NULL, 16));
                break;
            }
            default: out[n++] = e; break;
            }
        } else if (c < 0x80) {
            out[n++] = (char)c;
            jn__p++;
        } else if ((c & 0xe0) == 0xc0) {
            jn__putcp(&out, &n, ((unsigned long)(c & 0x1f) << 6) | (jn__p[1] & 0x3f));
            jn__p += 2;
        } else {
            jn__die("non-latin-1 UTF-8");
        }
    }
    jn__p++;
    out[n] = '\0';
    *len = n;
    return out;
}

static jn_t *jn__value(void)
{
    jn_t *v = calloc(1, sizeof(*v));
    jn__ws();
    char c = *jn__p;
    if (c == '{' || c == '[') {
        v->type = c == '{' ? JN_OBJ : JN_ARR;
        char close = c == '{' ? '}' : ']';
        jn__p++;
        jn__ws();
        while (*jn__p != close) {
            v->items = realloc(v->items, (v->n + 1) * sizeof(*v->items));
            if (v->type == JN_OBJ) {
                size_t kl;
                v->keys = realloc(v->keys, (v->n + 1) * sizeof(*v->keys));
                v->keys[v->n] = jn__string(&kl);
                jn__ws();
                if (*jn__p++ != ':')
                    jn__die("expected ':'");
            }
            v->items[v->n++] = jn__value();
            jn__ws();
            if (*jn__p == ',') {
                jn__p++;
                jn__ws();
            } else if (*jn__p != close) {
                jn__die("expected ',' or close");
            }
        }
        jn__p++;
    } else if (c == '"') {
        v->type = JN_STR;
        v->str = jn__string(&v->len);
    } else if (!strncmp(jn__p, "true", 4) || !strncmp(jn__p, "false", 5)) {
        v->type = JN_BOOL;
        v->num = *jn__p == 't';
        jn__p += *jn__p == 't' ? 4 : 5;
    } else if (!strncmp(jn__p, "null", 4)) {
        v->type = JN_NULL;
        jn__p += 4;
    } else {
        char *end;
        v->type = JN_NUM;
        v->num = strtod(jn__p, &end);
        if (end == jn__p)
            jn__die("bad value");
        jn__p = end;
    }
    return v;
}

static jn_t *jn_parse(const char *text)
{
    jn__p = text;
    return jn__value();
}

static jn_t *jn_get(const jn_t *o, const char *key)
{
    if (!o || o->type != JN_OBJ)
        return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->keys[i], key))
            return o->items[i];
    return NULL;
}

static void jn_free(jn_t *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        jn_free(v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    free(v);
}

#endif
