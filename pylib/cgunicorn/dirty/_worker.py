"""A dirty worker: the Python worker class the dirty arbiter
(src/arbiter/dirty.c) runs. The C arbiter forks it, beats nothing for it
and kills it when its heartbeat is older than dirty_timeout, as it does
for any worker; this class loads the dirty apps and serves their calls.

Its listeners are the apps' sockets, in dirty_apps order. An app limited
to N workers (``module:Class:N`` or the class's ``workers``) is served by
whoever holds one of its N places: lock files <dir>/<i>.place.<k> taken
with flock(), which the kernel releases when the holder dies, so the
replacement of a dead worker (or a worker that finds a place free later,
after a HUP or a TTOU) takes it and loads the app then.
"""
import asyncio
import fcntl
import inspect
import os
import select
import socket
import threading
import time
import traceback

from cgunicorn.workers.base import Worker

from . import _avail, _wire, stash
from .app import load_dirty_app_class, make_dirty_app, parse_dirty_app_spec
from .errors import DirtyAppError, DirtyError


class _Arbiter:
    """What the dirty hooks get as their arbiter: the dirty arbiter's pid
    and the settings."""

    def __init__(self, pid, cfg):
        self.pid = pid
        self.cfg = cfg


class _App:
    """One entry of dirty_apps in this worker."""

    def __init__(self, index, spec, sock):
        self.index = index
        self.path, n = parse_dirty_app_spec(spec)
        self.cls = load_dirty_app_class(self.path)
        self.limit = n if n is not None else getattr(self.cls, "workers", None)
        self.sock = sock
        self.place_fd = None
        self.up_fd = None
        self.app = None


class DirtyWorker(Worker):

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.apps = []
        self.arbiter = None
        self._up_fd = None  # the shared lock on <dir>/workers.up (_avail.py)
        self._loops = threading.local()

    def __str__(self):
        return "<DirtyWorker %s>" % self.pid

    def _hook(self, name, *args):
        fn = getattr(self.cfg, name, None)
        if callable(fn):
            try:
                fn(*args)
            except Exception:
                self.log.exception("Exception in %s hook", name)

    # ---- boot ---------------------------------------------------------

    def load_wsgi(self):
        """Instead of a WSGI app: the dirty apps this worker serves."""
        self.arbiter = _Arbiter(self.ppid, self.cfg)
        # beating from now on: an app's init() (a model loading) may take
        # longer than dirty_timeout without the worker being stuck
        threading.Thread(target=self._beat, name="dirty-heartbeat", daemon=True).start()
        self._hook("dirty_post_fork", self.arbiter, self)
        directory = os.path.dirname(self.sockets[0].cfg_addr)
        # callers see that a dirty worker runs (DirtyNoWorkersAvailableError)
        self._up_fd = _avail.hold(os.path.join(directory, "workers.up"))
        for i, spec in enumerate(self.cfg.dirty_apps):
            entry = _App(i, spec, self.sockets[i])
            self.apps.append(entry)
            if entry.limit is not None:
                self._report_limit(directory, entry)
        for entry in self.apps:
            if entry.limit is None or self._take_place(entry):
                self._start_app(entry)
        self._hook("dirty_worker_init", self)

    def _report_limit(self, directory, entry):
        """<i>.limit: the app's worker limit, which the C arbiter (that
        imports no app) reads for the floor of TTOU, as Gunicorn's arbiter
        reads the class's ``workers``."""
        path = os.path.join(directory, "%d.limit" % entry.index)
        tmp = "%s.%d" % (path, os.getpid())
        try:
            with open(tmp, "w") as f:
                f.write("%d\n" % entry.limit)
            os.replace(tmp, path)
        except OSError as e:
            self.log.warning("Cannot write %s: %s", path, e)

    def _take_place(self, entry):
        """Whether this worker got one of the app's places (kept open)."""
        directory = os.path.dirname(entry.sock.cfg_addr)
        for k in range(entry.limit):
            path = os.path.join(directory, "%d.place.%d" % (entry.index, k))
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            entry.place_fd = fd
            return True
        return False

    def _start_app(self, entry):
        # from now on callers wait for this worker rather than being told
        # that no worker serves the app (Gunicorn routes a call to a worker
        # that is still loading the app too)
        if entry.up_fd is None:
            entry.up_fd = _avail.hold(_avail.up_path(entry.sock.cfg_addr))
        # Gunicorn's documented declaration of the stash tables an app uses
        for name in getattr(entry.cls, "stashes", None) or ():
            stash.ensure(name)
        entry.app = make_dirty_app(entry.path, entry.cls)
        entry.app.init()
        self.log.info("Dirty worker %s loaded %s", self.pid, entry.path)

    # ---- serving ------------------------------------------------------

    def run(self):
        threads = [threading.Thread(target=self._serve, name="dirty-%d" % i, daemon=True)
                   for i in range(1, max(1, self.cfg.dirty_threads))]
        for t in threads:
            t.start()
        try:
            self._serve(main=True)
        finally:
            # TERM: the calls in progress finish, up to dirty_graceful_timeout
            # (the arbiter's SIGKILL ends what is left)
            for t in threads:
                t.join()
            self._close()

    def _beat(self):
        # its own thread, so a long call does not stop the heartbeat (as
        # Gunicorn's heartbeat task beside its executor threads); a call
        # that holds the GIL in C for dirty_timeout does, and is killed
        period = max(0.1, min(1.0, self.timeout / 2))
        while self.alive:
            self.notify()
            time.sleep(period)

    def _serve(self, main=False):
        last_try = 0.0
        while self.alive:
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                self.alive = False
                break
            if main and time.monotonic() - last_try >= 1.0:
                last_try = time.monotonic()
                for entry in self.apps:
                    if entry.app is None and self._take_place(entry):
                        try:
                            self._start_app(entry)
                        except Exception:
                            self.log.exception("Cannot load dirty app %s", entry.path)
                            os.close(entry.place_fd)
                            entry.place_fd = None
                            if entry.up_fd is not None:
                                os.close(entry.up_fd)
                                entry.up_fd = None
            ready = {e.sock.fileno(): e for e in self.apps if e.app is not None}
            fds = list(ready)
            if main:
                fds.append(self.PIPE[0])
            try:
                r, _, _ = select.select(fds, [], [], 1.0)
            except OSError:
                continue
            for fd in r:
                if fd == self.PIPE[0]:
                    try:
                        while os.read(fd, 4096):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                entry = ready[fd]
                try:
                    conn, _ = entry.sock.accept()
                except (BlockingIOError, InterruptedError):
                    continue  # another thread or worker took it
                except OSError:
                    if not self.alive:
                        return
                    raise
                self._handle(conn, entry)
                if not self.alive:
                    break

    def _handle(self, conn, entry):
        # no timeout on this side (the caller's ends the call); the C
        # transfer waits out EAGAIN itself, so conn's blocking mode does not
        # matter and costs no ioctl
        send = _wire.send_value
        try:
            kind, req = _wire.recv(conn, bytearray())
            if kind != _wire.REQUEST:
                return
            action, args, kwargs = req
            self.nr += 1
            self.notify()
            try:
                result = entry.app(action, *args, **kwargs)
                if inspect.iscoroutine(result):
                    result = self._loop().run_until_complete(result)
                if inspect.isgenerator(result):
                    for chunk in result:
                        send(conn, _wire.CHUNK, chunk)
                    send(conn, _wire.END, None)
                elif inspect.isasyncgen(result):
                    loop = self._loop()
                    while True:
                        try:
                            chunk = loop.run_until_complete(result.__anext__())
                        except StopAsyncIteration:
                            break
                        send(conn, _wire.CHUNK, chunk)
                    send(conn, _wire.END, None)
                else:
                    send(conn, _wire.RESULT, result)
            except (BrokenPipeError, ConnectionResetError):
                raise
            except DirtyError as e:
                send(conn, _wire.ERROR, e.to_dict())
            except Exception as e:
                # the action's exception, or a result that does not pickle
                # (encoded before anything is sent: the frame is whole)
                err = DirtyAppError(str(e), app_path=entry.path, action=action,
                                    traceback=traceback.format_exc())
                send(conn, _wire.ERROR, err.to_dict())
        except (EOFError, OSError):
            pass  # the caller went away (its timeout): nothing to answer
        except Exception:
            self.log.exception("Error handling a dirty request for %s", entry.path)
        finally:
            conn.close()

    def _loop(self):
        loop = getattr(self._loops, "loop", None)
        if loop is None:
            loop = self._loops.loop = asyncio.new_event_loop()
        return loop

    def _close(self):
        for entry in self.apps:
            if entry.app is not None:
                try:
                    entry.app.close()
                except Exception:
                    self.log.exception("Error closing dirty app %s", entry.path)
        self._hook("dirty_worker_exit", self.arbiter, self)
