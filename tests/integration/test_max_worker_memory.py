"""--max-worker-memory: a worker past the limit is replaced, its successor
booted first, with no request lost."""
import re

import pytest
import requests

import cgtest


@pytest.mark.timeout(120)
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_worker_over_the_limit_is_replaced_without_failures(cg, worker):
    srv = cg("memhog:app", args=["-k", worker, "-w", "1", "--max-worker-memory", "120"])
    (old,) = srv.worker_pids()
    load = cgtest.Load(srv.port, conns=8).start()
    try:
        assert int(requests.get(srv.url("/grow?mb=160"), timeout=30).text) == old
        srv.wait_log(r"\[INFO\] Worker \(pid:%d\) uses \d+ MiB, more than max_worker_memory "
                     r"120 MiB: replacing it" % old, timeout=30)
        new = srv.wait_workers(lambda p: len(p) == 1 and old not in p, 60, "the successor alone")
        srv.wait_log(r"Worker exiting \(pid: %d\)" % old, timeout=30)
    finally:
        load.stop()
    load.report("max_worker_memory")
    assert load.failed == 0, load.failures
    assert load.ok > 0
    # the old one was told to stop only once its successor had booted
    log = srv.log()
    (succ,) = new
    booted = log.index("Booting worker with pid: %d" % succ)
    assert booted < log.index("Worker exiting (pid: %d)" % old)
    assert int(requests.get(srv.url("/"), timeout=10).text) == succ
    # nothing else was replaced: the successor is small again
    assert len(re.findall(r"more than max_worker_memory", log)) == 1


@pytest.mark.timeout(60)
def test_setting_bounds(run_cg):
    res = run_cg(["--max-worker-memory", "-1", "--check-config", "echo:app"])
    assert res.returncode != 0
    assert "Value must be positive: -1" in res.stderr
