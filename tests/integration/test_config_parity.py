"""Configuration behaviour that must match between the ways of running the
binary and Gunicorn 26.1: --check-config refuses what start-up refuses,
Python's buffered print() output survives every exit, the debug
"Current configuration:" record, server.address in hooks, and
limit_request_field_size = 0."""

import ast
import os
import re
import socket

import pytest

import cgtest


@pytest.fixture(autouse=True)
def env_clean(monkeypatch):
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)


def write(path, text):
    path.write_text(text)
    return str(path)


# ---- 1. --check-config runs start-up's refusals --------------------------------

REFUSED = [
    pytest.param(["-k", "egg:gunicorn#nosuch"], "worker_class is not supported yet", id="worker_class"),
    pytest.param(["-e", "NOEQUALS"], "Invalid value for raw_env: NOEQUALS", id="raw_env"),
    pytest.param(["-b", "127.0.0.1:notaport"], "'notaport' is not a valid port number.",
                 id="bind"),
]


@pytest.mark.parametrize("args,msg", REFUSED)
def test_check_config_fails_like_start(run_cg, args, msg):
    port = cgtest.free_port()
    base = ["-b", "127.0.0.1:%d" % port] if args[0] != "-b" else []
    start = run_cg(base + args + ["echo:app"], timeout=20)
    check = run_cg(base + args + ["--check-config", "echo:app"], timeout=20)
    assert start.returncode == 1, start.stderr
    assert msg in start.stderr
    assert check.returncode == start.returncode
    assert check.stderr == start.stderr


def test_print_config_shows_any_configuration(run_cg):
    # with --print-config too, Gunicorn's print-and-load behaviour wins
    res = run_cg(["-k", "egg:gunicorn#nosuch", "--print-config", "--check-config", "echo:app"])
    assert res.returncode == 0, res.stderr
    assert "worker_class" in res.stdout


def test_check_config_still_passes_a_good_config(run_cg, tmp_path):
    conf = write(tmp_path / "c.py", "workers = 2\nraw_env = ['A=1']\n")
    res = run_cg(["-c", conf, "--check-config", "echo:app"])
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""


# ---- 2. print() in a config file reaches a piped stdout on every exit ------------

def test_print_survives_check_config(run_cg, tmp_path):
    conf = write(tmp_path / "c.py", "print('MARK-check')\n")
    res = run_cg(["-c", conf, "--check-config", "echo:app"])
    assert res.returncode == 0, res.stderr
    assert "MARK-check" in res.stdout


def test_print_survives_invalid_setting_exit(run_cg, tmp_path):
    conf = write(tmp_path / "c.py", "print('MARK-invalid')\nworkers = -1\n")
    res = run_cg(["-c", conf, "echo:app"])
    assert res.returncode == 1
    assert "Value must be positive: -1" in res.stderr
    assert "MARK-invalid" in res.stdout


def test_print_survives_start_refusal(run_cg, tmp_path):
    conf = write(tmp_path / "c.py", "print('MARK-refused')\nworker_class = 'egg:gunicorn#nosuch'\n")
    for extra in ([], ["--check-config"]):
        res = run_cg(["-c", conf] + extra + ["echo:app"])
        assert res.returncode == 1
        assert "MARK-refused" in res.stdout, extra


def test_print_survives_app_import_failure_on_check(run_cg, tmp_path):
    conf = write(tmp_path / "c.py", "print('MARK-import')\n")
    res = run_cg(["-c", conf, "--check-config", "no_such_module_xyz:app"])
    assert res.returncode == 1
    assert "MARK-import" in res.stdout


# ---- 3. "Current configuration:" at --log-level debug ---------------------------

def _current_configuration(log):
    lines = log.splitlines()
    start = next(i for i, l in enumerate(lines) if l.endswith("[DEBUG] Current configuration:"))
    body = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        body.append(line)
    return start, lines, body


def test_current_configuration_dump(cg, tmp_path):
    conf = write(tmp_path / "c.py",
                 "def on_starting(server):\n    pass\n"
                 "timeout = 45\nraw_env = ['A=1']\n")
    srv = cg("echo:app", args=["-c", conf, "--log-level", "debug"])
    log = srv.log()
    start, lines, body = _current_configuration(log)
    # written by the master before "Starting gunicorn"
    assert "Starting gunicorn" in "\n".join(lines[start:])
    assert "Starting gunicorn" not in "\n".join(lines[:start])
    assert "[%d]" % srv.proc.pid in lines[start]
    names = [l[2:].split(": ", 1)[0] for l in body]
    assert names == cgtest.setting_names()  # every setting, in Gunicorn's definition order
    values = dict(l[2:].split(": ", 1) for l in body)
    assert values["bind"] == "['127.0.0.1:%d']" % srv.port
    assert values["timeout"] == "45"
    assert values["raw_env"] == "['A=1']"
    assert values["wsgi_app"] == "None"
    assert values["forwarded_allow_ips"] == "['127.0.0.1', '::1']"
    assert values["secure_scheme_headers"].startswith("{'X-FORWARDED-PROTOCOL': 'ssl'")
    assert re.fullmatch(r"<function on_starting at 0x[0-9a-f]+>", values["on_starting"])
    assert values["pre_fork"] == "<function Prefork.pre_fork>"


def test_no_current_configuration_at_info(cg):
    srv = cg("echo:app", args=["--log-level", "info"])
    assert "Current configuration" not in srv.log()


# ---- 4. server.address ----------------------------------------------------------

def test_server_address_in_hooks(cg, tmp_path):
    out = tmp_path / "addr.txt"
    sock = str(tmp_path / "s.sock")
    conf = write(tmp_path / "c.py",
                 "def on_starting(server):\n"
                 "    with open(%r, 'w') as f:\n"
                 "        f.write(repr(server.address) + '\\n' + repr(server.cfg.address))\n"
                 % str(out))
    port = cgtest.free_port()
    srv = cg("echo:app", args=["-c", conf],
             bind=["127.0.0.1:%d" % port, "unix:" + sock, "tcp://LOCALHOST:%d" % cgtest.free_port()])
    server_addr, cfg_addr = [ast.literal_eval(l) for l in out.read_text().splitlines()]
    assert server_addr == cfg_addr
    assert isinstance(server_addr, list)
    assert server_addr[0] == ("127.0.0.1", port)
    assert server_addr[1] == sock
    assert server_addr[2][0] == "localhost" and isinstance(server_addr[2][1], int)
    assert srv.proc.poll() is None


# ---- 8. limit_request_field_size = 0 is 8190, as Gunicorn 26.1's code has it --------

def _status(port, field_len):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "
                  + b"a" * field_len + b"\r\n\r\n")
        data = cgtest.read_until_close(s)
    return data.split(b"\r\n", 1)[0]


def test_limit_request_field_size_zero_means_default(cg):
    srv = cg("echo:app", args=["--limit-request-field_size", "0"])
    assert b" 200 " in _status(srv.port, 8100)
    assert b" 431 " in _status(srv.port, 8300)
