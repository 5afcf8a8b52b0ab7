"""capture_output: with an error log file, fds 1 and 2 of the master and
the workers point at it, so print(), os.write() and C extensions' output
land in the error log; after USR1 (rotation) and HUP they follow the
reopened file. With errorlog "-" nothing is redirected (Gunicorn)."""

import os
import signal

import pytest
import requests

import cgtest

APP = "capture_app:app"


@pytest.fixture(autouse=True)
def env_clean(monkeypatch):
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)


def server(args, errlog):
    srv = cgtest.Server(APP, args)
    # readiness ("Booting worker") is read from the error log file
    srv.log = lambda: cgtest.read_text(errlog)
    return srv.start()


def wait_file(srv, path, pattern, count=1):
    return srv.wait_log(pattern, timeout=10, count=count,
                        source=lambda: cgtest.read_text(path))


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_output_goes_to_error_log_and_follows_usr1(tmp_path, worker):
    errlog = str(tmp_path / "error.log")
    srv = server(["--capture-output", "--error-logfile", errlog, "-k", worker], errlog)
    try:
        assert requests.get(srv.url("/?one"), timeout=10).status_code == 200
        for line in ("print-one", "fd1-one", "fd2-one"):
            wait_file(srv, errlog, "^%s$" % line)
        wpid = srv.booted_pids()[0]
        os.rename(errlog, errlog + ".1")
        srv.send_signal(signal.SIGUSR1)
        # the worker reopens when it handles USR1, a moment after the
        # signal: until then its output may still go to the old file, so
        # requests are made until one's lines appear in the new one
        for i in range(200):
            tag = "two%d" % i
            assert requests.get(srv.url("/?" + tag), timeout=10).status_code == 200
            # the app wrote its lines before it answered: they are in one
            # file or the other by now
            if "fd2-%s\n" % tag in cgtest.read_text(errlog):
                break
        else:
            raise AssertionError("no output in the reopened file:\n"
                                 + cgtest.read_text(errlog + ".1"))
        for line in ("print-" + tag, "fd1-" + tag, "fd2-" + tag):
            assert "\n%s\n" % line in "\n" + cgtest.read_text(errlog)
            assert line not in cgtest.read_text(errlog + ".1")
        assert "Handling signal: usr1" in cgtest.read_text(errlog + ".1")
        # nothing reached the process's original stdout/stderr
        assert "print-" not in srv.stdout()
        assert "fd2-" not in cgtest.read_text(srv.log_path)
        assert wpid in srv.worker_pids()
    finally:
        srv.stop()


def test_output_follows_hup(tmp_path):
    errlog = str(tmp_path / "error.log")
    srv = server(["--capture-output", "--error-logfile", errlog], errlog)
    try:
        old = srv.worker_pids()
        os.rename(errlog, errlog + ".1")
        srv.send_signal(signal.SIGHUP)
        # the new worker boots with the reopened file as its fds 1 and 2
        wait_file(srv, errlog, r"Booting worker with pid: (\d+)")
        srv.wait_workers(lambda pids: pids and not set(pids) & set(old), 15,
                         "the new generation alone")
        assert requests.get(srv.url("/?after"), timeout=10).status_code == 200
        for line in ("print-after", "fd1-after", "fd2-after"):
            wait_file(srv, errlog, "^%s$" % line)
        assert "after" not in cgtest.read_text(errlog + ".1")
    finally:
        srv.stop()


def test_errorlog_dash_redirects_nothing():
    srv = cgtest.Server(APP, ["--capture-output"]).start()
    try:
        assert requests.get(srv.url("/?dash"), timeout=10).status_code == 200
        srv.wait_log("^fd1-dash$", source=srv.stdout)
        srv.wait_log("^print-dash$", source=srv.stdout)
        srv.wait_log("^fd2-dash$")
    finally:
        srv.stop()
