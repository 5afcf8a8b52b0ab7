"""gunicorn.dirty.arbiter: not provided, and saying so. It is Gunicorn's Python
dirty arbiter (DirtyArbiter); cgunicorn's dirty arbiter is its C arbiter
(docs/dirty.md). An application's API is gunicorn.dirty and its modules app,
client, errors, stash (and worker, for the hooks)."""
raise ImportError("gunicorn.dirty.arbiter is not provided by cgunicorn: "
                  "cgunicorn's dirty arbiter is its C arbiter (docs/dirty.md)", name=__name__)
