"""OTLP/HTTP POST /v1/traces on the gateway: the official OTLP HTTP exporter (protobuf, gzip) and
OTLP/JSON (hex ids, integer enums) recorded through the server's TraceService; failures as a
google.rpc.Status in the request's encoding."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from gateway.dialects.otlp import MAX_DECODED_BYTES
from metering.v1 import event_pb2, records_pb2
from tests.conftest import Org, Stubs
from tests.gateway.conftest import auth
from tests.server.otlp.spans_support import CHAT, export_request, make_spans, request_id

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
TRACE_ID, SPAN_ID = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"


async def http_export(base_url: str, key: str, spans: tuple[ReadableSpan, ...]) -> SpanExportResult:
    """The spans sent as an application sends them: the SDK's OTLP HTTP exporter (protobuf, gzip), in a
    thread (it blocks, and the gateway serves from this loop)."""
    exporter = OTLPSpanExporter(endpoint=f"{base_url}/v1/traces", headers={"authorization": f"Bearer {key}"},
                                compression=Compression.Gzip, timeout=10)
    try:
        return await asyncio.to_thread(exporter.export, spans)
    finally:
        await asyncio.to_thread(exporter.shutdown)


async def stored(stubs: Stubs, org: Org) -> list[event_pb2.UsageEvent]:
    reply = await stubs.records.ListEvents(records_pb2.ListEventsRequest(page_size=100), metadata=org.auth)
    return sorted(reply.events, key=lambda e: e.request_id)


def otlp_json(**span: Any) -> dict[str, Any]:
    """An OTLP/JSON request as the spec writes one: hex ids, integer enums, int64 as strings."""
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-app"}}]},
        "scopeSpans": [{"scope": {"name": "manual"}, "spans": [{
            "traceId": TRACE_ID, "spanId": SPAN_ID, "parentSpanId": "", "name": "chat gpt-4o-mini", "kind": 3,
            "startTimeUnixNano": "1767225600000000000", "endTimeUnixNano": "1767225601500000000",
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "21"}},
                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 9}},
            ],
            "status": {"code": 1}, "unknownField": True, **span,
        }]}],
    }]}


async def test_the_http_exporter_records_genai_spans_once(
    live_gateway: str, stubs: Stubs, new_org: Callable[[], Awaitable[Org]]
) -> None:
    org = await new_org()
    spans = make_spans([("chat", CHAT), ("GET /", {"http.request.method": "GET"})], service="web")
    assert await http_export(live_gateway, org.admin_key, spans) == SpanExportResult.SUCCESS
    assert await http_export(live_gateway, org.admin_key, spans) == SpanExportResult.SUCCESS  # retried
    [event] = await stored(stubs, org)
    assert (event.request_id, event.client_id, event.model, event.input_tokens, event.output_tokens,
            event.input_cached_tokens, dict(event.counters)) == (
        request_id(spans[0]), "web", "gpt-4o-2024-08-06", 1200, 300, 1000, {"reasoning_tokens": 120})
    assert await http_export(live_gateway, "mk_wrong", spans) == SpanExportResult.FAILURE


async def test_protobuf_reply_carries_partial_success(http: httpx.AsyncClient,
                                                      new_org: Callable[[], Awaitable[Org]]) -> None:
    org = await new_org()
    body = export_request(make_spans([("chat", CHAT), ("GET /", {"http.request.method": "GET"})]))
    reply = await http.post("/v1/traces", content=gzip.compress(body.SerializeToString()),
                            headers={**PROTOBUF, "Content-Encoding": "gzip", **auth(org.admin_key)})
    assert (reply.status_code, reply.headers["content-type"]) == (200, "application/x-protobuf")
    answer = trace_service_pb2.ExportTraceServiceResponse.FromString(reply.content)
    assert answer.partial_success.rejected_spans == 1
    assert "no GenAI usage" in answer.partial_success.error_message


async def test_otlp_json_with_hex_ids_is_recorded(http: httpx.AsyncClient, stubs: Stubs,
                                                  new_org: Callable[[], Awaitable[Org]]) -> None:
    org = await new_org()
    reply = await http.post("/v1/traces", json=otlp_json(), headers=auth(org.admin_key))
    assert (reply.status_code, reply.json()) == (200, {})
    again = await http.post("/v1/traces", content=gzip.compress(json.dumps(otlp_json()).encode()),
                            headers={**JSON, "Content-Encoding": "gzip", **auth(org.admin_key)})
    assert again.status_code == 200
    [event] = await stored(stubs, org)
    assert (event.request_id, event.client_id, event.model, event.input_tokens, event.output_tokens,
            event.timestamp.ToJsonString()) == (
        f"otel:{TRACE_ID}:{SPAN_ID}", "json-app", "gpt-4o-mini", 21, 9, "2026-01-01T00:00:01.500Z")

    skipped = await http.post("/v1/traces", json=otlp_json(attributes=[]), headers=auth(org.admin_key))
    assert skipped.json()["partialSuccess"]["rejectedSpans"] in (1, "1")


@pytest.mark.parametrize(("content", "headers", "status", "message"), [
    (b"\xff\xff\xff", PROTOBUF, 400, "body: not a protobuf ExportTraceServiceRequest"),
    (b"{", JSON, 400, "body: not JSON"),
    (json.dumps(otlp_json(traceId="zz")).encode(), JSON, 400,
     "resourceSpans[0].scopeSpans[0].spans[0].traceId: not a hex id: 'zz'"),
    (json.dumps({"resourceSpans": 5}).encode(), JSON, 400, "body: Failed to parse resourceSpans"),
    (b"not gzip", {**JSON, "Content-Encoding": "gzip"}, 400, "body: not valid gzip"),
    (b"{}", {**JSON, "Content-Encoding": "br"}, 415, "Content-Encoding 'br' is not supported"),
    (b"{}", {"Content-Type": "text/plain"}, 415, "Content-Type 'text/plain' is not supported"),
], ids=["protobuf", "json", "hex", "shape", "gzip", "encoding", "content-type"])
async def test_bad_payloads_get_a_status_naming_the_problem(
    http: httpx.AsyncClient, new_org: Callable[[], Awaitable[Org]], content: bytes, headers: dict[str, str],
    status: int, message: str,
) -> None:
    org = await new_org()
    reply = await http.post("/v1/traces", content=content, headers={**headers, **auth(org.admin_key)})
    assert reply.status_code == status
    if headers["Content-Type"] == PROTOBUF["Content-Type"]:
        answer = status_pb2.Status.FromString(reply.content)
        code, text = answer.code, answer.message
    else:
        code, text = reply.json()["code"], reply.json()["message"]
    assert code == 3 and text.startswith(message), text


async def test_bad_credentials_are_401_in_either_encoding(http: httpx.AsyncClient) -> None:
    body = export_request(make_spans([("chat", CHAT)])).SerializeToString()
    reply = await http.post("/v1/traces", content=body, headers={**PROTOBUF, **auth("mk_nope")})
    assert (reply.status_code, status_pb2.Status.FromString(reply.content).code) == (401, 16)
    reply = await http.post("/v1/traces", json=otlp_json())
    assert (reply.status_code, reply.json()["code"], reply.headers["content-type"]) == (401, 16, "application/json")
    assert "missing credentials" in reply.json()["message"]


async def test_a_body_too_large_once_gunzipped_is_413(http: httpx.AsyncClient) -> None:
    """A small gzip body that inflates past the limit (a zip bomb) is refused without inflating it all."""
    bomb = gzip.compress(b"\0" * (MAX_DECODED_BYTES + 1))
    assert len(bomb) < 100_000
    reply = await http.post("/v1/traces", content=bomb,
                            headers={**PROTOBUF, "Content-Encoding": "gzip", **auth("mk_any")})
    assert reply.status_code == 413
    assert status_pb2.Status.FromString(reply.content).message == (
        f"request body larger than {MAX_DECODED_BYTES} bytes once gunzipped")
