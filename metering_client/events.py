"""Keyword fields -> wire UsageEvent (DESIGN §2), with exact money and explicit time.

Every event gets its request_id (the idempotency key) and its timestamp when it is
*recorded*, not when it is sent: a retry or a replay from the journal tomorrow carries
the same key and the same event time.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from collections.abc import Mapping
from typing import Any

from google.protobuf import descriptor, timestamp_pb2

from metering.v1 import event_pb2

_FIELDS = event_pb2.UsageEvent.DESCRIPTOR.fields_by_name
# Set by the server; refused on input so a typo cannot silently pass.
OUTPUT_ONLY = frozenset({
    "event_id", "received_at", "updated_at", "organization_id", "price_version", "unpriced", "active",
})
MONEY_FIELDS = frozenset({"input_cost", "output_cost", "cost"})
INPUT_FIELDS = frozenset(_FIELDS) - OUTPUT_ONLY
INT64_MAX = 2**63 - 1


def new_request_id() -> str:
    return uuid.uuid4().hex


def decimal_text(value: object, field: str = "cost") -> str:
    """Money as an exact decimal string. Floats go through repr (0.1 -> "0.1"), never binary."""
    if isinstance(value, bool):
        raise TypeError(f"{field}: expected a decimal amount, got bool")
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)  # "nan"/"inf": the server rejects it, naming the field
        amount = decimal.Decimal(repr(value))
    elif isinstance(value, int):
        amount = decimal.Decimal(value)
    elif isinstance(value, decimal.Decimal):
        amount = value
    elif isinstance(value, str):
        try:
            amount = decimal.Decimal(value.strip())
        except decimal.InvalidOperation:
            return value  # the server rejects it with a clear message
    else:
        raise TypeError(f"{field}: expected Decimal, str, int or float, got {type(value).__name__}")
    if not amount.is_finite():
        return str(amount)
    return format(amount, "f")


def to_timestamp(value: object, field: str = "timestamp") -> timestamp_pb2.Timestamp:
    """A datetime (naive means UTC), unix seconds (int/float), an ISO 8601 string or a Timestamp."""
    stamp = timestamp_pb2.Timestamp()
    if isinstance(value, timestamp_pb2.Timestamp):
        stamp.CopyFrom(value)
        return stamp
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{field}: not an ISO 8601 time: {value!r}") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        stamp.FromDatetime(value.astimezone(dt.UTC))
        return stamp
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{field}: expected datetime, unix seconds or ISO string, got {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{field}: not a finite time")
        micros = round(value * 1_000_000)
        stamp.FromMicroseconds(micros)
    else:
        stamp.FromSeconds(value)
    return stamp


def _int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected int, got {type(value).__name__}")
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise ValueError(f"{name}: out of the int64 range")
    return value


def _set(event: event_pb2.UsageEvent, name: str, value: Any) -> None:
    field = _FIELDS[name]
    if name == "timestamp":
        event.timestamp.CopyFrom(to_timestamp(value))
    elif name in MONEY_FIELDS:
        setattr(event, name, decimal_text(value, name))
    elif name == "counters":
        if not isinstance(value, Mapping):
            raise TypeError("counters: expected a mapping of name -> int")
        for key, count in value.items():
            event.counters[str(key)] = _int(f"counters.{key}", count)
    elif name == "labels":
        if not isinstance(value, Mapping):
            raise TypeError("labels: expected a mapping of name -> str")
        for key, text in value.items():
            if not isinstance(text, str):
                raise TypeError(f"labels.{key}: expected str, got {type(text).__name__}")
            event.labels[str(key)] = text
    elif field.type == descriptor.FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            raise TypeError(f"{name}: expected bool, got {type(value).__name__}")
        setattr(event, name, value)
    elif field.type == descriptor.FieldDescriptor.TYPE_INT64:
        setattr(event, name, _int(name, value))
    else:
        if not isinstance(value, str):
            raise TypeError(f"{name}: expected str, got {type(value).__name__}")
        setattr(event, name, value)


def build_event(fields: Mapping[str, Any], *, now: dt.datetime | None = None) -> event_pb2.UsageEvent:
    """Build the wire event from field names of DESIGN §2 (None means "not given").

    Unknown or output-only names and wrong types raise TypeError at once (programming errors);
    what the server validates (ranges, kinds, limits) comes back as a rejected item instead.
    A missing request_id is generated and a missing timestamp is set to now.
    """
    event = event_pb2.UsageEvent()
    for name, value in fields.items():
        if name not in INPUT_FIELDS:
            what = "is set by the server" if name in OUTPUT_ONLY else "is not an event field"
            raise TypeError(f"{name!r} {what}")
        if value is not None:
            _set(event, name, value)
    return complete(event, now=now)


def complete(event: event_pb2.UsageEvent, *, now: dt.datetime | None = None) -> event_pb2.UsageEvent:
    """Fix the idempotency key and the event time before the event is queued."""
    if not event.request_id:
        event.request_id = new_request_id()
    if not event.HasField("timestamp"):
        event.timestamp.FromDatetime(now or dt.datetime.now(dt.UTC))
    return event


def coerce(item: Mapping[str, Any] | event_pb2.UsageEvent) -> event_pb2.UsageEvent:
    """A record_many() item: a mapping of fields or a ready UsageEvent (copied, then completed)."""
    if isinstance(item, event_pb2.UsageEvent):
        copy = event_pb2.UsageEvent()
        copy.CopyFrom(item)
        return complete(copy)
    if isinstance(item, Mapping):
        return build_event(item)
    raise TypeError(f"expected a mapping of event fields or a UsageEvent, got {type(item).__name__}")
