"""Cubes by UTC day and hour (migrations/0004_cubes.sql, 0008_hour_cubes.sql): recomputed
with the rollups, equal to the raw events summed over the cube dimensions, read by the
query engine only for clean whole UTC days and hours of queries the cube dimensions cover."""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import pathlib

import grpc
import pytest

from metering.v1 import ingest_pb2, query_pb2, query_pb2_grpc, records_pb2
from server.core.events import COUNTER_FIELDS
from server.query.plan import CUBE_DIMENSIONS, cube_covers
from server.rollups.recompute import recompute_day
from tests.worker.checks import org_number, stamp, stored_sql

UTC = dt.UTC
DAY = dt.datetime(2024, 7, 1, tzinfo=UTC)
MIGRATIONS = pathlib.Path(__file__).parents[2] / "server" / "storage" / "migrations"
_SUMS = ("events", "unpriced_events", *COUNTER_FIELDS, "input_cost", "output_cost", "cost", "last_event_at")


@pytest.fixture(scope="module")
def query(channel: grpc.aio.Channel) -> query_pb2_grpc.QueryServiceStub:
    return query_pb2_grpc.QueryServiceStub(channel)


def event(i: int, at: dt.datetime, **fields: object):
    """Many users, keys and labels over few projects and models: cubes merge series."""
    from metering.v1 import event_pb2

    e = event_pb2.UsageEvent(
        request_id=f"cube-{i}-{at.timestamp()}", kind=("completions", "embeddings")[i % 2], model=f"m{i % 3}",
        project_id=f"p{i % 2}", user_id=f"u{i % 7}", api_key_id=f"k{i % 5}", labels={"task_id": f"t{i % 4}"},
        counters={"inference": i}, timestamp=stamp(at), input_tokens=i * 3 + 1, output_tokens=i % 13,
        input_cost=f"0.{i:04d}", output_cost="0.000001",
    )
    for name, value in fields.items():
        setattr(e, name, value)
    return e


async def record(stubs, org, events) -> list[str]:
    resp = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=events), metadata=org.auth)
    assert resp.recorded == len(events)
    return [r.event_id for r in resp.results]


async def settle(db, number: int, days: int) -> None:
    for d in range(days):
        await recompute_day(db, number, DAY + dt.timedelta(days=d))
    assert await db.fetchval("select count(*) from dirty_windows where org_id = $1", number) == 0


async def tamper(db, number: int, statement: str) -> None:
    """A test-only write to the cubes behind the engine's back. It also advances the
    rollup stamps of the organization's hours, as a rollup pass would: otherwise a query
    asked before would be answered from the buckets the server kept (server/api/bucket_cache.py)
    and show nothing of the write, whatever it reads."""
    await db.execute(statement, number)
    await db.execute("update rollup_hour_stamps set stamp = nextval('rollup_stamp_seq') where org_id = $1", number)


async def assert_cubes_exact(db, number: int) -> int:
    """The cubes of both grains equal the active raw events summed per (UTC day or
    hour, cube dimensions); every representative series has the row's dimensions.
    Returns the number of daily cube rows."""
    await assert_grain_exact(db, number, "1h", "hour")
    return await assert_grain_exact(db, number, "1d", "day")


async def assert_grain_exact(db, number: int, grain: str, unit: str) -> int:
    dims = sorted(CUBE_DIMENSIONS)
    columns = ", ".join(f"s.{d}" for d in dims)
    sums = ", ".join(f"sum(e.{c})" for c in COUNTER_FIELDS)  # numeric: exact whatever their size
    cube_sums = ", ".join(stored_sql("c", m) if m in COUNTER_FIELDS else f"c.{m}" for m in _SUMS[:-1])
    expected = {
        tuple(r)[:-1]: tuple(r)[-1] for r in await db.fetch(f"""
            select date_trunc('{unit}', e.ts, 'UTC'), {columns},
                   array[count(*), count(*) filter (where e.unpriced), {sums}]::numeric[]
                   || array[coalesce(sum(e.input_cost), 0), coalesce(sum(e.output_cost), 0), coalesce(sum(e.cost), 0)]
            from events e join series s on s.org_id = e.org_id and s.series_id = e.series_id
            where e.org_id = $1 and e.active group by 1, {columns}""", number)
    }
    got = {
        tuple(r)[:-1]: tuple(r)[-1] for r in await db.fetch(f"""
            select c.window_start, {columns},
                   array[{cube_sums}]::numeric[]
            from cubes_{grain} c join series s on s.org_id = c.org_id and s.series_id = c.series_id
            where c.org_id = $1""", number)
    }
    assert got == expected
    counters = await db.fetch(f"""
        select date_trunc('{unit}', e.ts, 'UTC') as day, {columns}, kv.key, sum(kv.value::numeric) as total
        from events e join series s on s.org_id = e.org_id and s.series_id = e.series_id
        cross join lateral jsonb_each_text(e.counters) kv
        where e.org_id = $1 and e.active group by 1, {columns}, kv.key""", number)
    stored = await db.fetch(f"""
        select c.window_start as day, {columns}, c.name, c.value
        from cube_counters_{grain} c join series s on s.org_id = c.org_id and s.series_id = c.series_id
        where c.org_id = $1""", number)
    assert collections.Counter(map(tuple, stored)) == collections.Counter(map(tuple, counters))  # None: unsortable
    return len(got)


async def grouped(query, org, group_by, *, zone="UTC", days=3, width="1d", filters=()) -> dict:
    """{(bucket start, key...): (events, input_tokens, cost, inference)} over `days` days."""
    reply = await query.QueryUsage(query_pb2.QueryUsageRequest(
        start_time=stamp(DAY), end_time=stamp(DAY + dt.timedelta(days=days)), width=width, time_zone=zone,
        group_by=group_by, filters=[query_pb2.Filter(field=f, values=v) for f, v in filters], page_size=1000,
    ), metadata=org.auth)
    out: dict = {}
    for b in reply.buckets:
        for g in b.groups:
            key = (b.start_time.ToSeconds(), *(g.key.get(f) for f in group_by))
            out[key] = (g.metrics.events, g.metrics.input_tokens, decimal.Decimal(g.metrics.cost or "0"),
                        g.metrics.counters.get("inference", 0))
    return out


def coarsen(fine: dict, keep: int) -> dict:
    """Sum a finer grouping down to its first `keep` key fields (after the bucket)."""
    out: dict = {}
    for key, (n, tokens, cost, inference) in fine.items():
        k = key[: keep + 1]
        a = out.get(k, (0, 0, decimal.Decimal(0), 0))
        out[k] = (a[0] + n, a[1] + tokens, a[2] + cost, a[3] + inference)
    return out


def test_cube_coverage():
    assert cube_covers(["model", "project_id", "kind", "batch", "service_tier"])
    assert not cube_covers(["model", "user_id"])
    assert not cube_covers(["labels.task_id"])
    assert not cube_covers(["api_key_id"])


async def test_cubes_follow_recomputes_updates_and_voids(stubs, new_org, db):
    org = await new_org()
    number = await org_number(db, org.organization_id)
    ids = await record(stubs, org, [event(i, DAY + dt.timedelta(minutes=41 * i)) for i in range(200)])
    await settle(db, number, 6)
    rows = await assert_cubes_exact(db, number)
    series = await db.fetchval("select count(*) from rollups_1d where org_id = $1", number)
    assert 0 < rows < series  # the cubes merge users, keys and labels

    await stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=ids[3]), metadata=org.auth)
    patch = event(10, DAY, event_id=ids[10], input_tokens=777_777, model="m-new")
    await stubs.records.UpdateEvent(records_pb2.UpdateEventRequest(
        event=patch, update_mask={"paths": ["input_tokens", "model"]}), metadata=org.auth)
    await settle(db, number, 6)
    await assert_cubes_exact(db, number)

    # Every event of a day voided: the day's cube rows go.
    day_ids = [eid for i, eid in enumerate(ids) if DAY + dt.timedelta(minutes=41 * i) >= DAY + dt.timedelta(days=5)]
    for eid in day_ids:
        await stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=eid), metadata=org.auth)
    await settle(db, number, 6)
    assert await db.fetchval("select count(*) from cubes_1d where org_id = $1 and window_start = $2", number,
                             DAY + dt.timedelta(days=5)) == 0
    await assert_cubes_exact(db, number)


async def test_covered_queries_read_cubes_and_only_them(stubs, new_org, db, query):
    """Cube rows are tampered with (a test-only write) to see which queries read
    them: covered UTC-day queries do; uncovered groupings, scoped members,
    other zones and days with a dirty window do not."""
    org = await new_org()
    number = await org_number(db, org.organization_id)
    await record(stubs, org, [event(i, DAY + dt.timedelta(minutes=37 * i)) for i in range(100)])
    await settle(db, number, 3)
    covered = await grouped(query, org, ["model", "project_id"], filters=[("kind", ["completions"])])
    fine = await grouped(query, org, ["model", "project_id", "user_id"], filters=[("kind", ["completions"])])
    assert covered == coarsen(fine, 2)  # the cube path equals the per-series path
    new_york = await grouped(query, org, ["model"], zone="America/New_York")
    hourly = await grouped(query, org, ["model"], width="1h")

    await tamper(db, number, "update cubes_1d set input_tokens = input_tokens + 1000000 where org_id = $1")
    tampered = await grouped(query, org, ["model", "project_id"], filters=[("kind", ["completions"])])
    assert all(tampered[k][1] == v[1] + 1_000_000 for k, v in covered.items()), "covered query did not read cubes"
    assert await grouped(query, org, ["model", "project_id", "user_id"],
                         filters=[("kind", ["completions"])]) == fine
    assert await grouped(query, org, ["model"], zone="America/New_York") == new_york
    assert await grouped(query, org, ["model"], width="1h") == hourly

    # A dirty window anywhere in a day: that whole day is read raw, the others still from cubes.
    await db.execute("insert into dirty_windows (org_id, window_start) values ($1, $2)", number,
                     DAY + dt.timedelta(days=1, hours=3))
    partly = await grouped(query, org, ["model", "project_id"], filters=[("kind", ["completions"])])
    for key, value in covered.items():
        in_dirty_day = key[0] == int((DAY + dt.timedelta(days=1)).timestamp())
        assert partly[key][1] == value[1] + (0 if in_dirty_day else 1_000_000)

    await db.execute("insert into dirty_windows (org_id, window_start) values ($1, $2), ($1, $3)", number,
                     DAY + dt.timedelta(hours=3), DAY + dt.timedelta(days=2, hours=3))
    await settle(db, number, 3)  # recomputed: the tampering is gone
    assert await grouped(query, org, ["model", "project_id"], filters=[("kind", ["completions"])]) == covered


async def test_member_scope_never_reads_cubes(stubs, new_org, db, query):
    from metering.v1 import admin_pb2

    org = await new_org()
    number = await org_number(db, org.organization_id)
    user = await stubs.admin.CreateUser(admin_pb2.CreateUserRequest(
        username="cube-" + org.organization_id, password="pw-cube-12345"), metadata=org.auth)
    member = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
        user_id=user.user_id, name="member"), metadata=org.auth)
    await record(stubs, org, [event(i, DAY + dt.timedelta(minutes=53 * i), user_id=user.user_id if i % 2 else "x")
                              for i in range(40)])
    await settle(db, number, 2)
    as_member = type(org)(org.organization_id, org.name, member.key)
    before = await grouped(query, as_member, ["model"], days=2)
    assert sum(v[0] for v in before.values()) == 20
    await tamper(db, number, "update cubes_1d set events = events + 1000 where org_id = $1")
    assert await grouped(query, as_member, ["model"], days=2) == before
    assert sum(v[0] for v in (await grouped(query, org, ["model"], days=2)).values()) == 40 + 1000 * await db.fetchval(
        "select count(*) from cubes_1d where org_id = $1", number)  # while the admin's query reads them
    await db.execute("delete from cubes_1d where org_id = $1", number)  # undo: recompute both days
    await db.execute("insert into dirty_windows (org_id, window_start) values ($1, $2), ($1, $3)", number,
                     DAY, DAY + dt.timedelta(days=1))
    await settle(db, number, 2)
    await assert_cubes_exact(db, number)


@pytest.mark.parametrize("migration, grain", [("0004_cubes.sql", "1d"), ("0008_hour_cubes.sql", "1h")])
async def test_migration_backfill_equals_recomputed_cubes(stubs, new_org, db, migration, grain):
    """0004 (0008) fills the cubes of days (hours) rolled up before it: the same rows a pass makes."""
    org = await new_org()
    number = await org_number(db, org.organization_id)
    await record(stubs, org, [event(i, DAY + dt.timedelta(minutes=71 * i)) for i in range(80)])
    await settle(db, number, 4)
    cubes = f"select * from cubes_{grain} where org_id = $1"
    counters = f"select * from cube_counters_{grain} where org_id = $1"
    before = sorted(map(tuple, await db.fetch(cubes, number)))
    before_counters = sorted(map(tuple, await db.fetch(counters, number)))
    assert before and before_counters
    backfill = (MIGRATIONS / migration).read_text().split("including all);", 2)[2]  # the two inserts
    async with db.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:  # for every organization, as the migration does; rolled back
            await conn.execute(f"delete from cubes_{grain}; delete from cube_counters_{grain}")
            await conn.execute(backfill)
            assert sorted(map(tuple, await conn.fetch(cubes, number))) == before
            assert sorted(map(tuple, await conn.fetch(counters, number))) == before_counters
        finally:
            await tx.rollback()


async def test_covered_hourly_queries_read_hour_cubes(stubs, new_org, db, query):
    """Whole clean UTC hours of covered queries come from cubes_1h (tampered with to see
    which queries read it); uncovered groupings and dirty hours do not."""
    org = await new_org()
    number = await org_number(db, org.organization_id)
    await record(stubs, org, [event(i, DAY + dt.timedelta(minutes=11 * i)) for i in range(120)])
    await settle(db, number, 1)
    await assert_cubes_exact(db, number)
    completions = [("kind", ["completions"])]

    async def hourly(group_by: list[str]) -> dict:
        return await grouped(query, org, group_by, width="1h", days=1, filters=completions)

    covered = await hourly(["model", "project_id"])
    fine = await hourly(["model", "project_id", "user_id"])
    assert covered == coarsen(fine, 2) and len(covered) > 24  # the cube path equals the per-series path

    await tamper(db, number, "update cubes_1h set input_tokens = input_tokens + 1000000 where org_id = $1")
    tampered = await hourly(["model", "project_id"])
    assert all(tampered[k][1] == v[1] + 1_000_000 for k, v in covered.items()), "covered query did not read cubes"
    assert await hourly(["model", "project_id", "user_id"]) == fine
    # A dirty window: its hour is read raw, the other hours still from the cubes.
    await db.execute("insert into dirty_windows (org_id, window_start) values ($1, $2)", number,
                     DAY + dt.timedelta(hours=5, minutes=15))
    partly = await hourly(["model", "project_id"])
    five = int((DAY + dt.timedelta(hours=5)).timestamp())
    assert all(partly[k][1] == v[1] + (0 if k[0] == five else 1_000_000) for k, v in covered.items())
    await tamper(db, number, "update cubes_1h set input_tokens = input_tokens - 1000000 where org_id = $1")
    await settle(db, number, 1)
    await assert_cubes_exact(db, number)
    assert await hourly(["model", "project_id"]) == covered
