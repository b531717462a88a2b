"""Export rows: the buckets and events of an export (metering.v1 ExportService) as CSV or
NDJSON, one way for every side that writes them (the gateway's export routes and the
`metering export` command).

A row is a list of typed values under a header known before the first chunk:
- usage: `start_time`, `end_time`, the request's group_by fields (a field unset for the group
  is null), then `events` and the metrics asked for (all of UsageMetrics when none were):
  one row per group of each bucket, and one row with `events` 0 and no group key for an
  empty bucket, so every bucket of the range appears;
- events: every UsageEvent field in field order; the payload fields only when asked for.
Times are RFC 3339 (UTC), money exact decimal strings, `counters` and `labels` JSON objects.

CSV (RFC 4180: CRLF line ends, fields quoted when they hold a comma, quote or line break,
quotes doubled) has a header row; null is an empty field, a map its JSON text, booleans
`true` / `false`. NDJSON is one JSON object per line, the header's names as keys, int64 as
JSON numbers.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from google.protobuf import message as pb_message
from google.protobuf import timestamp_pb2

from metering.v1 import event_pb2, exports_pb2, query_pb2

FORMATS = ("csv", "ndjson")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8; header=present", "ndjson": "application/x-ndjson"}
PAYLOAD_FIELDS = ("config_json", "request_raw", "request_json", "response_json", "response_raw")
_METRICS = query_pb2.UsageMetrics.DESCRIPTOR
_EVENT = event_pb2.UsageEvent.DESCRIPTOR
# An empty bucket's row: no key, every metric zero (its costs "0", as a group's with no cost).
_EMPTY_GROUP = query_pb2.UsageGroup(metrics=query_pb2.UsageMetrics(input_cost="0", output_cost="0", cost="0"))
Row = list[Any]


@dataclasses.dataclass(frozen=True)
class Columns:
    """The columns of an export: `keys` (usage: the group_by fields) then `values` (usage: the
    metrics; events: the event fields)."""

    keys: tuple[str, ...]
    values: tuple[str, ...]
    usage: bool

    @property
    def header(self) -> list[str]:
        return [*(("start_time", "end_time") if self.usage else ()), *self.keys, *self.values]

    def rows(self, chunk: exports_pb2.ExportUsageChunk | exports_pb2.ExportEventsChunk) -> list[Row]:
        if isinstance(chunk, exports_pb2.ExportUsageChunk):
            return [row for bucket in chunk.buckets for row in self.bucket_rows(bucket)]
        fields = _EVENT.fields_by_name
        return [[_value(event, fields[name]) for name in self.values] for event in chunk.events]

    def bucket_rows(self, bucket: query_pb2.UsageBucket) -> Iterator[Row]:
        """A bucket's rows: one per group, or one with no key for an empty bucket."""
        start, end = _time(bucket.start_time), _time(bucket.end_time)
        groups = bucket.groups or [_EMPTY_GROUP]
        fields = _METRICS.fields_by_name
        for group in groups:
            metrics = group.metrics
            yield [start, end, *(group.key.get(field) for field in self.keys),
                   *(_value(metrics, fields[name]) for name in self.values)]


def usage_columns(group_by: Sequence[str], metrics: Sequence[str] = ()) -> Columns:
    """The columns of a usage export of a QueryUsageRequest with this group_by and metrics."""
    asked = set(metrics)
    names = tuple(f.name for f in _METRICS.fields if f.name == "events" or not asked or f.name in asked)
    return Columns(tuple(group_by), names, usage=True)


def event_columns(include_payload: bool) -> Columns:
    """The columns of an event export."""
    return Columns((), tuple(f.name for f in _EVENT.fields if include_payload or f.name not in PAYLOAD_FIELDS),
                   usage=False)


def _value(msg: pb_message.Message, field: Any) -> Any:
    """A field's value for a row (`field` a FieldDescriptor of the message's type)."""
    value = getattr(msg, field.name)
    if field.message_type is not None:
        if field.message_type.GetOptions().map_entry:
            return dict(sorted(value.items()))
        return _time(value) if msg.HasField(field.name) else None
    if field.has_presence and not msg.HasField(field.name):
        return None
    return value


def _time(stamp: timestamp_pb2.Timestamp) -> str:
    return str(stamp.ToJsonString())


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


def csv_text(rows: Iterable[Row]) -> str:
    """Rows as CSV text (RFC 4180)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([_cell(v) for v in row] for row in rows)
    return out.getvalue()


def ndjson_text(header: Sequence[str], rows: Iterable[Row]) -> str:
    """Rows as NDJSON: one object per line, keyed by the header."""
    return "".join(json.dumps(dict(zip(header, row, strict=True)), separators=(",", ":"), ensure_ascii=False) + "\n"
                   for row in rows)


def header_text(fmt: str, columns: Columns) -> str:
    """What an export of this format starts with: CSV's header row; nothing for NDJSON."""
    return csv_text([columns.header]) if fmt == "csv" else ""


def chunk_text(fmt: str, columns: Columns,
               chunk: exports_pb2.ExportUsageChunk | exports_pb2.ExportEventsChunk) -> tuple[str, int]:
    """A chunk's rows in this format, and how many rows that is."""
    rows = columns.rows(chunk)
    return (csv_text(rows) if fmt == "csv" else ndjson_text(columns.header, rows)), len(rows)
