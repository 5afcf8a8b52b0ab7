"""The helpers of Gunicorn's ``gunicorn.util`` that user code reaches for:
``import_app`` (the very import the command line does, from the C core),
``parse_address`` and a few small ones. The server's own helpers are C."""
import inspect
import re
import socket
import sys

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
