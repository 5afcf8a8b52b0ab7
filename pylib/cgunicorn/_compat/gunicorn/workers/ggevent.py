"""gunicorn.workers.ggevent where no real Gunicorn is installed: cgunicorn's
gevent workers, for code that subclasses them (gevent-websocket's
GeventWebSocketWorker subclasses GeventPyWSGIWorker)."""
from cgunicorn.workers.ggevent import (VERSION, GeventPyWSGIWorker, GeventResponse,
                                       GeventWorker, PyWSGIHandler, PyWSGIServer)

__all__ = ["VERSION", "GeventPyWSGIWorker", "GeventResponse", "GeventWorker", "PyWSGIHandler",
           "PyWSGIServer"]
