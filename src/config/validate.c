/*
 * validate.c - Gunicorn's validate_* functions, one per validator named in
 * settings.def. Each takes the Python-kind value a source supplied (string from
 * the command line, int/bool/list/... from a config file) and produces the
 * stored C value, or Gunicorn's error message. The messages are Gunicorn's
 * because users grep for them and tests compare them.
 */
#include "config_internal.h"

#include "../net/net.h"

#include <arpa/inet.h>
#include <glob.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* str() of the input, as Gunicorn's "%s" % val would show it. Owned. */
static char *cg__input_str(const cg_config_input_t *in)
{
    char buf[64];
    switch (in->kind) {
    case CG_IN_NONE:
        return cg_xstrdup("None");
    case CG_IN_STR:
    case CG_IN_OTHER:
        return cg_xstrdup(in->s);
    case CG_IN_INT:
        snprintf(buf, sizeof(buf), "%ld", in->i);
        return cg_xstrdup(buf);
    case CG_IN_BOOL:
        return cg_xstrdup(in->b ? "True" : "False");
    case CG_IN_CALLABLE:
        snprintf(buf, sizeof(buf), "<function %.40s>", in->qualname ? in->qualname : "?");
        return cg_xstrdup(buf);
    case CG_IN_LIST:
    case CG_IN_DICT: {
        size_t cap = 3, o = 0;
        char *r;
        bool dict = in->kind == CG_IN_DICT;
        size_t cnt = dict ? 2 * in->n : in->n;
        char **reprs = cg_xcalloc(cnt + 1, sizeof(char *));
        for (size_t k = 0; k < cnt; k++) {
            reprs[k] = cg__py_repr(in->items[k]);
            cap += strlen(reprs[k]) + 2;
        }
        r = cg_xmalloc(cap);
        r[o++] = dict ? '{' : '[';
        for (size_t k = 0; k < cnt; k++) {
            const char *sep = k == 0 ? "" : (dict && k % 2) ? ": " : ", ";
            o += (size_t)sprintf(r + o, "%s%s", sep, reprs[k]);
            free(reprs[k]);
        }
        free(reprs);
        r[o++] = dict ? '}' : ']';
        r[o] = '\0';
        return r;
    }
    }
    return cg_xstrdup("?");
}

static int cg__fail_with_value(char *err, size_t errlen, const char *fmt,
                               const cg_config_input_t *in)
{
    char *v = cg__input_str(in);
    cg__errf(err, errlen, fmt, v);
    free(v);
    return -EINVAL;
}

static const char *cg__py_type_name(const cg_config_input_t *in)
{
    switch (in->kind) {
    case CG_IN_NONE: return "NoneType";
    case CG_IN_STR: return "str";
    case CG_IN_INT: return "int";
    case CG_IN_BOOL: return "bool";
    case CG_IN_LIST: return "list";
    case CG_IN_DICT: return "dict";
    case CG_IN_CALLABLE: return "function";
    case CG_IN_OTHER: return in->type_name;
    }
    return "object";
}

/* int(val, 0) for strings, int(val) for ints and bools. */
static int cg__to_int(const cg_config_input_t *in, long *v, char *err, size_t errlen)
{
    int rc;
    char *r;

    switch (in->kind) {
    case CG_IN_INT:
        *v = in->i;
        return 0;
    case CG_IN_BOOL:
        *v = in->b;
        return 0;
    case CG_IN_STR:
        rc = cg__py_int(in->s, 0, v);
        if (rc == 0)
            return 0;
        r = cg__py_repr(in->s);
        if (rc == -ERANGE)
            cg__errf(err, errlen, "Value is out of range: %s", in->s);
        else
            cg__errf(err, errlen, "invalid literal for int() with base 0: %s", r);
        free(r);
        return -EINVAL;
    default:
        return cg__errf(err, errlen, "int() can't convert non-string with explicit base");
    }
}

CG_VALIDATOR(pos_int)
{
    long v;
    if (cg__to_int(in, &v, err, errlen) < 0)
        return -EINVAL;
    if (v < 0)
        return cg__errf(err, errlen, "Value must be positive: %ld", v);
    out->i = v;
    return 0;
}

/* RFC 9113 6.9.1: a flow-control window is at most 2^31-1. */
CG_VALIDATOR(http2_window_size)
{
    if (cg__validate_pos_int(d, in, out, err, errlen) < 0)
        return -EINVAL;
    if (out->i > 2147483647L)
        return cg__errf(err, errlen, "HTTP/2 window size must be at most 2147483647: %ld", out->i);
    return 0;
}

/* Advertising 0 concurrent streams would refuse every request. */
CG_VALIDATOR(http2_stream_limit)
{
    if (cg__validate_pos_int(d, in, out, err, errlen) < 0)
        return -EINVAL;
    if (out->i < 1)
        return cg__errf(err, errlen, "HTTP/2 max concurrent streams must be at least 1: %ld",
                        out->i);
    return 0;
}

CG_VALIDATOR(http2_frame_size)
{
    long v;
    if (cg__to_int(in, &v, err, errlen) < 0)
        return -EINVAL;
    if (v < 16384 || v > 16777215)
        return cg__errf(err, errlen,
                        "http2_max_frame_size must be between 16384 and 16777215, got %ld", v);
    out->i = v;
    return 0;
}

static bool cg__isdigits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* validate_user / validate_group: None means "who we are now". */
static int cg__validate_id(const cg_config_input_t *in, cg_config_value_t *out, bool user,
                           char *err, size_t errlen)
{
    switch (in->kind) {
    case CG_IN_NONE:
        out->i = user ? (long)geteuid() : (long)getegid();
        return 0;
    case CG_IN_INT:
        out->i = in->i;
        return 0;
    case CG_IN_BOOL:
        out->i = in->b;
        return 0;
    case CG_IN_STR:
        if (cg__isdigits(in->s) && cg__py_int(in->s, 10, &out->i) == 0)
            return 0;
        if (user) {
            struct passwd *pw = getpwnam(in->s);
            if (pw != NULL) {
                out->i = (long)pw->pw_uid;
                return 0;
            }
            return cg__errf(err, errlen, "No such user: '%s'", in->s);
        } else {
            struct group *gr = getgrnam(in->s);
            if (gr != NULL) {
                out->i = (long)gr->gr_gid;
                return 0;
            }
            return cg__errf(err, errlen, "No such group: '%s'", in->s);
        }
    default:
        return cg__errf(err, errlen, "'%s' object has no attribute 'isdigit'",
                        cg__py_type_name(in));
    }
}

CG_VALIDATOR(user)
{
    return cg__validate_id(in, out, true, err, errlen);
}

CG_VALIDATOR(group)
{
    return cg__validate_id(in, out, false, err, errlen);
}

static bool cg__ascii_ieq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

CG_VALIDATOR(bool)
{
    char *t;
    bool ok = true;

    switch (in->kind) {
    case CG_IN_NONE:
        out->b = false;
        return 0;
    case CG_IN_BOOL:
        out->b = in->b;
        return 0;
    case CG_IN_STR:
        t = cg__py_strip(in->s);
        if (cg__ascii_ieq(t, "true"))
            out->b = true;
        else if (cg__ascii_ieq(t, "false"))
            out->b = false;
        else
            ok = false;
        free(t);
        if (ok)
            return 0;
        return cg__errf(err, errlen, "Invalid boolean: %s", in->s);
    default:
        return cg__fail_with_value(err, errlen, "Invalid type for casting: %s", in);
    }
}

CG_VALIDATOR(string)
{
    if (in->kind == CG_IN_NONE) {
        out->s = NULL;
        return 0;
    }
    if (in->kind != CG_IN_STR)
        return cg__fail_with_value(err, errlen, "Not a string: %s", in);
    out->s = cg__py_strip(in->s);
    return 0;
}

CG_VALIDATOR(class)
{
    /* Class objects are resolved by the Python side, which passes their
     * dotted path; here only the string form exists. */
    return cg__validate_string(d, in, out, err, errlen);
}

/* os.path.normpath() of an absolute path. Owned. */
static char *cg__normpath_abs(const char *path)
{
    size_t n = strlen(path);
    char *r = cg_xmalloc(n + 2);
    size_t o = 0;
    const char *p = path;

    while (*p != '\0') {
        const char *s;
        size_t len;
        while (*p == '/')
            p++;
        s = p;
        while (*p != '\0' && *p != '/')
            p++;
        len = (size_t)(p - s);
        if (len == 0 || (len == 1 && s[0] == '.'))
            continue;
        if (len == 2 && s[0] == '.' && s[1] == '.') {
            while (o > 0 && r[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
            continue;
        }
        r[o++] = '/';
        memcpy(r + o, s, len);
        o += len;
    }
    if (o == 0)
        r[o++] = '/';
    r[o] = '\0';
    return r;
}

CG_VALIDATOR(chdir)
{
    cg_config_value_t s;
    char *joined, *path, *r;
    struct stat st;
    int rc = cg__validate_string(d, in, &s, err, errlen);

    if (rc < 0)
        return rc;
    if (s.s == NULL)
        return cg__errf(err, errlen,
                        "expected str, bytes or os.PathLike object, not NoneType");
    if (s.s[0] == '/') {
        joined = cg_xstrdup(s.s);
    } else {
        char *cwd = cg__getcwd();
        joined = cg__strf("%s/%s", cwd, s.s);
        free(cwd);
    }
    path = cg__normpath_abs(joined);
    free(joined);
    if (stat(path, &st) != 0) {
        r = cg__py_repr(s.s);
        cg__errf(err, errlen, "can't chdir to %s", r);
        free(r);
        free(path);
        free(s.s);
        return -EINVAL;
    }
    free(s.s);
    out->s = path;
    return 0;
}

CG_VALIDATOR(list_string)
{
    cg_strv_t v = {0};

    switch (in->kind) {
    case CG_IN_NONE:
        break;
    case CG_IN_STR:
        if (in->s[0] != '\0') {
            char *t = cg__py_strip(in->s);
            cg_strv_push(&v, t);
            free(t);
        }
        break;
    case CG_IN_LIST:
        for (size_t k = 0; k < in->n; k++) {
            char *t = cg__py_strip(in->items[k]);
            cg_strv_push(&v, t);
            free(t);
        }
        break;
    case CG_IN_INT:
    case CG_IN_BOOL:
        if ((in->kind == CG_IN_INT && in->i == 0) || (in->kind == CG_IN_BOOL && !in->b))
            break;
        /* fall through */
    default:
        return cg__errf(err, errlen, "'%s' object is not iterable", cg__py_type_name(in));
    }
    out->v = v;
    return 0;
}

CG_VALIDATOR(files_or_patterns)
{
    int rc = cg__validate_list_string(d, in, out, err, errlen);
    if (rc < 0)
        return rc;
    for (size_t k = 0; k < out->v.n; k++) {
        const char *e = out->v.v[k];
        struct stat st;
        if (strpbrk(e, "*?[") != NULL) {
            glob_t g;
            if (glob(e, 0, NULL, &g) != 0)
                fprintf(stderr, "RuntimeWarning: Pattern %s currently matches no files.\n", e);
            globfree(&g);
        } else if (stat(e, &st) != 0) {
            cg__errf(err, errlen, "File %s does not exists.", e);
            cg_strv_clear(&out->v);
            return -EINVAL;
        }
    }
    return 0;
}

/* validate_string_to_list: strip, split on ',', drop empty pieces, strip each. */
CG_VALIDATOR(string_to_list)
{
    cg_config_value_t s;
    cg_strv_t v = {0};
    int rc = cg__validate_string(d, in, &s, err, errlen);

    if (rc < 0)
        return rc;
    if (s.s != NULL) {
        char *p = s.s;
        while (*p != '\0') {
            char *c = strchr(p, ',');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            if (len > 0) {
                char *piece = cg_xstrndup(p, len), *t = cg__py_strip(piece);
                cg_strv_push(&v, t);
                free(t);
                free(piece);
            }
            p += len;
            if (*p == ',')
                p++;
        }
        free(s.s);
    }
    out->v = v;
    return 0;
}

/* ipaddress.ip_network(addr) with strict=True: 0, or -EINVAL and Python's
 * message. The parser is the runtime matcher's (src/net/allow.c). */
static int cg__check_network(const char *addr, char *err, size_t errlen)
{
    char shown[INET6_ADDRSTRLEN + 80];
    int rc = cg_net_allow_check(addr, shown, sizeof(shown));
    if (rc == -EDOM)
        return cg__errf(err, errlen, "%s has host bits set", shown);
    if (rc < 0) {
        char *r = cg__py_repr(addr);
        cg__errf(err, errlen, "%s does not appear to be an IPv4 or IPv6 network", r);
        free(r);
        return -EINVAL;
    }
    return 0;
}

CG_VALIDATOR(addr_list)
{
    int rc = cg__validate_string_to_list(d, in, out, err, errlen);
    if (rc < 0)
        return rc;
    for (size_t k = 0; k < out->v.n; k++) {
        if (strcmp(out->v.v[k], "*") == 0)
            continue;
        if (cg__check_network(out->v.v[k], err, errlen) < 0) {
            cg_strv_clear(&out->v);
            return -EINVAL;
        }
    }
    return 0;
}

/* Defaults spell dictionaries KEY=VALUE,KEY=VALUE (no key or value of
 * Gunicorn's defaults contains ',' or '='). */
CG_VALIDATOR(dict)
{
    cg_strv_t v = {0};

    if (in->kind == CG_IN_DICT) {
        for (size_t k = 0; k < 2 * in->n; k++)
            cg_strv_push(&v, in->items[k]);
    } else if (in->kind == CG_IN_STR && in->src == CG_SRC_DEFAULT) {
        const char *p = in->s;
        while (*p != '\0') {
            const char *c = strchr(p, ','), *end = c ? c : p + strlen(p);
            const char *eq = memchr(p, '=', (size_t)(end - p));
            char *k, *val;
            if (eq == NULL) {
                cg_strv_clear(&v);
                return cg__errf(err, errlen, "Value is not a dictionary: %s ", in->s);
            }
            k = cg_xstrndup(p, (size_t)(eq - p));
            val = cg_xstrndup(eq + 1, (size_t)(end - eq - 1));
            cg_strv_push(&v, k);
            cg_strv_push(&v, val);
            free(k);
            free(val);
            p = c ? c + 1 : end;
        }
    } else if (in->kind == CG_IN_NONE && in->src == CG_SRC_DEFAULT) {
        /* {} */
    } else {
        return cg__fail_with_value(err, errlen, "Value is not a dictionary: %s ", in);
    }
    out->v = v;
    return 0;
}

static int cg__validate_callable(const cg_config_input_t *in, cg_config_value_t *out, char *err,
                                 size_t errlen)
{
    if (in->kind == CG_IN_CALLABLE) {
        out->p = in->obj;
        return 0;
    }
    if (in->kind == CG_IN_STR) {
        if (strchr(in->s, '.') == NULL)
            return cg__errf(err, errlen,
                            "Value '%s' is not import string. "
                            "Format: module[.submodules...].object",
                            in->s);
        cg__errf(err, errlen, "importing the hook %s needs a Python config loader", in->s);
        return -ENOTSUP;
    }
    return cg__fail_with_value(err, errlen, "Value is not callable: %s", in);
}

CG_VALIDATOR(callable1)
{
    return cg__validate_callable(in, out, err, errlen);
}

CG_VALIDATOR(callable2)
{
    return cg__validate_callable(in, out, err, errlen);
}

CG_VALIDATOR(callable3)
{
    return cg__validate_callable(in, out, err, errlen);
}

CG_VALIDATOR(post_request)
{
    return cg__validate_callable(in, out, err, errlen);
}

int cg_config_callable_arity(const cg_setting_desc_t *d)
{
    if (d->validate == cg__validate_callable1)
        return 1;
    if (d->validate == cg__validate_callable2)
        return 2;
    if (d->validate == cg__validate_callable3)
        return 3;
    if (d->validate == cg__validate_post_request)
        return 0;
    return -1;
}

/*
 * Gunicorn's util.parse_address(val, default_port="8125") as used for StatsD.
 * Returns 0 and fills either *path (unix), or *host and *port; -EINVAL when the
 * port (or fd) is not an integer.
 */
static int cg__statsd_parse(const char *val, char **host, long *port, char **path, bool *fd)
{
    const char *net = val;
    char *h;
    const char *pstr = "8125";
    char *pbuf = NULL;
    int rc;

    *host = *path = NULL;
    *fd = false;
    if (strncmp(val, "unix:", 5) == 0) {
        const char *p = val + 5;
        /* re.split(r'unix:(//)?') keeps what follows the last "unix:" */
        const char *last;
        while ((last = strstr(p, "unix:")) != NULL)
            p = last + 5;
        if (strncmp(p, "//", 2) == 0 && p == val + 5)
            p += 2;
        *path = cg_xstrdup(p);
        return 0;
    }
    if (strncmp(val, "fd://", 5) == 0) {
        *fd = true;
        return cg__py_int(val + 5, 10, port);
    }
    if (strncmp(val, "tcp://", 6) == 0)
        net = val + 6;
    if (strchr(net, '[') != NULL && strchr(net, ']') != NULL) {
        const char *rb = strchr(net, ']');
        const char *sep = strstr(net, "]:");
        h = cg_xstrndup(net + 1, rb > net ? (size_t)(rb - net - 1) : 0);
        if (sep != NULL) {
            const char *next = strstr(sep + 2, "]:");
            pbuf = next ? cg_xstrndup(sep + 2, (size_t)(next - sep - 2)) : cg_xstrdup(sep + 2);
            pstr = pbuf;
        }
    } else if (strchr(net, ':') != NULL) {
        const char *c = strchr(net, ':');
        const char *c2 = strchr(c + 1, ':');
        h = cg_xstrndup(net, (size_t)(c - net));
        pbuf = c2 ? cg_xstrndup(c + 1, (size_t)(c2 - c - 1)) : cg_xstrdup(c + 1);
        pstr = pbuf;
    } else if (*net == '\0') {
        h = cg_xstrdup("0.0.0.0");
    } else {
        h = cg_xstrdup(net);
    }
    rc = cg__py_int(pstr, 10, port);
    free(pbuf);
    if (rc < 0) {
        free(h);
        return -EINVAL;
    }
    for (char *p = h; *p != '\0'; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
    *host = h;
    return 0;
}

static bool cg__statsd_unix_port(const char *val, long *port)
{
    return strncmp(val, "unix:", 5) == 0 && cg__isdigits(val + 5) &&
           cg__py_int(val + 5, 10, port) == 0;
}

/* What --print-config shows for a valid statsd_host value. Owned. */
char *cg__statsd_repr(const char *val)
{
    char *host, *path, *r, *hr;
    long port;
    bool fd;

    if (cg__statsd_unix_port(val, &port)) {
        r = cg_xmalloc(64);
        snprintf(r, 64, "('unix', %ld)", port);
        return r;
    }
    if (cg__statsd_parse(val, &host, &port, &path, &fd) < 0)
        return cg_xstrdup(val);
    if (path != NULL)
        return path;
    if (fd) {
        r = cg_xmalloc(32);
        snprintf(r, 32, "%ld", port);
        return r;
    }
    hr = cg__py_repr(host);
    r = cg__strf("(%s, %ld)", hr, port);
    free(hr);
    free(host);
    return r;
}

CG_VALIDATOR(statsd_address)
{
    char *host, *path;
    long port;
    bool fd;
    int rc = cg__validate_string(d, in, out, err, errlen);

    if (rc < 0 || out->s == NULL)
        return rc;
    if (cg__statsd_unix_port(out->s, &port))
        return 0;
    if (cg__statsd_parse(out->s, &host, &port, &path, &fd) < 0) {
        free(out->s);
        out->s = NULL;
        return cg__errf(err, errlen, "Value must be one of ('host:port', 'unix://PATH')");
    }
    free(host);
    free(path);
    return 0;
}

int cg_config_statsd_address(const char *val, char **host, long *port, char **path)
{
    bool fd;
    *host = *path = NULL;
    if (cg__statsd_unix_port(val, port)) {
        *host = cg_xstrdup("unix");
        return 0;
    }
    if (cg__statsd_parse(val, host, port, path, &fd) < 0)
        return -EINVAL;
    if (fd) {
        *host = NULL;
        return -EINVAL;
    }
    return 0;
}

CG_VALIDATOR(reload_engine)
{
    char *r;
    if (in->kind == CG_IN_STR &&
        (strcmp(in->s, "auto") == 0 || strcmp(in->s, "poll") == 0 ||
         strcmp(in->s, "inotify") == 0)) {
        out->s = cg_xstrdup(in->s);
        return 0;
    }
    if (in->kind != CG_IN_STR)
        return cg__fail_with_value(err, errlen, "Invalid reload_engine: %s", in);
    r = cg__py_repr(in->s);
    cg__errf(err, errlen, "Invalid reload_engine: %s", r);
    free(r);
    return -EINVAL;
}

/* val.lower().strip() of a str input. Owned. */
static char *cg__lower_strip(const char *s)
{
    char *t = cg__py_strip(s);
    for (char *p = t; *p != '\0'; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
    return t;
}

/* A choice among words after lower()/strip(); None gives none_value. */
static int cg__choice(const cg_config_input_t *in, cg_config_value_t *out, const char *none_value,
                      const char *const *words, const char *bad_fmt, const char *type_msg,
                      char *err, size_t errlen)
{
    char *t;
    if (in->kind == CG_IN_NONE) {
        out->s = none_value ? cg_xstrdup(none_value) : NULL;
        return 0;
    }
    if (in->kind != CG_IN_STR) {
        if (strstr(type_msg, "%s") != NULL)
            return cg__fail_with_value(err, errlen, type_msg, in);
        return cg__errf(err, errlen, "%s", type_msg);
    }
    t = cg__lower_strip(in->s);
    for (size_t k = 0; words[k] != NULL; k++) {
        if (strcmp(t, words[k]) == 0) {
            out->s = t;
            return 0;
        }
    }
    if (strstr(bad_fmt, "%s") != NULL)
        cg__errf(err, errlen, bad_fmt, t);
    else
        cg__errf(err, errlen, "%s", bad_fmt);
    free(t);
    return -EINVAL;
}

CG_VALIDATOR(proxy_protocol)
{
    static const char *const from[] = {"false", "off", "0", "none", "true", "auto", "1", "v1",
                                       "v2", NULL};
    static const char *const to[] = {"off", "off", "off", "off", "auto", "auto", "auto", "v1",
                                     "v2"};
    int rc;

    if (in->kind == CG_IN_BOOL) {
        out->s = cg_xstrdup(in->b ? "auto" : "off");
        return 0;
    }
    rc = cg__choice(in, out, "off", from, "proxy_protocol must be: off, v1, v2, or auto",
                    "proxy_protocol must be string or bool", err, errlen);
    if (rc < 0 || in->kind == CG_IN_NONE)
        return rc;
    for (size_t k = 0; from[k] != NULL; k++) {
        if (strcmp(out->s, from[k]) == 0) {
            free(out->s);
            out->s = cg_xstrdup(to[k]);
            break;
        }
    }
    return 0;
}

CG_VALIDATOR(http_protocols)
{
    cg_strv_t v = {0};
    char *t;
    const char *p;

    if (in->kind == CG_IN_NONE)
        goto h1;
    if (in->kind != CG_IN_STR)
        return cg__errf(err, errlen, "http_protocols must be a string");
    t = cg__py_strip(in->s);
    for (p = t; *p != '\0';) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        char *piece = cg_xstrndup(p, len), *w = cg__lower_strip(piece);
        free(piece);
        if (w[0] != '\0') {
            /* Gunicorn 27 dropped h3 ("future") from the valid protocols */
            if (strcmp(w, "h1") != 0 && strcmp(w, "h2") != 0) {
                cg__errf(err, errlen, "Invalid protocol '%s'. Valid protocols: h1, h2", w);
                free(w);
                free(t);
                cg_strv_clear(&v);
                return -EINVAL;
            }
            cg_strv_push(&v, w);
        }
        free(w);
        p += len;
        if (*p == ',')
            p++;
    }
    free(t);
    for (size_t a = 0; a < v.n; a++) {
        for (size_t b = a + 1; b < v.n; b++) {
            if (strcmp(v.v[a], v.v[b]) == 0) {
                cg_strv_clear(&v);
                return cg__errf(err, errlen, "Duplicate protocols specified");
            }
        }
    }
    if (v.n > 0) {
        out->v = v;
        return 0;
    }
h1:
    cg_strv_push(&v, "h1");
    out->v = v;
    return 0;
}

CG_VALIDATOR(http2_cleartext)
{
    static const char *const words[] = {"off", "prior-knowledge", "upgrade", "both", NULL};
    if (in->kind == CG_IN_BOOL) {
        out->s = cg_xstrdup(in->b ? "prior-knowledge" : "off");
        return 0;
    }
    return cg__choice(in, out, "off", words, "Invalid http2_cleartext: %s",
                      "Invalid type for casting: %s", err, errlen);
}

CG_VALIDATOR(header_map)
{
    static const char *const words[] = {"drop", "refuse", "dangerous", NULL};
    int rc = cg__choice(in, out, NULL, words, "Invalid header map behaviour: %s",
                        "Invalid type for casting: %s", err, errlen);
    /* Gunicorn quotes the original text here, not the normalised one. */
    if (rc < 0 && in->kind == CG_IN_STR)
        cg__errf(err, errlen, "Invalid header map behaviour: %s", in->s);
    return rc;
}

CG_VALIDATOR(asgi_loop)
{
    static const char *const words[] = {"auto", "asyncio", "uvloop", NULL};
    return cg__choice(in, out, "auto", words, "Invalid ASGI loop: %s",
                      "Invalid type for casting: %s", err, errlen);
}

CG_VALIDATOR(asgi_lifespan)
{
    static const char *const words[] = {"auto", "on", "off", NULL};
    return cg__choice(in, out, "auto", words, "Invalid ASGI lifespan: %s",
                      "Invalid type for casting: %s", err, errlen);
}

CG_VALIDATOR(http_parser)
{
    static const char *const words[] = {"auto", "fast", "python", NULL};
    return cg__choice(in, out, "auto", words, "http_parser must be one of: auto, fast, python",
                      "http_parser must be a string", err, errlen);
}

/* Accepts anything, as Gunicorn does, and warns unless it is the default. */
CG_VALIDATOR(ssl_version)
{
    if (in->src != CG_SRC_DEFAULT && !(in->kind == CG_IN_INT && in->i == 2))
        fprintf(stderr, "Warning: option `ssl_version` is deprecated and it is ignored. "
                        "Use ssl_context instead.\n");
    out->s = cg__input_str(in);
    return 0;
}
