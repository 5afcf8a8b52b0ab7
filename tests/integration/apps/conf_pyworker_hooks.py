"""Config for test_worker_classes.py: the worker hooks append one JSON line
(hook, pid, the worker object's class and attributes) to $CG_HOOK_LOG."""

import json
import os

_LOG = os.environ["CG_HOOK_LOG"]


def _record(name, worker):
    rec = {"hook": name, "pid": os.getpid(), "cls": type(worker).__name__,
           "wpid": worker.pid, "tag": getattr(worker, "tag", None),
           "alive": getattr(worker, "alive", None)}
    with open(_LOG, "a") as f:
        f.write(json.dumps(rec) + "\n")


def pre_fork(server, worker):
    worker.tag = "set-in-pre-fork"


def post_fork(server, worker):
    worker.hook_mark = "post_fork saw me"
    _record("post_fork", worker)


def post_worker_init(worker):
    _record("post_worker_init", worker)


def worker_int(worker):
    _record("worker_int", worker)


def worker_abort(worker):
    _record("worker_abort", worker)


def worker_exit(server, worker):
    _record("worker_exit", worker)
