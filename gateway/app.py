"""The Starlette application: one shared grpc.aio channel from the lifespan.

The REST dialects (issue 5) mount here; until then the gateway answers
/healthz from the server's gRPC health service.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def healthz(request: Request) -> JSONResponse:
    stub = health_pb2_grpc.HealthStub(request.app.state.channel)
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
    except grpc.aio.AioRpcError as err:
        return JSONResponse({"status": "NOT_SERVING", "error": err.code().name}, status_code=503)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return JSONResponse({"status": status}, status_code=200 if status == "SERVING" else 503)


def create_app(target: str | None = None) -> Starlette:
    grpc_target = target or os.environ.get("METERING_GRPC_ADDR") or "127.0.0.1:50051"

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with grpc.aio.insecure_channel(grpc_target) as channel:
            app.state.channel = channel
            yield

    return Starlette(routes=[Route("/healthz", healthz)], lifespan=lifespan)
