"""worker_class naming a Python class: run in a worker the C arbiter forks,
as Gunicorn's arbiter runs one (arbiter.py spawn_worker, workers/base.py).

The classes live in apps/pyworkers.py: a blocking accept loop on
Gunicorn's base (`gunicorn.workers.base.Worker`: a real Gunicorn where one
is installed, else cgunicorn's shim) and on cgunicorn's
(`cgunicorn.workers.base.Worker`). A real third-party class, aiohttp's
GunicornWebWorker, runs apps/aio_app.py.
"""

import os
import signal
import sys
import threading

import pytest
import requests

import cgtest
from cgtest import read_records, wait_records

HOOKS = os.path.join(cgtest.APPS_DIR, "conf_pyworker_hooks.py")
CLASSES = ["pyworkers.GunicornBaseWorker", "pyworkers.CgBaseWorker"]


def named(recs, name):
    return [r for r in recs if r["hook"] == name]


def term_with_request_in_flight(srv):
    """TERM the master while the app sleeps in /slow: the response still
    arrives whole, and the master leaves with status 0."""
    result = {}

    def slow():
        result["r"] = requests.get(srv.url("/slow?s=1.5"), timeout=20)

    t = threading.Thread(target=slow)
    t.start()
    srv.wait_log(r"SLOW-START", timeout=10)
    srv.send_signal(signal.SIGTERM)
    t.join(20)
    assert result["r"].text == "slow done"
    assert srv.wait_exit(30) == 0


# ---- (a) a custom class: serving, what it is given, TERM, QUIT, timeout ----------

@pytest.mark.timeout(90)
@pytest.mark.parametrize("cls", CLASSES, ids=["gunicorn_base", "cgunicorn_base"])
def test_custom_class_serves_and_stops_gracefully(cg, cls):
    srv = cg("pyworkers:app", args=["-k", cls, "-w", "2", "--timeout", "30"])
    assert requests.get(srv.url("/"), timeout=10).text.startswith("hello (1, 0) ")
    info = requests.get(srv.url("/info"), timeout=10).json()
    assert info["class"] == cls.split(".")[1]
    assert info["pid"] == info["getpid"] and info["pid"] in srv.worker_pids()
    assert info["ppid"] == info["getppid"] == srv.pid
    assert info["age"] in (1, 2) and info["booted"] is True
    assert info["timeout"] == 15.0  # Gunicorn's arbiter passes timeout / 2
    assert info["sockets"] == ["http://127.0.0.1:%d" % srv.port]
    assert info["cfg_addr"] == [["127.0.0.1", srv.port]]
    assert info["keepalive"] == 2 and info["worker_connections"] == 1000
    assert info["is_ssl"] is False and info["settings_workers"] == 2
    assert info["max_requests"] == sys.maxsize
    # last_update() is time.time() minus the beat's age: the wall clock the
    # app reads next may stand a few microseconds behind (seen on a VM: -9 us)
    assert info["tmp_fileno"] and -0.5 < info["last_update_age"] < 5
    assert info["log_class"] == "WorkerLogger"

    # TERM: the request in flight is finished, the loop ends, status 0
    term_with_request_in_flight(srv)
    assert len(srv.wait_log(r"LOOP-END %s" % cls.split(".")[1], count=2)) == 2


@pytest.mark.timeout(90)
def test_hooks_get_the_instance_and_quit_runs_worker_int(cg, tmp_path):
    log = str(tmp_path / "hooks.jsonl")
    srv = cg("pyworkers:app", args=["-k", "pyworkers.CgBaseWorker", "-c", HOOKS],
             env={"CG_HOOK_LOG": log})
    recs = wait_records(log, lambda r: named(r, "post_worker_init"), what="boot")
    pf, pwi = named(recs, "post_fork")[0], named(recs, "post_worker_init")[0]
    # post_fork gets the instance itself (Gunicorn makes it before fork),
    # with what pre_fork set on the worker it saw
    assert pf["cls"] == pwi["cls"] == "CgBaseWorker"
    assert pf["wpid"] == pf["pid"] == pwi["pid"] and pf["tag"] == "set-in-pre-fork"
    info = requests.get(srv.url("/info"), timeout=10).json()
    assert info["hook_mark"] == "post_fork saw me"

    srv.send_signal(signal.SIGQUIT)
    assert srv.wait_exit(20) == 0
    recs = read_records(log)
    wi, we = named(recs, "worker_int"), named(recs, "worker_exit")
    assert wi and wi[0]["cls"] == "CgBaseWorker" and wi[0]["alive"] is False
    assert we and we[0]["cls"] == "CgBaseWorker" and we[0]["pid"] == pf["pid"]
    assert recs.index(wi[0]) < recs.index(we[0])


@pytest.mark.timeout(90)
@pytest.mark.parametrize("cls", CLASSES, ids=["gunicorn_base", "cgunicorn_base"])
def test_master_times_out_a_worker_that_stops_notifying(cg, tmp_path, cls):
    log = str(tmp_path / "hooks.jsonl")
    srv = cg("pyworkers:app", args=["-k", cls, "-c", HOOKS, "--timeout", "2"],
             env={"CG_HOOK_LOG": log})
    first = requests.get(srv.url("/info"), timeout=10).json()["pid"]
    assert requests.get(srv.url("/stop-notify"), timeout=10).status_code == 200
    srv.wait_log(r"WORKER TIMEOUT \(pid:%d\)" % first, timeout=20)
    recs = wait_records(log, lambda r: named(r, "worker_abort"), what="worker_abort")
    assert named(recs, "worker_abort")[0]["pid"] == first
    # a fresh worker takes over
    srv.wait_log(r"Booting worker with pid: (?!%d)\d+" % first, timeout=20)
    srv.wait_workers(lambda p: p and first not in p, 20, "replacement")
    assert requests.get(srv.url("/info"), timeout=10).json()["pid"] != first


@pytest.mark.timeout(60)
def test_max_requests_as_the_arbiter_drew_it(cg):
    srv = cg("pyworkers:app", args=["-k", "pyworkers.CgBaseWorker", "--max-requests", "2"])
    info = requests.get(srv.url("/info"), timeout=10).json()
    assert info["max_requests"] == 2
    requests.get(srv.url("/"), timeout=10)
    srv.wait_log(r"Autorestarting worker after current request\.", timeout=10)
    srv.wait_workers(lambda p: p and info["pid"] not in p, 20, "replacement")
    assert requests.get(srv.url("/info"), timeout=10).json()["pid"] != info["pid"]


LOGCONFIG = """
logconfig_dict = {
    "formatters": {"mark": {"format": "PYLOG %%(name)s %%(levelname)s %%(message)s"}},
    "handlers": {"file": {"class": "logging.FileHandler", "filename": %(path)r,
                          "formatter": "mark"}},
    "root": {"level": "INFO", "handlers": ["file"]},
    "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["file"], "propagate": False},
                "gunicorn.access": {"level": "INFO", "handlers": ["file"], "propagate": False}},
}
"""


@pytest.mark.timeout(60)
def test_logconfig_dict_takes_the_workers_records(cg, tmp_path):
    # the loggers the master configured serve the class's log, with the C
    # log's own records
    out = tmp_path / "py.log"
    conf = tmp_path / "c.py"
    conf.write_text(LOGCONFIG % {"path": str(out)})
    srv = cg("pyworkers:app", args=["-k", "pyworkers.CgBaseWorker", "-c", str(conf),
                                    "--access-logfile", "-"], workers=0)
    records = lambda: cgtest.read_text(str(out))  # noqa: E731
    srv.wait_log(r"^PYLOG gunicorn\.error INFO Booting worker with pid: ", source=records,
                 timeout=20)
    assert requests.get(srv.url("/"), timeout=10).status_code == 200
    srv.wait_log(r"^PYLOG gunicorn\.access INFO ACCESS GET /$", source=records)
    assert srv.stop() == 0
    assert "PYLOG gunicorn.error INFO LOOP-END CgBaseWorker" in records()


# ---- (b) a class object in a configuration file, (c) an entry point ----------------

CONF_CLASS = '''
import sys
sys.path.insert(0, %(apps)r)
import pyworkers
from cgunicorn.workers.base import Worker


class ConfWorker(pyworkers._Loop, Worker):
    """defined here: the server cannot import it again by name"""


worker_class = ConfWorker
'''


@pytest.mark.timeout(60)
def test_class_object_in_config_file(cg, tmp_path):
    conf = tmp_path / "c.py"
    conf.write_text(CONF_CLASS % {"apps": cgtest.APPS_DIR})
    srv = cg("pyworkers:app", args=["-c", str(conf), "-w", "2"])
    assert requests.get(srv.url("/info"), timeout=10).json()["class"] == "ConfWorker"
    # the master's TTIN/TTOU act on these workers as on any
    srv.send_signal(signal.SIGTTIN)
    srv.wait_workers(lambda p: len(p) == 3, 30, "three workers after TTIN")
    srv.send_signal(signal.SIGTTOU)
    srv.wait_workers(lambda p: len(p) == 2, 30, "two workers after TTOU")
    assert srv.stop() == 0


@pytest.mark.timeout(60)
def test_egg_entry_point(cg, tmp_path):
    info = tmp_path / "cgtest_workers-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cgtest-workers\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[gunicorn.workers]\nblocking = pyworkers:CgBaseWorker\n")
    srv = cg("pyworkers:app", args=["-k", "egg:cgtest-workers#blocking",
                                    "--pythonpath", str(tmp_path)])
    assert requests.get(srv.url("/info"), timeout=10).json()["class"] == "CgBaseWorker"


# ---- errors: Gunicorn's messages and exit statuses --------------------------------

def run_class(run_cg, cls, app="echo:app"):
    """The server with worker class cls run to its end (it should stop)."""
    return run_cg(["-b", "127.0.0.1:%d" % cgtest.free_port(), "-k", cls, app], timeout=40)


def test_unknown_class_is_gunicorns_error(run_cg):
    res = run_class(run_cg, "nosuch_mod_xyz.Worker")
    assert res.returncode == 1
    assert res.stderr.startswith(
        "\nError: class uri 'nosuch_mod_xyz.Worker' invalid or not found: \n\n[Traceback")
    assert "ModuleNotFoundError: No module named 'nosuch_mod_xyz'" in res.stderr
    assert "Booting worker" not in res.stderr


def test_unknown_entry_point_is_gunicorns_error(run_cg):
    res = run_class(run_cg, "egg:nosuch-dist#w")
    assert res.returncode == 1
    assert "Error: class uri 'egg:nosuch-dist#w' invalid or not found" in res.stderr


def test_eventlet_fails_as_in_gunicorn_26(run_cg):
    # removed from Gunicorn in 26.0: its name is no longer one of Gunicorn's
    # workers, and resolving it fails the same way there
    res = run_class(run_cg, "eventlet")
    assert res.returncode == 1
    assert "Error: class uri 'eventlet' invalid or not found" in res.stderr


@pytest.mark.parametrize("name", ["egg:gunicorn#nosuch", "gunicorn.workers.gtornado.Nosuch",
                                  "gunicorn.workers.nosuch.Worker"])
def test_gunicorns_other_workers_stay_refused(run_cg, name):
    res = run_class(run_cg, name)
    assert res.returncode == 1
    assert "Error: worker_class is not supported yet by cgunicorn" in res.stderr


@pytest.mark.timeout(60)
def test_exception_before_boot_is_exit_3(run_cg):
    res = run_class(run_cg, "pyworkers.FailingWorker", "pyworkers:app")
    assert res.returncode == 3, res.stderr
    assert "Exception in worker process" in res.stderr
    assert "ValueError: FAILING-WORKER boom" in res.stderr
    assert "Worker failed to boot." in res.stderr


@pytest.mark.timeout(60)
def test_app_import_error_is_exit_4(run_cg):
    res = run_class(run_cg, "pyworkers.CgBaseWorker", "pyworkers:nosuch")
    assert res.returncode == 4, res.stderr
    assert "Failed to find attribute 'nosuch' in 'pyworkers'." in res.stderr


# ---- (d) a real third-party class: aiohttp's GunicornWebWorker --------------------

AIOHTTP = ["aiohttp", "aiohappyeyeballs", "aiosignal", "attrs", "frozenlist", "idna",
           "multidict", "propcache", "typing-extensions", "yarl"]


@pytest.fixture(scope="module")
def aiohttp_site(tmp_path_factory):
    """aiohttp and its dependencies (pinned in tests/requirements.txt), for
    the server's --pythonpath."""
    return cgtest.pinned_site(tmp_path_factory.mktemp("aiohttp"), *AIOHTTP)


@pytest.mark.timeout(120)
def test_aiohttp_worker_serves_survives_hup_and_term(cg, aiohttp_site):
    srv = cg("aio_app:app", args=["-k", "aiohttp.GunicornWebWorker", "--pythonpath",
                                  str(aiohttp_site), "--access-logfile", "-"])
    first = srv.booted_pids()[0]
    r = requests.get(srv.url("/"), timeout=10)
    assert r.status_code == 200 and r.text == "aio %d" % first
    # aiohttp writes its access log through the logger the worker was given
    srv.wait_log(r'"GET / HTTP/1\.1" 200', source=srv.stdout, timeout=10)

    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"Booting worker with pid: (?!%d)\d+" % first, timeout=30)
    srv.wait_workers(lambda p: p and first not in p, 30, "the worker after HUP")
    r = requests.get(srv.url("/"), timeout=10)
    assert r.status_code == 200 and r.text != "aio %d" % first

    # TERM: a request in flight completes (aiohttp's graceful shutdown)
    term_with_request_in_flight(srv)
