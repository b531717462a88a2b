"""CostService.GetCosts: line items out of the one query engine, exact to the last digit,
from raw events and from rollups alike; a million micro-dollar events sum to $1."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import os
import time

import grpc
import pytest

from metering.v1 import admin_pb2, prices_pb2, prices_pb2_grpc, query_pb2, query_pb2_grpc
from server.core.events import COUNTER_FIELDS, TEXT_DIMENSIONS, NewEvent, SeriesKey, event_uuid
from server.rollups.recompute import dirty_days, recompute_day
from server.runtime.app import MeteringServer
from tests.conftest import MASTER, MASTER_KEY, PriceStubs, bearer
from tests.server.pricing.test_prices import (
    DAY,
    T0,
    ev,
    new_version,
    record,
    set_prices,
    stamp,
)
from tests.support import services

D = decimal.Decimal


def results(bucket: prices_pb2.CostBucket) -> list[tuple]:
    fields = ("project_id", "line_item", "api_key_id", "user_id", "model", "price_version")
    return [
        (*(getattr(r, f) if r.HasField(f) else None for f in fields if r.HasField(f)), r.amount.value,
         r.amount.currency, r.quantity if r.HasField("quantity") else None, r.quantity_unit)
        for r in bucket.results
    ]


async def get_costs(pstubs, auth, start: dt.datetime, end: dt.datetime, **fields) -> prices_pb2.GetCostsResponse:
    return await pstubs.costs.GetCosts(
        prices_pb2.GetCostsRequest(start_time=stamp(start), end_time=stamp(end), **fields), metadata=auth)


async def rollup_org(server: MeteringServer, organization_id: str) -> None:
    """Recompute the organization's dirty days, as the worker would."""
    assert server.pool is not None
    org = await server.pool.fetchval("select org_id from organizations where id = $1", organization_id)
    for org_id, day in await dirty_days(server.pool):
        if org_id == org:
            await recompute_day(server.pool, org_id, day)


async def test_costs_by_day_project_line_item_and_key(stubs, pstubs, new_org, server):
    org = await new_org()
    [v1, v2] = [r.version for r in await set_prices(
        pstubs.prices, org.auth,
        new_version("gpt-x", {"input": "0.000002", "cached_input": "0.000001", "output": "0.000008"}),
        new_version("dall-e", {"image:1024x1024": "0.04", "image:1024x1024 hd": "0.08"}),
    )]
    await record(
        stubs, org.auth,
        ev("a", "gpt-x", T0 + dt.timedelta(hours=1), project_id="web", api_key_id="k1",
           input_tokens=1000, input_cached_tokens=400, output_tokens=100),
        ev("b", "gpt-x", T0 + dt.timedelta(hours=2), project_id="web", api_key_id="k2",
           input_tokens=3, output_tokens=7),
        ev("c", "gpt-x", T0 + dt.timedelta(hours=3), project_id="batch", api_key_id="k1",
           input_tokens=500, output_tokens=10, input_cost="0.123456789", output_cost="0.1", cost="0.3"),
        ev("d", "dall-e", T0 + dt.timedelta(hours=4), project_id="web", images=2, labels={"size": "1024x1024"}),
        ev("e", "dall-e", T0 + dt.timedelta(hours=5), project_id="web", images=1,
           labels={"size": "1024x1024", "quality": "hd"}),
        ev("f", "other", T0 + DAY + dt.timedelta(hours=1), project_id="web", input_tokens=5),  # unpriced
    )
    start, end = T0, T0 + 3 * DAY

    by_line = await get_costs(pstubs, org.auth, start, end, group_by=["line_item"])
    assert [len(b.results) for b in by_line.buckets] == [6, 0, 0]
    assert results(by_line.buckets[0]) == [
        ("dall-e, images 1024x1024", "0.08", "usd", "2", "images"),
        ("dall-e, images 1024x1024 hd", "0.08", "usd", "1", "images"),
        ("gpt-x, cached input", "0.0004", "usd", "400", "tokens"),
        # 600 + 3 book-priced tokens at 2e-6, and the caller-given 0.123456789 for 500 tokens
        ("gpt-x, input", "0.124662789", "usd", "1103", "tokens"),
        ("gpt-x, other", "0.076543211", "usd", None, ""),  # cost - input_cost - output_cost, caller-given
        ("gpt-x, output", "0.100856", "usd", "117", "tokens"),
    ]
    assert [b.unpriced_events for b in by_line.buckets] == [0, 1, 0]

    total = await get_costs(pstubs, org.auth, start, end)
    assert [results(b) for b in total.buckets] == [[("0.462462", "usd", None, "")], [], []]
    usage = await pstubs.query.QueryUsage(query_pb2.QueryUsageRequest(
        start_time=stamp(start), end_time=stamp(end), width="1d"), metadata=org.auth)
    assert D(usage.buckets[0].groups[0].metrics.cost) == D("0.462462")  # the stamped per-event costs agree

    grouped = await get_costs(pstubs, org.auth, start, end, group_by=["project_id", "api_key_id"], page_size=1)
    assert results(grouped.buckets[0]) == [
        ("batch", "k1", "0.3", "usd", None, ""),
        ("web", "k1", "0.0024", "usd", None, ""),
        ("web", "k2", "0.000062", "usd", None, ""),
        ("web", org_key := grouped.buckets[0].results[3].api_key_id, "0.16", "usd", None, ""),
    ]
    assert org_key.startswith("key_") and len(grouped.buckets) == 1 and grouped.next_page_token
    page2 = await get_costs(pstubs, org.auth, start, end, group_by=["project_id", "api_key_id"], page_size=1,
                            page_token=grouped.next_page_token)
    assert page2.buckets[0].start_time.ToDatetime(dt.UTC) == T0 + DAY and page2.buckets[0].unpriced_events == 1

    filtered = await get_costs(pstubs, org.auth, start, end, group_by=["price_version"], project_ids=["web"])
    assert sorted(results(filtered.buckets[0])) == sorted([(v1.version, "0.002462", "usd", None, ""),
                                                           (v2.version, "0.16", "usd", None, "")])

    # Settled windows come from the rollups: the same answer to the last digit.
    before = [results(b) for b in by_line.buckets]
    await rollup_org(server, org.organization_id)
    after = await get_costs(pstubs, org.auth, start, end, group_by=["line_item"])
    assert after.freshness.raw_windows == 0 and [results(b) for b in after.buckets] == before


async def test_costs_follow_the_read_scope(stubs, pstubs, new_org):
    org = await new_org()
    await set_prices(pstubs.prices, org.auth, new_version("m", {"input": "0.01"}))
    await stubs.admin.CreateUser(admin_pb2.CreateUserRequest(username=f"{org.name}-amy", password="password-1",
                                                           user_id=f"{org.name}-amy"),
                                 metadata=org.auth)
    member = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(user_id=f"{org.name}-amy"),
                                            metadata=org.auth)
    await record(stubs, org.auth, ev("mine", "m", T0, input_tokens=1, user_id=f"{org.name}-amy"),
                 ev("theirs", "m", T0, input_tokens=100, user_id="someone"))
    mine = await get_costs(pstubs, bearer(member.key), T0, T0 + DAY)
    assert results(mine.buckets[0]) == [("0.01", "usd", None, "")]
    everyone = await get_costs(pstubs, org.auth, T0, T0 + DAY, group_by=["user_id"])
    assert results(everyone.buckets[0]) == [(f"{org.name}-amy", "0.01", "usd", None, ""),
                                            ("someone", "1", "usd", None, "")]


async def test_price_change_in_the_middle_of_a_range(stubs, pstubs, new_org):
    org = await new_org()
    change = T0 + DAY + dt.timedelta(hours=12)
    await set_prices(pstubs.prices, org.auth, new_version("m", {"input": "0.001", "output": "0.003"}),
                     new_version("m", {"input": "0.002"}, change))
    events = [ev(f"e{h}", "m", T0 + dt.timedelta(hours=h), input_tokens=10, output_tokens=1) for h in range(0, 72, 6)]
    await record(stubs, org.auth, *events)
    got = await get_costs(pstubs, org.auth, T0, T0 + 3 * DAY, group_by=["line_item"])
    assert [results(b) for b in got.buckets] == [
        [("m, input", "0.04", "usd", "40", "tokens"), ("m, output", "0.012", "usd", "4", "tokens")],
        # 12:00 is the first event at the new price: 00:00 and 06:00 at 0.001, 12:00 and 18:00 at 0.002
        [("m, input", "0.06", "usd", "40", "tokens"), ("m, output", "0.012", "usd", "4", "tokens")],
        [("m, input", "0.08", "usd", "40", "tokens"), ("m, output", "0.012", "usd", "4", "tokens")],
    ]
    by_version = await get_costs(pstubs, org.auth, T0 + DAY, T0 + 2 * DAY, group_by=["price_version"])
    assert sorted(r.amount.value for r in by_version.buckets[0].results) == ["0.026", "0.046"]


@pytest.mark.slow
async def test_a_million_micro_dollar_events_sum_to_exactly_one_dollar():
    """Through the real writer, in big batches, in a database of its own (dropped
    afterwards, so the other tests never scan a million rows)."""
    async with services.own_database() as dsn:
        server = MeteringServer(dsn, "127.0.0.1:0", MASTER_KEY, pool_size=4)
        try:
            await server.start()
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                await _a_million_events(server, PriceStubs(
                    prices_pb2_grpc.PriceServiceStub(channel), prices_pb2_grpc.CostServiceStub(channel),
                    query_pb2_grpc.QueryServiceStub(channel)))
        finally:
            await server.stop(grace=1)


async def _a_million_events(server: MeteringServer, stubs: PriceStubs) -> None:
    assert server.pool is not None and server.ingest is not None
    writer = server.ingest.writer
    org_id = 1  # the default organization, whose admin the master key is
    await set_prices(stubs.prices, MASTER, new_version("micro", {"input": "0.000001"}))
    key = SeriesKey("completions", tuple("micro" if d == "model" else None for d in TEXT_DIMENSIONS), False,
                    "success", "usd", ())
    counters = tuple(1 if name in ("input_tokens", "num_model_requests") else 0 for name in COUNTER_FIELDS)
    n, batch = 1_000_000, 50_000
    # 2% on the first UTC day (rolled up below), the rest on the second (read raw).
    first, step1, step2 = n // 50, DAY / (n // 50), DAY / (n - n // 50)
    salt = os.urandom(4)

    async def write(lo: int) -> None:
        items = []
        for i in range(lo, lo + batch):
            ts = T0 + i * step1 if i < first else T0 + DAY + (i - first) * step2
            items.append((org_id, NewEvent(f"u{i}", ts, event_uuid(ts, salt + i.to_bytes(6, "big")), key, counters,
                                           None, None, None, None, None)))
        written = await writer.write(items)
        assert all(w.recorded for w in written)

    started = time.perf_counter()
    for lo in range(0, n, 2 * batch):  # two batches in flight: Python and Postgres work side by side
        await asyncio.gather(write(lo), write(lo + batch))
    ingest_seconds = time.perf_counter() - started

    async def costs() -> tuple[str, str]:
        got = await get_costs(stubs, MASTER, T0, T0 + 2 * DAY, bucket_width="all", group_by=["line_item"])
        [r] = got.buckets[0].results
        return r.amount.value, r.quantity

    t = time.perf_counter()
    assert await costs() == ("1", "1000000")  # quantity x unit price, all from raw events
    raw_seconds = time.perf_counter() - t
    assert await server.pool.fetchval("select sum(cost) from events") == D("1")  # the stamped per-event costs
    await server.pool.execute("analyze events")  # as autovacuum would after a bulk load (rollup plans need it)
    await recompute_day(server.pool, org_id, T0)  # the first day from rollups, the second raw
    t = time.perf_counter()
    assert await costs() == ("1", "1000000")
    mixed_seconds = time.perf_counter() - t
    usage = await stubs.query.QueryUsage(query_pb2.QueryUsageRequest(
        start_time=stamp(T0), end_time=stamp(T0 + 2 * DAY), width="all"), metadata=MASTER)
    assert usage.buckets[0].groups[0].metrics.cost == "1"  # the stamped costs through the engine
    print(f"\n1M events: ingest {ingest_seconds:.1f} s; costs from raw events {raw_seconds:.2f} s, "
          f"from rollups and raw {mixed_seconds:.2f} s")
