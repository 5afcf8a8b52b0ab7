"""``gunicorn.workers.base.Worker`` for worker classes written in Python.

A ``worker_class`` that names a Python class (``pkg.mod.Class``,
``egg:dist#name``, or the class object itself) runs in a worker process the
C arbiter forks, as Gunicorn's arbiter runs one: the class is made with
``(age, ppid, sockets, app, timeout, cfg, log)``, ``post_fork`` runs, then
``init_process()``. This base class gives a subclass what Gunicorn's gives:
the attributes, ``notify()`` (which here beats the heartbeat the C master
watches, a word of shared memory rather than a file), ``init_process()``
in Gunicorn's order, the signal handlers, ``load_wsgi()`` and
``handle_error()``; the subclass writes ``run()``.

Classes built on a real Gunicorn's ``Worker`` (when Gunicorn is installed)
run too: the server gives them the same arguments, and replaces their
``tmp`` file with this module's ``WorkerTmp`` so that their ``notify()``
reaches the master.
"""
import io
import os
import random
import signal
import sys
import threading
import time
import traceback

from cgunicorn import _core, util


class WorkerTmp:
    """Gunicorn's WorkerTmp interface over the worker's heartbeat.

    ``notify()`` tells the master the worker is alive; ``last_update()`` is
    the time (``time.time()``) of the last notify; ``fileno()`` is a
    descriptor for code that marks it close-on-exec or passes it around
    (``/dev/null``: the heartbeat is no file); ``close()`` closes it."""

    def __init__(self, cfg=None):
        self._fd = None
        self._last = time.time()

    def notify(self):
        self._last = time.time()
        _core._worker_notify()

    def last_update(self):
        age = _core._worker_heartbeat_age()
        return self._last if age is None else time.time() - age

    def fileno(self):
        if self._fd is None:
            self._fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        return self._fd

    def close(self):
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class Reloader(threading.Thread):
    """--reload for Python worker classes: every ``interval`` seconds,
    compare the modification times of the loaded modules' files and of
    ``extra_files`` with what they were, and call ``callback(path)`` for a
    changed one. (Gunicorn's "poll" engine; "inotify" polls too here.)"""

    def __init__(self, extra_files=None, interval=1, callback=None):
        super().__init__(name="cgunicorn-reloader", daemon=True)
        self._extra_files = set(extra_files or ())
        self._interval = interval
        self._callback = callback

    def add_extra_file(self, filename):
        self._extra_files.add(filename)

    def get_files(self):
        files = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
        files = [f[:-1] if f.endswith(".pyc") else f for f in files if f]
        return sorted(set(files) | self._extra_files)

    def run(self):
        mtimes = {}
        while True:
            for filename in self.get_files():
                try:
                    mtime = os.stat(filename).st_mtime
                except OSError:
                    continue
                old = mtimes.setdefault(filename, mtime)
                if mtime > old and self._callback is not None:
                    self._callback(filename)
            time.sleep(self._interval)


class Worker:
    """The base of a Python worker class (see the module's doc)."""

    SIGNALS = [getattr(signal, "SIG%s" % x)
               for x in "ABRT HUP QUIT INT TERM USR1 USR2 WINCH CHLD".split()]

    PIPE = []

    def __init__(self, age, ppid, sockets, app, timeout, cfg, log):
        """Called before the worker runs anything of its own: keep
        process-wide changes for init_process()."""
        self.age = age
        self.pid = "[booting]"
        self.ppid = ppid
        self.sockets = sockets
        self.app = app
        self.timeout = timeout
        self.cfg = cfg
        self.booted = False
        self.aborted = False
        self.reloader = None
        self.nr = 0
        # the server replaces this with the value its arbiter drew (the
        # same rule), so the master's and the worker's agree
        if cfg.max_requests > 0:
            self.max_requests = cfg.max_requests + random.randint(0, cfg.max_requests_jitter)
        else:
            self.max_requests = sys.maxsize
        self.alive = True
        self.log = log
        self.tmp = WorkerTmp(cfg)

    def __str__(self):
        return "<Worker %s>" % self.pid

    def notify(self):
        """Tell the master this worker is alive. A subclass must call it
        at least once every ``self.timeout`` seconds, or the master kills
        the worker (SIGABRT, then SIGKILL) when --timeout has passed."""
        self.tmp.notify()

    def run(self):
        """The worker's main loop (a subclass writes it)."""
        raise NotImplementedError()

    def init_process(self):
        """Prepare the process, load the app and run(). A subclass that
        overrides it ends with ``super().init_process()``."""
        # raw_env (the master applied it already; a subclass may read
        # cfg.env and expect os.environ to agree)
        if self.cfg.env:
            os.environ.update(self.cfg.env)
        # --user/--group were applied by the server before this call
        # (Gunicorn's set_owner_process), with initgroups
        random.seed(os.urandom(64))

        # for waking ourselves up (signal.set_wakeup_fd, the reloader)
        self.PIPE = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        for s in self.sockets:
            os.set_inheritable(s.fileno(), False)
        os.set_inheritable(self.tmp.fileno(), False)
        self.wait_fds = self.sockets + [self.PIPE[0]]

        if hasattr(self.log, "close_on_exec"):
            self.log.close_on_exec()

        self.init_signals()

        if self.cfg.reload:
            def changed(fname):
                self.log.info("Worker reloading: %s modified", fname)
                self.alive = False
                os.write(self.PIPE[1], b"1")
                self.cfg.worker_int(self)
                time.sleep(0.1)
                sys.exit(0)

            self.log.warning("Reloader is on. Use in development only!")
            self.reloader = Reloader(extra_files=self.cfg.reload_extra_files, callback=changed)

        self.load_wsgi()
        if self.reloader:
            self.reloader.start()

        self.cfg.post_worker_init(self)

        self.booted = True
        self.run()

    def load_wsgi(self):
        """self.wsgi = the application's callable. Under --reload a
        SyntaxError does not end the worker: the file is watched and every
        request gets the traceback as a 500 page."""
        try:
            self.wsgi = self.app.wsgi()
        except SyntaxError as e:
            if not self.cfg.reload:
                raise
            self.log.exception(e)
            if self.reloader is not None and e.filename is not None:
                self.reloader.add_extra_file(e.filename)
            with io.StringIO() as tb_string:
                traceback.print_exception(e, file=tb_string)
                self.wsgi = util.make_fail_app(tb_string.getvalue())

    def init_signals(self):
        """QUIT/INT leave at once, TERM ends the loop (self.alive), USR1
        reopens the logs, ABRT (the master's timeout) leaves with status 1;
        TERM and USR1 do not interrupt a system call."""
        for s in self.SIGNALS:
            signal.signal(s, signal.SIG_DFL)
        signal.signal(signal.SIGQUIT, self.handle_quit)
        signal.signal(signal.SIGTERM, self.handle_exit)
        signal.signal(signal.SIGINT, self.handle_quit)
        signal.signal(signal.SIGWINCH, self.handle_winch)
        signal.signal(signal.SIGUSR1, self.handle_usr1)
        signal.signal(signal.SIGABRT, self.handle_abort)
        signal.siginterrupt(signal.SIGTERM, False)
        signal.siginterrupt(signal.SIGUSR1, False)
        if hasattr(signal, "set_wakeup_fd"):
            signal.set_wakeup_fd(self.PIPE[1])

    def handle_usr1(self, sig, frame):
        self.log.reopen_files()

    def handle_exit(self, sig, frame):
        self.alive = False

    def handle_quit(self, sig, frame):
        self.alive = False
        self.cfg.worker_int(self)
        time.sleep(0.1)
        sys.exit(0)

    def handle_abort(self, sig, frame):
        self.alive = False
        self.cfg.worker_abort(self)
        sys.exit(1)

    def handle_error(self, req, client, addr, exc):
        """A request failed: log it and answer 500 (Gunicorn's page), if
        the client still listens."""
        if hasattr(req, "uri") and hasattr(req, "method"):
            self.log.exception("Error handling request %s %s", req.method, req.uri)
        elif hasattr(req, "uri"):
            self.log.exception("Error handling request %s", req.uri)
        else:
            self.log.exception("Error handling request (no URI read)")
        try:
            util.write_error(client, 500, "Internal Server Error", "")
        except Exception:
            self.log.debug("Failed to send error message.")

    def handle_winch(self, sig, fname):
        self.log.debug("worker: SIGWINCH ignored.")
