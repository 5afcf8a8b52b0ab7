"""gunicorn.app.wsgiapp: cgunicorn.app.wsgiapp under Gunicorn's name
(``python -m gunicorn.app.wsgiapp`` runs the cgunicorn command)."""
from cgunicorn.app.wsgiapp import WSGIApplication, run

__all__ = ["WSGIApplication", "run"]

if __name__ == "__main__":
    run()
