"""Each request's task: a real asyncio.Task of its own (the app's coroutine
is handed to it wrapped), with its own copy of the context, made by the
loop's task factory when the app set one; exceptions and cancellation."""
import asyncio
import contextvars
import json
import sys

seen = contextvars.ContextVar("seen", default="unset")
factory_tasks = []


def _factory(loop, coro, **kw):
    task = asyncio.Task(coro, loop=loop, **kw)
    factory_tasks.append(task)
    return task


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/factory":
        asyncio.get_running_loop().set_task_factory(_factory)
        body = b"set"
    elif path == "/ignore-disconnect":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"started", "more_body": True})
        try:
            while True:  # on and on, quietly, once the client is gone
                await asyncio.sleep(0.05)
                await send({"type": "http.response.body", "body": b".", "more_body": True})
        except asyncio.CancelledError:
            print("app: cancelled after the disconnect", file=sys.stderr, flush=True)
            raise
        return
    elif path == "/raise-after-await":
        await asyncio.sleep(0.01)
        raise KeyError("late boom")
    else:
        task = asyncio.current_task()
        before = seen.get()
        seen.set(path)
        if path == "/sleep":
            await asyncio.sleep(0.01)  # a real wait: the task resumes the app
        body = json.dumps({
            "task": id(task) if task is not None else None,
            "is_task": isinstance(task, asyncio.Task),
            "done": task.done() if task is not None else None,
            "before": before,
            "after": seen.get(),
            "from_factory": any(t is task for t in factory_tasks),
            "name": task.get_name() if task is not None else None,
            "registered": task in asyncio.all_tasks(),
            "ntasks": len(asyncio.all_tasks()),
        }).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})
