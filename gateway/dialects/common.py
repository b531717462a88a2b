"""What the compatible dialects share besides the error table: handles on QueryService
methods, and calls made with credentials that did not come in the Authorization header
(QueryLake carries them in the JSON body). Their endpoints render failures with
gateway.http.errors.renders_errors and their own renderer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import message as pb_message
from starlette.requests import HTTPConnection

from gateway.http.errors import GatewayError
from gateway.upstream.client import checked_credential, deadline, invoke, metadata, upstream
from metering.v1 import query_pb2

QUERY_SERVICE = query_pb2.DESCRIPTOR.services_by_name["QueryService"]


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
    checked_credential(bearer)
    pairs = [pair for pair in metadata(conn) if pair[0] != "authorization"]
    pairs.append(("authorization", f"Bearer {bearer}"))
    return await invoke(method, request, tuple(pairs), deadline(conn, upstream(conn).timeout))
