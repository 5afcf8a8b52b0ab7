"""Config for test_hooks.py: every server hook appends one JSON line
(hook name, the pid of the process it ran in, key attributes) to the file
named by $CG_HOOK_LOG."""

import json
import os

workers = 2
loglevel = "debug"
graceful_timeout = 5

_LOG = os.environ["CG_HOOK_LOG"]


def _record(name, **attrs):
    attrs.update(hook=name, pid=os.getpid())
    with open(_LOG, "a") as f:
        f.write(json.dumps(attrs) + "\n")


def _worker(w):
    return {"wpid": w.pid, "ppid": w.ppid, "age": w.age}


def on_starting(server):
    _record("on_starting", spid=server.pid, num_workers=server.num_workers,
            workers_setting=server.cfg.workers)


def on_reload(server):
    _record("on_reload", spid=server.pid)


def when_ready(server):
    _record("when_ready", spid=server.pid, bind=server.cfg.bind)


def pre_fork(server, worker):
    worker.tag = "set-in-pre-fork"
    _record("pre_fork", spid=server.pid, age=worker.age)


def post_fork(server, worker):
    _record("post_fork", tag=getattr(worker, "tag", None), **_worker(worker))


def post_worker_init(worker):
    _record("post_worker_init", **_worker(worker))


def worker_int(worker):
    _record("worker_int", **_worker(worker))


def worker_abort(worker):
    _record("worker_abort", **_worker(worker))


def pre_exec(server):
    _record("pre_exec", spid=server.pid)


def pre_request(worker, req):
    _record("pre_request", method=req.method, path=req.path, query=req.query,
            uri=req.uri, version=list(req.version), headers=req.headers, **_worker(worker))


def post_request(worker, req, environ, resp):
    _record("post_request", path=req.path, status=resp.status, code=resp.status_code,
            sent=resp.sent, headers=resp.headers, path_info=environ.get("PATH_INFO"),
            nr=worker.nr, **_worker(worker))


def child_exit(server, worker):
    _record("child_exit", spid=server.pid, **_worker(worker))


def worker_exit(server, worker):
    _record("worker_exit", spid=server.pid, **_worker(worker))


def nworkers_changed(server, new_value, old_value):
    _record("nworkers_changed", new=new_value, old=old_value,
            live=sorted(server.WORKERS))


def on_exit(server):
    _record("on_exit", spid=server.pid)
