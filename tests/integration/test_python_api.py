"""The Python API of the pip-installed package: Gunicorn's custom
application classes (cgunicorn.app.base and the gunicorn.app.base shims),
Config, WSGIApplication, cgunicorn.app.wsgiapp.run(), and configuration
files written for Gunicorn that import gunicorn modules.

The package is installed once per session into a virtualenv made without
the system's site-packages, so that `import gunicorn` there finds the shims
(Debian's python3-gunicorn, if installed, lives in the system's). Set
CGUNICORN_VENV to a virtualenv that already has it to skip the build.
Scripts run under small "overlay" virtualenvs that see that venv's
site-packages through site.addsitedir (its .pth files included), with or
without the system's site-packages, as an install into either kind would.
"""

import glob
import json
import os
import re
import signal
import subprocess

import pytest
import requests

import cgtest
from cgtest import read_records, wait_records

API_DIR = os.path.join(cgtest.APPS_DIR, "api")
VENV_BUILD_TIMEOUT = 900


# -- interpreters ------------------------------------------------------------

def _run(cmd, timeout=120, **kw):
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=timeout, text=True, **kw)
    return res


def _site_packages(venv):
    found = glob.glob(os.path.join(venv, "lib", "python3*", "site-packages"))
    assert len(found) == 1, found
    return found[0]


class Venv:
    def __init__(self, path):
        self.path = path
        self.python = os.path.join(path, "bin", "python")
        self.script = os.path.join(path, "bin", "cgunicorn")
        self.site = _site_packages(path)


def _overlay(dest, sites, system_site):
    """A venv (no pip) whose site-packages adds each of sites in order,
    .pth files included, before the system's site-packages if any."""
    cmd = [cgtest.PYTHON, "-m", "venv", "--without-pip"]
    if system_site:
        cmd.append("--system-site-packages")
    res = _run(cmd + [dest])
    assert res.returncode == 0, res.stderr
    with open(os.path.join(_site_packages(dest), "cg_api_overlay.pth"), "w") as f:
        for site in sites:
            f.write("import site; site.addsitedir(%r)\n" % site)
    return os.path.join(dest, "bin", "python")


@pytest.fixture(scope="session")
def api_venv(tmp_path_factory):
    given = os.environ.get("CGUNICORN_VENV")
    if given:
        venv = Venv(os.path.abspath(given))
    else:
        path = str(tmp_path_factory.mktemp("api-venv") / "venv")
        res = _run([cgtest.PYTHON, "-m", "venv", path])
        assert res.returncode == 0, res.stderr
        res = _run([os.path.join(path, "bin", "pip"), "install", "--no-deps", "-q",
                    cgtest.REPO_ROOT], timeout=VENV_BUILD_TIMEOUT)
        assert res.returncode == 0, "pip install failed:\n%s\n%s" % (res.stdout, res.stderr)
        venv = Venv(path)
    res = _run([venv.python, "-c", "import cgunicorn._core"])
    assert res.returncode == 0, "cgunicorn is not installed in %s:\n%s" % (venv.path, res.stderr)
    return venv


@pytest.fixture(scope="session")
def plain_py(api_venv, tmp_path_factory):
    """Python with cgunicorn installed and no system site-packages."""
    return _overlay(str(tmp_path_factory.mktemp("plain") / "venv"), [api_venv.site], False)


@pytest.fixture(scope="session")
def system_py(api_venv, tmp_path_factory):
    """Python with cgunicorn installed in a venv that also sees the
    system's site-packages."""
    return _overlay(str(tmp_path_factory.mktemp("system") / "venv"), [api_venv.site], True)


def module_origin(python, name):
    res = _run([python, "-c", "import importlib.util as u; s = u.find_spec(%r); "
                              "print(s.origin if s else '')" % name])
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


# -- servers started by a script -----------------------------------------------

class ScriptServer(cgtest.Server):
    """A server started by running argv (a Python script using the API, or
    a console script); waits as cgtest.Server does on its log and port."""

    def __init__(self, argv, port, tmpdir, cwd, env, workers):
        super().__init__(None, bind=["127.0.0.1:%d" % port], cwd=cwd, env=env,
                         tmpdir=tmpdir, workers=workers, cli_bind=False)
        self.argv = list(argv)

    def command(self):
        return list(self.argv)


@pytest.fixture
def script(tmp_path_factory):
    """script(argv, port=None, cwd=APPS_DIR, env=None, workers=1) starts a
    ScriptServer and waits until it serves; all are stopped afterwards."""
    started = []

    def start(argv, port=None, cwd=cgtest.APPS_DIR, env=None, workers=1, wait=True):
        srv = ScriptServer(argv, port or cgtest.free_port(), str(tmp_path_factory.mktemp("api")),
                           cwd, env, workers)
        started.append(srv)
        if wait:
            srv.start()
        else:
            srv.spawn()
        return srv

    yield start
    problems = []
    for srv in started:
        srv.stop()
        report = srv.sanitizer_report()
        if report:
            problems.append("%s:\n%s" % (" ".join(srv.command()), "\n".join(report)))
    assert not problems, "\n\n".join(problems)


def served_pids(srv, wanted, tries=50):
    """pids of the workers that answered, until `wanted` distinct ones did
    or after `tries` requests."""
    pids = set()
    for _ in range(tries):
        r = requests.get(srv.url("/"), timeout=10)
        assert r.status_code == 200, r.text
        pids.add(r.json()["pid"])
        if len(pids) >= wanted:
            break
    return pids


def hooks(recs, name):
    return [r for r in recs if r.get("hook") == name]


# -- Gunicorn's custom application recipe ----------------------------------------

@pytest.mark.timeout(90)
@pytest.mark.parametrize("flavour", ["gunicorn", "cgunicorn"])
def test_docs_custom_application(script, plain_py, tmp_path, flavour):
    """The docs' StandaloneApplication: its options (bind, workers) are
    served, the post_fork hook given with cfg.set() runs in each worker,
    and run() never returns into the script."""
    rec = str(tmp_path / "rec.jsonl")
    port = cgtest.free_port()
    srv = script([plain_py, os.path.join(API_DIR, "standalone_app.py")], port=port,
                 env={"CG_API_RECORD": rec, "CG_API_PORT": str(port),
                      "CG_API_IMPORT": flavour}, workers=2)
    start = [r for r in read_records(rec) if r.get("event") == "start"]
    assert len(start) == 1 and start[0]["pid"] == srv.pid
    # both spellings are the same class: the shim re-exports cgunicorn's
    assert start[0]["base"] == "cgunicorn.app.base"
    if flavour == "gunicorn":
        assert os.sep.join(("cgunicorn", "_compat", "gunicorn", "app", "base.py")) \
            in start[0]["base_file"]

    recs = wait_records(rec, lambda r: len(hooks(r, "post_fork")) >= 2, what="post_fork x2")
    forks = hooks(recs, "post_fork")
    assert len(forks) == 2
    assert {f["ppid"] for f in forks} == {srv.pid}
    assert all(f["pid"] == f["wpid"] and f["workers"] == 2 for f in forks)
    assert srv.worker_pids() == {f["pid"] for f in forks}

    assert served_pids(srv, 1) <= {f["pid"] for f in forks}
    assert requests.get(srv.url("/"), timeout=10).json()["software"] == "gunicorn/27.0.1"
    srv.wait_log(r"Listening at: http://127\.0\.0\.1:%d " % port)
    assert srv.stop() == 0
    assert "run() returned" not in srv.log()
    assert "Shutting down: Master" in srv.log()


@pytest.mark.timeout(90)
def test_hup_calls_reload_and_applies_new_settings(script, plain_py, tmp_path):
    """HUP: the master calls the application's reload(), which runs
    load_config() again (here reading a changed file), and the server
    takes the new configuration: three workers instead of one."""
    rec = str(tmp_path / "rec.jsonl")
    opts = tmp_path / "options.json"
    port = cgtest.free_port()
    opts.write_text(json.dumps({"bind": "127.0.0.1:%d" % port, "workers": 1}))
    srv = script([plain_py, os.path.join(API_DIR, "reloading_app.py")], port=port,
                 env={"CG_API_RECORD": rec, "CG_API_OPTIONS": str(opts)})
    first = [r for r in read_records(rec) if r.get("event") == "load_config"]
    assert [r["workers"] for r in first] == [1]
    old = srv.worker_pids()
    assert len(old) == 1

    # a reload() that fails (do_load_config() prints the error and calls
    # sys.exit(1)) is logged; the server goes on with what it had
    opts.write_text("{not json")
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"\[ERROR\] Reloading the configuration failed, keeping the previous one: "
                 r"the application's reload\(\) failed", timeout=20)
    # the whole traceback is in the log, however long
    assert re.search(r"\[ERROR\] Exception in the application's reload\(\)\n"
                     r"Traceback[^\[]*json\.decoder\.JSONDecodeError", srv.log())
    assert "\nError: Expecting property name enclosed in double quotes" in srv.log()
    kept = srv.wait_workers(lambda p: len(p) == 1 and not p & old, timeout=30,
                            what="one new worker after the failed HUP")

    opts.write_text(json.dumps({"bind": "127.0.0.1:%d" % port, "workers": 3}))
    srv.send_signal(signal.SIGHUP)
    recs = wait_records(rec, lambda r: any(x.get("event") == "load_config" and x["workers"] == 3
                                           for x in r), what="load_config after HUP")
    reloads = [r for r in recs if r.get("event") == "reload"]
    assert len(reloads) == 2 and {r["pid"] for r in reloads} == {srv.pid}
    new = srv.wait_workers(lambda p: len(p) == 3 and not p & (old | kept), timeout=30,
                           what="three new workers after HUP")
    srv.wait_log(r"Handling signal: hup", count=2)
    assert served_pids(srv, 1) <= new
    loads = [r for r in read_records(rec) if r.get("event") == "load"]
    assert {r["pid"] for r in loads} <= old | kept | new


@pytest.mark.timeout(60)
def test_preload_loads_in_the_master(script, plain_py, tmp_path):
    """--preload (preload_app set by the application): the master calls
    wsgi() -> load() once, and every worker serves that callable."""
    rec = str(tmp_path / "rec.jsonl")
    opts = tmp_path / "options.json"
    port = cgtest.free_port()
    opts.write_text(json.dumps({"bind": "127.0.0.1:%d" % port, "workers": 2,
                                "preload_app": True}))
    srv = script([plain_py, os.path.join(API_DIR, "reloading_app.py")], port=port,
                 env={"CG_API_RECORD": rec, "CG_API_OPTIONS": str(opts)}, workers=2)
    assert served_pids(srv, 1) <= srv.worker_pids()
    loads = [r for r in read_records(rec) if r.get("event") == "load"]
    assert loads == [{"event": "load", "pid": srv.pid}]


# -- Config as Python code sees it ---------------------------------------------

# What Gunicorn 27.0.1's Config.set raises for each value (class, message),
# checked against Gunicorn itself when these were written.
EXPECTED_REFUSALS = {
    ("workers", "'x'"): ["ValueError", "invalid literal for int() with base 0: 'x'"],
    ("workers", "-1"): ["ValueError", "Value must be positive: -1"],
    ("workers", "None"): ["TypeError", "int() can't convert non-string with explicit base"],
    ("workers", "2.5"): ["TypeError", "int() can't convert non-string with explicit base"],
    ("bogus", "1"): ["AttributeError", "No configuration setting for: bogus"],
    ("reload", "'maybe'"): ["ValueError", "Invalid boolean: maybe"],
    ("reload", "3"): ["TypeError", "Invalid type for casting: 3"],
    ("bind", "3"): ["TypeError", "'int' object is not iterable"],
    ("post_fork", "'lambda-1'"): ["TypeError", "Value must have an arity of: 2"],
    ("post_fork", "'nomod_cg_api.fn'"): ["TypeError", "No module named 'nomod_cg_api'"],
    ("post_fork", "'os.nofn'"): ["TypeError", "Can not load 'nofn' from 'os'"],
    ("post_fork", "'nodots'"): [
        "TypeError", "Value 'nodots' is not import string. Format: module[.submodules...].object"],
    ("post_fork", "3"): ["TypeError", "Value is not callable: 3"],
    ("post_request", "'lambda-1'"): ["TypeError", "Value must have an arity of: 4"],
    ("chdir", "'/nonexistent-cg-api'"): ["ConfigError", "can't chdir to '/nonexistent-cg-api'"],
    ("user", "'no-such-user-cg-api'"): ["ConfigError", "No such user: 'no-such-user-cg-api'"],
    ("group", "'no-such-group-cg-api'"): ["ConfigError", "No such group: 'no-such-group-cg-api'"],
    ("secure_scheme_headers", "'x'"): ["TypeError", "Value is not a dictionary: x "],
    ("forwarded_allow_ips", "'1.2.3.4/8'"): ["ValueError", "1.2.3.4/8 has host bits set"],
    ("forwarded_allow_ips", "5"): ["TypeError", "Not a string: 5"],
    ("errorlog", "5"): ["TypeError", "Not a string: 5"],
    ("reload_extra_files", "['/nonexistent-cg-api']"): [
        "ValueError", "File /nonexistent-cg-api does not exists."],
    ("http2_max_frame_size", "5"): [
        "ValueError", "http2_max_frame_size must be between 16384 and 16777215, got 5"],
    ("proxy_protocol", "'bogus'"): ["ValueError", "proxy_protocol must be: off, v1, v2, or auto"],
    ("statsd_host", "'a:b:c'"): ["TypeError", "Value must be one of ('host:port', 'unix://PATH')"],
    ("reload_engine", "'bogus'"): ["ConfigError", "Invalid reload_engine: 'bogus'"],
    ("logconfig_dict", "[1]"): ["TypeError", "Value is not a dictionary: [1] "],
    ("raw_env", "5"): ["TypeError", "'int' object is not iterable"],
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("module", ["cgunicorn.config", "gunicorn.config"])
def test_config_as_gunicorns(plain_py, module):
    env = dict(os.environ, CG_API_MODULE=module, GUNICORN_CMD_ARGS="--workers 4 -b ':1'")
    env.pop("WEB_CONCURRENCY", None)
    env.pop("PORT", None)
    res = _run([plain_py, os.path.join(API_DIR, "config_report.py")], env=env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)

    got = {(r[0], r[1]): r[2:] for r in out["refusals"]}
    assert got == EXPECTED_REFUSALS

    d = out["defaults"]
    assert d["workers"] == 1 and d["settings_workers_value"] == 1
    assert d["bind"] == ["127.0.0.1:8000"] and d["address"] == [["127.0.0.1", 8000]]
    assert d["worker_class_str"] == "sync" and d["proc_name"] == "gunicorn"
    assert d["setting_names_first"] == ["config", "wsgi_app", "bind", "backlog", "workers"]
    assert d["workers_cli"] == ["-w", "--workers"]
    assert d["workers_section"] == "Worker Processes"
    assert d["str_has_workers"] and d["sendfile"] is True and d["env"] == {}

    a = out["after"]
    assert a["workers"] == a["settings_workers_value"] == a["settings_workers_get"] == 5
    assert a["address"] == [["127.0.0.1", 9001], "/tmp/cg-api.sock", ["::1", 81], 3,
                            ["localhost", 7], ["example.org", 8000]]
    # sync with --threads > 1 is Gunicorn's gthread worker
    assert a["worker_class_str"] == "gthread" and a["worker_class"] == "ThreadWorker"
    assert a["env"] == {"A": "1", "B": "x=y"} and a["proc_name"] == "named"

    assert out["attribute_unknown"] == ["AttributeError",
                                        "No configuration setting for: no_such_setting"]
    assert out["attribute_assign"] == ["AttributeError", "Invalid access!"]
    assert out["parsed"] == {"args": ["app:app"], "bind": [":1", "unix:/x"], "workers": 3,
                             "sendfile": False, "user": "nobody", "umask": 0o22}
    # env_orig: the environment when the Config was made
    assert out["cmd_args_from_env"] == ["--workers", "4", "-b", ":1"]


@pytest.mark.timeout(60)
def test_glogging_logger(plain_py, tmp_path):
    """gunicorn.glogging.Logger writes Gunicorn's error-log and access-log
    lines; it can be subclassed, and cfg.logger_class gives back a subclass
    set as an object (the server runs it: test_logger_class.py)."""
    err, acc = tmp_path / "error.log", tmp_path / "access.log"
    res = _run([plain_py, os.path.join(API_DIR, "logger_check.py"), str(err), str(acc)])
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    lines = err.read_text().splitlines()
    assert len(lines) == 2, lines
    stamp = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] "
    assert re.fullmatch(stamp + r"\[WARNING\] warned here", lines[0]), lines
    assert re.fullmatch(stamp + r"\[ERROR\] by name", lines[1]), lines
    assert acc.read_text() == '10.1.2.3 "GET /p?q=1 HTTP/1.1" 200 5 "cg-api" t 1.000005\n'
    assert out["subclass_mro"] == ["Custom", "Logger", "object"]
    assert out["custom"] == "accepted"
    assert out["custom_loaded"] is True
    assert out["default_is_logger"] is True
    assert out["defaults_keys"] == ["disable_existing_loggers", "formatters", "handlers",
                                    "loggers", "root", "version"]
    assert out["root"] == {"level": "INFO", "handlers": ["console"]}


# -- WSGIApplication and run() ----------------------------------------------------

@pytest.mark.timeout(90)
def test_wsgi_application_subclass(script, plain_py, tmp_path):
    """init()'s values yield to the command line (-w 2 beats its 3) and
    apply where nothing else set them (proc_name, timeout, a hook); load()
    wraps the APP_MODULE the command line names."""
    rec = str(tmp_path / "rec.jsonl")
    port = cgtest.free_port()
    srv = script([plain_py, os.path.join(API_DIR, "wsgi_subclass.py"),
                  "-b", "127.0.0.1:%d" % port, "-w", "2", "echo:app"], port=port,
                 env={"CG_API_RECORD": rec}, workers=2)
    starting = hooks(read_records(rec), "on_starting")
    assert starting == [{"hook": "on_starting", "proc_name": "api-init", "workers": 2,
                         "timeout": 17}]
    r = requests.get(srv.url("/x"), timeout=10)
    assert r.status_code == 200 and r.headers["X-Wrapped"] == "echo:app"
    assert r.json()["PATH_INFO"] == "/x"
    assert len(srv.worker_pids()) == 2


@pytest.mark.timeout(60)
def test_application_check_config(plain_py):
    """Application.run() with --check-config loads the application and
    exits 0, or prints the error and exits 1 (Gunicorn's messages)."""
    sub = os.path.join(API_DIR, "wsgi_subclass.py")
    ok = _run([plain_py, sub, "--check-config", "echo:app"], cwd=cgtest.APPS_DIR)
    assert ok.returncode == 0, ok.stderr
    bad = _run([plain_py, sub, "--check-config", "echo:nosuch"], cwd=cgtest.APPS_DIR)
    assert bad.returncode == 1
    assert "Error while loading the application:" in bad.stderr
    assert "AppImportError: Failed to find attribute 'nosuch' in 'echo'." in bad.stderr
    none = _run([plain_py, sub], cwd=cgtest.APPS_DIR)
    assert none.returncode == 1
    assert none.stderr == "\nError: No application module specified.\n"


@pytest.mark.timeout(90)
def test_wsgiapp_run_is_the_command(script, plain_py, api_venv, tmp_path):
    """cgunicorn.app.wsgiapp.run() serves as the cgunicorn command does,
    and fails the same way, with the same words and status."""
    run_py = os.path.join(API_DIR, "wsgiapp_run.py")
    pass_port = cgtest.free_port()
    srv = script([plain_py, run_py, "-b", "127.0.0.1:%d" % pass_port, "-w", "2", "echo:app"],
                 port=pass_port, workers=2)
    assert requests.get(srv.url("/"), timeout=10).json()["SERVER_SOFTWARE"] == "gunicorn/27.0.1"
    srv.wait_log(r"Starting gunicorn 27\.0\.1")
    srv.wait_log(r"Listening at: http://127\.0\.0\.1:%d " % pass_port)

    for args in (["--check-config", "echo:nosuch"], ["--workers", "x", "echo:app"],
                 ["--check-config", "broken_import:app"]):
        ours = _run([plain_py, run_py] + args, cwd=cgtest.APPS_DIR)
        cmd = _run([api_venv.script] + args, cwd=cgtest.APPS_DIR)
        assert ours.returncode == cmd.returncode != 0, (args, ours.stderr)
        assert ours.stderr.replace("wsgiapp_run.py", "cgunicorn") == cmd.stderr, args
    version = _run([plain_py, run_py, "--version"], env=dict(os.environ, CG_API_PROG="myprog"))
    assert version.returncode == 0 and version.stdout == "myprog (version 27.0.1)\n"


@pytest.mark.timeout(90)
def test_plain_wsgi_application_imports_as_the_command(script, plain_py, api_venv, tmp_path):
    """WSGIApplication used as it is (here through gunicorn.app.wsgiapp)
    leaves APP_MODULE to the C core, as the command: it serves, and a
    missing attribute stops the server as it stops the command (the
    worker's AppImportError: "App failed to load", exit status 4)."""
    plain = os.path.join(API_DIR, "plain_wsgiapp.py")
    port = cgtest.free_port()
    srv = script([plain_py, plain, "-b", "127.0.0.1:%d" % port, "echo:app"], port=port)
    assert requests.get(srv.url("/"), timeout=10).status_code == 200

    results = []
    for argv in ([plain_py, plain], [api_venv.script]):
        port = cgtest.free_port()
        bad = script(argv + ["-b", "127.0.0.1:%d" % port, "echo:nosuch"], port=port, wait=False)
        rc = bad.wait_exit(60)
        assert rc is not None, bad.log()
        assert "Failed to find attribute 'nosuch' in 'echo'." in bad.log()
        results.append(rc)
    assert results[0] == results[1] == 4


# -- configuration files written for Gunicorn -----------------------------------------

def _expected_gunicorn(python_without_cgunicorn_site):
    """Where `import gunicorn` leads in a config file the standalone
    executable runs: a Gunicorn installed for its Python wins over the
    shims (appended last to sys.path)."""
    origin = module_origin(python_without_cgunicorn_site, "gunicorn")
    return origin or None


@pytest.mark.timeout(120)
@pytest.mark.parametrize("front", ["venv", "standalone"])
def test_gunicorn_config_file(script, api_venv, plain_py, tmp_path, front):
    """A config file importing gunicorn, gunicorn.glogging and
    gunicorn.config passes --check-config and serves with its settings,
    under the pip-installed package (python -m cgunicorn, in a venv that
    sees no other gunicorn, so the shims serve) and under the standalone
    executable."""
    if front == "venv":
        cmd = [plain_py, "-m", "cgunicorn"]
        expected = os.path.join(api_venv.site, "cgunicorn", "_compat", "gunicorn", "__init__.py")
        assert module_origin(plain_py, "gunicorn") == expected
    else:
        path = cgtest.cg_bin()
        if not os.access(path, os.X_OK):
            pytest.fail("standalone cgunicorn not built: %s (or set CGUNICORN_BIN)" % path)
        cmd = [path]
        expected = _expected_gunicorn(cgtest.PYTHON) or os.path.join(
            cgtest.REPO_ROOT, "pylib", "cgunicorn", "_compat", "gunicorn", "__init__.py")
    conf = os.path.join(API_DIR, "conf_shims.py")
    rec = str(tmp_path / "rec.jsonl")
    env = {"CG_API_RECORD": rec}

    check = _run(cmd + ["-c", conf, "--check-config", "echo:app"], cwd=cgtest.APPS_DIR,
                 env=dict(os.environ, **env))
    assert check.returncode == 0, check.stderr
    checked = [r for r in read_records(rec) if r.get("event") == "config"]
    assert len(checked) == 1
    c = checked[0]
    assert os.path.realpath(c["gunicorn_file"]) == os.path.realpath(expected)
    if "_compat" in expected:
        assert c["server_software"] == "gunicorn/27.0.1" and c["version"] == "27.0.1"
    assert c["logger"] == "Logger" and c["error_handlers"] == ["error_console"]
    assert c["default_workers"] == 1

    port = cgtest.free_port()
    srv = script(cmd + ["-c", conf, "-b", "127.0.0.1:%d" % port, "echo:app"], port=port,
                 env=env, workers=2)
    recs = wait_records(rec, lambda r: len(hooks(r, "post_fork")) >= 2, what="post_fork x2")
    assert {h["pid"] for h in hooks(recs, "post_fork")} == srv.worker_pids()
    assert requests.get(srv.url("/"), timeout=10).json()["SERVER_SOFTWARE"] == "gunicorn/27.0.1"


# -- a real Gunicorn comes first ------------------------------------------------------

@pytest.mark.timeout(60)
def test_real_gunicorn_shadows_the_shims(api_venv, tmp_path_factory):
    """With a Gunicorn installed in a site directory processed after
    cgunicorn's, `import gunicorn` gives that Gunicorn: the shims step
    aside, and cgunicorn's own modules still import."""
    fake_site = tmp_path_factory.mktemp("fake-site")
    (fake_site / "gunicorn").mkdir()
    (fake_site / "gunicorn" / "__init__.py").write_text('__version__ = "0.0.fake"\n')
    py = _overlay(str(tmp_path_factory.mktemp("shadow") / "venv"),
                  [api_venv.site, str(fake_site)], False)
    res = _run([py, "-c", "import gunicorn, cgunicorn.app.base, cgunicorn.config; "
                          "print(gunicorn.__version__, gunicorn.__file__)"])
    assert res.returncode == 0, res.stderr
    version, path = res.stdout.split()
    assert version == "0.0.fake"
    assert path == str(fake_site / "gunicorn" / "__init__.py")


@pytest.mark.timeout(60)
def test_system_gunicorn_left_alone(system_py, api_venv, tmp_path):
    """A venv made with --system-site-packages on a machine with Debian's
    python3-gunicorn: `import gunicorn` gives Debian's, in a script and in
    a config file the console script runs."""
    system = module_origin(cgtest.PYTHON, "gunicorn")
    if not system:
        pytest.skip("no Gunicorn installed for %s" % cgtest.PYTHON)
    assert module_origin(system_py, "gunicorn") == system
    conf = os.path.join(API_DIR, "conf_shims.py")
    rec = str(tmp_path / "rec.jsonl")
    res = _run([system_py, "-m", "cgunicorn", "-c", conf, "--check-config", "echo:app"],
               cwd=cgtest.APPS_DIR, env=dict(os.environ, CG_API_RECORD=rec))
    assert res.returncode == 0, res.stderr
    assert [r["gunicorn_file"] for r in read_records(rec)] == [system]


@pytest.mark.timeout(90)
def test_load_raising_app_import_error(script, plain_py):
    """load() raising AppImportError is reported as the command line reports
    one: the message without a traceback, and the server stops with 4."""
    port = cgtest.free_port()
    app = os.path.join(API_DIR, "import_error_app.py")
    srv = script([plain_py, app, "127.0.0.1:%d" % port], port=port, wait=False)
    rc = srv.wait_exit(60)
    log = srv.log()
    assert rc == 4, log
    assert "no application in this test (on purpose)" in log
    assert "Exception in worker process" not in log and "Traceback" not in log
