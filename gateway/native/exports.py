"""GET /v1/usage:export and GET /v1/events:export: an ExportService stream as CSV or NDJSON.

The query parameters are those of the native GET /v1/usage (QueryUsageRequest) and GET
/v1/events (ListEventsRequest), read the same way, plus `format` (`csv` or `ndjson`; without
it the Accept header decides: text/csv or application/x-ndjson, default CSV). Rows, columns and
encodings are metering.exports' (docs/exports.md).

Constant memory: the body is a StreamingResponse fed by the gRPC server stream, one chunk at a
time; each chunk is read only once the previous one was written to the socket, so a slow client
slows the server's reading (gRPC flow control), and a client gone cancels the call.

Errors: anything wrong before the first chunk (a bad parameter, credentials, scope) is answered
in the native error shape with its HTTP status. A failure after the body started cannot change
the status any more: NDJSON then ends with one line `{"error": {code, message, details}}` (the
native error shape), and CSV, which has no place for it, is cut: the connection closes without
the chunked body's last chunk, which every HTTP client reports as an incomplete body (uvicorn
logs it as one line, "ASGI callable returned without completing response", after this module's
warning naming the error).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncGenerator, Callable
from typing import Any

import grpc
from google.protobuf import message as pb_message
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.http import openapi
from gateway.http.errors import GatewayError, invalid_argument, renders_errors
from gateway.native import protojson
from gateway.native.routes import render_error
from gateway.upstream.client import deadline, metadata, upstream
from metering import exports
from metering.v1 import exports_pb2, query_pb2, records_pb2

log = logging.getLogger(__name__)
SERVICE = exports_pb2.DESCRIPTOR.services_by_name["ExportService"]
_ACCEPT = {"text/csv": "csv", "application/x-ndjson": "ndjson", "application/ndjson": "ndjson",
           "application/jsonl": "ndjson"}
FILTER_PREFIX = "filter."  # usage exports: filter.<field>=<value>
Chunk = exports_pb2.ExportUsageChunk | exports_pb2.ExportEventsChunk


class ExportFormat(BaseModel):
    format: str | None = Field(None, pattern="^(csv|ndjson)$", description=(
        "csv (RFC 4180, header row) or ndjson (one JSON object per line); default: from the Accept header "
        "(text/csv, application/x-ndjson), else csv"))


class UsageExportQuery(ExportFormat):
    """GET /v1/usage's parameters (QueryUsageRequest), plus format."""

    start_time: str = Field(description="inclusive, RFC 3339; required")
    end_time: str | None = Field(None, description="exclusive, RFC 3339; default now")
    width: str | None = Field(None, description="1m, 1h, 1d (default), month or all")
    time_zone: str | None = Field(None, description="IANA zone of the buckets; default UTC")
    filter_field: list[str] | None = Field(None, alias="filter.<field>", description=(
        "filters: filter.model=gpt-4o&filter.model=gpt-4o-mini&filter.labels.size=1024 keeps events whose model is "
        "either and whose label size is 1024 (any dimension or labels.<name>; an empty value matches unset)"))
    group_by: list[str] | None = Field(None, description="dimensions and labels.<name>; one column each")
    metrics: list[str] | None = Field(None, description="the UsageMetrics columns; default all")
    page_size: int | None = Field(None, description="buckets per upstream chunk (1..1000, default 100)")
    page_token: str | None = Field(None, description="start after this cursor (ExportUsageChunk.cursor)")


class EventExportQuery(ExportFormat):
    """GET /v1/events's parameters (ListEventsRequest), plus format."""

    start_time: str | None = Field(None, description="inclusive, RFC 3339")
    end_time: str | None = Field(None, description="exclusive, RFC 3339")
    project_ids: list[str] | None = Field(None, description="only these projects (repeat the parameter)")
    user_ids: list[str] | None = Field(None, description="only these users")
    api_key_ids: list[str] | None = Field(None, description="only these API keys")
    client_ids: list[str] | None = Field(None, description="only these clients")
    models: list[str] | None = Field(None, description="only these models")
    kinds: list[str] | None = Field(None, description="only these kinds (completions, embeddings, ...)")
    include_voided: bool | None = Field(None, description="also voided events (active false)")
    include_payload: bool | None = Field(None, description="add the payload columns")
    page_size: int | None = Field(None, description="events per upstream chunk (1..1000, default 1000)")
    page_token: str | None = Field(None, description="start after this cursor (ExportEventsChunk.cursor)")
    skip: int | None = Field(None, description="events to skip before the first row")


_ERRORS: dict[int, tuple[str, Any]] = {
    400: ("A bad parameter, in the native error shape {code, message, details}", None),
    401: ("Missing or invalid credentials", None),
}
_DESCRIPTION = ("Streams {what} in constant memory, as CSV (text/csv, a header row) or NDJSON "
                "(application/x-ndjson). Same parameters and scoping as {route}. Errors before the body are "
                "native errors; after it started, NDJSON ends with an {{\"error\": ...}} line and CSV is cut "
                "(incomplete chunked body). See docs/exports.md.")


def _format(request: Request) -> str:
    asked = request.query_params.get("format")
    if asked is not None:
        if asked not in exports.FORMATS:
            raise invalid_argument("format", f"csv or ndjson, not {asked[:32]!r}")
        return asked
    for part in request.headers.get("accept", "").split(","):
        found = _ACCEPT.get(part.split(";", 1)[0].strip().lower())
        if found is not None:
            return found
    return "csv"


def _message(request: Request, message: pb_message.Message) -> None:
    """The request message from the query parameters, as the native routes read them; for a usage
    export also `filter.<field>=<value>` (repeated: any of the values), the QueryUsageRequest filters
    that a query string cannot otherwise carry."""
    for key, values in protojson.group_params(request.query_params.multi_items()).items():
        field = key.removeprefix(FILTER_PREFIX)
        if field != key and isinstance(message, query_pb2.QueryUsageRequest):
            if not field:
                raise invalid_argument(key, "name the field: filter.<field>=<value>")
            message.filters.add(field=field, values=values)
        elif key != "format":
            protojson.set_path(message, key, values, ignore_unknown=True)


def _timeout(request: Request) -> float | None:
    """No deadline (an export takes as long as it takes), unless the client sent Grpc-Timeout."""
    timeout = deadline(request, math.inf)
    return None if math.isinf(timeout) else timeout


async def _stream(request: Request, method: str, message: pb_message.Message, reply: type[Chunk],
                  columns: exports.Columns, name: str) -> Response:
    fmt = _format(request)
    stream: Any = upstream(request).channel.unary_stream(
        f"/{SERVICE.full_name}/{method}", request_serializer=_serialize, response_deserializer=reply.FromString)
    call: Any = stream(message, metadata=metadata(request), timeout=_timeout(request))
    try:
        first = await call.read()
    except grpc.aio.AioRpcError as err:
        raise GatewayError.from_rpc(err) from None
    headers = {"Content-Disposition": f'attachment; filename="{name}.{fmt}"', "Cache-Control": "no-store"}
    return ExportResponse(_body(call, first, fmt, columns), media_type=exports.MEDIA_TYPES[fmt], headers=headers)


def _serialize(message: pb_message.Message) -> bytes:
    return bytes(message.SerializeToString())


class _Cut(Exception):
    """The stream failed after the body started, and the format has no way to say so."""


async def _body(call: Any, first: Any, fmt: str, columns: exports.Columns) -> AsyncGenerator[str, None]:
    chunk = first
    try:
        yield exports.header_text(fmt, columns)
        while chunk is not grpc.aio.EOF:
            text, _ = exports.chunk_text(fmt, columns, chunk)
            yield text
            chunk = await call.read()
    except grpc.aio.AioRpcError as rpc_error:
        err = GatewayError.from_rpc(rpc_error)
        log.warning("export ended early by %s: %s", err.code.name, err.message)
        if fmt != "ndjson":
            raise _Cut from None
        yield json.dumps({"error": {"code": err.grpc_code, "message": err.message, "details": err.details_json()}},
                         separators=(",", ":")) + "\n"
    finally:
        call.cancel()  # a no-op once the call ended; otherwise (the client left) the server stops reading


class ExportResponse(StreamingResponse):
    """A StreamingResponse whose body is closed when the response ends however it ends (the
    upstream call is cancelled at once when the client leaves), and which, when the body is
    _Cut, ends without the body's last message: the server then closes the connection and the
    client sees an incomplete body."""

    def __init__(self, body: AsyncGenerator[str, None], **kwargs: Any) -> None:
        super().__init__(body, **kwargs)
        self._body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except _Cut:
            return
        finally:
            await self._body.aclose()


def _endpoint(method: str, request_type: Callable[[], pb_message.Message], reply: type[Chunk],
              columns: Callable[[Any], exports.Columns], name: str) -> Callable[[Request], Any]:
    @renders_errors(render_error)
    async def export(request: Request) -> Response:
        message = request_type()
        _message(request, message)
        return await _stream(request, method, message, reply, columns(message), name)

    return export


export_usage = openapi.documented(openapi.Doc(
    "Export usage buckets as CSV or NDJSON",
    _DESCRIPTION.format(what="the buckets of a usage query", route="GET /v1/usage"),
    tags=("ExportService",), query=UsageExportQuery, errors=_ERRORS,
))(_endpoint("ExportUsage", query_pb2.QueryUsageRequest, exports_pb2.ExportUsageChunk,
             lambda m: exports.usage_columns(list(m.group_by), list(m.metrics)), "usage"))
export_events = openapi.documented(openapi.Doc(
    "Export events as CSV or NDJSON",
    _DESCRIPTION.format(what="stored events, newest first", route="GET /v1/events"),
    tags=("ExportService",), query=EventExportQuery, errors=_ERRORS,
))(_endpoint("ExportEvents", records_pb2.ListEventsRequest, exports_pb2.ExportEventsChunk,
             lambda m: exports.event_columns(m.include_payload), "events"))


def routes() -> list[Route]:
    return [Route("/v1/usage:export", export_usage, methods=["GET"]),
            Route("/v1/events:export", export_events, methods=["GET"])]
