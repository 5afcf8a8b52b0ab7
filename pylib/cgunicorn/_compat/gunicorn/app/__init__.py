"""gunicorn.app: see gunicorn.app.base and gunicorn.app.wsgiapp."""
