"""App for test_config_files.py: reports what a config file can change in
the worker's process (environment, working directory, sys.path)."""

import json
import os
import sys


def app(environ, start_response):
    body = json.dumps({
        "CG_CFG_FOO": os.environ.get("CG_CFG_FOO"),
        "cwd": os.getcwd(),
        "sys_path": sys.path,
        "scheme": environ["wsgi.url_scheme"],
        "pid": os.getpid(),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
