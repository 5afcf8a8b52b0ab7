"""Gunicorn's application classes (``gunicorn.app.base``) on the C server.

``BaseApplication`` is what a program subclasses to serve its own WSGI app
with its own settings (Gunicorn's "custom application" recipe): override
``load_config()`` to fill ``self.cfg`` and ``load()`` to return the WSGI
callable, then call ``run()``. ``Application`` adds Gunicorn's command line
(config file, GUNICORN_CMD_ARGS, argv) and an ``init()`` for defaults of its
own. ``run()`` hands the object to the C arbiter, which calls ``wsgi()`` in
each worker (or once in the master with --preload) and ``reload()`` on HUP,
then takes ``self.cfg`` again.

What differs from Gunicorn: the workers are C processes forked by the C
master, so a worker never returns into the caller's Python stack; ``run()``
ends the process with the arbiter's exit status (as Gunicorn's does with
``sys.exit``).
"""
import argparse
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import traceback

import cgunicorn
from cgunicorn import _core, util
from cgunicorn.config import SOURCE_APP, Config


class BaseApplication:
    """An application interface: configuration in ``self.cfg`` (a
    cgunicorn.config.Config), the WSGI callable from ``load()``."""

    def __init__(self, usage=None, prog=None):
        self.usage = usage
        self.cfg = None
        self.callable = None
        self.prog = prog
        self.logger = None
        self.do_load_config()

    def do_load_config(self):
        """A fresh Config, then load_config(); an exception is printed as
        Gunicorn prints it and ends the process with status 1."""
        try:
            self.load_default_config()
            self.load_config()
        except Exception as e:
            print("\nError: %s" % str(e), file=sys.stderr)
            sys.stderr.flush()
            sys.exit(1)

    def load_default_config(self):
        self.cfg = Config(self.usage, prog=self.prog)

    def init(self, parser, opts, args):
        raise NotImplementedError

    def load(self):
        """Return the WSGI callable (override)."""
        raise NotImplementedError

    def load_config(self):
        """Fill self.cfg from wherever the application keeps its settings
        (override)."""
        raise NotImplementedError

    def reload(self):
        """What HUP runs in the master before the new workers start: the
        configuration is read again; the server then takes self.cfg."""
        self.do_load_config()

    def wsgi(self):
        """The WSGI callable: load() once, then the same object."""
        if self.callable is None:
            self.callable = self.load()
        return self.callable

    def _server_app(self):
        """The application object the arbiter calls back (see
        WSGIApplication, which can let the C core import APP_MODULE)."""
        return self

    def run(self):
        """Serve until the arbiter stops, then exit with its status."""
        try:
            status = _core.run(self._server_app(), self.cfg, list(sys.argv),
                               *cgunicorn._reexec_command())
        except RuntimeError as e:
            print("\nError: %s\n" % e, file=sys.stderr)
            sys.stderr.flush()
            sys.exit(1)
        sys.exit(status)


class _ParseRefused(Exception):
    pass


def _parse_command_line(parser, args, app_uri):
    """argparse's reading of args for init(), without its exit on an
    error: the C command line has already accepted them, so a disagreement
    leaves every option None and APP_MODULE (app_uri) as the positional."""

    def refuse(message):
        raise _ParseRefused(message)

    parser.error = refuse
    try:
        return parser.parse_args(args)
    except (_ParseRefused, SystemExit):
        opts = argparse.Namespace(**{a.dest: None for a in parser._actions
                                     if a.dest not in (argparse.SUPPRESS, "help", "version")})
        opts.args = [app_uri] if app_uri and app_uri in args else []
        return opts
    finally:
        del parser.error


class Application(BaseApplication):
    """A BaseApplication configured as the cgunicorn command is: defaults,
    what init() returns, the config file, GUNICORN_CMD_ARGS, then argv
    (sys.argv), each overriding the one before. Subclasses implement
    init() and load()."""

    def chdir(self):
        """Go to cfg.chdir and put it first on sys.path."""
        os.chdir(self.cfg.chdir)
        if self.cfg.chdir not in sys.path:
            sys.path.insert(0, self.cfg.chdir)

    def get_config_from_filename(self, filename):
        """Run a Python configuration file; returns its namespace. A file
        that fails is reported with its traceback and exits (status 1)."""
        if not os.path.exists(filename):
            raise RuntimeError("%r doesn't exist" % filename)
        name = "__config__"
        try:
            if os.path.splitext(filename)[1] in (".py", ".pyc"):
                spec = importlib.util.spec_from_file_location(name, filename)
            else:
                util.warn("configuration file should have a valid Python extension.\n")
                loader = importlib.machinery.SourceFileLoader(name, filename)
                spec = importlib.util.spec_from_file_location(name, filename, loader=loader)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except Exception:
            print("Failed to read config file: %s" % filename, file=sys.stderr)
            traceback.print_exc()
            sys.stderr.flush()
            sys.exit(1)
        return vars(module)

    def get_config_from_module_name(self, module_name):
        return vars(importlib.import_module(module_name))

    def load_config_from_module_name_or_filename(self, location):
        """Apply a configuration given as "python:module", "file:PATH" or a
        path: every name in it that is a setting is set (others ignored)."""
        if location.startswith("python:"):
            namespace = self.get_config_from_module_name(location[len("python:"):])
        else:
            if location.startswith("file:"):
                location = location[len("file:"):]
            namespace = self.get_config_from_filename(location)
        for key, value in namespace.items():
            if key not in self.cfg.settings:
                continue
            try:
                self.cfg.set(key.lower(), value)
            except Exception:
                print("Invalid value for %s: %s\n" % (key, value), file=sys.stderr)
                sys.stderr.flush()
                raise
        return namespace

    def load_config_from_file(self, filename):
        return self.load_config_from_module_name_or_filename(location=filename)

    def load_config(self):
        """Read every source as the cgunicorn command does (in C: the same
        parser, files and messages; --help, --version and errors exit as
        there), then apply init()'s dict beneath the file, the environment
        and the command line, then chdir."""
        argv = list(sys.argv) or [""]
        argv[0] = self.cfg.prog or argv[0]
        self._command_line_app_uri = self.cfg.load_command_line(argv) or None
        parser = self.cfg.parser()
        opts = _parse_command_line(parser, argv[1:], self._command_line_app_uri)
        # what init() sets -- returned or through self.cfg.set -- yields to
        # the file, GUNICORN_CMD_ARGS and argv, as Gunicorn reads it first
        self.cfg._set_source = SOURCE_APP
        try:
            values = self.init(parser, opts, opts.args)
            for key, value in (values or {}).items():
                self.cfg.set(key.lower(), value)
        finally:
            self.cfg._set_source = _core.SOURCE_CLI
        self.chdir()

    def run(self):
        """--print-config prints the settings, and with --check-config it
        loads the application and exits (1 with the traceback if that
        fails); otherwise pythonpath goes on sys.path and the server runs."""
        if self.cfg.print_config:
            print(self.cfg)
        if self.cfg.print_config or self.cfg.check_config:
            try:
                self.load()
            except Exception:
                print("\nError while loading the application:\n", file=sys.stderr)
                traceback.print_exc()
                sys.stderr.flush()
                sys.exit(1)
            sys.exit(0)
        if self.cfg.pythonpath:
            for path in self.cfg.pythonpath.split(","):
                path = os.path.abspath(path)
                if path not in sys.path:
                    sys.path.insert(0, path)
        super().run()
