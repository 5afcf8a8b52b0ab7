"""--spew: Gunicorn's trace of every line Python runs, "module:lineno: line"
on stdout, in the workers (and in a master that runs Python)."""

import re

import pytest
import requests

# echo.py's first line of app(), as the trace shows it
ECHO_LINE = r'^echo:\d+:     body = environ\["wsgi\.input"\]\.read\(\)$'


@pytest.mark.parametrize("kind", [["-k", "sync"], ["-k", "gthread", "--threads", "1"]],
                         ids=["sync", "gthread1"])
def test_spew_traces_the_app(cg, kind):
    srv = cg("echo:app", args=["--spew"] + kind)
    r = requests.get(srv.url("/traced"), timeout=10)
    assert r.status_code == 200
    srv.wait_log(ECHO_LINE, source=srv.stdout, timeout=10)


def test_no_spew_no_trace(cg):
    srv = cg("echo:app")
    assert requests.get(srv.url("/"), timeout=10).status_code == 200
    srv.stop()
    assert not re.search(ECHO_LINE, srv.stdout(), re.M)


def test_spew_in_a_master_that_runs_python(cg, tmp_path):
    """With a config file the master runs Python: its hooks are traced too
    (a config file runs as the module __config__, as in Gunicorn)."""
    conf = tmp_path / "spew_conf.py"
    conf.write_text("spew = True\n\ndef when_ready(server):\n    marker = 'master-traced'\n")
    srv = cg("echo:app", args=["-c", str(conf)])
    srv.wait_log(r"^__config__:\d+:     marker = 'master-traced'$", source=srv.stdout,
                 timeout=10)
    assert requests.get(srv.url("/"), timeout=10).status_code == 200
    srv.wait_log(ECHO_LINE, source=srv.stdout, timeout=10)
