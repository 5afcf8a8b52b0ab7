"""Gunicorn's ``Config`` for Python code: applications built on
``cgunicorn.app.base`` (or ``gunicorn.app.base``), hooks, configuration files.

The settings live in the C table (``cgunicorn._core.Config``, which this
class extends): ``set()`` runs the same validators as the command line and a
configuration file, with Gunicorn's messages, and every read comes from the
table, so what Python sees is what the server will use. On top of it this
module gives Gunicorn's Python face: ``cfg.settings`` (name -> Setting),
attribute access (``cfg.workers``), the derived properties (``address``,
``worker_class_str``, ``env``, ...) and an argparse ``parser()``.
"""
import argparse
import copy
import ipaddress
import os
import re
import shlex
import sys

from cgunicorn import _core, __version__
from cgunicorn.errors import ConfigError

SOURCE_DEFAULT = _core.SOURCE_DEFAULT
SOURCE_APP = _core.SOURCE_APP
SOURCE_FILE = _core.SOURCE_FILE
SOURCE_ENV = _core.SOURCE_ENV
SOURCE_CLI = _core.SOURCE_CLI

# (name, section, cli flags "-w|--workers", meta, default text, type, help)
_ROWS = tuple(_core.settings())
_NAMES = frozenset(row[0] for row in _ROWS)
_KIND = {row[0]: row[5] for row in _ROWS}

# What each rejected value raises. The C validators give Gunicorn's message
# with either TypeError or ValueError; Gunicorn's own validators raise these
# kinds for these messages.
# the C table refuses with ValueError; these messages are Gunicorn's
# TypeErrors (a value of the wrong kind)
_TYPE_ERRORS = (
    "Not a ",
    "Value is not ",
    "Invalid value for boolean",
    "Value must be a callable",
    "int() can't convert",
    "Invalid type for casting",
    "Value must be one of (",
    "proxy_protocol must be string or bool",
    "http_protocols must be a string",
    "http_parser must be a string",
)
_CONFIG_ERRORS = ("No such user", "No such group", "can't chdir to", "Invalid reload_engine")


def _refusal(name, exc):
    """exc (from the C table's set) as the exception Gunicorn raises."""
    if not isinstance(exc, (TypeError, ValueError)):
        return exc
    msg = str(exc)
    if msg.startswith(_CONFIG_ERRORS):
        kind = ConfigError
    elif (_KIND.get(name) == "callable" or msg.startswith(_TYPE_ERRORS)
          or msg.endswith("object is not iterable")):
        # every refusal of a hook is a TypeError in Gunicorn, the
        # ImportError of its "module.function" string included
        kind = TypeError
    else:
        return exc
    return exc if type(exc) is kind else kind(msg)


# int in the table, but the command line gives text the validator reads
# (a user or group name; cert_reqs as Gunicorn's parser leaves it)
_TEXT_ON_COMMAND_LINE = frozenset(("user", "group", "cert_reqs"))


def auto_int(value):
    """An integer from command-line text, "0o22", "0x1f" and a leading-zero
    "022" (octal) included: how --umask is read."""
    if re.match(r"0(\d)", value):
        value = value.replace("0", "0o", 1)
    return int(value, 0)


_defaults_table = None


def _defaults():
    """A table holding only defaults (made once: what Setting.default reads)."""
    global _defaults_table
    if _defaults_table is None:
        _defaults_table = _core.Config()
    return _defaults_table


def _validate(name, value):
    """What Gunicorn's validator returns for value: the value as a fresh
    table stores it, or the exception Gunicorn raises."""
    scratch = _core.Config()
    try:
        scratch.set(name, _python_object_name(name, value))
    except Exception as e:
        raise _refusal(name, e) from None
    return scratch.get(name)


def _python_object_name(name, value):
    """worker_class and logger_class given as the classes that name what the
    server runs (cgunicorn.workers.SyncWorker, cgunicorn.glogging.Logger, or
    the gunicorn shims of them) become the strings the C table takes."""
    if name == "logger_class" and callable(value) and not isinstance(value, type):
        value = value()  # Gunicorn's validate_class: a function giving the class
    if not isinstance(value, type):
        return value
    # a real Gunicorn's classes name what we run by their dotted path
    dotted = "%s.%s" % (value.__module__, value.__qualname__)
    if name == "worker_class":
        from cgunicorn import workers
        if issubclass(value, workers.CWorker) and value.kind is not None:
            return value.kind
        if dotted in ("gunicorn.workers.sync.SyncWorker", "gunicorn.workers.gthread.ThreadWorker",
                      "gunicorn.workers.gasgi.ASGIWorker"):
            return dotted
        # any other class runs as a Python worker class: kept by its name,
        # as a class defined in a configuration file cannot be imported again
        _WORKER_CLASSES[dotted] = value
        return dotted
    elif name == "logger_class":
        from cgunicorn import glogging
        if value is glogging.Logger or dotted == "gunicorn.glogging.Logger":
            return "gunicorn.glogging.Logger"
        # any other class: the C table keeps its dotted name, and the class
        # itself is kept under that name, since one defined in a
        # configuration file cannot be imported again
        _LOGGER_CLASSES[dotted] = value
        return dotted
    return value


# logger_class and worker_class objects given to set() or in a
# configuration file, by the dotted name the settings table shows for them
_LOGGER_CLASSES = {}
_WORKER_CLASSES = {}


def _load_worker_class(uri):
    """The class a worker_class value names: a class object given earlier
    (by its name), else Gunicorn's util.load_class."""
    if uri in _WORKER_CLASSES:
        return _WORKER_CLASSES[uri]
    # a name of Gunicorn's own that a class of ours runs ("gevent")
    ours = _core._worker_python_class(uri) if isinstance(uri, str) else None
    if ours is not None:
        uri = ours
    from cgunicorn.util import load_class
    return load_class(uri)


def _load_logger_class(uri):
    """The class logger_class names: "simple" or Gunicorn's default, a class
    object given earlier (by its name), or a dotted path imported as
    Gunicorn's util.load_class does, with its RuntimeError when that fails.
    A class with an install() has it called, as Gunicorn does."""
    if uri in ("simple", "gunicorn.glogging.Logger"):
        import importlib
        try:
            cls = importlib.import_module("gunicorn.glogging").Logger
        except ImportError:
            from cgunicorn import glogging
            cls = glogging.Logger
    elif uri in _LOGGER_CLASSES:
        cls = _LOGGER_CLASSES[uri]
    else:
        cls = _import_class(uri)
    if hasattr(cls, "install"):
        cls.install()
    return cls


def _import_class(uri):
    import importlib
    import traceback
    module, _, attr = uri.rpartition(".")
    try:
        if not module:
            raise ImportError("No module named %r" % uri)
        cls = getattr(importlib.import_module(module), attr)
    except Exception:
        raise RuntimeError("class uri %r invalid or not found: \n\n[%s]"
                           % (uri, traceback.format_exc())) from None
    return cls


class Setting:
    """One setting of a Config, as Gunicorn's Setting objects show it.

    name, section, cli (list of flags or None), meta, default (the value a
    fresh Config has), desc and short (the help), type/action/nargs/const
    (how parser() reads it from a command line). ``value``, ``get()`` and
    ``set()`` read and write the live value of the Config it belongs to."""

    def __init__(self, cfg, row, order):
        name, section, flags, meta, default_text, kind, help_text = row
        self.cfg = cfg
        self.name = name
        self.section = section
        self.cli = flags.split("|") if flags else None
        self.meta = meta
        self.order = order
        self.desc = help_text.strip()
        self.short = self.desc.splitlines()[0] if self.desc else ""
        self.type = {"int": int, "octal": auto_int, "callable": callable}.get(kind)
        if name in _TEXT_ON_COMMAND_LINE:
            self.type = None
        self.action = None
        self.nargs = None
        self.const = None
        if self.cli and kind == "bool":
            if name == "sendfile":
                # --no-sendfile stores False; unset means "decide at run time"
                self.action, self.const = "store_const", False
            else:
                self.action = "store_true"
        elif self.cli and kind == "list":
            self.action = "append"
        if name == "proxy_protocol":
            self.nargs, self.const = "?", "auto"
        # Gunicorn's Setting.default is the value as declared, before its
        # validator: comma-separated text for the csv kinds, None for
        # sendfile (cfg.sendfile then decides; the C table answers with that
        # decision). Otherwise it is what a fresh table holds.
        if kind == "csv":
            self.default = default_text
        elif name == "sendfile":
            self.default = None
        else:
            self.default = _defaults().get(name)

    @property
    def value(self):
        return self.cfg.get(self.name)

    @value.setter
    def value(self, val):
        self.cfg.set(self.name, val)

    def get(self):
        return self.value

    def set(self, val):
        self.cfg.set(self.name, val)

    def validator(self, val):
        """The value val would be stored as; raises as Config.set would."""
        return _validate(self.name, val)

    def add_option(self, parser):
        """Add this setting's command-line flags to an argparse parser (none
        for settings without flags)."""
        if not self.cli:
            return
        kwargs = {
            "dest": self.name,
            "action": self.action or "store",
            "default": None,
            "help": ("%s [%s]" % (self.short, self.default)).replace("%", "%%"),
        }
        if kwargs["action"] == "store":
            kwargs["type"] = self.type or str
        if self.meta is not None:
            kwargs["metavar"] = self.meta
        if self.nargs is not None:
            kwargs["nargs"] = self.nargs
        if self.const is not None:
            kwargs["const"] = self.const
        parser.add_argument(*self.cli, **kwargs)

    def copy(self):
        return copy.copy(self)

    def __lt__(self, other):
        return self.section == other.section and self.order < other.order

    def __repr__(self):
        return "<%s.%s %r object at %x with value %r>" % (
            type(self).__module__, type(self).__name__, self.name, id(self), self.value)


class Config(_core.Config):
    """Every Gunicorn setting, validated and stored by the C table.

    ``Config(usage=None, prog=None)`` starts from the defaults. Read a
    setting as an attribute (``cfg.workers``) or with ``get(name)``; change
    it with ``set(name, value)``, which raises what Gunicorn's validators
    raise (AttributeError for an unknown name, then TypeError, ValueError
    or ConfigError with Gunicorn's message). Assigning to a setting's
    attribute is refused, as in Gunicorn.

    ``set(name, value, source)`` also takes where the value comes from
    (SOURCE_APP < SOURCE_FILE < SOURCE_ENV < SOURCE_CLI): a value yields to
    one already set from a stronger source. Without it the value wins, as
    Gunicorn's last-set-wins. ``load_command_line(argv)`` reads the config
    file, GUNICORN_CMD_ARGS and argv exactly as the cgunicorn command does.
    """

    def __init__(self, usage=None, prog=None):
        super().__init__()
        self.settings = {row[0]: Setting(self, row, i) for i, row in enumerate(_ROWS)}
        self.usage = usage
        argv = getattr(sys, "argv", None) or [""]
        self.prog = prog or os.path.basename(argv[0])
        self.env_orig = os.environ.copy()
        # the source set() uses when given none (Application.load_config
        # lowers it while init() runs, so a file and the command line win)
        self._set_source = SOURCE_CLI

    def __str__(self):
        return self.dump()

    def __getattr__(self, name):
        # only called for names that are no attribute: the settings
        if name == "settings" or name.startswith("__"):
            raise AttributeError(name)
        if name not in _NAMES:
            raise AttributeError("No configuration setting for: %s" % name)
        return self.get(name)

    def __setattr__(self, name, value):
        if name in _NAMES:
            raise AttributeError("Invalid access!")
        super().__setattr__(name, value)

    def set(self, name, value, source=None):
        """Validate value and store it as setting name (see the class)."""
        if name not in _NAMES:
            raise AttributeError("No configuration setting for: %s" % name)
        if source is None:
            source = self._set_source
        try:
            super().set(name, _python_object_name(name, value), source)
        except Exception as e:
            raise _refusal(name, e) from None

    def get_cmd_args_from_env(self):
        """GUNICORN_CMD_ARGS (as it was when this Config was made), split
        as a shell would."""
        if "GUNICORN_CMD_ARGS" in self.env_orig:
            return shlex.split(self.env_orig["GUNICORN_CMD_ARGS"])
        return []

    def parser(self):
        """An argparse parser for Gunicorn's command line: every setting's
        flags (dest = setting name, default None), -v/--version and the
        positional ``args`` (APP_MODULE)."""
        parser = argparse.ArgumentParser(usage=self.usage, prog=self.prog)
        parser.add_argument("-v", "--version", action="version", default=argparse.SUPPRESS,
                            version="%(prog)s (version " + __version__ + ")\n",
                            help="show program's version number and exit")
        parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
        for setting in self.settings.values():
            setting.add_option(parser)
        return parser

    @property
    def worker_class_str(self):
        """The worker's name as "Using worker:" shows it: "sync" with
        --threads > 1 is "gthread"."""
        uri = self.get("worker_class")
        if not isinstance(uri, str):
            return uri.__name__
        if uri in _WORKER_CLASSES:
            return _WORKER_CLASSES[uri].__name__
        if (uri == "sync" or uri.endswith("SyncWorker")) and self.get("threads") > 1:
            return "gthread"
        return uri

    @property
    def worker_class(self):
        """The worker's class: for the C workers the class naming them
        (cgunicorn.workers), else the Python class, loaded as Gunicorn's
        cfg.worker_class does (its setup() called). NotImplementedError
        for Gunicorn's workers cgunicorn does not run (gevent, ...)."""
        from cgunicorn import workers
        uri = self.get("worker_class")
        if (uri == "sync" or uri.endswith("SyncWorker")) and self.get("threads") > 1:
            uri = "gthread"
        cls = workers.by_kind(uri)
        if cls is not None:
            return cls
        if not _core._worker_kind_is_python(uri):
            raise NotImplementedError("worker_class %r is not supported yet by cgunicorn" % uri)
        cls = _load_worker_class(uri)
        if hasattr(cls, "setup"):
            cls.setup()
        return cls

    @property
    def logger_class(self):
        """The error and access log's class, loaded as Gunicorn's
        cfg.logger_class does (RuntimeError when it cannot be imported)."""
        return _load_logger_class(self.get("logger_class"))

    def get(self, name):
        value = super().get(name)
        if name == "logconfig_dict" and value:
            # the table keeps repr()s of the values; the dict a configuration
            # gave (objects included) is what a Logger's setup() needs
            kept = sys.modules.get("_cgunicorn_logging")
            if kept is not None:
                try:
                    return kept._find_dict(tuple(value.items()))
                except RuntimeError:
                    pass
        return value

    @property
    def address(self):
        """The bind addresses parsed: (host, port), a unix socket's path,
        or an inherited descriptor's number."""
        from cgunicorn.util import bytes_to_str, parse_address
        return [parse_address(bytes_to_str(b)) for b in self.get("bind")]

    @property
    def uid(self):
        return self.get("user")

    @property
    def gid(self):
        return self.get("group")

    @property
    def proc_name(self):
        """proc_name, else default_proc_name (the APP_MODULE)."""
        name = self.get("proc_name")
        return name if name is not None else self.get("default_proc_name")

    @property
    def is_ssl(self):
        return self.get("certfile") or self.get("keyfile")

    def forwarded_allow_networks(self):
        """forwarded_allow_ips as ipaddress networks ("*" left out)."""
        return [ipaddress.ip_network(a) for a in self.get("forwarded_allow_ips") if a != "*"]

    def proxy_allow_networks(self):
        """proxy_allow_ips as ipaddress networks ("*" left out)."""
        return [ipaddress.ip_network(a) for a in self.get("proxy_allow_ips") if a != "*"]

    @property
    def ssl_options(self):
        """The settings of the SSL section, name -> value."""
        return {name: s.get() for name, s in self.settings.items() if s.section == "SSL"}

    @property
    def env(self):
        """raw_env ("KEY=VALUE" strings) as a dict."""
        from cgunicorn.util import bytes_to_str
        env = {}
        for item in self.get("raw_env") or ():
            text = bytes_to_str(item)
            if "=" not in text:
                raise RuntimeError("environment setting %r invalid" % text)
            key, value = text.split("=", 1)
            env[key] = value
        return env

    @property
    def sendfile(self):
        """Whether responses may use sendfile(2): off once the setting is
        given (--no-sendfile), else as $SENDFILE says, else on."""
        return self.get("sendfile")

    @property
    def reuse_port(self):
        return self.get("reuse_port")

    @property
    def paste_global_conf(self):
        """--paste-global "KEY=VALUE" values as a dict ("\\=" is a literal
        "=")."""
        return parse_paste_global_conf(self.get("raw_paste_global_conf"))


def parse_paste_global_conf(raw):
    """raw_paste_global_conf's "KEY=VALUE" items as a dict ("\\=" is a
    literal "="); None stays None."""
    from cgunicorn.util import bytes_to_str
    if raw is None:
        return None
    conf = {}
    for item in raw:
        text = bytes_to_str(item)
        parts = re.split(r"(?<!\\)=", text, maxsplit=1)
        if len(parts) != 2:
            raise RuntimeError("environment setting %r invalid" % text)
        conf[parts[0].replace("\\=", "=")] = parts[1].replace("\\=", "=")
    return conf


class AccessLogFormat:
    """Gunicorn's access_log_format setting class, for code that reads its
    ``default`` (aiohttp's worker compares the configured format with it)."""
    name = "access_log_format"
    default = next(row[4] for row in _ROWS if row[0] == "access_log_format")


def get_default_config_file():
    """./gunicorn.conf.py when it exists (as an absolute path), else None."""
    path = os.path.join(os.path.abspath(os.getcwd()), "gunicorn.conf.py")
    return path if os.path.exists(path) else None
