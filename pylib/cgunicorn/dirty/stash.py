"""Stash: key-value tables shared by every dirty worker and HTTP worker of
one server, with Gunicorn's ``gunicorn.dirty.stash`` API::

    from cgunicorn.dirty import stash
    stash.put("sessions", "user:1", {"name": "Alice"})
    stash.get("sessions", "user:1")            # default (None) when absent
    sessions = stash.table("sessions")         # dict-like
    stash.keys("sessions", pattern="user:*")

Gunicorn keeps the tables in its Python dirty arbiter, which answers each
operation over its socket. Ours is C and serves no calls, so the tables
live in the dirty socket directory the master made (private, mode 0700,
removed when the master stops): <dir>/stash/<table>/<key> files, each
holding the pickled (key, value). Every operation is made under one
flock() on <dir>/stash/lock (shared for reads, exclusive for writes), so
each is atomic for every process as it is in Gunicorn's single-threaded
arbiter, and costs a few system calls instead of a round trip through a
third process. A value is written to a temporary file and renamed into
place, so a process killed in the middle of a put() never leaves half a
value.
The tables last as long as the socket directory: the master's life, or
until a HUP that changes the dirty settings starts a new dirty tree.
"""
import fcntl
import fnmatch
import hashlib
import os
import pickle
import shutil
import threading

from .errors import DirtyError

__all__ = ["StashError", "StashTableNotFoundError", "StashKeyNotFoundError", "StashClient",
           "StashTable", "set_stash_socket_path", "get_stash_socket_path", "put", "get",
           "delete", "keys", "clear", "info", "ensure", "exists", "delete_table", "tables",
           "table"]


class StashError(DirtyError):
    """Base exception for stash operations."""


class StashTableNotFoundError(StashError):
    def __init__(self, table_name):
        self.table_name = table_name
        super().__init__(f"Stash table not found: {table_name}")


class StashKeyNotFoundError(StashError):
    def __init__(self, table_name, key):
        self.table_name = table_name
        self.key = key
        super().__init__(f"Key not found in {table_name}: {key}")


def _name(data):
    # file names stay short and free of '/' whatever the table or key
    return hashlib.sha256(data).hexdigest()[:40]


class StashClient:
    """The stash of the dirty directory ``socket_path`` (the server's by
    default). Thread-safe and fork-safe; ``timeout`` is accepted for
    Gunicorn's signature (an operation never waits on another process
    longer than that process's own operation)."""

    def __init__(self, socket_path=None, timeout=30.0):
        self.socket_path = socket_path
        self.timeout = timeout
        self._mutex = threading.Lock()
        self._fd = None
        self._pid = None

    # ---- the directory and its lock -----------------------------------

    def _root(self):
        base = self.socket_path or get_stash_socket_path()
        return os.path.join(base, "stash")

    def _lock_fd(self, root):
        # flock() belongs to the open file: a child must not share its
        # parent's, or both would hold the lock at once
        if self._fd is None or self._pid != os.getpid():
            try:
                os.makedirs(root, mode=0o700, exist_ok=True)
                self._fd = os.open(os.path.join(root, "lock"),
                                   os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as e:
                raise StashError(f"Cannot open the stash in {root}: {e}") from e
            self._pid = os.getpid()
        return self._fd

    def _run(self, write, fn, *args):
        root = self._root()
        # the flock is the process's; threads of one process take turns here
        with self._mutex:
            fd = self._lock_fd(root)
            fcntl.flock(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            try:
                return fn(root, *args)
            except StashError:
                raise
            except (OSError, pickle.PickleError, EOFError) as e:
                raise StashError(f"Stash operation failed: {e}") from e
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    @staticmethod
    def _tdir(root, table):
        return os.path.join(root, "t." + _name(str(table).encode("utf-8", "surrogatepass")))

    @staticmethod
    def _kfile(tdir, key):
        try:
            data = pickle.dumps(key, protocol=5)
        except Exception as e:
            raise StashError(f"Stash key {key!r} cannot be pickled: {e}") from e
        return os.path.join(tdir, "k." + _name(data))

    @staticmethod
    def _entries(tdir):
        """[(key, value)] of a table directory (absent: None)."""
        try:
            names = os.listdir(tdir)
        except FileNotFoundError:
            return None
        out = []
        for n in names:
            if n.startswith("k."):
                try:
                    with open(os.path.join(tdir, n), "rb") as f:
                        out.append(pickle.load(f))
                except FileNotFoundError:
                    continue
        return out

    def _make(self, root, table):
        tdir = self._tdir(root, table)
        try:
            os.mkdir(tdir, 0o700)
        except FileExistsError:
            return tdir
        with open(os.path.join(tdir, "name"), "wb") as f:
            pickle.dump(table, f, protocol=5)
        return tdir

    # ---- operations (each under the lock) -----------------------------

    def _put(self, root, table, key, value):
        tdir = self._make(root, table)
        path = self._kfile(tdir, key)
        try:
            data = pickle.dumps((key, value), protocol=5)
        except Exception as e:
            raise StashError(f"Stash value for {key!r} cannot be pickled: {e}") from e
        tmp = os.path.join(tdir, "tmp.%d" % os.getpid())
        with open(tmp, "wb") as f:
            f.write(data)
        # unlink first: ext4 flushes a file renamed over another one to the
        # disk at once (auto_da_alloc), 5x the cost of the whole put(); no
        # reader sees the gap (they wait for this exclusive lock)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.rename(tmp, path)

    def _get(self, root, table, key):
        try:
            with open(self._kfile(self._tdir(root, table), key), "rb") as f:
                return pickle.load(f)[1]
        except FileNotFoundError:
            raise StashKeyNotFoundError(table, key) from None

    def _delete(self, root, table, key):
        try:
            os.unlink(self._kfile(self._tdir(root, table), key))
        except FileNotFoundError:
            return False
        return True

    def _keys(self, root, table, pattern):
        entries = self._entries(self._tdir(root, table)) or []
        ks = [k for k, _ in entries]
        if pattern:
            ks = [k for k in ks if fnmatch.fnmatch(str(k), pattern)]
        return ks

    def _clear(self, root, table):
        tdir = self._tdir(root, table)
        try:
            names = os.listdir(tdir)
        except FileNotFoundError:
            return
        for n in names:
            if n.startswith("k."):
                os.unlink(os.path.join(tdir, n))

    def _info(self, root, table):
        tdir = self._tdir(root, table)
        try:
            n = sum(1 for n in os.listdir(tdir) if n.startswith("k."))
        except FileNotFoundError:
            raise StashTableNotFoundError(table) from None
        return {"size": n, "table": table}

    def _exists(self, root, table, key):
        tdir = self._tdir(root, table)
        if key is None:
            return os.path.isdir(tdir)
        return os.path.exists(self._kfile(tdir, key))

    def _delete_table(self, root, table):
        tdir = self._tdir(root, table)
        if not os.path.isdir(tdir):
            return False
        shutil.rmtree(tdir)
        return True

    def _tables(self, root):
        out = []
        for n in os.listdir(root):
            if n.startswith("t."):
                try:
                    with open(os.path.join(root, n, "name"), "rb") as f:
                        out.append(pickle.load(f))
                except FileNotFoundError:
                    continue
        return out

    # ---- Gunicorn's API -----------------------------------------------

    def put(self, table, key, value):
        """Store a value (the table is made if need be)."""
        self._run(True, self._put, table, key, value)

    def get(self, table, key, default=None):
        """The value stored under key, or default."""
        try:
            return self._run(False, self._get, table, key)
        except StashKeyNotFoundError:
            return default

    def delete(self, table, key):
        """Whether key was there (and is now deleted)."""
        return self._run(True, self._delete, table, key)

    def keys(self, table, pattern=None):
        """The keys of a table, those whose str() matches a glob pattern
        if one is given ([] for a table that does not exist)."""
        return self._run(False, self._keys, table, pattern)

    def clear(self, table):
        """Delete every entry of a table."""
        self._run(True, self._clear, table)

    def info(self, table):
        """{"size", "table"}; StashTableNotFoundError if it does not exist."""
        return self._run(False, self._info, table)

    def ensure(self, table):
        """Make a table if it does not exist (idempotent)."""
        self._run(True, self._make, table)

    def exists(self, table, key=None):
        """Whether the table (or its key) exists."""
        return self._run(False, self._exists, table, key)

    def delete_table(self, table):
        """Delete a table and its entries."""
        return self._run(True, self._delete_table, table)

    def tables(self):
        """The names of the tables."""
        return self._run(False, self._tables)

    def table(self, name):
        """A dict-like view of one table."""
        return StashTable(self, name)

    def close(self):
        with self._mutex:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.close()


class StashTable:
    """A dict-like view of one stash table (each operation is one stash
    operation)."""

    def __init__(self, client, name):
        self._client = client
        self._name = name

    @property
    def name(self):
        return self._name

    def __getitem__(self, key):
        try:
            return self._client._run(False, self._client._get, self._name, key)
        except StashKeyNotFoundError:
            raise KeyError(key) from None

    def __setitem__(self, key, value):
        self._client.put(self._name, key, value)

    def __delitem__(self, key):
        if not self._client.delete(self._name, key):
            raise KeyError(key)

    def __contains__(self, key):
        return self._client.exists(self._name, key)

    def __iter__(self):
        return iter(self._client.keys(self._name))

    def __len__(self):
        try:
            return self._client.info(self._name)["size"]
        except StashTableNotFoundError:
            return 0

    def get(self, key, default=None):
        return self._client.get(self._name, key, default)

    def keys(self, pattern=None):
        return self._client.keys(self._name, pattern=pattern)

    def clear(self):
        self._client.clear(self._name)

    def items(self):
        for key in self._client.keys(self._name):
            yield key, self._client.get(self._name, key)

    def values(self):
        for key in self._client.keys(self._name):
            yield self._client.get(self._name, key)


# ---- the module-level API (one client per process) ----------------------

_stash_dir = None
_client = None
_client_lock = threading.Lock()


def set_stash_socket_path(path):
    """Use the stash of this dirty directory (the server's by default)."""
    global _stash_dir, _client
    with _client_lock:
        _stash_dir = path
        _client = None


def get_stash_socket_path():
    """The dirty directory that holds the stash."""
    from . import client
    path = _stash_dir or client._socket_dir or os.environ.get("CGUNICORN_DIRTY_DIR")
    if not path:
        raise StashError("Stash socket path not configured. "
                         "Make sure dirty_workers > 0 and dirty_apps are configured.")
    return path


def _get_client():
    global _client
    c = _client
    if c is None:
        with _client_lock:
            if _client is None:
                _client = StashClient(_stash_dir)
            c = _client
    return c


def put(table, key, value):
    _get_client().put(table, key, value)


def get(table, key, default=None):
    return _get_client().get(table, key, default)


def delete(table, key):
    return _get_client().delete(table, key)


def keys(table, pattern=None):
    return _get_client().keys(table, pattern)


def clear(table):
    _get_client().clear(table)


def info(table):
    return _get_client().info(table)


def ensure(table):
    _get_client().ensure(table)


def exists(table, key=None):
    return _get_client().exists(table, key)


def delete_table(table):
    _get_client().delete_table(table)


def tables():
    return _get_client().tables()


def table(name):
    return _get_client().table(name)
