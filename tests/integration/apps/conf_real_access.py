"""A real-world style config: hooks that log, access log on stdout with a
custom format, a few tuned settings."""

import os

workers = 2
timeout = 30
keepalive = 2
accesslog = "-"
access_log_format = 'CFGACCESS %(h)s "%(r)s" %(s)s %(b)s pid=%(p)s ua="%(a)s"'
loglevel = "info"
proc_name = "cfg-real-access"


def when_ready(server):
    server.log.info("Server is ready. Spawning workers (cfg=%s)", server.cfg.proc_name)


def post_fork(server, worker):
    server.log.info("Worker spawned (pid: %s)", worker.pid)


def worker_exit(server, worker):
    server.log.info("Worker %s leaving, pid file %s", worker.pid, os.getpid())
