"""The rollup job (server/rollups/recompute.py through worker/jobs.py): recompute, not
increment; idempotent; exact under concurrent passes and concurrent writes."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from arq import Retry

from metering.v1 import ingest_pb2, records_pb2
from server.rollups.recompute import is_retryable, recompute_day
from tests.worker.checks import assert_rollups_exact, dirty_count, org_number, usage
from worker.jobs import rollup_day

DAY = dt.datetime(2024, 5, 14, tzinfo=dt.UTC)


async def record(stubs, org, events) -> list[str]:
    resp = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=events), metadata=org.auth)
    assert resp.recorded == len(events)
    return [r.event_id for r in resp.results]


async def settle_day(db, org: int, day: dt.datetime) -> None:
    """Recompute until nothing is dirty, retrying passes that lost a race."""
    while True:
        try:
            done = await recompute_day(db, org, day)
        except Exception as exc:
            if not is_retryable(exc):
                raise
            continue
        if not done.dirty_left:
            return


async def test_recompute_replaces_and_is_idempotent(stubs, new_org, db):
    org = await new_org()
    number = await org_number(db, org.organization_id)
    ids = await record(stubs, org, [usage(i, DAY + dt.timedelta(minutes=7 * i)) for i in range(60)])
    assert await dirty_count(db, number) > 0

    first = await recompute_day(db, number, DAY + dt.timedelta(hours=5))  # any instant of the day
    assert first.windows == 28 and not first.dirty_left
    assert await dirty_count(db, number) == 0
    assert await assert_rollups_exact(db, number) == 60
    before = await db.fetch("select * from rollups_15m where org_id = $1 order by 2, 3", number)

    again = await recompute_day(db, number, DAY)
    assert again.windows == 0  # nothing dirty: nothing to do

    # Marked dirty again with nothing changed: recomputed, same rows (never added twice).
    await db.execute(
        "insert into dirty_windows (org_id, window_start) select org_id, window_start from rollups_15m "
        "where org_id = $1", number,
    )
    await recompute_day(db, number, DAY)
    assert await db.fetch("select * from rollups_15m where org_id = $1 order by 2, 3", number) == before

    # A void and an update make their windows dirty; the next pass follows them.
    await stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=ids[3]), metadata=org.auth)
    patch = usage(10, DAY, event_id=ids[10], input_tokens=999_999)  # another window than ids[3]
    await stubs.records.UpdateEvent(
        records_pb2.UpdateEventRequest(event=patch, update_mask={"paths": ["input_tokens", "labels"]}),
        metadata=org.auth,
    )
    assert await dirty_count(db, number) == 2
    assert (await recompute_day(db, number, DAY)).windows == 2
    assert await assert_rollups_exact(db, number) == 59


async def test_windows_emptied_by_voids_lose_their_rows(stubs, new_org, db):
    org = await new_org()
    number = await org_number(db, org.organization_id)
    [eid] = await record(stubs, org, [usage(1, DAY + dt.timedelta(hours=3))])
    await recompute_day(db, number, DAY)
    assert await db.fetchval("select count(*) from rollups_1d where org_id = $1", number) == 1
    await stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=eid), metadata=org.auth)
    await recompute_day(db, number, DAY)
    for table in ("rollups_15m", "rollups_1h", "rollups_1d"):
        assert await db.fetchval(f"select count(*) from {table} where org_id = $1", number) == 0


async def test_concurrent_passes_and_writes_stay_exact(stubs, new_org, db):
    """Eight passes over the same day race each other and a stream of late writes
    into that day; the losers retry; the result equals the raw events."""
    org = await new_org()
    number = await org_number(db, org.organization_id)
    await record(stubs, org, [usage(i, DAY + dt.timedelta(minutes=13 * i)) for i in range(80)])
    conflicts = 0

    async def passes() -> None:
        nonlocal conflicts
        for _ in range(6):
            try:
                await recompute_day(db, number, DAY)
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                conflicts += 1

    async def writes() -> None:
        for batch in range(6):
            await record(stubs, org, [usage(1000 + 10 * batch + i, DAY + dt.timedelta(minutes=31 * i + batch))
                                      for i in range(10)])
            await asyncio.sleep(0)

    await asyncio.gather(*(passes() for _ in range(8)), writes())
    await settle_day(db, number, DAY)
    assert await dirty_count(db, number) == 0
    assert await assert_rollups_exact(db, number) == 140
    assert conflicts > 0, "the passes never overlapped; the test proved nothing"


async def test_job_retries_on_conflict_and_when_left_dirty(stubs, new_org, db, monkeypatch):
    org = await new_org()
    number = await org_number(db, org.organization_id)
    await record(stubs, org, [usage(1, DAY + dt.timedelta(hours=1))])
    ctx = {"db": db, "rollup_delay": 0.5, "job_try": 1}

    async def lost(*args):
        raise __import__("asyncpg").SerializationError("could not serialize access due to concurrent update")

    monkeypatch.setattr("worker.jobs.recompute_day", lost)
    with pytest.raises(Retry):
        await rollup_day(ctx, number, DAY.isoformat())
    monkeypatch.undo()

    real = recompute_day

    async def raced(pool, org_id, day):
        done = await real(pool, org_id, day)
        # A write that committed after the pass's snapshot, whose enqueue found the job running.
        await record(stubs, org, [usage(2, DAY + dt.timedelta(hours=2))])
        return type(done)(done.windows, True)

    monkeypatch.setattr("worker.jobs.recompute_day", raced)
    with pytest.raises(Retry) as retry:
        await rollup_day(ctx, number, DAY.isoformat())
    assert retry.value.defer_score == 500
    monkeypatch.undo()
    assert await rollup_day(ctx, number, DAY.isoformat()) == 1
    assert await dirty_count(db, number) == 0
    assert await assert_rollups_exact(db, number) == 2
