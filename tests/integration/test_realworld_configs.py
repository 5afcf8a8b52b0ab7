"""gunicorn.conf.py files of the kinds deployed in the wild must load, serve,
reload and shut down cleanly:

  1. logging through a dictConfig (formatters, rotating/watched file
     handlers, the app's own logger) plus hooks leaving evidence
     (apps/conf_real_logging.py);
  2. bind and workers computed from multiprocessing.cpu_count() and
     os.environ (apps/conf_real_cpu.py; loading and serving are covered in
     test_config_files.py, here: HUP and a clean stop);
  3. a module loaded with `-c python:modname` (apps/conf_module_form.py;
     likewise).
"""

import os
import re
import signal
import time

import pytest
import requests

import cgtest


@pytest.fixture(autouse=True)
def env_clean(monkeypatch):
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)


read = cgtest.read_text


def wait_for(what, pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.05)


def assert_clean_stop(srv, workers, log):
    """TERM: exit 0, every worker said goodbye, the master last."""
    assert srv.stop() == 0
    text = log()
    assert len(re.findall(r"Worker exiting \(pid: \d+\)", text)) == workers, text
    assert text.rstrip().endswith("Shutting down: Master"), text
    assert "Traceback" not in text and "Error" not in text, text


@pytest.mark.timeout(90)
def test_logging_dict_and_hooks(cg, tmp_path):
    out = str(tmp_path)
    errlog, acclog = os.path.join(out, "gunicorn.error.log"), os.path.join(out, "access.log")
    evidence = os.path.join(out, "evidence.txt")
    srv = cg("logcfg_app:app", args=["-c", "conf_real_logging.py"],
             env={"CG_REAL_DIR": out}, workers=0)
    wait_for("two booted workers",
             lambda: len(re.findall(r"Booting worker with pid", read(errlog))) == 2)
    wait_for("post_fork x2", lambda: read(evidence).count("post_fork") == 2)
    for path in ("/a", "/b?q=1", "/applog"):
        r = requests.get(srv.url(path), headers={"User-Agent": "real/1"}, timeout=10)
        assert r.status_code == 200
    wait_for("three access lines", lambda: read(acclog).count("ACCESS ") == 3)
    workers = srv.worker_pids()
    assert len(workers) == 2

    # USR1: the watched/rotating handlers reopen their files
    os.rename(acclog, acclog + ".1")
    srv.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while "GET /rotated" not in read(acclog):
        assert time.monotonic() < deadline, "access log not reopened"
        assert requests.get(srv.url("/rotated"), timeout=10).status_code == 200
        time.sleep(0.1)

    assert_clean_stop(srv, 2, lambda: read(errlog))

    # the logs: error records in the verbose format, in the file and on
    # stdout; access lines in the access file; the app's logger on stdout
    verbose = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d INFO \[gunicorn\.error\] pid=%d %s$"
    assert re.search(verbose % (srv.pid, r"Starting gunicorn 27\.0\.1"), read(errlog), re.M)
    assert re.search(verbose % (srv.pid, r"ready with 2 workers"), read(errlog), re.M)
    assert re.search(verbose % (srv.pid, r"Starting gunicorn 27\.0\.1"), srv.stdout(), re.M)
    for pid in workers:
        assert re.search(verbose % (pid, r"Booting worker with pid: %d" % pid), read(errlog),
                         re.M)
    assert re.search(r'^ACCESS 127\.0\.0\.1 "GET /b\?q=1 HTTP/1\.1" 200 6 \d+\.\d{6} "real/1"$',
                     read(acclog + ".1"), re.M)
    assert re.search(r"^\S+ WARNING \[myapp\] pid=\d+ app says hello from \d+$", srv.stdout(),
                     re.M)
    assert srv.log() == ""  # nothing left for stderr

    # the hooks ran where Gunicorn runs them
    ev = read(evidence).splitlines()
    assert ev[0] == "on_starting %d" % srv.pid
    assert ev[1] == "when_ready %d" % srv.pid
    assert {int(x.split()[1]) for x in ev if x.startswith("post_fork")} == workers
    pre = [x.split() for x in ev if x.startswith("pre_request")]
    assert [p[2:] for p in pre[:3]] == [["GET", "/a"], ["GET", "/b"], ["GET", "/applog"]]
    assert all(int(p[1]) in workers for p in pre)
    post = [x.split() for x in ev if x.startswith("post_request")]
    assert len(post) == len(pre) and all(p[3] == "200" for p in post)
    assert {int(x.split()[1]) for x in ev if x.startswith("worker_exit")} == workers
    assert ev[-1] == "on_exit %d" % srv.pid


@pytest.mark.timeout(90)
def test_cpu_count_and_env_config_reloads_and_stops(cg):
    port = cgtest.free_port()
    addr = "127.0.0.1:%d" % port
    want = os.cpu_count() * 2 + 1
    srv = cg("cfgenv:app", args=["-c", "conf_real_cpu.py"], bind=[addr], cli_bind=False,
             env={"CG_CFG_BIND": addr}, workers=want)
    first = srv.worker_pids()
    assert len(first) == want
    pids = {requests.get("http://%s/" % addr, timeout=10).json()["pid"] for _ in range(20)}
    assert pids <= first
    # HUP re-runs the file (cpu_count and the environment again): a full new
    # generation of the same size, on the same address
    srv.send_signal(signal.SIGHUP)
    srv.wait_workers(lambda p: len(p) == want and not (p & first), 30, "a new generation")
    body = requests.get("http://%s/" % addr, timeout=10).json()
    assert body["CG_CFG_FOO"] == "from-conf-real-cpu"
    assert body["pid"] not in first
    assert_clean_stop(srv, 2 * want, srv.log)


@pytest.mark.timeout(90)
def test_python_module_config_reloads_and_stops(cg):
    srv = cg("cfgenv:app", args=["-c", "python:conf_module_form"], workers=1)
    first = srv.worker_pids()
    srv.send_signal(signal.SIGHUP)
    srv.wait_workers(lambda p: len(p) == 1 and not (p & first), 30, "a new worker")
    body = requests.get(srv.url(), headers={"X-Forwarded-Proto": "https"}, timeout=10).json()
    assert body["scheme"] == "https"  # the module's settings survived the reload
    assert_clean_stop(srv, 2, srv.log)
