/*
 * asgi_accept.c - the ASGI worker's accepting, balanced across workers
 * (see asgi_accept.h and docs/load-balancing.md).
 */
#include "asgi_accept.h"

#include "../python/python.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Connections accepted per wake-up of a listener at most: the loop's other
 * work (the requests of the connections already held) goes on between. */
#define CG__BATCH 64
/* After EMFILE and the like: the listeners rest this long (asyncio's own
 * ACCEPT_RETRY_DELAY), rather than the reader firing on and on. */
#define CG__RETRY_S 1.0

struct cg_asgi_acc {
    cg_asgi_t *a;
    cg_worker_t *w;
    PyObject *self;          /* capsule of this struct: the callbacks' self (owned) */
    PyObject *socket_cls;    /* a socket.socket subclass (cg__socket_cls) */
    PyObject *connect;       /* loop.connect_accepted_socket */
    PyObject *kw;            /* TLS: ssl and ssl_handshake_timeout; NULL without */
    PyObject *on_ready;      /* reader callback, called with the listener's index */
    PyObject *on_rest_end;   /* the listeners are watched again */
    PyObject *rest;          /* the TimerHandle while the listeners rest; NULL none */
    size_t pending;          /* accepted, their set-up not done yet */
    uint32_t rest_load;      /* the load when the rest began */
    cg_balance_gate_t gate;
    bool watching, stopped;
};

/* The load this worker holds: its connections, and those accepted whose
 * protocol is not connected yet. A connection is counted twice for the
 * loop pass between its connection_made() and its set-up's end, which
 * only makes the worker more modest meanwhile. */
static uint32_t cg__load(const cg_asgi_acc_t *acc)
{
    return (uint32_t)(acc->a->nconns + acc->pending);
}

static void cg__watch(cg_asgi_acc_t *acc, bool on);

static void cg__publish(void *arg)
{
    cg_asgi_acc_t *acc = arg;
    uint32_t load = cg__load(acc);
    cg_balance_publish(acc->w->balance, acc->w->balance_slot,
                       !acc->stopped && !acc->a->stopping, load);
    /* resting, and a connection of its own closed: the worker may be below
     * its share again, so it looks now rather than at the rest's end (the
     * usual case under Connection: close traffic) */
    if (acc->rest != NULL && load < acc->rest_load && !acc->stopped) {
        PyObject *et, *ev, *etb;
        PyErr_Fetch(&et, &ev, &etb); /* new (each may be NULL) */
        PyObject *r = PyObject_CallMethod(acc->rest, "cancel", NULL); /* new */
        Py_XDECREF(r);
        PyErr_Clear();
        Py_CLEAR(acc->rest);
        cg__watch(acc, true);
        PyErr_Restore(et, ev, etb);
    }
}

#define CG__CAP "cgunicorn.asgi.acceptor"
#define CG__CAP_GONE "cgunicorn.asgi.acceptor (freed)"

/* The acceptor of a callback's self; NULL without an exception when it is
 * freed already (a late callback: nothing to do). */
static cg_asgi_acc_t *cg__acc(PyObject *self)
{
    if (!PyCapsule_IsValid(self, CG__CAP))
        return NULL;
    return PyCapsule_GetPointer(self, CG__CAP);
}

/* Watch (or unwatch) every listener. Errors are logged: a listener that
 * cannot be watched leaves the worker without accepting, so it stops and
 * the master starts another. */
static void cg__watch(cg_asgi_acc_t *acc, bool on)
{
    if (acc->watching == on)
        return;
    acc->watching = on;
    for (size_t i = 0; i < acc->w->nlisteners; i++) {
        int fd = acc->w->listeners[i].fd;
        PyObject *r = on ? PyObject_CallMethod(acc->a->loop, "add_reader", "iOn", fd,
                                               acc->on_ready, (Py_ssize_t)i)
                         : PyObject_CallMethod(acc->a->loop, "remove_reader", "i", fd); /* new */
        if (r == NULL) {
            cg_py_log_exception(acc->w->log, CG_LOG_ERROR, "Cannot watch a listening socket");
            acc->w->alive = 0;
            cg_asgi_resolve(acc->a, acc->a->stop, Py_None);
        }
        Py_XDECREF(r);
    }
}

/* Stop watching the listeners for `secs`. False when the timer cannot be
 * armed (logged): the caller goes on accepting then. */
static bool cg__rest(cg_asgi_acc_t *acc, double secs)
{
    PyObject *h = PyObject_CallMethod(acc->a->loop, "call_later", "dO", secs,
                                      acc->on_rest_end); /* new */
    if (h == NULL) {
        cg_py_log_exception(acc->w->log, CG_LOG_ERROR, "Cannot arm the accept timer");
        return false;
    }
    Py_XSETREF(acc->rest, h);
    cg__watch(acc, false);
    return true;
}

static PyObject *cg__on_rest_end(PyObject *self, PyObject *unused)
{
    cg_asgi_acc_t *acc = cg__acc(self);
    if (acc == NULL)
        Py_RETURN_NONE;
    Py_CLEAR(acc->rest);
    if (!acc->stopped)
        cg__watch(acc, true);
    Py_RETURN_NONE;
}

/*
 * A connection's set-up: loop.connect_accepted_socket() is a coroutine
 * that makes the transport, then awaits the loop's call of
 * connection_made() (TLS: the handshake). It is run here step by step,
 * as a Task would run it, without the Task: no Task object, no context
 * copy per connection, no loop pass for its first step (the transport
 * opens, and the client's bytes are read, one pass sooner) and none for
 * its done callbacks. Only the public coroutine protocol (send, and the
 * add_done_callback of the future it awaits) is used, so any loop's
 * connect_accepted_socket (uvloop's, asyncio's) runs the same.
 *
 * self of the resume callback: (acceptor capsule, coroutine).
 */
static void cg__set_up_end(cg_asgi_acc_t *acc)
{
    if (acc->pending > 0)
        acc->pending--;
    cg__publish(acc);
}

static PyMethodDef cg__on_step_def;

/* Run coroutine `coro` (borrowed) of a set-up one step, up to its next
 * await, or to its end. Logs what it raised; never leaves an exception. */
static void cg__step(cg_asgi_acc_t *acc, PyObject *coro)
{
    PyObject *yielded = NULL;
    PySendResult r = PyIter_Send(coro, Py_None, &yielded); /* yielded: new */
    if (r == PYGEN_NEXT) {
        /* it awaits a future (Future.__await__ yields it): step again
         * when that is done; a bare yield: on the next loop pass */
        PyObject *self = PyTuple_Pack(2, acc->self, coro);                         /* new */
        PyObject *cb = self ? cg_asgi_bind(&cg__on_step_def, self) : NULL;          /* new */
        PyObject *x = NULL;
        if (cb != NULL && yielded == Py_None) {
            x = PyObject_CallMethod(acc->a->loop, "call_soon", "OO", cb, Py_None); /* new */
        } else if (cb != NULL) {
            PyObject *args[4] = {NULL, yielded, cb, acc->a->context};
            x = PyObject_VectorcallMethod(acc->a->s[CG_AS_A_ADD_DONE_CALLBACK], args + 1,
                                          2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                          acc->a->kw_context); /* new */
        }
        Py_XDECREF(self);
        Py_XDECREF(cb);
        Py_DECREF(yielded);
        if (x != NULL) {
            Py_DECREF(x);
            return;
        }
        /* cannot wait: end it (its transport closes) */
        cg_py_log_exception(acc->w->log, CG_LOG_ERROR, "Error handling connection");
        PyObject *c = PyObject_CallMethod(coro, "close", NULL); /* new */
        Py_XDECREF(c);
        PyErr_Clear();
    } else if (r == PYGEN_ERROR) {
        /* asyncio's own accepting drops a failed set-up (a TLS handshake
         * that did not complete, a client gone) silently outside debug
         * mode */
        PyObject *et, *ev, *etb;
        PyErr_Fetch(&et, &ev, &etb); /* new (each may be NULL) */
        PyErr_NormalizeException(&et, &ev, &etb);
        if (ev != NULL)
            cg_asgi_log_exc(acc->a, CG_LOG_DEBUG, "Connection set-up failed", ev);
        Py_XDECREF(et);
        Py_XDECREF(ev);
        Py_XDECREF(etb);
        PyErr_Clear();
    } else {
        Py_XDECREF(yielded); /* the (transport, protocol) pair */
    }
    cg__set_up_end(acc);
}

/* The future a set-up awaits is done: its next step. */
static PyObject *cg__on_step(PyObject *self, PyObject *unused)
{
    cg_asgi_acc_t *acc = cg__acc(PyTuple_GET_ITEM(self, 0));
    PyObject *coro = PyTuple_GET_ITEM(self, 1);
    if (acc == NULL) {
        /* the acceptor is gone (the worker stops): end it */
        PyObject *c = PyObject_CallMethod(coro, "close", NULL); /* new */
        Py_XDECREF(c);
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    cg__step(acc, coro);
    Py_RETURN_NONE;
}

static PyMethodDef cg__on_step_def = {"_set_up", cg__on_step, METH_O, NULL};

/* Hand the accepted descriptor fd (taken over) to the loop. */
static void cg__hand_over(cg_asgi_acc_t *acc, int fd, size_t li, const struct sockaddr *peer,
                          socklen_t peerlen)
{
    const cg_listener_t *l = &acc->w->listeners[li];
    PyObject *proto = cg_asgi_proto_new(acc->a, l, fd, peer, peerlen); /* new */
    /* the family, type and protocol given, CPython asks the kernel only
     * its getsockname() check, not SO_TYPE and SO_PROTOCOL */
    PyObject *sock = proto ? PyObject_CallFunction(acc->socket_cls, "iiii", l->family, SOCK_STREAM,
                                                   l->family == AF_UNIX ? 0 : IPPROTO_TCP, fd)
                           : NULL; /* new */
    if (sock == NULL) {
        close(fd);
        Py_XDECREF(proto);
        cg_py_log_exception(acc->w->log, CG_LOG_ERROR, "Error handling connection");
        return;
    }
    PyObject *args = PyTuple_Pack(2, proto, sock);                              /* new */
    PyObject *coro = args ? PyObject_Call(acc->connect, args, acc->kw) : NULL; /* new */
    Py_XDECREF(args);
    Py_DECREF(proto);
    if (coro == NULL) {
        cg_py_log_exception(acc->w->log, CG_LOG_ERROR, "Error handling connection");
        PyObject *x = PyObject_CallMethod(sock, "close", NULL); /* new */
        Py_XDECREF(x);
        PyErr_Clear();
        Py_DECREF(sock);
        return;
    }
    Py_DECREF(sock);
    acc->pending++;
    cg__publish(acc);
    cg__step(acc, coro);
    Py_DECREF(coro);
}

/* The reader callback of listener `index`: accept while the load table
 * lets this worker take connections. */
static PyObject *cg__on_ready(PyObject *self, PyObject *index)
{
    cg_asgi_acc_t *acc = cg__acc(self);
    if (acc == NULL)
        Py_RETURN_NONE;
    size_t li = PyLong_AsSize_t(index);
    if (li == (size_t)-1 && PyErr_Occurred())
        return NULL;
    if (li >= acc->w->nlisteners)
        return PyErr_Format(PyExc_ValueError, "no listener %zu", li);
    cg_worker_t *w = acc->w;
    for (int i = 0; i < CG__BATCH && !acc->stopped && acc->watching; i++) {
        unsigned rest = cg_balance_gate_take(&acc->gate, w->balance, w->balance_slot,
                                             cg__load(acc), cg_monotonic_ms());
        if (rest > 0 && cg__rest(acc, rest / 1000.0)) {
            acc->rest_load = cg__load(acc);
            break;
        }
        struct sockaddr_storage peer;
        socklen_t peerlen = sizeof(peer);
        int fd = accept4(w->listeners[li].fd, (struct sockaddr *)&peer, &peerlen,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            cg__hand_over(acc, fd, li, (struct sockaddr *)&peer, peerlen);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            cg_balance_gate_reset(&acc->gate); /* whatever waited is taken */
            break;
        }
        cg_log_error(w->log, "accept() failed: %s", strerror(errno));
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            (void)cg__rest(acc, CG__RETRY_S);
        break;
    }
    Py_RETURN_NONE;
}

static PyMethodDef cg__on_ready_def = {"_accept", cg__on_ready, METH_O, NULL};
static PyMethodDef cg__on_rest_end_def = {"_accept_again", cg__on_rest_end, METH_NOARGS, NULL};

/* ssl and ssl_handshake_timeout for connect_accepted_socket(). 0, or -1
 * with an exception set. */
static int cg__tls_kw(cg_asgi_acc_t *acc)
{
    const cg_config_t *cfg = acc->a->cfg;
    /* a TLS handshake may take as long as a request head (--timeout) */
    acc->kw = Py_BuildValue("{s:O,s:d}", "ssl", acc->a->ssl, "ssl_handshake_timeout",
                            cfg->timeout > 0 ? (double)cfg->timeout : 30.0); /* new */
    return acc->kw != NULL ? 0 : -1;
}

/*
 * The class of the socket objects handed to connect_accepted_socket(): a
 * socket.socket whose family and type are _socket.socket's plain ints.
 * socket.socket's own are properties that make an IntEnum member each
 * time (Python code), and the loop reads them for every connection
 * (uvloop: type once, family twice). Still a socket.socket: the loop
 * detaches it when the transport closes the descriptor. 0, or -1 with an
 * exception set.
 */
static int cg__socket_cls(cg_asgi_acc_t *acc)
{
    PyObject *mod = PyImport_ImportModule("socket");                            /* new */
    PyObject *base = mod ? PyObject_GetAttrString(mod, "socket") : NULL;       /* new */
    PyObject *cmod = base ? PyImport_ImportModule("_socket") : NULL;           /* new */
    PyObject *cbase = cmod ? PyObject_GetAttrString(cmod, "socket") : NULL;    /* new */
    PyObject *family = cbase ? PyObject_GetAttrString(cbase, "family") : NULL; /* new */
    PyObject *type = family ? PyObject_GetAttrString(cbase, "type") : NULL;    /* new */
    PyObject *ns = type ? Py_BuildValue("{s:(),s:O,s:O,s:s}", "__slots__", "family", family,
                                        "type", type, "__module__", "cgunicorn")
                        : NULL; /* new */
    acc->socket_cls = ns ? PyObject_CallFunction((PyObject *)&PyType_Type, "s(O)O",
                                                 "AcceptedSocket", base, ns)
                         : NULL; /* new */
    Py_XDECREF(mod);
    Py_XDECREF(base);
    Py_XDECREF(cmod);
    Py_XDECREF(cbase);
    Py_XDECREF(family);
    Py_XDECREF(type);
    Py_XDECREF(ns);
    return acc->socket_cls != NULL ? 0 : -1;
}

cg_asgi_acc_t *cg_asgi_accept_start(cg_asgi_t *a)
{
    cg_worker_t *w = a->w;
    cg_asgi_acc_t *acc = cg_xcalloc(1, sizeof(*acc));
    acc->a = a;
    acc->w = w;
    for (size_t i = 0; i < w->nlisteners; i++) {
        /* accept4() must never block the loop: another worker may have
         * taken the connection that woke this one (the flag is the open
         * file's, shared with the master and the other workers) */
        int fd = w->listeners[i].fd;
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            goto fail;
        }
    }
    if (cg__socket_cls(acc) < 0 ||
        (acc->connect = PyObject_GetAttrString(a->loop, "connect_accepted_socket")) == NULL ||
        (a->ssl != NULL && cg__tls_kw(acc) < 0) ||
        (acc->self = PyCapsule_New(acc, CG__CAP, NULL)) == NULL ||
        (acc->on_ready = cg_asgi_bind(&cg__on_ready_def, acc->self)) == NULL ||
        (acc->on_rest_end = cg_asgi_bind(&cg__on_rest_end_def, acc->self)) == NULL)
        goto fail;
    a->on_conns = cg__publish;
    a->on_conns_arg = acc;
    cg__watch(acc, true);
    cg__publish(acc);
    return acc;
fail:
    cg_asgi_accept_free(acc);
    return NULL;
}

void cg_asgi_accept_stop(cg_asgi_acc_t *acc)
{
    if (acc == NULL || acc->stopped)
        return;
    acc->stopped = true;
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb); /* new (each may be NULL): may run while one is pending */
    if (acc->rest != NULL) {
        PyObject *r = PyObject_CallMethod(acc->rest, "cancel", NULL); /* new */
        Py_XDECREF(r);
        Py_CLEAR(acc->rest);
    }
    if (acc->on_ready != NULL)
        cg__watch(acc, false);
    PyErr_Clear();
    PyErr_Restore(et, ev, etb);
    cg__publish(acc);
}

void cg_asgi_accept_free(cg_asgi_acc_t *acc)
{
    if (acc == NULL)
        return;
    cg_asgi_accept_stop(acc);
    if (acc->a->on_conns_arg == acc) {
        acc->a->on_conns = NULL;
        acc->a->on_conns_arg = NULL;
    }
    Py_XDECREF(acc->socket_cls);
    Py_XDECREF(acc->connect);
    Py_XDECREF(acc->kw);
    Py_XDECREF(acc->on_ready);
    Py_XDECREF(acc->on_rest_end);
    /* the callbacks the loop may still hold (a set-up's next step) keep
     * the capsule alive: renamed, it no longer gives out the freed struct */
    if (acc->self != NULL && PyCapsule_SetName(acc->self, CG__CAP_GONE) < 0)
        PyErr_Clear();
    Py_XDECREF(acc->self);
    free(acc);
}
