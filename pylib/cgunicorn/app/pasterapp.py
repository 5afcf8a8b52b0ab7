"""Gunicorn's PasteDeploy support (``gunicorn.app.pasterapp``).

``cgunicorn --paste development.ini[#name]`` loads the WSGI application of
a PasteDeploy file (``[app:main]``, ``[pipeline:main]``, ``[composite:...]``
and their filters) in each worker, with ``--paste-global KEY=VALUE`` as its
global_conf, and takes the file's ``[loggers]``/``[handlers]``/
``[formatters]`` sections as the logging configuration, as Gunicorn does.

``serve`` is the ``paste.server_runner`` entry point: ``[server:main]`` with
``use = egg:cgunicorn#main`` (or ``egg:gunicorn#main``, where Gunicorn is not
installed) makes ``pserve development.ini`` run cgunicorn, reading host,
port and any other setting from that section.
"""
import configparser
import os

from cgunicorn.app.wsgiapp import WSGIApplication
from cgunicorn.config import get_default_config_file, parse_paste_global_conf


def get_wsgi_app(config_uri, name=None, defaults=None):
    """The application of a PasteDeploy file: config_uri is a path (or any
    loadapp URI such as ``config:PATH#name``), relative paths from the
    working directory, defaults the global_conf."""
    from paste.deploy import loadapp  # the user's dependency, as in Gunicorn

    if ":" not in config_uri:
        config_uri = "config:" + config_uri
    return loadapp(config_uri, name=name, relative_to=os.getcwd(), global_conf=defaults)


def has_logging_config(config_file):
    """Whether the file configures logging (has a [loggers] section)."""
    parser = configparser.ConfigParser()
    parser.read([config_file])
    return parser.has_section("loggers")


def _load(app_uri, raw_global_conf):
    """What the C server calls in a worker (or, with --preload, the master)
    for --paste: raw_global_conf is the raw_paste_global_conf list."""
    return get_wsgi_app(app_uri, defaults=parse_paste_global_conf(raw_global_conf))


def serve(app, global_conf, **local_conf):
    """PasteDeploy's server runner: serve `app` with cgunicorn, settings from
    the [server:...] section (host and port make the bind address; config
    names a cgunicorn/Gunicorn configuration file read first)."""
    config_file = global_conf["__file__"]
    conf_file = local_conf.pop("config", None)
    host = local_conf.pop("host", "")
    port = local_conf.pop("port", "")
    if host and port:
        local_conf["bind"] = "%s:%s" % (host, port)
    elif host:
        local_conf["bind"] = host.split(",")

    class PasterServerApplication(WSGIApplication):
        def load_config(self):
            self.cfg.set("default_proc_name", config_file)
            if has_logging_config(config_file):
                self.cfg.set("logconfig", config_file)
            location = conf_file or get_default_config_file()
            if location is not None:
                self.load_config_from_file(location)
            for key, value in local_conf.items():
                if value is not None:
                    self.cfg.set(key.lower(), value)

        def load(self):
            return app

    PasterServerApplication().run()
