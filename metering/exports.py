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
import functools
import io
import json
import operator
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

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


class _Reader:
    """Reads `names` of a message type into a row at `offset` in one attrgetter call, then fixes
    the few columns that need it (times, unset optional fields, maps), found once from the
    descriptor: a field at a time through the descriptor was ~60 µs a 50-column row, this ~10."""

    def __init__(self, desc: Any, names: Sequence[str], offset: int) -> None:
        fields = [desc.fields_by_name[name] for name in names]
        self.get = operator.attrgetter(*names)
        self.single = len(names) == 1
        at = [(offset + i, f) for i, f in enumerate(fields)]
        self.times = [(i, f.name) for i, f in at if f.message_type is not None and not _is_map(f)]
        self.maps = [i for i, f in at if _is_map(f)]
        self.optional = [(i, f.name) for i, f in at if f.message_type is None and f.has_presence]
        self.bools = [i for i, f in at if f.type == f.TYPE_BOOL]

    def read(self, msg: Any, head: Row) -> Row:
        values = self.get(msg)
        row = [*head, values] if self.single else [*head, *values]
        for i, name in self.times:
            row[i] = _time(row[i]) if msg.HasField(name) else None
        for i, name in self.optional:
            if not msg.HasField(name):
                row[i] = None
        for i in self.maps:
            row[i] = dict(sorted(row[i].items())) if row[i] else {}
        return row


def _is_map(field: Any) -> bool:
    return field.message_type is not None and bool(field.message_type.GetOptions().map_entry)


@dataclasses.dataclass(frozen=True)
class Columns:
    """The columns of an export: `keys` (usage: the group_by fields) then `values` (usage: the
    metrics; events: the event fields)."""

    keys: tuple[str, ...]
    values: tuple[str, ...]
    usage: bool

    @functools.cached_property
    def header(self) -> list[str]:
        return [*(("start_time", "end_time") if self.usage else ()), *self.keys, *self.values]

    @functools.cached_property
    def _reader(self) -> _Reader:
        return _Reader(_METRICS if self.usage else _EVENT, self.values, len(self.header) - len(self.values))

    @functools.cached_property
    def _csv_fixes(self) -> tuple[list[int], list[int], list[int]]:
        """Columns a CSV cell is made of differently: (may be null, booleans, maps)."""
        reader = self._reader
        nullable = [*range(2, 2 + len(self.keys))] if self.usage else []
        nullable += [i for i, _ in reader.times] + [i for i, _ in reader.optional]
        return nullable, reader.bools, reader.maps

    def rows(self, chunk: exports_pb2.ExportUsageChunk | exports_pb2.ExportEventsChunk) -> list[Row]:
        if isinstance(chunk, exports_pb2.ExportUsageChunk):
            return [row for bucket in chunk.buckets for row in self.bucket_rows(bucket)]
        read = self._reader.read
        return [read(event, []) for event in chunk.events]

    def bucket_rows(self, bucket: query_pb2.UsageBucket) -> Iterator[Row]:
        """A bucket's rows: one per group, or one with no key for an empty bucket."""
        start, end = _time(bucket.start_time), _time(bucket.end_time)
        read = self._reader.read
        for group in bucket.groups or [_EMPTY_GROUP]:
            key = group.key
            yield read(group.metrics, [start, end, *(key.get(field) for field in self.keys)])

    def csv_rows(self, rows: Iterable[Row]) -> Iterator[Row]:
        """Rows as CSV cells: null empty, booleans true/false, maps their JSON text."""
        nullable, bools, maps = self._csv_fixes
        for row in rows:
            for i in nullable:
                if row[i] is None:
                    row[i] = ""
            for i in bools:
                row[i] = "true" if row[i] else "false"
            for i in maps:
                row[i] = _json(row[i])
            yield row


def usage_columns(group_by: Sequence[str], metrics: Sequence[str] = ()) -> Columns:
    """The columns of a usage export of a QueryUsageRequest with this group_by and metrics."""
    asked = set(metrics)
    names = tuple(f.name for f in _METRICS.fields if f.name == "events" or not asked or f.name in asked)
    return Columns(tuple(group_by), names, usage=True)


def event_columns(include_payload: bool) -> Columns:
    """The columns of an event export."""
    return Columns((), tuple(f.name for f in _EVENT.fields if include_payload or f.name not in PAYLOAD_FIELDS),
                   usage=False)


def _time(stamp: timestamp_pb2.Timestamp) -> str:
    """RFC 3339 in UTC as protobuf's JSON writes a Timestamp (0, 3, 6 or 9 fraction digits)."""
    return _stamp_text(stamp.seconds, stamp.nanos)


@functools.lru_cache(maxsize=4096)
def _stamp_text(seconds: int, nanos: int) -> str:
    """_time by arithmetic (Timestamp.ToJsonString is pure Python, and three times slower), memoized:
    an event's three times are often one, and a usage bucket's bounds repeat down its groups."""
    y, mo, d, h, mi, se = time.gmtime(seconds)[:6]
    text = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{se:02d}"
    if nanos:
        fraction = f"{nanos:09d}"
        text += "." + (fraction[:3] if nanos % 1_000_000 == 0 else fraction[:6] if nanos % 1000 == 0 else fraction)
    return text + "Z"


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _json(value: Any) -> str:
    """JSON text, compact; one encoder for all (json.dumps with options makes one per call)."""
    return _ENCODER.encode(value) if value else "{}"  # a map or a row: an empty one is an empty map


def csv_text(rows: Iterable[Row]) -> str:
    """Rows of CSV cells as CSV text (RFC 4180). A row is joined with commas as it is when that is
    what csv.writer writes: no cell needs quoting (no comma, quote or line break in the line, as
    many commas as cells less one) and none is None (csv writes ""; here "None" sends the row to
    csv); other rows are csv.writer's. Cells str() alike in both (csv's float is repr, the same).
    csv.writer took ~11 µs of a 50-cell event row, the join ~3."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    write, writerow = out.write, writer.writerow
    for row in rows:
        line = ",".join(map(str, row))
        if (line and line.count(",") == len(row) - 1 and '"' not in line and "\n" not in line
                and "\r" not in line and "None" not in line):
            write(line + "\r\n")
        else:
            writerow(row)
    return out.getvalue()


def ndjson_text(header: Sequence[str], rows: Iterable[Row]) -> str:
    """Rows as NDJSON: one object per line, keyed by the header."""
    return "".join(_json(dict(zip(header, row, strict=True))) + "\n" for row in rows)


def header_text(fmt: str, columns: Columns) -> str:
    """What an export of this format starts with: CSV's header row; nothing for NDJSON."""
    return csv_text([columns.header]) if fmt == "csv" else ""


def chunk_text(fmt: str, columns: Columns,
               chunk: exports_pb2.ExportUsageChunk | exports_pb2.ExportEventsChunk) -> tuple[str, int]:
    """A chunk's rows in this format, and how many rows that is."""
    rows = columns.rows(chunk)
    return (csv_text(columns.csv_rows(rows)) if fmt == "csv" else ndjson_text(columns.header, rows)), len(rows)
