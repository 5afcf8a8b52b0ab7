"""logger_class: a class other than Gunicorn's default Logger is
instantiated in the master as logger_class(cfg) and takes every record --
the error log's through its critical/error/warning/info/debug/exception
methods, each request through access(resp, req, environ, request_time) in
the worker -- with reopen_files() on USR1 and setup(cfg) on HUP, as in
Gunicorn. The default class keeps the C log."""

import json
import os
import re
import signal
import time

import pytest
import requests

import cgtest

# The classes under test, in a module the server imports (--pythonpath).
# Each writes what it was given where the test reads it: LC_OUT names a
# file of JSON lines.
LOGGERS = '''
import json, os, sys, traceback
from gunicorn.glogging import Logger

OUT = os.environ.get("LC_OUT")

def _record(**kw):
    with open(OUT, "a") as f:
        f.write(json.dumps(kw) + "\\n")

class JsonAccess(Logger):
    """One JSON line per request, from Gunicorn's arguments."""
    def access(self, resp, req, environ, request_time):
        _record(kind="access", pid=os.getpid(), status=resp.status_code,
                status_line=resp.status, method=req.method, path=req.path,
                query=req.query, uri=req.uri, version=list(req.version),
                ua=dict(req.headers).get("USER-AGENT"),
                resp_headers=[list(h) for h in resp.headers],
                sent=resp.sent, response_length=resp.response_length,
                environ_path=environ["PATH_INFO"],
                environ_method=environ["REQUEST_METHOD"],
                request_time=request_time.total_seconds(),
                td=type(request_time).__name__)

class MarkedMethods(Logger):
    """Error records marked by the method that took them; exception() also
    notes the exception being handled."""
    def info(self, msg, *args, **kw):
        super().info("CLS-INFO " + msg, *args, **kw)
    def warning(self, msg, *args, **kw):
        super().warning("CLS-WARNING " + msg, *args, **kw)
    def error(self, msg, *args, **kw):
        super().error("CLS-ERROR " + msg, *args, **kw)
    def exception(self, msg, *args, **kw):
        exc = sys.exc_info()[1]
        super().exception("CLS-EXCEPTION(%s) " % type(exc).__name__ + msg, *args, **kw)
    def reopen_files(self):
        _record(kind="reopen", pid=os.getpid())
        super().reopen_files()
    def setup(self, cfg):
        _record(kind="setup", pid=os.getpid(), loglevel=cfg.loglevel,
                access_log_format=cfg.access_log_format)
        super().setup(cfg)
    def close_on_exec(self):
        _record(kind="close_on_exec", pid=os.getpid())
        super().close_on_exec()

class UpperMethod(Logger):
    """atoms() overridden: the access line shows what it returns."""
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["m"] = "M-" + atoms["m"]
        atoms["{x-cls}o"] = "from-atoms"
        return atoms
'''

APP = '''
def app(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise ValueError("boom")
    body = environ["wsgi.input"].read() or b"hello"
    start_response("201 Made", [("Content-Type", "text/plain"),
                                ("Content-Length", str(len(body)))])
    return [body]
'''

KINDS = [["-k", "sync"], ["-k", "gthread", "--threads", "4"]]


@pytest.fixture(autouse=True)
def env_clean(monkeypatch):
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)


@pytest.fixture
def mods(tmp_path):
    (tmp_path / "lc_loggers.py").write_text(LOGGERS)
    (tmp_path / "lc_app.py").write_text(APP)
    return tmp_path


def records(path, kind=None):
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    recs = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [r for r in recs if kind is None or r["kind"] == kind]


def _wait(path, kind, count, timeout=10.0):
    """Wait for count records of kind in the file at path (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        found = records(path, kind)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("%d/%d %s records in %s:\n%s"
                                 % (len(found), count, kind, path,
                                    path.read_text() if path.exists() else "(none)"))
        time.sleep(0.05)


def start(cg, mods, cls, args=(), binary=None):
    out = mods / "records.jsonl"
    srv = cg("lc_app:app", args=["--pythonpath", str(mods), "--logger-class",
                                 "lc_loggers." + cls] + list(args),
             cwd=str(mods), env={"LC_OUT": str(out)}, binary=binary)
    return srv, out


@pytest.mark.parametrize("kind", KINDS, ids=["sync", "gthread"])
def test_access_once_per_request_with_gunicorns_arguments(cg, mods, kind):
    srv, out = start(cg, mods, "JsonAccess", args=kind + ["--access-logfile", "-"])
    sess = requests.Session()
    assert sess.get(srv.url("/a?x=1&y=2"), headers={"User-Agent": "lc-test"},
                    timeout=10).status_code == 201
    r = sess.post(srv.url("/post/path"), data=b"0123456789", timeout=10)
    assert r.status_code == 201 and r.content == b"0123456789"
    assert sess.get(srv.url("/boom"), timeout=10).status_code == 500
    recs = _wait(out, "access", 3)
    srv.stop()
    recs = records(out, "access")
    assert len(recs) == 3, recs
    a, p, b = recs
    assert a["pid"] in srv.booted_pids()
    assert (a["status"], a["status_line"], a["method"], a["path"], a["query"], a["uri"]) == \
        (201, "201 Made", "GET", "/a", "x=1&y=2", "/a?x=1&y=2")
    assert a["version"] == [1, 1] and a["ua"] == "lc-test"
    assert ["Content-Length", "5"] in a["resp_headers"]
    assert a["sent"] == 5 and a["response_length"] == 5
    assert (a["environ_path"], a["environ_method"]) == ("/a", "GET")
    assert a["td"] == "timedelta" and 0 <= a["request_time"] < 10
    assert (p["method"], p["path"], p["status"], p["sent"]) == ("POST", "/post/path", 201, 10)
    assert (b["path"], b["status"], b["status_line"]) == ("/boom", 500,
                                                          "500 Internal Server Error")
    # access() overridden: the default line is not written
    assert "GET /a?x=1&y=2" not in srv.stdout()


@pytest.mark.parametrize("kind", KINDS, ids=["sync", "gthread"])
def test_overridden_atoms_change_the_access_line(cg, mods, kind):
    srv, _ = start(cg, mods, "UpperMethod",
                   args=kind + ["--access-logfile", "-", "--access-logformat",
                                "%(m)s %(U)s %(s)s %({x-cls}o)s %(b)s"])
    assert requests.get(srv.url("/atoms"), timeout=10).status_code == 201
    srv.wait_log(r"^M-GET /atoms 201 from-atoms 5$", source=srv.stdout, timeout=10)


def test_error_records_go_through_the_class(cg, mods):
    srv, out = start(cg, mods, "MarkedMethods", args=["-w", "2"])
    srv.wait_log(r"\[INFO\] CLS-INFO Starting gunicorn ", timeout=10)
    srv.wait_log(r"\[INFO\] CLS-INFO Booting worker with pid: \d+", count=2, timeout=10)
    # an exception logged in a worker reaches exception() as the one being
    # handled, with its traceback in the record
    assert requests.get(srv.url("/boom"), timeout=10).status_code == 500
    srv.wait_log(r"\[ERROR\] CLS-EXCEPTION\(ValueError\) Error handling request GET /boom\n"
                 r"Traceback \(most recent call last\):\n(.*\n)*?ValueError: boom$", timeout=10)
    # close_on_exec() in the master, then in each worker (Gunicorn's
    # init_signals and init_process)
    master = srv.proc.pid
    pids = [r["pid"] for r in _wait(out, "close_on_exec", 3)]
    assert pids[0] == master and sorted(pids[1:]) == sorted(srv.booted_pids())


def test_usr1_reopens_and_hup_sets_up_again(cg, mods):
    conf = mods / "hup_conf.py"
    conf.write_text("loglevel = 'info'\naccess_log_format = 'first %(s)s'\n")
    srv, out = start(cg, mods, "MarkedMethods", args=["-c", str(conf)])
    master = srv.proc.pid
    first = _wait(out, "setup", 1)
    assert first == [{"kind": "setup", "pid": master, "loglevel": "info",
                      "access_log_format": "first %(s)s"}]
    srv.send_signal(signal.SIGUSR1)
    reopened = _wait(out, "reopen", 2)  # the master and its worker
    assert {r["pid"] for r in reopened} == {master} | set(srv.booted_pids())
    # HUP: setup() on the live instance, with the settings read again
    conf.write_text("loglevel = 'debug'\naccess_log_format = 'second %(s)s'\n")
    srv.send_signal(signal.SIGHUP)
    setups = _wait(out, "setup", 2)
    assert setups[1] == {"kind": "setup", "pid": master, "loglevel": "debug",
                         "access_log_format": "second %(s)s"}
    # the new level applies: debug records now appear
    srv.wait_log(r"\[DEBUG\] ", timeout=10)


@pytest.mark.parametrize("name", ["gunicorn.glogging.Logger", "simple"])
def test_default_class_keeps_the_c_log(cg, mods, name):
    srv = cg("lc_app:app", args=["--pythonpath", str(mods), "--logger-class", name,
                                 "--access-logfile", "-"], cwd=str(mods))
    assert requests.get(srv.url("/d"), headers={"User-Agent": "ua"},
                        timeout=10).status_code == 201
    srv.wait_log(r'^127\.0\.0\.1 - - \[[^\]]+\] "GET /d HTTP/1\.1" 201 5 "-" "ua"$',
                 source=srv.stdout, timeout=10)


def test_class_that_cannot_be_imported(run_cg, mods):
    res = run_cg(["--logger-class", "lc_missing.Nope", "-b", "127.0.0.1:0", "lc_app:app"],
                 cwd=str(mods))
    assert res.returncode == 1
    assert "Error: class uri 'lc_missing.Nope' invalid or not found: \n\n[Traceback" \
        in res.stderr
    assert "No module named 'lc_missing'" in res.stderr


CONF_WITH_CLASS = '''
import json, os
from gunicorn import glogging

class InlineLogger(glogging.Logger):
    """Defined here, given as the object."""
    def access(self, resp, req, environ, request_time):
        with open(os.environ["LC_OUT"], "a") as f:
            f.write(json.dumps({"kind": "access", "path": req.path,
                                "status": resp.status_code}) + "\\n")

logger_class = InlineLogger
'''


@pytest.fixture(params=["standalone", "console"])
def front(request):
    """The cgunicorn command of each front end (the console script from
    CGUNICORN_VENV; skipped without it)."""
    if request.param == "standalone":
        b = cgtest.cg_bin()
        if cgtest.front_end(b) != "standalone":
            pytest.skip("CGUNICORN_BIN is not the standalone executable")
        return b
    venv = os.environ.get("CGUNICORN_VENV")
    if not venv:
        pytest.skip("CGUNICORN_VENV is not set (`make venv` builds one)")
    return os.path.join(venv, "bin", "cgunicorn")


def test_class_object_in_a_config_file(cg, mods, front, run_cg):
    conf = mods / "lc_conf.py"
    conf.write_text(CONF_WITH_CLASS)
    out = mods / "records.jsonl"
    srv = cg("lc_app:app", args=["-c", str(conf)], cwd=str(mods),
             env={"LC_OUT": str(out)}, binary=front)
    for path in ("/one", "/two"):
        assert requests.get(srv.url(path), timeout=10).status_code == 201
    recs = _wait(out, "access", 2)
    srv.stop()
    assert records(out, "access") == [{"kind": "access", "path": "/one", "status": 201},
                                      {"kind": "access", "path": "/two", "status": 201}]
    # the settings table shows the class by its dotted name
    res = run_cg(["-c", str(conf), "--print-config", "lc_app:app"], cwd=str(mods))
    assert re.search(r"^logger_class\s*= __config__\.InlineLogger$", res.stdout, re.M) \
        or re.search(r"^logger_class\s*= \S*InlineLogger$", res.stdout, re.M), res.stdout


def test_dotted_class_under_both_front_ends(cg, mods, front):
    srv, out = start(cg, mods, "JsonAccess", binary=front)
    assert requests.get(srv.url("/fe"), timeout=10).status_code == 201
    assert _wait(out, "access", 1)[0]["path"] == "/fe"


# python-json-logger, the formatter JSON log shippers use, in a
# logconfig_dict: through Python's logging set up by the server, and through
# a logger class whose setup() does the dictConfig (Gunicorn's Logger.setup)
PJL_CONF = '''
logconfig_dict = {
    # merged over CONFIG_DEFAULTS one level deep: the root's console
    # handler is replaced along with the handlers
    "root": {"level": "WARNING", "handlers": ["jerr"]},
    "formatters": {"json": {"()": "pythonjsonlogger.json.JsonFormatter",
                            "fmt": "%%(levelname)s %%(name)s %%(message)s"}},
    "handlers": {
        "jerr": {"class": "logging.FileHandler", "filename": %(err)r, "formatter": "json"},
        "jacc": {"class": "logging.FileHandler", "filename": %(acc)r, "formatter": "json"},
    },
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["jerr"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["jacc"], "propagate": False},
    },
}
'''


@pytest.fixture(scope="module")
def pjl_site(tmp_path_factory):
    """python-json-logger installed (pinned) into a folder of its own, put
    on the server's --pythonpath."""
    return cgtest.pinned_site(tmp_path_factory.mktemp("pjl"), "python-json-logger")


@pytest.mark.parametrize("cls", [None, "MarkedMethods"], ids=["logconfig_dict", "with_class"])
def test_python_json_logger_in_logconfig_dict(cg, mods, pjl_site, cls):
    err, acc = mods / "err.jsonl", mods / "acc.jsonl"
    conf = mods / "pjl_conf.py"
    conf.write_text(PJL_CONF % {"err": str(err), "acc": str(acc)})
    args = ["-c", str(conf), "--pythonpath", "%s,%s" % (mods, pjl_site), "--access-logfile", "-"]
    if cls is not None:
        args += ["--logger-class", "lc_loggers." + cls]
    srv = cg("lc_app:app", args=args, cwd=str(mods), env={"LC_OUT": str(mods / "r.jsonl")},
             workers=0)
    booted = [json.loads(line) for line in _wait_lines(err, "Booting worker")]
    assert booted[0]["levelname"] == "INFO" and booted[0]["name"] == "gunicorn.error"
    mark = "CLS-INFO " if cls else ""
    assert booted[0]["message"].startswith(mark + "Booting worker with pid: ")
    assert requests.get(srv.url("/pj"), timeout=10).status_code == 201
    line = json.loads(_wait_lines(acc, "/pj")[0])
    assert line["name"] == "gunicorn.access" and '"GET /pj HTTP/1.1" 201 5' in line["message"]


def _wait_lines(path, needle, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        found = [line for line in text.splitlines() if needle in line]
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("no line with %r in %s:\n%s" % (needle, path, text))
        time.sleep(0.05)
