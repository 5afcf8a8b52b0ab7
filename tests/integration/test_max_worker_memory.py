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
        srv.wait_log(r"Worker exiting \(pid: %d\)" % old, timeout=60)
    finally:
        load.stop()
    load.report("max_worker_memory")
    assert load.failed == 0, load.failures
    assert load.ok > 0
    # the old one was told to stop only once its successor had booted (the
    # first worker booted after the decision; under ASan, whose quarantine
    # grows a busy worker's memory, that one may in turn be replaced later)
    log = srv.log()
    decided = log.index("more than max_worker_memory")
    succ = int(re.search(r"Booting worker with pid: (\d+)", log[decided:]).group(1))
    assert succ != old
    assert (log.index("Booting worker with pid: %d" % succ) <
            log.index("Worker exiting (pid: %d)" % old))
    srv.wait_workers(lambda p: old not in p and len(p) >= 1, 30, "the old worker gone")
    assert requests.get(srv.url("/"), timeout=10).status_code == 200


@pytest.mark.timeout(60)
def test_setting_bounds(run_cg):
    res = run_cg(["--max-worker-memory", "-1", "--check-config", "echo:app"])
    assert res.returncode != 0
    assert "Value must be positive: -1" in res.stderr
