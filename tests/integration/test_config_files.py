"""Configuration files: the forms of -c, ./gunicorn.conf.py, precedence
against GUNICORN_CMD_ARGS and the command line, failures, and real-world
configs that must load and serve (Gunicorn's app/base.py rules)."""

import os
import re

import pytest
import requests

import cgtest

APPS = cgtest.APPS_DIR


def printed(res):
    """--print-config output as {name: value text}."""
    out = {}
    for line in res.stdout.splitlines():
        if " = " in line:
            k, v = line.split(" = ", 1)
            out[k.strip()] = v
    return out


def write(path, text):
    path.write_text(text)
    return str(path)


@pytest.fixture
def env_clean(monkeypatch):
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)


def test_plain_path(run_cg, tmp_path, env_clean):
    conf = write(tmp_path / "c.py", "workers = 3\ntimeout = 77\nbind = ['127.0.0.1:9']\n"
                 "not_a_setting = 5\nWORKERS = 9\n")
    res = run_cg(["-c", conf, "--print-config", "echo:app"])
    assert res.returncode == 0, res.stderr
    p = printed(res)
    assert p["workers"] == "3" and p["timeout"] == "77"
    assert p["bind"] == "['127.0.0.1:9']"
    assert p["config"] == conf
    assert "not_a_setting" not in p


def test_file_prefix(run_cg, tmp_path, env_clean):
    conf = write(tmp_path / "c.py", "workers = 4\n")
    res = run_cg(["--config", "file:" + conf, "--print-config", "echo:app"])
    assert res.returncode == 0, res.stderr
    assert printed(res)["workers"] == "4"


def test_python_module_form(run_cg, env_clean):
    res = run_cg(["-c", "python:conf_module_form", "--print-config", "echo:app"])
    assert res.returncode == 0, res.stderr
    p = printed(res)
    assert p["limit_request_fields"] == "50"
    assert p["secure_scheme_headers"] == "{'X-FORWARDED-PROTO': 'https'}"
    assert p["forwarded_allow_ips"] == "['*']"


def test_python_module_missing(run_cg, env_clean):
    res = run_cg(["-c", "python:no_such_conf_module_q", "--check-config", "echo:app"])
    assert res.returncode == 1
    assert res.stderr.endswith("\nError: No module named 'no_such_conf_module_q'\n"), res.stderr


def test_default_gunicorn_conf_py(run_cg, tmp_path, env_clean):
    # the file in the working directory is read; pythonpath from it is honoured
    write(tmp_path / "gunicorn.conf.py",
          "workers = 6\npythonpath = %r\nraw_env = ['A=1']\n" % APPS)
    res = run_cg(["--print-config", "echo:app"], cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    p = printed(res)
    assert p["workers"] == "6"
    assert p["config"] == "./gunicorn.conf.py"
    assert p["raw_env"] == "['A=1']"
    # with -c, the default file is not read
    other = write(tmp_path / "other.py", "timeout = 5\npythonpath = %r\n" % APPS)
    p = printed(run_cg(["-c", other, "--print-config", "echo:app"], cwd=str(tmp_path)))
    assert p["workers"] == "1" and p["timeout"] == "5"


def test_precedence_file_env_cli(run_cg, tmp_path, env_clean):
    conf = write(tmp_path / "c.py", "workers = 3\ntimeout = 40\nkeepalive = 7\n")
    env = {"GUNICORN_CMD_ARGS": "--workers 4 --timeout 50"}
    p = printed(run_cg(["-c", conf, "--print-config", "echo:app"], env=env))
    assert (p["workers"], p["timeout"], p["keepalive"]) == ("4", "50", "7")
    p = printed(run_cg(["-c", conf, "-w", "5", "--print-config", "echo:app"], env=env))
    assert (p["workers"], p["timeout"], p["keepalive"]) == ("5", "50", "7")
    # -c given only through GUNICORN_CMD_ARGS
    p = printed(run_cg(["--print-config", "echo:app"], env={"GUNICORN_CMD_ARGS": "-c " + conf}))
    assert (p["workers"], p["timeout"]) == ("3", "40")


@pytest.mark.parametrize("body, trace", [
    ("workers = 2\nraise RuntimeError('conf exploded')\n", "RuntimeError: conf exploded"),
    ("workers = = 2\n", "SyntaxError"),
    ("import no_such_module_in_conf\n", "ModuleNotFoundError"),
])
def test_failing_config_file(run_cg, tmp_path, env_clean, body, trace):
    conf = write(tmp_path / "bad.py", body)
    res = run_cg(["-c", conf, "echo:app"])
    assert res.returncode == 1
    assert res.stderr.startswith("Failed to read config file: %s\nTraceback" % conf), res.stderr
    assert trace in res.stderr
    assert "Booting worker" not in res.stderr


@pytest.mark.parametrize("body, name, shown, error", [
    ("workers = 'abc'\n", "workers", "abc", "invalid literal for int() with base 0: 'abc'"),
    ("daemon = 3.5\n", "daemon", "3.5", "Invalid type for casting: 3.5"),
    ("bind = ['127.0.0.1:1', 5]\n", "bind", "['127.0.0.1:1', 5]", "Not a string: 5"),
    ("secure_scheme_headers = {'X-PROTO': 1}\n", "secure_scheme_headers", "{'X-PROTO': 1}",
     "secure_scheme_headers: every key and value must be a string"),
])
def test_invalid_value_in_config_file(run_cg, tmp_path, env_clean, body, name, shown, error):
    conf = write(tmp_path / "bad.py", body)
    res = run_cg(["-c", conf, "echo:app"])
    assert res.returncode == 1
    assert res.stderr == "Invalid value for %s: %s\n\n\nError: %s\n" % (name, shown, error)


def test_non_python_extension_warns(run_cg, tmp_path, env_clean):
    conf = write(tmp_path / "settings.conf", "workers = 2\n")
    res = run_cg(["-c", conf, "--print-config", "echo:app"])
    assert res.returncode == 0, res.stderr
    assert res.stderr.startswith("!!!\n!!! WARNING: configuration file should have a valid "
                                 "Python extension.\n!!!\n\n"), res.stderr
    assert printed(res)["workers"] == "2"


def test_check_config_with_file(run_cg, tmp_path, env_clean):
    conf = write(tmp_path / "c.py", "workers = 2\n")
    res = run_cg(["-c", conf, "--check-config", "echo:app"])
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    res = run_cg(["-c", conf, "--check-config", "echo:no_such_app"])
    assert res.returncode == 1
    assert "Error while loading the application" in res.stderr


def test_unsupported_setting_from_file_refused(run_cg, tmp_path, env_clean):
    # a callable that is no class (Gunicorn calls it for one)
    conf = write(tmp_path / "c.py", "worker_class = lambda: None\n")
    res = run_cg(["-c", conf, "echo:app"])
    assert res.returncode == 1
    assert "not supported yet" in res.stderr


# ---- real-world configs that load and serve ---------------------------------

@pytest.mark.timeout(60)
def test_real_config_hooks_and_access_log(cg, env_clean):
    srv = cg("echo:app", args=["-c", "conf_real_access.py"], workers=2)
    srv.wait_log(r"Server is ready\. Spawning workers \(cfg=cfg-real-access\)")
    srv.wait_log(r"Worker spawned \(pid: \d+\)", count=2)
    r = requests.get(srv.url("/logged?x=1"), headers={"User-Agent": "cfgtest/1"}, timeout=10)
    assert r.status_code == 200
    line = srv.wait_log(r'CFGACCESS 127\.0\.0\.1 "GET /logged\?x=1 HTTP/1\.1" 200 \d+ '
                        r'pid=<\d+> ua="cfgtest/1"', source=srv.stdout)
    assert line
    assert srv.stop() == 0
    assert len(re.findall(r"Worker \d+ leaving", srv.log())) == 2


@pytest.mark.timeout(60)
def test_real_config_cpu_count_and_env_bind(cg, env_clean):
    port = cgtest.free_port()
    addr = "127.0.0.1:%d" % port
    want = os.cpu_count() * 2 + 1
    srv = cg("cfgenv:app", args=["-c", "conf_real_cpu.py"], bind=[addr], cli_bind=False,
             env={"CG_CFG_BIND": addr}, workers=want)
    assert len(srv.worker_pids()) == want
    body = requests.get("http://%s/" % addr, timeout=10).json()
    assert body["CG_CFG_FOO"] == "from-conf-real-cpu"  # raw_env from the file


@pytest.mark.timeout(60)
def test_real_config_python_module_form(cg, env_clean):
    srv = cg("cfgenv:app", args=["-c", "python:conf_module_form"], workers=1)
    body = requests.get(srv.url(), headers={"X-Forwarded-Proto": "https"}, timeout=10).json()
    assert body["scheme"] == "https"
    body = requests.get(srv.url(), timeout=10).json()
    assert body["scheme"] == "http"


@pytest.mark.timeout(60)
def test_chdir_and_pythonpath_from_file(cg, tmp_path, env_clean):
    work = tmp_path / "work"
    work.mkdir()
    conf = write(tmp_path / "c.py", "chdir = %r\npythonpath = %r\n" % (str(work), APPS))
    srv = cg("cfgenv:app", args=["-c", conf], cwd=str(tmp_path), workers=1)
    body = requests.get(srv.url(), timeout=10).json()
    assert body["cwd"] == str(work)
    assert APPS in body["sys_path"] and str(work) in body["sys_path"]
