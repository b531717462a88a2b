"""Ingest benchmarks, each beside its baseline measured in the same run."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal

import asyncpg
import grpc
from asyncpg.pool import PoolConnectionProxy
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.cpu import Meter
from bench.stack import Stack, channel, peak_rss_mb
from metering.v1 import event_pb2, ingest_pb2, ingest_pb2_grpc

MODELS = [f"model-{i}" for i in range(20)]
PROJECTS = [f"proj-{i}" for i in range(50)]


def make_events(n: int, tag: str) -> list[event_pb2.UsageEvent]:
    """Realistic cardinality: 1,000 users, each in one of 50 projects, each using 3 of 20 models."""
    rnd = random.Random(42)
    now = int(time.time()) - 3600
    events = []
    for i in range(n):
        user = rnd.randrange(1000)
        events.append(event_pb2.UsageEvent(
            request_id=f"{tag}-{i}", kind="completions", model=MODELS[(user + rnd.randrange(3)) % len(MODELS)],
            project_id=PROJECTS[user % len(PROJECTS)], user_id=f"user-{user}",
            input_tokens=rnd.randrange(5000), output_tokens=rnd.randrange(2000),
            cost=str(Decimal(rnd.randrange(10**6)) / 10**8), timestamp={"seconds": now + rnd.randrange(3600)},
        ))
    return events


async def batched_grpc(st: Stack, n: int, batch: int = 1000, concurrency: int = 4, cpu: Meter | None = None) -> float:
    """`concurrency` senders, each on a connection of its own (as separate client
    processes would be), so a multi-process server shares the load. cpu: measures
    the timed part (as in _callers and raw_copy)."""
    events = make_events(n, "b" + secrets.token_hex(3))
    requests = [ingest_pb2.RecordEventsRequest(events=events[i : i + batch]) for i in range(0, n, batch)]
    queue = list(reversed(requests))

    async def sender() -> None:
        async with channel(st.target) as ch:
            stub = ingest_pb2_grpc.IngestServiceStub(ch)
            await ch.channel_ready()
            await ready.wait()
            while queue:
                reply = await stub.RecordEvents(queue.pop(), metadata=st.auth)
                assert reply.recorded == len(reply.results), reply.rejected

    ready = asyncio.Event()
    tasks = [asyncio.create_task(sender()) for _ in range(concurrency)]
    await asyncio.sleep(0.5)  # connections up before the clock starts
    if cpu:
        cpu.start()
    started = time.perf_counter()
    ready.set()
    await asyncio.gather(*tasks)
    rate = n / (time.perf_counter() - started)
    if cpu:
        cpu.stop()
    return rate


async def _callers(st: Stack, n: int, call: Callable[[grpc.aio.Channel], Callable[[], Awaitable[object]]],
                   callers: int, connections: int, cpu: Meter | None = None) -> tuple[float, list[float]]:
    """n calls made by `callers` concurrent callers spread over `connections` connections of
    their own; (calls/s, latencies). call(channel) gives the function that makes one call."""
    left = [n]
    latencies: list[float] = []
    channels = [channel(st.target) for _ in range(connections)]
    for ch in channels:
        await ch.channel_ready()
    calls = [call(ch) for ch in channels]

    async def caller(one: Callable[[], Awaitable[object]]) -> None:
        while left[0] > 0:
            left[0] -= 1
            t = time.perf_counter()
            await one()
            latencies.append(time.perf_counter() - t)
    if cpu:
        cpu.start()
    started = time.perf_counter()
    await asyncio.gather(*(caller(calls[i % connections]) for i in range(callers)))
    rate = n / (time.perf_counter() - started)
    if cpu:
        cpu.stop()
    for ch in channels:
        await ch.close()
    return rate, latencies


async def unary_grpc(st: Stack, n: int, callers: int = 64, connections: int = 8,
                     cpu: Meter | None = None) -> tuple[float, list[float]]:
    requests = [ingest_pb2.RecordEventRequest(event=e) for e in make_events(n, "u" + secrets.token_hex(3))]

    def call(ch: grpc.aio.Channel) -> Callable[[], Awaitable[object]]:
        stub = ingest_pb2_grpc.IngestServiceStub(ch)
        return lambda: stub.RecordEvent(requests.pop(), metadata=st.auth)
    return await _callers(st, n, call, callers, connections, cpu)


async def health_grpc(st: Stack, n: int, callers: int = 64, connections: int = 8,
                      cpu: Meter | None = None) -> tuple[float, list[float]]:
    """The ceiling the gRPC layer sets: the server's cheapest call (Health/Check,
    no database), driven exactly like unary_grpc."""
    request = health_pb2.HealthCheckRequest()

    def call(ch: grpc.aio.Channel) -> Callable[[], Awaitable[object]]:
        stub = health_pb2_grpc.HealthStub(ch)
        return lambda: stub.Check(request)
    return await _callers(st, n, call, callers, connections, cpu)


async def _baseline_tables(conn: asyncpg.Connection | PoolConnectionProxy) -> None:
    await conn.execute("""
        -- the same columns, defaults and indexes as events (its primary key, the tails' mark index)
        create table if not exists bench_events (like events including defaults including constraints);
        create unique index if not exists bench_events_pk on bench_events (org_id, ts, event_id);
        create index if not exists bench_events_mark on bench_events (org_id, mark_id);
        create table if not exists bench_keys (like request_keys including all);
        truncate bench_events, bench_keys;
    """)


# One row of bench_events in RAW_COLUMNS order, and one of bench_keys (org_id, request_id, event_id, ts).
RawEvent = tuple[int, dt.datetime, uuid.UUID, int, str, dt.datetime, dt.datetime, int, int, Decimal, int]
RawKey = tuple[int, str, uuid.UUID, dt.datetime]


def _raw_rows(n: int) -> tuple[list[RawEvent], list[RawKey]]:
    rnd = random.Random(7)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    events: list[RawEvent] = []
    keys: list[RawKey] = []
    for i in range(n):
        ts = now + dt.timedelta(seconds=rnd.randrange(3600))
        eid, rid = uuid.uuid4(), f"raw-{i}"
        events.append((1, ts, eid, rnd.randrange(1, 5000), rid, ts, ts, rnd.randrange(5000), rnd.randrange(2000),
                       Decimal(rnd.randrange(10**6)) / 10**8, i // 1000))
        keys.append((1, rid, eid, ts))
    return events, keys


RAW_COLUMNS = ("org_id", "ts", "event_id", "series_id", "request_id", "received_at", "updated_at",
               "input_tokens", "output_tokens", "cost", "mark_id")


async def raw_copy(dsn: str, n: int, batch: int = 1000, concurrency: int = 4, cpu: Meter | None = None) -> float:
    """The floor: binary COPY of the same rows (events + dedupe keys) into copies of the tables."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    async with pool.acquire() as conn:
        await _baseline_tables(conn)
    events, keys = _raw_rows(n)
    chunks = [(events[i : i + batch], keys[i : i + batch]) for i in range(0, n, batch)]

    async def worker() -> None:
        while chunks:
            ev, ks = chunks.pop()
            async with pool.acquire() as conn, conn.transaction():
                await conn.copy_records_to_table("bench_keys", records=ks)
                await conn.copy_records_to_table("bench_events", records=ev, columns=RAW_COLUMNS)
    if cpu:
        cpu.start()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = n / (time.perf_counter() - started)
    if cpu:
        cpu.stop()
    await pool.close()
    return rate


async def raw_inserts(dsn: str, n: int) -> float:
    """One INSERT statement per row (autocommit) on one connection."""
    conn = await asyncpg.connect(dsn)
    await _baseline_tables(conn)
    events, _ = _raw_rows(n)
    placeholders = ", ".join(f"${i + 1}" for i in range(len(RAW_COLUMNS)))
    stmt = await conn.prepare(f"insert into bench_events ({', '.join(RAW_COLUMNS)}) values ({placeholders})")
    started = time.perf_counter()
    for row in events:
        await stmt.fetch(*row)
    rate = n / (time.perf_counter() - started)
    await conn.close()
    return rate


def server_rss(st: Stack) -> float:
    return peak_rss_mb(st.server.pid)
