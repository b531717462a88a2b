"""OTLP span ingest beside RecordEvents, in the same run on the same stack.

The spans are what opentelemetry-instrumentation-openai-v2 writes for a chat call (operation,
provider, request and response model, server address, response id, finish reasons, input and output
tokens) under an SDK resource, sent in batches of 512 (the SDK BatchSpanProcessor's default export
size) by 4 senders on connections of their own: to TraceService/Export over gRPC, and as
application/x-protobuf to the gateway's POST /v1/traces. The baseline is RecordEvents of the very
events those spans become, in batches of the same size over as many connections."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Awaitable, Callable

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from bench import ingest
from bench.stack import Stack, channel
from metering.v1 import event_pb2, ingest_pb2, ingest_pb2_grpc

BATCH = 512
SENDERS = 4
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
Row = tuple[str, str, str]


def _attr(key: str, value: str | int | list[str]) -> common_pb2.KeyValue:
    if isinstance(value, list):
        any_value = common_pb2.AnyValue(array_value=common_pb2.ArrayValue(
            values=[common_pb2.AnyValue(string_value=v) for v in value]))
    elif isinstance(value, int):
        any_value = common_pb2.AnyValue(int_value=value)
    else:
        any_value = common_pb2.AnyValue(string_value=value)
    return common_pb2.KeyValue(key=key, value=any_value)


RESOURCE = resource_pb2.Resource(attributes=[
    _attr("service.name", "bench-app"), _attr("telemetry.sdk.language", "python"),
    _attr("telemetry.sdk.name", "opentelemetry"), _attr("telemetry.sdk.version", "1.45.2"),
])


def make_requests(n: int) -> tuple[list[trace_service_pb2.ExportTraceServiceRequest], list[event_pb2.UsageEvent]]:
    """n chat spans in export requests of BATCH spans, with make_events' cardinality (1,000 users in
    50 projects, each using 3 of 20 models), ending within the last hour; and the usage events they
    record (the RecordEvents baseline sends those)."""
    rnd = random.Random(42)
    now = time.time_ns() - 3600 * 10**9
    spans, events = [], []
    for _ in range(n):
        user = rnd.randrange(1000)
        model = ingest.MODELS[(user + rnd.randrange(3)) % len(ingest.MODELS)]
        end = now + rnd.randrange(3600 * 10**9)
        trace_id, span_id = secrets.token_bytes(16), secrets.token_bytes(8)
        tokens = rnd.randrange(5000), rnd.randrange(2000)
        project = ingest.PROJECTS[user % len(ingest.PROJECTS)]
        spans.append(trace_pb2.Span(
            trace_id=trace_id, span_id=span_id, name=f"chat {model}",
            kind=trace_pb2.Span.SPAN_KIND_CLIENT, start_time_unix_nano=end - 800_000_000, end_time_unix_nano=end,
            attributes=[
                _attr("gen_ai.operation.name", "chat"), _attr("gen_ai.system", "openai"),
                _attr("gen_ai.request.model", model), _attr("gen_ai.response.model", model),
                _attr("gen_ai.response.id", "chatcmpl-" + secrets.token_hex(12)),
                _attr("gen_ai.response.finish_reasons", ["stop"]), _attr("server.address", "api.openai.com"),
                _attr("gen_ai.usage.input_tokens", tokens[0]), _attr("gen_ai.usage.output_tokens", tokens[1]),
                _attr("user.id", f"user-{user}"), _attr("metering.project_id", project),
            ],
            status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_UNSET),
        ))
        events.append(event_pb2.UsageEvent(
            request_id=f"rec:{trace_id.hex()}:{span_id.hex()}", kind="completions", model=model, provider="openai",
            client_id="bench-app", user_id=f"user-{user}", project_id=project, input_tokens=tokens[0],
            output_tokens=tokens[1], timestamp={"seconds": end // 10**9, "nanos": end % 10**9},
        ))
    scope = common_pb2.InstrumentationScope(name="opentelemetry.instrumentation.openai_v2", version="2.4b0")
    requests = [
        trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
            resource=RESOURCE, scope_spans=[trace_pb2.ScopeSpans(scope=scope, spans=spans[i : i + BATCH])])])
        for i in range(0, n, BATCH)
    ]
    return requests, events


async def record_events(st: Stack, events: list[event_pb2.UsageEvent]) -> float:
    """The baseline: events/s through RecordEvents, BATCH per call, SENDERS connections."""
    queue = [ingest_pb2.RecordEventsRequest(events=events[i : i + BATCH]) for i in range(0, len(events), BATCH)]
    channels = [channel(st.target) for _ in range(SENDERS)]
    for ch in channels:
        await ch.channel_ready()

    def sender(ch: grpc.aio.Channel) -> Callable[[], Awaitable[None]]:
        stub = ingest_pb2_grpc.IngestServiceStub(ch)

        async def send() -> None:
            while queue:
                reply = await stub.RecordEvents(queue.pop(), metadata=st.auth)
                assert reply.recorded == len(reply.results), reply.rejected
        return send

    try:
        return await _timed(len(events), [sender(ch) for ch in channels])
    finally:
        for ch in channels:
            await ch.close()


async def _timed(n: int, senders: list[Callable[[], Awaitable[None]]]) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(send() for send in senders))
    return n / (time.perf_counter() - started)


async def grpc_export(st: Stack, n: int) -> float:
    """Spans/s through TraceService/Export, SENDERS connections."""
    queue = make_requests(n)[0]
    channels = [channel(st.target) for _ in range(SENDERS)]
    for ch in channels:
        await ch.channel_ready()

    def sender(ch: grpc.aio.Channel) -> Callable[[], Awaitable[None]]:
        export = ch.unary_unary(
            EXPORT, request_serializer=trace_service_pb2.ExportTraceServiceRequest.SerializeToString,
            response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)

        async def send() -> None:
            while queue:
                reply = await export(queue.pop(), metadata=st.auth)
                assert not reply.partial_success.rejected_spans, reply.partial_success.error_message
        return send

    try:
        return await _timed(n, [sender(ch) for ch in channels])
    finally:
        for ch in channels:
            await ch.close()


async def http_export(st: Stack, n: int) -> float:
    """Spans/s through the gateway's POST /v1/traces (protobuf), SENDERS keep-alive connections."""
    bodies = [r.SerializeToString() for r in make_requests(n)[0]]
    headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {st.key}"}
    clients = [httpx.AsyncClient(base_url=st.http, headers=headers, timeout=60) for _ in range(SENDERS)]

    def sender(client: httpx.AsyncClient) -> Callable[[], Awaitable[None]]:
        async def send() -> None:
            while bodies:
                reply = await client.post("/v1/traces", content=bodies.pop())
                assert reply.status_code == 200, reply.text
                answer = trace_service_pb2.ExportTraceServiceResponse.FromString(reply.content)
                assert not answer.partial_success.rejected_spans, answer.partial_success.error_message
        return send

    try:
        for client in clients:
            await client.get("/healthz")  # connections up before the clock starts
        return await _timed(n, [sender(c) for c in clients])
    finally:
        for client in clients:
            await client.aclose()


async def run(st: Stack, n: int) -> list[Row]:
    baseline = await record_events(st, make_requests(n)[1])
    spans = await grpc_export(st, n)
    http = await http_export(st, max(BATCH * SENDERS, n // 2))
    return [
        (f"OTLP/gRPC TraceService/Export, {BATCH} spans/export, {SENDERS} connections", f"{spans:,.0f} spans/s",
         f"{spans / baseline:.0%} of RecordEvents; GenAI chat spans as openai-v2 writes them, each one event"),
        (f"  baseline: gRPC RecordEvents, {BATCH}/batch, {SENDERS} connections", f"{baseline:,.0f} events/s",
         "the very events those spans record (no cost: priced at ingest), same stack"),
        ("OTLP/HTTP POST /v1/traces (protobuf) via the gateway", f"{http:,.0f} spans/s",
         f"{http / baseline:.0%} of RecordEvents"),
    ]
