#!/usr/bin/python3
"""make test-pythons: the pip-installed package under every interpreter we
support (pyenv's 3.10, 3.12, 3.13 and Debian's 3.11).

For each interpreter, in a fresh temporary directory:

  1. `python -m venv v` (no system packages) and `v/bin/pip install REPO`
     (meson-python builds the wheel; build isolation fetches it from PyPI);
  2. a small package installed only in that venv (a wheel made here,
     `pip install --no-index`), and `v/bin/cgunicorn -w 2 app:app`, run by
     path with the venv not activated (no VIRTUAL_ENV, PATH without it),
     serving an app that imports it: the answer must come from a worker of
     that interpreter's version, with the venv as sys.prefix;
  3. `v/bin/python -m cgunicorn --version` is `cgunicorn (version X)`, the
     same as `v/bin/cgunicorn --version`;
  4. a smoke subset of the integration suite (SMOKE_TESTS) against
     v/bin/cgunicorn, with CGUNICORN_VENV=v;
  5. `v/bin/pip wheel --no-deps -w wheels REPO`, the wheel's tag is the
     interpreter's, and it installs (--no-index) into a second fresh venv
     whose console script serves the same app.

Environment: PYTHONS (space-separated interpreter paths; default below),
REPO (default: this checkout), KEEP=1 keeps the work directory, PYTEST_ARGS.
Exit status 1 when any step failed for any interpreter; a summary table
comes last.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.environ.get("REPO") or os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import cgtest  # noqa: E402  (make_wheel, free_port)

DEFAULT_PYTHONS = [
    "/root/.pyenv/versions/3.10.13/bin/python3",
    "/usr/bin/python3",
    "/root/.pyenv/versions/3.12.1/bin/python3",
    "/root/.pyenv/versions/3.13.0/bin/python3",
]
SMOKE_TESTS = ["test_basic.py", "test_signals.py", "test_hooks.py", "test_config_files.py",
               "test_frontends.py"]
UNACTIVATED_PATH = "/usr/local/bin:/usr/bin:/bin"
PKG = "cg_only_here"

APP = """\
import os, sys
import %s as pkg


def app(environ, start_response):
    body = "%%s|%%d.%%d|%%s|%%d" %% (pkg.VALUE, sys.version_info[0], sys.version_info[1],
                                 sys.prefix, os.getpid())
    body = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
""" % PKG


def say(msg):
    print(msg, flush=True)


def unactivated_env():
    env = dict(os.environ)
    for k in ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH", "PIP_REQUIRE_VIRTUALENV"):
        env.pop(k, None)
    env["PATH"] = UNACTIVATED_PATH
    return env


def run(cmd, timeout=900, **kw):
    say("  $ " + " ".join(shlex.quote(str(c)) for c in cmd))
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                         timeout=timeout, **kw)
    if res.returncode != 0:
        raise AssertionError("exit status %d\n--- stdout ---\n%s\n--- stderr ---\n%s"
                             % (res.returncode, res.stdout[-4000:], res.stderr[-4000:]))
    return res


def version_of(py):
    out = run([py, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).stdout
    return out.strip()


def serve_once(venv, appdir, expect_version):
    """Run venv/bin/cgunicorn unactivated, check one answer, stop it."""
    port = cgtest.free_port()
    cmd = [os.path.join(venv, "bin", "cgunicorn"), "-w", "2", "-b", "127.0.0.1:%d" % port,
           "app:app"]
    say("  $ " + " ".join(cmd) + "   (cwd %s, PATH=%s, no VIRTUAL_ENV)" % (appdir, UNACTIVATED_PATH))
    log = os.path.join(appdir, "server-%d.log" % port)
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=appdir, env=unactivated_env(), stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=10) as r:
                    body = r.read().decode()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("no answer (exit status %s)\n--- log ---\n%s"
                                         % (proc.poll(), open(log).read()))
                time.sleep(0.1)
        value, version, prefix, _pid = body.split("|")
        assert value == "installed only in this venv", body
        assert version == expect_version, (version, expect_version)
        assert os.path.realpath(prefix) == os.path.realpath(venv), (prefix, venv)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
        assert rc == 0, "exit status %d\n%s" % (rc, open(log).read())
        text = open(log).read()
        assert "Shutting down: Master" in text, text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return body


def check_interpreter(py, work, results):
    name = os.path.basename(os.path.dirname(os.path.dirname(py))) if "pyenv" in py else py
    row = {"python": name}
    results.append(row)

    def step(key, fn):
        if row.get("failed"):
            row[key] = "-"
            return None
        t0 = time.monotonic()
        try:
            out = fn()
            row[key] = "ok (%.0fs)" % (time.monotonic() - t0)
            return out
        except Exception:
            row[key] = "FAIL"
            row["failed"] = True
            say("  FAILED: %s\n%s" % (key, traceback.format_exc()))
            return None

    if not os.access(py, os.X_OK):
        say("== %s: not installed" % py)
        row["install"] = "FAIL (no %s)" % py
        row["failed"] = True
        return
    version = version_of(py)
    row["python"] = "%s (%s)" % (version, py)
    say("== Python %s: %s" % (version, py))
    venv = os.path.join(work, "v")
    appdir = os.path.join(work, "app")
    os.makedirs(appdir)
    with open(os.path.join(appdir, "app.py"), "w") as f:
        f.write(APP)
    pip = [os.path.join(venv, "bin", "python"), "-m", "pip"]

    def install():
        run([py, "-m", "venv", venv])
        run(pip + ["install", REPO])
        whl = cgtest.make_wheel(work, "cg-only-here", "1.0", {
            PKG + "/__init__.py": "VALUE = 'installed only in this venv'\n"})
        run(pip + ["install", "--no-index", "--no-deps", whl])
        # only there: the interpreter itself does not see it
        res = subprocess.run([py, "-c", "import " + PKG], capture_output=True)
        assert res.returncode != 0, "%s is visible outside the venv" % PKG

    step("pip install", install)
    step("serve unactivated", lambda: serve_once(venv, appdir, version))

    def versions():
        env = unactivated_env()
        a = run([os.path.join(venv, "bin", "python"), "-m", "cgunicorn", "--version"], env=env)
        b = run([os.path.join(venv, "bin", "cgunicorn"), "--version"], env=env)
        text = a.stdout + a.stderr
        assert re.fullmatch(r"cgunicorn \(version \d+\.\d+\.\d+\)\n", text), text
        assert text == b.stdout + b.stderr, (text, b.stdout + b.stderr)

    step("python -m cgunicorn", versions)

    def smoke():
        env = dict(os.environ, CGUNICORN_BIN=os.path.join(venv, "bin", "cgunicorn"),
                   CGUNICORN_VENV=venv)
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        cmd += [os.path.join(REPO, "tests", "integration", t) for t in SMOKE_TESTS]
        cmd += shlex.split(os.environ.get("PYTEST_ARGS", ""))
        say("  $ CGUNICORN_BIN=%s CGUNICORN_VENV=%s %s" % (env["CGUNICORN_BIN"], venv, " ".join(cmd)))
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800,
                             cwd=os.path.join(REPO, "tests", "integration"))
        summary = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
        say("  " + summary)
        if res.returncode != 0:
            raise AssertionError("pytest exit status %d\n%s\n%s"
                                 % (res.returncode, res.stdout[-8000:], res.stderr[-2000:]))
        return summary

    summary = step("smoke tests", smoke)
    if summary:
        m = re.search(r"(\d+) passed", summary)
        row["smoke tests"] += " %s passed" % (m.group(1) if m else "?")

    def wheel():
        wheels = os.path.join(work, "wheels")
        run(pip + ["wheel", "--no-deps", "-w", wheels, REPO])
        found = [w for w in os.listdir(wheels) if w.startswith("cgunicorn-")]
        assert len(found) == 1, found
        tag = "cp%s" % version.replace(".", "")
        assert re.fullmatch(r"cgunicorn-[\d.]+-%s-%s-linux_x86_64\.whl" % (tag, tag), found[0]), found
        venv2 = os.path.join(work, "w")
        run([py, "-m", "venv", venv2])
        pip2 = [os.path.join(venv2, "bin", "python"), "-m", "pip"]
        run(pip2 + ["install", "--no-index", os.path.join(wheels, found[0])])
        run(pip2 + ["install", "--no-index", "--no-deps",
                    os.path.join(work, "cg_only_here-1.0-py3-none-any.whl")])
        serve_once(venv2, appdir, version)
        return found[0]

    whl = step("pip wheel + install", wheel)
    if whl:
        row["pip wheel + install"] += " " + whl


def main():
    pythons = os.environ.get("PYTHONS", "").split() or DEFAULT_PYTHONS
    top = tempfile.mkdtemp(prefix="cg-pythons.")
    results = []
    try:
        for i, py in enumerate(pythons):
            work = os.path.join(top, "py%d" % i)
            os.makedirs(work)
            check_interpreter(py, work, results)
    finally:
        if os.environ.get("KEEP") == "1":
            say("work directory kept: %s" % top)
        else:
            shutil.rmtree(top, ignore_errors=True)
    cols = ["python", "pip install", "serve unactivated", "python -m cgunicorn", "smoke tests",
            "pip wheel + install"]
    print()
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in results:
        print("| " + " | ".join(r.get(c, "-") for c in cols) + " |")
    failed = [r["python"] for r in results if r.get("failed")]
    if failed:
        print("\nFAILED: %s" % ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
