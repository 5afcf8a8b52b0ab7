"""Whether any dirty worker can serve an app, for
DirtyNoWorkersAvailableError (raised at once, as Gunicorn's router does,
instead of the call waiting in the socket's queue for nobody).

A dirty worker holds a shared flock() on <dir>/workers.up from its boot,
and on <dir>/<i>.up from the moment it takes the i-th app (its place, or
at once for an app every worker loads) until it exits; the kernel drops
both when it dies. A caller asks for an exclusive lock without waiting:
refused means someone serves the app, one system call; granted means no
one does (the caller lets it go at once, and a worker taking its shared
lock meanwhile waits for that instant only).
"""
import fcntl
import os

from .errors import DirtyError, DirtyNoWorkersAvailableError

_fds = {}  # path -> fd (this process's own open file: a flock is per file)


def _after_fork():
    # an inherited fd shares the parent's open file, and with it any lock
    # taken through it: the child opens its own
    for fd in _fds.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _fds.clear()


os.register_at_fork(after_in_child=_after_fork)


def up_path(sock_path):
    """<dir>/<i>.up for the app socket <dir>/<i>.sock."""
    return sock_path[:-len(".sock")] + ".up" if sock_path.endswith(".sock") else sock_path + ".up"


def hold(path):
    """A worker's side: the fd holding a shared lock on path (kept open)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _served(path):
    fd = _fds.get(path)
    if fd is None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False  # no worker ever took it
        kept = _fds.setdefault(path, fd)
        if kept != fd:  # another thread opened it meanwhile
            os.close(fd)
            fd = kept
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    # granted: nobody serves it (threads of this process share the fd,
    # so one of them may be granted it again meanwhile: the same answer)
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def check(sock_path, app_path):
    """Raise as Gunicorn's router does when no worker can serve app_path:
    DirtyError when no dirty worker runs at all, else
    DirtyNoWorkersAvailableError."""
    if _served(up_path(sock_path)):
        return
    if not _served(os.path.join(os.path.dirname(sock_path), "workers.up")):
        raise DirtyError("No dirty workers available")
    raise DirtyNoWorkersAvailableError(app_path)
