"""OTLP spans -> usage events (wire UsageEvents, validated by the one ingest Validator).

A span is a model call when it carries token usage (server/otlp/conventions.py), or when it is an
error span of a model operation (chat, embeddings, ...) naming a model: a failed call counts as a
request with no tokens. Agent, workflow and tool spans are skipped, as are spans with neither.

Each event's request_id is `otel:<trace id>:<span id>` (hex), so a span exported twice (an exporter's
retry, a collector's) is recorded once. Its time is the span's end (else its start)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TypeAlias

from google.protobuf import timestamp_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from metering.v1 import event_pb2
from server.ingest.validation import MAX_COUNTER
from server.otlp import conventions as c

REQUEST_ID_PREFIX = "otel:"
MAX_MESSAGE = 1000  # characters of partial_success.error_message
NO_USAGE = "no GenAI usage (no gen_ai.usage.* token counts)"
NOT_A_MODEL_CALL = "not a model call (an agent, workflow or tool span: its model calls have spans of their own)"
_ERROR = trace_pb2.Status.STATUS_CODE_ERROR


class SpanRejected(ValueError):
    """This span is not recorded; the message says why (naming the attribute at fault)."""


@dataclasses.dataclass
class Mapped:
    """What an export request maps to: the events (with the span each came from, for messages)
    and the spans left out, with their reasons."""

    events: list[tuple[trace_pb2.Span, event_pb2.UsageEvent]] = dataclasses.field(default_factory=list)
    rejected: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (describe(span), reason)

    def reject(self, span: trace_pb2.Span, reason: str) -> None:
        self.rejected.append((describe(span), reason))

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
        resource = read(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                try:
                    mapped.events.append((span, to_event(span, resource)))
                except SpanRejected as exc:
                    mapped.reject(span, str(exc))
    return mapped


def describe(span: trace_pb2.Span) -> str:
    """How messages name a span: its name and ids."""
    return f"{span.name[:80]!r} ({span.trace_id.hex()}/{span.span_id.hex()})"


def _slots() -> dict[str, tuple[str, int]]:
    """attribute name -> (the slot it fills, its rank among the slot's names: 0 wins)."""
    groups: dict[str, tuple[str, ...]] = {
        **c.COUNTERS, **c.EXTRA_COUNTERS, "model": c.MODEL, "provider": c.PROVIDER, "operation": c.OPERATION,
        "service_tier": c.SERVICE_TIER, "error_type": (c.ERROR_TYPE,), "user_id": c.USER,
        "project_id": c.PROJECT, "client_id": c.CLIENT, "marker": c.NOT_MODEL_CALL_MARKERS,
    }
    return {name: (slot, rank) for slot, names in groups.items() for rank, name in enumerate(names)}


_SLOTS = _slots()
_USAGE_SLOTS = (*c.COUNTERS, *c.EXTRA_COUNTERS)
Found: TypeAlias = dict[str, tuple[int, str, common_pb2.AnyValue]]  # slot -> (rank, attribute name, value)


def read(values: Iterable[common_pb2.KeyValue]) -> Found:
    """The attributes that fill a slot, the best-ranked one per slot: one pass over the attributes
    (a span has a dozen, most of which no slot reads)."""
    found: Found = {}
    slot_of = _SLOTS.get
    for kv in values:
        key = kv.key
        hit = slot_of(key)
        if hit is not None:
            slot, rank = hit
            held = found.get(slot)
            if held is None or rank < held[0]:
                found[slot] = (rank, key, kv.value)
    return found


def to_event(span: trace_pb2.Span, resource: Found) -> event_pb2.UsageEvent:
    """The span's usage event; raises SpanRejected when it is no model call or cannot be one.
    `resource`: read() of its resource's attributes."""
    found = read(span.attributes)
    operation = _text(found, "operation").lower()
    if operation in c.NOT_MODEL_CALLS or "marker" in found:
        raise SpanRejected(NOT_A_MODEL_CALL)
    failed = span.status.code == _ERROR
    model = _text(found, "model")
    if not any(slot in found for slot in _USAGE_SLOTS) and not (failed and model and operation in c.KINDS):
        raise SpanRejected(NO_USAGE)
    trace_id, span_id = span.trace_id, span.span_id
    if len(trace_id) != 16 or len(span_id) != 8 or not any(trace_id) or not any(span_id):
        raise SpanRejected("trace_id and span_id must be valid (16 and 8 bytes, not all zero)")
    fields: dict[str, object] = {
        "request_id": f"{REQUEST_ID_PREFIX}{trace_id.hex()}:{span_id.hex()}",
        "kind": c.KINDS.get(operation, "completions"), "model": model,
        "provider": _provider(_text(found, "provider")), "service_tier": _text(found, "service_tier"),
        "client_id": _text(found, "client_id") or _text(resource, "client_id"),
        "user_id": _text(found, "user_id") or _text(resource, "user_id"),
        "project_id": _text(found, "project_id") or _text(resource, "project_id"),
    }
    nanos = span.end_time_unix_nano or span.start_time_unix_nano
    if nanos:
        seconds, fraction = divmod(nanos, 1_000_000_000)
        fields["timestamp"] = timestamp_pb2.Timestamp(seconds=seconds, nanos=fraction)
    for field in c.COUNTERS:
        if field in found:
            fields[field] = _count(found[field])
    extra = {name: count for name in c.EXTRA_COUNTERS if name in found and (count := _count(found[name]))}
    if extra:
        fields["counters"] = extra
    if failed:
        fields["status"] = "error"
        fields["error_message"] = span.status.message or _text(found, "error_type") or "error"
    return event_pb2.UsageEvent(**fields)  # type: ignore[arg-type]


def _provider(name: str) -> str:
    return c.PROVIDERS.get(name.lower(), name) if name else ""


def _text(found: Found, slot: str) -> str:
    """The slot's value as text ("" when absent or not a string; a number is taken as its text)."""
    held = found.get(slot)
    if held is None:
        return ""
    value = held[2]
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    return str(value.int_value) if kind == "int_value" else ""


def _count(held: tuple[int, str, common_pb2.AnyValue]) -> int:
    """A token count: an int, an integral double or a decimal string; else SpanRejected naming the
    attribute."""
    _, name, value = held
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
