"""--paste: a PasteDeploy file's application (a Pyramid app behind a filter)
and its logging sections, as Gunicorn serves them; pserve through the
paste.server_runner entry point of the installed package."""
import os
import re
import subprocess

import pytest
import requests

import cgtest

PACKAGES = ("PasteDeploy", "pyramid", "WebOb", "zope.interface", "zope.deprecation", "venusian",
            "translationstring", "hupper", "plaster", "plaster-pastedeploy")

INI = """\
[app:web]
use = call:pasteapp:main
greeting = hi

[filter:tagger]
use = call:pasteapp:tagger
tag = T1

[pipeline:main]
pipeline = tagger web
%(server)s
[loggers]
keys = root, gunicorn_error

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = console

[logger_gunicorn_error]
level = INFO
handlers = console
propagate = 0
qualname = gunicorn.error

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = PASTELOG %%(levelname)s %%(message)s
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return cgtest.pinned_site(tmp_path_factory.mktemp("paste"), *PACKAGES)


@pytest.fixture
def ini(tmp_path):
    path = tmp_path / "app.ini"
    path.write_text(INI % {"server": ""})
    return path


def _pypath(site):
    return "%s,%s" % (site, cgtest.APPS_DIR)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_pipeline_and_logging_sections(cg, site, ini, worker):
    srv = cg(None, args=["--paste", str(ini), "--pythonpath", _pypath(site), "-k", worker,
                         "--paste-global", "who=world"])
    r = requests.get(srv.url("/"), timeout=10)
    assert r.status_code == 200
    assert re.fullmatch(r"hello hi from world, filtered T1, pid \d+", r.text), r.text
    # the file's [loggers] sections are the logging configuration
    srv.wait_log(r"^PASTELOG INFO Booting worker with pid: \d+$")
    assert not re.search(r"^\[[^]]+\] \[\d+\] \[INFO\] Booting worker", srv.log(), re.M)
    # the file is the default process name, as in Gunicorn
    import psutil
    assert str(ini) in " ".join(psutil.Process(srv.pid).cmdline())


@pytest.mark.timeout(90)
def test_named_section_and_preload(cg, site, ini):
    srv = cg(None, args=["--paste", "%s#web" % ini, "--pythonpath", _pypath(site), "--preload",
                         "-w", "2"])
    texts = {requests.get(srv.url("/"), timeout=10).text for _ in range(4)}
    # no filter in front of [app:web]; no --paste-global, so no "who"
    assert all(re.fullmatch(r"hello hi from nobody, filtered -, pid \d+", t) for t in texts)


@pytest.mark.timeout(60)
def test_check_config_loads_the_app(run_cg, site, ini):
    res = run_cg(["--paste", str(ini), "--pythonpath", _pypath(site), "--check-config"])
    assert res.returncode == 0, res.stderr


@pytest.mark.timeout(60)
def test_missing_file(run_cg, tmp_path):
    missing = tmp_path / "nope.ini"
    res = run_cg(["--paste", str(missing)])
    assert res.returncode == 1
    assert "Error: %r not found" % str(missing) in res.stderr


@pytest.mark.timeout(60)
def test_without_pastedeploy_the_worker_says_why(cg, tmp_path, ini):
    srv = cg(None, args=["--paste", str(ini), "--pythonpath", str(cgtest.APPS_DIR)], start=False)
    srv.spawn()
    assert srv.wait_exit(30) != 0
    assert "No module named 'paste'" in srv.log()


def _wait_listening(port, proc, timeout):
    import socket
    import time
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, "pserve exited: %s" % proc.stdout.read().decode()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError("nothing listens on %d" % port)
            time.sleep(0.05)


@pytest.mark.timeout(120)
def test_pserve_runs_cgunicorn(site, tmp_path):
    """[server:main] use = egg:cgunicorn#main: PasteDeploy finds our server
    runner through the installed package's entry point."""
    venv = os.environ.get("CGUNICORN_VENV")
    if not venv:
        pytest.skip("CGUNICORN_VENV is not set (`make venv` builds one)")
    py = os.path.join(venv, "bin", "python")
    port = cgtest.free_port()
    path = tmp_path / "served.ini"
    path.write_text(INI % {"server": "\n[server:main]\nuse = egg:cgunicorn#main\nhost = 127.0.0.1\n"
                                     "port = %d\nworkers = 2\n" % port})
    env = dict(os.environ, PYTHONPATH="%s:%s" % (site, cgtest.APPS_DIR))
    proc = subprocess.Popen([py, "-m", "pyramid.scripts.pserve", str(path)], cwd=str(tmp_path),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, proc, 30)
        r = requests.get("http://127.0.0.1:%d/" % port, timeout=10)
        assert re.fullmatch(r"hello hi from nobody, filtered T1, pid \d+", r.text), r.text
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out
    assert re.search(r"^PASTELOG INFO Starting gunicorn", out, re.M), out
