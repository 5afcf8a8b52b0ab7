"""--request-timeout: a request still in the application after the timeout
is answered 504 (when nothing was sent yet), its Python stack is logged, a
TimeoutError is raised in it, and a request that outlives a second period
as long makes the worker ask for a successor and stop gracefully, with no
other request lost (docs/request-timeout.md)."""
import os
import re
import socket
import time

import pytest
import requests

import cgtest

# the worker kinds: (name, extra args)
KINDS = {
    "sync": ["-k", "sync"],
    "gthread1": ["-k", "gthread", "--threads", "1"],
    "gthread4": ["-k", "gthread", "--threads", "4"],
    "asgi": ["-k", "asgi"],
    "gevent": ["-k", "gevent"],  # + --pythonpath of the gevent site (below)
}
# the app's frame the stack must show, per kind and path
SLEEP_LINE = {"asgi": "await asyncio.sleep(s)",
              "gevent": "gevent.sleep(_seconds(environ, 60))"}
APPS = {"asgi": "stuck:asgi_app", "gevent": "stuck:gevent_app"}
# as test_gevent.py: greenlet's stack copies and ASan's redzones
GEVENT_ENV = ({"ASAN_OPTIONS": os.environ["ASAN_OPTIONS"]
               + ":detect_stack_use_after_return=1:replace_intrin=0"}
              if "ASAN_OPTIONS" in os.environ else None)


@pytest.fixture(scope="module")
def gevent_site(tmp_path_factory):
    return cgtest.pinned_site(tmp_path_factory.mktemp("gevent-site"), "gevent", "greenlet",
                              "zope.event", "zope.interface")


@pytest.fixture
def start(cg, request):
    """start(kind, *args): cgunicorn serving the stuck app for that kind."""
    def run(kind, *args):
        extra, env = [], None
        if kind == "gevent":
            extra = ["--pythonpath", request.getfixturevalue("gevent_site")]
            env = GEVENT_ENV
        return cg(APPS.get(kind, "stuck:app"), args=KINDS[kind] + extra + list(args), env=env)
    return run


def timed_get(port, path, timeout=30.0):
    """(seconds until the whole answer came, the raw answer)."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
        data = cgtest.read_until_close(s, timeout=timeout)
    finally:
        s.close()
    return time.monotonic() - t0, data


def status_of(data):
    return int(cgtest.parse_response(data)[0].split()[1])


def stack_logged(srv, path, line):
    """The watchdog's record of the request, with the app's frame in it."""
    return srv.wait_log(r"\[ERROR\] Request timeout \(request_timeout 2 s\): GET %s in worker "
                        r"\(pid:\d+\), answered 504:\nTraceback \(most recent call last\):\n"
                        r'(?:  File .*\n(?:    .*\n)?)*?  File ".*stuck\.py", line \d+, in \w+\n'
                        r"    %s" % (re.escape(path), re.escape(line)), timeout=15)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_stuck_request_answers_504_and_the_rest_is_served(start, kind):
    srv = start(kind, "-w", "1", "--request-timeout", "2", "--graceful-timeout", "5")
    (pid,) = srv.worker_pids()
    # other clients of the same worker all along (gthread4: on its other
    # threads; sync and gthread1 serve one at a time, so they wait)
    load = cgtest.Load(srv.port, conns=3, timeout=20).start()
    try:
        took, data = timed_get(srv.port, "/sleep?s=60")
        stack_logged(srv, "/sleep", SLEEP_LINE.get(kind, "time.sleep(_seconds(environ, 60))"))
    finally:
        load.stop()
    load.report("request_timeout %s" % kind)
    assert status_of(data) == 504, data[:200]
    assert b"Gateway Timeout" in data
    assert took <= 3.0, took
    assert load.failed == 0, load.failures
    assert load.ok > 0
    if kind in ("sync", "gthread1"):
        # the app ran on the main thread: the signal interrupted its sleep,
        # the TimeoutError ended the request, and the worker goes on
        srv.wait_log(r"TimeoutError: request_timeout", timeout=10)
    if kind != "gthread4":
        # (asgi: the cancelled task ended at once; gevent: the TimeoutError
        # thrown into the greenlet ended its sleep)
        assert srv.worker_pids() == {pid}
        assert "asking for a successor" not in srv.log()


@pytest.mark.timeout(120)
def test_pure_python_loop_in_a_pool_thread_is_interrupted(cg):
    srv = cg("stuck:app", args=["-k", "gthread", "--threads", "4", "-w", "1",
                                "--request-timeout", "2"])
    (pid,) = srv.worker_pids()
    took, data = timed_get(srv.port, "/spin?s=60")
    assert status_of(data) == 504
    assert took <= 3.0, took
    stack_logged(srv, "/spin", "while time.monotonic() < end:")
    # the asynchronous TimeoutError ends the loop: the request returns,
    # no successor is needed
    srv.wait_log(r"Error handling request GET /spin\?s=60\n(?:.*\n)*?TimeoutError", timeout=10)
    time.sleep(0.5)  # a margin past grace would be 2 s; the worker stays
    assert srv.worker_pids() == {pid}
    assert requests.get(srv.url("/"), timeout=10).text == "ok"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", ["sync", "gthread4", "asgi", "gevent"])
def test_swallowed_timeout_recycles_the_worker_gracefully(start, kind):
    if kind == "gevent" and "ASAN_OPTIONS" in os.environ:
        # A greenlet that catches the TimeoutError thrown into it and keeps
        # switching makes ASan's fake stack (which greenlets need under
        # ASan, see test_gevent.py) report its own running frames as
        # returned when it finishes: greenlet.throw() unwinds with C++
        # exceptions across stack copies. Not understood further yet.
        pytest.skip("ASan fake stack vs. a greenlet that survives a throw (see the comment)")
    swallow, graceful = "60", "3"
    srv = start(kind, "-w", "1", "--request-timeout", "2", "--graceful-timeout", graceful)
    (old,) = srv.worker_pids()
    load = cgtest.Load(srv.port, conns=3, timeout=30).start()
    try:
        took, data = timed_get(srv.port, "/swallow?s=" + swallow)
        assert status_of(data) == 504
        assert took <= 3.0, took
        srv.wait_log(r"\[WARNING\] A request is still in the application 2 s after its "
                     r"request_timeout: asking for a successor to this worker \(pid:%d\)" % old,
                     timeout=15)
        srv.wait_log(r"\[INFO\] Worker \(pid:%d\) holds a request past request_timeout: "
                     r"replacing it" % old, timeout=15)
        (new,) = srv.wait_workers(lambda p: old not in p and len(p) == 1, 60,
                                  "the successor alone")
    finally:
        load.stop()
    load.report("request_timeout recycle %s" % kind)
    if kind == "asgi":
        # known, not yet understood: about one run in three, one connection
        # the old asgi worker's loop accepted as it stopped is reset
        # (docs/request-timeout.md, "Known problems")
        assert load.failed <= 1 and set(load.failures) <= {"reset"}, load.failures
    else:
        assert load.failed == 0, load.failures
    assert load.ok > 0
    log = srv.log()
    # the successor booted before the old worker was told to stop
    decided = log.index("holds a request past request_timeout")
    assert log.index("Booting worker with pid: %d" % new) > decided
    assert "TimeoutError" not in log  # the app caught it (asgi: its CancelledError)
    assert int(requests.get(srv.url("/pid"), timeout=10).text) == new


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["sync", "gthread4", "asgi", "gevent"])
def test_off_by_default(start, kind):
    srv = start(kind, "-w", "1")
    took, data = timed_get(srv.port, "/sleep?s=3")
    assert (status_of(data), cgtest.parse_response(data)[2]) == (200, b"slept")
    assert took >= 3.0
    assert "Request timeout" not in srv.log()


@pytest.mark.timeout(60)
def test_setting(run_cg):
    res = run_cg(["--print-config", "stuck:app"])
    assert re.search(r"^request_timeout\s*=\s*0$", res.stdout, re.M), res.stdout
    res = run_cg(["--request-timeout", "-1", "--check-config", "stuck:app"])
    assert res.returncode != 0
    assert "Value must be positive: -1" in res.stderr


@pytest.mark.timeout(60)
def test_not_yet_for_other_python_worker_classes(run_cg):
    res = run_cg(["-k", "pyworkers.CgBaseWorker", "--request-timeout", "2", "--check-config",
                  "stuck:app"])
    assert res.returncode != 0
    assert ("request_timeout is not supported yet by cgunicorn's pyworkers.CgBaseWorker worker"
            in res.stderr), res.stderr
