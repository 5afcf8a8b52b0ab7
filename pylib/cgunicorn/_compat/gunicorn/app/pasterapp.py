"""gunicorn.app.pasterapp: cgunicorn.app.pasterapp under Gunicorn's name, so
``use = egg:gunicorn#main`` and code importing Gunicorn's helpers keep
working where Gunicorn is not installed."""
from cgunicorn.app.pasterapp import get_wsgi_app, has_logging_config, serve

__all__ = ["get_wsgi_app", "has_logging_config", "serve"]
