"""A Pyramid application and a filter for PasteDeploy files (test_paste.py)."""
import os

from pyramid.config import Configurator
from pyramid.response import Response


def hello(request):
    settings = request.registry.settings
    return Response("hello %s from %s, filtered %s, pid %d" % (
        settings.get("greeting"), settings.get("who"),
        request.environ.get("pasteapp.tag", "-"), os.getpid()))


def main(global_config, **settings):
    settings = dict(settings, who=global_config.get("who", "nobody"))
    with Configurator(settings=settings) as config:
        config.add_route("hello", "/")
        config.add_view(hello, route_name="hello")
        return config.make_wsgi_app()


def tagger(global_config, tag="x"):
    def wrap(app):
        def tagged(environ, start_response):
            environ["pasteapp.tag"] = tag
            return app(environ, start_response)
        return tagged
    return wrap
