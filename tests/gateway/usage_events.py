"""Recording usage events with known times, for the tests of the reporting dialects."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from google.protobuf import timestamp_pb2

from metering.v1 import event_pb2, ingest_pb2
from tests.conftest import Stubs, bearer

UTC = dt.UTC
_ids = itertools.count()


def at(value: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def unix(value: dt.datetime) -> int:
    return int(value.timestamp())


def event(kind: str, when: dt.datetime, **fields: Any) -> event_pb2.UsageEvent:
    return event_pb2.UsageEvent(request_id=f"gw-{next(_ids)}", kind=kind, timestamp=at(when), **fields)


async def record(stubs: Stubs, key: str, *events: event_pb2.UsageEvent) -> None:
    """Records the events with `key`'s credentials (which default their user and API key)."""
    for start in range(0, len(events), 1000):
        chunk = events[start:start + 1000]
        reply = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=chunk), metadata=bearer(key))
        assert reply.recorded == len(chunk), [r.message for r in reply.results if r.message]
