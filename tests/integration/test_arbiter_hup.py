"""The master keeps handling signals and timeouts while a HUP hands over
from the old workers to the new ones.

Each test makes the hand-over last: an old worker is inside a request when
the HUP comes, so it only leaves when that request ends, and
--graceful-timeout is long (60 s). Gunicorn (and cgunicorn before) waited
for it inside the HUP handler, deaf to TERM, QUIT and worker timeouts for up
to that long; now the main loop waits, and these must act at once.

Every wait is on an event (a log line, the master's exit, a response) and
bounded; the bounds are generous for a loaded 2-core machine under ASan and
still far below the 60 s an unresponsive master would take.
"""

import re
import signal
import socket
import threading
import time

import pytest
import requests

import cgtest

GRACEFUL = "60"
PROMPT = 15.0   # "at once", for a busy ASan build: far under GRACEFUL

# An app whose /hold request says so in the error log, then runs until the
# test creates the release file (or 100 s): the test knows when the old
# worker is inside a request and decides when that request ends.
HOLD_APP = '''
import os, sys, time

def app(environ, start_response):
    if environ["PATH_INFO"] == "/hold":
        sys.stderr.write("holding in pid %d\\n" % os.getpid())
        sys.stderr.flush()
        deadline = time.monotonic() + 100
        while not os.path.exists(os.environ["HUP_RELEASE"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        body = b"released"
    elif environ["PATH_INFO"] == "/pid":
        body = str(os.getpid()).encode()
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


class Request(threading.Thread):
    """One raw GET in the background; .response holds the bytes received
    (b"" when the connection was closed without an answer)."""

    def __init__(self, srv, path):
        super().__init__(daemon=True)
        self.srv, self.path, self.response, self.error = srv, path, None, None
        self.start()

    def run(self):
        try:
            self.response = self.srv.raw(b"GET " + self.path.encode() +
                                         b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                                         timeout=120)
        except (OSError, socket.timeout) as e:
            self.error = e


def start_holding(cg, tmp_path, timeout):
    """A one-worker server whose worker is inside /hold; returns
    (server, worker pid, request, release file)."""
    (tmp_path / "holdapp.py").write_text(HOLD_APP)
    release = tmp_path / "release"
    srv = cg("holdapp:app", cwd=str(tmp_path), env={"HUP_RELEASE": str(release)},
             args=["-w", "1", "--graceful-timeout", GRACEFUL, "--timeout", timeout])
    (old,) = srv.worker_pids()
    req = Request(srv, "/hold")
    srv.wait_log(r"^holding in pid %d$" % old, timeout=10)
    return srv, old, req, release


def hup_in_progress(srv, holder, wait_boot=True):
    """Send HUP and return once the master logged it and (wait_boot) the new
    worker has booted while `holder` (the old worker, inside a request) is
    still there: the hand-over is under way and cannot end by itself."""
    booted = len(srv.booted_pids())
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"\[INFO\] Hang up: Master$", timeout=10)
    if wait_boot:
        srv.wait_log(cgtest.BOOTING_RE.pattern, count=booted + 1, timeout=cgtest.BOOT_TIMEOUT)
        assert holder in srv.worker_pids(), srv.log()


@pytest.mark.timeout(90)
def test_term_during_hup_is_handled_at_once(cg, tmp_path):
    srv, old, req, release = start_holding(cg, tmp_path, "120")
    hup_in_progress(srv, old)

    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    srv.wait_log(r"\[INFO\] Handling signal: term$", timeout=PROMPT)
    # TERM is graceful: the old worker's request still completes
    release.write_text("")
    rc = srv.wait_exit(PROMPT)
    took = time.monotonic() - t0
    assert rc == 0, srv.log()
    assert took < PROMPT, took
    req.join(10)
    assert req.response is not None and req.response.startswith(b"HTTP/1.1 200"), \
        (req.response, req.error)
    assert req.response.endswith(b"released")
    assert re.search(r"\[INFO\] Shutting down: Master$", srv.log(), re.M)


@pytest.mark.timeout(90)
def test_quit_during_hup_stops_at_once(cg, tmp_path):
    srv, old, req, _ = start_holding(cg, tmp_path, "120")
    hup_in_progress(srv, old)

    t0 = time.monotonic()
    srv.send_signal(signal.SIGQUIT)
    rc = srv.wait_exit(PROMPT)
    took = time.monotonic() - t0
    assert rc == 0, srv.log()
    assert took < PROMPT, took
    log = srv.log()
    assert re.search(r"\[INFO\] Handling signal: quit$", log, re.M), log
    assert re.search(r"\[INFO\] Shutting down: Master$", log, re.M), log
    # quick stop: the request was cut short (a 500, or just closed)
    req.join(10)
    assert not req.is_alive()
    assert req.response is None or not req.response.startswith(b"HTTP/1.1 200"), req.response


@pytest.mark.timeout(90)
def test_worker_timing_out_during_hup_is_killed(cg, tmp_path):
    srv, old, req, _ = start_holding(cg, tmp_path, "3")
    t0 = time.monotonic()
    # the old worker may time out before its successor has booted (ASan):
    # the HUP only has to be under way
    hup_in_progress(srv, old, wait_boot=False)

    # the hung old worker is aborted at --timeout, not after the hand-over
    srv.wait_log(r"\[CRITICAL\] WORKER TIMEOUT \(pid:%d\)$" % old, timeout=PROMPT)
    srv.wait_workers(lambda p: old not in p, PROMPT, "the hung worker gone")
    assert time.monotonic() - t0 < PROMPT, time.monotonic() - t0
    req.join(10)
    assert req.response is None or not req.response.startswith(b"HTTP/1.1 200"), req.response
    # the new generation serves on, and the master still answers signals
    (new,) = srv.wait_workers(lambda p: len(p) == 1 and old not in p, 10)
    assert requests.get(srv.url("/pid"), timeout=10).text == str(new)
    srv.send_signal(signal.SIGTERM)
    assert srv.wait_exit(PROMPT) == 0, srv.log()

