"""Gunicorn's ``gunicorn.debug``: ``spew()`` traces every line Python runs
to stdout, as ``name:lineno: source line`` (the ``spew`` setting installs it
in each worker, and in the master where the master runs Python)."""
import inspect
import linecache
import re
import sys

__all__ = ["spew", "unspew"]

_WORDS = re.compile(r"\W+")


def _source_line(frame):
    """(module name, source line) of the line frame is at."""
    lineno = frame.f_lineno
    globs = frame.f_globals
    filename = globs.get("__file__")
    if filename is not None:
        if filename.endswith((".pyc", ".pyo")):
            filename = filename[:-1]
        return globs.get("__name__", "[unknown]"), linecache.getline(filename, lineno)
    try:
        lines, first = inspect.getsourcelines(frame)
        return "[unknown]", lines[lineno - first]
    except (OSError, TypeError, IndexError):
        return "[unknown]", "Unknown code named [%s].  VM instruction #%d" % (
            frame.f_code.co_name, frame.f_lasti)


class Spew:
    """The trace function: trace_names limits it to those module names;
    show_values adds the values of the names the line mentions."""

    def __init__(self, trace_names=None, show_values=True):
        self.trace_names = trace_names
        self.show_values = show_values

    def __call__(self, frame, event, arg):
        if event != "line":
            return self
        name, line = _source_line(frame)
        if self.trace_names is not None and name not in self.trace_names:
            return self
        print("%s:%s: %s" % (name, frame.f_lineno, line.rstrip()))
        if self.show_values:
            shown = []
            for word in _WORDS.split(line):
                for scope in (frame.f_globals, frame.f_locals):
                    if word in scope:
                        shown.append("%s=%r" % (word, scope[word]))
            if shown:
                print("\t" + " ".join(shown))
        return self


def spew(trace_names=None, show_values=False):
    """Trace every line the calling thread runs from now on to stdout."""
    sys.settrace(Spew(trace_names, show_values))


def unspew():
    """Stop what spew() started."""
    sys.settrace(None)
