"""GenAI spans made by the official OpenTelemetry SDK (finished in memory), and what they encode to on
the OTLP wire, for the OTLP tests of the server, the gateway and the bench."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

Attrs = Mapping[str, Any]  # attribute name -> AttributeValue
CHAT: dict[str, AttributeValue] = {
    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.cache_read.input_tokens": 1000, "gen_ai.usage.cache_creation.input_tokens": 100,
    "gen_ai.usage.reasoning.output_tokens": 120,
}


def make_spans(
    spans: Sequence[tuple[Any, ...]], service: str = "chatbot",
    resource: Attrs | None = None,
) -> tuple[ReadableSpan, ...]:
    """Finished SDK spans: (name, attributes[, status]) each, under a resource named `service`."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service, **(resource or {})}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.otlp")
    for name, attributes, *status in spans:
        with tracer.start_as_current_span(name, attributes=attributes, record_exception=False,
                                          set_status_on_exception=False) as span:
            if status:
                span.set_status(status[0])
    provider.shutdown()
    return memory.get_finished_spans()


def export_request(spans: Sequence[ReadableSpan]) -> trace_service_pb2.ExportTraceServiceRequest:
    """The request the SDK's OTLP exporters send for these spans."""
    return encode_spans(spans)


def request_id(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return f"otel:{context.trace_id:032x}:{context.span_id:016x}"


ERROR = Status(StatusCode.ERROR, "rate limited")
