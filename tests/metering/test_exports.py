"""metering/exports.py's text: CSV exactly as csv.writer writes it (RFC 4180), whichever way a row
takes, and times exactly as protobuf's JSON writes them."""

from __future__ import annotations

import csv
import io

from google.protobuf import timestamp_pb2

from metering import exports
from metering.v1 import event_pb2, exports_pb2

ROWS: list[list[object]] = [
    ["plain", 1, 0, -7, "", "true", "{}"],
    ["a,b", "x"],  # a comma
    ['say "hi"', "x"],  # a quote
    ["two\nlines", "cr\rhere", "crlf\r\n"],  # line breaks
    [None, "None", "not None", None],  # null cells, and the text None
    [""],  # one empty cell: csv writes ""
    [None],
    [],
    ["é, ü", "日本", "emoji 🚀"],
    [1.5, 0.1, 1e20, True, False],  # csv writes repr of a float, str of the rest
    ["trailing,", ",leading", ",", '"', ""],
    [" spaced ", "\t", "semi;colon", "'single'"],
]


def csv_writer_text(rows: list[list[object]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def test_csv_text_is_what_csv_writer_writes() -> None:
    assert exports.csv_text(ROWS) == csv_writer_text(ROWS)
    for row in ROWS:
        assert exports.csv_text([row]) == csv_writer_text([row]), row
    assert exports.csv_text([]) == ""


def test_csv_text_reads_back_as_the_cells() -> None:
    rows = [[("" if cell is None else str(cell)) for cell in row] for row in ROWS if row and row != [None]]
    assert list(csv.reader(io.StringIO(exports.csv_text(rows), newline=""))) == rows


STAMPS = [(0, 0), (1_700_000_123, 0), (1_700_000_123, 500_000_000), (1_700_000_123, 932_796_000),
          (1_700_000_123, 932_796_001), (-1, 999_999_000), (-62_135_596_800, 0), (253_402_300_799, 999_999_999)]


def test_event_times_are_protobuf_json_times() -> None:
    chunk = exports_pb2.ExportEventsChunk()
    for seconds, nanos in STAMPS:
        stamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
        chunk.events.append(event_pb2.UsageEvent(timestamp=stamp, received_at=stamp))  # updated_at unset
    chunk.events.append(event_pb2.UsageEvent())
    columns = exports.event_columns(False)
    at = {name: columns.header.index(name) for name in ("timestamp", "received_at", "updated_at")}
    rows = columns.rows(chunk)
    for row, event in zip(rows, chunk.events, strict=True):
        expected = event.timestamp.ToJsonString() if event.HasField("timestamp") else None
        assert row[at["timestamp"]] == row[at["received_at"]] == expected
        assert row[at["updated_at"]] is None
    text, count = exports.chunk_text("csv", columns, chunk)
    assert count == len(STAMPS) + 1
    assert [line[at["timestamp"]] for line in csv.reader(io.StringIO(text, newline=""))] == [
        timestamp_pb2.Timestamp(seconds=s, nanos=n).ToJsonString() for s, n in STAMPS] + [""]
