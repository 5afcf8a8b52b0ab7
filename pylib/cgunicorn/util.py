"""The helpers of Gunicorn's ``gunicorn.util`` that user code reaches for:
``import_app`` (the very import the command line does, from the C core),
``parse_address`` and a few small ones. The server's own helpers are C."""
import html
import importlib
import inspect
import re
import socket
import sys
import traceback

from cgunicorn import _core
from cgunicorn.errors import AppImportError


def import_app(module):
    """The WSGI callable named by an APP_MODULE string ("pkg.mod",
    "pkg.mod:name", "pkg.mod:factory(literal, args)"). Raises AppImportError
    for a name, expression or object that is no application, and whatever
    importing the module or calling the factory raised otherwise."""
    app, message = _core.load_app(module)
    if message is not None:
        raise AppImportError(message)
    return app


def parse_address(netloc, default_port="8000"):
    """One --bind value as the server reads it: a path (str) for
    unix:PATH, a descriptor (int) for fd://N, else (host, port)."""
    m = re.match(r"unix:(//)?", netloc)
    if m:
        return netloc[m.end():]
    if netloc.startswith("fd://"):
        try:
            return int(netloc[5:])
        except ValueError:
            raise RuntimeError("%r is not a valid file descriptor." % netloc[5:]) from None
    if netloc.startswith("tcp://"):
        netloc = netloc[len("tcp://"):]
    host, port = netloc, default_port
    if "[" in netloc and "]" in netloc:
        host = netloc.split("]")[0][1:]
        tail = netloc.split("]:")
        port = tail[1] if len(tail) > 1 else default_port
    elif ":" in netloc:
        parts = netloc.split(":")
        host = parts[0]
        port = parts[1] if len(parts) > 1 else default_port
    elif netloc == "":
        host = "0.0.0.0"
    try:
        port = int(port)
    except ValueError:
        raise RuntimeError("%r is not a valid port number." % port) from None
    return host.lower(), port


def bytes_to_str(b):
    """str as it is; bytes decoded as latin-1 (as WSGI strings are)."""
    return b if isinstance(b, str) else str(b, "latin1")


def get_arity(f):
    """How many positional parameters f takes (what hook checks count)."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in inspect.signature(f).parameters.values() if p.kind in kinds)


def is_ipv6(addr):
    """Whether addr is an IPv6 address literal."""
    try:
        socket.inet_pton(socket.AF_INET6, addr)
    except (OSError, ValueError):
        return False
    return True


def warn(msg):
    """Print a warning block on stderr, as Gunicorn's start-up warnings look."""
    print("!!!", file=sys.stderr)
    for i, line in enumerate(msg.splitlines()):
        print("!!! %s%s" % ("WARNING: " if i == 0 else "", line), file=sys.stderr)
    print("!!!\n", file=sys.stderr)
    sys.stderr.flush()


def _entry_point(dist, group, name):
    from importlib import metadata
    eps = [ep for ep in metadata.distribution(dist).entry_points
           if ep.group == group and ep.name == name]
    if not eps:
        raise ImportError("Entry point %r not found" % ((group, name),))
    return eps[0].load()


def load_class(uri, default="gunicorn.workers.sync.SyncWorker", section="gunicorn.workers"):
    """The class uri names, as Gunicorn resolves worker_class: a class as
    it is; "egg:DIST#NAME" (an entry point of group section; "egg:DIST"
    alone means NAME default); a dotted "pkg.mod.Class"; a bare name of
    SUPPORTED_WORKERS, else an entry point of the gunicorn distribution.
    Raises RuntimeError("class uri ... invalid or not found: ...") with the
    traceback when the module or entry point cannot be loaded."""
    msg = "class uri %r invalid or not found: \n\n[%s]"
    if inspect.isclass(uri):
        return uri
    if uri.startswith("egg:"):
        dist, sep, name = uri[len("egg:"):].rpartition("#")
        if not sep:
            dist, name = name, default
        try:
            return _entry_point(dist, section, name)
        except Exception:
            raise RuntimeError(msg % (uri, traceback.format_exc())) from None
    components = uri.split(".")
    if len(components) == 1:
        from cgunicorn.workers import SUPPORTED_WORKERS
        name = uri.lstrip("#")
        if name not in SUPPORTED_WORKERS:
            try:
                return _entry_point("gunicorn", section, name)
            except Exception:
                raise RuntimeError(msg % (uri, traceback.format_exc())) from None
        components = SUPPORTED_WORKERS[name].split(".")
    klass = components.pop(-1)
    try:
        mod = importlib.import_module(".".join(components))
    except Exception:
        raise RuntimeError(msg % (uri, traceback.format_exc())) from None
    return getattr(mod, klass)


def make_fail_app(msg):
    """A WSGI app answering every request 500 with msg as plain text."""
    body = msg.encode("utf-8") if isinstance(msg, str) else msg

    def app(environ, start_response):
        start_response("500 Internal Server Error", [
            ("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def write_error(sock, status_int, reason, mesg):
    """Send Gunicorn's HTML error response (Connection: close) on sock."""
    page = ("<html>\n  <head>\n    <title>%(reason)s</title>\n  </head>\n  <body>\n"
            "    <h1><p>%(reason)s</p></h1>\n    %(mesg)s\n  </body>\n</html>\n"
            % {"reason": reason, "mesg": html.escape(mesg)})
    head = ("HTTP/1.1 %s %s\r\nConnection: close\r\nContent-Type: text/html\r\n"
            "Content-Length: %d\r\n\r\n" % (status_int, reason, len(page)))
    sock.sendall((head + page).encode("latin1"))
