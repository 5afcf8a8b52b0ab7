"""Fixtures for the integration tests (see cgtest.py for the helpers)."""

import os
import signal

import pytest

import cgtest

DEFAULT_TEST_TIMEOUT = 120


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): fail the test after this many seconds")


def pytest_report_header(config):
    return "cgunicorn binary: %s" % cgtest.cg_bin()


@pytest.fixture(autouse=True)
def _bounded(request):
    """Fail a test that runs longer than its timeout marker (default
    DEFAULT_TEST_TIMEOUT s) instead of hanging the whole CI job."""
    m = request.node.get_closest_marker("timeout")
    seconds = m.args[0] if m else DEFAULT_TEST_TIMEOUT

    def expired(signum, frame):
        pytest.fail("test exceeded its %ss time limit" % seconds, pytrace=True)

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _check_binary():
    path = cgtest.cg_bin()
    if not os.access(path, os.X_OK):
        pytest.fail("cgunicorn binary not found or not executable: %s "
                    "(build it first, or set CGUNICORN_BIN)" % path, pytrace=False)


class _Servers:
    """Creates Servers and, when its scope ends, stops them and fails if a
    sanitizer reported anything in their output."""

    def __init__(self, tmp_factory):
        self.tmp_factory = tmp_factory
        self.servers = []

    def __call__(self, app, args=(), bind=None, cwd=cgtest.APPS_DIR, env=None,
                 start=True, workers=None, cli_bind=True):
        _check_binary()
        srv = cgtest.Server(app, args=args, bind=bind, cwd=cwd, env=env,
                            tmpdir=str(self.tmp_factory()), workers=workers,
                            cli_bind=cli_bind)
        self.servers.append(srv)
        if start:
            srv.start()
        else:
            srv.spawn()
        return srv

    def finish(self):
        problems = []
        for srv in self.servers:
            try:
                srv.stop()
            except Exception as e:  # keep stopping the others
                problems.append("stopping %s: %r" % (srv.command(), e))
            report = srv.sanitizer_report()
            if report:
                problems.append("sanitizer report from %s (log %s):\n%s\n--- full log ---\n%s"
                                % (" ".join(srv.command()), srv.log_path,
                                   "\n".join(report), srv.log()))
        self.servers = []
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def cg(tmp_path_factory):
    """cg(app, args=(), bind=None, cwd=APPS_DIR, env=None, start=True)
    starts cgunicorn serving app and returns a cgtest.Server; everything is
    stopped after the test."""
    servers = _Servers(lambda: tmp_path_factory.mktemp("cg"))
    yield servers
    servers.finish()


@pytest.fixture(scope="module")
def cg_module(tmp_path_factory):
    """Like cg, but the servers live for the whole test module."""
    servers = _Servers(lambda: tmp_path_factory.mktemp("cgm"))
    yield servers
    servers.finish()


@pytest.fixture
def run_cg():
    """run_cg(args, cwd=APPS_DIR, timeout=30) runs cgunicorn to completion and
    fails the test if a sanitizer reported anything."""
    _check_binary()

    def run(args, **kw):
        res = cgtest.run_cg(args, **kw)
        report = cgtest.sanitizer_lines(res.stderr) + cgtest.sanitizer_lines(res.stdout)
        assert not report, "sanitizer report:\n%s\n--- stderr ---\n%s" % ("\n".join(report), res.stderr)
        return res
    return run
