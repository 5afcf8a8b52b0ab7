"""The TLS helpers of Gunicorn's ``gunicorn.sock`` that a Python worker
class calls to serve https itself: Gunicorn's base ``Worker`` hands a class
plain listening sockets, and its own workers wrap each accepted connection
(sync, gthread: ``ssl_wrap_socket``) or give the context to the server
they run (gevent's pywsgi, tornado: ``ssl_context``). cgunicorn's C workers
do not go through here (src/tls/)."""
from cgunicorn import _tls

__all__ = ["ssl_context", "ssl_wrap_socket"]


def ssl_context(conf):
    """An ssl.SSLContext for a server, as Gunicorn's sock.ssl_context:
    ``conf.ssl_context(conf, default_ssl_context_factory)``, the factory
    making one from certfile, keyfile, ca_certs, cert_reqs and ciphers.
    Called for every wrapped connection, as in Gunicorn, so a hook may
    return a new context each time. (No ALPN: the Python worker classes
    speak HTTP/1.1 only; http_protocols with h2 is refused for them.)"""
    return _tls.server_context(conf, conf.ssl_context)


def ssl_wrap_socket(sock, conf):
    """A server-side ssl.SSLSocket over an accepted socket, with the
    suppress_ragged_eofs and do_handshake_on_connect settings."""
    return ssl_context(conf).wrap_socket(sock, server_side=True,
                                         suppress_ragged_eofs=conf.suppress_ragged_eofs,
                                         do_handshake_on_connect=conf.do_handshake_on_connect)
