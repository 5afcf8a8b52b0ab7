"""The exceptions of Gunicorn's ``gunicorn.errors``, for code that raises or
catches them (``gunicorn.errors`` is this module under another name)."""


class HaltServer(BaseException):
    """Stop the server with a reason and an exit status. A BaseException, so
    that an application's ``except Exception`` does not swallow it."""

    def __init__(self, reason, exit_status=1):
        super().__init__(reason, exit_status)
        self.reason = reason
        self.exit_status = exit_status

    def __str__(self):
        return "<HaltServer %r %d>" % (self.reason, self.exit_status)


class ConfigError(Exception):
    """A setting's value cannot be used (no such user, a missing file...)."""


class AppImportError(Exception):
    """APP_MODULE names no usable WSGI application."""
