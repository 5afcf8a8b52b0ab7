"""The benchmark application: the smallest useful WSGI response."""

BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


# uwsgi --wsgi-file looks for `application`
application = app
