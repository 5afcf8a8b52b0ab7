"""DirtyApp, the base class of a dirty application, and the dirty_apps
spec rules (``module:Class`` or ``module:Class:N``), as Gunicorn's."""
import importlib
import sys

from .errors import DirtyAppError, DirtyAppNotFoundError


class DirtyApp:
    """Loaded once per dirty worker: ``init()`` after it is made,
    ``__call__(action, *args, **kwargs)`` for each call an HTTP worker
    makes, ``close()`` when the worker stops. ``workers`` (None: every
    dirty worker) limits how many dirty workers load it."""

    workers = None

    def init(self):
        """Load what the calls need (called once, after fork)."""

    def __call__(self, action, *args, **kwargs):
        method = getattr(self, action, None)
        if method is None or action.startswith("_"):
            raise ValueError(f"Unknown action: {action}")
        return method(*args, **kwargs)

    def close(self):
        """Release what init() took (the worker is stopping)."""


def parse_dirty_app_spec(spec):
    """(import_path, worker_count or None) of a dirty_apps entry."""
    parts = spec.split(":")
    if len(parts) == 2:
        return spec, None
    if len(parts) == 3:
        module_path, class_name, count = parts
        try:
            n = int(count)
        except ValueError:
            raise DirtyAppError(f"Invalid worker count in spec: {spec}. "
                                f"Expected integer, got '{count}'", app_path=spec) from None
        if n < 1:
            raise DirtyAppError(f"Invalid worker count in spec: {spec}. "
                                f"Worker count must be >= 1, got {n}", app_path=spec)
        return f"{module_path}:{class_name}", n
    raise DirtyAppError(f"Invalid import path format: {spec}. "
                        f"Expected 'module.path:ClassName' or 'module.path:ClassName:N'",
                        app_path=spec)


def load_dirty_app_class(import_path):
    """The class an import path names (DirtyAppNotFoundError if none)."""
    module_path, _, class_name = import_path.rpartition(":")
    if not module_path:
        raise DirtyAppError(f"Invalid import path format: {import_path}. "
                            f"Expected 'module.path:ClassName'", app_path=import_path)
    try:
        module = sys.modules.get(module_path) or importlib.import_module(module_path)
    except ImportError as e:
        raise DirtyAppNotFoundError(import_path) from e
    cls = getattr(module, class_name, None)
    if cls is None:
        raise DirtyAppNotFoundError(import_path)
    if not isinstance(cls, type):
        raise DirtyAppError(f"{import_path} is not a class", app_path=import_path)
    return cls


def make_dirty_app(import_path, cls):
    """An instance of cls with the three methods a dirty app needs."""
    try:
        app = cls()
    except Exception as e:
        raise DirtyAppError(f"Failed to instantiate {import_path}: {e}",
                            app_path=import_path) from e
    for name in ("init", "__call__", "close"):
        if not callable(getattr(app, name, None)):
            raise DirtyAppError(f"{import_path} is missing required method: {name}",
                                app_path=import_path)
    return app
