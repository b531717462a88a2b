"""TraceService/Export on the gRPC port, fed by the official OTLP gRPC exporter: GenAI spans stored
as exactly those events, once however often they are exported; the other spans counted in
partial_success; a bad key refused."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from metering.v1 import admin_pb2, event_pb2, records_pb2
from server.runtime.app import MeteringServer
from tests.conftest import MASTER, Org, Stubs, bearer
from tests.server.otlp.spans_support import CHAT, ERROR, export_request, make_spans, request_id

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


async def _export(server: MeteringServer, key: str, spans: tuple[ReadableSpan, ...]) -> SpanExportResult:
    """Sends the spans as an application does: the SDK's OTLP gRPC exporter, in a thread (it blocks)."""
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{server.port}", insecure=True,
                                headers=(("authorization", f"Bearer {key}"),), timeout=10)
    try:
        return await asyncio.to_thread(exporter.export, spans)
    finally:
        await asyncio.to_thread(exporter.shutdown)


def _export_method(channel: grpc.aio.Channel) -> grpc.aio.UnaryUnaryMultiCallable[
        trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse]:
    return channel.unary_unary(EXPORT, request_serializer=trace_service_pb2.ExportTraceServiceRequest.SerializeToString,
                               response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)


async def _stored(stubs: Stubs, org: Org) -> list[event_pb2.UsageEvent]:
    reply = await stubs.records.ListEvents(records_pb2.ListEventsRequest(page_size=100, include_payload=True),
                                           metadata=org.auth)
    return sorted(reply.events, key=lambda e: e.request_id)


def _usage(event: event_pb2.UsageEvent) -> tuple[object, ...]:
    return (event.request_id, event.kind, event.model, event.provider, event.client_id, event.status,
            event.error_message, event.input_tokens, event.output_tokens, event.input_cached_tokens,
            event.input_cache_write_tokens, dict(event.counters), event.timestamp.ToNanoseconds())


def _micros(nanos: int | None) -> int:
    """A span's end time as stored: to the microsecond."""
    assert nanos is not None
    return nanos // 1000 * 1000


async def test_the_grpc_exporter_records_genai_spans_once(
    server: MeteringServer, stubs: Stubs, new_org: Callable[[], Awaitable[Org]]
) -> None:
    org = await new_org()
    spans = make_spans([
        ("chat gpt-4o", CHAT),
        ("embeddings", {"gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "text-embedding-3-small", "gen_ai.usage.input_tokens": 42}),
        ("chat failed", {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                         "gen_ai.request.model": "gpt-4o"}, ERROR),
    ], service="support-bot")

    assert await _export(server, org.admin_key, spans) == SpanExportResult.SUCCESS
    assert await _export(server, org.admin_key, spans) == SpanExportResult.SUCCESS  # a retried export

    chat, embed, failed = spans
    expected = sorted([
        (request_id(chat), "completions", "gpt-4o-2024-08-06", "openai", "support-bot", "success", "",
         1200, 300, 1000, 100, {"reasoning_tokens": 120}, _micros(chat.end_time)),
        (request_id(embed), "embeddings", "text-embedding-3-small", "openai", "support-bot", "success", "",
         42, 0, 0, 0, {}, _micros(embed.end_time)),
        (request_id(failed), "completions", "gpt-4o", "openai", "support-bot", "error", "rate limited",
         0, 0, 0, 0, {}, _micros(failed.end_time)),
    ], key=lambda row: str(row[0]))
    assert [_usage(e) for e in await _stored(stubs, org)] == expected


async def test_spans_without_genai_usage_are_counted_in_partial_success(
    channel: grpc.aio.Channel, stubs: Stubs, new_org: Callable[[], Awaitable[Org]]
) -> None:
    org = await new_org()
    spans = make_spans([("GET /", {"http.request.method": "GET"}), ("chat", CHAT),
                        ("late", {"gen_ai.usage.input_tokens": 1, "user.id": "u-1"})])
    export = _export_method(channel)
    reply = await export(export_request(spans), metadata=org.auth)
    assert reply.partial_success.rejected_spans == 1
    assert reply.partial_success.error_message.startswith(
        "1 span not recorded: no GenAI usage (no gen_ai.usage.* token counts) (1): 'GET /' (")
    assert [e.request_id for e in await _stored(stubs, org)] == sorted(request_id(s) for s in spans[1:])


async def test_an_event_the_key_may_not_record_is_rejected_alone(
    channel: grpc.aio.Channel, stubs: Stubs, new_org: Callable[[], Awaitable[Org]]
) -> None:
    """A project key records only for its project: a span naming another one is rejected, naming the
    field, and the other spans of the export are still recorded."""
    org = await new_org()
    await stubs.admin.CreateProject(admin_pb2.CreateProjectRequest(
        organization=org.organization_id, name="a", project_id="proj-a"), metadata=MASTER)
    key = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
        organization=org.organization_id, project_id="proj-a", name="app"), metadata=MASTER)
    spans = make_spans([("chat", CHAT), ("elsewhere", {**CHAT, "metering.project_id": "proj-b"})])
    export = _export_method(channel)
    reply = await export(export_request(spans), metadata=bearer(key.key))
    assert reply.partial_success.rejected_spans == 1
    assert "project_id: this key may only record usage for 'proj-a'" in reply.partial_success.error_message
    [stored] = await _stored(stubs, org)
    assert (stored.request_id, stored.project_id) == (request_id(spans[0]), "proj-a")


@pytest.mark.parametrize("credentials", [(), bearer("mk_not-a-key"), (("authorization", "Basic eDp5"),)])
async def test_a_bad_key_is_unauthenticated(channel: grpc.aio.Channel, credentials: tuple[tuple[str, str], ...],
                                            server: MeteringServer) -> None:
    export = _export_method(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await export(export_request(make_spans([("chat", CHAT)])), metadata=credentials)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await _export(server, "mk_not-a-key", make_spans([("chat", CHAT)])) == SpanExportResult.FAILURE
