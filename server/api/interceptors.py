"""The one place errors become gRPC statuses, and the one log line per RPC."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import asyncpg
import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from prometheus_client import Histogram

from metering.logs import access_logger
from metering.logs import request_id as request_id
from metering.metrics import GATEWAY_USER_AGENT
from server.api.context import Context
from server.api.ratelimit import RateLimited, RateLimiter
from server.core.errors import MeteringError
from server.core.metrics import RPC_SECONDS, via_gateway
from server.storage.notify import CONNECTION_LOST

log = logging.getLogger(__name__)
access = access_logger()  # one line per RPC, when METERING_ACCESS_LOG is on (metering/logs.py)
ERROR_DOMAIN = "metering.v1"

# What a client is told of a database error: (gRPC code, ErrorInfo reason, message), by
# SQLSTATE, else by its class (anything else is INTERNAL). Never the driver's class name, the
# SQLSTATE or the SQL: those go to the log, with the request id.
_UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE", "database unavailable; retry")
_TEXT = (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_VALUE",
         "a text value holds a character that cannot be stored (such as NUL)")
_SQLSTATES = {
    "22003": (grpc.StatusCode.OUT_OF_RANGE, "OUT_OF_RANGE", "a number is out of the range the service keeps"),
    "22008": (grpc.StatusCode.OUT_OF_RANGE, "OUT_OF_RANGE", "a time is out of the range the service keeps"),
    "22021": _TEXT,  # character not in repertoire
    "22P05": _TEXT,  # untranslatable character
    "22001": (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_VALUE", "a value is too long"),
}
_SQLSTATE_CLASSES = {
    "08": _UNAVAILABLE,  # connection exception
    "57": _UNAVAILABLE,  # operator intervention (shutdown, cancel)
    "53": (grpc.StatusCode.RESOURCE_EXHAUSTED, "DATABASE_BUSY", "the database is out of resources; retry later"),
    "40": (grpc.StatusCode.ABORTED, "CONCURRENT_CHANGE", "aborted by a concurrent change; retry"),
    "22": (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_VALUE", "a value is invalid"),  # other data exceptions
    "23": (grpc.StatusCode.FAILED_PRECONDITION, "CONFLICT", "conflicts with stored data"),  # integrity constraint
}
# Postgres lost at any point of a call (server/storage/notify.CONNECTION_LOST): a write either
# committed before the loss or wrote nothing (one transaction, request keys claimed in it), so the
# call may be retried as it is: UNAVAILABLE with this RetryInfo (REST: 503, Retry-After), never INTERNAL.
DATABASE_RETRY_SECONDS = 1.0


def _status(
    code: grpc.StatusCode, message: str, reason: str, field: str | None = None, description: str | None = None
) -> grpc.Status:
    info = any_pb2.Any()
    metadata = {"field": field} if field else {}
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata))
    details = [info]
    if field is not None and code == grpc.StatusCode.INVALID_ARGUMENT:
        bad = any_pb2.Any()
        bad.Pack(error_details_pb2.BadRequest(
            field_violations=[error_details_pb2.BadRequest.FieldViolation(
                field=field, description=description or message, reason=reason,
            )]
        ))
        details.append(bad)
    status: grpc.Status = rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=details))
    return status


def _retry_later(code: grpc.StatusCode, message: str, reason: str, seconds: float) -> grpc.Status:
    """A status with its ErrorInfo and a RetryInfo saying when to try again."""
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN))
    retry = any_pb2.Any()
    delay = error_details_pb2.RetryInfo()
    delay.retry_delay.FromNanoseconds(max(1, int(seconds * 1e9)))
    retry.Pack(delay)
    status: grpc.Status = rpc_status.to_status(status_pb2.Status(
        code=code.value[0], message=message, details=[info, retry]))
    return status


def _rate_limited(exc: RateLimited) -> grpc.Status:
    return _retry_later(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), "RATE_LIMITED", exc.retry_after)


def _database_unavailable(exc: BaseException) -> grpc.Status:
    if isinstance(exc, asyncpg.InternalClientError):  # also what a bug in the driver would raise: keep it seen
        log.warning("database connection lost: %s", exc)
    return _retry_later(grpc.StatusCode.UNAVAILABLE, "database unavailable; retry", "DATABASE_UNAVAILABLE",
                        DATABASE_RETRY_SECONDS)


def to_status(exc: BaseException) -> grpc.Status:
    if isinstance(exc, RateLimited):
        return _rate_limited(exc)
    if isinstance(exc, MeteringError):
        return _status(exc.code, exc.message, exc.reason, exc.field, getattr(exc, "description", None))
    if isinstance(exc, CONNECTION_LOST):
        return _database_unavailable(exc)
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = str(getattr(exc, "sqlstate", "") or "")
        mapped = _SQLSTATES.get(sqlstate) or _SQLSTATE_CLASSES.get(sqlstate[:2])
        if mapped is None:
            log.error("database error %s %s", sqlstate, type(exc).__name__, exc_info=exc)
            return _status(grpc.StatusCode.INTERNAL, "internal database error", "INTERNAL")
        log.warning("database error %s %s answered %s, request_id=%s: %s", sqlstate, type(exc).__name__,
                    mapped[0].name, request_id.get(), exc)
        code, reason, message = mapped
        return _status(code, message, reason)
    log.error("unhandled error", exc_info=exc)
    return _status(grpc.StatusCode.INTERNAL, "internal error", "INTERNAL")


def _cost(request: Any) -> int:
    """Events a call counts for the rate limit: a batch its events, an OTLP export its spans,
    anything else 1."""
    events = getattr(request, "events", None)
    if events is not None and not isinstance(events, (str, bytes)):
        return max(1, len(events))
    resources = getattr(request, "resource_spans", None)  # opentelemetry's ExportTraceServiceRequest
    if resources is not None:
        return max(1, sum(len(scope.spans) for resource in resources for scope in resource.scope_spans))
    return 1


Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class ServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, limiter: RateLimiter | None = None) -> None:
        self.limiter = limiter

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        meta = {k: v if isinstance(v, str) else v.decode() for k, v in handler_call_details.invocation_metadata or ()}
        rid = meta.get("x-request-id", "-")
        gateway = meta.get("user-agent", "").startswith(GATEWAY_USER_AGENT)
        auth = meta.get("authorization") if self.limiter is not None else None
        limit = (self.limiter, auth) if self.limiter is not None and auth else None
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary, method, rid, limit, gateway),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _streaming(handler.stream_stream, method, rid, limit, gateway),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _streaming(handler.unary_stream, method, rid, None, gateway),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


_timers: dict[tuple[str, str], Histogram] = {}  # (method, code) -> its RPC_SECONDS child


def _log(method: str, rid: str, code: str, started: float, context: Context) -> None:
    """The end of a call: its latency in RPC_SECONDS, and its access line."""
    seconds = time.perf_counter() - started
    timer = _timers.get((method, code))
    if timer is None:
        timer = _timers[method, code] = RPC_SECONDS.labels(method, code)
    timer.observe(seconds)
    if access.isEnabledFor(logging.INFO):  # context.peer() is a call into grpc: not for a line nobody keeps
        peer = context.peer()
        access.info("rpc %s %s %.1fms peer=%s request_id=%s", method, code, seconds * 1000, peer, rid,
                    extra={"method": method, "code": code, "duration_ms": round(seconds * 1000, 3), "peer": peer})


def _unary(
    behavior: Callable[..., Any], method: str, rid: str, limit: tuple[RateLimiter, str] | None = None,
    gateway: bool = False,
) -> Callable[..., Any]:
    async def wrapper(request: Any, context: Context) -> Any:
        request_id.set(rid)
        via_gateway.set(gateway)
        started = time.perf_counter()
        try:
            if limit is not None:
                limit[0].acquire(limit[1], _cost(request))
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


async def _paced(requests: Any, limiter: RateLimiter, auth: str) -> Any:
    """A request stream slowed to the caller's rate (each message costs 1): backpressure, no error."""
    async for item in requests:
        while (wait := limiter.wait_time(auth, 1)) > 0:
            await asyncio.sleep(wait)
        yield item


def _streaming(
    behavior: Callable[..., Any], method: str, rid: str, limit: tuple[RateLimiter, str] | None = None,
    gateway: bool = False,
) -> Callable[..., Any]:
    async def wrapper(request: Any, context: Context) -> Any:
        request_id.set(rid)
        via_gateway.set(gateway)
        started = time.perf_counter()
        try:
            if limit is not None and hasattr(request, "__aiter__"):
                request = _paced(request, *limit)
            elif limit is not None:
                limit[0].acquire(limit[1], _cost(request))
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
