/*
 * config_internal.h - what the files of src/config share and nobody else uses.
 */
#ifndef CG_CONFIG_INTERNAL_H
#define CG_CONFIG_INTERNAL_H

#include "config.h"

/* The kind of Python value a validator receives. */
typedef enum cg_config_input_kind {
    CG_IN_NONE,
    CG_IN_STR,
    CG_IN_INT,
    CG_IN_BOOL,
    CG_IN_LIST,
    CG_IN_DICT,
    CG_IN_CALLABLE,
    CG_IN_OTHER, /* any other Python value: s is its str(), type_name its type */
} cg_config_input_kind_t;

struct cg_config_input {
    cg_config_input_kind_t kind;
    cg_config_source_t src;
    const char *s;              /* CG_IN_STR, CG_IN_OTHER */
    const char *type_name;      /* CG_IN_OTHER */
    long i;                     /* CG_IN_INT */
    bool b;                     /* CG_IN_BOOL */
    const char *const *items;   /* CG_IN_LIST (n items), CG_IN_DICT (n pairs) */
    size_t n;
    void *obj;                  /* CG_IN_CALLABLE */
    const char *qualname;
};

union cg_config_value {
    long i;
    bool b;
    char *s;
    cg_strv_t v;
    void *p;
};

typedef struct cg_config_input cg_config_input_t;
typedef union cg_config_value cg_config_value_t;

#define CG_VALIDATOR(x)                                                                          \
    int cg__validate_##x(const cg_setting_desc_t *d, const cg_config_input_t *in,              \
                         cg_config_value_t *out, char *err, size_t errlen)

CG_VALIDATOR(pos_int);
CG_VALIDATOR(http2_frame_size);
CG_VALIDATOR(http2_window_size);
CG_VALIDATOR(http2_stream_limit);
CG_VALIDATOR(user);
CG_VALIDATOR(group);
CG_VALIDATOR(bool);
CG_VALIDATOR(string);
CG_VALIDATOR(chdir);
CG_VALIDATOR(class);
CG_VALIDATOR(list_string);
CG_VALIDATOR(files_or_patterns);
CG_VALIDATOR(addr_list);
CG_VALIDATOR(string_to_list);
CG_VALIDATOR(dict);
CG_VALIDATOR(callable1);
CG_VALIDATOR(callable2);
CG_VALIDATOR(callable3);
CG_VALIDATOR(post_request);
CG_VALIDATOR(statsd_address);
CG_VALIDATOR(reload_engine);
CG_VALIDATOR(proxy_protocol);
CG_VALIDATOR(http_protocols);
CG_VALIDATOR(http2_cleartext);
CG_VALIDATOR(header_map);
CG_VALIDATOR(asgi_loop);
CG_VALIDATOR(asgi_lifespan);
CG_VALIDATOR(http_parser);
CG_VALIDATOR(ssl_version);

/* Run a validator and store the result (precedence respected). */
int cg__config_set(cg_config_t *cfg, const cg_setting_desc_t *d, const cg_config_input_t *in,
                   char *err, size_t errlen);

/* pysyntax.c: Python's spellings, so messages and parsing match Gunicorn. */
int cg__py_int(const char *s, int base, long *out);
int cg__py_auto_int(const char *s, long *out);
char *cg__py_repr(const char *s);
char *cg__py_strip(const char *s);
int cg__shlex_split(const char *s, cg_strv_t *out, const char **msg);
int cg__errf(char *err, size_t errlen, const char *fmt, ...) CG_PRINTF(3, 4);
char *cg__getcwd(void);
char *cg__strf(const char *fmt, ...) CG_PRINTF(1, 2);

char *cg__statsd_repr(const char *val);

/* load.c */
const char *cg__prog_name(const char *argv0);

#endif
