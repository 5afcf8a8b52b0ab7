/*
 * request.c - the control protocol's frames, requests and answers: what
 * Gunicorn's protocol.py and ControlSocketServer._dispatch do with the bytes
 * before a command runs, and the two answer envelopes after.
 */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ssize_t cg_ctl_frame(const char *buf, size_t len, size_t max, uint32_t *announced)
{
    if (len < 4)
        return CG_EAGAIN;
    const unsigned char *b = (const unsigned char *)buf;
    uint32_t n = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    *announced = n;
    if (n > max)
        return -EMSGSIZE;
    if (len - 4 < n)
        return CG_EAGAIN;
    return (ssize_t)n;
}

/* shlex.split()'s whitespace */
static bool cg__shlex_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * shlex.split(s) in POSIX mode into out (at least strlen(s) + 1 bytes per
 * word's NUL: the caller sizes it): quotes ' and " group, a backslash
 * escapes the next character outside quotes and only " or \ inside double
 * quotes, and '' is an empty word. Returns 0, or CG_CTL_ANSWER_ERROR with
 * shlex's message.
 */
static int cg__shlex(const char *s, size_t n, cg_ctl_request_t *r, char **out, char *err,
                     size_t errlen)
{
    char *w = *out;
    size_t i = 0;
    for (;;) {
        while (i < n && cg__shlex_space(s[i]))
            i++;
        if (i >= n)
            break;
        if (r->nwords == CG_CTL_MAX_WORDS) {
            snprintf(err, errlen, "Invalid argument: more than %d words", CG_CTL_MAX_WORDS);
            return CG_CTL_ANSWER_ERROR;
        }
        r->word[r->nwords++] = w;
        char quote = 0;
        while (i < n && (quote || !cg__shlex_space(s[i]))) {
            char c = s[i++];
            if (quote == 0 && (c == '\'' || c == '"')) {
                quote = c;
            } else if (quote != 0 && c == quote) {
                quote = 0;
            } else if (c == '\\' && quote != '\'') {
                if (i >= n) {
                    snprintf(err, errlen, "Invalid argument: No escaped character");
                    return CG_CTL_ANSWER_ERROR;
                }
                /* in double quotes a backslash only escapes " and itself */
                if (quote == '"' && s[i] != '"' && s[i] != '\\')
                    *w++ = '\\';
                *w++ = s[i++];
            } else {
                *w++ = c;
            }
        }
        if (quote != 0) {
            snprintf(err, errlen, "Invalid argument: No closing quotation");
            return CG_CTL_ANSWER_ERROR;
        }
        *w++ = '\0';
    }
    *out = w;
    return 0;
}

/* One element of "args" as Python's str() writes it, appended as a word. */
static int cg__arg(const char *p, const cg_json_tok_t *t, cg_ctl_request_t *r, char **out,
                   char *err, size_t errlen)
{
    char *w = *out;
    size_t room = t->end - t->start + 1; /* the store holds this much per token */
    if (r->nwords == CG_CTL_MAX_WORDS) {
        snprintf(err, errlen, "Invalid argument: more than %d words", CG_CTL_MAX_WORDS);
        return CG_CTL_ANSWER_ERROR;
    }
    switch (t->type) {
    case CG_JSON_STRING: {
        ssize_t k = cg_json_unescape(p, t, w, room);
        if (k < 0)
            return -EPROTO; /* cannot happen: decoding never grows */
        w += k + 1;
        break;
    }
    case CG_JSON_NUMBER:
    case CG_JSON_TRUE:
    case CG_JSON_FALSE:
    case CG_JSON_NULL: {
        const char *text = t->type == CG_JSON_TRUE    ? "True"
                           : t->type == CG_JSON_FALSE ? "False"
                           : t->type == CG_JSON_NULL  ? "None"
                                                      : NULL;
        size_t k = text ? strlen(text) : t->end - t->start;
        /* "True"/"None" are as long as "true"/"null", "False" as "false" */
        memcpy(w, text ? text : p + t->start, k);
        w[k] = '\0';
        w += k + 1;
        break;
    }
    default:
        snprintf(err, errlen, "Invalid request: args must be strings or numbers");
        return -EPROTO;
    }
    r->word[r->nwords++] = *out;
    *out = w;
    return 0;
}

int cg_ctl_request_parse(cg_ctl_request_t *r, const char *payload, size_t len, char *err,
                         size_t errlen)
{
    memset(r, 0, sizeof(*r));
    r->id = CG_STR_LIT("0"); /* message.get("id", 0) */
    cg_json_tok_t *t = malloc(CG_CTL_MAX_TOKENS * sizeof(*t));
    int rc;
    if (t == NULL)
        return -ENOMEM;
    int n = cg_json_parse(payload, len, t, CG_CTL_MAX_TOKENS);
    if (n < 0) {
        snprintf(err, errlen, "Invalid JSON%s", n == -E2BIG ? ": too many values" : "");
        rc = -EPROTO;
        goto out;
    }
    if (t[0].type != CG_JSON_OBJECT) {
        snprintf(err, errlen, "Invalid request: not a JSON object");
        rc = -EPROTO;
        goto out;
    }
    int id = cg_json_get(payload, t, 0, "id");
    int cmd = cg_json_get(payload, t, 0, "command");
    int args = cg_json_get(payload, t, 0, "args");
    if (id >= 0)
        r->id = (cg_str_t){payload + t[id].start - (t[id].type == CG_JSON_STRING),
                           t[id].end - t[id].start + 2u * (t[id].type == CG_JSON_STRING)};
    if ((cmd >= 0 && t[cmd].type != CG_JSON_STRING) ||
        (args >= 0 && t[args].type != CG_JSON_ARRAY && t[args].type != CG_JSON_NULL)) {
        snprintf(err, errlen, "Invalid request: command must be a string, args a list");
        rc = -EPROTO;
        goto out;
    }
    /* every word is at most as long as its text, plus its NUL */
    r->store = malloc(2 * len + 2);
    if (r->store == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    char *w = r->store;
    if (cmd >= 0) {
        ssize_t k = cg_json_unescape(payload, &t[cmd], w, len + 1);
        if (k < 0) {
            rc = -EPROTO;
            goto out;
        }
        char *text = w;
        w += k + 1;
        if ((rc = cg__shlex(text, (size_t)k, r, &w, err, errlen)) != 0)
            goto out;
    }
    if (r->nwords == 0) {
        /* command.strip() was empty: args alone do not make a command */
        snprintf(err, errlen, "Empty command");
        rc = CG_CTL_ANSWER_ERROR;
        goto out;
    }
    if (args >= 0 && t[args].type == CG_JSON_ARRAY) {
        uint32_t i = (uint32_t)args + 1;
        for (uint32_t m = 0; m < t[args].size; m++) {
            if ((rc = cg__arg(payload, &t[i], r, &w, err, errlen)) != 0)
                goto out;
            i = t[i].next;
        }
    }
    rc = 0;
out:
    free(t);
    return rc;
}

void cg_ctl_request_free(cg_ctl_request_t *r)
{
    free(r->store);
    r->store = NULL;
    r->nwords = 0;
}

/* Python's repr() of a short ASCII-ish str, for int()'s message. */
static void cg__repr(const char *s, char *out, size_t cap)
{
    char q = strchr(s, '\'') != NULL && strchr(s, '"') == NULL ? '"' : '\'';
    size_t n = 0;
    if (cap < 8)
        return;
    out[n++] = q;
    for (; *s && n + 6 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\\' || c == (unsigned char)q)
            n += (size_t)snprintf(out + n, cap - n, "\\%c", c);
        else if (c == '\n')
            n += (size_t)snprintf(out + n, cap - n, "\\n");
        else if (c == '\t')
            n += (size_t)snprintf(out + n, cap - n, "\\t");
        else if (c == '\r')
            n += (size_t)snprintf(out + n, cap - n, "\\r");
        else if (c < 0x20 || c == 0x7F)
            n += (size_t)snprintf(out + n, cap - n, "\\x%02x", c);
        else
            out[n++] = (char)c;
    }
    out[n++] = q;
    out[n] = '\0';
}

int cg_ctl_parse_int(const char *text, long long *out, char *err, size_t errlen)
{
    const char *s = text;
    while (cg_py_isspace_ascii((unsigned char)*s))
        s++;
    bool neg = *s == '-';
    if (*s == '+' || *s == '-')
        s++;
    unsigned long long v = 0;
    bool digit = false, range = false;
    for (; *s; s++) {
        if (*s == '_' && digit && s[1] >= '0' && s[1] <= '9')
            continue; /* PEP 515: one underscore between digits */
        if (*s < '0' || *s > '9')
            break;
        digit = true;
        if (v > (unsigned long long)INT64_MAX / 10)
            range = true;
        v = v * 10 + (unsigned)(*s - '0');
        if (v > (unsigned long long)INT64_MAX)
            range = true;
    }
    while (cg_py_isspace_ascii((unsigned char)*s))
        s++;
    if (!digit || *s != '\0') {
        char r[160];
        cg__repr(text, r, sizeof(r));
        snprintf(err, errlen, "invalid literal for int() with base 10: %s", r);
        return -EINVAL;
    }
    if (range) {
        snprintf(err, errlen, "%s is out of range", text);
        return -ERANGE;
    }
    *out = neg ? -(long long)v : (long long)v;
    return 0;
}

/* Seal o (which reserved 4 bytes) as a frame. */
static char *cg__seal(cg_json_out_t *o, size_t *outlen)
{
    if (o->failed || o->len - 4 > UINT32_MAX) {
        cg_json_out_free(o);
        return NULL;
    }
    uint32_t n = (uint32_t)(o->len - 4);
    unsigned char *b = (unsigned char *)o->buf;
    b[0] = (unsigned char)(n >> 24);
    b[1] = (unsigned char)(n >> 16);
    b[2] = (unsigned char)(n >> 8);
    b[3] = (unsigned char)n;
    *outlen = o->len;
    return o->buf;
}

static void cg__envelope(cg_json_out_t *o, cg_str_t id, const char *status)
{
    cg_json_out_init(o, 4, CG_CTL_MAX_ANSWER);
    cg_json_obj_begin(o);
    cg_json_key(o, "id");
    if (id.len == 0)
        cg_json_null(o);
    else
        cg_json_raw(o, id.ptr, id.len);
    cg_json_key(o, "status");
    cg_json_str(o, status);
}

char *cg_ctl_answer_ok(cg_str_t id, const char *data, size_t datalen, size_t *outlen)
{
    cg_json_out_t o;
    cg__envelope(&o, id, "ok");
    cg_json_key(&o, "data");
    cg_json_raw(&o, data, datalen);
    cg_json_obj_end(&o);
    return cg__seal(&o, outlen);
}

char *cg_ctl_answer_error(cg_str_t id, const char *msg, size_t *outlen)
{
    cg_json_out_t o;
    cg__envelope(&o, id, "error");
    cg_json_key(&o, "error");
    cg_json_str(&o, msg);
    cg_json_obj_end(&o);
    return cg__seal(&o, outlen);
}
