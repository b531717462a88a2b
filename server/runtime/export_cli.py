"""The `metering export` verb: an ExportService stream written to a file, with a progress bar,
resumable by cursor.

    metering export usage --start T [--end T] [--width W] [--zone Z] [--group-by F ...]
                          [--filter FIELD=VALUE ...] [--metric M ...] --out FILE [common options]
    metering export events [--start T] [--end T] [--project P ...] [--user U ...] [--api-key K ...]
                           [--client C ...] [--model M ...] [--kind K ...] [--include-voided] [--payload]
                           --out FILE [common options]
    common: [--format csv|ndjson] [--resume] [--key KEY] [--org ORG] [--target HOST:PORT]
            [--page-size N] [--quiet]

Rows and formats are metering.exports' (docs/exports.md). The credentials: --key (or
METERING_API_KEY), an API key whose scope the export follows (a member's key exports its own
usage); without one, the master key of the service the admin verbs find (server/runtime/
admin_cli.py), acting in --org when given.

Resuming: beside FILE the command keeps FILE.cursor (an ExportCheckpoint as JSON): the request,
the cursor of the last chunk written, and the file's size and row count after it, written once
the chunk's rows are flushed to disk. An interrupted export (Ctrl-C, a lost connection, a crash)
leaves it there; the same command with --resume cuts FILE back to that size (rows of a chunk
whose checkpoint was not written yet go) and continues from the cursor, so every row is in
the file exactly once. A finished export removes FILE.cursor. A usage export without --end
ends at the moment it started (kept in the checkpoint), so a resumed one asks the same question.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import os
import pathlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import json_format, timestamp_pb2
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from metering import exports
from metering.v1 import exports_pb2, exports_pb2_grpc, query_pb2, records_pb2
from server.core.config import ConfigError, Settings
from server.runtime.prices_cli import parse_time

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # the server's own limit (server/runtime/app.py)
CHECKPOINT_SUFFIX = ".cursor"
Auth = tuple[tuple[str, str], ...]
Chunk = exports_pb2.ExportUsageChunk | exports_pb2.ExportEventsChunk


def add_parser(verbs: Any, target_help: str) -> None:
    export = verbs.add_parser("export", help="export usage buckets or events to a CSV or NDJSON file")
    kinds = export.add_subparsers(dest="kind", required=True)
    usage = kinds.add_parser("usage", help="the buckets of a usage query (as QueryUsage)")
    usage.add_argument("--start", required=True, help="ISO 8601, inclusive")
    usage.add_argument("--end", help="ISO 8601, exclusive (default: now, fixed when the export starts)")
    usage.add_argument("--width", default="", help="1m, 1h, 1d (default), month or all")
    usage.add_argument("--zone", default="", help="IANA time zone of the buckets (default UTC)")
    usage.add_argument("--group-by", action="append", default=[], metavar="FIELD", help="a dimension or labels.<name>")
    usage.add_argument("--filter", action="append", default=[], metavar="FIELD=VALUE",
                       help="keep usage whose FIELD is VALUE (repeat: any of the values of a field, all fields)")
    usage.add_argument("--metric", action="append", default=[], metavar="NAME", help="metric columns (default all)")
    events = kinds.add_parser("events", help="stored events, newest first (as ListEvents)")
    events.add_argument("--start", help="ISO 8601, inclusive")
    events.add_argument("--end", help="ISO 8601, exclusive")
    for flag, dest in (("--project", "project_ids"), ("--user", "user_ids"), ("--api-key", "api_key_ids"),
                       ("--client", "client_ids"), ("--model", "models"), ("--kind", "kinds")):
        events.add_argument(flag, dest=dest, action="append", default=[], help="repeat for any of several")
    events.add_argument("--include-voided", action="store_true")
    events.add_argument("--payload", action="store_true", help="add the payload columns")
    for p in (usage, events):
        p.add_argument("--out", required=True, type=pathlib.Path, help="the file to write")
        p.add_argument("--format", choices=exports.FORMATS,
                       help="default: ndjson for a .ndjson or .jsonl FILE, else csv")
        p.add_argument("--resume", action="store_true", help="continue the interrupted export of FILE")
        p.add_argument("--key", help="API key (default $METERING_API_KEY, else the service's master key)")
        p.add_argument("--org", help="with the master key: the organization to export")
        p.add_argument("--target", help=target_help)
        p.add_argument("--page-size", type=int, default=0, help="buckets or events per chunk")
        p.add_argument("--quiet", action="store_true", help="no progress bar")


def _stamp(text: str | None) -> timestamp_pb2.Timestamp | None:
    return parse_time(text) if text else None


def build_request(args: argparse.Namespace) -> query_pb2.QueryUsageRequest | records_pb2.ListEventsRequest:
    if args.kind == "usage":
        filters: dict[str, list[str]] = {}
        for item in args.filter:
            field, sep, value = item.partition("=")
            if not sep or not field:
                raise ConfigError(f"--filter {item!r}: write FIELD=VALUE")
            filters.setdefault(field, []).append(value)
        return query_pb2.QueryUsageRequest(
            start_time=_stamp(args.start), end_time=_stamp(args.end), width=args.width, time_zone=args.zone,
            group_by=args.group_by, metrics=args.metric, page_size=args.page_size,
            filters=[query_pb2.Filter(field=f, values=v) for f, v in filters.items()])
    return records_pb2.ListEventsRequest(
        start_time=_stamp(args.start), end_time=_stamp(args.end), page_size=args.page_size,
        project_ids=args.project_ids, user_ids=args.user_ids, api_key_ids=args.api_key_ids,
        client_ids=args.client_ids, models=args.models, kinds=args.kinds, include_voided=args.include_voided,
        include_payload=args.payload)


def columns_of(request: query_pb2.QueryUsageRequest | records_pb2.ListEventsRequest) -> exports.Columns:
    if isinstance(request, query_pb2.QueryUsageRequest):
        return exports.usage_columns(list(request.group_by), list(request.metrics))
    return exports.event_columns(request.include_payload)


@dataclasses.dataclass
class Checkpoint:
    """FILE.cursor: where an export of FILE stopped (metering.v1.ExportCheckpoint as JSON)."""

    path: pathlib.Path

    def load(self) -> exports_pb2.ExportCheckpoint:
        try:
            return json_format.Parse(self.path.read_text(), exports_pb2.ExportCheckpoint())
        except FileNotFoundError:
            raise ConfigError(f"no {self.path}: nothing to resume (the export finished, or never started)") from None
        except (OSError, json_format.ParseError) as exc:
            raise ConfigError(f"cannot read {self.path}: {exc}") from None

    def save(self, state: exports_pb2.ExportCheckpoint) -> None:
        state.updated_at.GetCurrentTime()
        temp = self.path.with_name(self.path.name + ".tmp")
        with open(temp, "w") as f:
            f.write(json_format.MessageToJson(state, preserving_proto_field_name=True))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, self.path)  # atomic: the checkpoint is the old one or the new one


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    return "ndjson" if args.out.suffix.lower() in (".ndjson", ".jsonl") else "csv"


def prepare(args: argparse.Namespace) -> exports_pb2.ExportCheckpoint:
    """The checkpoint to start from: a fresh one, or with --resume the one beside FILE (the request
    on the command line must be the one it holds; a usage export's end defaults to the stored one)."""
    request = build_request(args)
    checkpoint = Checkpoint(args.out.with_name(args.out.name + CHECKPOINT_SUFFIX))
    if not args.resume:
        if checkpoint.path.exists():
            raise ConfigError(f"{checkpoint.path} holds an interrupted export of {args.out}: "
                              "add --resume to continue it, or remove it to start again")
        if isinstance(request, query_pb2.QueryUsageRequest) and not request.HasField("end_time"):
            request.end_time.FromDatetime(dt.datetime.now(dt.UTC).replace(microsecond=0))
        if isinstance(request, query_pb2.QueryUsageRequest):
            return exports_pb2.ExportCheckpoint(kind=args.kind, format=_format(args), usage=request)
        return exports_pb2.ExportCheckpoint(kind=args.kind, format=_format(args), events=request)
    state = checkpoint.load()
    stored = _request_of(state)
    if isinstance(request, query_pb2.QueryUsageRequest) and not request.HasField("end_time"):
        request.end_time.CopyFrom(stored.end_time)
    if state.kind != args.kind or (args.format and args.format != state.format) or request != stored:
        raise ConfigError(f"{checkpoint.path} is an export of {state.kind} with other options; "
                          "resume with the command that started it")
    return state


def _request_of(state: exports_pb2.ExportCheckpoint) -> query_pb2.QueryUsageRequest | records_pb2.ListEventsRequest:
    return state.usage if state.kind == "usage" else state.events


@contextlib.asynccontextmanager
async def connect(args: argparse.Namespace, settings: Settings,
                  data_dir_given: bool) -> AsyncIterator[tuple[grpc.aio.Channel, Auth]]:
    """The channel and credentials: --key (or METERING_API_KEY) at --target (or METERING_TARGET);
    otherwise the service the admin verbs find, with the given key or its master key."""
    key = args.key or os.environ.get("METERING_API_KEY")
    target = args.target or os.environ.get("METERING_TARGET")
    org: Auth = (("x-metering-organization", args.org),) if args.org else ()
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
    if key and target:
        async with grpc.aio.insecure_channel(target, options=options) as channel:
            yield channel, (("authorization", f"Bearer {key}"), *org)
        return
    from server.runtime.admin_cli import _channel

    async with _channel(args, settings, data_dir_given) as (channel, master):
        yield channel, ((("authorization", f"Bearer {key}"),) if key else master) + org


class Tracker:
    """Progress over the time range: buckets run forward from start, events backward from end."""

    def __init__(self, state: exports_pb2.ExportCheckpoint, quiet: bool) -> None:
        request = _request_of(state)
        self.usage = state.kind == "usage"
        start = request.start_time.ToSeconds() if request.HasField("start_time") else None
        end = request.end_time.ToSeconds() if request.HasField("end_time") else dt.datetime.now(dt.UTC).timestamp()
        self.span = (start, end) if start is not None and end > start else None
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rows]:,} rows"), TimeElapsedColumn(),
            console=Console(stderr=True), disable=quiet, transient=False)
        total = int(self.span[1] - self.span[0]) if self.span else None
        self.task = self.progress.add_task(f"export {state.kind}", total=total, rows=state.rows)

    def update(self, chunk: Chunk, rows: int) -> None:
        done: float | None = None
        if self.span is not None:
            start, end = self.span
            if isinstance(chunk, exports_pb2.ExportUsageChunk) and chunk.buckets:
                done = chunk.buckets[-1].end_time.ToSeconds() - start
            elif isinstance(chunk, exports_pb2.ExportEventsChunk) and chunk.events:
                done = end - chunk.events[-1].timestamp.ToSeconds()
            if not chunk.cursor:
                done = end - start
        self.progress.update(self.task, completed=done, rows=rows)


async def write(stream: AsyncIterator[Chunk], state: exports_pb2.ExportCheckpoint, out: pathlib.Path,
                tracker: Tracker) -> None:
    """Writes the chunks of `stream` after what `state` says FILE holds, checkpointing each."""
    checkpoint = Checkpoint(out.with_name(out.name + CHECKPOINT_SUFFIX))
    columns = columns_of(_request_of(state))
    with open(out, "r+b" if state.bytes else "wb") as f:
        f.truncate(state.bytes)  # rows written after the last checkpoint go: they come again
        f.seek(state.bytes)
        if not state.bytes:
            f.write(exports.header_text(state.format, columns).encode())
            state.bytes = f.tell()
            checkpoint.save(state)
        async for chunk in stream:
            text, rows = exports.chunk_text(state.format, columns, chunk)
            f.write(text.encode())
            f.flush()
            os.fsync(f.fileno())
            state.cursor, state.bytes, state.rows = chunk.cursor, f.tell(), state.rows + rows
            if chunk.cursor:
                checkpoint.save(state)
            tracker.update(chunk, state.rows)
    checkpoint.path.unlink(missing_ok=True)  # finished


def open_stream(channel: grpc.aio.Channel, auth: Auth, state: exports_pb2.ExportCheckpoint) -> AsyncIterator[Chunk]:
    stub = exports_pb2_grpc.ExportServiceStub(channel)
    if state.kind == "usage":
        request = query_pb2.QueryUsageRequest()
        request.CopyFrom(state.usage)
        request.page_token = state.cursor
        stream: AsyncIterator[Chunk] = stub.ExportUsage(request, metadata=auth)
        return stream
    events = records_pb2.ListEventsRequest()
    events.CopyFrom(state.events)
    events.page_token = state.cursor
    stream = stub.ExportEvents(events, metadata=auth)
    return stream


async def run_export(args: argparse.Namespace, settings: Settings, data_dir_given: bool) -> int:
    state = prepare(args)
    if args.resume and not args.quiet:
        print(f"resuming after row {state.rows:,} of {args.out}", file=sys.stderr)
    tracker = Tracker(state, args.quiet)
    try:
        async with connect(args, settings, data_dir_given) as (channel, auth):
            with tracker.progress:
                await write(open_stream(channel, auth, state), state, args.out, tracker)
    except grpc.aio.AioRpcError as err:
        print(f"metering: {err.code().name}: {err.details()}", file=sys.stderr)
        if state.bytes:
            print(f"metering: {args.out} holds {state.rows:,} rows; the same command with --resume continues",
                  file=sys.stderr)
        return 1
    except OSError as exc:  # the file: a missing directory, no space left, ...
        print(f"metering: {exc}", file=sys.stderr)
        return 1
    print(f"{state.rows:,} rows written to {args.out}")
    return 0
