"""Fixtures for the integration tests (see cgtest.py for the helpers)."""

import os
import tempfile
import signal

import pytest

import cgtest

DEFAULT_TEST_TIMEOUT = 120

# Every test file belongs to one group, a marker (`pytest -m "core or
# settings"`). `make test` runs the whole suite against the standalone
# executable (normal and ASan), then the core, settings and arbiter groups
# again against the pip-installed console script (CGUNICORN_BIN=
# $(BUILD)/venv/bin/cgunicorn), whose master is a Python process.
GROUPS = {
    "core": "request handling: HTTP parsing, conformance, WSGI, apps and frameworks",
    "settings": "settings from every source, configuration files, logging setup",
    "arbiter": "the master: signals, hooks, process life, preload, threads in the master",
    "workers": "worker internals: gthread loop and spools, stalled clients, uploads, --reload",
    "frontends": "both front ends side by side (standalone and CGUNICORN_VENV's console script)",
    "python_api": "the programmatic API of the installed package (CGUNICORN_VENV)",
    "fleet": "hosts behind nginx and HAProxy in network namespaces (root only, else skipped)",
}
GROUP_OF_FILE = {
    "test_basic.py": "core",
    "test_dirty.py": "core",
    "test_dirty_io.py": "core",
    "test_wsgi.py": "core",
    "test_conformance.py": "core",
    "test_rfc9112.py": "core",
    "test_hostile.py": "core",
    "test_tls.py": "core",
    "test_tls_context.py": "core",
    "test_tls_pyworkers.py": "core",
    "test_tls_sni.py": "core",
    "test_tls_ktls.py": "core",
    "test_tls_suites.py": "workers",
    "test_tls_load.py": "workers",
    "test_http2_attacks.py": "workers",
    "test_odd_apps.py": "core",
    "test_frameworks.py": "core",
    "test_settings_errors.py": "settings",
    "test_settings_matrix.py": "settings",
    "test_config_files.py": "settings",
    "test_config_parity.py": "settings",
    "test_spew.py": "settings",
    "test_logconfig.py": "settings",
    "test_syslog.py": "settings",
    "test_capture_output.py": "settings",
    "test_logger_class.py": "settings",
    "test_realworld_configs.py": "settings",
    "test_statsd.py": "settings",
    "test_metrics.py": "settings",
    "test_paste.py": "settings",
    "test_uwsgi.py": "core",
    "test_arbiter_hup.py": "arbiter",
    "test_arbiter_load.py": "arbiter",
    "test_arbiter_process.py": "arbiter",
    "test_signals.py": "arbiter",
    "test_hooks.py": "arbiter",
    "test_master_threads.py": "arbiter",
    "test_preload.py": "arbiter",
    "test_gthread.py": "workers",
    "test_defer_accept.py": "workers",
    "test_gthread_reuse.py": "workers",
    "test_gthread_accept.py": "workers",
    "test_balance.py": "workers",
    "test_http2.py": "workers",
    "test_gthread_suites.py": "workers",
    "test_gevent.py": "workers",
    "test_gevent_websocket.py": "workers",
    "test_gevent_load.py": "arbiter",
    "test_tornado.py": "workers",
    "test_stalled_clients.py": "workers",
    "test_upload_memory.py": "workers",
    "test_reload.py": "workers",
    "test_asgi.py": "workers",
    "test_asgi_h2.py": "workers",
    "test_worker_classes.py": "workers",
    "test_max_worker_memory.py": "arbiter",
    "test_request_timeout.py": "arbiter",
    "test_asgi_websocket.py": "workers",
    "test_control_socket.py": "arbiter",
    "test_frontends.py": "frontends",
    "test_python_api.py": "python_api",
    "test_fleet.py": "fleet",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): fail the test after this many seconds")
    # Every master creates Gunicorn's default control socket,
    # $XDG_RUNTIME_DIR/gunicorn.ctl (else ~/.gunicorn/gunicorn.ctl): keep the
    # ones started outside cgtest.Server (which gives each server its own
    # directory) out of the user's runtime directory and home.
    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="cgtest-xdg-")
    for name, what in GROUPS.items():
        config.addinivalue_line("markers", "%s: %s" % (name, what))


def pytest_collection_modifyitems(session, config, items):
    """Mark each test with its file's group; a file nobody placed in a group
    is an error (it would silently drop out of `-m` runs)."""
    unplaced = set()
    for item in items:
        name = os.path.basename(str(item.fspath))
        group = GROUP_OF_FILE.get(name)
        if group is None:
            unplaced.add(name)
        else:
            item.add_marker(getattr(pytest.mark, group))
    if unplaced:
        raise pytest.UsageError("test files without a group (add them to GROUP_OF_FILE "
                                "in tests/integration/conftest.py): %s"
                                % ", ".join(sorted(unplaced)))


def pytest_report_header(config):
    return "cgunicorn: %s (%s front end)" % (cgtest.cg_bin(), cgtest.front_end())


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


def _check_binary(path=None):
    path = path or cgtest.cg_bin()
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
                 start=True, workers=None, cli_bind=True, binary=None):
        _check_binary(binary and os.path.join(cwd, binary))
        srv = cgtest.Server(app, args=args, bind=bind, cwd=cwd, env=env,
                            tmpdir=str(self.tmp_factory()), workers=workers,
                            cli_bind=cli_bind, binary=binary)
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
    """cg(app, args=(), bind=None, cwd=APPS_DIR, env=None, start=True,
    binary=None) starts cgunicorn (cg_bin(), or binary) serving app and returns a cgtest.Server; everything is
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
