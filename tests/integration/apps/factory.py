"""App factories for `module:create_app()` and `module:factory(...)`."""


def _make(text):
    def app(environ, start_response):
        data = text.encode("utf-8")
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(data)))])
        return [data]
    return app


def create_app():
    return _make("made by create_app")


def factory(arg, key=None):
    return _make("factory arg=%r key=%r" % (arg, key))


not_callable = 42
