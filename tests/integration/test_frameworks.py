"""Real framework apps (Debian's Flask and Django) served with -w 4."""

import os
import subprocess
import textwrap

import pytest
import requests

import cgtest


# -- Flask --------------------------------------------------------------------

@pytest.fixture(scope="module")
def flask_srv(cg_module):
    return cg_module("flaskapp:app", args=["-w", "4"])


def test_flask_index(flask_srv):
    r = requests.get(flask_srv.url("/"), timeout=10)
    assert r.status_code == 200
    assert r.text == "<h1>Flask index</h1>"
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers["Server"] == "gunicorn"


def test_flask_many_requests_spread_over_workers(flask_srv):
    s = requests.Session()
    for i in range(40):
        r = s.get(flask_srv.url("/hello/n%d" % i), timeout=10)
        assert r.status_code == 200 and r.text == "Hello, n%d!" % i
    assert len(flask_srv.worker_pids()) == 4


def test_flask_form_post(flask_srv):
    r = requests.post(flask_srv.url("/form"), data={"name": "Zoë"}, timeout=10)
    assert r.status_code == 200
    assert r.text == "got Zoë and 0 bytes"


def test_flask_multipart_upload(flask_srv):
    blob = os.urandom(250000)
    r = requests.post(flask_srv.url("/form"), data={"name": "f"},
                      files={"upload": ("x.bin", blob)}, timeout=20)
    assert r.status_code == 200
    assert r.text == "got f and %d bytes" % len(blob)


def test_flask_json(flask_srv):
    r = requests.post(flask_srv.url("/json"), json={"a": [1, 2, 3]}, timeout=10)
    assert r.status_code == 200
    assert r.json() == {"received": {"a": [1, 2, 3]}}


def test_flask_redirect(flask_srv):
    r = requests.get(flask_srv.url("/redirect"), timeout=10, allow_redirects=False)
    assert r.status_code == 302
    assert r.headers["Location"].endswith("/hello/redirected")
    r = requests.get(flask_srv.url("/redirect"), timeout=10)
    assert r.status_code == 200 and r.text == "Hello, redirected!"


def test_flask_static_file(flask_srv):
    r = requests.get(flask_srv.url("/static/hello.txt"), timeout=10)
    assert r.status_code == 200
    assert r.text == "static file served by cgunicorn\n"
    # conditional GET -> 304 without a body
    r2 = requests.get(flask_srv.url("/static/hello.txt"), timeout=10,
                      headers={"If-Modified-Since": r.headers["Last-Modified"]})
    assert r2.status_code == 304
    assert r2.content == b""


def test_flask_404(flask_srv):
    r = requests.get(flask_srv.url("/no/such/page"), timeout=10)
    assert r.status_code == 404
    assert "Not Found" in r.text


# -- Django -----------------------------------------------------------------

VIEWS = '''
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.csrf import csrf_exempt


def index(request):
    return HttpResponse("Django index at %s" % request.path)


@csrf_exempt
def form(request):
    if request.method == "POST":
        return HttpResponse("posted %s" % request.POST.get("name", ""))
    return HttpResponse('<form method="post"><input name="name"></form>')


def go(request):
    return redirect("/hello/")


def hello(request):
    return HttpResponse("hello from django, %s" % request.GET.get("who", "anon"))
'''

URLS = '''
import os
from django.urls import path, re_path
from django.views.static import serve

from . import views

STATIC_ROOT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")

urlpatterns = [
    path("", views.index),
    path("form/", views.form),
    path("redirect/", views.go),
    path("hello/", views.hello),
    re_path(r"^static/(?P<path>.*)$", serve, {"document_root": STATIC_ROOT_DIR}),
]
'''

SETTINGS_TAIL = '''
DEBUG = False
ALLOWED_HOSTS = ["*"]
'''


@pytest.fixture(scope="module")
def django_srv(cg_module, tmp_path_factory):
    root = tmp_path_factory.mktemp("django")
    subprocess.run([cgtest.PYTHON, "-m", "django", "startproject", "mysite", str(root)],
                   check=True, timeout=60, capture_output=True)
    pkg = root / "mysite"
    (pkg / "views.py").write_text(textwrap.dedent(VIEWS))
    (pkg / "urls.py").write_text(textwrap.dedent(URLS))
    with open(pkg / "settings.py", "a") as f:
        f.write(SETTINGS_TAIL)
    (root / "assets").mkdir()
    (root / "assets" / "site.css").write_text("body { color: teal; }\n")
    return cg_module("mysite.wsgi:application", args=["-w", "4", "--chdir", str(root)],
                     cwd=str(root))


def test_django_view(django_srv):
    r = requests.get(django_srv.url("/"), timeout=10)
    assert r.status_code == 200
    assert r.text == "Django index at /"


def test_django_query(django_srv):
    r = requests.get(django_srv.url("/hello/?who=cg"), timeout=10)
    assert r.status_code == 200 and r.text == "hello from django, cg"


def test_django_form_post(django_srv):
    r = requests.post(django_srv.url("/form/"), data={"name": "Ada"}, timeout=10)
    assert r.status_code == 200
    assert r.text == "posted Ada"


def test_django_redirect(django_srv):
    r = requests.get(django_srv.url("/redirect/"), timeout=10, allow_redirects=False)
    assert r.status_code == 302
    assert r.headers["Location"] == "/hello/"
    r = requests.get(django_srv.url("/redirect/"), timeout=10)
    assert r.status_code == 200 and r.text == "hello from django, anon"


def test_django_static(django_srv):
    r = requests.get(django_srv.url("/static/site.css"), timeout=10)
    assert r.status_code == 200
    assert r.text == "body { color: teal; }\n"
    assert r.headers["Content-Type"].startswith("text/css")


def test_django_404(django_srv):
    r = requests.get(django_srv.url("/nope/"), timeout=10)
    assert r.status_code == 404
    assert "Not Found" in r.text


def test_django_many_requests(django_srv):
    s = requests.Session()
    for i in range(40):
        r = s.get(django_srv.url("/hello/?who=%d" % i), timeout=10)
        assert r.text == "hello from django, %d" % i
    assert len(django_srv.worker_pids()) == 4
