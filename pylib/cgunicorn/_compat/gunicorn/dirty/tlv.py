"""gunicorn.dirty.tlv: not provided, and saying so. It is Gunicorn's TLV
encoding of dirty calls; cgunicorn's dirty calls pickle their values
(docs/dirty.md). An application's API is gunicorn.dirty and its modules app,
client, errors, stash (and worker, for the hooks)."""
raise ImportError("gunicorn.dirty.tlv is not provided by cgunicorn: "
                  "cgunicorn's dirty calls pickle their values (docs/dirty.md)", name=__name__)
