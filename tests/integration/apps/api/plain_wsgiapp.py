"""Gunicorn's WSGIApplication used as it is (what the gunicorn command
runs), through the gunicorn shims."""
from gunicorn.app.wsgiapp import WSGIApplication

if __name__ == "__main__":
    WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").run()
