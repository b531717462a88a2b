"""The gateway's Prometheus metrics, served at GET /metrics (docs/metrics.md lists them), and
its access lines.

MetricsMiddleware times every HTTP request into metering_http_request_duration_seconds by
method, route and status. The route is the template of the route that matched
(`/usage/{usage_id}`, `/v1/organization/usage/completions`), or `unmatched`: never the raw path,
whose ids would make a series per request. A method outside the standard ones counts as `other`.

With METERING_ACCESS_LOG on (metering/logs.py) it also writes one line per request to the
`metering.access` logger: method, path (without the query, which may hold credentials), route,
status, duration and, in JSON, the request id.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import Histogram
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from gateway.http import openapi
from gateway.http.middleware import HTTPMiddleware
from metering.logs import access_logger, request_id
from metering.metrics import CONTENT_TYPE, LATENCY_BUCKETS, exposition, new_registry, query_cache_lookups

REGISTRY = new_registry()
HTTP_SECONDS = Histogram(
    "metering_http_request_duration_seconds", "Time to answer an HTTP request, by method, route template "
    "(unmatched: no route) and status code (its _count: requests answered).", ["method", "route", "status"],
    buckets=LATENCY_BUCKETS, registry=REGISTRY)
ANSWER_CACHE = query_cache_lookups(REGISTRY, "gateway_answers")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
access = access_logger()
_timers: dict[tuple[str, str, int], Histogram] = {}


def route_of(scope: Scope) -> str:
    """The template of the route that handled the request, else UNMATCHED."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def _observe(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    timer = _timers.get(key)
    if timer is None:
        timer = _timers[key] = HTTP_SECONDS.labels(method, route, str(status))
    timer.observe(seconds)


class MetricsMiddleware(HTTPMiddleware):
    """Pure ASGI, so it sees every response, errors and 404s included."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500  # no response started: the server answers 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - started
            method = scope["method"] if scope["method"] in METHODS else "other"
            route = route_of(scope)
            _observe(method, route, status, seconds)
            if access.isEnabledFor(logging.INFO):
                _access_line(scope, method, route, status, seconds)


def _access_line(scope: Scope, method: str, route: str, status: int, seconds: float) -> None:
    client = scope.get("client")
    peer = f"{client[0]}:{client[1]}" if client else "-"
    path, ms = scope["path"], seconds * 1000
    access.info("http %s %s %d %.1fms route=%s peer=%s request_id=%s", method, path, status, ms, route, peer,
                request_id.get(), extra={"method": method, "path": path, "route": route, "status": status,
                                         "duration_ms": round(ms, 3), "peer": peer})


@openapi.documented(openapi.Doc(
    "The gateway's Prometheus metrics", tags=("meta",), security=False,
    description="Prometheus text exposition format; the metrics are listed in docs/metrics.md.",
))
async def metrics(request: Request) -> Response:
    """The Prometheus text exposition of the gateway's metrics."""
    return Response(exposition(REGISTRY), media_type=CONTENT_TYPE)
