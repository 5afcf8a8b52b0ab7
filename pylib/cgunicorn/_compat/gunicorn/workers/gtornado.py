"""gunicorn.workers.gtornado where no real Gunicorn is installed:
cgunicorn's tornado worker, for code that subclasses it."""
from cgunicorn.workers.gtornado import TornadoWorker

__all__ = ["TornadoWorker"]
