"""Config for test_hooks.py: hooks that raise; the server must log each
failure with its traceback and keep serving."""

workers = 1


def when_ready(server):
    1 / 0


def pre_request(worker, req):
    if req.path == "/boom":
        raise RuntimeError("pre_request refused /boom")


def post_request(worker, req, environ, resp):
    raise ValueError("post_request always fails")
