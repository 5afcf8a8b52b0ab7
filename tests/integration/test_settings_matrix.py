"""Every Gunicorn setting, set through every source it has, proven with
`--print-config`; every default compared with Gunicorn's; and the precedence
default < config file < GUNICORN_CMD_ARGS < command line with conflicting
values.

The list of settings is not ours: it is read from
../shared/reference/gunicorn-settings.json (Gunicorn 26.1) plus the ones
Gunicorn 27.0.1 adds (GUNICORN27_ADDED), so a setting missing from cgunicorn
fails here by name.

To stay fast (this file also runs under ASan) the settings of one source are
set together in one launch; each setting is still its own test id. A launch
that fails makes every setting of its source fail with the launch's stderr.
"""

import ast
import json
import os
import shlex
import ssl
import subprocess

import pytest

import cgtest

REF_PATH = os.path.join(cgtest.SHARED_DIR, "reference", "gunicorn-settings.json")
with open(REF_PATH) as _f:
    REF = json.load(_f)
# Settings Gunicorn 27.0.1 adds that the reference JSON (written from
# Gunicorn 26) lacks, in the JSON's shape with the values of 27's config.py,
# each placed after the setting 27 defines it after.
GUNICORN27_ADDED = [
    ("asgi_disconnect_grace_period", {
        "name": "websocket_max_message_size", "section": "Worker Processes",
        "cli": ["--websocket-max-message-size"], "default": "16777216", "default_doc": None,
        "validator": "validate_pos_int", "action": None, "type": "int", "nargs": None,
        "const": None, "meta": "INT",
        "short": "Largest WebSocket message, in bytes, the asgi worker accepts."}),
]
for _after, _row in GUNICORN27_ADDED:
    REF.insert(next(i for i, s in enumerate(REF) if s["name"] == _after) + 1, _row)
BY_NAME = {s["name"]: s for s in REF}
NAMES = [s["name"] for s in REF]

APPS = cgtest.APPS_DIR
APP = "echo:app"

# Gunicorn's default hooks, as config.py defines them (class.function): what
# print(cfg) shows as "<qualname()>". The JSON only gives their signature.
DEFAULT_HOOKS = {
    "on_starting": "OnStarting.on_starting",
    "on_reload": "OnReload.on_reload",
    "when_ready": "WhenReady.when_ready",
    "pre_fork": "Prefork.pre_fork",
    "post_fork": "Postfork.post_fork",
    "post_worker_init": "PostWorkerInit.post_worker_init",
    "worker_int": "WorkerInt.worker_int",
    "worker_abort": "WorkerAbort.worker_abort",
    "pre_exec": "PreExec.pre_exec",
    "pre_request": "PreRequest.pre_request",
    "post_request": "PostRequest.post_request",
    "child_exit": "ChildExit.child_exit",
    "worker_exit": "WorkerExit.worker_exit",
    "nworkers_changed": "NumWorkersChanged.nworkers_changed",
    "on_exit": "OnExit.on_exit",
    "ssl_context": "NewSSLContext.ssl_context",
    "on_dirty_starting": "OnDirtyStarting.on_dirty_starting",
    "dirty_post_fork": "DirtyPostFork.dirty_post_fork",
    "dirty_worker_init": "DirtyWorkerInit.dirty_worker_init",
    "dirty_worker_exit": "DirtyWorkerExit.dirty_worker_exit",
}

# Variables that change Gunicorn's defaults: never inherited by these runs.
ENV_DEPENDENT = ("GUNICORN_CMD_ARGS", "PORT", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS",
                 "SENDFILE", "XDG_RUNTIME_DIR")


def hook_arity(s):
    v = s["validator"]
    if v == "validate_post_request":
        return 4
    if v.startswith("validate_callable("):
        return int(v[len("validate_callable("):-1])
    return None


def run(args, cwd, home, env=None, timeout=30.0):
    """cgunicorn to completion in a clean environment (HOME pinned)."""
    e = {k: v for k, v in os.environ.items() if k not in ENV_DEPENDENT}
    e["HOME"] = str(home)
    if env:
        e.update(env)
    res = subprocess.run([cgtest.cg_bin()] + list(args), cwd=str(cwd), env=e,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=timeout)
    report = cgtest.sanitizer_lines(res.stderr) + cgtest.sanitizer_lines(res.stdout)
    assert not report, "sanitizer report:\n%s\n--- stderr ---\n%s" % ("\n".join(report),
                                                                        res.stderr)
    return res


def printed(res):
    """--print-config output as {name: value text}."""
    out = {}
    for line in res.stdout.splitlines():
        if " = " in line:
            k, v = line.split(" = ", 1)
            out[k.strip()] = v
    return out


# ---- values -------------------------------------------------------------------

FLAG = object()  # a store_true / store_const option: given bare


class Ctx:
    """Paths the chosen values need."""

    def __init__(self, root):
        self.root = root
        self.cwd = os.path.join(root, "cwd")
        self.home = os.path.join(root, "home")
        self.files = os.path.join(root, "files")
        for d in (self.cwd, self.home, self.files):
            os.makedirs(d, exist_ok=True)
        self.watched = os.path.join(self.files, "watched.txt")
        with open(self.watched, "w") as f:
            f.write("x\n")
        self.empty_conf = os.path.join(self.files, "empty.conf.py")
        with open(self.empty_conf, "w") as f:
            f.write("# nothing\n")
        self.paste_ini = os.path.join(self.files, "app.ini")
        with open(self.paste_ini, "w") as f:
            f.write("[app:main]\nuse = egg:nothing\n")


def spec(name, ctx):
    cli, py, want, want_py = _spec(name, ctx)
    if not BY_NAME[name]["cli"]:
        cli = want = None
    return cli, py, want, want_py


def _spec(name, ctx):
    """(cli, py, want_cli, want_py) for one setting: cli is the option's
    argument (a list for append options, FLAG for flags, None when the
    setting has no option); py the Python source of the config-file value
    (None: no file test); want_* what --print-config must show."""
    s = BY_NAME[name]
    v = s["validator"]
    chdir_to = os.path.join(APPS, "..", "apps")
    table = {
        "config": (ctx.empty_conf, repr("./elsewhere.conf.py"), ctx.empty_conf,
                   "./elsewhere.conf.py"),
        "bind": (["127.0.0.1:9001", "[::1]:9002"], "['127.0.0.1:9001', '[::1]:9002']",
                 "['127.0.0.1:9001', '[::1]:9002']", None),
        "reload_engine": ("poll", "'poll'", "poll", None),
        "reload_extra_files": ([ctx.watched, ctx.files + "/*.txt"],
                               repr([ctx.watched, ctx.files + "/*.txt"]),
                               str([ctx.watched, ctx.files + "/*.txt"]), None),
        # store_true of a setting that defaults to True: the command line can
        # only repeat True; the config file shows the other value.
        "suppress_ragged_eofs": (FLAG, "False", "True", "False"),
        "sendfile": (FLAG, "False", "False", None),
        "chdir": (chdir_to, repr(chdir_to), APPS, None),
        "raw_env": (["A=1", "B=x y"], "['A=1', 'B=x y']", "['A=1', 'B=x y']", None),
        "user": ("nobody", "4321", str(__import__("pwd").getpwnam("nobody").pw_uid), "4321"),
        "group": ("nogroup", "4321", str(__import__("grp").getgrnam("nogroup").gr_gid),
                  "4321"),
        "umask": ("027", "0o27", "23", None),
        "control_socket_mode": ("0640", "0o640", "416", None),
        "cert_reqs": ("2", "2", "2", None),
        "secure_scheme_headers": (None, "{'X-SCHEME': 'https', 'X-ON': 'yes'}",
                                  None, "{'X-SCHEME': 'https', 'X-ON': 'yes'}"),
        # A str-valued dict; nested ones are in test_logconfig.py.
        "logconfig_dict": (None, "{'root': 'x'}", None, "{'root': 'x'}"),
        "forwarded_allow_ips": ("10.0.0.0/8, 192.168.0.1", "'10.0.0.0/8, 192.168.0.1'",
                                "['10.0.0.0/8', '192.168.0.1']", None),
        "proxy_allow_ips": ("10.1.0.0/16,*", "'10.1.0.0/16,*'", "['10.1.0.0/16', '*']", None),
        "uwsgi_allow_ips": ("::1, 10.2.0.0/16", "'::1, 10.2.0.0/16'", "['::1', '10.2.0.0/16']",
                            None),
        "http_protocols": ("H2, h1", "'H2, h1'", "['h2', 'h1']", None),
        "forwarder_headers": ("SCRIPT_NAME, REMOTE_USER", "'SCRIPT_NAME, REMOTE_USER'",
                              "['SCRIPT_NAME', 'REMOTE_USER']", None),
        "worker_class": ("gthread", "'gthread'", "gthread", None),
        "loglevel": ("debug", "'debug'", "debug", None),
        "logger_class": ("mypkg.MyLogger", "'mypkg.MyLogger'", "mypkg.MyLogger", None),
        "statsd_host": ("localhost:9125", "'localhost:9125'", "('localhost', 9125)", None),
        "proxy_protocol": ("V2", "'v1'", "v2", "v1"),
        "http2_cleartext": ("upgrade", "True", "upgrade", "prior-knowledge"),
        "header_map": ("Refuse", "'dangerous'", "refuse", "dangerous"),
        "asgi_loop": ("asyncio", "'asyncio'", "asyncio", None),
        "asgi_lifespan": ("on", "'off'", "on", "off"),
        "http_parser": ("python", "'fast'", "python", "fast"),
        "ssl_version": ("TLSv1_2", "5", "TLSv1_2", "5"),
        "http2_max_frame_size": ("32768", "16777215", "32768", "16777215"),
        "access_log_format": ('%(h)s "%(r)s" %(s)s', repr('%(h)s "%(r)s" %(s)s'),
                              '%(h)s "%(r)s" %(s)s', None),
        "pythonpath": (ctx.files + "," + ctx.home, repr(ctx.files + "," + ctx.home),
                       ctx.files + "," + ctx.home, None),
        "paste": (ctx.paste_ini, repr(ctx.paste_ini), ctx.paste_ini, None),
        "wsgi_app": (None, "'echo:app'", None, "echo:app"),
        "default_proc_name": (None, "'myproc'", None, "myproc"),
        "raw_paste_global_conf": (["a=1", "b=2"], "['a=1', 'b=2']", "['a=1', 'b=2']", None),
        "dirty_apps": (["mod:One", "mod:Two"], "['mod:One']", "['mod:One', 'mod:Two']",
                       "['mod:One']"),
    }
    if name in table:
        cli, py, want, want_py = table[name]
        return cli, py, want, want_py if want_py is not None else want
    arity = hook_arity(s)
    if arity is not None:
        return None, arity, None, "<hook_%s()>" % name
    if v == "validate_bool":
        if s["action"] in ("store_true",):
            return FLAG, "True", "True", "True"
        raise AssertionError("no value chosen for %s" % name)
    if v in ("validate_pos_int",) and s["type"] == "int":
        n = int(s["default"]) + 7
        return str(n), str(n), str(n), str(n)
    if v == "validate_string":
        val = "/tmp/cg-value-of-%s" % name
        if s["default"] not in (None, "None"):
            # validate_string strips
            return " cg-%s " % name, repr("\tcg-%s " % name), "cg-" + name, "cg-" + name
        return val, repr(val), val, val
    raise AssertionError("no value chosen for %s (validator %s)" % (name, v))


def conf_source(names, ctx, extra=""):
    """A config file setting every name of names (hooks as functions)."""
    lines = ["# generated by test_settings_matrix", extra]
    for name in names:
        _, py, _, _ = spec(name, ctx)
        if py is None:
            continue
        if isinstance(py, int):  # a hook of that arity
            params = ", ".join("a%d" % i for i in range(py))
            lines.append("def hook_%s(%s):\n    pass\n%s = hook_%s" % (name, params, name, name))
        else:
            lines.append("%s = %s" % (name, py))
    return "\n".join(lines) + "\n"


def cli_args(names, ctx, spelling=-1):
    """The options setting names; spelling picks which of a setting's
    option strings is used (-1 the long one, 0 the first)."""
    args = []
    for name in names:
        cli, _, _, _ = spec(name, ctx)
        if cli is None:
            continue
        flag = BY_NAME[name]["cli"][spelling]
        if cli is FLAG:
            args.append(flag)
        elif isinstance(cli, list):
            for item in cli:
                args += [flag, item]
        else:
            args += [flag, cli]
    return args


# paste changes how the application is loaded, so it gets launches of its own.
ALONE = ("paste",)
GROUPED = [n for n in NAMES if n not in ALONE]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return Ctx(str(tmp_path_factory.mktemp("matrix")))


@pytest.fixture(scope="module")
def launches(ctx):
    """Lazily run (and remember) the launch of one source for a group."""
    cache = {}

    def get(source, group):
        key = (source, group)
        if key in cache:
            return cache[key]
        names = GROUPED if group == "all" else [group]
        # a group of its own still needs the print_config setting
        trigger = [] if group == "all" else ["--print-config"]
        if source == "cli":
            res = run(cli_args(names, ctx) + trigger + [APP], ctx.cwd, ctx.home)
        elif source == "env":
            # print_config itself comes from GUNICORN_CMD_ARGS here
            # (and the other spelling of each option: -w, -b, --error-logfile)
            env = {"GUNICORN_CMD_ARGS": shlex.join(cli_args(names, ctx, 0) + trigger)}
            res = run([APP], ctx.cwd, ctx.home, env=env)
        else:
            # ./gunicorn.conf.py, so the file's own `config` value is shown;
            # print_config is one of the file's settings.
            d = os.path.join(ctx.root, "file-" + group)
            os.makedirs(d, exist_ok=True)
            extra = "print_config = True\n" if group != "all" else ""
            with open(os.path.join(d, "gunicorn.conf.py"), "w") as f:
                f.write(conf_source(names, ctx, extra))
            if "chdir" not in names:
                with open(os.path.join(d, "gunicorn.conf.py"), "a") as f:
                    f.write("chdir = %r\n" % APPS)
            res = run([APP], d, ctx.home)
        cache[key] = res
        return res
    return get


def _check(res, name, want):
    p = printed(res)
    assert name in p, "no %s line\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
        name, res.stdout, res.stderr)
    assert p[name] == want, "--- stderr ---\n%s" % res.stderr


def _cli_names():
    return [n for n in NAMES if BY_NAME[n]["cli"]]


@pytest.mark.parametrize("name", _cli_names())
def test_cli(name, ctx, launches):
    cli, _, want, _ = spec(name, ctx)
    res = launches("cli", name if name in ALONE else "all")
    if name not in ALONE:
        assert res.returncode == 0, res.stderr
    _check(res, name, want)


@pytest.mark.parametrize("name", _cli_names())
def test_env(name, ctx, launches):
    cli, _, want, _ = spec(name, ctx)
    res = launches("env", name if name in ALONE else "all")
    if name not in ALONE:
        assert res.returncode == 0, res.stderr
    _check(res, name, want)


@pytest.mark.parametrize("name", NAMES)
def test_config_file(name, ctx, launches):
    _, py, _, want = spec(name, ctx)
    assert py is not None
    res = launches("file", name if name in ALONE else "all")
    if name not in ALONE:
        assert res.returncode == 0, res.stderr
    _check(res, name, want)


def test_every_setting_is_covered(ctx):
    # the three lists above together cover each setting through each source
    # it has; a setting Gunicorn adds makes spec() fail by name
    assert len(NAMES) == 119 + len(GUNICORN27_ADDED)
    for name in NAMES:
        spec(name, ctx)


def test_paste_cli_shows_value_then_fails_to_load(ctx, launches):
    # Gunicorn prints the configuration before loading the application, so
    # the value is shown even though the (PasteDeploy) load then fails; the
    # app module named on the command line is replaced by the ini file.
    res = launches("cli", "paste")
    assert printed(res)["default_proc_name"] == ctx.paste_ini
    assert res.returncode == 1
    assert "Error while loading the application:" in res.stderr


def test_paste_load_failure_is_pastedeploys_import(ctx, launches):
    # the ini is loaded through PasteDeploy, which Debian's interpreter lacks
    res = launches("cli", "paste")
    assert "ModuleNotFoundError: No module named 'paste'" in res.stderr


# ---- defaults -----------------------------------------------------------------

def _str_to_list(v):
    if not v:
        return []
    return [x.strip() for x in v.split(",") if x]


def reference_default(name, ctx):
    """What Gunicorn 26.1's print(cfg) shows for an untouched setting, from
    the JSON's default (a Python repr), normalised for this run: cwd APPS,
    HOME=ctx.home, no XDG_RUNTIME_DIR, app module APP."""
    s = BY_NAME[name]
    if name in DEFAULT_HOOKS:
        return "<%s()>" % DEFAULT_HOOKS[name]
    if name == "chdir":
        return APPS
    if name == "user":
        return str(os.geteuid())
    if name == "group":
        return str(os.getegid())
    if name == "control_socket":
        return os.path.join(ctx.home, ".gunicorn", "gunicorn.ctl")
    if name == "default_proc_name":
        return APP  # WSGIApplication.init() sets it to the app module
    if name == "print_config":
        return "True"  # the run itself asks for it
    if name == "ssl_version":
        return "{}".format(ssl.PROTOCOL_TLS)
    if name == "cert_reqs":
        return "{}".format(int(ssl.CERT_NONE))
    v = ast.literal_eval(s["default"])
    # the validator runs on the default (Setting.__init__ calls set())
    if s["validator"] in ("validate_string_to_list", "validate_string_to_addr_list"):
        v = _str_to_list(v)
    elif s["validator"] == "validate_http_protocols":
        v = [p.strip().lower() for p in v.split(",") if p.strip()] or ["h1"]
    return "{}".format(v)


@pytest.fixture(scope="module")
def defaults_run(ctx):
    assert not os.path.exists(os.path.join(APPS, "gunicorn.conf.py"))
    return run(["--print-config", APP], APPS, ctx.home)


@pytest.mark.parametrize("name", NAMES)
def test_default(name, ctx, defaults_run):
    assert defaults_run.returncode == 0, defaults_run.stderr
    _check(defaults_run, name, reference_default(name, ctx))


def test_no_other_settings_printed(defaults_run):
    # Gunicorn's, and cgunicorn's own ones (docs/settings.md marks them)
    own = [n for n in cgtest.setting_names() if n not in BY_NAME]
    assert own == ["statsd_flush_interval", "max_worker_memory", "request_timeout",
                   "metrics_bind"]
    assert sorted(printed(defaults_run)) == sorted(NAMES + own)


# ---- precedence ---------------------------------------------------------------

PRECEDENCE = [
    # name, file value (Python), env args, cli args, want after file/env/cli
    ("workers", "3", ["--workers", "4"], ["-w", "5"], ("3", "4", "5")),
    ("sendfile", "True", ["--no-sendfile"], None, ("True", "False", None)),
    ("suppress_ragged_eofs", "False", ["--suppress-ragged-eofs"], None,
     ("False", "True", None)),
    ("loglevel", "'warning'", ["--log-level", "error"], ["--log-level=critical"],
     ("warning", "error", "critical")),
    ("bind", "['127.0.0.1:7001', '127.0.0.1:7002']", ["-b", "127.0.0.1:7003"],
     ["-b", "127.0.0.1:7004", "--bind", "127.0.0.1:7005"],
     ("['127.0.0.1:7001', '127.0.0.1:7002']", "['127.0.0.1:7003']",
      "['127.0.0.1:7004', '127.0.0.1:7005']")),
    ("forwarded_allow_ips", "'10.0.0.1'", ["--forwarded-allow-ips", "10.0.0.2,10.0.0.3"],
     ["--forwarded-allow-ips", "*"], ("['10.0.0.1']", "['10.0.0.2', '10.0.0.3']", "['*']")),
    ("umask", "0o22", ["--umask", "0077"], ["-m", "0o7"], ("18", "63", "7")),
    # bare --proxy-protocol means auto; followed by an option (not by the
    # app module, which nargs='?' would take as its value)
    ("proxy_protocol", "'v1'", ["--proxy-protocol", "v2"], ["--proxy-protocol", "--spew"],
     ("v1", "v2", "auto")),
]


@pytest.mark.parametrize("name, py, env_args, cli, wants", PRECEDENCE,
                         ids=[p[0] for p in PRECEDENCE])
def test_precedence(name, py, env_args, cli, wants, ctx, tmp_path):
    conf = tmp_path / "c.py"
    conf.write_text("%s = %s\n" % (name, py))
    # environment-derived defaults are the lowest layer
    base_env = {"WEB_CONCURRENCY": "9", "FORWARDED_ALLOW_IPS": "10.9.9.9"}
    res = run(["--print-config", APP], APPS, ctx.home, env=base_env)
    assert res.returncode == 0, res.stderr
    assert printed(res)["workers"] == "9"
    assert printed(res)["forwarded_allow_ips"] == "['10.9.9.9']"

    base = ["-c", str(conf), "--print-config"]
    res = run(base + [APP], APPS, ctx.home, env=base_env)
    assert res.returncode == 0, res.stderr
    assert printed(res)[name] == wants[0]

    env = dict(base_env, GUNICORN_CMD_ARGS=shlex.join(env_args))
    res = run(base + [APP], APPS, ctx.home, env=env)
    assert res.returncode == 0, res.stderr
    assert printed(res)[name] == wants[1]

    if cli is not None:
        res = run(base + cli + [APP], APPS, ctx.home, env=env)
        assert res.returncode == 0, res.stderr
        assert printed(res)[name] == wants[2]
        # the command line wins wherever it appears relative to the app
        res = run(base + [APP] + cli, APPS, ctx.home, env=env)
        assert res.returncode == 0, res.stderr
        assert printed(res)[name] == wants[2]


def test_config_named_in_env_and_cli(ctx, tmp_path):
    # -c on the command line beats -c in GUNICORN_CMD_ARGS; the other file
    # is not read at all
    a = tmp_path / "a.py"
    a.write_text("workers = 11\n")
    b = tmp_path / "b.py"
    b.write_text("timeout = 12\n")
    res = run(["-c", str(b), "--print-config", APP], APPS, ctx.home,
              env={"GUNICORN_CMD_ARGS": "-c %s" % a})
    assert res.returncode == 0, res.stderr
    p = printed(res)
    assert (p["config"], p["workers"], p["timeout"]) == (str(b), "1", "12")


def test_bare_proxy_protocol_takes_the_next_word(ctx):
    # argparse's nargs='?' consumes a following positional: Gunicorn then
    # rejects the app module as a proxy_protocol value
    res = run(["--print-config", "--proxy-protocol", APP], APPS, ctx.home)
    assert res.returncode == 1
    assert res.stderr == "\nError: proxy_protocol must be: off, v1, v2, or auto\n"
    res = run(["--print-config", APP, "--proxy-protocol"], APPS, ctx.home)
    assert res.returncode == 0, res.stderr
    assert printed(res)["proxy_protocol"] == "auto"
