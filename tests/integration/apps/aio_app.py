"""An aiohttp application for aiohttp's Gunicorn worker
(-k aiohttp.GunicornWebWorker), in test_worker_classes.py."""
import asyncio
import os
import sys

from aiohttp import web


async def hello(request):
    return web.Response(text="aio %d" % os.getpid())


async def slow(request):
    sys.stderr.write("SLOW-START %d\n" % os.getpid())
    sys.stderr.flush()
    await asyncio.sleep(float(request.query.get("s", "1")))
    return web.Response(text="slow done")


def make_app():
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/slow", slow)
    return app


app = make_app()
