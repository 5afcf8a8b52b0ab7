"""Importing this module fails: the worker cannot boot (exit 3)."""

import cgunicorn_test_no_such_module  # noqa: F401


def app(environ, start_response):
    raise AssertionError("never reached")
