"""The one place gRPC statuses become HTTP statuses, the error every route raises, and
the one way a route renders it.

Every failure inside the gateway, whether the server's (a gRPC status) or the
gateway's own (a bad query parameter, a body that is not JSON, a request the
dialect's validation refuses), is a `GatewayError`: a gRPC code, a message and the
`google.rpc.Status` details. Each dialect renders it in its own shape with its
`Renderer`, set on its endpoints with `renders_errors`; the HTTP status comes from
`HTTP_STATUS`, the table grpc-gateway uses (runtime.HTTPStatusFromCode), unless the
error names its own (405, 413, FastAPI's 422).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, json_format
from google.rpc import error_details_pb2, status_pb2
from starlette.requests import Request
from starlette.responses import Response

STATUS_DETAILS_KEY = "grpc-status-details-bin"

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

# Routing and transport failures that happen before any RPC: HTTP status -> gRPC code
# (grpc-gateway's DefaultRoutingErrorHandler, plus 413 for the body limit).
_CODE_FOR_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class GatewayError(Exception):
    """A failed call, in gRPC terms. `http_status` overrides the table only for
    failures with no gRPC equivalent (405 routing, 413 body limit, FastAPI's 422)."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        details: list[any_pb2.Any] | None = None,
        *,
        http_status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = list(details or ())
        self.http_status = http_status or HTTP_STATUS.get(code, 500)
        self.headers = dict(headers or {})
        if self.http_status == 503 and not any(name.lower() == "retry-after" for name in self.headers):
            self.headers["Retry-After"] = str(_retry_after(self.details))

    @classmethod
    def from_rpc(cls, err: grpc.aio.AioRpcError) -> GatewayError:
        status = _rich_status(err)
        code = err.code()
        if status is not None and status.code == code.value[0]:
            return cls(code, status.message, list(status.details))
        return cls(code, err.details() or code.name.lower().replace("_", " "))

    @classmethod
    def from_http(cls, status: int, message: str, headers: dict[str, str] | None = None) -> GatewayError:
        code = _CODE_FOR_HTTP.get(status, grpc.StatusCode.UNKNOWN if status < 500 else grpc.StatusCode.INTERNAL)
        return cls(code, message, http_status=status, headers=headers)

    @property
    def grpc_code(self) -> int:
        return int(self.code.value[0])

    def field_violations(self) -> list[error_details_pb2.BadRequest.FieldViolation]:
        """The BadRequest field violations among the details."""
        found: list[error_details_pb2.BadRequest.FieldViolation] = []
        for detail in self.details:
            bad = error_details_pb2.BadRequest()
            if detail.Is(bad.DESCRIPTOR) and detail.Unpack(bad):
                found.extend(bad.field_violations)
        return found

    def details_json(self) -> list[dict[str, Any]]:
        out = []
        for detail in self.details:
            try:
                out.append(json_format.MessageToDict(detail, preserving_proto_field_name=True))
            except (TypeError, KeyError, json_format.Error):  # a detail type this process does not know
                out.append({"@type": detail.type_url, "value": detail.value.hex()})
        return out


def _retry_after(details: list[any_pb2.Any]) -> int:
    """A 503's Retry-After: the RetryInfo among the details in whole seconds (rounded up, at least
    1), else 1. UNAVAILABLE (Postgres or the server out of reach) is always worth a retry."""
    for detail in details:
        info = error_details_pb2.RetryInfo()
        if detail.Is(info.DESCRIPTOR) and detail.Unpack(info):
            return max(1, math.ceil(int(info.retry_delay.ToNanoseconds()) / 1e9))
    return 1


def invalid_argument(field: str, description: str, reason: str = "INVALID_VALUE") -> GatewayError:
    """A gateway-side validation failure, shaped like the server's own (BadRequest naming the field)."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=field, description=description, reason=reason)
    ]))
    return GatewayError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {description}" if field else description, [detail])


def _rich_status(err: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    for key, value in err.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status()
            try:
                status.ParseFromString(value)
            except Exception:
                return None
            return status
    return None



Endpoint = Callable[[Request], Awaitable[Response]]
Renderer = Callable[[GatewayError], Response]  # a dialect's error shape
RENDER_ERROR = "render_error"  # the attribute naming an endpoint's Renderer


def renders_errors(render: Renderer) -> Callable[[Endpoint], Endpoint]:
    """Endpoint decorator, the one every dialect's endpoints (native routes included) use: a
    GatewayError raised by the endpoint becomes `render(err)`, the dialect's error shape. The
    endpoint also carries its renderer as `render_error` (see `renderer_of`), which the app uses for
    errors raised outside it (404 and 405 from routing, 413 from the body limit, 500)."""

    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def handler(request: Request) -> Response:
            try:
                return await endpoint(request)
            except GatewayError as err:
                return render(err)

        handler.__dict__[RENDER_ERROR] = render
        return handler

    return wrap


def renderer_of(endpoint: object) -> Renderer | None:
    """The Renderer an endpoint (or route) was given with `renders_errors`, if any."""
    render = getattr(endpoint, RENDER_ERROR, None)
    return render if callable(render) else None
