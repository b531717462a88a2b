"""QueryUsageRequest.metrics: only the UsageMetrics fields asked for are summed and sent;
what is sent equals the full answer's, over every source (cubes, rollups, raw, tails)."""

from __future__ import annotations

import datetime as dt

import pytest

from metering.v1 import query_pb2
from server.query.sql import SOURCES, usage_statement
from tests.server.query.test_query import DAY, at, ev, expect_invalid, record
from tests.server.query.test_query_etag import settle

ASKED = ["input_tokens", "cost", "counters"]


def request(**fields) -> query_pb2.QueryUsageRequest:
    return query_pb2.QueryUsageRequest(start_time=at(DAY), end_time=at(DAY + dt.timedelta(days=2)), width="1d",
                                       group_by=["model"], **fields)


def groups(reply: query_pb2.QueryUsageResponse) -> list[dict[str, query_pb2.UsageMetrics]]:
    return [{g.key["model"]: g.metrics for g in b.groups} for b in reply.buckets]


@pytest.mark.parametrize("metrics", [frozenset({"events"}), frozenset({"events", "counters"}),
                                     frozenset({"events", "cost", "last_event_time", "unpriced_events"})],
                         ids=lambda m: "+".join(sorted(m)))
async def test_every_masked_statement_prepares(pool, metrics):
    async with pool.acquire() as conn:
        for source in SOURCES:
            await conn.prepare(usage_statement(frozenset({source, "tails"}), metrics))


async def test_only_the_metrics_asked_for_are_sent(stubs, new_org, query, db):
    org = await new_org()
    noon = DAY + dt.timedelta(hours=12)
    await record(stubs, org.auth,
                 ev(1, noon, model="a", input_tokens=5, output_tokens=3, cost="0.5", counters={"x": 2}),
                 ev(2, noon, model="b", input_tokens=7, output_tokens=1, input_cost="0.1", output_cost="0.2"))

    def check(full: query_pb2.QueryUsageResponse, masked: query_pb2.QueryUsageResponse) -> None:
        assert [set(b) for b in groups(masked)] == [set(b) for b in groups(full)]
        for everything, some in zip(groups(full), groups(masked), strict=True):
            for model, m in some.items():
                whole = everything[model]
                assert (m.events, m.input_tokens, m.cost, dict(m.counters)) == (
                    whole.events, whole.input_tokens, whole.cost, dict(whole.counters))
                assert m.output_tokens == 0 and m.input_cost == "" and not m.HasField("last_event_time")
                assert whole.output_tokens > 0 and whole.input_cost and whole.HasField("last_event_time")

    # raw (dirty), then rollups (settled, cubes), then rollups plus appended events (tails)
    check(await query.QueryUsage(request(), metadata=org.auth),
          await query.QueryUsage(request(metrics=ASKED), metadata=org.auth))
    await settle(db, org.organization_id, DAY)
    full = await query.QueryUsage(request(), metadata=org.auth)
    masked = await query.QueryUsage(request(metrics=ASKED), metadata=org.auth)
    check(full, masked)
    assert full.etag and masked.etag and full.etag != masked.etag  # different answers, different names
    await record(stubs, org.auth, ev(3, noon, model="a", input_tokens=11, output_tokens=1, cost="0.25",
                                     counters={"x": 1}))
    for _ in range(2):  # the second time from the kept settled part
        check(await query.QueryUsage(request(), metadata=org.auth),
              await query.QueryUsage(request(metrics=ASKED), metadata=org.auth))
    assert groups(await query.QueryUsage(request(metrics=ASKED), metadata=org.auth))[0]["a"].input_tokens == 16
    # only events: the group is still there
    only = await query.QueryUsage(request(metrics=["events"]), metadata=org.auth)
    assert {k: m.events for k, m in groups(only)[0].items()} == {"a": 2, "b": 1}
    assert all(m.input_tokens == 0 and m.cost == "" for m in groups(only)[0].values())
    # every name at once is the full answer
    every = await query.QueryUsage(request(metrics=[f.name for f in query_pb2.UsageMetrics.DESCRIPTOR.fields]),
                                   metadata=org.auth)
    assert groups(every) == groups(await query.QueryUsage(request(), metadata=org.auth))


async def test_an_unknown_metric_is_invalid(new_org, query):
    org = await new_org()
    await expect_invalid(query.QueryUsage(request(metrics=["input_tokens", "tokens"]), metadata=org.auth), "metrics")
