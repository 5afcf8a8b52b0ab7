"""The ssl.SSLContext the asgi worker serves TLS with: the one Gunicorn's
default ssl_context factory makes (gunicorn/sock.py), from the same
settings. The sync and gthread workers use the C transport (src/tls/)
instead; the master has already checked the files either way."""
import ssl


def default_context(certfile, keyfile, ca_certs, cert_reqs, ciphers):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca_certs)
    context.load_cert_chain(certfile=certfile, keyfile=keyfile)
    context.verify_mode = cert_reqs
    if ciphers:
        context.set_ciphers(ciphers)
    return context
