"""Gunicorn's programmatic API: ``cgunicorn.app.base`` (BaseApplication,
Application) and ``cgunicorn.app.wsgiapp`` (WSGIApplication, run)."""
