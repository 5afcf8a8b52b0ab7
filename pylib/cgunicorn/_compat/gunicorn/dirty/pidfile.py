"""gunicorn.dirty.pidfile: not provided, and saying so. It is Gunicorn's
helpers for the dirty arbiter's pid file; cgunicorn's master writes that
file itself (docs/dirty.md). An application's API is gunicorn.dirty and its
modules app, client, errors, stash (and worker, for the hooks)."""
raise ImportError("gunicorn.dirty.pidfile is not provided by cgunicorn: "
                  "cgunicorn's master writes that file itself (docs/dirty.md)", name=__name__)
