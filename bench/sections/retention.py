"""python -m bench --only retention: bytes per event in each table, and what a retention drop
gives back (docs/storage.md "Retention", docs/scaling.md "Capacity").

A month four months back is loaded through gRPC RecordEvents (1,000 a batch, every event with
a ~1 KB payload), the stack's worker rolls it up, and each table's size (heap, indexes, TOAST:
pg_total_relation_size) is read; then the organization's retention is set to 30 days and the
worker's retention sweep runs once here: the month's partitions are dropped, and the sizes, the
database's size and the free space of the file system holding Postgres's data are read again.
Usage over the month is queried before and after: the answers must be equal."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import time

import asyncpg
from google.protobuf import timestamp_pb2

from bench.stack import Stack, channel
from metering.v1 import admin_pb2, admin_pb2_grpc, event_pb2, ingest_pb2, ingest_pb2_grpc, query_pb2, query_pb2_grpc
from server.retention.drop import drop_expired

Row = tuple[str, str, str]
TABLES = ("events", "event_payloads", "request_keys", "series", "dirty_windows", "rollups_15m", "rollups_1h",
          "rollups_1d", "cubes_1h", "cubes_1d", "rollup_hour_stamps")
_SIZES = """
select t.name, coalesce((select sum(pg_total_relation_size(i.inhrelid)) from pg_inherits i
                         where i.inhparent = t.name::regclass), 0) + pg_total_relation_size(t.name::regclass) as bytes
from unnest($1::text[]) as t(name)"""


def _stamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _events(n: int, start: dt.datetime, seconds: float, rng: random.Random) -> list[event_pb2.UsageEvent]:
    models = [f"model-{i}" for i in range(10)]
    out = []
    for i in range(n):
        prompt = rng.randbytes(150).hex()  # ~1 KB of request and response text an event
        out.append(event_pb2.UsageEvent(
            request_id=f"ret-{i}", kind="completions", model=rng.choice(models), user_id=f"user-{rng.randrange(50)}",
            timestamp=_stamp(start + dt.timedelta(seconds=seconds * i / n)),
            input_tokens=rng.randrange(10, 5000), output_tokens=rng.randrange(1, 2000),
            cost=f"0.{rng.randrange(10**6):06d}",
            request_json=f'{{"model": "m", "messages": [{{"role": "user", "content": "{prompt}"}}]}}',
            response_json=f'{{"choices": [{{"message": {{"content": "{prompt[::-1]}{prompt}"}}}}]}}'))
    return out


async def _load(st: Stack, events: list[event_pb2.UsageEvent]) -> None:
    async with channel(st.target) as ch:
        stub = ingest_pb2_grpc.IngestServiceStub(ch)
        queue = [events[i:i + 1000] for i in range(0, len(events), 1000)]

        async def sender() -> None:
            while queue:
                reply = await stub.RecordEvents(ingest_pb2.RecordEventsRequest(events=queue.pop()), metadata=st.auth)
                assert reply.recorded + reply.duplicates == len(reply.results)

        await asyncio.gather(*(sender() for _ in range(4)))


async def _usage(st: Stack, start: dt.datetime, end: dt.datetime) -> list[str]:
    async with channel(st.target) as ch:
        reply = await query_pb2_grpc.QueryServiceStub(ch).QueryUsage(query_pb2.QueryUsageRequest(
            start_time=_stamp(start), end_time=_stamp(end), width="1d", group_by=["model"]), metadata=st.auth)
    return [str(g) for b in reply.buckets for g in b.groups]


async def _settled(pool: asyncpg.Pool, timeout: float = 600) -> float:
    started = time.monotonic()
    while await pool.fetchval("select exists (select 1 from dirty_windows)"):
        if time.monotonic() - started > timeout:
            raise TimeoutError("the worker did not roll the month up")
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def _rows(pool: asyncpg.Pool) -> dict[str, int]:
    return {table: int(await pool.fetchval(f"select count(*) from {table}")) for table in TABLES}


async def _disk(pool: asyncpg.Pool) -> tuple[dict[str, int], int, int]:
    """Bytes per table, the database's size, and the free bytes of the data directory's file system."""
    await pool.execute("checkpoint")  # a dropped table's files are unlinked by the next checkpoint
    sizes = {r["name"]: int(r["bytes"]) for r in await pool.fetch(_SIZES, list(TABLES))}
    database = int(await pool.fetchval("select pg_database_size(current_database())"))
    data_dir = await pool.fetchval("select setting from pg_settings where name = 'data_directory'")
    stat = os.statvfs(data_dir)
    return sizes, database, stat.f_bavail * stat.f_frsize


async def run(st: Stack, n: int) -> list[Row]:
    now = dt.datetime.now(dt.UTC)
    month = (now - dt.timedelta(days=120)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    seconds = 27 * 86400.0
    started = time.monotonic()
    await _load(st, _events(n, month, seconds, random.Random(21)))
    load_s = time.monotonic() - started
    pool = await asyncpg.create_pool(st.dsn, min_size=1, max_size=2)
    try:
        settle_s = await _settled(pool)
        before_usage = await _usage(st, month, month + dt.timedelta(days=28))
        rows_before = await _rows(pool)
        before, db_before, free_before = await _disk(pool)
        async with channel(st.target) as ch:
            await admin_pb2_grpc.AdminServiceStub(ch).UpdateRetention(
                admin_pb2.UpdateRetentionRequest(event_days=30, payload_days=7), metadata=st.auth)
        started = time.monotonic()
        swept = await drop_expired(pool)
        drop_s = time.monotonic() - started
        after, db_after, free_after = await _disk(pool)
        after_usage = await _usage(st, month, month + dt.timedelta(days=28))
    finally:
        await pool.close()
    assert before_usage == after_usage, "usage over the dropped month changed"
    per_million = 1e6 / n
    rows: list[Row] = [(f"retention: {n:,} events loaded (1 KB payload each), rolled up", f"{load_s:.0f} s",
                        f"the worker settled the month {settle_s:.0f} s after the load")]
    for table in TABLES:
        if before[table] or after[table]:
            per_row = f"{before[table] / rows_before[table]:,.0f} bytes a row" if rows_before[table] else "empty"
            rows.append((f"  {table}: MB per 1M events (table + indexes + TOAST)",
                         f"{before[table] * per_million / 2**20:,.1f}",
                         f"after the drop {after[table] * per_million / 2**20:,.1f}; {rows_before[table]:,} rows, "
                         f"{per_row}"))
    rows.append(("retention: sweep dropping the month (events, payloads, keys)", f"{drop_s * 1000:,.0f} ms",
                 f"dropped {', '.join(swept.dropped)}; {swept.keys_forgotten:,} request keys deleted"))
    rows.append(("  database size before / after", f"{db_before / 2**20:,.0f} MB",
                 f"{db_after / 2**20:,.0f} MB after ({(db_before - db_after) / 2**20:,.0f} MB returned)"))
    rows.append(("  free space of the data directory's file system, change",
                 f"{(free_after - free_before) / 2**20:+,.0f} MB",
                 "other processes write on this disk too; usage over the month equal before and after"))
    return rows
