"""cgunicorn.app.wsgiapp.run(): the cgunicorn command from Python."""
import os

from cgunicorn.app.wsgiapp import run

if __name__ == "__main__":
    run(prog=os.environ.get("CG_API_PROG") or None)
