"""Python logging configurations: logconfig (--log-config, fileConfig),
logconfig_dict (dictConfig over Gunicorn's CONFIG_DEFAULTS) and
logconfig_json (--log-config-json). With one of them the records of the
gunicorn.error and gunicorn.access loggers go through Python's logging, so
the user's handlers, formatters, filters and levels decide what appears
where (Gunicorn's glogging.Logger.setup)."""

import json
import os
import re
import signal
import time

import pytest
import requests

import cgtest

APPS = cgtest.APPS_DIR
APP = "logcfg_app:app"


@pytest.fixture(autouse=True)
def env_clean(monkeypatch):
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)


read = cgtest.read_text


def wait_file(path, pattern, timeout=10.0, count=1):
    """Wait until regex pattern matches count times in the file at path."""
    rx = re.compile(pattern, re.M)
    deadline = time.monotonic() + timeout
    while True:
        found = rx.findall(read(path))
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("%s never matched %r (%d/%d):\n%s"
                                 % (path, pattern, len(found), count, read(path)))
        time.sleep(0.05)


def json_records(path):
    return [json.loads(line) for line in read(path).splitlines() if line.startswith("{")]


# A configuration of the kind deployed with JSON log shippers: objects (not
# import strings) in the dict, a formatter that reads exc_info, another that
# reads the access record's atoms from record.args.
DICT_CONF = '''
import json, logging

ERR = %(err)r
ACC = %(acc)r

class JsonFormatter(logging.Formatter):
    def format(self, record):
        return json.dumps({
            "level": record.levelname, "logger": record.name, "pid": record.process,
            "msg": record.getMessage(),
            "exc": self.formatException(record.exc_info) if record.exc_info else None,
        })

class AccessFormatter(logging.Formatter):
    def format(self, record):
        a = record.args
        return "ACC status=%%s sent=%%r ua=%%s thing=%%s missing=%%s line=[%%s]" %% (
            a["s"], a["B"], a["a"], a["{X-Thing}o"], a["{nope}i"], record.getMessage())

logconfig_dict = {
    "version": 1,
    "root": {"level": "WARNING", "handlers": []},
    "formatters": {"json": {"()": JsonFormatter}, "access": {"()": AccessFormatter}},
    "handlers": {
        "errfile": {"class": "logging.FileHandler", "filename": ERR, "formatter": "json"},
        "accfile": {"class": "logging.FileHandler", "filename": ACC, "formatter": "access"},
    },
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["errfile"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["accfile"], "propagate": False},
    },
}
access_log_format = '%%(h)s "%%(r)s" %%(s)s %%(b)s "%%(a)s"'

def when_ready(server):
    server.log.info("hook says ready: %%s", server.proc_name)
'''


@pytest.mark.timeout(90)
@pytest.mark.parametrize("worker", [["-w", "2"], ["-w", "2", "-k", "gthread", "--threads", "4"]],
                         ids=["sync", "gthread"])
def test_dict_config_to_files(cg, tmp_path, worker):
    err, acc = str(tmp_path / "err.json"), str(tmp_path / "access.log")
    conf = tmp_path / "conf.py"
    conf.write_text(DICT_CONF % {"err": err, "acc": acc})
    srv = cg(APP, args=["-c", str(conf)] + worker, workers=0)
    wait_file(err, r'"Booting worker with pid: \d+"', count=2)

    r = requests.get(srv.url("/ok?x=1"), headers={"User-Agent": 'lc-test "q"'}, timeout=10)
    assert r.status_code == 200 and r.text == "ok /ok\n"
    r = requests.get(srv.url("/boom"), timeout=10)
    assert r.status_code == 500
    wait_file(acc, r"^ACC status=500", timeout=10)
    assert srv.stop() == 0

    # the access record: msg is access_log_format, args Gunicorn's SafeAtoms
    # (quotes escaped, '-' for a missing atom, {..}o looked up lower-cased)
    lines = read(acc).splitlines()
    assert lines[0] == ('ACC status=200 sent=7 ua=lc-test \\"q\\" thing=yes missing=- '
                        'line=[127.0.0.1 "GET /ok?x=1 HTTP/1.1" 200 7 "lc-test \\"q\\""]')
    assert lines[1].startswith('ACC status=500 sent=')
    assert len(lines) == 2

    recs = json_records(err)
    msgs = [r["msg"] for r in recs]
    assert all(r["logger"] == "gunicorn.error" for r in recs)
    assert "Starting gunicorn 27.0.1" in msgs
    assert "hook says ready: logcfg_app:app" in msgs
    assert any(m.startswith("Using worker: ") for m in msgs)
    assert "Shutting down: Master" in msgs
    booted = [int(m.rsplit(" ", 1)[1]) for m in msgs if m.startswith("Booting worker")]
    assert len(booted) == 2
    # records are made in the process that logs them
    assert {r["pid"] for r in recs if r["msg"].startswith("Booting worker")} == set(booted)
    exiting = [r for r in recs if r["msg"].startswith("Worker exiting")]
    assert len(exiting) == 2
    # the app's exception is a real exc_info the formatter can read
    boom = [r for r in recs if r["msg"] == "Error handling request GET /boom"]
    assert len(boom) == 1 and boom[0]["level"] == "ERROR"
    assert boom[0]["exc"].startswith("Traceback (most recent call last):")
    assert boom[0]["exc"].endswith("ValueError: kaboom from the app")
    # nothing went to the process's own stderr/stdout
    assert "Starting gunicorn" not in srv.log()
    assert srv.stdout() == ""


INI = '''[loggers]
keys=root,error,access

[handlers]
keys=errfile,accfile

[formatters]
keys=plain,acc

[logger_root]
level=WARNING
handlers=

[logger_error]
level=DEBUG
handlers=errfile
propagate=0
qualname=gunicorn.error

[logger_access]
level=INFO
handlers=accfile
propagate=0
qualname=gunicorn.access

[handler_errfile]
class=FileHandler
formatter=plain
args=('%(here)s/ini_err.log', 'a')

[handler_accfile]
class=FileHandler
formatter=acc
args=('%(here)s/ini_acc.log', 'a')

[formatter_plain]
format=INI %(levelname)s %(name)s %(message)s

[formatter_acc]
format=INIACC %(message)s
'''


@pytest.mark.timeout(90)
def test_ini_file_and_usr1_reopen(cg, tmp_path):
    (tmp_path / "log.ini").write_text(INI)
    err, acc = str(tmp_path / "ini_err.log"), str(tmp_path / "ini_acc.log")
    srv = cg(APP, args=["--log-config", str(tmp_path / "log.ini"), "-w", "2"], workers=0)
    wait_file(err, r"^INI INFO gunicorn\.error Booting worker with pid: \d+$", count=2)
    # the ini's DEBUG level wins over the default --log-level info
    assert re.search(r"^INI DEBUG gunicorn\.error Arbiter booted$", read(err), re.M)
    assert requests.get(srv.url("/one"), timeout=10).status_code == 200
    wait_file(acc, r'^INIACC 127\.0\.0\.1 - - \[.*\] "GET /one HTTP/1\.1" 200 8 "-" ')

    # logrotate: move the files away, USR1, and every process reopens them
    os.rename(acc, acc + ".1")
    os.rename(err, err + ".1")
    srv.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while "GET /two" not in read(acc):
        assert time.monotonic() < deadline, "access log not reopened:\n%s" % read(acc + ".1")
        assert requests.get(srv.url("/two"), timeout=10).status_code == 200
        time.sleep(0.1)
    # logged before the files were reopened, as in Gunicorn
    wait_file(err + ".1", r"^INI INFO gunicorn\.error Handling signal: usr1$")
    assert srv.stop() == 0
    assert "GET /one" in read(acc + ".1") and "GET /one" not in read(acc)
    assert re.search(r"^INI INFO gunicorn\.error Shutting down: Master$", read(err), re.M)


@pytest.mark.timeout(60)
def test_json_file_error_log_to_stdout(cg, tmp_path):
    acc = str(tmp_path / "json_acc.log")
    cfg = {
        "version": 1,
        "formatters": {
            "line": {"format": 'JSONCFG {"lvl": "%(levelname)s", "msg": "%(message)s"}'},
            "acc": {"format": "JSONACC %(message)s"},
        },
        "handlers": {
            "out": {"class": "logging.StreamHandler", "formatter": "line",
                    "stream": "ext://sys.stdout"},
            "acc": {"class": "logging.FileHandler", "formatter": "acc", "filename": acc},
        },
        "loggers": {
            "gunicorn.error": {"handlers": ["out"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["acc"], "level": "INFO", "propagate": False},
        },
        "root": {"level": "INFO", "handlers": []},
    }
    path = tmp_path / "log.json"
    path.write_text(json.dumps(cfg))
    srv = cg(APP, args=["--log-config-json", str(path), "-k", "gthread", "--threads", "4"],
             workers=0)
    srv.wait_log(r'^JSONCFG \{"lvl": "INFO", "msg": "Booting worker with pid: \d+"\}$',
                 source=srv.stdout)
    assert requests.get(srv.url("/j"), timeout=10).status_code == 200
    wait_file(acc, r'^JSONACC 127\.0\.0\.1 - - \[.*\] "GET /j HTTP/1\.1" 200 6 "-" ')
    assert srv.stop() == 0
    out = srv.stdout()
    assert 'JSONCFG {"lvl": "INFO", "msg": "Starting gunicorn 27.0.1"}' in out
    assert 'JSONCFG {"lvl": "INFO", "msg": "Shutting down: Master"}' in out
    assert "Starting gunicorn" not in srv.log()


@pytest.mark.timeout(60)
def test_dict_merged_over_gunicorn_defaults(cg, tmp_path):
    # Only "version": CONFIG_DEFAULTS stays in force: gunicorn.error at INFO
    # (--log-level debug is overridden) on stderr, and, since it propagates,
    # again through the root logger's console on stdout; the access records
    # are on by themselves (no --access-logfile) and show twice on stdout.
    conf = tmp_path / "conf.py"
    conf.write_text("logconfig_dict = {'version': 1}\n")
    srv = cg(APP, args=["-c", str(conf), "--log-level", "debug"])
    srv.wait_log(r"Booting worker", source=srv.stdout)
    assert requests.get(srv.url("/d"), timeout=10).status_code == 200
    access = r'^\[.*\] \[\d+\] \[INFO\] 127\.0\.0\.1 - - \[.*\] "GET /d HTTP/1\.1" 200 6 "-" '
    srv.wait_log(access, source=srv.stdout, count=2)
    assert srv.stop() == 0
    start = r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[%d\] \[INFO\] Starting gunicorn " \
            r"27\.0\.1$" % srv.pid
    assert re.search(start, srv.log(), re.M)
    assert re.search(start, srv.stdout(), re.M)
    assert "[DEBUG]" not in srv.log() + srv.stdout()
    assert len(re.findall(access, srv.stdout(), re.M)) == 2
    assert not re.search(access, srv.log(), re.M)


@pytest.mark.timeout(60)
def test_level_changed_by_the_app_at_import(cg, tmp_path):
    # Django-style: the app's import configures logging in the worker; the
    # worker's records follow the new level (here gunicorn.error to DEBUG).
    err = str(tmp_path / "err.log")
    conf = tmp_path / "conf.py"
    conf.write_text(
        "logconfig_dict = {'version': 1, 'root': {'handlers': []},\n"
        "    'formatters': {'f': {'format': '%%(levelname)s %%(process)d %%(message)s'}},\n"
        "    'handlers': {'h': {'class': 'logging.FileHandler', 'filename': %r,\n"
        "                       'formatter': 'f'}},\n"
        "    'loggers': {'gunicorn.error': {'handlers': ['h'], 'level': 'INFO',\n"
        "                                   'propagate': False}}}\n" % err)
    srv = cg(APP, args=["-c", str(conf)], env={"CG_LOGCFG_APP_DEBUG": "1"}, workers=0)
    wait_file(err, r"^INFO \d+ Booting worker")
    assert requests.get(srv.url("/lvl"), timeout=10).status_code == 200
    worker = srv.worker_pids().pop()
    wait_file(err, r"^DEBUG %d GET /lvl$" % worker)
    assert srv.stop() == 0
    # the master kept INFO: none of its debug records
    assert not re.search(r"^DEBUG %d " % srv.pid, read(err), re.M)


HUP_CONF = '''
logconfig_dict = {
    "root": {"handlers": []},
    "formatters": {"f": {"format": "%(tag)s %%(levelname)s %%(message)s"}},
    "handlers": {"h": {"class": %(cls)r, "filename": %(path)r, "formatter": "f"}},
    "loggers": {"gunicorn.error": {"handlers": ["h"], "level": "INFO", "propagate": False},
                "gunicorn.access": {"handlers": ["h"], "level": "INFO", "propagate": False}},
}
'''


@pytest.mark.timeout(90)
def test_hup_reconfigures_and_keeps_the_old_one_on_failure(cg, tmp_path):
    a, b = str(tmp_path / "a.log"), str(tmp_path / "b.log")
    conf = tmp_path / "conf.py"
    conf.write_text(HUP_CONF % {"tag": "A", "cls": "logging.FileHandler", "path": a})
    srv = cg(APP, args=["-c", str(conf)], workers=0)
    wait_file(a, r"^A INFO Booting worker")
    conf.write_text(HUP_CONF % {"tag": "B", "cls": "logging.FileHandler", "path": b})
    srv.send_signal(signal.SIGHUP)
    wait_file(b, r"^B INFO Booting worker")
    assert requests.get(srv.url("/after-hup"), timeout=10).status_code == 200
    wait_file(b, r'^B INFO 127\.0\.0\.1 .*"GET /after-hup HTTP/1\.1" 200')
    assert "after-hup" not in read(a)
    assert re.search(r"^A INFO Hang up: Master$", read(a), re.M)

    # a configuration dictConfig refuses: Gunicorn's report on stderr, the
    # previous logging stays, the server goes on
    conf.write_text(HUP_CONF % {"tag": "C", "cls": "no.such.Handler", "path": a})
    srv.send_signal(signal.SIGHUP)
    wait_file(b, r"^B ERROR reloading the logger configuration failed, keeping the previous one$")
    srv.wait_log(r"^Error: reloading the logger configuration failed, keeping the previous one$")
    assert "ValueError: Unable to configure handler 'h'" in srv.log()
    wait_file(b, r"^B INFO Booting worker", count=2)
    assert requests.get(srv.url("/still"), timeout=10).status_code == 200
    wait_file(b, r'"GET /still HTTP/1\.1" 200')
    assert srv.stop() == 0


def test_print_config_shows_the_dict(run_cg, tmp_path):
    conf = tmp_path / "conf.py"
    src = ("import logging\n"
           "logconfig_dict = {'version': 1, 'root': {'level': logging.INFO, 'handlers': ['x']},\n"
           "                  'formatters': {'f': {'()': logging.Formatter}},\n"
           "                  'handlers': {'x': {'class': 'logging.StreamHandler',\n"
           "                                     'formatter': 'f'}}, 'n': (1.5, None)}\n")
    conf.write_text(src)
    res = run_cg(["-c", str(conf), "--print-config", APP])
    assert res.returncode == 0, res.stderr
    ns = {}
    exec(src, ns)
    line = [x for x in res.stdout.splitlines() if x.startswith("logconfig_dict ")]
    assert line == ["logconfig_dict" + " " * 21 + "= " + str(ns["logconfig_dict"])]
    assert "logconfig_json                     = None" in res.stdout


@pytest.mark.parametrize("make, want", [
    (lambda d: ["--log-config", str(d / "missing.ini")],
     lambda d: "\nError: Error: log config '%s' not found\n\n" % (d / "missing.ini")),
    (lambda d: ["--log-config-json", write(d / "bad.json", "{bad")],
     lambda d: "\nError: Expecting property name enclosed in double quotes: "
               "line 1 column 2 (char 1)\n\n"),
    (lambda d: ["--log-config-json", write(d / "list.json", "[1, 2]")],
     lambda d: "\nError: cannot convert dictionary update sequence element #0 to a sequence\n\n"),
    (lambda d: ["-c", write(d / "c.py", "logconfig_dict = {'handlers': {'h': "
                                        "{'class': 'no.such.Handler'}}}\n")],
     lambda d: "\nError: Unable to configure handler 'h'\n\n"),
    (lambda d: ["-c", write(d / "c.py", "logconfig_dict = {'version': 2}\n")],
     lambda d: "\nError: Unsupported version: 2\n\n"),
    (lambda d: ["-c", write(d / "c.py", "logconfig_dict = [1]\n")],
     lambda d: "Invalid value for logconfig_dict: [1]\n\n\nError: Value is not a dictionary: [1] \n"),
], ids=["missing-ini", "bad-json", "json-not-a-dict", "dict-config-error", "bad-version",
        "dict-not-a-dict"])
def test_invalid_configurations(run_cg, tmp_path, make, want):
    res = run_cg(make(tmp_path) + ["-b", "127.0.0.1:%d" % cgtest.free_port(), APP])
    assert res.returncode == 1
    assert res.stderr == want(tmp_path)
    assert res.stdout == ""


def write(path, text):
    path.write_text(text)
    return str(path)


def test_malformed_ini_is_an_uncaught_exception(run_cg, tmp_path):
    # Gunicorn does not wrap fileConfig's errors: Python's traceback, exit 1
    ini = write(tmp_path / "bad.ini", "[loggers]\nkeys=root\n")
    res = run_cg(["--log-config", ini, "-b", "127.0.0.1:%d" % cgtest.free_port(), APP])
    assert res.returncode == 1
    assert res.stderr.startswith("Traceback (most recent call last):\n"), res.stderr
    assert res.stderr.endswith("\nKeyError: 'formatters'\n")


@pytest.mark.timeout(60)
def test_missing_json_file_is_ignored(cg, tmp_path):
    # Gunicorn only applies the JSON file when it exists; its own handlers
    # stay, and with no accesslog the access records have nowhere to go
    srv = cg(APP, args=["--log-config-json", str(tmp_path / "absent.json")])
    assert requests.get(srv.url("/m"), timeout=10).status_code == 200
    srv.wait_log(r"^\[.*\] \[\d+\] \[INFO\] Booting worker with pid: \d+$")
    assert srv.stop() == 0
    assert srv.stdout() == ""
    assert re.search(r"\[INFO\] Shutting down: Master$", srv.log(), re.M)
