"""Server hooks from a configuration file: which hook runs, when, in which
process, with which objects (Gunicorn's arbiter.py / workers/base.py /
workers/sync.py moments, gunicorn-behaviour.md)."""

import os
import signal

import pytest
import requests

import cgtest
from cgtest import read_records, wait_records

HOOK_CONF = os.path.join(cgtest.APPS_DIR, "conf_hooks_record.py")


def named(recs, name):
    return [r for r in recs if r["hook"] == name]


def index_of(recs, pred):
    for i, r in enumerate(recs):
        if pred(r):
            return i
    raise AssertionError("no such record: %s" % recs)


@pytest.mark.timeout(90)
def test_hooks_order_and_processes(cg, tmp_path):
    log = str(tmp_path / "hooks.jsonl")
    srv = cg("echo:app", args=["-c", HOOK_CONF], env={"CG_HOOK_LOG": log}, workers=2)
    master = srv.pid

    recs = wait_records(log, lambda r: len(named(r, "post_worker_init")) >= 2, what="boot")
    # start: on_starting, when_ready in the master, then per worker
    # pre_fork (master) -> post_fork -> post_worker_init (the worker)
    assert recs[index_of(recs, lambda r: r["hook"] == "on_starting")]["pid"] == master
    starting = named(recs, "on_starting")[0]
    assert starting["spid"] == master and starting["num_workers"] == 2
    assert starting["workers_setting"] == 2
    i_start = index_of(recs, lambda r: r["hook"] == "on_starting")
    i_ready = index_of(recs, lambda r: r["hook"] == "when_ready")
    assert i_start < i_ready
    assert recs[i_ready]["pid"] == master
    assert recs[i_ready]["bind"] == srv.bind
    first_nw = named(recs, "nworkers_changed")
    assert first_nw and first_nw[0]["new"] == 2 and first_nw[0]["old"] is None
    assert first_nw[0]["pid"] == master
    booted = set()
    for pf in named(recs, "pre_fork"):
        assert pf["pid"] == master
        i_pf = recs.index(pf)
        post = [r for r in recs[i_pf:] if r["hook"] == "post_fork" and r["age"] == pf["age"]]
        assert post, recs
        wpid = post[0]["pid"]
        assert wpid != master and post[0]["wpid"] == wpid and post[0]["ppid"] == master
        # an attribute set on the worker in pre_fork survives the fork
        assert post[0]["tag"] == "set-in-pre-fork"
        init = [r for r in recs if r["hook"] == "post_worker_init" and r["pid"] == wpid]
        assert init and recs.index(init[0]) > recs.index(post[0])
        booted.add(wpid)
    assert booted == srv.worker_pids()
    assert i_ready < index_of(recs, lambda r: r["hook"] == "pre_fork")

    # a request: pre_request then post_request, in the worker that served it
    body = requests.get(srv.url("/hooked/path?q=1"), timeout=10).json()
    recs = wait_records(log, lambda r: named(r, "post_request"), what="post_request")
    pre, post = named(recs, "pre_request")[0], named(recs, "post_request")[0]
    assert pre["pid"] == post["pid"] == body["pid"] and pre["wpid"] == body["pid"]
    assert recs.index(pre) < recs.index(post)
    assert pre["method"] == "GET" and pre["path"] == "/hooked/path" and pre["query"] == "q=1"
    assert pre["uri"] == "/hooked/path?q=1" and pre["version"] == [1, 1]
    assert ["HOST", "127.0.0.1:%d" % srv.port] in pre["headers"]
    assert post["status"] == "200 OK" and post["code"] == 200 and post["sent"] > 0
    assert post["path_info"] == "/hooked/path" and post["nr"] >= 1
    assert ["Content-Type", "application/json"] in post["headers"]

    # TTIN: nworkers_changed(3, 2) in the master, then one more worker
    srv.send_signal(signal.SIGTTIN)
    recs = wait_records(log, lambda r: len(named(r, "post_worker_init")) >= 3, what="TTIN")
    nw = [r for r in named(recs, "nworkers_changed") if r["new"] == 3]
    assert nw and nw[0]["old"] == 2 and nw[0]["pid"] == master
    assert sorted(nw[0]["live"]) == sorted(booted)
    srv.wait_workers(lambda p: len(p) == 3, 10, "3 workers")

    # a worker killed: child_exit in the master, then a replacement
    victim = sorted(srv.worker_pids())[0]
    os.kill(victim, signal.SIGKILL)
    recs = wait_records(log, lambda r: any(x["wpid"] == victim for x in named(r, "child_exit"))
                        and len(named(r, "post_worker_init")) >= 4, what="child_exit")
    ce = [r for r in named(recs, "child_exit") if r["wpid"] == victim][0]
    assert ce["pid"] == master and ce["spid"] == master
    assert not [r for r in named(recs, "worker_exit") if r["pid"] == victim]

    # HUP: on_reload in the master
    srv.send_signal(signal.SIGHUP)
    recs = wait_records(log, lambda r: named(r, "on_reload"), what="on_reload")
    assert named(recs, "on_reload")[0]["pid"] == master
    i_reload = recs.index(named(recs, "on_reload")[0])

    def fresh_booted(recs, after):
        return {r["pid"] for r in recs[after:] if r["hook"] == "post_worker_init"}

    # a new set of workers boots, the old ones retire
    recs = wait_records(log, lambda r: len(fresh_booted(r, i_reload)) >= 2, what="HUP workers")
    new_set = fresh_booted(recs, i_reload)
    srv.wait_workers(lambda p: p == new_set, 15, "only the new workers after HUP")

    # INT to one worker: worker_int then worker_exit in it, child_exit in the master
    victim = sorted(new_set)[0]
    os.kill(victim, signal.SIGINT)
    recs = wait_records(log, lambda r: any(x["wpid"] == victim for x in named(r, "child_exit")),
                        what="worker_int")
    wi = [r for r in named(recs, "worker_int") if r["pid"] == victim]
    we = [r for r in named(recs, "worker_exit") if r["pid"] == victim]
    assert wi and we and recs.index(wi[0]) < recs.index(we[0])
    assert we[0]["spid"] == master and we[0]["wpid"] == victim

    # ABRT to an idle (booted) worker: worker_abort in it
    srv.wait_workers(lambda p: len(p) == 2 and victim not in p, 15, "replacement")
    wait_records(log, lambda r: srv.worker_pids() <= {x["pid"] for x in
                                                      named(r, "post_worker_init")},
                 what="every live worker booted")
    victim = sorted(srv.worker_pids())[0]
    os.kill(victim, signal.SIGABRT)
    recs = wait_records(log, lambda r: [x for x in named(r, "worker_abort") if x["pid"] == victim],
                        what="worker_abort")

    # shutdown: worker_exit in every worker, on_exit last, in the master
    srv.wait_workers(lambda p: len(p) == 2 and victim not in p, 15, "replacement")
    wait_records(log, lambda r: srv.worker_pids() <= {x["pid"] for x in
                                                      named(r, "post_worker_init")},
                 what="every live worker booted")
    last = srv.worker_pids()
    assert srv.stop() == 0
    recs = read_records(log)
    assert recs[-1]["hook"] == "on_exit" and recs[-1]["pid"] == master
    exited = {r["pid"] for r in named(recs, "worker_exit")}
    assert last <= exited
    assert not named(recs, "pre_exec")
    assert "Traceback" not in srv.log()


@pytest.mark.timeout(60)
def test_hook_exceptions_are_logged_and_survived(cg):
    srv = cg("echo:app", args=["-c", "conf_hooks_failing.py"], workers=1)
    srv.wait_log(r"Exception in when_ready hook", timeout=5)
    srv.wait_log(r"ZeroDivisionError", timeout=5)
    r = requests.get(srv.url("/fine"), timeout=10)
    assert r.status_code == 200
    srv.wait_log(r"Exception in post_request hook\nTraceback", timeout=5)
    # pre_request raising fails the request like an app error (500)
    r = requests.get(srv.url("/boom"), timeout=10)
    assert r.status_code == 500
    srv.wait_log(r"Error handling request GET /boom\nTraceback", timeout=5)
    srv.wait_log(r"RuntimeError: pre_request refused /boom", timeout=5)
    assert srv.alive()
    assert requests.get(srv.url("/again"), timeout=10).status_code == 200


@pytest.mark.timeout(60)
def test_num_workers_assignable_from_a_hook(cg, tmp_path):
    srv = cg("echo:app", args=["-c", "conf_hooks_scale.py"], workers=3)
    srv.wait_workers(lambda p: len(p) == 3, 10, "3 workers")
    srv.wait_log(r"\[INFO\] nworkers_changed 3 1 \(scale\)", timeout=5)
    srv.wait_log(r"\[WARNING\] server pid %d workers \{\}" % srv.pid, timeout=5)


@pytest.mark.parametrize("body, message", [
    ("def on_starting():\n    pass\n", "Value must have an arity of: 1"),
    ("def pre_fork(server):\n    pass\n", "Value must have an arity of: 2"),
    ("def post_request(a):\n    pass\n", "Value must have an arity of: 4"),
    ("when_ready = 3\n", "Value is not callable: 3"),
    ("on_exit = 'nodots'\n", "Value 'nodots' is not import string."),
    ("on_exit = 'no_such_module_x.f'\n", "No module named 'no_such_module_x'"),
    ("on_exit = 'os.no_such_function'\n", "Can not load 'no_such_function' from 'os'"),
])
def test_hook_validation_errors(run_cg, tmp_path, body, message):
    conf = tmp_path / "bad.conf.py"
    conf.write_text(body)
    res = run_cg(["-c", str(conf), "--check-config", "echo:app"])
    assert res.returncode == 1, res.stderr
    name = body.split()[1].split("(")[0] if body.startswith("def") else body.split()[0]
    assert "Invalid value for %s: " % name in res.stderr
    assert "\nError: " + message in res.stderr


def test_hook_by_import_string_and_post_request_arity_2(run_cg, tmp_path):
    conf = tmp_path / "ok.conf.py"
    conf.write_text("def post_request(worker, req):\n    pass\n"
                    "when_ready = 'conf_hooks_scale.on_starting'\n")
    res = run_cg(["-c", str(conf), "--print-config", "echo:app"])
    assert res.returncode == 0, res.stderr
    values = {k.strip(): v for k, v in (l.split(" = ", 1) for l in res.stdout.splitlines()
                                         if " = " in l)}
    assert values["when_ready"] == "<on_starting()>"
    # a 2-argument post_request is wrapped to take Gunicorn's 4 arguments
    assert values["post_request"].endswith("<lambda>()>")
    assert values["on_exit"] == "<OnExit.on_exit()>"


@pytest.mark.timeout(60)
def test_hup_rereads_the_config_file(cg, tmp_path):
    conf = tmp_path / "reload.conf.py"
    conf.write_text("MARK = 'one'\n"
                    "def on_reload(server):\n"
                    "    server.log.info('reload-marker %s', MARK)\n")
    srv = cg("echo:app", args=["-c", str(conf)], workers=1)
    conf.write_text("MARK = 'two'\ntimeout = 41\n"
                    "def on_reload(server):\n"
                    "    server.log.info('reload-marker %s %s', MARK, server.cfg.timeout)\n")
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"reload-marker two 41", timeout=5)
