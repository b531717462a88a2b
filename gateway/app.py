"""The Starlette application: one shared grpc.aio channel from the lifespan, the
native routes generated from the protos, the REST dialects, /openapi.json, /docs and /dashboard.

Errors: every route renders failures in its dialect's shape (gateway.http.errors.renders_errors).
Errors raised outside an endpoint (404 and 405 from routing, 413 from the body limit, 500) are
rendered by the matched route's or endpoint's renderer, else by the dialect owning the path prefix.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from gateway.dashboard import pages as dashboard_pages
from gateway.dialects import fastapi_style, otlp, querylake, token_usage, usage_log
from gateway.dialects.openai import common as openai_dialect
from gateway.dialects.openai import costs as openai_costs
from gateway.dialects.openai import spend_alerts as openai_spend_alerts
from gateway.dialects.openai import spend_limits as openai_spend_limits
from gateway.dialects.openai import usage as openai_usage
from gateway.http import openapi
from gateway.http.body_limit import BodyLimitMiddleware
from gateway.http.errors import GatewayError, Renderer, renderer_of
from gateway.http.metrics import MetricsMiddleware, metrics
from gateway.http.request_id import RequestIdMiddleware
from gateway.http.retry_after import RetryAfterMiddleware
from gateway.native import exports as native_exports
from gateway.native import routes as native
from gateway.upstream.client import DEFAULT_TIMEOUT, Upstream, upstream
from metering.metrics import GATEWAY_USER_AGENT

log = logging.getLogger(__name__)
DEFAULT_TARGET = "127.0.0.1:50051"
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # the server's own limit (server/runtime/app.py)
TITLE = "Metering REST gateway"
VERSION = "1"
# Paths with no matching route get the error shape of the dialect owning their prefix (longest first).
PREFIX_RENDERERS: list[tuple[str, Renderer]] = [
    (native.PREFIX, native.render_error),
    (openai_dialect.PREFIX, openai_dialect.render_error),
    (querylake.PREFIX, querylake.render_error),
    (token_usage.PREFIX, token_usage.render_error),
]


class Gateway(Starlette):
    def build_middleware_stack(self) -> ASGIApp:
        # Outermost, so even a 500 from ServerErrorMiddleware carries X-Request-Id; then the metrics,
        # which time every request (access lines with its id).
        return RequestIdMiddleware(MetricsMiddleware(RetryAfterMiddleware(super().build_middleware_stack())))


@openapi.documented(openapi.Doc(
    "Health of the gateway and of the gRPC server behind it", tags=("meta",), security=False,
    description='200 `{"status": "SERVING"}`; 503 `{"status": "NOT_SERVING", "error": <gRPC code>}` when the '
                "server answers otherwise or not at all (a load balancer takes the gateway out).",
    errors={503: ("The gRPC server is not serving or cannot be reached", None)},
))
async def healthz(request: Request) -> JSONResponse:
    stub = health_pb2_grpc.HealthStub(upstream(request).channel)
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
    except grpc.aio.AioRpcError as err:
        return JSONResponse({"status": "NOT_SERVING", "error": err.code().name}, status_code=503)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return JSONResponse({"status": status}, status_code=200 if status == "SERVING" else 503)


@openapi.documented(openapi.Doc("This document", tags=("meta",), security=False))
async def openapi_json(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.openapi)


def _renderer(request: Request) -> Renderer:
    for matched in (request.scope.get("route"), request.scope.get("endpoint")):
        render = renderer_of(matched)
        if render is not None:
            return render
    path = request.url.path
    for prefix, render in sorted(PREFIX_RENDERERS, key=lambda p: -len(p[0])):
        if path.startswith(prefix):
            return render
    return fastapi_style.render_error


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _renderer(request)(GatewayError.from_http(exc.status_code, exc.detail, dict(exc.headers or {})))


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The client left before its request was read (or the connection guard closed it at a deadline,
    # gateway/http/connections.py): nobody is there to answer, and nothing went wrong here.
    log.debug("client gone during %s %s", request.method, request.url.path)
    return Response(status_code=499)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _renderer(request)(GatewayError(grpc.StatusCode.INTERNAL, "internal error"))


def timeout_from_env() -> float:
    raw = os.environ.get("METERING_GATEWAY_TIMEOUT")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise ValueError(f"METERING_GATEWAY_TIMEOUT must be seconds in (0, 3600], got {raw!r}")
    return value


def routes() -> list[BaseRoute]:
    # Starlette tries routes in order. The dialects' paths are disjoint, so the order only decides
    # how many routes a request is matched against: the usage log (seed 002's POST /usage, the hot
    # ingest route) first, before the ~40 native routes.
    return [
        *usage_log.routes(),
        *otlp.routes(),  # OTLP/HTTP POST /v1/traces: GenAI spans as usage
        Route("/healthz", healthz),
        Route("/openapi.json", openapi_json),
        Route("/metrics", metrics),
        *dashboard_pages.routes(),  # /dashboard, /docs and their static files
        *native_exports.routes(),  # before the native routes: GET /v1/usage:export, /v1/events:export
        *native.routes(),
        *querylake.routes(),
        *token_usage.routes(),
        *openai_usage.routes(),
        *openai_costs.routes(),
        *openai_spend_limits.routes(),
        *openai_spend_alerts.routes(),
    ]


def create_app(
    target: str | None = None, *, timeout: float | None = None, max_body_size: int = MAX_BODY_BYTES
) -> Starlette:
    """`target`: the gRPC server or servers (default METERING_GRPC_ADDR, else 127.0.0.1:50051); `timeout`: the
    deadline of every call in seconds (default METERING_GATEWAY_TIMEOUT, else 30)."""
    grpc_target = target or os.environ.get("METERING_GRPC_ADDR") or DEFAULT_TARGET
    call_timeout = timeout if timeout is not None else timeout_from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.primary_user_agent", GATEWAY_USER_AGENT),  # the server counts our events as path "rest"
                   # several servers ("ipv4:10.0.0.1:50051,10.0.0.2:50051", a DNS name with several records):
                   # calls spread over those that answer, a dead one skipped (docs/scaling.md#replicas)
                   ("grpc.lb_policy_name", "round_robin"),
                   ("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 2000)]
        async with grpc.aio.insecure_channel(grpc_target, options=options) as channel:
            app.state.upstream = Upstream(channel, call_timeout)
            yield

    app = Gateway(
        routes=routes(),
        lifespan=lifespan,
        middleware=[Middleware(BodyLimitMiddleware, max_body_size=max_body_size)],
        exception_handlers={HTTPException: _http_error, ClientDisconnect: _client_gone, Exception: _server_error},
    )
    app.state.openapi = openapi.build(
        app.routes, title=TITLE, version=VERSION,
        description="REST over the metering gRPC API: native routes from the protos' google.api.http options, "
                    "and the compatible dialects.",
    )
    return app
