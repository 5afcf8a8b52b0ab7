"""Python threads started in the master (by a configuration file, a logging
handler, a hook) run while the master idles, as in Gunicorn, whose master
sleeps in select() without the GIL. cgunicorn's master holds the GIL only
while it runs Python; these tests check that such threads make progress and
that everything the master does with Python around them (hooks, logging,
HUP, TTIN/TTOU, respawn, fork, USR2 re-exec, exit) still works."""

import os
import re
import signal
import textwrap
import time

import pytest
import requests

import cgtest
from cgtest import read_records, wait_records

TICKER = """
import os, threading, time

_TICKS = os.environ["CG_TICK_FILE"]

def _tick():
    while True:
        with open(_TICKS, "a") as f:
            f.write("%d %.3f\\n" % (os.getpid(), time.time()))
        time.sleep(0.1)

threading.Thread(target=_tick, name="ticker", daemon=True).start()
"""


def write_conf(tmp_path, body, name="conf.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def ticks(path, pid=None):
    try:
        with open(path) as f:
            lines = [ln.split() for ln in f if ln.strip()]
    except FileNotFoundError:
        return []
    return [float(t) for p, t in lines if pid is None or int(p) == pid]


def assert_ticking(path, pid, seconds=1.5):
    """The master's ticker thread writes ~10 lines a second while the master
    idles in its loop."""
    before = len(ticks(path, pid))
    t0 = time.time()
    time.sleep(seconds)
    after = ticks(path, pid)
    fresh = [t for t in after if t >= t0]
    assert len(after) - before >= int(seconds * 10 * 0.5), (before, len(after))
    assert len(fresh) >= int(seconds * 10 * 0.5), fresh


def hooks_named(recs, name, pid=None):
    return [r for r in recs if r["hook"] == name and (pid is None or r["pid"] == pid)]


@pytest.mark.timeout(60)
def test_config_thread_runs_while_master_idles(cg, tmp_path):
    tick_file = str(tmp_path / "ticks")
    conf = write_conf(tmp_path, TICKER + "workers = 1\n")
    srv = cg("wsgiapp:app", args=["-c", conf, "-k", "sync"], env={"CG_TICK_FILE": tick_file},
             workers=1)
    assert_ticking(tick_file, srv.pid)
    assert len(ticks(tick_file, srv.pid)) >= 10
    # the thread did not survive into the worker (fork copies one thread)
    (worker,) = srv.worker_pids()
    assert not ticks(tick_file, worker)
    r = requests.get(srv.url("/"), timeout=10)
    assert r.status_code == 200
    assert_ticking(tick_file, srv.pid, 1.0)
    assert srv.stop() == 0
    srv.wait_log(r"\[INFO\] Shutting down: Master$")


LOGCONF = """
import atexit, logging, logging.handlers, os, queue

workers = 1
loglevel = "debug"

_queue = queue.Queue(-1)
_target = logging.FileHandler(os.environ["CG_QLOG"])
_target.setFormatter(logging.Formatter("%(process)d %(levelname)s %(message)s"))
_listener = logging.handlers.QueueListener(_queue, _target)
_listener.start()
# on exit the listener writes what is still queued, as it would in Gunicorn
atexit.register(_listener.stop)

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "q": {"class": "logging.handlers.QueueHandler", "queue": _queue},
        "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                    "formatter": "plain"},
    },
    "formatters": {"plain": {"format": "[%(process)d] [%(levelname)s] %(message)s"}},
    "loggers": {
        "gunicorn.error": {"level": "DEBUG", "handlers": ["q", "console"],
                           "propagate": False},
    },
}
"""


@pytest.mark.timeout(60)
def test_queue_listener_thread_gets_master_records(cg, tmp_path):
    qlog = str(tmp_path / "queue.log")
    conf = write_conf(tmp_path, LOGCONF)
    srv = cg("wsgiapp:app", args=["-c", conf], env={"CG_QLOG": qlog}, workers=1)
    master = srv.pid

    def qtext():
        try:
            with open(qlog) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # written by the listener thread of the master while the master idles
    srv.wait_log(r"^%d INFO Starting gunicorn" % master, timeout=5.0, source=qtext)
    srv.wait_log(r"^%d INFO Listening at: " % master, timeout=5.0, source=qtext)
    srv.wait_log(r"^%d DEBUG 1 workers$" % master, timeout=5.0, source=qtext)
    srv.send_signal(signal.SIGTTIN)
    srv.wait_log(r"^%d INFO Handling signal: ttin$" % master, timeout=5.0, source=qtext)
    srv.wait_workers(lambda p: len(p) == 2, 5.0, "2 workers after TTIN")
    srv.wait_log(r"Booting worker with pid", count=2)  # through the console handler
    srv.send_signal(signal.SIGTTOU)
    srv.wait_log(r"^%d INFO Handling signal: ttou$" % master, timeout=5.0, source=qtext)
    assert requests.get(srv.url("/"), timeout=10).status_code == 200
    assert srv.stop() == 0
    srv.wait_log(r"\[INFO\] Shutting down: Master$")
    # the atexit handler stopped the listener, which wrote the last records
    assert re.search(r"^%d INFO Shutting down: Master$" % master, qtext(), re.M), qtext()


HOOKS_CONF = TICKER + """
import json, threading

workers = 2
graceful_timeout = 5
loglevel = "debug"

_LOG = os.environ["CG_HOOK_LOG"]

def _record(name, **attrs):
    attrs.update(hook=name, pid=os.getpid())
    with open(_LOG, "a") as f:
        f.write(json.dumps(attrs) + "\\n")

def on_starting(server):
    _record("on_starting", n=server.num_workers)

def when_ready(server):
    _record("when_ready")
    def from_thread():
        time.sleep(0.2)
        server.log.info("hello from a master thread")
        try:
            server.num_workers
            _record("thread_arbiter", ok=True)
        except RuntimeError as e:
            _record("thread_arbiter", ok=False, error=str(e))
    threading.Thread(target=from_thread, daemon=True).start()

def on_reload(server):
    _record("on_reload")

def pre_fork(server, worker):
    _record("pre_fork", age=worker.age)

def post_fork(server, worker):
    _record("post_fork", age=worker.age)

def post_worker_init(worker):
    _record("post_worker_init", age=worker.age)

def nworkers_changed(server, new, old):
    _record("nworkers_changed", new=new, old=old)

def child_exit(server, worker):
    _record("child_exit", wpid=worker.pid)

def worker_exit(server, worker):
    _record("worker_exit", wpid=worker.pid)

def pre_exec(server):
    _record("pre_exec")

def on_exit(server):
    _record("on_exit")
"""


@pytest.mark.timeout(120)
def test_signals_and_hooks_with_a_master_thread(cg, tmp_path):
    tick_file = str(tmp_path / "ticks")
    hook_log = str(tmp_path / "hooks.jsonl")
    conf = write_conf(tmp_path, HOOKS_CONF)
    srv = cg("wsgiapp:app", args=["-c", conf],
             env={"CG_TICK_FILE": tick_file, "CG_HOOK_LOG": hook_log}, workers=2)
    master = srv.pid
    recs = wait_records(hook_log, lambda r: len(hooks_named(r, "post_worker_init")) >= 2,
                        what="boot hooks")
    assert hooks_named(recs, "on_starting", master) and hooks_named(recs, "when_ready", master)
    assert len(hooks_named(recs, "pre_fork", master)) == 2
    assert len([r for r in hooks_named(recs, "post_fork") if r["pid"] != master]) == 2
    assert_ticking(tick_file, master, 1.0)

    # a thread of the master may log; the arbiter's state is for its main thread
    srv.wait_log(r"\[INFO\] hello from a master thread$")
    (rec,) = wait_records(hook_log, lambda r: hooks_named(r, "thread_arbiter"),
                          what="thread_arbiter")[-1:]
    assert rec["pid"] == master and rec["ok"] is False and "main thread" in rec["error"]

    # TTIN / TTOU
    srv.send_signal(signal.SIGTTIN)
    srv.wait_workers(lambda p: len(p) == 3, 5.0, "3 workers after TTIN")
    srv.send_signal(signal.SIGTTOU)
    srv.wait_workers(lambda p: len(p) == 2, 5.0, "2 workers after TTOU")
    recs = wait_records(hook_log, lambda r: len(hooks_named(r, "child_exit", master)) >= 1,
                        what="child_exit after TTOU")
    changes = [(r["new"], r["old"]) for r in hooks_named(recs, "nworkers_changed", master)]
    assert changes[:3] == [(2, None), (3, 2), (2, 3)], changes

    # a killed worker is replaced, child_exit runs in the master
    before = srv.worker_pids()
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    srv.wait_workers(lambda p: len(p) == 2 and victim not in p, 5.0, "respawn")
    wait_records(hook_log, lambda r: any(x["wpid"] == victim
                                         for x in hooks_named(r, "child_exit", master)),
                 what="child_exit of the killed worker")
    srv.wait_log(r"Worker \(pid:%d\) was sent SIGKILL!" % victim)

    # HUP: the file is read again (its module code runs again: a second ticker),
    # on_reload runs, a new generation of workers replaces the old one
    old = srv.worker_pids()
    srv.send_signal(signal.SIGHUP)
    srv.wait_workers(lambda p: len(p) == 2 and not (p & old), 15.0, "new generation after HUP")
    wait_records(hook_log, lambda r: hooks_named(r, "on_reload", master), what="on_reload")
    srv.wait_log(r"\[INFO\] Handling signal: hup$")
    assert requests.get(srv.url("/"), timeout=10).status_code == 200
    assert_ticking(tick_file, master, 1.0)

    workers = srv.worker_pids()
    assert srv.stop() == 0
    srv.wait_log(r"\[INFO\] Shutting down: Master$")
    recs = read_records(hook_log)
    assert hooks_named(recs, "on_exit", master)
    exited = {r["pid"] for r in hooks_named(recs, "worker_exit")}
    assert workers <= exited, (workers, exited)
    # the master's last hook is on_exit
    assert [r for r in recs if r["pid"] == master][-1]["hook"] == "on_exit"


@pytest.mark.timeout(90)
def test_usr2_reexec_with_a_master_thread(cg, tmp_path):
    tick_file = str(tmp_path / "ticks")
    hook_log = str(tmp_path / "hooks.jsonl")
    conf = write_conf(tmp_path, HOOKS_CONF)
    srv = cg("wsgiapp:app", args=["-c", conf],
             env={"CG_TICK_FILE": tick_file, "CG_HOOK_LOG": hook_log}, workers=2)
    master = srv.pid
    assert_ticking(tick_file, master, 1.0)
    srv.send_signal(signal.SIGUSR2)
    new = cgtest.new_master(master, srv.log, workers=2)
    try:
        recs = wait_records(hook_log, lambda r: hooks_named(r, "pre_exec", new.pid),
                            what="pre_exec in the forked child")
        assert hooks_named(recs, "when_ready", new.pid)
        # both masters' tickers run
        assert_ticking(tick_file, new.pid, 1.0)
        assert_ticking(tick_file, master, 0.5)
        # the old master leaves, the new one is promoted and serves (not
        # srv.stop(): it would kill the old master's children, the new one too)
        srv.send_signal(signal.SIGTERM)
        assert srv.wait_exit(15) == 0
        srv.wait_log(r"Master has been promoted\.$", timeout=5.0)
        pid = int(requests.get(srv.url("/pid"), timeout=10).text)
        assert pid in [c.pid for c in new.children()]
        assert_ticking(tick_file, new.pid, 1.0)
    finally:
        new.terminate()
        new.wait(15)  # not our child: no status to see
    srv.wait_log(r"\[%d\] \[INFO\] Shutting down: Master$" % new.pid, timeout=5.0)
    assert not cgtest.sanitizer_lines(open(srv.log_path).read())
    recs = read_records(hook_log)
    assert hooks_named(recs, "on_exit", new.pid) and hooks_named(recs, "on_exit", master)
