"""The budgets section: BudgetService.Check in the request path, beside the gRPC ceiling.

One organization has 1,000 enforced cost budgets, one per user (scope user_id), and
receives ~10,000 events/s of those users' usage in the background throughout (so today's
windows are dirty and every Check reads appended events, as in production). Measured
with 64 concurrent callers on 8 connections: Check of a random user's usage (one
covering budget) and, in the same run and under the same load, the gRPC Health/Check
ceiling; then reservations (Check with reserve) of usage that one hot budget covers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import grpc
from google.protobuf import timestamp_pb2

from bench.ingest import _callers, health_grpc
from bench.stack import Stack, channel
from bench.stats import latency_note, pct
from metering.v1 import (
    budgets_pb2,
    budgets_pb2_grpc,
    event_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
)

Row = tuple[str, str, str]
USERS = 1000
INGEST_RATE = 10_000  # events/s in the background


async def _budgets(st: Stack) -> None:
    async with channel(st.target) as ch:
        stub = budgets_pb2_grpc.BudgetServiceStub(ch)
        sem = asyncio.Semaphore(16)

        async def one(user: int) -> None:
            async with sem:
                await stub.CreateBudget(budgets_pb2.CreateBudgetRequest(budget=budgets_pb2.Budget(
                    name=f"user-{user}", limit="1000000", mode=budgets_pb2.BUDGET_MODE_ENFORCE,
                    period=budgets_pb2.BUDGET_PERIOD_MONTH,
                    scope=[query_pb2.Filter(field="user_id", values=[f"user-{user}"])])), metadata=st.auth)
        await asyncio.gather(*(one(u) for u in range(USERS)))


@contextlib.asynccontextmanager
async def background_ingest(st: Stack, rate: int, senders: int = 2) -> AsyncIterator[Callable[[], float]]:
    """Records ~`rate` events/s of the budgets' users until the block ends; yields a function
    giving the rate achieved so far."""
    sent = [0]
    started = time.perf_counter()
    stop = asyncio.Event()
    tick = 0.1
    per_tick = max(1, rate // senders // int(1 / tick))
    rnd = random.Random(5)

    async def sender(n: int) -> None:
        async with channel(st.target) as ch:
            stub = ingest_pb2_grpc.IngestServiceStub(ch)
            next_at = time.perf_counter()
            while not stop.is_set():
                events = [event_pb2.UsageEvent(
                    kind="completions", model="bench-model", user_id=f"user-{rnd.randrange(USERS)}",
                    input_tokens=rnd.randrange(5000), cost=str(Decimal(rnd.randrange(10**6)) / 10**8))
                    for _ in range(per_tick)]
                await stub.RecordEvents(ingest_pb2.RecordEventsRequest(events=events), metadata=st.auth)
                sent[0] += len(events)
                next_at += tick
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    tasks = [asyncio.create_task(sender(i)) for i in range(senders)]
    try:
        yield lambda: sent[0] / (time.perf_counter() - started)
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def checks(st: Stack, n: int, callers: int = 64, connections: int = 8) -> tuple[float, list[float], int]:
    """(checks/s, latencies, degraded answers: Postgres not answering within the Check's deadline)."""
    rnd = random.Random(11)
    requests = [budgets_pb2.CheckRequest(user_id=f"user-{rnd.randrange(USERS)}", model="bench-model",
                                         estimated_cost="0.002") for _ in range(n)]
    degraded = [0]

    def call(ch: grpc.aio.Channel) -> Callable[[], Awaitable[object]]:
        stub = budgets_pb2_grpc.BudgetServiceStub(ch)

        async def one() -> None:
            reply = await stub.Check(requests.pop(), metadata=st.auth)
            degraded[0] += reply.degraded
            assert reply.allowed and len(reply.budgets) == 1, reply
        return one
    rate, latencies = await _callers(st, n, call, callers, connections)
    return rate, latencies, degraded[0]


async def one_key(st: Stack, n: int) -> list[float]:
    """One caller asking again and again about the same key's usage (a gateway in front of a
    busy client): latencies in seconds."""
    request = budgets_pb2.CheckRequest(user_id="user-7", model="bench-model", estimated_cost="0.002")
    latencies = []
    async with channel(st.target) as ch:
        stub = budgets_pb2_grpc.BudgetServiceStub(ch)
        for _ in range(n):
            started = time.perf_counter()
            reply = await stub.Check(request, metadata=st.auth)
            latencies.append(time.perf_counter() - started)
            assert reply.allowed and len(reply.budgets) == 1, reply
            await asyncio.sleep(0.01)  # ~100 checks/s, while the events keep coming
    return latencies


async def usage_queries(st: Stack, n: int, callers: int = 64, connections: int = 8) -> tuple[float, list[float]]:
    """What a Check's `used` is made of: QueryUsage of one user's month (width all, cost only)."""
    rnd = random.Random(13)
    now = dt.datetime.now(dt.UTC)
    start = timestamp_pb2.Timestamp(seconds=int(now.replace(day=1, hour=0, minute=0, second=0).timestamp()))
    requests = [query_pb2.QueryUsageRequest(
        start_time=start, width="all", metrics=["cost", "unpriced_events"],
        filters=[query_pb2.Filter(field="user_id", values=[f"user-{rnd.randrange(USERS)}"]),
                 query_pb2.Filter(field="currency", values=["usd"])]) for _ in range(n)]

    def call(ch: grpc.aio.Channel) -> Callable[[], Awaitable[object]]:
        stub = query_pb2_grpc.QueryServiceStub(ch)
        return lambda: stub.QueryUsage(requests.pop(), metadata=st.auth)
    return await _callers(st, n, call, callers, connections)


async def hot_reservations(st: Stack, n: int, callers: int = 64,
                           connections: int = 8) -> tuple[float, list[float], int]:
    """Check with reserve of usage only one budget covers (model "bench-hot"); (reservations/s,
    latencies, how many were admitted: all, the limit being far away)."""
    async with channel(st.target) as ch:
        await budgets_pb2_grpc.BudgetServiceStub(ch).CreateBudget(budgets_pb2.CreateBudgetRequest(
            budget=budgets_pb2.Budget(limit="1000000000", mode=budgets_pb2.BUDGET_MODE_ENFORCE,
                                      scope=[query_pb2.Filter(field="model", values=["bench-hot"])])),
            metadata=st.auth)
    admitted = [0]
    request = budgets_pb2.CheckRequest(model="bench-hot", estimated_cost="0.01", reserve=True)

    def call(ch: grpc.aio.Channel) -> Callable[[], Awaitable[object]]:
        stub = budgets_pb2_grpc.BudgetServiceStub(ch)

        async def one() -> None:
            reply = await stub.Check(request, metadata=st.auth)
            assert len(reply.budgets) == 1, reply
            admitted[0] += bool(reply.reservation_id)
        return one
    rate, latencies = await _callers(st, n, call, callers, connections)
    return rate, latencies, admitted[0]


async def run(st: Stack, quick: bool) -> list[Row]:
    n = 5_000 if quick else 20_000
    await _budgets(st)
    await checks(st, 500)  # every server process reads the organization's budgets once
    _, alone, _ = await checks(st, 500, callers=1, connections=1)
    async with background_ingest(st, INGEST_RATE) as ingested:
        await asyncio.sleep(2)  # today's windows dirty, the rollup worker busy
        rate, lat, degraded = await checks(st, n)
        query_rate, query_lat = await usage_queries(st, n)
        ceiling, ceiling_lat = await health_grpc(st, n)
        same_key = await one_key(st, n // 5)
        ingest_rate = ingested()
    hot_rate, hot_lat, admitted = await hot_reservations(st, n)
    p50, p99 = pct(lat, .5), pct(lat, .99)
    return [
        (f"budgets: Check, 64 callers, 8 connections, {USERS:,} budgets", f"{rate:,.0f} checks/s",
         f"{latency_note(lat)} (targets p50 <= 1, p99 <= 5: {'met' if p50 <= 1 and p99 <= 5 else 'missed'}); "
         f"{rate / ceiling:.0%} of the ceiling (target 75%); {degraded} degraded"),
        ("  background ingest during the checks", f"{ingest_rate:,.0f} events/s", f"target {INGEST_RATE:,}"),
        ("  baseline: QueryUsage of a user's month (what used is), same callers", f"{query_rate:,.0f} queries/s",
         latency_note(query_lat)),
        ("  ceiling: gRPC Health/Check, same callers, same load", f"{ceiling:,.0f} calls/s",
         latency_note(ceiling_lat)),
        ("  Check, one caller, no background ingest", f"{1 / (sum(alone) / len(alone)):,.0f} checks/s",
         latency_note(alone)),
        ("  Check, one caller, the same key again and again, background ingest",
         f"p50 {pct(same_key, .5):,.1f} ms", latency_note(same_key)),
        ("budgets: reservations on one hot budget, 64 callers", f"{hot_rate:,.0f} reservations/s",
         f"{latency_note(hot_lat)}; {admitted:,} of {n:,} admitted (target 2,000/s)"),
    ]
