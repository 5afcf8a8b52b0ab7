"""The conformance corpus, the hostile-traffic run and the Flask/Django apps
again, served by the gthread worker with 1 thread (app inline on the loop)
and with 4 (thread pool). The tests are the same functions; only the server
fixtures differ: they add `-k gthread --threads N` to every server."""

import json

import pytest

import cgtest
from test_conformance import Pool, test_invalid, test_valid, test_valid_split  # noqa: F401
from test_frameworks import (test_django_404, test_django_form_post,  # noqa: F401
                             test_django_many_requests, test_django_query,
                             test_django_redirect, test_django_static, test_django_view,
                             test_flask_404, test_flask_form_post, test_flask_index,
                             test_flask_json, test_flask_many_requests_spread_over_workers,
                             test_flask_multipart_upload, test_flask_redirect,
                             test_flask_static_file, django_srv, flask_srv)
from test_hostile import test_hostile_traffic  # noqa: F401

THREADS = [pytest.param(1, id="gthread1"), pytest.param(4, id="gthread4")]


def _get_json_close(srv):
    """Server.get_json reads until the server closes: with keep-alive that
    is the 2 s keep-alive timeout per call. Ask in HTTP/1.0, which closes
    (same header count, so tight limit_request_* settings still pass)."""
    def get_json(path="/", timeout=10.0):
        status, headers, body = cgtest.parse_response(srv.raw(
            b"GET " + path.encode() + b" HTTP/1.0\r\nHost: t\r\n\r\n",
            timeout=timeout))
        assert status.split()[1] == "200", (status, body)
        return json.loads(body)
    return get_json


def _gthread(factory, threads):
    def start(app, args=(), **kw):
        srv = factory(app, args=list(args) + ["-k", "gthread", "--threads", str(threads)], **kw)
        srv.get_json = _get_json_close(srv)
        return srv
    return start


@pytest.fixture(params=THREADS)
def cg(cg, request):
    return _gthread(cg, request.param)


@pytest.fixture(scope="module", params=THREADS)
def cg_module(cg_module, request):
    return _gthread(cg_module, request.param)


@pytest.fixture(scope="module")
def pool(cg_module):
    return Pool(cg_module)
