/*
 * print.c - the configuration as text: Gunicorn's --print-config, argparse's
 * --help (grouped by section), and the JSON descriptor dump docs are built from.
 */
#include "config_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static const void *cg__cfield(const cg_config_t *cfg, const cg_setting_desc_t *d)
{
    return (const char *)cfg + d->offset;
}

/* raw_values: a dict whose values are already Python reprs (logconfig_dict,
 * whose nested values src/python keeps as repr() text). */
static void cg__print_list(const cg_strv_t *v, bool dict, bool raw_values, FILE *out)
{
    fputc(dict ? '{' : '[', out);
    for (size_t i = 0; i < v->n; i++) {
        bool raw = raw_values && i % 2;
        char *r = raw ? NULL : cg__py_repr(v->v[i]);
        fprintf(out, "%s%s", i == 0 ? "" : (dict && i % 2) ? ": " : ", ", raw ? v->v[i] : r);
        free(r);
    }
    fputc(dict ? '}' : ']', out);
}

/* str() of the value Gunicorn would hold for this setting. Hooks: as
 * --print-config shows them ("<Qualname()>"), or with str_hooks as str() of
 * a function reads ("<function Qualname at 0x...>"; Gunicorn's default
 * hooks, which are no Python objects here, without the address). */
static void cg__print_value(const cg_config_t *cfg, const cg_setting_desc_t *d, bool str_hooks,
                            FILE *out)
{
    const void *f = cg__cfield(cfg, d);
    switch (d->type) {
    case CG_T_INT:
    case CG_T_OCTAL:
        fprintf(out, "%ld", *(const long *)f);
        break;
    case CG_T_BOOL:
        if (d->id == CG_SETTING_sendfile)
            fputs(cfg->source[d->id] == CG_SRC_DEFAULT || cfg->none[d->id] ? "None"
                  : cfg->sendfile_raw                  ? "True"
                                                       : "False",
                  out);
        else if (cfg->none[d->id])
            fputs("None", out);
        else
            fputs(*(const bool *)f ? "True" : "False", out);
        break;
    case CG_T_STR: {
        const char *s = *(char *const *)f;
        if (s == NULL) {
            fputs("None", out);
        } else if (d->id == CG_SETTING_statsd_host) {
            char *r = cg__statsd_repr(s);
            fputs(r, out);
            free(r);
        } else {
            fputs(s, out);
        }
        break;
    }
    case CG_T_LIST:
    case CG_T_CSV:
        cg__print_list((const cg_strv_t *)f, false, false, out);
        break;
    case CG_T_DICT:
        cg__print_list((const cg_strv_t *)f, true, d->id == CG_SETTING_logconfig_dict, out);
        break;
    case CG_T_CALLABLE: {
        const char *q = cfg->callable_name[d->id];
        const void *obj = *(void *const *)f;
        if (!str_hooks)
            fprintf(out, "<%s()>", q != NULL ? q : d->def);
        else if (q != NULL && obj != NULL)
            fprintf(out, "<function %s at %p>", q, obj);
        else
            fprintf(out, "<function %s>", q != NULL ? q : d->def);
        break;
    }
    }
}

static int cg__desc_cmp(const void *a, const void *b)
{
    const cg_setting_desc_t *x = *(const cg_setting_desc_t *const *)a;
    const cg_setting_desc_t *y = *(const cg_setting_desc_t *const *)b;
    return strcmp(x->name, y->name);
}

void cg_config_print(const cg_config_t *cfg, FILE *out)
{
    const cg_setting_desc_t *sorted[CG_SETTING__COUNT];
    int width = 0;

    for (size_t i = 0; i < CG_SETTING__COUNT; i++) {
        sorted[i] = &cg_config_settings[i];
        if ((int)strlen(sorted[i]->name) > width)
            width = (int)strlen(sorted[i]->name);
    }
    qsort(sorted, CG_SETTING__COUNT, sizeof(sorted[0]), cg__desc_cmp);
    for (size_t i = 0; i < CG_SETTING__COUNT; i++) {
        fprintf(out, "%-*s = ", width, sorted[i]->name);
        cg__print_value(cfg, sorted[i], false, out);
        fputc('\n', out);
    }
}

char *cg_config_format_current(const cg_config_t *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (out == NULL)
        abort(); /* out of memory, as cg_xmalloc() */
    fputs("Current configuration:", out);
    /* Gunicorn sorts with Setting.__lt__ (same section and lower order),
     * which leaves its already ordered table as it is: definition order. */
    for (size_t i = 0; i < CG_SETTING__COUNT; i++) {
        fprintf(out, "\n  %s: ", cg_config_settings[i].name);
        cg__print_value(cfg, &cg_config_settings[i], true, out);
    }
    if (fclose(out) != 0 || text == NULL)
        abort(); /* out of memory, as cg_xmalloc() */
    return text;
}

/* ---- --help ---------------------------------------------------------------- */

static int cg__term_width(void)
{
    const char *c = getenv("COLUMNS");
    struct winsize ws;
    long n;

    if (c != NULL && cg__py_int(c, 10, &n) == 0 && n > 0 && n < 10000)
        return (int)n - 2;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col - 2;
    return 80 - 2;
}

/* textwrap-like fill: words (split after inner hyphens too) greedily packed
 * into lines of at most width columns, continuation lines indented. */
static void cg__wrap(const char *text, int width, int indent, FILE *out)
{
    int col = 0;
    bool first = true;
    const char *p = text;

    while (*p != '\0') {
        const char *w, *e;
        bool space_before = !first;
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        /* one word, cut into hyphen-terminated chunks */
        w = p;
        while (*p != '\0' && *p != ' ')
            p++;
        while (w < p) {
            int len, need;
            e = w;
            while (e < p) {
                if (*e == '-' && e > w && e + 1 < p && e[1] != '-' && e[-1] != '-') {
                    e++;
                    break;
                }
                e++;
            }
            len = (int)(e - w);
            need = (space_before ? 1 : 0) + len;
            if (!first && col + need > width) {
                fprintf(out, "\n%*s", indent, "");
                col = 0;
                space_before = false;
                need = len;
            }
            if (space_before)
                fputc(' ', out);
            fwrite(w, 1, (size_t)len, out);
            col += need;
            first = false;
            space_before = false;
            w = e;
        }
    }
    fputc('\n', out);
}

static void cg__help_item(const char *invocation, const char *help, int width, FILE *out)
{
    const int help_pos = 24, action_width = help_pos - 2 - 2;
    int help_width = width - help_pos;

    if (help_width < 11)
        help_width = 11;
    if ((int)strlen(invocation) <= action_width)
        fprintf(out, "  %-*s  ", action_width, invocation);
    else
        fprintf(out, "  %s\n%*s", invocation, help_pos, "");
    cg__wrap(help, help_width, help_pos, out);
}

void cg_config_print_help(const char *prog, FILE *out)
{
    int width = cg__term_width();
    cg_config_t def;
    char err[256];
    const char *section = NULL;

    if (cg_config_init(&def, err, sizeof(err)) < 0) {
        cg_config_free(&def);
        cg_config_init(&def, err, sizeof(err)); /* partial defaults are fine for help */
    }
    fprintf(out, "usage: %s [OPTIONS] [APP_MODULE]\n\noptions:\n", prog);
    cg__help_item("-h, --help", "show this help message and exit", width, out);
    cg__help_item("-v, --version", "show program's version number and exit", width, out);

    /* Sections in the order settings.def first uses them. */
    for (size_t s = 0; s < CG_SETTING__COUNT; s++) {
        const char *sec = cg_config_settings[s].section;
        bool seen = false, any = false;
        for (size_t k = 0; k < s; k++)
            if (strcmp(cg_config_settings[k].section, sec) == 0)
                seen = true;
        if (seen)
            continue;
        for (size_t i = s; i < CG_SETTING__COUNT; i++)
            if (strcmp(cg_config_settings[i].section, sec) == 0 && cg_config_settings[i].flags)
                any = true;
        if (!any)
            continue;
        section = sec;
        fprintf(out, "\n%s:\n", section);
        for (size_t i = s; i < CG_SETTING__COUNT; i++) {
            const cg_setting_desc_t *d = &cg_config_settings[i];
            char *flags, *inv, *help, *meta = NULL, *dflt = NULL;
            size_t cap, len = 0, dlen = 0;
            FILE *mem;

            if (strcmp(d->section, sec) != 0 || d->flags == NULL)
                continue;
            if (d->meta == NULL) {
                meta = cg_xstrdup(d->name);
                for (char *c = meta; *c; c++)
                    if (*c >= 'a' && *c <= 'z')
                        *c = (char)(*c - 32);
            }
            flags = cg_xstrdup(d->flags);
            cap = 4 * strlen(flags) + 8 * (strlen(d->meta ? d->meta : meta) + 4);
            inv = cg_xmalloc(cap);
            inv[0] = '\0';
            for (char *tok = strtok(flags, "|"); tok; tok = strtok(NULL, "|")) {
                const char *m = d->meta ? d->meta : meta;
                if (d->action == CG_A_TRUE || d->action == CG_A_FALSE)
                    len += (size_t)sprintf(inv + len, "%s%s", len ? ", " : "", tok);
                else if (d->action == CG_A_OPTIONAL)
                    len += (size_t)sprintf(inv + len, "%s%s [%s]", len ? ", " : "", tok, m);
                else
                    len += (size_t)sprintf(inv + len, "%s%s %s", len ? ", " : "", tok, m);
            }
            mem = open_memstream(&dflt, &dlen);
            if (d->type == CG_T_CSV) {
                const cg_strv_t *v = (const cg_strv_t *)cg__cfield(&def, d);
                for (size_t k = 0; k < v->n; k++)
                    fprintf(mem, "%s%s", k ? "," : "", v->v[k]);
            } else {
                cg__print_value(&def, d, false, mem);
            }
            fclose(mem);
            help = cg__strf("%s [%s]", d->help, dflt);
            cg__help_item(inv, help, width, out);
            free(help);
            free(dflt);
            free(inv);
            free(flags);
            free(meta);
        }
    }
    cg_config_free(&def);
}

/* ---- JSON dump ------------------------------------------------------------- */

static void cg__json_str(const char *s, FILE *out)
{
    if (s == NULL) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", out);
        else if (*p == '\t')
            fputs("\\t", out);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static const char *const cg__type_names[] = {"int", "octal", "bool", "str",
                                             "list", "csv", "dict", "callable"};
static const char *const cg__action_names[] = {NULL,         "store",        "int",    "auto_int",
                                               "store_true", "store_false", "append", "optional"};

/* Defaults that depend on the environment or on Python, described for docs. */
static const char *cg__default_doc(const cg_setting_desc_t *d)
{
    switch (d->id) {
    case CG_SETTING_bind:
        return "['127.0.0.1:8000'], or ['0.0.0.0:$PORT'] when PORT is set";
    case CG_SETTING_workers:
        return "1, or $WEB_CONCURRENCY when set";
    case CG_SETTING_forwarded_allow_ips:
        return "127.0.0.1,::1, or $FORWARDED_ALLOW_IPS when set";
    case CG_SETTING_chdir:
        return "the current directory";
    case CG_SETTING_user:
        return "the current effective user id";
    case CG_SETTING_group:
        return "the current effective group id";
    case CG_SETTING_sendfile:
        return "None: sendfile() is used unless $SENDFILE disables it";
    case CG_SETTING_control_socket:
        return "$XDG_RUNTIME_DIR/gunicorn.ctl, else ~/.gunicorn/gunicorn.ctl";
    case CG_SETTING_secure_scheme_headers:
        return "{'X-FORWARDED-PROTOCOL': 'ssl', 'X-FORWARDED-PROTO': 'https', "
               "'X-FORWARDED-SSL': 'on'}";
    case CG_SETTING_logconfig_dict:
        return "{}";
    default:
        return NULL;
    }
}

void cg_config_dump_json(FILE *out)
{
    fputs("[\n", out);
    for (size_t i = 0; i < CG_SETTING__COUNT; i++) {
        const cg_setting_desc_t *d = &cg_config_settings[i];
        const char *doc = cg__default_doc(d);
        char hook[160];

        fputs("  {\"name\": ", out);
        cg__json_str(d->name, out);
        fputs(", \"section\": ", out);
        cg__json_str(d->section, out);
        fputs(", \"cli\": ", out);
        if (d->flags == NULL) {
            fputs("null", out);
        } else {
            char *flags = cg_xstrdup(d->flags);
            bool first = true;
            fputc('[', out);
            for (char *tok = strtok(flags, "|"); tok; tok = strtok(NULL, "|")) {
                if (!first)
                    fputs(", ", out);
                cg__json_str(tok, out);
                first = false;
            }
            fputc(']', out);
            free(flags);
        }
        fputs(", \"action\": ", out);
        cg__json_str(cg__action_names[d->action], out);
        fputs(", \"type\": ", out);
        cg__json_str(cg__type_names[d->type], out);
        fputs(", \"meta\": ", out);
        cg__json_str(d->meta, out);
        fputs(", \"default\": ", out);
        cg__json_str(d->type == CG_T_CALLABLE ? NULL : d->def, out);
        if (d->type == CG_T_CALLABLE) {
            snprintf(hook, sizeof(hook), "Gunicorn's default hook %s", d->def);
            doc = hook;
        }
        fputs(", \"default_doc\": ", out);
        cg__json_str(doc, out);
        if (d->type == CG_T_INT || d->type == CG_T_OCTAL)
            fprintf(out, ", \"max\": %ld", d->max);
        if (i >= CG_SETTING__GUNICORN_COUNT)
            fputs(", \"cgunicorn_only\": true", out);
        fputs(", \"help\": ", out);
        cg__json_str(d->help, out);
        fputs(i + 1 < CG_SETTING__COUNT ? "},\n" : "}\n", out);
    }
    fputs("]\n", out);
}
