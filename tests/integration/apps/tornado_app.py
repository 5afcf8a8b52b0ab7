"""Apps for -k tornado (tests/integration/test_tornado.py).

app       a tornado.web.Application:
          /            "hello from tornado" (Tornado's Server header)
          /sleep?S     an async handler: asyncio.sleep(S), then "slept"
          /echo        the body of a POST
          /pid         the worker's pid
wsgi_app  a plain WSGI app, which the worker serves in a WSGIContainer:
          the environ's SERVER_SOFTWARE-free facts as "method path query"
"""
import asyncio
import os

import tornado.web


class Main(tornado.web.RequestHandler):
    def get(self):
        self.write("hello from tornado")


class Sleep(tornado.web.RequestHandler):
    async def get(self):
        await asyncio.sleep(float(self.request.query or "1"))
        self.write("slept")


class Echo(tornado.web.RequestHandler):
    def post(self):
        self.write(self.request.body)


class Pid(tornado.web.RequestHandler):
    def get(self):
        self.write(str(os.getpid()))


app = tornado.web.Application([(r"/", Main), (r"/sleep", Sleep), (r"/echo", Echo),
                               (r"/pid", Pid)])


def wsgi_app(environ, start_response):
    body = ("%s %s %s" % (environ["REQUEST_METHOD"], environ["PATH_INFO"],
                          environ["QUERY_STRING"])).encode()
    if environ["REQUEST_METHOD"] == "POST":
        body += b" " + environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
