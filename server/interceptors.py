"""The one place errors become gRPC statuses, and the one log line per RPC."""

from __future__ import annotations

import contextvars
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from server.errors import MeteringError

log = logging.getLogger(__name__)
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
ERROR_DOMAIN = "metering.v1"

# SQLSTATE class -> gRPC code (anything else is INTERNAL).
_SQLSTATE_CLASSES = {
    "08": grpc.StatusCode.UNAVAILABLE,  # connection exception
    "57": grpc.StatusCode.UNAVAILABLE,  # operator intervention (shutdown, cancel)
    "53": grpc.StatusCode.RESOURCE_EXHAUSTED,  # insufficient resources
    "40": grpc.StatusCode.ABORTED,  # serialization failure, deadlock
    "22": grpc.StatusCode.INVALID_ARGUMENT,  # data exception
    "23": grpc.StatusCode.FAILED_PRECONDITION,  # integrity constraint
}


def _status(
    code: grpc.StatusCode, message: str, reason: str, field: str | None = None, description: str | None = None
) -> grpc.Status:
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata={"field": field} if field else {}))
    details = [info]
    if field is not None and code == grpc.StatusCode.INVALID_ARGUMENT:
        bad = any_pb2.Any()
        bad.Pack(error_details_pb2.BadRequest(
            field_violations=[error_details_pb2.BadRequest.FieldViolation(
                field=field, description=description or message, reason=reason,
            )]
        ))
        details.append(bad)
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=details))


def to_status(exc: BaseException) -> grpc.Status:
    if isinstance(exc, MeteringError):
        return _status(exc.code, exc.message, exc.reason, exc.field, getattr(exc, "description", None))
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", "") or ""
        code = _SQLSTATE_CLASSES.get(sqlstate[:2], grpc.StatusCode.INTERNAL)
        if code == grpc.StatusCode.INTERNAL:
            log.exception("database error %s", sqlstate)
            return _status(code, "internal database error", "INTERNAL")
        return _status(code, f"database: {type(exc).__name__}", f"SQLSTATE_{sqlstate}")
    if isinstance(exc, (OSError, asyncpg.InterfaceError, ConnectionError)):
        return _status(grpc.StatusCode.UNAVAILABLE, "database unavailable; retry", "DATABASE_UNAVAILABLE")
    log.error("unhandled error", exc_info=exc)
    return _status(grpc.StatusCode.INTERNAL, "internal error", "INTERNAL")


class ServerInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method
        rid = dict(details.invocation_metadata or ()).get("x-request-id", "-")
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary, method, rid),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _streaming(handler.stream_stream, method, rid),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _streaming(handler.unary_stream, method, rid),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _log(method: str, rid: str, code: str, started: float, context: grpc.aio.ServicerContext) -> None:
    log.info("rpc %s %s %.1fms peer=%s request_id=%s", method, code, (time.perf_counter() - started) * 1000,
             context.peer(), rid)


def _unary(behavior: Callable[..., Any], method: str, rid: str) -> Callable[..., Any]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        request_id.set(rid)
        started = time.perf_counter()
        try:
            response = await behavior(request, context)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                _log(method, rid, "ABORTED_BY_HANDLER", started, context)
                raise
            status = to_status(exc)
            _log(method, rid, status.code.name, started, context)
            await context.abort_with_status(status)
        _log(method, rid, "OK", started, context)
        return response

    return wrapper


def _streaming(behavior: Callable[..., Any], method: str, rid: str) -> Callable[..., Any]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        request_id.set(rid)
        started = time.perf_counter()
        try:
            result = behavior(request, context)
            if inspect.isasyncgen(result):
                async for item in result:
                    yield item
            else:
                await result
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            status = to_status(exc)
            _log(method, rid, status.code.name, started, context)
            await context.abort_with_status(status)
        _log(method, rid, "OK", started, context)

    return wrapper


__all__ = ["ServerInterceptor", "request_id", "to_status"]
