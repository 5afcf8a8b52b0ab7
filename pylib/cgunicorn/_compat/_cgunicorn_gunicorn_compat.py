"""Serve the gunicorn shims beside this file as ``gunicorn`` only where no
real Gunicorn can be imported.

cgunicorn-gunicorn-compat.pth puts this directory on sys.path, imports this
module and calls install(). A path entry alone would come before the
interpreter's other site directories (a virtualenv made with
--system-site-packages, a distribution's dist-packages), and the shims
would hide a Gunicorn installed there. So the entry is taken off again and
the shims are found by a finder placed after every other one: ``import
gunicorn`` gives a real Gunicorn wherever sys.path has one, and the shims
otherwise. The .pth file may be read more than once (site.addsitedir() on
the same directory again), hence install() on every reading.
"""
import importlib.machinery
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


class GunicornFallbackFinder:
    """A meta path finder for the top-level ``gunicorn`` package only (its
    submodules are then found through the package's __path__)."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        if fullname != "gunicorn":
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [HERE])

    @staticmethod
    def invalidate_caches():
        pass


def install():
    """Take this directory off sys.path and put the finder last."""
    here = os.path.normcase(HERE)
    sys.path[:] = [p for p in sys.path if os.path.normcase(os.path.abspath(p or ".")) != here]
    if GunicornFallbackFinder not in sys.meta_path:
        sys.meta_path.append(GunicornFallbackFinder)
