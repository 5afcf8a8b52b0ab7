"""Invalid setting values of every kind, through the command line,
GUNICORN_CMD_ARGS and a config file, answered as Gunicorn 26.1 answers them:

- an argparse `type=` failure (int, auto_int) or a malformed option line:
  usage line + "PROG: error: ..." and exit 2;
- a validator refusing a command-line string: "\\nError: MSG\\n", exit 1
  (Application.do_load_config);
- a validator refusing a config-file value: "Invalid value for NAME: VALUE"
  and a blank line, then "\\nError: MSG\\n", exit 1
  (load_config_from_module_name_or_filename re-raises into do_load_config).

The messages are the str() of the exceptions Gunicorn's validators (and
int(), ipaddress, argparse) raise.
"""

import re
import shlex

import pytest

from test_settings_matrix import APP, APPS, run

USAGE = "usage: cgunicorn [OPTIONS] [APP_MODULE]\n"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")


def argparse_error(msg):
    return USAGE + "cgunicorn: error: " + msg + "\n"


def value_error(msg):
    return "\nError: " + msg + "\n"


# ---- command line -------------------------------------------------------------

CLI_CASES = [
    # int options (argparse type=int): exit 2
    (["-w", "abc"], 2, argparse_error("argument -w/--workers: invalid int value: 'abc'")),
    (["--backlog", "1.5"], 2, argparse_error("argument --backlog: invalid int value: '1.5'")),
    (["--limit-request-line=0x10"], 2,
     argparse_error("argument --limit-request-line: invalid int value: '0x10'")),
    # ... converted, then refused by validate_pos_int: exit 1
    (["-w", "-1"], 1, value_error("Value must be positive: -1")),
    (["--timeout=-5"], 1, value_error("Value must be positive: -5")),
    # no type=: the validator does int(val, 0)
    (["--cert-reqs", "abc"], 1, value_error("invalid literal for int() with base 0: 'abc'")),
    (["--cert-reqs", "-3"], 1, value_error("Value must be positive: -3")),
    (["--http2-max-frame-size", "100"], 1,
     value_error("http2_max_frame_size must be between 16384 and 16777215, got 100")),
    # auto_int (umask, control_socket_mode): octal with a leading 0, junk refused
    (["--umask", "0xZZ"], 2, argparse_error("argument -m/--umask: invalid auto_int value: '0xZZ'")),
    (["-m", "089"], 2, argparse_error("argument -m/--umask: invalid auto_int value: '089'")),
    (["--control-socket-mode", "0o999"], 2,
     argparse_error("argument --control-socket-mode: invalid auto_int value: '0o999'")),
    (["--umask=-0o1"], 1, value_error("Value must be positive: -1")),
    # flags
    (["--no-sendfile=yes"], 2,
     argparse_error("argument --no-sendfile: ignored explicit argument 'yes'")),
    (["--reload=1"], 2, argparse_error("argument --reload: ignored explicit argument '1'")),
    (["--no-such-option"], 2, argparse_error("unrecognized arguments: --no-such-option")),
    # choices
    (["--header-map", "bogus"], 1, value_error("Invalid header map behaviour: bogus")),
    (["--header-map", " Bogus "], 1, value_error("Invalid header map behaviour:  Bogus ")),
    (["--proxy-protocol", "v3"], 1, value_error("proxy_protocol must be: off, v1, v2, or auto")),
    (["--reload-engine", "fast"], 1, value_error("Invalid reload_engine: 'fast'")),
    (["--reload-engine", "Poll"], 1, value_error("Invalid reload_engine: 'Poll'")),
    (["--http-protocols", "h1,h4"], 1,
     value_error("Invalid protocol 'h4'. Valid protocols: h1, h2")),
    (["--http-protocols", "h1, H1"], 1, value_error("Duplicate protocols specified")),
    # Gunicorn 27: h3 is no longer a protocol; window and stream bounds
    (["--http-protocols", "h3,h1"], 1,
     value_error("Invalid protocol 'h3'. Valid protocols: h1, h2")),
    (["--http2-initial-window-size", "2147483648"], 1,
     value_error("HTTP/2 window size must be at most 2147483647: 2147483648")),
    (["--http2-max-concurrent-streams", "0"], 1,
     value_error("HTTP/2 max concurrent streams must be at least 1: 0")),
    (["--http2-cleartext", "Maybe"], 1, value_error("Invalid http2_cleartext: maybe")),
    (["--asgi-loop", "trio"], 1, value_error("Invalid ASGI loop: trio")),
    (["--asgi-lifespan", "x"], 1, value_error("Invalid ASGI lifespan: x")),
    (["--http-parser", "c"], 1, value_error("http_parser must be one of: auto, fast, python")),
    # CSV address lists
    (["--forwarded-allow-ips", "10.0.0.1/8"], 1, value_error("10.0.0.1/8 has host bits set")),
    (["--forwarded-allow-ips", "127.0.0.1,bogus"], 1,
     value_error("'bogus' does not appear to be an IPv4 or IPv6 network")),
    (["--proxy-allow-from", "300.1.1.1"], 1,
     value_error("'300.1.1.1' does not appear to be an IPv4 or IPv6 network")),
    (["--uwsgi-allow-from", "10.0.0.0/33"], 1,
     value_error("'10.0.0.0/33' does not appear to be an IPv4 or IPv6 network")),
    # other validators
    (["--statsd-host", "localhost:abc"], 1,
     value_error("Value must be one of ('host:port', 'unix://PATH')")),
    (["-u", "no-such-user-q"], 1, value_error("No such user: 'no-such-user-q'")),
    (["-g", "no-such-group-q"], 1, value_error("No such group: 'no-such-group-q'")),
    (["--chdir", "/nonexistent/q"], 1, value_error("can't chdir to '/nonexistent/q'")),
    (["--reload-extra-file", "/nonexistent/q.py"], 1,
     value_error("File /nonexistent/q.py does not exists.")),
]


def _cli_id(case):
    return " ".join(case[0])


@pytest.mark.parametrize("args, rc, stderr", CLI_CASES, ids=[_cli_id(c) for c in CLI_CASES])
def test_cli(args, rc, stderr, home):
    res = run(["--check-config"] + args + [APP], APPS, home)
    assert (res.returncode, res.stderr) == (rc, stderr)
    assert res.stdout == ""


# the same parser reads GUNICORN_CMD_ARGS, with the same answers
ENV_CASES = [c for c in CLI_CASES if c[0][0] in ("-w", "--umask", "--header-map",
                                                    "--forwarded-allow-ips", "--no-sendfile=yes",
                                                    "--http-protocols", "--cert-reqs")]


@pytest.mark.parametrize("args, rc, stderr", ENV_CASES, ids=[_cli_id(c) for c in ENV_CASES])
def test_env(args, rc, stderr, home):
    res = run(["--check-config", APP], APPS, home,
              env={"GUNICORN_CMD_ARGS": shlex.join(args)})
    assert (res.returncode, res.stderr) == (rc, stderr)


H2_WARNING = ("Warning: http_protocols includes h2 but there is no TLS and http2_cleartext is "
              "off, so HTTP/2 will never be negotiated.\n")


@pytest.mark.parametrize("args, warned", [
    (["--http-protocols", "h2,h1"], True),
    (["--http-protocols", "h1"], False),
    (["--http-protocols", "h2,h1", "-k", "gthread", "--http2-cleartext", "prior-knowledge"], False),
], ids=["h2-plain", "h1", "h2c"])
def test_h2_without_tls_warns(args, warned, home):
    # Gunicorn 27's Config.validate(): a warning, not an error
    res = run(["--check-config"] + args + [APP], APPS, home)
    assert (res.returncode, res.stderr) == (0, H2_WARNING if warned else "")


def test_missing_argument(home):
    res = run(["--check-config", APP, "--workers"], APPS, home)
    assert (res.returncode, res.stderr) == (
        2, argparse_error("argument -w/--workers: expected one argument"))


def test_unbalanced_quote_in_env(home):
    res = run(["--check-config", APP], APPS, home,
              env={"GUNICORN_CMD_ARGS": "--log-level 'debug"})
    assert (res.returncode, res.stderr) == (1, value_error("No closing quotation"))


# ---- config file --------------------------------------------------------------

# (source line(s), setting, str() of the value as printed, Gunicorn's message)
FILE_CASES = [
    # int
    ("workers = 'abc'", "workers", "abc", "invalid literal for int() with base 0: 'abc'"),
    ("workers = -2", "workers", "-2", "Value must be positive: -2"),
    ("workers = 2.5", "workers", "2.5", "int() can't convert non-string with explicit base"),
    ("workers = [1]", "workers", "[1]", "int() can't convert non-string with explicit base"),
    ("backlog = '0x'", "backlog", "0x", "invalid literal for int() with base 0: '0x'"),
    ("http2_max_frame_size = 16383", "http2_max_frame_size", "16383",
     "http2_max_frame_size must be between 16384 and 16777215, got 16383"),
    # octal: int(val, 0) refuses a leading zero without 0o
    ("umask = '022'", "umask", "022", "invalid literal for int() with base 0: '022'"),
    ("umask = '0xZZ'", "umask", "0xZZ", "invalid literal for int() with base 0: '0xZZ'"),
    # bool
    ("reload = 'yes'", "reload", "yes", "Invalid boolean: yes"),
    ("reload = 1", "reload", "1", "Invalid type for casting: 1"),
    ("preload_app = [True]", "preload_app", "[True]", "Invalid type for casting: [True]"),
    ("sendfile = 0.0", "sendfile", "0.0", "Invalid type for casting: 0.0"),
    # str
    ("loglevel = 5", "loglevel", "5", "Not a string: 5"),
    ("chdir = 5", "chdir", "5", "Not a string: 5"),
    ("proc_name = b'x'", "proc_name", "b'x'", "Not a string: b'x'"),
    # list
    ("bind = 5", "bind", "5", "'int' object is not iterable"),
    ("bind = ['127.0.0.1:1', 2]", "bind", "['127.0.0.1:1', 2]", "Not a string: 2"),
    ("raw_env = True", "raw_env", "True", "'bool' object is not iterable"),
    # CSV / address lists take a comma-separated string only
    ("forwarded_allow_ips = ['1.2.3.4']", "forwarded_allow_ips", "['1.2.3.4']",
     "Not a string: ['1.2.3.4']"),
    ("proxy_allow_ips = '1.2.3.4/8'", "proxy_allow_ips", "1.2.3.4/8",
     "1.2.3.4/8 has host bits set"),
    ("forwarder_headers = 7", "forwarder_headers", "7", "Not a string: 7"),
    ("http_protocols = ['h1']", "http_protocols", "['h1']", "http_protocols must be a string"),
    ("http_protocols = 'h2,h9'", "http_protocols", "h2,h9",
     "Invalid protocol 'h9'. Valid protocols: h1, h2"),
    # choices
    ("header_map = 5", "header_map", "5", "Invalid type for casting: 5"),
    ("header_map = 'bogus'", "header_map", "bogus", "Invalid header map behaviour: bogus"),
    ("proxy_protocol = 5", "proxy_protocol", "5", "proxy_protocol must be string or bool"),
    ("proxy_protocol = 'v9'", "proxy_protocol", "v9",
     "proxy_protocol must be: off, v1, v2, or auto"),
    ("reload_engine = 5", "reload_engine", "5", "Invalid reload_engine: 5"),
    ("reload_engine = None", "reload_engine", "None", "Invalid reload_engine: None"),
    ("http2_cleartext = 3", "http2_cleartext", "3", "Invalid type for casting: 3"),
    ("asgi_loop = 1", "asgi_loop", "1", "Invalid type for casting: 1"),
    ("http_parser = 1", "http_parser", "1", "http_parser must be a string"),
    ("header_map = ('drop',)", "header_map", "('drop',)",
     "Invalid type for casting: ('drop',)"),
    # dict
    ("secure_scheme_headers = ['a']", "secure_scheme_headers", "['a']",
     "Value is not a dictionary: ['a'] "),
    ("secure_scheme_headers = 'X=y'", "secure_scheme_headers", "X=y",
     "Value is not a dictionary: X=y "),
    ("logconfig_dict = None", "logconfig_dict", "None", "Value is not a dictionary: None "),
    ("chdir = None", "chdir", "None",
     "expected str, bytes or os.PathLike object, not NoneType"),
    ("workers = None", "workers", "None", "int() can't convert non-string with explicit base"),
    # user / group
    ("user = 'no-such-user-q'", "user", "no-such-user-q", "No such user: 'no-such-user-q'"),
    ("group = [1]", "group", "[1]", "'list' object has no attribute 'isdigit'"),
    ("user = 2.5", "user", "2.5", "'float' object has no attribute 'isdigit'"),
    ("workers = {'a': 1}", "workers", "{'a': 1}",
     "int() can't convert non-string with explicit base"),
    ("loglevel = ('x', 1)", "loglevel", "('x', 1)", "Not a string: ('x', 1)"),
    ("dirty_apps = ['m:a', None]", "dirty_apps", "['m:a', None]", "Not a string: None"),
    # hooks
    ("on_starting = 5", "on_starting", "5", "Value is not callable: 5"),
    ("on_starting = 'nodots'", "on_starting", "nodots",
     "Value 'nodots' is not import string. Format: module[.submodules...].object"),
    ("on_starting = 'os.no_such_thing_q'", "on_starting", "os.no_such_thing_q",
     "Can not load 'no_such_thing_q' from 'os'"),
    ("on_starting = 'no_such_mod_q.f'", "on_starting", "no_such_mod_q.f",
     "No module named 'no_such_mod_q'"),
    ("def h(a, b):\n    pass\non_starting = h", "on_starting", "<function h at 0x*>",
     "Value must have an arity of: 1"),
    ("def h(a, b, c, d, e):\n    pass\npost_request = h", "post_request",
     "<function h at 0x*>", "Value must have an arity of: 4"),
    ("nworkers_changed = lambda a: None", "nworkers_changed", "<function <lambda> at 0x*>",
     "Value must have an arity of: 3"),
]


def _file_id(case):
    return case[0].splitlines()[-1]


@pytest.mark.parametrize("src, name, shown, msg", FILE_CASES,
                         ids=[_file_id(c) for c in FILE_CASES])
def test_config_file(src, name, shown, msg, home, tmp_path):
    conf = tmp_path / "c.py"
    conf.write_text("workers = 3\n" + src + "\n")
    res = run(["-c", str(conf), "--check-config", APP], APPS, home)
    want = "Invalid value for %s: %s\n\n" % (name, shown) + value_error(msg)
    pattern = re.escape(want).replace(re.escape("0x*"), "0x[0-9a-f]+")
    assert res.returncode == 1
    assert re.fullmatch(pattern, res.stderr), res.stderr


def test_config_file_nested_dict(home, tmp_path):
    # Gunicorn keeps logconfig_dict as the Python dict, whatever it holds;
    # so does cgunicorn (test_logconfig.py uses it)
    conf = tmp_path / "c.py"
    conf.write_text("logconfig_dict = {'version': 1, 'root': {'level': 20}}\n")
    res = run(["-c", str(conf), "--check-config", APP], APPS, home)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""


@pytest.mark.parametrize("src, name, shown", [
    ("umask = '0o22'", "umask", "18"),
    ("umask = '0x1f'", "umask", "31"),
    ("workers = True", "workers", "1"),
    ("bind = '127.0.0.1:7'", "bind", "['127.0.0.1:7']"),
    ("bind = []", "bind", "[]"),
    ("raw_env = ('A=1',)", "raw_env", "['A=1']"),
    ("reload = None", "reload", "None"),
    ("sendfile = None", "sendfile", "None"),
    ("bind = 0", "bind", "[]"),
    ("proxy_protocol = None", "proxy_protocol", "off"),
    ("header_map = None", "header_map", "None"),
    ("http2_cleartext = None", "http2_cleartext", "off"),
    ("http_protocols = None", "http_protocols", "['h1']"),
    ("forwarded_allow_ips = None", "forwarded_allow_ips", "[]"),
    ("secure_scheme_headers = {}", "secure_scheme_headers", "{}"),
    ("statsd_host = None", "statsd_host", "None"),
    ("ssl_version = 3.5", "ssl_version", "3.5"),
    ("reload = ' TRUE '", "reload", "True"),
    ("proxy_protocol = True", "proxy_protocol", "auto"),
    ("proxy_protocol = ' 1 '", "proxy_protocol", "auto"),
    ("http_protocols = ' , '", "http_protocols", "['h1']"),
    ("forwarded_allow_ips = ''", "forwarded_allow_ips", "[]"),
    ("user = '4242'", "user", "4242"),
    ("user = None", "user", None),
    ("statsd_host = 'unix:9'", "statsd_host", "('unix', 9)"),
    ("statsd_host = 'unix:///run/s.sock'", "statsd_host", "/run/s.sock"),
    ("statsd_host = 'Host.Example'", "statsd_host", "('host.example', 8125)"),
    ("def pr(w, r):\n    pass\npost_request = pr", "post_request",
     "<validate_post_request.<locals>.<lambda>()>"),
    ("import os.path\non_starting = 'os.path.exists'", "on_starting", "<exists()>"),
], ids=lambda v: v if isinstance(v, str) and "\n" not in v and " = " in v else None)
def test_config_file_accepted_kinds(src, name, shown, home, tmp_path):
    # values of other Python kinds that Gunicorn's validators accept
    conf = tmp_path / "c.py"
    conf.write_text(src + "\n")
    res = run(["-c", str(conf), "--print-config", APP], APPS, home)
    assert res.returncode == 0, res.stderr
    from test_settings_matrix import printed
    if shown is None:
        shown = str(__import__("os").geteuid())
    assert printed(res)[name] == shown


def test_error_from_env_beats_nothing_in_file(home, tmp_path):
    # a valid file value does not mask an invalid GUNICORN_CMD_ARGS one
    conf = tmp_path / "c.py"
    conf.write_text("workers = 3\n")
    res = run(["-c", str(conf), "--check-config", APP], APPS, home,
              env={"GUNICORN_CMD_ARGS": "--workers=-4"})
    assert (res.returncode, res.stderr) == (1, value_error("Value must be positive: -4"))


def test_first_invalid_source_reported_is_the_file(home, tmp_path):
    # the file is applied before GUNICORN_CMD_ARGS and the command line
    conf = tmp_path / "c.py"
    conf.write_text("timeout = 'x'\n")
    res = run(["-c", str(conf), "--check-config", "-w", "-1", APP], APPS, home)
    assert res.returncode == 1
    assert res.stderr == ("Invalid value for timeout: x\n\n" +
                          value_error("invalid literal for int() with base 0: 'x'"))
