"""OTLP spans -> usage events (wire UsageEvents, validated by the one ingest Validator).

A span is a model call when it carries token usage (server/otlp/conventions.py), or when it is an
error span of a model operation (chat, embeddings, ...) naming a model: a failed call counts as a
request with no tokens. Agent, workflow and tool spans are skipped, as are spans with neither.

Each event's request_id is `otel:<trace id>:<span id>` (hex), so a span exported twice (an exporter's
retry, a collector's) is recorded once. Its time is the span's end (else its start)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import TypeAlias

from google.protobuf import timestamp_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from metering.v1 import event_pb2
from server.ingest.validation import MAX_COUNTER
from server.otlp import conventions as c

Attributes: TypeAlias = Mapping[str, common_pb2.AnyValue]
REQUEST_ID_PREFIX = "otel:"
MAX_MESSAGE = 1000  # characters of partial_success.error_message
NO_USAGE = "no GenAI usage (no gen_ai.usage.* token counts)"
NOT_A_MODEL_CALL = "not a model call (an agent, workflow or tool span: its model calls have spans of their own)"
_ERROR = trace_pb2.Status.STATUS_CODE_ERROR
_USAGE_NAMES = tuple(name for names in (*c.COUNTERS.values(), *c.EXTRA_COUNTERS.values()) for name in names)


class SpanRejected(ValueError):
    """This span is not recorded; the message says why (naming the attribute at fault)."""


@dataclasses.dataclass
class Mapped:
    """What an export request maps to: the events (with the span each came from, for messages)
    and the spans left out, with their reasons."""

    events: list[tuple[str, event_pb2.UsageEvent]] = dataclasses.field(default_factory=list)
    rejected: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (span, reason)

    def reject(self, span: str, reason: str) -> None:
        self.rejected.append((span, reason))

    def response(self) -> trace_service_pb2.ExportTraceServiceResponse:
        """The reply: partial_success counts the spans not recorded and says why (OTLP spec)."""
        reply = trace_service_pb2.ExportTraceServiceResponse()
        if self.rejected:
            reply.partial_success.rejected_spans = len(self.rejected)
            reply.partial_success.error_message = summary(self.rejected)
        return reply


def summary(rejected: list[tuple[str, str]]) -> str:
    """'N spans not recorded: <reason> (k): <span>, <span>; ...', reasons in order of first
    appearance with up to three spans each, cut at MAX_MESSAGE characters."""
    by_reason: dict[str, list[str]] = {}
    for span, reason in rejected:
        by_reason.setdefault(reason, []).append(span)
    parts = []
    for reason, spans in by_reason.items():
        shown = ", ".join(spans[:3]) + (", ..." if len(spans) > 3 else "")
        parts.append(f"{reason} ({len(spans)}): {shown}")
    text = f"{len(rejected)} span{'s' if len(rejected) != 1 else ''} not recorded: " + "; ".join(parts)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def events(request: trace_service_pb2.ExportTraceServiceRequest) -> Mapped:
    mapped = Mapped()
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                label = describe(span)
                try:
                    mapped.events.append((label, to_event(span, resource)))
                except SpanRejected as exc:
                    mapped.reject(label, str(exc))
    return mapped


def describe(span: trace_pb2.Span) -> str:
    """How messages name a span: its name and ids."""
    return f"{span.name[:80]!r} ({span.trace_id.hex()}/{span.span_id.hex()})"


def attributes(values: Iterable[common_pb2.KeyValue]) -> dict[str, common_pb2.AnyValue]:
    return {kv.key: kv.value for kv in values}


def to_event(span: trace_pb2.Span, resource: Attributes) -> event_pb2.UsageEvent:
    """The span's usage event; raises SpanRejected when it is no model call or cannot be one."""
    attrs = attributes(span.attributes)
    operation = (_text(attrs, c.OPERATION) or "").lower()
    if operation in c.NOT_MODEL_CALLS or any(name in attrs for name in c.NOT_MODEL_CALL_MARKERS):
        raise SpanRejected(NOT_A_MODEL_CALL)
    failed = span.status.code == _ERROR
    model = _text(attrs, c.MODEL)
    has_usage = any(name in attrs for name in _USAGE_NAMES)
    if not has_usage and not (failed and model and operation in c.KINDS):
        raise SpanRejected(NO_USAGE)
    if len(span.trace_id) != 16 or len(span.span_id) != 8 or not any(span.trace_id) or not any(span.span_id):
        raise SpanRejected("trace_id and span_id must be valid (16 and 8 bytes, not all zero)")
    event = event_pb2.UsageEvent(
        request_id=f"{REQUEST_ID_PREFIX}{span.trace_id.hex()}:{span.span_id.hex()}",
        kind=c.KINDS.get(operation, "completions"),
        model=model or "",
        provider=_provider(_text(attrs, c.PROVIDER)),
        service_tier=_text(attrs, c.SERVICE_TIER) or "",
        client_id=_who(attrs, resource, c.CLIENT),
        user_id=_who(attrs, resource, c.USER),
        project_id=_who(attrs, resource, c.PROJECT),
    )
    nanos = span.end_time_unix_nano or span.start_time_unix_nano
    if nanos:
        event.timestamp.CopyFrom(_timestamp(nanos))
    for field, names in c.COUNTERS.items():
        value = _count(attrs, names)
        if value is not None:
            setattr(event, field, value)
    for name, names in c.EXTRA_COUNTERS.items():
        value = _count(attrs, names)
        if value:
            event.counters[name] = value
    if failed:
        event.status = "error"
        event.error_message = span.status.message or _text(attrs, (c.ERROR_TYPE,)) or "error"
    return event


def _timestamp(nanos: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.seconds, stamp.nanos = divmod(nanos, 1_000_000_000)
    return stamp


def _provider(name: str | None) -> str:
    if not name:
        return ""
    return c.PROVIDERS.get(name.lower(), name)


def _who(attrs: Attributes, resource: Attributes, names: tuple[str, ...]) -> str:
    return _text(attrs, names) or _text(resource, names) or ""


def _text(attrs: Attributes, names: tuple[str, ...]) -> str | None:
    """The first of `names` present as a non-empty string (a number is taken as its text)."""
    for name in names:
        value = attrs.get(name)
        if value is None:
            continue
        kind = value.WhichOneof("value")
        if kind == "string_value" and value.string_value:
            return value.string_value
        if kind == "int_value":
            return str(value.int_value)
    return None


def _count(attrs: Attributes, names: tuple[str, ...]) -> int | None:
    """The first of `names` present, as a token count; raises SpanRejected naming it when it is
    not a whole number (an int, an integral double or a decimal string)."""
    for name in names:
        value = attrs.get(name)
        if value is None:
            continue
        kind = value.WhichOneof("value")
        if kind == "int_value":
            number = value.int_value
        elif kind == "double_value" and value.double_value.is_integer():
            number = int(value.double_value)
        elif kind == "string_value" and value.string_value.strip().lstrip("-").isdigit():
            number = int(value.string_value)
        else:
            raise SpanRejected(f"{name}: must be a whole number of tokens")
        if not 0 <= number <= MAX_COUNTER:
            raise SpanRejected(f"{name}: must be between 0 and {MAX_COUNTER}")
        return number
    return None
