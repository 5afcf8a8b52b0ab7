"""gunicorn.dirty.protocol: not provided, and saying so. It is Gunicorn's dirty
arbiter protocol; cgunicorn's dirty calls have frames of their own
(docs/dirty.md). An application's API is gunicorn.dirty and its modules app,
client, errors, stash (and worker, for the hooks)."""
raise ImportError("gunicorn.dirty.protocol is not provided by cgunicorn: "
                  "cgunicorn's dirty calls have frames of their own (docs/dirty.md)", name=__name__)
