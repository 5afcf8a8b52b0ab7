"""The smallest useful WSGI application: `make run` serves it on :8000."""


def app(environ, start_response):
    body = b"Hello, World!\n"
    start_response("200 OK", [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ])
    return [body]


# Gunicorn's conventional name, so `hello:application` works too.
application = app
