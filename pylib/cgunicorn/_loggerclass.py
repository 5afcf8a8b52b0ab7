"""The Python half of a custom ``logger_class`` (src/python/loggerclass.c).

The C server calls these with the GIL held: ``make()`` once in the master
(``logger_class(cfg)``, as Gunicorn's arbiter does), then for every record
the C log hands over, one of ``error()``, ``exception()`` or ``access()``
with the instance. The instance is inherited by the workers forked from the
master.
"""
import datetime
import logging

# The records C makes, by level, go to the method Gunicorn's code calls
# for that level; a level without one (a custom number) goes to log().
_METHODS = {10: "debug", 20: "info", 30: "warning", 40: "error", 50: "critical"}


def make(uri, cfg):
    """logger_class(cfg) for the class uri names (a dotted path, "simple",
    or the name a class object given in a configuration was kept under)."""
    from cgunicorn.config import _load_logger_class
    return _load_logger_class(uri)(cfg)


def gate(logger):
    """The lowest level worth handing to the instance: the effective level
    of its error_log when it has Gunicorn's (a logging.Logger), else every
    record (the class decides)."""
    error_log = getattr(logger, "error_log", None)
    if isinstance(error_log, logging.Logger):
        return max(error_log.getEffectiveLevel(), logging.root.manager.disable + 1)
    return 0


def error(logger, level, msg):
    name = _METHODS.get(level)
    if name is not None:
        getattr(logger, name)(msg)
    else:
        logger.log(level, msg)


def exception(logger, level, msg):
    """A record with the exception being handled (sys.exc_info() shows it,
    as in Gunicorn's `except:` blocks)."""
    if level == logging.ERROR:
        logger.exception(msg)
    else:
        logger.log(level, msg, exc_info=True)


def _minimal_environ(req):
    # what Gunicorn's handle_error builds (default_environ plus the peer)
    # for a request that failed before its environ existed
    remote = req.remote_addr
    return {
        "REQUEST_METHOD": req.method,
        "RAW_URI": req.uri,
        "PATH_INFO": req.path,
        "QUERY_STRING": req.query,
        "SERVER_PROTOCOL": "HTTP/%d.%d" % tuple(req.version),
        "REMOTE_ADDR": remote[0] if isinstance(remote, tuple) else remote,
        "REMOTE_PORT": str(remote[1]) if isinstance(remote, tuple) else "",
    }


def access(logger, req, resp, environ, status, sent, micros):
    """logger.access(resp, req, environ, request_time) for one request.
    status: the status line the record shows (the app's, or the 500 the
    server answered); sent: body bytes sent, or None. An ASGI worker's resp
    already has the final status as an int (Gunicorn's ASGIResponseInfo):
    it stays one."""
    if not isinstance(getattr(resp, "status", None), int):
        resp.status = status
    try:
        resp.status_code = int(status.split(None, 1)[0])
    except (ValueError, IndexError):
        pass
    resp.sent = sent
    length = None
    for name, value in resp.headers:
        if name.lower() == "content-length":
            try:
                length = int(value)
            except ValueError:
                pass
    resp.response_length = length
    if environ is None:
        environ = _minimal_environ(req)
    try:
        logger.access(resp, req, environ, datetime.timedelta(microseconds=micros))
    except Exception:
        # where Gunicorn's worker ends up with an exception raised there
        logger.exception("Error handling request %s %s", req.method, req.uri)
