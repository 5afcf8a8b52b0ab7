"""Both front ends side by side: the standalone executable (CGUNICORN_BIN)
and the console script of the pip-installed package ($CGUNICORN_VENV/bin/
cgunicorn; its half is skipped when CGUNICORN_VENV is not set).

  * PYTHONPATH=<dir with sitecustomize.py> before the server command (how
    ddtrace-run and opentelemetry-instrument bootstrap) reaches every worker,
    later ones included; a thread that bootstrap starts (and restarts in
    forked children, as those tools do) runs while the master and the
    workers idle.
  * The console script run by path, the venv not activated (no VIRTUAL_ENV,
    PATH without the venv), serves an app importing a package installed only
    in that venv; `python -m cgunicorn` is the same program.
  * USR2 re-executes the front end: the executable, or the console script's
    sys.executable with its command line (and the venv's packages).
"""

import json
import os
import re
import signal
import subprocess
import textwrap
import time

import psutil
import pytest
import requests

import cgtest
from cgtest import read_records, wait_records

# the env of a console script run by path from a shell that never activated
# its venv (and of the standalone in the same tests)
UNACTIVATED = {"VIRTUAL_ENV": None, "PYTHONHOME": None, "PYTHONPATH": None,
               "PATH": "/usr/local/bin:/usr/bin:/bin"}
VENV_PKG = "cg_venv_only"


def _venv():
    return os.environ.get("CGUNICORN_VENV")


def _binary(front):
    if front == "standalone":
        b = cgtest.cg_bin()
        if cgtest.front_end(b) != "standalone":
            pytest.skip("CGUNICORN_BIN is not the standalone executable: %s" % b)
        return b
    venv = _venv()
    if not venv:
        pytest.skip("CGUNICORN_VENV is not set (`make venv` builds one)")
    b = os.path.join(venv, "bin", "cgunicorn")
    if not os.access(b, os.X_OK):
        pytest.fail("CGUNICORN_VENV=%s has no bin/cgunicorn" % venv, pytrace=False)
    return b


@pytest.fixture(params=["standalone", "console"])
def front(request):
    """(name, path of the cgunicorn command) of each front end."""
    return request.param, _binary(request.param)


@pytest.fixture
def console():
    return _binary("console")


@pytest.fixture(scope="module")
def venv_pkg(tmp_path_factory):
    """A package installed (from a wheel, no index) only in CGUNICORN_VENV;
    its path there."""
    venv = _venv()
    if not venv:
        pytest.skip("CGUNICORN_VENV is not set")
    py = os.path.join(venv, "bin", "python")
    probe = "import %s; print(%s.__file__)" % (VENV_PKG, VENV_PKG)
    res = subprocess.run([py, "-c", probe], capture_output=True, text=True)
    if res.returncode != 0:
        whl = cgtest.make_wheel(tmp_path_factory.mktemp("whl"), "cg-venv-only", "1.0", {
            VENV_PKG + "/__init__.py": "VALUE = 'only in the venv'\n"})
        subprocess.run([py, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                        "--disable-pip-version-check", whl], check=True)
        res = subprocess.run([py, "-c", probe], capture_output=True, text=True, check=True)
    # and only there: not in the interpreter the tests (and the standalone) use
    assert subprocess.run([cgtest.PYTHON, "-c", "import " + VENV_PKG],
                          capture_output=True).returncode != 0
    return res.stdout.strip()


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


# -- PYTHONPATH bootstrap (sitecustomize) ---------------------------------------

SITECUSTOMIZE = """
    # What ddtrace-run / opentelemetry-instrument put first on PYTHONPATH.
    import builtins, json, os, sys, threading, time

    builtins.CG_BOOTSTRAP = os.getpid()
    with open(os.environ["CG_SITE_LOG"], "a") as f:
        f.write(json.dumps({"what": "sitecustomize", "pid": os.getpid()}) + "\\n")

    def _tick():
        while True:
            with open(os.environ["CG_TICK_FILE"], "a") as f:
                f.write("%d %.3f\\n" % (os.getpid(), time.time()))
            time.sleep(0.1)

    def _start():
        threading.Thread(target=_tick, name="bootstrap-ticker", daemon=True).start()

    # a background thread, restarted in forked children as these tools do
    _start()
    os.register_at_fork(after_in_child=_start)
"""

SITE_APP = """
    import builtins, json, os, sys

    def _state():
        site = sys.modules.get("sitecustomize")
        return {"what": "app", "pid": os.getpid(),
                "sitecustomize": getattr(site, "__file__", None),
                "bootstrap": getattr(builtins, "CG_BOOTSTRAP", None),
                "path": sys.path}

    with open(os.environ["CG_SITE_LOG"], "a") as f:
        f.write(json.dumps(_state()) + "\\n")

    def app(environ, start_response):
        body = json.dumps(_state()).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]
"""


def ticks(path, pid):
    try:
        with open(path) as f:
            lines = [ln.split() for ln in f if ln.strip()]
    except FileNotFoundError:
        return []
    return [float(t) for p, t in lines if int(p) == pid]


def assert_ticking(path, pids, seconds=1.5):
    """Each pid's ticker writes ~10 lines a second: at least half of that
    within the window, while the server idles."""
    before = {p: len(ticks(path, p)) for p in pids}
    time.sleep(seconds)
    for p in pids:
        got = len(ticks(path, p)) - before[p]
        assert got >= int(seconds * 10 * 0.5), "pid %d ticked %d times in %.1fs" % (p, got, seconds)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_pythonpath_sitecustomize_reaches_every_worker(cg, tmp_path, front, worker):
    name, binary = front
    boot = tmp_path / "boot"
    write(boot / "sitecustomize.py", SITECUSTOMIZE)
    appdir = tmp_path / "app"
    write(appdir / "siteapp.py", SITE_APP)
    site_log = str(tmp_path / "site.jsonl")
    tick_file = str(tmp_path / "ticks")
    env = dict(UNACTIVATED, PYTHONPATH=str(boot), CG_SITE_LOG=site_log, CG_TICK_FILE=tick_file)
    srv = cg("siteapp:app", args=["-w", "3", "-k", worker], cwd=str(appdir), env=env,
             binary=binary)
    master = srv.pid
    workers = srv.worker_pids()
    assert len(workers) == 3

    def apps(recs):
        return {r["pid"]: r for r in recs if r["what"] == "app"}

    recs = wait_records(site_log, lambda r: set(apps(r)) >= workers, what="app imports")
    sites = [r["pid"] for r in recs if r["what"] == "sitecustomize"]
    for pid in workers:
        state = apps(recs)[pid]
        assert state["sitecustomize"] == str(boot / "sitecustomize.py"), state
        assert str(boot) in state["path"], state["path"]
        if name == "standalone":
            # each worker starts its interpreter, which runs the bootstrap
            assert state["bootstrap"] == pid
        else:
            # the master (a Python process) ran it once; workers fork from it
            assert state["bootstrap"] == master
    if name == "standalone":
        assert master not in sites  # the standalone master runs no Python here
        assert set(sites) == workers
    else:
        assert sites == [master]

    # the bootstrap's thread runs while everything idles: the master (console
    # script) holds no GIL in its loop, nor a worker waiting for clients
    tickers = set(workers) | ({master} if name == "console" else set())
    assert_ticking(tick_file, tickers)
    if name == "standalone":
        assert not ticks(tick_file, master)

    # a worker booted later has it as well, and serves
    srv.send_signal(signal.SIGTTIN)
    four = srv.wait_workers(lambda p: len(p) == 4 and p > workers, 10, "4 workers after TTIN")
    (late,) = four - workers
    recs = wait_records(site_log, lambda r: late in apps(r), what="the 4th worker's import")
    assert apps(recs)[late]["sitecustomize"] == str(boot / "sitecustomize.py")
    assert_ticking(tick_file, {late}, 1.0)
    for _ in range(4):
        state = requests.get(srv.url("/"), timeout=10).json()
        assert state["pid"] in four
        assert state["sitecustomize"] == str(boot / "sitecustomize.py")
    assert srv.stop() == 0


# -- the console script, venv not activated ------------------------------------

VENV_APP = """
    import os, sys
    import %s as pkg

    def app(environ, start_response):
        body = "%%s|%%s|%%s|%%d" %% (pkg.VALUE, pkg.__file__, sys.prefix, os.getpid())
        body = body.encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
""" % VENV_PKG


def _venv_answer(srv):
    value, path, prefix, pid = requests.get(srv.url("/"), timeout=10).text.split("|")
    return value, path, prefix, int(pid)


@pytest.mark.timeout(60)
def test_console_script_unactivated_serves_a_venv_package(cg, tmp_path, console, venv_pkg):
    venv = os.path.realpath(_venv())
    appdir = tmp_path / "app"
    write(appdir / "venvapp.py", VENV_APP)
    srv = cg("venvapp:app", args=["-w", "2"], cwd=str(appdir), env=UNACTIVATED, binary=console)
    assert "VIRTUAL_ENV" not in psutil.Process(srv.pid).environ()
    value, path, prefix, pid = _venv_answer(srv)
    assert value == "only in the venv"
    assert path == venv_pkg
    assert os.path.realpath(prefix) == venv
    assert pid in srv.worker_pids()
    # the master is the venv's interpreter running the console script
    assert psutil.Process(srv.pid).exe() == os.path.realpath(os.path.join(venv, "bin", "python"))
    assert srv.stop() == 0
    srv.wait_log(r"\[INFO\] Shutting down: Master$")


@pytest.mark.timeout(60)
def test_python_m_cgunicorn_is_the_console_script(console, tmp_path):
    py = os.path.join(_venv(), "bin", "python")
    env = cgtest.merged_env(UNACTIVATED)
    out = {}
    for name, cmd in (("script", [console]), ("module", [py, "-m", "cgunicorn"])):
        res = subprocess.run(cmd + ["--version"], env=env, capture_output=True, text=True,
                             timeout=30)
        assert res.returncode == 0, res.stderr
        out[name] = res.stdout + res.stderr
        # the usage names the program `cgunicorn` either way
        res = subprocess.run(cmd + ["--no-such-option"], env=env, capture_output=True,
                             text=True, timeout=30)
        assert res.returncode == 2
        assert res.stderr.startswith("usage: cgunicorn "), res.stderr
    assert re.fullmatch(r"cgunicorn \(version \d+\.\d+\.\d+\)\n", out["script"]), out
    assert out["module"] == out["script"]
    standalone = cgtest.cg_bin()
    if cgtest.front_end(standalone) == "standalone":
        res = subprocess.run([standalone, "--version"], capture_output=True, text=True,
                             timeout=30)
        assert res.stdout + res.stderr == out["script"]


# -- USR2 re-executes the front end -------------------------------------------

USR2_CONF = """
    import json, os, sys

    def when_ready(server):
        with open(os.environ["CG_READY_LOG"], "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "executable": sys.executable,
                                "prefix": sys.prefix,
                                "orig_argv": getattr(sys, "orig_argv", None)}) + "\\n")
"""


@pytest.mark.timeout(90)
def test_usr2_reexecutes_the_front_end(cg, tmp_path, front, request):
    name, binary = front
    appdir = tmp_path / "app"
    write(appdir / "venvapp.py", VENV_APP)
    conf = write(tmp_path / "conf.py", USR2_CONF)
    ready = str(tmp_path / "ready.jsonl")
    env = dict(UNACTIVATED, CG_READY_LOG=ready)
    app = "wsgiapp:app"
    cwd = cgtest.APPS_DIR
    if name == "console":
        # the new master must find the venv's packages too
        app, cwd = "venvapp:app", str(appdir)
        venv_pkg = request.getfixturevalue("venv_pkg")
    srv = cg(app, args=["-w", "2", "-c", conf], cwd=cwd, env=env, binary=binary)
    old = srv.pid
    wait_records(ready, lambda r: [x["pid"] for x in r] == [old], what="when_ready")
    srv.send_signal(signal.SIGUSR2)
    new = cgtest.new_master(old, srv.log, workers=2)
    try:
        recs = wait_records(ready, lambda r: new.pid in [x["pid"] for x in r],
                            what="when_ready of the new master")
        first, second = recs[0], recs[-1]
        if name == "console":
            venv = os.path.realpath(_venv())
            # sys.executable with sys.orig_argv: the venv's python running the script
            assert new.exe() == os.path.realpath(os.path.join(venv, "bin", "python"))
            assert second["executable"] == first["executable"]
            assert os.path.realpath(second["executable"]) == new.exe()
            assert second["orig_argv"] == first["orig_argv"]
            assert second["orig_argv"][1] == binary
            assert os.path.realpath(second["prefix"]) == venv
        else:
            assert new.exe() == os.path.realpath(binary)
        srv.send_signal(signal.SIGTERM)
        assert srv.wait_exit(15) == 0
        srv.wait_log(r"\[%d\] \[INFO\] Master has been promoted\.$" % new.pid, timeout=5.0)
        kids = [c.pid for c in new.children()]
        if name == "console":
            value, path, _prefix, pid = _venv_answer(srv)
            assert (value, path) == ("only in the venv", venv_pkg)
        else:
            pid = int(requests.get(srv.url("/pid"), timeout=10).text)
        assert pid in kids
    finally:
        try:
            new.terminate()
            new.wait(15)  # not our child: no status to see
        except psutil.Error:
            pass
    srv.wait_log(r"\[%d\] \[INFO\] Shutting down: Master$" % new.pid, timeout=5.0)


@pytest.mark.timeout(90)
def test_usr2_with_a_relative_command_and_chdir(cg, tmp_path, front):
    """The command run by a relative path (`venv/bin/cgunicorn`,
    `build/cgunicorn`) with --chdir elsewhere: the USR2 upgrade still
    executes it, although the master's directory changed in between."""
    name, binary = front
    top = os.path.dirname(os.path.dirname(os.path.dirname(binary)))
    relative = os.path.join(".", os.path.relpath(binary, top))
    env = dict(UNACTIVATED) if name == "console" else None
    srv = cg("wsgiapp:app", args=["-w", "1", "--chdir", cgtest.APPS_DIR], cwd=top, env=env,
             binary=relative)
    old = srv.pid
    srv.send_signal(signal.SIGUSR2)
    new = cgtest.new_master(old, srv.log, workers=1)
    try:
        srv.send_signal(signal.SIGTERM)
        assert srv.wait_exit(15) == 0
        srv.wait_log(r"\[%d\] \[INFO\] Master has been promoted\.$" % new.pid, timeout=5.0)
        pid = int(requests.get(srv.url("/pid"), timeout=10).text)
        assert pid in [c.pid for c in new.children()]
    finally:
        try:
            new.terminate()
            new.wait(15)
        except psutil.Error:
            pass
