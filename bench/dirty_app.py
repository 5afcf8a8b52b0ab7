"""The app bench/dirty.py serves with cgunicorn and with Gunicorn 27:
a no-op dirty action and an echo, called from a gthread request."""
import time

try:
    from cgunicorn.dirty import DirtyApp, get_dirty_client
except ImportError:  # Gunicorn 27 (bench-venv)
    from gunicorn.dirty import DirtyApp, get_dirty_client

APP = "dirty_app:Bench"


class Bench(DirtyApp):
    def noop(self):
        return None

    def echo(self, data):
        return data


def app(environ, start_response):
    q = dict(p.split("=") for p in environ.get("QUERY_STRING", "").split("&") if p)
    n = int(q.get("n", "1"))
    client = get_dirty_client()
    if environ["PATH_INFO"] == "/noop":
        t0 = time.perf_counter()
        for _ in range(n):
            client.execute(APP, "noop")
        took = time.perf_counter() - t0
    elif environ["PATH_INFO"] == "/echo":
        data = b"x" * (int(q.get("mb", "10")) << 20)
        t0 = time.perf_counter()
        for _ in range(n):
            out = client.execute(APP, "echo", data)
            assert len(out) == len(data)
        took = time.perf_counter() - t0
    else:
        took = 0.0
    body = ("%.9f\n" % (took / n)).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
