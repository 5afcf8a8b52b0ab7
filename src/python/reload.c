/*
 * reload.c - Gunicorn's --reload in a worker: a thread of its own watches the
 * source files of every loaded module (sys.modules, rescanned each pass so
 * modules imported later are watched too) plus reload_extra_files (globs
 * re-expanded each pass), and ends the worker when one changes.
 *
 * The thread holds the GIL only while it lists files; stat(2) and inotify
 * run without it. It owns no Python object between passes.
 *
 * Engines, as Gunicorn picks them: "poll" compares mtimes once a second;
 * "inotify" (and "auto" when Python's `inotify` package is importable, which
 * is what Gunicorn's choice depends on) watches the directories holding
 * those files and reacts to any event in them. "inotify" without that
 * package fails the worker's boot with Gunicorn's ImportError.
 */
#include "python.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CG__INTERVAL_MS 1000

/* A set of paths, optionally with an mtime each: open addressing, FNV-1a. */
typedef struct cg__entry {
    char *path; /* owned; NULL: empty slot */
    struct timespec mtime;
} cg__entry_t;

typedef struct cg__set {
    cg__entry_t *slots;
    size_t cap, n;
} cg__set_t;

struct cg_py_reloader {
    cg_worker_t *w;
    bool inotify;
    cg_strv_t extra;    /* literal extra files */
    cg_strv_t patterns; /* extra glob patterns */
    pthread_mutex_t lock; /* guards extra (add_file may run while the thread lists) */
    pthread_t thread;
    bool started;
    int stop_pipe[2];
    cg__set_t seen; /* poll: path -> first mtime seen; inotify: watched dirs */
    int ifd;        /* inotify fd, -1 */
};

static uint64_t cg__hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The slot of path (existing, or the empty one where it would go). */
static cg__entry_t *cg__set_slot(cg__set_t *s, const char *path)
{
    size_t i = (size_t)cg__hash(path) & (s->cap - 1);
    while (s->slots[i].path != NULL && strcmp(s->slots[i].path, path) != 0)
        i = (i + 1) & (s->cap - 1);
    return &s->slots[i];
}

/* Find path, adding it when missing (*added says which). */
static cg__entry_t *cg__set_get(cg__set_t *s, const char *path, bool *added)
{
    if ((s->n + 1) * 2 > s->cap) {
        cg__set_t bigger = {cg_xcalloc(s->cap ? s->cap * 2 : 256, sizeof(cg__entry_t)),
                            s->cap ? s->cap * 2 : 256, s->n};
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i].path != NULL)
                *cg__set_slot(&bigger, s->slots[i].path) = s->slots[i];
        free(s->slots);
        *s = bigger;
    }
    cg__entry_t *e = cg__set_slot(s, path);
    *added = e->path == NULL;
    if (*added) {
        e->path = cg_xstrdup(path);
        s->n++;
    }
    return e;
}

static void cg__set_free(cg__set_t *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slots[i].path);
    free(s->slots);
    memset(s, 0, sizeof(*s));
}

/* Append the str (or bytes) `o` to out as a filesystem path. */
static void cg__push_path(cg_strv_t *out, PyObject *o, bool strip_compiled)
{
    PyObject *b = NULL;
    if (PyUnicode_Check(o))
        b = PyUnicode_EncodeFSDefault(o); /* new */
    else if (PyBytes_Check(o))
        b = Py_NewRef(o);
    if (b == NULL) {
        PyErr_Clear();
        return;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(b);
    char *s = cg_xstrndup(PyBytes_AS_STRING(b), (size_t)n);
    Py_DECREF(b);
    /* Gunicorn watches foo.py for a module loaded from foo.pyc/foo.pyo */
    if (strip_compiled && n >= 3 && strncmp(s + n - 3, "py", 2) == 0 &&
        (s[n - 1] == 'c' || s[n - 1] == 'o'))
        s[n - 1] = '\0';
    if (s[0] != '\0')
        cg_strv_push(out, s);
    free(s);
}

/* Every file to watch this pass: module files, extra files, the current
 * expansion of the extra patterns (Python's glob, recursive, as Gunicorn). */
static void cg__list_files(cg_py_reloader_t *r, cg_strv_t *out)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *mods = PySys_GetObject("modules"); /* borrowed */
    PyObject *vals = mods && PyDict_Check(mods) ? PyDict_Values(mods) : NULL; /* new */
    for (Py_ssize_t i = 0; vals != NULL && i < PyList_GET_SIZE(vals); i++) {
        PyObject *f = PyObject_GetAttrString(PyList_GET_ITEM(vals, i), "__file__"); /* new */
        if (f == NULL)
            PyErr_Clear();
        else if (PyObject_IsTrue(f) == 1)
            cg__push_path(out, f, true);
        PyErr_Clear();
        Py_XDECREF(f);
    }
    Py_XDECREF(vals);
    if (r->patterns.n > 0) {
        PyObject *glob = PyImport_ImportModule("glob"); /* new */
        for (size_t i = 0; glob != NULL && i < r->patterns.n; i++) {
            PyObject *kw = Py_BuildValue("{s:O}", "recursive", Py_True); /* new */
            PyObject *fn = PyObject_GetAttrString(glob, "glob");        /* new */
            PyObject *args = Py_BuildValue("(s)", r->patterns.v[i]);    /* new */
            PyObject *got = kw && fn && args ? PyObject_Call(fn, args, kw) : NULL; /* new */
            PyObject *sorted = got ? PySequence_List(got) : NULL;          /* new */
            if (sorted != NULL && PyList_Sort(sorted) == 0)
                for (Py_ssize_t k = 0; k < PyList_GET_SIZE(sorted); k++)
                    cg__push_path(out, PyList_GET_ITEM(sorted, k), false);
            PyErr_Clear();
            Py_XDECREF(sorted);
            Py_XDECREF(got);
            Py_XDECREF(args);
            Py_XDECREF(fn);
            Py_XDECREF(kw);
        }
        Py_XDECREF(glob);
        PyErr_Clear();
    }
    PyGILState_Release(g);
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->extra.n; i++)
        cg_strv_push(out, r->extra.v[i]);
    pthread_mutex_unlock(&r->lock);
}

/* Gunicorn's callback: the worker stops taking work and leaves with status 0
 * through its normal exit path; worker_int runs here, as in Gunicorn's
 * reloader thread. */
static void cg__changed(cg_py_reloader_t *r, const char *fname)
{
    cg_worker_t *w = r->w;
    cg_log_info(w->log, "Worker reloading: %s modified", fname);
    w->alive = 0;
    if (w->wake_pipe[1] >= 0) {
        ssize_t n = write(w->wake_pipe[1], "1", 1);
        CG_UNUSED(n);
    }
    CG_HOOK(w->cfg->hooks, worker_int, w);
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
}

/* Sleep up to ms; true when asked to stop. */
static bool cg__stopped(cg_py_reloader_t *r, int ms)
{
    struct pollfd p = {.fd = r->stop_pipe[0], .events = POLLIN};
    int n = poll(&p, 1, ms);
    return n > 0;
}

static void cg__run_poll(cg_py_reloader_t *r)
{
    for (;;) {
        cg_strv_t files = {0};
        char *hit = NULL;
        cg__list_files(r, &files);
        for (size_t i = 0; i < files.n && hit == NULL; i++) {
            struct stat st;
            if (stat(files.v[i], &st) < 0)
                continue;
            bool added;
            cg__entry_t *e = cg__set_get(&r->seen, files.v[i], &added);
            if (added) {
                e->mtime = st.st_mtim;
            } else if (st.st_mtim.tv_sec > e->mtime.tv_sec ||
                       (st.st_mtim.tv_sec == e->mtime.tv_sec &&
                        st.st_mtim.tv_nsec > e->mtime.tv_nsec)) {
                hit = cg_xstrdup(files.v[i]);
            }
        }
        cg_strv_clear(&files);
        if (hit != NULL) {
            cg__changed(r, hit);
            free(hit);
            return;
        }
        if (cg__stopped(r, CG__INTERVAL_MS))
            return;
    }
}

/* os.path.dirname(os.path.abspath(f)), without normalising "..". */
static char *cg__abs_dir(const char *f)
{
    char buf[PATH_MAX], cwd[PATH_MAX];
    int n;
    if (f[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
        n = snprintf(buf, sizeof(buf), "%s", f);
    else
        n = snprintf(buf, sizeof(buf), "%s/%s", cwd, f);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return cg_xstrdup(f); /* longer than any path the kernel takes */
    char *slash = strrchr(buf, '/');
    if (slash == buf)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    return cg_xstrdup(buf);
}

/* Watch the directory of every file not watched yet. */
static void cg__refresh_dirs(cg_py_reloader_t *r)
{
    const uint32_t mask = IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MODIFY | IN_MOVE_SELF |
                          IN_MOVED_FROM | IN_MOVED_TO;
    cg_strv_t files = {0};
    cg__list_files(r, &files);
    for (size_t i = 0; i < files.n; i++) {
        char *dir = cg__abs_dir(files.v[i]);
        bool added;
        cg__set_get(&r->seen, dir, &added);
        struct stat st;
        if (added && stat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
            inotify_add_watch(r->ifd, dir, mask) < 0)
            cg_log_debug(r->w->log, "reloader: cannot watch %s: %s", dir, strerror(errno));
        free(dir);
    }
    cg_strv_clear(&files);
}

static void cg__run_inotify(cg_py_reloader_t *r)
{
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    cg__refresh_dirs(r);
    for (;;) {
        struct pollfd p[2] = {{.fd = r->stop_pipe[0], .events = POLLIN},
                              {.fd = r->ifd, .events = POLLIN}};
        int n = poll(p, 2, CG__INTERVAL_MS);
        if (n < 0 && errno != EINTR)
            return;
        if (n > 0 && p[0].revents != 0)
            return;
        if (n <= 0) {
            cg__refresh_dirs(r);
            continue;
        }
        ssize_t got = read(r->ifd, buf, sizeof(buf));
        if (got < (ssize_t)sizeof(struct inotify_event))
            continue;
        const struct inotify_event *ev = (const struct inotify_event *)buf;
        /* Gunicorn reports the name inside the watched directory */
        cg__changed(r, ev->len > 0 ? ev->name : "");
        return;
    }
}

static void *cg__thread(void *arg)
{
    cg_py_reloader_t *r = arg;
    if (r->inotify)
        cg__run_inotify(r);
    else
        cg__run_poll(r);
    return NULL;
}

int cg_py_reloader_new(const cg_config_t *cfg, cg_worker_t *w, cg_py_reloader_t **out)
{
    const char *engine = cfg->reload_engine ? cfg->reload_engine : "auto";
    bool want_inotify = strcmp(engine, "inotify") == 0;
    bool use_inotify = false;
    *out = NULL;
    if (want_inotify || strcmp(engine, "auto") == 0) {
        PyObject *m = PyImport_ImportModule("inotify.adapters"); /* new */
        use_inotify = m != NULL;
        Py_XDECREF(m);
        PyErr_Clear();
        if (want_inotify && !use_inotify) {
            PyErr_SetString(PyExc_ImportError,
                            "You must have the inotify module installed to use the inotify "
                            "reloader");
            return -1;
        }
    }
    cg_py_reloader_t *r = cg_xcalloc(1, sizeof(*r));
    r->w = w;
    r->inotify = use_inotify;
    r->ifd = -1;
    r->stop_pipe[0] = r->stop_pipe[1] = -1;
    pthread_mutex_init(&r->lock, NULL);
    for (size_t i = 0; i < cfg->reload_extra_files.n; i++) {
        const char *f = cfg->reload_extra_files.v[i];
        cg_strv_push(strpbrk(f, "*?[") ? &r->patterns : &r->extra, f);
    }
    if (pipe2(r->stop_pipe, O_CLOEXEC) < 0 ||
        (use_inotify && (r->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) < 0)) {
        PyErr_SetFromErrno(PyExc_OSError);
        cg_py_reloader_free(r);
        return -1;
    }
    *out = r;
    return 0;
}

void cg_py_reloader_add_file(cg_py_reloader_t *r, const char *path)
{
    pthread_mutex_lock(&r->lock);
    cg_strv_push(&r->extra, path);
    pthread_mutex_unlock(&r->lock);
}

int cg_py_reloader_start(cg_py_reloader_t *r)
{
    /* The thread must never take the worker's signals. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&r->thread, NULL, cg__thread, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0)
        return -e;
    r->started = true;
    return 0;
}

void cg_py_reloader_free(cg_py_reloader_t *r)
{
    if (r == NULL)
        return;
    if (r->started) {
        ssize_t n = write(r->stop_pipe[1], "x", 1);
        CG_UNUSED(n);
        /* the thread may be waiting for the GIL to list modules */
        PyThreadState *ts = PyGILState_Check() ? PyEval_SaveThread() : NULL;
        pthread_join(r->thread, NULL);
        if (ts != NULL)
            PyEval_RestoreThread(ts);
    }
    for (int i = 0; i < 2; i++)
        if (r->stop_pipe[i] >= 0)
            close(r->stop_pipe[i]);
    if (r->ifd >= 0)
        close(r->ifd);
    cg__set_free(&r->seen);
    cg_strv_clear(&r->extra);
    cg_strv_clear(&r->patterns);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Gunicorn's util.make_fail_app, written here: a WSGI app answering every
 * request with 500 and `msg` as text/plain. */
static const char cg__fail_src[] =
    "def make(msg):\n"
    "    body = msg.encode('utf-8')\n"
    "    def app(environ, start_response):\n"
    "        start_response('500 Internal Server Error',\n"
    "                       [('Content-Type', 'text/plain'),\n"
    "                        ('Content-Length', str(len(body)))])\n"
    "        return [body]\n"
    "    return app\n";

PyObject *cg_py_fail_app(const char *msg)
{
    PyObject *ns = PyDict_New(); /* new */
    if (ns == NULL)
        return NULL;
    PyObject *app = NULL;
    if (PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) == 0) {
        PyObject *r = PyRun_String(cg__fail_src, Py_file_input, ns, ns); /* new */
        PyObject *make = r ? PyDict_GetItemString(ns, "make") : NULL;     /* borrowed */
        if (make != NULL)
            app = PyObject_CallFunction(make, "s", msg);
        Py_XDECREF(r);
    }
    Py_DECREF(ns);
    return app;
}
