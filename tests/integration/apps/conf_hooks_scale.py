"""Config for test_hooks.py: a hook that changes server.num_workers, as
Gunicorn's arbiter allows (the nworkers_changed hook sees it)."""

workers = 1


def on_starting(server):
    server.num_workers = 3
    server.log.warning("server pid %s workers %s", server.pid, server.WORKERS)


def nworkers_changed(server, new_value, old_value):
    if old_value is not None:
        server.log.info("nworkers_changed %d %d (%s)", new_value, old_value, "scale")
