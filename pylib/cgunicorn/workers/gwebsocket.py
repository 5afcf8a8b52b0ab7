"""gevent-websocket's Gunicorn worker,
``geventwebsocket.gunicorn.workers.GeventWebSocketWorker``, on cgunicorn's
GeventPyWSGIWorker: gevent's pywsgi server with gevent-websocket's
WebSocketHandler, which puts ``wsgi.websocket`` in the environ of an
Upgrade request. cgunicorn runs this class for that name whether or not a
real Gunicorn is installed (its class would subclass Gunicorn's own
Python worker)."""
try:
    from geventwebsocket.handler import WebSocketHandler
except ImportError:
    raise RuntimeError("geventwebsocket.gunicorn.workers.GeventWebSocketWorker needs "
                       "gevent-websocket installed (pip install gevent-websocket)")

from cgunicorn.workers.ggevent import GeventPyWSGIWorker


class GeventWebSocketWorker(GeventPyWSGIWorker):
    wsgi_handler = WebSocketHandler
