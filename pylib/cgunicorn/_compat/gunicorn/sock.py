"""gunicorn.sock: the TLS helpers of cgunicorn.sock under Gunicorn's name
(what a worker class calls to serve https itself)."""
from cgunicorn.sock import ssl_context, ssl_wrap_socket

__all__ = ["ssl_context", "ssl_wrap_socket"]
