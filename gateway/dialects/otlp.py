"""OTLP/HTTP trace export: `POST /v1/traces`, the route OpenTelemetry's HTTP exporters send spans to
(OTEL_EXPORTER_OTLP_ENDPOINT=http://gateway, OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer mk_...).

The body is an ExportTraceServiceRequest, binary protobuf (`application/x-protobuf`) or OTLP/JSON
(`application/json`), optionally gzipped (`Content-Encoding: gzip`). It is forwarded as it is to the
server's TraceService/Export (server/api/otlp.py), which records the GenAI spans as usage; the reply
(its partial_success counting the spans not recorded) comes back in the request's encoding.

OTLP/JSON is protobuf's JSON mapping with the OTLP spec's differences: trace and span ids are hex
strings (not base64), enums may be integers, field names lowerCamelCase (the proto names are taken
too), and unknown fields are ignored.

Failures are a google.rpc.Status in the request's encoding (protobuf for protobuf, JSON otherwise),
with the HTTP status of the gRPC -> HTTP table: 400 a body that does not parse, 401 bad credentials,
413 a body (or its gunzipped form) over the limit, 415 another content type or encoding, 429/503
(retryable, with Retry-After) when the server is busy or Postgres is out of reach."""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf import message as pb_message
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.http import openapi
from gateway.http.errors import GatewayError, invalid_argument, renders_errors
from gateway.http.json_body import loads
from gateway.upstream.client import upstream

PATH = "/v1/traces"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_DECODED_BYTES = 16 * 1024 * 1024  # a gunzipped body: the server's message limit
_ID_FIELDS = (("traceId", "trace_id"), ("spanId", "span_id"), ("parentSpanId", "parent_span_id"))


def render_error(err: GatewayError, *, binary: bool = False) -> Response:
    """A google.rpc.Status: protobuf when the request was, else JSON (OTLP/HTTP's failure body)."""
    if binary:
        status = status_pb2.Status(code=err.grpc_code, message=err.message, details=err.details)
        return Response(status.SerializeToString(), status_code=err.http_status, headers=err.headers,
                        media_type=PROTOBUF)
    body = {"code": err.grpc_code, "message": err.message, "details": err.details_json()}
    return Response(json.dumps(body), status_code=err.http_status, headers=err.headers, media_type=JSON)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _unsupported(what: str) -> GatewayError:
    return GatewayError(grpc.StatusCode.INVALID_ARGUMENT, what, http_status=415)


def gunzipped(body: bytes, encoding: str) -> bytes:
    """The body without its Content-Encoding (gzip or none), at most MAX_DECODED_BYTES."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise _unsupported(f"Content-Encoding {encoding!r} is not supported: send gzip or none")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, MAX_DECODED_BYTES + 1)
    except zlib.error as exc:
        raise invalid_argument("body", f"not valid gzip: {exc}") from None
    if len(data) > MAX_DECODED_BYTES:
        raise GatewayError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                           f"request body larger than {MAX_DECODED_BYTES} bytes once gunzipped", http_status=413)
    if not inflater.eof:
        raise invalid_argument("body", "not valid gzip: the stream is truncated")
    return data


def parse_json(body: bytes) -> trace_service_pb2.ExportTraceServiceRequest:
    """An OTLP/JSON ExportTraceServiceRequest (hex ids, see the module doc)."""
    try:
        data = loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_argument("body", f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise invalid_argument("body", "must be a JSON object (an ExportTraceServiceRequest)")
    for path, span in _spans(data):
        _ids_to_base64(path, span)
        for k, link in _items(span, "links"):
            _ids_to_base64(f"{path}.links[{k}]", link)
    try:
        return json_format.ParseDict(data, trace_service_pb2.ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise invalid_argument("body", str(exc)) from None


def _items(parent: dict[str, Any], camel: str, snake: str | None = None) -> list[tuple[int, dict[str, Any]]]:
    """The objects of `parent`'s list field (by either of its names); other shapes are left to the parser."""
    found = parent.get(camel, parent.get(snake or camel))
    return [(i, item) for i, item in enumerate(found) if isinstance(item, dict)] if isinstance(found, list) else []


def _spans(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]", span)
        for i, resource in _items(data, "resourceSpans", "resource_spans")
        for j, scope in _items(resource, "scopeSpans", "scope_spans")
        for k, span in _items(scope, "spans")
    ]


def _ids_to_base64(path: str, node: dict[str, Any]) -> None:
    """OTLP/JSON's hex ids as the base64 protobuf's JSON mapping reads for bytes."""
    for camel, snake in _ID_FIELDS:
        for name in (camel, snake):
            value = node.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise invalid_argument(f"{path}.{camel}", "must be a hex string")
            try:
                node[name] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise invalid_argument(f"{path}.{camel}", f"not a hex id: {value[:64]!r}") from None


def parse_protobuf(body: bytes) -> trace_service_pb2.ExportTraceServiceRequest:
    try:
        return trace_service_pb2.ExportTraceServiceRequest.FromString(body)
    except (pb_message.DecodeError, binascii.Error, ValueError) as exc:
        raise invalid_argument("body", f"not a protobuf ExportTraceServiceRequest: {exc}") from None


async def _export(request: Request, binary: bool) -> Response:
    body = gunzipped(await request.body(), request.headers.get("content-encoding", ""))
    message = parse_protobuf(body) if binary else parse_json(body)
    up = upstream(request)
    reply: trace_service_pb2.ExportTraceServiceResponse = await up.call(
        request, up.unary(EXPORT, trace_service_pb2.ExportTraceServiceResponse), message)
    if binary:
        return Response(reply.SerializeToString(), media_type=PROTOBUF)
    return Response(json_format.MessageToJson(reply, indent=None), media_type=JSON)


@renders_errors(render_error)
async def export_traces(request: Request) -> Response:
    media_type = _media_type(request)
    if media_type not in (PROTOBUF, JSON):
        raise _unsupported(f"Content-Type {media_type or 'missing'!r} is not supported: send {PROTOBUF} or {JSON}")
    binary = media_type == PROTOBUF
    try:
        return await _export(request, binary)
    except GatewayError as err:
        return render_error(err, binary=binary)


class ExportRoute(Route):
    """The route, documented by hand: its bodies are protobuf or OTLP/JSON, not a pydantic model."""

    def openapi(self, spec: openapi.Spec) -> None:
        statuses = {"200": "the spans were taken; partialSuccess counts those not recorded, and why",
                    "400": "the body does not parse", "401": "missing or invalid credentials",
                    "413": "the body is too large", "415": "another Content-Type or Content-Encoding",
                    "429": "rate limited: retry later", "503": "unavailable: retry later (Retry-After)"}
        spec.add(PATH, "POST", {
            "operationId": "otlp_export_traces",
            "summary": "OTLP/HTTP trace export: GenAI spans recorded as usage",
            "description": __doc__.split("\n\n", 1)[1] if __doc__ else "",
            "tags": ["OpenTelemetry"],
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {
                PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                JSON: {"schema": {"type": "object"}},
            }},
            "responses": {status: {"description": text} for status, text in statuses.items()},
        })


def routes() -> list[BaseRoute]:
    return [ExportRoute(PATH, export_traces, methods=["POST"])]
