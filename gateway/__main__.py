"""python -m gateway: serve the REST gateway on METERING_HTTP_ADDR, calling METERING_GRPC_ADDR, with the
connection limits and read deadlines of METERING_HTTP_* (gateway/http/connections.py), logging as
METERING_LOG_* and METERING_ACCESS_LOG say (metering/logs.py; uvicorn's own access lines are never
written: the gateway writes its own, with the route, the duration and the request id)."""

import os
import sys

import uvicorn

from gateway.app import create_app
from gateway.http.connections import GuardedConfig, limits_from_env
from gateway.http.memory import keep_freed_memory
from metering.logs import configure_logging

http_addr = os.environ.get("METERING_HTTP_ADDR") or "127.0.0.1:8000"
host, sep, port = http_addr.rpartition(":")
if not sep or not port.isdigit():
    sys.exit(f"metering gateway: METERING_HTTP_ADDR must look like HOST:PORT, got {http_addr!r}")
keep_freed_memory()  # large replies reuse memory instead of faulting it in afresh (gateway/http/memory.py)
try:
    logs = configure_logging()
    app = create_app(os.environ.get("METERING_GRPC_ADDR"))
    limits = limits_from_env()
except ValueError as exc:  # a setting the gateway cannot use; the message names the variable
    sys.exit(f"metering gateway: {exc}")
# uvloop and httptools (pinned dependencies; GuardedConfig serves with uvicorn's httptools protocol),
# named rather than left to "auto", which would fall back silently to asyncio and h11: those cost
# ~1.6x the gateway CPU per POST /usage (~280 vs ~175 µs).
config = GuardedConfig(app, limits=limits, host=host, port=int(port), log_level=logs.level.lower(), loop="uvloop",
                       log_config=None, access_log=False)
uvicorn.Server(config).run()
