"""RecordEvents builds its reply's wire bytes itself (server/api/ingest.py
batch_response): the message must equal the one built field by field."""

from __future__ import annotations

import datetime as dt
import uuid

from metering.v1 import ingest_pb2
from server.api.ingest import _rejected, _written, batch_response
from server.core.errors import InvalidArgument
from server.ingest.writer import Written


def test_batch_response_equals_the_messages_built_field_by_field():
    now = dt.datetime(2026, 3, 5, 10, 0, 0, 123456, tzinfo=dt.UTC)
    later = now + dt.timedelta(seconds=1)
    written = [
        Written(True, uuid.uuid4(), "r-0", now),
        Written(False, uuid.uuid4(), "r-dup"),
        Written(True, uuid.uuid4(), "ü" * 256, now),  # a request id of 512 bytes: a 2-byte length
        Written(True, uuid.uuid4(), "", later),
        *(Written(True, uuid.uuid4(), f"r-{i}", now) for i in range(200)),  # indexes over 127: 2-byte varints
    ]
    count = len(written) + 2
    indexes = [i for i in range(count) if i not in (1, 5)]
    event = ingest_pb2.RecordEventsRequest(events=[{"request_id": "bad"}]).events[0]
    rejected = {i: _rejected(i, event, InvalidArgument("kind", "required", reason="REQUIRED")) for i in (1, 5)}

    reply = ingest_pb2.RecordEventsResponse.FromString(batch_response(count, indexes, written, rejected))

    by_index = dict(zip(indexes, written, strict=True))
    results = [rejected[i] if i in rejected else _written(i, by_index[i]) for i in range(count)]
    recorded = sum(w.recorded for w in written)
    expected = ingest_pb2.RecordEventsResponse(
        results=results, recorded=recorded, duplicates=len(written) - recorded, rejected=2)
    assert reply == expected
    assert reply.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)


def test_empty_batch_response():
    reply = ingest_pb2.RecordEventsResponse.FromString(batch_response(0, [], [], {}))
    assert reply == ingest_pb2.RecordEventsResponse()
