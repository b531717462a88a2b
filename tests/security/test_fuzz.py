"""Fuzzing the gRPC inputs with hypothesis: whatever comes in, the answer is OK or
INVALID_ARGUMENT / PERMISSION_DENIED (never INTERNAL or UNKNOWN), and nothing of a rejected
event is written."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import timestamp_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering.v1 import event_pb2, ingest_pb2
from server.core.events import KINDS
from tests.conftest import Stubs
from tests.security.conftest import World

INT64 = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 2**62]))
# Any Unicode except surrogates (not representable in UTF-8 protobuf strings), odd planes included.
UNICODE = st.characters(exclude_categories=["Cs"])
TEXT = st.one_of(st.text(UNICODE, max_size=40), st.text(UNICODE, min_size=250, max_size=300),
                 st.sampled_from(["", "\x00", "\U0010fffd", "\U0001f600" * 64, "\u202e", "a\u0000b", " "]))
MONEY = st.one_of(
    st.sampled_from(["", "NaN", "nan", "-nan", "sNaN", "inf", "-inf", "Infinity", "-Infinity", "1e400", "1E-400",
                     "-0", "-0.0", "0.1", "1" * 39, "1." + "1" * 19, "0x10", "1_000", " 1", "1 ", "+1", "١٢",
                     "0.000000000000000001", "99999999999999999999.999999999999999999", "1e20", "-1"]),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.text(UNICODE, max_size=12),
)
SECONDS = st.one_of(st.integers(-62135596800, 253402300799),
                    st.sampled_from([0, 946684799, 946684800, 4102444800, 253402300799, -62135596800]))
KIND = st.one_of(st.sampled_from(sorted(KINDS)), TEXT)
LABELS = st.one_of(
    st.dictionaries(st.text(UNICODE, max_size=70), st.text(UNICODE, max_size=1100), max_size=5),
    st.dictionaries(st.from_regex(r"[A-Za-z0-9_.:/-]{1,64}", fullmatch=True), st.text(UNICODE, max_size=30),
                    min_size=60, max_size=70),
    st.just({"k": "v" * 1024}), st.just({"k": "v" * 1025}), st.just({"": ""}),
)
COUNTERS = st.dictionaries(st.text(UNICODE, max_size=70), INT64, max_size=4)


@st.composite
def events(draw: Any) -> event_pb2.UsageEvent:
    ts = timestamp_pb2.Timestamp(seconds=draw(SECONDS), nanos=draw(st.integers(0, 999_999_999)))
    event = event_pb2.UsageEvent(
        request_id="fz-" + uuid.uuid4().hex, kind=draw(KIND), model=draw(TEXT), provider=draw(TEXT),
        project_id=draw(st.one_of(st.just(""), TEXT)), user_id=draw(st.one_of(st.just(""), TEXT)),
        client_id=draw(TEXT), status=draw(st.one_of(st.sampled_from(["", "success", "error"]), TEXT)),
        input_tokens=draw(INT64), output_tokens=draw(INT64), input_cached_tokens=draw(INT64),
        num_model_requests=draw(INT64), usage_bytes=draw(INT64), seconds=draw(INT64),
        labels=draw(LABELS), counters=draw(COUNTERS),
        cost=draw(st.one_of(st.just(""), MONEY)), input_cost=draw(st.one_of(st.just(""), MONEY)),
        output_cost=draw(st.one_of(st.just(""), MONEY)),
        currency=draw(st.one_of(st.sampled_from(["", "usd", "eur", "USD"]), TEXT)),
        config_json=draw(st.one_of(st.just(""), TEXT)),
    )
    if draw(st.booleans()):
        event.timestamp.CopyFrom(ts)
    return event


ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED}
SETTINGS = settings(max_examples=40, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


async def _written(db: asyncpg.Pool, request_id: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM request_keys WHERE request_id = $1", request_id))


@pytest.mark.parametrize("who", ["org_admin", "member", "project_key"])
@SETTINGS
@given(event=events())
async def test_fuzz_record_event(who: str, event: event_pb2.UsageEvent, world: World, stubs: Stubs,
                                 db: asyncpg.Pool) -> None:
    try:
        await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event), metadata=world.metadata(who),
                                       timeout=20)
        code = grpc.StatusCode.OK
    except grpc.aio.AioRpcError as err:
        code = err.code()
        assert code in ALLOWED, (code, err.details(), event)
    assert await _written(db, event.request_id) == (1 if code == grpc.StatusCode.OK else 0), (code, event)


@settings(SETTINGS, max_examples=25)
@given(batch=st.lists(events(), min_size=1, max_size=8))
async def test_fuzz_record_events_batch(batch: list[event_pb2.UsageEvent], world: World, stubs: Stubs,
                                        db: asyncpg.Pool) -> None:
    reply = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=batch),
                                            metadata=world.metadata("member"), timeout=20)
    assert [r.index for r in reply.results] == list(range(len(batch)))
    for event, result in zip(batch, reply.results, strict=True):
        if result.outcome == ingest_pb2.OUTCOME_REJECTED:
            assert result.reason and result.message
            assert await _written(db, event.request_id) == 0, result
        else:
            assert result.outcome == ingest_pb2.OUTCOME_RECORDED, result
            assert await _written(db, event.request_id) == 1


QUERY_ALLOWED = ALLOWED | {grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.FAILED_PRECONDITION}
DIMENSION = st.one_of(st.sampled_from(["model", "project_id", "user_id", "kind", "labels.task", "label:task",
                                       "price_version", "api_key_id", "client_id", "status", ""]), TEXT)


# Query times within 1900..2200: the extremes of the Timestamp range are the known finding below.
QUERY_SECONDS = st.integers(-2208988800, 7258118400)


@pytest.mark.parametrize("start, end", [
    (-62135424001, 0),
    (-62135596800, 946684800),
    (253402214400, 253402300799),
    (946684800, 253402300799),
])
async def test_query_at_the_edges_of_time(start: int, end: int, world: World, channel: grpc.aio.Channel) -> None:
    """Found by test_fuzz_query_usage: a range in the first or last days of the Timestamp range
    once answered INTERNAL (bucket arithmetic overflowed datetime); now INVALID_ARGUMENT."""
    from metering.v1 import query_pb2, query_pb2_grpc

    request = query_pb2.QueryUsageRequest(start_time=timestamp_pb2.Timestamp(seconds=start),
                                          end_time=timestamp_pb2.Timestamp(seconds=end))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await query_pb2_grpc.QueryServiceStub(channel).QueryUsage(request, metadata=world.metadata("member"),
                                                                  timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (caught.value.code(), caught.value.details())
    assert "time" in (caught.value.details() or ""), caught.value.details()  # names the field


@settings(SETTINGS, max_examples=40)
@given(
    start=QUERY_SECONDS, end=QUERY_SECONDS,
    width=st.one_of(st.sampled_from(["", "1m", "15m", "1h", "1d", "1w", "month", "all", "0m", "-1h"]), TEXT),
    zone=st.one_of(st.sampled_from(["", "UTC", "Europe/Paris", "America/St_Johns", "Asia/Kathmandu", "Mars/Base",
                                    "+05:30"]), TEXT),
    group_by=st.lists(DIMENSION, max_size=4),
    filters=st.lists(st.tuples(DIMENSION, st.lists(TEXT, max_size=3)), max_size=3),
    page_size=st.integers(-(2**31), 2**31 - 1), token=st.one_of(st.just(""), TEXT),
)
async def test_fuzz_query_usage(start: int, end: int, width: str, zone: str, group_by: list[str],
                                filters: list[tuple[str, list[str]]], page_size: int, token: str, world: World,
                                channel: grpc.aio.Channel) -> None:
    from metering.v1 import query_pb2, query_pb2_grpc

    request = query_pb2.QueryUsageRequest(
        start_time=timestamp_pb2.Timestamp(seconds=start), end_time=timestamp_pb2.Timestamp(seconds=end),
        width=width, time_zone=zone, group_by=group_by, page_size=page_size, page_token=token,
        filters=[query_pb2.Filter(field=f, values=v) for f, v in filters],
    )
    try:
        await query_pb2_grpc.QueryServiceStub(channel).QueryUsage(request, metadata=world.metadata("member"),
                                                                  timeout=30)
    except grpc.aio.AioRpcError as err:
        assert err.code() in QUERY_ALLOWED, (err.code(), err.details(), request)
