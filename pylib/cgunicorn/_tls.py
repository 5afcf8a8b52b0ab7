"""The ssl.SSLContext the asgi worker serves TLS with: the one Gunicorn's
default ssl_context factory makes (gunicorn/sock.py), from the same
settings, passed through the configuration's ssl_context hook when there is
one, as Gunicorn calls it. The sync and gthread workers use the C transport
(src/tls/) instead; the master has already checked the files either way."""
import ssl


def server_context(conf, hook=None):
    """conf: a cgunicorn.config.Config; hook: the ssl_context setting's
    callable when the configuration set one, else None."""
    def default_ssl_context_factory():
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=conf.ca_certs)
        context.load_cert_chain(certfile=conf.certfile, keyfile=conf.keyfile)
        context.verify_mode = conf.cert_reqs
        if conf.ciphers:
            context.set_ciphers(conf.ciphers)
        return context

    if hook is None:
        return default_ssl_context_factory()
    return hook(conf, default_ssl_context_factory)
