"""A real-world style config: worker count from the CPU count, address
from the environment, settings computed in Python."""

import multiprocessing
import os

bind = os.environ.get("CG_CFG_BIND", "127.0.0.1:8000")
workers = multiprocessing.cpu_count() * 2 + 1
max_requests = 1000
max_requests_jitter = 50
graceful_timeout = 5
raw_env = ["CG_CFG_FOO=from-conf-real-cpu"]
