"""What the compatible dialects share besides the error table: endpoints that render
their failures in the dialect's shape, handles on QueryService methods, and calls
made with credentials that did not come in the Authorization header (QueryLake
carries them in the JSON body)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import message as pb_message
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from gateway.http.errors import GatewayError
from gateway.upstream.client import deadline, metadata, upstream
from metering.v1 import query_pb2

Endpoint = Callable[[Request], Awaitable[Response]]
QUERY_SERVICE = query_pb2.DESCRIPTOR.services_by_name["QueryService"]


def renders_errors(render: Callable[[GatewayError], Response]) -> Callable[[Endpoint], Endpoint]:
    """Endpoint decorator: a GatewayError becomes `render(err)`. The endpoint also carries
    `render_error`, which the app uses for errors raised outside it (405, 413, 500)."""

    def wrap(endpoint: Endpoint) -> Endpoint:
        async def handler(request: Request) -> Response:
            try:
                return await endpoint(request)
            except GatewayError as err:
                return render(err)

        handler.__name__ = endpoint.__name__
        handler.__qualname__ = endpoint.__qualname__
        handler.__doc__ = endpoint.__doc__
        handler.__dict__.update(endpoint.__dict__)
        handler.render_error = render  # type: ignore[attr-defined]
        return handler

    return wrap


def query_method(conn: HTTPConnection, name: str) -> Any:
    """A QueryService method on the shared channel, e.g. query_method(request, "QueryUsage")."""
    method = QUERY_SERVICE.methods_by_name[name]
    reply_type: type[pb_message.Message] = getattr(query_pb2, method.output_type.name)
    return upstream(conn).unary(f"/{QUERY_SERVICE.full_name}/{name}", reply_type)


async def call(conn: HTTPConnection, method: Callable[..., Any], request: pb_message.Message,
               *, bearer: str | None = None) -> Any:
    """Calls `method` for this HTTP request; `bearer` replaces the credentials of its headers."""
    if bearer is None:
        return await upstream(conn).call(conn, method, request)
    if not bearer or not (bearer.isascii() and bearer.isprintable()):  # gRPC metadata could not carry it
        raise GatewayError(grpc.StatusCode.UNAUTHENTICATED, "malformed credentials")
    pairs = [pair for pair in metadata(conn) if pair[0] != "authorization"]
    pairs.append(("authorization", f"Bearer {bearer}"))
    try:
        return await method(request, metadata=tuple(pairs), timeout=deadline(conn, upstream(conn).timeout))
    except grpc.aio.AioRpcError as err:
        raise GatewayError.from_rpc(err) from None
