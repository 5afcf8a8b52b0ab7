"""Gunicorn's ``gunicorn.app.wsgiapp``: the application behind the command
line (APP_MODULE, or ``wsgi_app`` from a config file) and ``run()``, the
cgunicorn command itself."""
import os
import sys

import cgunicorn
from cgunicorn import _core, util
from cgunicorn.app.base import Application
from cgunicorn.errors import ConfigError


class WSGIApplication(Application):
    """Serves the WSGI application named by APP_MODULE on the command line
    (or by the wsgi_app setting).

    Used as it is, ``run()`` lets the C core import APP_MODULE and re-read
    the command line on HUP, exactly as the cgunicorn command does. A
    subclass that overrides how the application is loaded or configured
    (load, wsgi, load_wsgiapp, init, load_config, reload...) or changes
    ``app_uri`` is served through those methods instead."""

    def init(self, parser, opts, args):
        self.app_uri = None
        if opts.paste:
            uri = os.path.abspath(opts.paste)
            path = uri.split("#")[0]
            if not os.path.exists(path):
                raise ConfigError("%r not found" % path)
            self.cfg.set("default_proc_name", path)
            self.app_uri = uri
            from cgunicorn.app.pasterapp import has_logging_config
            if has_logging_config(path):
                self.cfg.set("logconfig", path)
            return
        if args:
            self.cfg.set("default_proc_name", args[0])
            self.app_uri = args[0]

    def load_config(self):
        super().load_config()
        if self.app_uri is None:
            if self.cfg.wsgi_app is None:
                raise ConfigError("No application module specified.")
            self.app_uri = self.cfg.wsgi_app

    def load_wsgiapp(self):
        """The callable app_uri names, imported as the command line does
        (AppImportError when it names none)."""
        return util.import_app(self.app_uri)

    def load_pasteapp(self):
        """The application of the --paste file, PasteDeploy's loadapp()."""
        from cgunicorn.app.pasterapp import get_wsgi_app
        return get_wsgi_app(self.app_uri, defaults=self.cfg.paste_global_conf)

    def load(self):
        if self.cfg.paste is not None:
            return self.load_pasteapp()
        return self.load_wsgiapp()

    def _server_app(self):
        cls = type(self)
        for name in _LOADING_METHODS:
            if getattr(cls, name) is not getattr(WSGIApplication, name):
                return self
        if self.app_uri != getattr(self, "_command_line_app_uri", None):
            return self
        # nothing of the command line's behaviour changed: C imports
        # APP_MODULE (with --reload's SyntaxError page, AppImportError's
        # exit status 4) and reads the command line again on HUP
        return None


# What, when a subclass overrides it, means the server must call this
# object back instead of doing the command line's work itself.
_LOADING_METHODS = ("init", "load", "load_config", "load_wsgiapp", "load_pasteapp", "wsgi",
                    "reload", "do_load_config", "load_default_config", "chdir")


def run(prog=None):
    """The cgunicorn command (Gunicorn's ``gunicorn`` entry point): reads
    sys.argv and serves, then exits with the server's status. prog: the
    program name --help and --version show."""
    argv = list(sys.argv) or [""]
    if prog:
        argv[0] = prog
    sys.exit(_core.main(argv, *cgunicorn._reexec_command()))


if __name__ == "__main__":
    run()
