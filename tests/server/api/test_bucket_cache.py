"""Kept buckets (server/api/bucket_cache.py): replies put together from encoded buckets parse
as the message they stand for, the cache is bounded, and QueryUsage sends a kept bucket
instead of reading it again exactly while its etag holds."""

from __future__ import annotations

import datetime as dt

from metering.v1 import query_pb2
from server.api.bucket_cache import bucket_cache, usage_reply
from tests.server.query.test_query import DAY, at, ev, record
from tests.server.query.test_query_etag import month_request, settle, tokens


def test_a_reply_put_together_from_encoded_buckets_is_the_same_message():
    buckets = [
        query_pb2.UsageBucket(start_time=at(DAY), etag="e" * i, groups=[
            query_pb2.UsageGroup(key={"model": f"m{n}"}, metrics=query_pb2.UsageMetrics(events=n, input_tokens=n << 40))
            for n in range(i * 40)])
        for i in range(4)  # encodings of 2 bytes to ~4 KB: lengths of one and two varint bytes
    ]
    rest = query_pb2.QueryUsageResponse(next_page_token="next", etag="page",
                                        freshness=query_pb2.Freshness(raw_windows=3))
    whole = query_pb2.QueryUsageResponse(buckets=buckets, next_page_token="next", etag="page",
                                         freshness=query_pb2.Freshness(raw_windows=3))
    put_together = usage_reply([b.SerializeToString() for b in buckets], rest)
    assert query_pb2.QueryUsageResponse.FromString(put_together) == whole


def test_a_bucket_encoded_by_hand_is_the_message():
    import decimal

    from server.api.query import encode_bucket, metrics_pb
    from server.core.events import COUNTER_FIELDS
    from server.query.engine import Bucket, Group
    from server.query.rows import GroupRow

    counters = [0] * len(COUNTER_FIELDS)
    counters[0], counters[13] = 5, 1 << 40
    row = GroupRow(events=3, unpriced_events=1, counters=counters, input_cost=decimal.Decimal("0.10"),
                   output_cost=decimal.Decimal("0"), cost=decimal.Decimal("12.5000"),
                   last_event_at=dt.datetime(2024, 6, 3, 1, 2, 3, 456789, tzinfo=dt.UTC), extra={"inference": 2})
    groups = [Group(("a", None), row), Group((None, "p1"), row), Group(("a" * 300, "p2"), row)]  # 2-byte lengths
    bucket = Bucket(DAY, DAY + dt.timedelta(days=1), groups, etag="e" * 24)
    keys: dict = {}
    encoded = encode_bucket(bucket, ["model", "project_id"], keys)
    assert encode_bucket(bucket, ["model", "project_id"], keys) == encoded  # the keys encoded once, reused
    expected = query_pb2.UsageBucket(start_time=at(bucket.start), end_time=at(bucket.end), etag="e" * 24, groups=[
        query_pb2.UsageGroup(key={f: v for f, v in zip(["model", "project_id"], g.key, strict=True) if v is not None},
                             metrics=metrics_pb(g.row)) for g in groups])
    assert query_pb2.UsageBucket.FromString(encoded) == expected
    assert expected.groups[0].metrics.cost == "12.5" and expected.groups[0].metrics.input_tokens == 5
    assert groups[0].metrics.counters["input_tokens"] == 5  # the Metrics view of the same row
    unasked = row._replace(input_cost=None, output_cost=None, cost=None, last_event_at=None, extra=None)
    metrics = metrics_pb(unasked)
    assert not metrics.HasField("last_event_time") and (metrics.cost, metrics.input_cost, dict(metrics.counters)) == (
        "", "", {})
    assert Group(("a",), unasked).metrics.cost == 0 and Group(("a",), unasked).metrics.extra == {}


def test_the_cache_is_bounded_by_bytes():
    cache = bucket_cache(max_bytes=800)
    for i in range(10):
        cache.put(f"e{i}", b"x" * 100)
    assert len(cache) == 8 and cache.size == 800 and cache.get("e0") is None and cache.get("e9")
    cache.put("big", b"x" * 101)  # more than an eighth of the cache: not kept
    assert cache.get("big") is None and cache.size == 800 and list(cache)[-1] == "e9"


async def test_a_kept_bucket_is_sent_while_its_etag_holds(stubs, pstubs, new_org, db):
    query = pstubs.query
    org = await new_org()
    await record(stubs, org.auth, ev(1, DAY + dt.timedelta(hours=1), model="a", input_tokens=5))
    await settle(db, org.organization_id, DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2))
    first = await query.QueryUsage(month_request(), metadata=org.auth)
    assert tokens(first) == [{"a": 5}, {}, {}] and all(b.etag for b in first.buckets)
    # Rewrite the stored rollups behind the engine's back: a bucket that is read again
    # would show it; the kept one is sent as first encoded.
    number = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    await db.execute("update cubes_1d set input_tokens = 999 where org_id = $1", number)
    await db.execute("update rollups_1d set input_tokens = 999 where org_id = $1", number)
    assert tokens(await query.QueryUsage(month_request(), metadata=org.auth)) == [{"a": 5}, {}, {}]
    # The same bucket on a shorter page is the same answer; another query has other etags:
    # read, so it shows the rewrite.
    assert tokens(await query.QueryUsage(month_request(page_size=1), metadata=org.auth)) == [{"a": 5}]
    filtered = month_request(filters=[query_pb2.Filter(field="model", values=["a"])])
    assert tokens(await query.QueryUsage(filtered, metadata=org.auth)) == [{"a": 999}, {}, {}]
    # A change to the day gives its bucket a new etag: read again (recomputed from the events).
    await record(stubs, org.auth, ev(2, DAY + dt.timedelta(hours=2), model="a", input_tokens=1))
    await settle(db, org.organization_id, DAY)
    assert tokens(await query.QueryUsage(month_request(), metadata=org.auth)) == [{"a": 6}, {}, {}]
