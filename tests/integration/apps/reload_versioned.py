"""For --reload tests (copied to a temporary directory and edited there):
answers its VERSION; /lazy imports reload_lazy on first use."""

VERSION = "one"


def app(environ, start_response):
    if environ["PATH_INFO"] == "/lazy":
        import reload_lazy
        body = reload_lazy.NAME.encode()
    else:
        body = VERSION.encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
