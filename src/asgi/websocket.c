/*
 * websocket.c - the ASGI websocket scope (ASGI 3.0, spec 2.4) on an upgraded
 * connection, over the RFC 6455 / RFC 7692 codec of src/http/websocket.h.
 *
 * A WebSocket is a request cycle (http.c) with cy->ws set, kept as p->cy for
 * the connection's whole life. Frames are parsed in C as they arrive
 * (cg_asgi_ws_data): pings are answered there without waking Python, whole
 * messages (assembled, inflated, UTF-8 checked by the codec) wait in a short
 * queue for receive(), and the close handshake is run here. States:
 *
 *   CONNECTING  the upgrade is with the app (websocket.connect); nothing is
 *               parsed yet, bytes wait in p->in (reading pauses past a bound)
 *   RESPONSE    the app refuses with an HTTP response of its own (the
 *               websocket.http.response extension), written by http.c
 *   OPEN        101 sent: messages both ways
 *   CLOSING     our close frame is out; the client's is awaited for
 *               CG_ASGI_WS_CLOSE_MS (data meanwhile is dropped)
 *   CLOSED      the close handshake is over, or the connection failed or was
 *               refused: the transport is closing
 *
 * The app hears websocket.disconnect once the messages queued before it are
 * taken: with the client's close code, the one we failed the connection
 * with, the app's own after its websocket.close (as Uvicorn), 1001 at a
 * graceful stop, 1006 when the connection just dropped.
 */
#include "asgi.h"

#include "../http/websocket.h"
#include "../python/python.h"

#include <stdlib.h>
#include <string.h>

enum { CG__CONNECTING, CG__RESPONSE, CG__OPEN, CG__CLOSING, CG__CLOSED };

/* A received message waiting for receive(). */
typedef struct {
    PyObject *msg; /* owned */
    size_t size;   /* payload bytes, for the queue's bound */
} cg__queued_t;

struct cg_asgi_ws {
    int state;
    /* views into the request head, which stays in p->c.buf while p lives:
     * read only at websocket.accept, when p is there */
    cg_ws_handshake_t hs;
    bool has_pmd;
    cg_ws_pmd_params_t pmd_params; /* the 101's permessage-deflate answer */
    cg_ws_pmd_t *pmd;              /* owned once accepted with it */
    cg_ws_parser_t parser;
    cg_ws_assembler_t asm_;
    cg_ws_buf_t zout;        /* a compressed message on its way out */
    PyObject *subprotocols;  /* list of str, the offered ones (the scope has it too) */
    bool connect_sent;       /* websocket.connect was handed out */
    bool app_closed;         /* the app sent websocket.close */
    cg__queued_t *q;         /* a ring of qcap entries */
    size_t qhead, qlen, qcap, qbytes;
    uint16_t dc_code;        /* websocket.disconnect's code; 0 while the connection lives */
    PyObject *dc_reason;     /* and its reason (str), owned */
};

/* What send() raises once the client is gone (ASGI: "a server-specific
 * subclass of OSError"; Uvicorn's is ClientDisconnected too), made once.
 * Borrowed; NULL with an exception set if it cannot be made. */
static PyObject *cg__disconnected_type(void)
{
    static PyObject *type;
    if (type == NULL)
        type = PyErr_NewException("cgunicorn.asgi.ClientDisconnected", PyExc_OSError,
                                  NULL); /* new, kept for the process */
    return type;
}

static PyObject *cg__raise_disconnected(void)
{
    PyObject *t = cg__disconnected_type(); /* borrowed */
    if (t != NULL)
        PyErr_SetString(t, "the WebSocket client is gone");
    return NULL;
}

void cg_asgi_ws_free(cg_asgi_ws_t *ws)
{
    for (size_t i = 0; i < ws->qlen; i++)
        Py_DECREF(ws->q[(ws->qhead + i) % ws->qcap].msg);
    free(ws->q);
    Py_XDECREF(ws->subprotocols);
    Py_XDECREF(ws->dc_reason);
    cg_ws_assembler_free(&ws->asm_);
    cg_ws_buf_free(&ws->zout);
    if (ws->pmd != NULL)
        cg_ws_pmd_free(ws->pmd);
    free(ws);
}

/* ---- the handshake ---- */

bool cg_asgi_ws_wanted(const cg_asgi_proto_t *p)
{
    const cg_http_request_t *req = &p->c.req;
    return req->connection_upgrade && cg_ws_wants_upgrade(req->headers, req->nheaders);
}

/* The bytes after the head in the connection layer's buffer are the client's
 * first frames: they go before what p->in holds (what came after them). */
static void cg__take_leftover(cg_asgi_proto_t *p)
{
    cg_http_buf_t *b = &p->c.buf;
    size_t extra = b->len - b->off, old = p->in_len - p->in_off;
    if (extra == 0)
        return;
    if (extra + old > p->in_cap) {
        p->in_cap = extra + old;
        p->in = cg_xrealloc(p->in, p->in_cap);
    }
    memmove(p->in + extra, p->in + p->in_off, old);
    memcpy(p->in, b->data + b->off, extra);
    p->in_off = 0;
    p->in_len = extra + old;
    b->len = b->off;
}

void cg_asgi_ws_start(cg_asgi_proto_t *p)
{
    cg_asgi_t *a = p->a;
    const cg_http_request_t *req = &p->c.req;
    cg_asgi_ws_t *ws = cg_xcalloc(1, sizeof(*ws));
    int rc = cg_ws_handshake_check(req->method, req->version_major, req->version_minor,
                                   req->headers, req->nheaders, &ws->hs);
    if (rc == 0) {
        cg_ws_pmd_config_t pc;
        cg_ws_pmd_config_default(&pc);
        int n = cg_ws_pmd_negotiate(&pc, ws->hs.extensions, ws->hs.nextensions, &ws->pmd_params);
        if (n < 0) {
            rc = n;
            ws->hs.status = 400;
            ws->hs.reason = "Invalid Sec-WebSocket-Extensions header";
        }
        ws->has_pmd = n == 1;
    } else if (rc != -EPROTO) {
        ws->hs.status = 500; /* libcrypto failed */
        ws->hs.reason = "Failed to compute Sec-WebSocket-Accept";
    }
    if (rc < 0) {
        char page[512];
        cg_log_debug(a->log, "Invalid WebSocket handshake from ip=%s: %s", p->c.peer_ip,
                     ws->hs.reason ? ws->hs.reason : "");
        ssize_t n = cg_ws_reject_response(&ws->hs, page, sizeof(page));
        if (n > 0 && cg_asgi_proto_write(p, page, (size_t)n) < 0)
            PyErr_Clear();
        cg_asgi_ws_free(ws);
        cg_asgi_proto_close(p);
        return;
    }
    ws->subprotocols = PyList_New((Py_ssize_t)ws->hs.nsubprotocols); /* new */
    for (size_t i = 0; ws->subprotocols != NULL && i < ws->hs.nsubprotocols; i++) {
        cg_str_t s = ws->hs.subprotocols[i];
        PyObject *o = PyUnicode_DecodeLatin1(s.ptr, (Py_ssize_t)s.len, NULL); /* new */
        if (o == NULL)
            Py_CLEAR(ws->subprotocols);
        else
            PyList_SET_ITEM(ws->subprotocols, (Py_ssize_t)i, o); /* steals o */
    }
    cg_asgi_cycle_t *cy = ws->subprotocols ? cg_asgi_cycle_new(p) : NULL; /* new */
    if (cy == NULL) {
        cg_py_log_exception(a->log, CG_LOG_ERROR, "Error handling request (no URI read)");
        cg_asgi_ws_free(ws);
        cg_asgi_proto_close(p);
        return;
    }
    cy->ws = ws;
    cg__take_leftover(p);
    p->cy = cy; /* owned by p until the connection ends */
    p->state = CG_ASGI_WS;
    cg_asgi_cycle_start(cy);
}

int cg_asgi_ws_scope_add(cg_asgi_cycle_t *cy, PyObject *scope)
{
    cg_asgi_t *a = cy->a;
    /* {"websocket.http.response": {}}: a new dict per scope, the app may
     * change it */
    PyObject *ext = Py_BuildValue("{O:{}}", a->s[CG_AS_WS_HTTP_RESPONSE]); /* new */
    int rc = ext != NULL && PyDict_SetItem(scope, a->s[CG_AS_EXTENSIONS], ext) == 0 &&
                     PyDict_SetItem(scope, a->s[CG_AS_SUBPROTOCOLS], cy->ws->subprotocols) == 0
                 ? 0
                 : -1;
    Py_XDECREF(ext);
    return rc;
}

/* ---- frames out ---- */

static void cg__write(cg_asgi_proto_t *p, const char *data, size_t len)
{
    if (cg_asgi_proto_write(p, data, len) < 0)
        PyErr_Clear(); /* the transport's own failure shows as connection_lost */
}

/* A close frame (code 0: none). -EINVAL for a code or reason a server may
 * not send (cg_ws_close_write). */
static int cg__write_close(cg_asgi_proto_t *p, uint16_t code, const char *reason, size_t len)
{
    char f[2 + CG_WS_MAX_CONTROL_PAYLOAD];
    ssize_t n = cg_ws_close_write(code, reason, len, f, sizeof(f));
    if (n < 0)
        return (int)n;
    cg__write(p, f, (size_t)n);
    return 0;
}

/* The disconnect the app will hear; the first cause wins. */
static void cg__set_dc(cg_asgi_cycle_t *cy, uint16_t code, const char *reason, size_t len)
{
    cg_asgi_ws_t *ws = cy->ws;
    if (ws->dc_code != 0)
        return;
    ws->dc_code = code;
    ws->dc_reason = PyUnicode_DecodeUTF8(reason ? reason : "", (Py_ssize_t)len, "replace");
    if (ws->dc_reason == NULL)
        PyErr_Clear(); /* reported without a reason */
    cg_asgi_cycle_wake(cy);
}

/* Fail the WebSocket connection (RFC 6455 7.1.7): our close frame with
 * `code`, then the TCP connection closes without waiting. */
static void cg__fail(cg_asgi_cycle_t *cy, uint16_t code, const char *why)
{
    cg_asgi_ws_t *ws = cy->ws;
    cg_asgi_proto_t *p = cy->p;
    size_t wlen = why ? strlen(why) : 0;
    cg_log_debug(cy->a->log, "WebSocket from ip=%s closed with %u: %s", p->c.peer_ip, code,
                 why ? why : "");
    if (ws->state == CG__OPEN && cg__write_close(p, code, why, wlen) < 0)
        (void)cg__write_close(p, code, NULL, 0); /* a reason it could not carry */
    ws->state = CG__CLOSED;
    cg__set_dc(cy, code, why, wlen);
    cg_asgi_proto_close(p);
}

/* Start the closing handshake (RFC 6455 7.1.2) from our side: the close
 * frame, then the client's answer is awaited (CLOSING) for a bounded time.
 * -EINVAL (nothing sent) for a code or reason a close frame cannot carry. */
static int cg__close(cg_asgi_cycle_t *cy, uint16_t code, const char *reason, size_t len)
{
    cg_asgi_ws_t *ws = cy->ws;
    cg_asgi_proto_t *p = cy->p;
    if (ws->state != CG__OPEN || p == NULL || p->closed)
        return 0;
    int rc = cg__write_close(p, code, reason, len);
    if (rc < 0)
        return rc;
    ws->state = CG__CLOSING;
    cg__set_dc(cy, code, reason, len);
    cg_asgi_proto_deadline(p, CG_ASGI_WS_CLOSE_MS);
    /* the client's close may be buffered already, behind a full queue */
    cg_asgi_ws_data(cy);
    cg_asgi_proto_maybe_resume(p);
    return 0;
}

void cg_asgi_ws_going_away(cg_asgi_cycle_t *cy)
{
    (void)cg__close(cy, CG_WS_CLOSE_GOING_AWAY, NULL, 0);
}

/* ---- frames in ---- */

static bool cg__queue_full(const cg_asgi_ws_t *ws)
{
    return ws->qbytes >= CG_ASGI_WS_QUEUE_BYTES || ws->qlen >= CG_ASGI_WS_QUEUE_MESSAGES;
}

/* The assembler has a whole message: queue it for receive(). 0, or -1 when
 * the connection failed (no memory for it). */
static int cg__enqueue(cg_asgi_cycle_t *cy)
{
    cg_asgi_t *a = cy->a;
    cg_asgi_ws_t *ws = cy->ws;
    const cg_ws_buf_t *m = &ws->asm_.msg;
    bool text = ws->asm_.opcode == CG_WS_OP_TEXT;
    /* the codec checked the text as UTF-8 already */
    PyObject *payload = text ? PyUnicode_DecodeUTF8(m->data ? m->data : "", (Py_ssize_t)m->len,
                                                    NULL)
                             : PyBytes_FromStringAndSize(m->data, (Py_ssize_t)m->len); /* new */
    PyObject *msg = payload ? Py_BuildValue("{O:O,O:O}", a->s[CG_AS_TYPE], a->s[CG_AS_WS_RECEIVE],
                                            a->s[text ? CG_AS_TEXT : CG_AS_BYTES], payload)
                            : NULL; /* new */
    Py_XDECREF(payload);
    if (msg == NULL) {
        cg_py_log_exception(a->log, CG_LOG_ERROR, "Error handling WebSocket message");
        cg__fail(cy, CG_WS_CLOSE_INTERNAL_ERROR, "internal error");
        return -1;
    }
    if (ws->qlen == ws->qcap) {
        size_t cap = ws->qcap ? 2 * ws->qcap : 8;
        cg__queued_t *q = cg_xmalloc(cap * sizeof(*q));
        for (size_t i = 0; i < ws->qlen; i++)
            q[i] = ws->q[(ws->qhead + i) % ws->qcap];
        free(ws->q);
        ws->q = q;
        ws->qcap = cap;
        ws->qhead = 0;
    }
    ws->q[(ws->qhead + ws->qlen) % ws->qcap] = (cg__queued_t){msg, m->len};
    ws->qlen++;
    ws->qbytes += m->len;
    /* a large message's buffer is not kept for the next, small ones */
    if (ws->asm_.msg.cap > CG_ASGI_WS_QUEUE_BYTES)
        cg_ws_buf_free(&ws->asm_.msg);
    cg_asgi_cycle_wake(cy);
    return 0;
}

/* The client's close frame. */
static void cg__client_close(cg_asgi_cycle_t *cy, uint16_t code, cg_str_t reason)
{
    cg_asgi_ws_t *ws = cy->ws;
    cg_asgi_proto_t *p = cy->p;
    if (ws->state == CG__OPEN) {
        /* echo its code (RFC 6455 5.5.1); a close without one gets none */
        (void)cg__write_close(p, code == CG_WS_CLOSE_NO_STATUS ? 0 : code, NULL, 0);
        cg__set_dc(cy, code, reason.ptr, reason.len);
    }
    /* both sides said close: the server closes TCP first (RFC 6455 7.1.1) */
    ws->state = CG__CLOSED;
    cg_asgi_proto_close(p);
}

/* One event from the parser. 0 to go on, -1 when no more frames are read. */
static int cg__event(cg_asgi_cycle_t *cy, const cg_ws_event_t *ev)
{
    cg_asgi_ws_t *ws = cy->ws;
    switch (ev->kind) {
    case CG_WS_EV_DATA: {
        if (ws->state != CG__OPEN)
            return 0; /* after our close frame: only the client's counts */
        int r = cg_ws_assembler_feed(&ws->asm_, ev);
        if (r == -EPROTO) {
            cg__fail(cy, ws->asm_.close_code, ws->asm_.error);
            return -1;
        }
        if (r < 0) {
            cg__fail(cy, CG_WS_CLOSE_INTERNAL_ERROR, "internal error");
            return -1;
        }
        return r == 1 ? cg__enqueue(cy) : 0;
    }
    case CG_WS_EV_PING:
        if (ws->state == CG__OPEN) {
            /* RFC 6455 5.5.3: the same payload back, from here */
            char f[2 + CG_WS_MAX_CONTROL_PAYLOAD];
            ssize_t n = cg_ws_frame_write(CG_WS_OP_PONG, false, ev->data, ev->len, 0, f, sizeof(f));
            if (n > 0)
                cg__write(cy->p, f, (size_t)n);
        }
        return 0;
    case CG_WS_EV_PONG:
        return 0; /* we send no pings */
    case CG_WS_EV_CLOSE:
        cg__client_close(cy, ev->close_code, ev->close_reason);
        return -1;
    }
    return 0;
}

void cg_asgi_ws_data(cg_asgi_cycle_t *cy)
{
    cg_asgi_ws_t *ws = cy->ws;
    cg_asgi_proto_t *p = cy->p;
    if (p == NULL)
        return;
    Py_INCREF(cy); /* a failure may end the connection and drop both */
    Py_INCREF(p);
    /* a full queue stops parsing (the app is behind); while CLOSING, data is
     * dropped and parsing goes on to the client's close frame */
    while (!p->closed && (ws->state == CG__CLOSING || (ws->state == CG__OPEN && !cg__queue_full(ws)))) {
        size_t avail = p->in_len - p->in_off;
        if (avail == 0)
            break;
        cg_ws_event_t ev;
        ssize_t n = cg_ws_parse(&ws->parser, p->in + p->in_off, avail, &ev);
        if (n == CG_EAGAIN)
            break;
        if (n < 0) {
            cg__fail(cy, ws->parser.close_code, ws->parser.error);
            break;
        }
        /* ev's views stay valid: nothing moves the bytes until data_received */
        p->in_off += (size_t)n;
        if (p->in_off == p->in_len)
            p->in_off = p->in_len = 0;
        if (cg__event(cy, &ev) < 0)
            break;
    }
    Py_DECREF(p);
    Py_DECREF(cy);
}

void cg_asgi_ws_lost(cg_asgi_cycle_t *cy)
{
    cg__set_dc(cy, CG_WS_CLOSE_ABNORMAL, NULL, 0);
    cy->ws->state = CG__CLOSED;
}

/* ---- receive ---- */

static int cg__receive_poll(PyObject *owner, PyObject **out)
{
    cg_asgi_cycle_t *cy = (cg_asgi_cycle_t *)owner;
    cg_asgi_t *a = cy->a;
    cg_asgi_ws_t *ws = cy->ws;
    cg_asgi_proto_t *p = cy->p;
    if (!ws->connect_sent) {
        ws->connect_sent = true;
        *out = Py_BuildValue("{O:O}", a->s[CG_AS_TYPE], a->s[CG_AS_WS_CONNECT]);
        return *out ? 1 : -1;
    }
    if (ws->qlen > 0) {
        cg__queued_t e = ws->q[ws->qhead];
        ws->qhead = (ws->qhead + 1) % ws->qcap;
        ws->qlen--;
        ws->qbytes -= e.size;
        *out = e.msg; /* the queue's reference */
        if (p != NULL && ws->state == CG__OPEN && p->in_len > p->in_off) {
            /* frames waited behind a full queue */
            cg_asgi_ws_data(cy);
            if (cy->p != NULL)
                cg_asgi_proto_maybe_resume(cy->p);
        }
        return 1;
    }
    if (ws->dc_code == 0 && (p == NULL || p->closed))
        cg__set_dc(cy, CG_WS_CLOSE_ABNORMAL, NULL, 0);
    if (ws->dc_code != 0) {
        PyObject *reason = ws->dc_reason ? Py_NewRef(ws->dc_reason)
                                         : PyUnicode_FromStringAndSize("", 0); /* new */
        *out = reason ? Py_BuildValue("{O:O,O:H,O:N}", a->s[CG_AS_TYPE],
                                      a->s[CG_AS_WS_DISCONNECT], a->s[CG_AS_CODE], ws->dc_code,
                                      a->s[CG_AS_REASON], reason)
                      : NULL; /* new; N steals reason */
        return *out ? 1 : -1;
    }
    if (cy->rx_waiter == NULL && (cy->rx_waiter = cg_asgi_future(a)) == NULL)
        return -1;
    *out = Py_NewRef(cy->rx_waiter);
    return 0;
}

static PyObject *cg__receive(PyObject *self, PyObject *unused)
{
    return cg_asgi_awaitable_new(((cg_asgi_cycle_t *)self)->a, cg__receive_poll, self);
}

PyMethodDef cg_asgi_ws_receive_def = {
    "receive", cg__receive, METH_NOARGS,
    "ASGI receive(): websocket.connect, then websocket.receive or websocket.disconnect."};

/* ---- send ---- */

/* msg[key], NULL without an exception when it is missing or None. New
 * reference; NULL with an exception for a failed lookup. */
static PyObject *cg__get(PyObject *msg, PyObject *key)
{
    PyObject *v;
    if (!PyMapping_Check(msg))
        return NULL; /* as before: a non-mapping has no keys */
    if (cg_asgi_get(msg, key, &v) < 0)
        return NULL;
    if (v == Py_None)
        Py_CLEAR(v);
    return v;
}

/* websocket.accept: the 101 with the app's subprotocol and headers. */
static int cg__accept(cg_asgi_cycle_t *cy, PyObject *msg)
{
    cg_asgi_t *a = cy->a;
    cg_asgi_ws_t *ws = cy->ws;
    cg_asgi_proto_t *p = cy->p;
    int rc = -1;
    cg_str_t sub = {"", 0};
    cg_str_t *extra = NULL;
    char *buf = NULL;
    PyObject *seq = NULL;
    PyObject *subp = cg__get(msg, a->s[CG_AS_SUBPROTOCOL]); /* new */
    if (subp == NULL && PyErr_Occurred())
        return -1;
    if (subp != NULL) {
        int offered = PyUnicode_Check(subp) ? PySequence_Contains(ws->subprotocols, subp) : 0;
        if (offered < 0)
            goto out;
        if (!offered) {
            /* RFC 6455 4.2.2: one of the client's, or the client fails the
             * connection */
            PyErr_Format(PyExc_RuntimeError,
                         "WebSocket subprotocol %R was not offered by the client (%R)", subp,
                         ws->subprotocols);
            goto out;
        }
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(subp, &n);
        if (s == NULL)
            goto out;
        sub = (cg_str_t){s, (size_t)n};
    }
    PyObject *headers = cg__get(msg, a->s[CG_AS_HEADERS]); /* new */
    if (headers == NULL && PyErr_Occurred())
        goto out;
    seq = headers ? PySequence_Fast(headers, "ASGI headers must be a sequence") : NULL; /* new */
    Py_XDECREF(headers);
    if (headers != NULL && seq == NULL)
        goto out;
    size_t nh = seq ? (size_t)PySequence_Fast_GET_SIZE(seq) : 0;
    extra = cg_xmalloc((nh + 2) * 2 * sizeof(*extra));
    size_t nextra = 0, room = 512;
    bool has_server = false, has_date = false;
    for (size_t i = 0; i < nh; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, (Py_ssize_t)i); /* borrowed */
        if (!PyTuple_Check(pair) && !PyList_Check(pair)) {
            PyErr_SetString(PyExc_TypeError, "ASGI headers must be (name, value) pairs");
            goto out;
        }
        if (PySequence_Fast_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_ValueError, "ASGI headers must be (name, value) pairs");
            goto out;
        }
        cg_str_t *nv = &extra[2 * nextra];
        if (cg_asgi_bytes_view(PySequence_Fast_GET_ITEM(pair, 0), &nv[0], "names") < 0 ||
            cg_asgi_bytes_view(PySequence_Fast_GET_ITEM(pair, 1), &nv[1], "values") < 0)
            goto out;
        has_server = has_server || cg_str_caseeq(nv[0], "server");
        has_date = has_date || cg_str_caseeq(nv[0], "date");
        room += nv[0].len + nv[1].len + 4;
        nextra++;
    }
    if (!has_server)
        extra[2 * nextra] = CG_STR_LIT("Server"), extra[2 * nextra++ + 1] = CG_STR_LIT("gunicorn");
    if (!has_date)
        extra[2 * nextra] = CG_STR_LIT("Date"),
        extra[2 * nextra++ + 1] = (cg_str_t){cg_http_date_now(&a->date), 29};
    room += 64 + sub.len + 256; /* the fixed lines, Accept, Protocol, Extensions */
    buf = cg_xmalloc(room);
    ssize_t n = cg_ws_handshake_response(&ws->hs, sub, ws->has_pmd ? &ws->pmd_params : NULL, extra,
                                         nextra, buf, room);
    if (n == -EINVAL) {
        PyErr_SetString(PyExc_ValueError, "Invalid WebSocket subprotocol or header in "
                                          "websocket.accept (a token, no CR/LF in values)");
        goto out;
    }
    if (n < 0) {
        PyErr_Format(PyExc_RuntimeError, "WebSocket handshake response: %s", strerror((int)-n));
        goto out;
    }
    cg_ws_pmd_config_t pc;
    cg_ws_pmd_config_default(&pc);
    if (ws->has_pmd && cg_ws_pmd_new(&ws->pmd_params, pc.level, pc.mem_level, &ws->pmd) < 0) {
        PyErr_NoMemory();
        goto out;
    }
    if (cg_asgi_proto_write(p, buf, (size_t)n) < 0)
        goto out;
    /* websocket_max_message_size bounds a received message after
     * decompression (close 1009 beyond it); 0 is Gunicorn's "no limit". */
    size_t max_message = a->cfg->websocket_max_message_size > 0
                             ? (size_t)a->cfg->websocket_max_message_size
                             : SIZE_MAX;
    cg_ws_parser_init(&ws->parser, max_message, ws->has_pmd);
    cg_ws_assembler_init(&ws->asm_, max_message, ws->pmd);
    ws->state = CG__OPEN;
    cy->started = true;
    cy->status = 101;
    cg_asgi_access(cy, p); /* the HTTP part is over */
    if (a->stopping) {
        cg_asgi_ws_going_away(cy);
    } else {
        cg_asgi_ws_data(cy); /* frames the client sent ahead */
        if (cy->p != NULL)
            cg_asgi_proto_maybe_resume(cy->p);
    }
    rc = 0;
out:
    free(buf);
    free(extra);
    Py_XDECREF(seq);
    Py_XDECREF(subp);
    return rc;
}

/* websocket.close before the handshake was answered: refused with 403, as
 * Uvicorn. */
static void cg__deny(cg_asgi_cycle_t *cy)
{
    cg_asgi_proto_t *p = cy->p;
    char page[512];
    size_t n = cg_http_error_page(403, "Forbidden", "", page, sizeof(page));
    if (n > 0)
        cg__write(p, page, n);
    cy->ws->state = CG__CLOSED;
    cg__set_dc(cy, CG_WS_CLOSE_ABNORMAL, NULL, 0);
    cy->status = 403;
    cy->started = cy->complete = true;
    cy->keep_alive = false;
    Py_INCREF(p); /* the cycle's reference goes */
    cg_asgi_proto_response_done(p); /* logs, closes */
    Py_DECREF(p);
}

/* websocket.send: one frame, compressed when permessage-deflate was agreed. */
static int cg__send_message(cg_asgi_cycle_t *cy, PyObject *msg)
{
    cg_asgi_t *a = cy->a;
    cg_asgi_ws_t *ws = cy->ws;
    PyObject *bytes = cg__get(msg, a->s[CG_AS_BYTES]); /* new */
    PyObject *text = bytes || PyErr_Occurred() ? NULL : cg__get(msg, a->s[CG_AS_TEXT]); /* new */
    if (PyErr_Occurred())
        goto fail;
    Py_buffer view = {0};
    const char *data;
    size_t len;
    uint8_t opcode;
    if (bytes != NULL) {
        if (PyObject_GetBuffer(bytes, &view, PyBUF_SIMPLE) < 0)
            goto fail;
        data = view.buf;
        len = (size_t)view.len;
        opcode = CG_WS_OP_BINARY;
    } else if (text != NULL && PyUnicode_Check(text)) {
        Py_ssize_t n;
        if ((data = PyUnicode_AsUTF8AndSize(text, &n)) == NULL)
            goto fail;
        len = (size_t)n;
        opcode = CG_WS_OP_TEXT;
    } else {
        PyErr_SetString(PyExc_TypeError,
                        "websocket.send needs 'bytes' (bytes) or 'text' (str), not None");
        goto fail;
    }
    bool rsv1 = false;
    if (ws->pmd != NULL) {
        ws->zout.len = 0;
        int r = cg_ws_deflate_message(ws->pmd, data, len, &ws->zout);
        if (r == 0) {
            data = ws->zout.data;
            len = ws->zout.len;
            rsv1 = true;
        } else if (r != -ENOTSUP) { /* -ENOTSUP: an 8-bit window, sent as it is */
            PyErr_Format(PyExc_RuntimeError, "WebSocket compression failed: %s", strerror(-r));
            if (bytes != NULL)
                PyBuffer_Release(&view);
            goto fail;
        }
    }
    uint8_t h[10];
    size_t hl = cg_ws_frame_header(h, opcode, true, rsv1, len);
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(hl + len)); /* new */
    if (out != NULL) {
        memcpy(PyBytes_AS_STRING(out), h, hl);
        if (len > 0)
            memcpy(PyBytes_AS_STRING(out) + hl, data, len);
    }
    if (bytes != NULL)
        PyBuffer_Release(&view);
    if (ws->zout.cap > CG_ASGI_WS_QUEUE_BYTES)
        cg_ws_buf_free(&ws->zout);
    int rc = out ? cg_asgi_proto_write_obj(cy->p, out) : -1;
    Py_XDECREF(out);
    Py_XDECREF(bytes);
    Py_XDECREF(text);
    return rc;
fail:
    Py_XDECREF(bytes);
    Py_XDECREF(text);
    return -1;
}

/* websocket.close after the handshake: code (1000) and reason. */
static int cg__app_close(cg_asgi_cycle_t *cy, PyObject *msg)
{
    cg_asgi_t *a = cy->a;
    long code = CG_WS_CLOSE_NORMAL;
    PyObject *c = cg__get(msg, a->s[CG_AS_CODE]); /* new */
    if (c != NULL) {
        code = PyLong_AsLong(c);
        Py_DECREF(c);
        if (code == -1 && PyErr_Occurred())
            return -1;
    } else if (PyErr_Occurred()) {
        return -1;
    }
    PyObject *r = cg__get(msg, a->s[CG_AS_REASON]); /* new */
    if (r == NULL && PyErr_Occurred())
        return -1;
    const char *reason = NULL;
    Py_ssize_t rlen = 0;
    if (r != NULL && (!PyUnicode_Check(r) || (reason = PyUnicode_AsUTF8AndSize(r, &rlen)) == NULL)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "websocket.close 'reason' must be a str");
        Py_DECREF(r);
        return -1;
    }
    int rc = code >= 0 && code <= 0xffff
                 ? cg__close(cy, (uint16_t)code, reason, (size_t)rlen)
                 : -EINVAL;
    Py_XDECREF(r);
    if (rc < 0) {
        PyErr_Format(PyExc_ValueError,
                     "Invalid WebSocket close: code %ld (1000-4999, not 1004-1006, 1015-2999) "
                     "with a reason of at most 123 UTF-8 bytes",
                     code);
        return -1;
    }
    cy->ws->app_closed = true;
    return 0;
}

static PyObject *cg__send(PyObject *self, PyObject *msg)
{
    cg_asgi_cycle_t *cy = (cg_asgi_cycle_t *)self;
    cg_asgi_t *a = cy->a;
    cg_asgi_ws_t *ws = cy->ws;
    PyObject *type = PyObject_GetItem(msg, a->s[CG_AS_TYPE]); /* new */
    if (type == NULL)
        return NULL;
    static const int known[] = {CG_AS_WS_SEND, CG_AS_WS_ACCEPT, CG_AS_WS_CLOSE,
                                CG_AS_WS_RESPONSE_START, CG_AS_WS_RESPONSE_BODY};
    int which = -1;
    for (size_t i = 0; i < CG_ARRAY_SIZE(known) && which < 0 && PyUnicode_Check(type); i++)
        if (PyUnicode_Compare(type, a->s[known[i]]) == 0)
            which = known[i];
    PyObject *res = NULL;
    cg_asgi_proto_t *p = cy->p;
    if (PyErr_Occurred())
        goto out;
    if (ws->app_closed) {
        PyErr_Format(PyExc_RuntimeError,
                     "Unexpected ASGI message %R, after sending 'websocket.close'.", type);
        goto out;
    }
    if (p == NULL || p->closed || ws->state == CG__CLOSING || ws->state == CG__CLOSED) {
        /* the client left, or the server closed (TERM, a protocol error):
         * a close is moot, anything else is told */
        if (which == CG_AS_WS_CLOSE) {
            ws->app_closed = true;
            res = cg_asgi_done_awaitable(a);
        } else {
            cg__raise_disconnected();
        }
        goto out;
    }
    if (ws->state == CG__CONNECTING) {
        if (which == CG_AS_WS_ACCEPT) {
            if (cg__accept(cy, msg) == 0)
                res = cg_asgi_done_awaitable(a);
        } else if (which == CG_AS_WS_CLOSE) {
            ws->app_closed = true;
            cg__deny(cy);
            res = cg_asgi_done_awaitable(a);
        } else if (which == CG_AS_WS_RESPONSE_START) {
            /* the denial response: http.c's writer, and the connection
             * closes after it */
            p->c.must_close = true;
            if (cg_asgi_response_start(cy, msg) == 0) {
                ws->state = CG__RESPONSE;
                res = cg_asgi_done_awaitable(a);
            }
        } else {
            PyErr_Format(PyExc_RuntimeError,
                         "Expected ASGI message 'websocket.accept', 'websocket.close' or "
                         "'websocket.http.response.start' but got %R.",
                         type);
        }
    } else if (ws->state == CG__RESPONSE) {
        if (which == CG_AS_WS_RESPONSE_BODY)
            res = cg_asgi_send_body(cy, msg);
        else
            PyErr_Format(PyExc_RuntimeError,
                         "Expected ASGI message 'websocket.http.response.body' but got %R.", type);
    } else if (which == CG_AS_WS_SEND) {
        if (cg__send_message(cy, msg) == 0)
            res = cg_asgi_send_done(p);
    } else if (which == CG_AS_WS_CLOSE) {
        if (cg__app_close(cy, msg) == 0)
            res = cg_asgi_done_awaitable(a);
    } else {
        PyErr_Format(PyExc_RuntimeError,
                     "Expected ASGI message 'websocket.send' or 'websocket.close', but got %R.",
                     type);
    }
out:
    Py_DECREF(type);
    return res;
}

PyMethodDef cg_asgi_ws_send_def = {
    "send", cg__send, METH_O,
    "ASGI send(message): websocket.accept/send/close, websocket.http.response.*."};

/* ---- the app's end ---- */

bool cg_asgi_ws_task_done(cg_asgi_cycle_t *cy, PyObject *exc, bool cancelled)
{
    cg_asgi_t *a = cy->a;
    cg_asgi_ws_t *ws = cy->ws;
    switch (ws->state) {
    case CG__CONNECTING:
        if (exc != NULL || cancelled)
            return false; /* 500, as for HTTP */
        if (cy->p != NULL)
            cg_asgi_cycle_fail(cy, NULL, "ASGI callable returned without completing handshake.");
        return true;
    case CG__RESPONSE:
        return false; /* the HTTP rules: a response cut short closes */
    case CG__OPEN:
        if (exc != NULL)
            cg_asgi_log_exc(a, CG_LOG_ERROR, "Error in ASGI application", exc);
        /* returning closes normally; failing is 1011 (RFC 6455 7.4.1) */
        (void)cg__close(cy, exc != NULL || cancelled ? CG_WS_CLOSE_INTERNAL_ERROR
                                                     : CG_WS_CLOSE_NORMAL,
                        NULL, 0);
        return true;
    default:
        /* after the close: an error is still worth a traceback, but not the
         * one send() raised because the client had left */
        if (exc != NULL && !PyErr_GivenExceptionMatches(exc, cg__disconnected_type()))
            cg_asgi_log_exc(a, CG_LOG_ERROR, "Error in ASGI application", exc);
        return true;
    }
}
