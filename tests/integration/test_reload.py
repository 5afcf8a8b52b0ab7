"""--reload: each worker watches the files of every loaded module (modules
imported later included) and --reload-extra-file entries; a change makes the
worker log `Worker reloading: <file> modified` and leave with status 0, and
the master's replacement serves the new code. A SyntaxError under --reload
is served as Gunicorn's 500 text/plain traceback."""

import os
import shutil
import time

import pytest
import requests

from cgtest import APPS_DIR


def _bump(path, secs=5):
    """Move the mtime forward (a same-second rewrite may not change it)."""
    t = time.time() + secs
    os.utime(path, (t, t))


def _app_dir(tmp_path):
    d = tmp_path / "app"
    d.mkdir()
    shutil.copy(os.path.join(APPS_DIR, "reload_versioned.py"), str(d / "reload_versioned.py"))
    (d / "reload_lazy.py").write_text("NAME = 'lazy'\n")
    return d


@pytest.mark.timeout(60)
def test_touching_the_app_module_replaces_the_worker(cg, tmp_path):
    d = _app_dir(tmp_path)
    srv = cg("reload_versioned:app", args=["-w", "1", "--reload"], cwd=str(d))
    srv.wait_log(r"\[WARNING\] Reloader is on\. Use in development only!$")
    assert requests.get(srv.url("/"), timeout=10).text == "one"
    old = srv.worker_pids()

    time.sleep(1.5)  # the reloader's first pass records the mtimes
    src = d / "reload_versioned.py"
    src.write_text(src.read_text().replace('"one"', '"two"'))
    _bump(str(src))
    srv.wait_log(r"\[INFO\] Worker reloading: %s modified$" % str(src).replace(".", r"\."),
                 timeout=10)
    new = srv.wait_workers(lambda p: len(p) == 1 and not (p & old), 10)
    assert requests.get(srv.url("/"), timeout=10).text == "two"
    assert new == srv.worker_pids()
    # left like a graceful exit: status 0, no error from the master
    assert "exited with code" not in srv.log()
    assert srv.log().count("Booting worker with pid") == 2

    # a module first imported by a request is watched from then on
    assert requests.get(srv.url("/lazy"), timeout=10).text == "lazy"
    time.sleep(1.5)  # one reloader pass sees it
    _bump(str(d / "reload_lazy.py"))
    srv.wait_log(r"Worker reloading: .*reload_lazy\.py modified$", timeout=10)
    srv.wait_workers(lambda p: len(p) == 1 and not (p & new), 10)


@pytest.mark.timeout(60)
def test_extra_files_and_patterns(cg, tmp_path):
    d = _app_dir(tmp_path)
    (d / "extra.txt").write_text("x")
    (d / "tpl").mkdir()
    srv = cg("reload_versioned:app",
             args=["-w", "1", "--reload", "--reload-extra-file", "extra.txt",
                   "--reload-extra-file", "tpl/*.html"], cwd=str(d))
    srv.wait_log(r"Reloader is on")
    time.sleep(1.5)
    old = srv.worker_pids()
    _bump(str(d / "extra.txt"))
    srv.wait_log(r"\[INFO\] Worker reloading: extra\.txt modified$", timeout=10)
    old = srv.wait_workers(lambda p: len(p) == 1 and not (p & old), 10)
    srv.wait_log(r"Reloader is on", count=2)
    time.sleep(1.5)

    # a file matching a pattern, created after start: its first edit counts
    (d / "tpl" / "page.html").write_text("<p>")
    time.sleep(2.5)
    assert srv.worker_pids() == old
    _bump(str(d / "tpl" / "page.html"))
    srv.wait_log(r"\[INFO\] Worker reloading: tpl/page\.html modified$", timeout=10)
    srv.wait_workers(lambda p: len(p) == 1 and not (p & old), 10)


@pytest.mark.timeout(60)
def test_syntax_error_served_as_500_until_fixed(cg, tmp_path):
    d = _app_dir(tmp_path)
    src = d / "reload_versioned.py"
    good = src.read_text()
    src.write_text("def app(:\n")
    srv = cg("reload_versioned:app", args=["-w", "1", "--reload"], cwd=str(d))
    r = requests.get(srv.url("/"), timeout=10)
    assert r.status_code == 500
    assert r.headers["Content-Type"] == "text/plain"
    assert r.text.rstrip().endswith("SyntaxError: invalid syntax")
    assert str(src) in r.text
    srv.wait_log(r"\[ERROR\] invalid syntax \(reload_versioned\.py, line 1\)$")
    old = srv.worker_pids()

    time.sleep(1.5)
    src.write_text(good)
    _bump(str(src))
    srv.wait_log(r"Worker reloading: .*reload_versioned\.py modified$", timeout=10)
    srv.wait_workers(lambda p: len(p) == 1 and not (p & old), 10)
    assert requests.get(srv.url("/"), timeout=10).text == "one"


def test_syntax_error_without_reload_fails_boot(run_cg, tmp_path):
    (tmp_path / "bad_syntax.py").write_text("def app(:\n")
    res = run_cg(["-b", "127.0.0.1:0", "bad_syntax:app"], cwd=str(tmp_path), timeout=30)
    assert res.returncode == 3, res.stderr
    assert "Reason: Worker failed to boot." in res.stderr


def _has_inotify_package():
    import subprocess
    return subprocess.run(["/usr/bin/python3", "-c", "import inotify.adapters"],
                          capture_output=True).returncode == 0


@pytest.mark.skipif(_has_inotify_package(), reason="Python's inotify package is installed")
def test_inotify_engine_needs_the_inotify_package(run_cg):
    res = run_cg(["-b", "127.0.0.1:0", "--reload", "--reload-engine", "inotify",
                  "wsgiapp:app"], timeout=30)
    assert res.returncode == 3, res.stderr
    assert ("ImportError: You must have the inotify module installed to use the inotify "
            "reloader") in res.stderr
    assert "Reason: Worker failed to boot." in res.stderr


def test_reload_engine_is_validated(run_cg):
    res = run_cg(["-b", "127.0.0.1:0", "--reload-engine", "fast", "wsgiapp:app"], timeout=30)
    assert res.returncode != 0
    assert "Invalid reload_engine: 'fast'" in res.stderr


@pytest.mark.timeout(60)
def test_reload_runs_worker_int_and_works_with_an_inherited_interpreter(cg, tmp_path):
    """With a config file the worker inherits the master's interpreter; the
    reloader runs the worker_int hook of the reloading worker, as Gunicorn's."""
    d = _app_dir(tmp_path)
    ints = tmp_path / "ints"
    conf = d / "conf.py"
    conf.write_text("import os\n"
                    "reload = True\n"
                    "def worker_int(worker):\n"
                    "    with open(%r, 'a') as f:\n"
                    "        f.write('%%d\\n' %% worker.pid)\n" % str(ints))
    srv = cg("reload_versioned:app", args=["-w", "1", "-c", str(conf)], cwd=str(d))
    srv.wait_log(r"Reloader is on")
    old = srv.worker_pids()
    time.sleep(1.5)
    _bump(str(d / "reload_versioned.py"))
    srv.wait_log(r"Worker reloading: .*reload_versioned\.py modified$", timeout=10)
    srv.wait_workers(lambda p: len(p) == 1 and not (p & old), 10)
    assert [int(x) for x in ints.read_text().split()] == sorted(old)
