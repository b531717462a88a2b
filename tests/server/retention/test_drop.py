"""The retention sweep in a database of its own: a past month is dropped whole (events,
payloads, their request keys) only once every window in it is rolled up, queries over it stay
exact from the rollups, its events are NOT_FOUND (OUTSIDE_RETENTION), and nothing can be
written to it again, even after retention is lengthened (so a dirty window in a dropped month
cannot exist). The rollups run as the worker's job does, and the sweep is the worker's job."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2

from metering.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    event_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
)
from server.retention.drop import drop_expired, retention_sweep
from server.rollups.recompute import dirty_days
from server.runtime.app import MeteringServer
from tests.conftest import MASTER, MASTER_KEY
from tests.server.ingest.test_validation import details, rich_status
from tests.support import services
from worker.jobs import rollup_day

UTC = dt.UTC
NOW = dt.datetime.now(UTC)
MONTH = (NOW - dt.timedelta(days=120)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
OLD = MONTH + dt.timedelta(days=9, hours=3)  # events in MONTH, far past a 30-day retention
SUFFIX = f"{MONTH:%Y_%m}"


class Stubs:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.ingest = ingest_pb2_grpc.IngestServiceStub(channel)
        self.records = records_pb2_grpc.RecordServiceStub(channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(channel)
        self.query = query_pb2_grpc.QueryServiceStub(channel)


@pytest.fixture(scope="module")
async def own() -> AsyncIterator[tuple[Stubs, asyncpg.Pool]]:
    """A server on a database of its own: the sweep drops months of every organization."""
    admin = services.postgres_admin_dsn()
    dsn = await services.create_test_database(admin)
    server = MeteringServer(dsn, "127.0.0.1:0", MASTER_KEY, pool_size=4)
    try:
        await server.start()
        assert server.pool is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield Stubs(channel), server.pool
    finally:
        await server.stop(grace=1)
        await services.drop_test_database(admin, dsn)


def at(value: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def event(i: int, when: dt.datetime, request_json: str = "") -> event_pb2.UsageEvent:
    return event_pb2.UsageEvent(request_id=f"r-{i}", kind="completions", model="m", timestamp=at(when),
                                input_tokens=i, output_tokens=2 * i, cost=f"0.{i:03d}", request_json=request_json)


async def record(stubs: Stubs, *events: event_pb2.UsageEvent) -> ingest_pb2.RecordEventsResponse:
    reply: ingest_pb2.RecordEventsResponse = await stubs.ingest.RecordEvents(
        ingest_pb2.RecordEventsRequest(events=events), metadata=MASTER)
    return reply


async def usage(stubs: Stubs) -> list[tuple[dt.datetime, tuple[int, int, int, str]]]:
    reply = await stubs.query.QueryUsage(query_pb2.QueryUsageRequest(
        start_time=at(MONTH), end_time=at(MONTH + dt.timedelta(days=27)), width="1d",
        group_by=["model"]), metadata=MASTER)
    return [(b.start_time.ToDatetime(UTC), (g.metrics.events, g.metrics.input_tokens, g.metrics.output_tokens,
                                          g.metrics.cost)) for b in reply.buckets for g in b.groups]


async def retain(stubs: Stubs, event_days: int, payload_days: int | None = None) -> None:
    await stubs.admin.UpdateRetention(admin_pb2.UpdateRetentionRequest(
        event_days=event_days, payload_days=payload_days), metadata=MASTER)


async def exists(pool: asyncpg.Pool, name: str) -> bool:
    return bool(await pool.fetchval("select to_regclass($1) is not null", name))


async def test_a_month_is_dropped_once_rolled_up_and_stays_exact(own: tuple[Stubs, asyncpg.Pool]) -> None:
    stubs, pool = own
    old = [event(i, OLD + dt.timedelta(hours=i), request_json='{"q": 1}') for i in range(1, 41)]
    recent = [event(100 + i, NOW - dt.timedelta(hours=i)) for i in range(1, 4)]
    reply = await record(stubs, *old, *recent)
    assert reply.recorded == 43
    before = await usage(stubs)
    assert sum(m[0] for _, m in before) == 40
    old_id = reply.results[0].event_id

    await retain(stubs, 30, 7)  # the master key's organization is the only one here
    swept = await drop_expired(pool)
    assert swept.dropped == [] and swept.kept_dirty == [f"events_{SUFFIX}"]  # not rolled up yet
    assert await exists(pool, f"events_{SUFFIX}")

    for org_id, day in await dirty_days(pool):  # the worker's rollup job, in process
        await rollup_day({"db": pool, "rollup_delay": 0}, org_id, day.isoformat())
    assert await retention_sweep({"db": pool}) == 2  # the worker's cron job
    assert not await exists(pool, f"events_{SUFFIX}") and not await exists(pool, f"event_payloads_{SUFFIX}")
    assert await pool.fetchval("select count(*) from request_keys where request_id like 'r-%'") == 3
    assert await usage(stubs) == before  # from the rollups, exactly as from the raw events

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=old_id), metadata=MASTER)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    [info], _ = details(rich_status(err.value))
    assert info.reason == "OUTSIDE_RETENTION"

    # Nothing can be written to the dropped month again, even with retention lengthened.
    await retain(stubs, 0)
    again = await record(stubs, old[0], event(500, OLD))
    assert [(r.outcome, r.field, r.reason) for r in again.results] == [
        (ingest_pb2.OUTCOME_REJECTED, "timestamp", "OUTSIDE_RETENTION")] * 2
    assert not await pool.fetchval("select exists (select 1 from dirty_windows where window_start < $1)",
                                   MONTH + dt.timedelta(days=31))
    assert await usage(stubs) == before
    assert (await drop_expired(pool)).dropped == []  # idempotent


async def test_payloads_go_first_and_their_events_stay_adjustable(own: tuple[Stubs, asyncpg.Pool]) -> None:
    stubs, pool = own
    month = (NOW - dt.timedelta(days=60)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    reply = await record(stubs, event(900, month + dt.timedelta(days=2), request_json='{"q": 2}'))
    event_id = reply.results[0].event_id
    await retain(stubs, 0, 7)  # events for ever, payloads a week
    swept = await drop_expired(pool)
    assert f"event_payloads_{month:%Y_%m}" in swept.dropped and await exists(pool, f"events_{month:%Y_%m}")

    got = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=event_id), metadata=MASTER)
    assert got.input_tokens == 900 and got.request_json == ""
    patch = event_pb2.UsageEvent(event_id=event_id, input_tokens=901)
    updated = await stubs.records.UpdateEvent(records_pb2.UpdateEventRequest(
        event=patch, update_mask=field_mask_pb2.FieldMask(paths=["input_tokens"])), metadata=MASTER)
    assert updated.input_tokens == 901
    patch.request_json = "{}"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.records.UpdateEvent(records_pb2.UpdateEventRequest(
            event=patch, update_mask=field_mask_pb2.FieldMask(paths=["request_json"])), metadata=MASTER)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [info], _ = details(rich_status(err.value))
    assert (info.reason, info.metadata["field"]) == ("OUTSIDE_RETENTION", "request_json")


async def test_no_path_can_create_a_dropped_months_partition_again(own: tuple[Stubs, asyncpg.Pool]) -> None:
    """Whatever the write path (one that skipped the horizon check, a process that never saw
    the drop), the partitions of a month before the floor are not created again."""
    stubs, pool = own
    month = (NOW - dt.timedelta(days=45)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    await retain(stubs, 0)
    await record(stubs, event(700, month + dt.timedelta(days=3)))
    for org_id, day in await dirty_days(pool):
        await rollup_day({"db": pool, "rollup_delay": 0}, org_id, day.isoformat())
    await retain(stubs, 10)  # the month ends at least 14 days ago
    assert f"events_{month:%Y_%m}" in (await drop_expired(pool)).dropped
    with pytest.raises(asyncpg.DatetimeFieldOverflowError, match="dropped"):
        await pool.execute("select metering_ensure_partition($1)", month + dt.timedelta(days=3))
    assert not await exists(pool, f"events_{month:%Y_%m}")
