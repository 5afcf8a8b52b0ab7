"""--preload: the master imports the application once, before forking, and
the workers serve that very object; a HUP does not import it again; an app
that fails to import stops the master as an uncaught exception stops
Gunicorn's (exit 1, nothing logged, the error on stderr)."""

import os
import re
import signal
import time

import psutil
import pytest
import requests

import cgtest


def _importers(path):
    try:
        with open(path) as f:
            return [int(line) for line in f.read().split()]
    except FileNotFoundError:
        return []


def _answer(srv):
    serving, importer = requests.get(srv.url("/"), timeout=10).text.split()
    return int(serving), int(importer)


@pytest.mark.timeout(60)
def test_preload_imports_once_in_the_master(cg, tmp_path):
    log = str(tmp_path / "imports")
    srv = cg("preload_pidlog:app", args=["-w", "3", "--preload"],
             env={"CG_PRELOAD_LOG": log})
    assert _importers(log) == [srv.pid]
    workers = srv.worker_pids()
    assert len(workers) == 3
    seen = set()
    for _ in range(12):
        serving, importer = _answer(srv)
        assert serving in workers
        assert importer == srv.pid
        seen.add(serving)
    assert seen and seen <= workers

    # HUP re-runs preload, which keeps the app already imported
    srv.send_signal(signal.SIGHUP)
    srv.wait_workers(lambda p: len(p) == 3 and not (p & workers), 15)
    assert _answer(srv)[1] == srv.pid
    assert _importers(log) == [srv.pid]
    assert "Hang up: Master" in srv.log()


@pytest.mark.timeout(60)
def test_without_preload_each_worker_imports(cg, tmp_path):
    log = str(tmp_path / "imports")
    srv = cg("preload_pidlog:app", args=["-w", "2"], env={"CG_PRELOAD_LOG": log})
    deadline = time.monotonic() + 10
    while len(_importers(log)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    importers = set(_importers(log))
    assert srv.pid not in importers
    assert importers == srv.worker_pids()
    serving, importer = _answer(srv)
    assert serving == importer


@pytest.mark.timeout(60)
def test_preload_from_a_config_file(cg, tmp_path):
    """With a config file the interpreter is already up in the master."""
    log = str(tmp_path / "imports")
    conf = tmp_path / "conf.py"
    conf.write_text("preload_app = True\nworkers = 2\n")
    srv = cg("preload_pidlog:app", args=["-c", str(conf)], workers=2,
             env={"CG_PRELOAD_LOG": log})
    assert _importers(log) == [srv.pid]
    assert _answer(srv)[1] == srv.pid


def test_preload_import_error_exits_1(run_cg):
    res = run_cg(["-b", "127.0.0.1:0", "--preload", "broken_import:app"], timeout=30)
    assert res.returncode == 1, res.stderr
    assert "Traceback (most recent call last):" in res.stderr
    assert re.search(r"^ModuleNotFoundError: No module named 'cgunicorn_test_no_such_module'$",
                     res.stderr, re.M), res.stderr
    # the master failed while being built: it never started
    assert "Starting gunicorn" not in res.stderr
    assert "Booting worker" not in res.stderr


def test_preload_app_import_error_exits_1(run_cg, tmp_path):
    res = run_cg(["-b", "127.0.0.1:0", "--preload", "preload_pidlog:nope"], timeout=30,
                 env={"CG_PRELOAD_LOG": str(tmp_path / "imports")})
    assert res.returncode == 1, res.stderr
    assert ("gunicorn.errors.AppImportError: Failed to find attribute 'nope' in "
            "'preload_pidlog'.") in res.stderr
    assert "Starting gunicorn" not in res.stderr


def test_preload_runtime_error_is_an_error_line(run_cg, tmp_path):
    app = tmp_path / "rt_app.py"
    app.write_text("raise RuntimeError('no database')\n")
    res = run_cg(["-b", "127.0.0.1:0", "--preload", "rt_app:app"], cwd=str(tmp_path),
                 timeout=30)
    assert res.returncode == 1, res.stderr
    assert res.stderr == "\nError: no database\n\n"


@pytest.mark.timeout(60)
@pytest.mark.skipif(cgtest.front_end() == "console",
                    reason="the console script's master is a Python process: there is no "
                    "interpreter to leave unstarted (that it does not import the app "
                    "without --preload is test_without_preload_each_worker_imports)")
def test_master_starts_python_only_with_preload(cg, tmp_path):
    """Without --preload (and without a config file) the master stays free
    of the interpreter: several MiB smaller than a preloading one."""
    env = {"CG_PRELOAD_LOG": str(tmp_path / "imports")}
    plain = cg("preload_pidlog:app", args=["-w", "1"], env=env)
    pre = cg("preload_pidlog:app", args=["-w", "1", "--preload"], env=env)
    rss_plain = psutil.Process(plain.pid).memory_info().rss
    rss_pre = psutil.Process(pre.pid).memory_info().rss
    assert rss_plain + 4 * 2**20 < rss_pre, (rss_plain, rss_pre)


@pytest.mark.timeout(60)
def test_hup_turns_preload_on_from_a_config_file(cg, tmp_path):
    log = str(tmp_path / "imports")
    conf = tmp_path / "conf.py"
    conf.write_text("workers = 2\n")
    srv = cg("preload_pidlog:app", args=["-c", str(conf)], workers=2,
             env={"CG_PRELOAD_LOG": log})
    assert srv.pid not in _importers(log)
    conf.write_text("workers = 2\npreload_app = True\n")
    before = srv.worker_pids()
    srv.send_signal(signal.SIGHUP)
    srv.wait_workers(lambda p: len(p) == 2 and not (p & before), 15)
    assert _importers(log).count(srv.pid) == 1
    assert _answer(srv)[1] == srv.pid
    before = srv.worker_pids()
    srv.send_signal(signal.SIGHUP)
    srv.wait_workers(lambda p: len(p) == 2 and not (p & before), 15)
    assert _importers(log).count(srv.pid) == 1


@pytest.mark.timeout(60)
def test_preload_failing_on_hup_is_an_unhandled_exception(cg, tmp_path):
    """Turned on by a HUP, a preload that raises escapes Gunicorn's main loop:
    ERROR `Unhandled exception in main loop` with the traceback, quick stop,
    pidfile removed, exit 255 and no `Shutting down` line."""
    (tmp_path / "master_fails.py").write_text(
        "import os\n"
        "if os.getppid() == int(os.environ['CG_TEST_RUNNER_PID']):\n"
        "    raise ValueError('only in the master')\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '2')])\n"
        "    return [b'ok']\n")
    conf = tmp_path / "conf.py"
    conf.write_text("workers = 1\n")
    pidfile = tmp_path / "m.pid"
    srv = cg("master_fails:app", args=["-c", str(conf), "--pid", str(pidfile)],
             cwd=str(tmp_path), env={"CG_TEST_RUNNER_PID": str(os.getpid())})
    assert requests.get(srv.url("/"), timeout=10).text == "ok"
    conf.write_text("workers = 1\npreload_app = True\n")
    srv.send_signal(signal.SIGHUP)
    assert srv.wait_exit(20) == 255
    log = srv.log()
    assert re.search(r"\[ERROR\] Unhandled exception in main loop\nTraceback \(most recent call "
                     r"last\):\n(.*\n)*ValueError: only in the master$", log, re.M), log
    assert "Shutting down" not in log
    assert not pidfile.exists()
