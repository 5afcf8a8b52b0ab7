"""For --preload tests: records the pid of every process that imports it
(in $CG_PRELOAD_LOG) and answers with the serving worker's pid and the
importing pid."""

import os

IMPORTED_BY = os.getpid()
with open(os.environ["CG_PRELOAD_LOG"], "a") as f:
    f.write("%d\n" % IMPORTED_BY)


def app(environ, start_response):
    body = ("%d %d" % (os.getpid(), IMPORTED_BY)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
