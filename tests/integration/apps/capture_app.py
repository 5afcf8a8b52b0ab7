"""Writes to stdout and stderr the three ways an app or a C extension does:
print() through sys.stdout, and os.write() straight to fds 1 and 2. The
query string tags the lines so a test knows which request wrote them."""

import os


def app(environ, start_response):
    tag = environ.get("QUERY_STRING", "") or "none"
    print("print-%s" % tag, flush=True)
    os.write(1, b"fd1-%s\n" % tag.encode())
    os.write(2, b"fd2-%s\n" % tag.encode())
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
