"""TLS pieces written in Python.

server_context(): the ssl.SSLContext the asgi worker serves TLS with: the
one Gunicorn's default ssl_context factory makes (gunicorn/sock.py), from
the same settings, passed through the configuration's ssl_context hook when
there is one, as Gunicorn calls it. The master has already checked the files.

hook_context(): the context of a configuration's ssl_context hook for the
sync, gthread and gevent workers, whose C transport (src/tls/) then serves with the
OpenSSL context inside it (src/python/tlshook.c); refuses what that
transport cannot honour. SNISocket: what its sni_callback is given as the
ssl_socket there.

PeerSocket: environ['gunicorn.socket'] on a TLS connection of the sync,
gthread and gevent workers, with the ssl.SSLSocket methods an app calls there for the
client's certificate."""
import os
import socket
import ssl


def _default_factory(conf, alpn=None):
    def default_ssl_context_factory():
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=conf.ca_certs)
        context.load_cert_chain(certfile=conf.certfile, keyfile=conf.keyfile)
        context.verify_mode = conf.cert_reqs
        if conf.ciphers:
            context.set_ciphers(conf.ciphers)
        # in the factory, as Gunicorn 27: a hook that sets its own list
        # after calling it keeps that list
        if alpn:
            context.set_alpn_protocols(alpn)
        return context
    return default_ssl_context_factory


def server_context(conf, hook=None, alpn=None):
    """conf: a cgunicorn.config.Config; hook: the ssl_context setting's
    callable when the configuration set one, else None; alpn: the ALPN
    names the default factory offers (None: no ALPN)."""
    factory = _default_factory(conf, alpn)
    if hook is None:
        return factory()
    return hook(conf, factory)


def hook_context(conf, hook):
    """The hook's context, checked: an ssl.SSLContext for a server without
    a _msg_callback (Python's callbacks expect a Python SSLSocket behind
    every connection, and the C transport has none; its sni_callback and
    keylog_filename are honoured by tlshook.c's stand-ins)."""
    ctx = hook(conf, _default_factory(conf))
    if not isinstance(ctx, ssl.SSLContext):
        raise TypeError("ssl_context must return an ssl.SSLContext, not %s"
                        % type(ctx).__name__)
    if ctx.protocol == ssl.PROTOCOL_TLS_CLIENT:
        raise ValueError("ssl_context returned a client context (PROTOCOL_TLS_CLIENT); "
                         "a server needs ssl.Purpose.CLIENT_AUTH / PROTOCOL_TLS_SERVER")
    if getattr(ctx, "_msg_callback", None) is not None:
        raise ValueError("ssl_context: _msg_callback is not supported by cgunicorn's "
                         "C TLS transport (sync, gthread and gevent workers)")
    return ctx


class SNISocket:
    """The ssl_socket an sni_callback gets on the C transport (Python gives
    the connection's SSLSocket): the server side of a handshake in
    progress, whose ``context`` the callback may set to another
    ssl.SSLContext, which then serves the handshake (tlshook.c switches
    the connection to it when the callback returns None)."""
    __slots__ = ("_context",)
    server_side = True
    server_hostname = None

    def __init__(self, context):
        self._context = context

    @property
    def context(self):
        return self._context

    @context.setter
    def context(self, ctx):
        # as SSLSocket.context's setter (Modules/_ssl.c), by the C type:
        # gevent's monkey patching replaces ssl.SSLContext by a subclass
        if not isinstance(ctx, ssl._ssl._SSLContext):
            raise TypeError("The value must be a SSLContext")
        self._context = ctx


class PeerSocket(socket.socket):
    """A plain socket on a duplicate of the connection's descriptor (bytes
    written to it would corrupt the TLS stream), carrying what the worker
    read from the TLS session when the request began."""
    __slots__ = ("_cg_der", "_cg_verified", "_cg_cipher", "_cg_version", "_cg_alpn",
                 "_cg_decoded")

    def getpeercert(self, binary_form=False):
        """As ssl.SSLSocket.getpeercert(): None without a client certificate,
        DER bytes for binary_form, else {} unless the certificate was asked
        for (cert_reqs 1 or 2), else the decoded dict."""
        der = self._cg_der
        if der is None:
            return None
        if binary_form:
            return der
        if not self._cg_verified:
            return {}
        decoded = getattr(self, "_cg_decoded", None)
        if decoded is None:
            decoded = self._cg_decoded = _decode_der(der)
        return decoded

    def cipher(self):
        return self._cg_cipher

    def version(self):
        return self._cg_version

    def selected_alpn_protocol(self):
        return self._cg_alpn


def _decode_der(der):
    # Python decodes certificates only from a file (its private
    # _test_decode_cert, the same decoder as getpeercert()): an anonymous
    # memory file, never on disk.
    fd = os.memfd_create("cgunicorn-peercert", os.MFD_CLOEXEC)
    try:
        os.write(fd, ssl.DER_cert_to_PEM_cert(der).encode("ascii"))
        return ssl._ssl._test_decode_cert("/proc/self/fd/%d" % fd)
    finally:
        os.close(fd)
