"""QueryService.QueryUsage over gRPC: buckets (empty ones too), pagination,
filters and label groups, validation, read scoping, DST days, freshness."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from google.protobuf import timestamp_pb2

from metering.v1 import admin_pb2, event_pb2, ingest_pb2, query_pb2
from server.rollups.recompute import recompute_day

UTC = dt.UTC
DAY = dt.datetime(2024, 6, 3, tzinfo=UTC)


def at(value: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


async def record(stubs, auth, *events: event_pb2.UsageEvent) -> None:
    resp = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=events), metadata=auth)
    assert resp.recorded == len(events), [r.message for r in resp.results]


def ev(i: int, when: dt.datetime, **fields) -> event_pb2.UsageEvent:
    return event_pb2.UsageEvent(request_id=f"q-{i}", timestamp=at(when), **{"kind": "completions", **fields})


async def expect_invalid(awaitable, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await awaitable
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert (caught.value.details() or "").startswith(field), caught.value.details()


async def test_every_bucket_is_returned_and_pages_by_bucket(stubs, new_org, query):
    org = await new_org()
    await record(stubs, org.auth,
                 ev(1, DAY + dt.timedelta(hours=1), model="a", input_tokens=5, counters={"inference": 2},
                    input_cost="0.10", output_cost="0.0000000001"),
                 ev(2, DAY + dt.timedelta(hours=1, minutes=59), model="b", input_tokens=7),
                 ev(3, DAY + dt.timedelta(hours=5), model="a", input_tokens=11, cost="2"))
    request = query_pb2.QueryUsageRequest(
        start_time=at(DAY + dt.timedelta(minutes=30)), end_time=at(DAY + dt.timedelta(hours=6, minutes=10)),
        width="1h", group_by=["model"], page_size=4,
    )
    first = await query.QueryUsage(request, metadata=org.auth)
    assert [b.start_time.ToDatetime(UTC) for b in first.buckets] == [
        DAY + dt.timedelta(minutes=30), DAY + dt.timedelta(hours=1), DAY + dt.timedelta(hours=2),
        DAY + dt.timedelta(hours=3),
    ]  # the first bucket is clipped to the range
    assert first.buckets[0].groups == [] and first.buckets[2].groups == []
    [a, b] = first.buckets[1].groups
    assert dict(a.key) == {"model": "a"} and a.metrics.events == 1 and a.metrics.input_tokens == 5
    assert dict(a.metrics.counters) == {"inference": 2} and a.metrics.cost == "0.1000000001"
    assert a.metrics.num_model_requests == 1 and a.metrics.unpriced_events == 0
    assert b.metrics.unpriced_events == 1 and b.metrics.cost == "0"
    assert first.next_page_token

    request.page_token = first.next_page_token
    second = await query.QueryUsage(request, metadata=org.auth)
    assert [b.start_time.ToDatetime(UTC).hour for b in second.buckets] == [4, 5, 6]
    assert second.buckets[-1].end_time.ToDatetime(UTC) == DAY + dt.timedelta(hours=6, minutes=10)
    assert second.buckets[1].groups[0].metrics.cost == "2" and not second.next_page_token

    request.group_by.append("user_id")  # the token belongs to another request now
    await expect_invalid(query.QueryUsage(request, metadata=org.auth), "page_token")


async def test_local_days_across_dst_and_freshness(stubs, new_org, query, db):
    org = await new_org()
    fall = dt.datetime(2024, 11, 3, 4, tzinfo=UTC)  # midnight in New York, the day that lasts 25 hours
    await record(stubs, org.auth, *(ev(i, fall + dt.timedelta(hours=i), input_tokens=1) for i in range(30)))
    request = query_pb2.QueryUsageRequest(
        start_time=at(fall), end_time=at(fall + dt.timedelta(hours=49)), width="1d", time_zone="America/New_York",
    )
    raw = await query.QueryUsage(request, metadata=org.auth)
    assert [(b.end_time.ToSeconds() - b.start_time.ToSeconds()) // 3600 for b in raw.buckets] == [25, 24]
    assert [b.groups[0].metrics.input_tokens for b in raw.buckets] == [25, 5]
    assert raw.freshness.raw_windows == 30
    assert raw.freshness.settled_before.ToDatetime(UTC) <= fall

    number = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    for day in (fall, fall + dt.timedelta(days=1)):
        await recompute_day(db, number, day)
    settled = await query.QueryUsage(request, metadata=org.auth)
    assert settled.freshness.raw_windows == 0
    assert settled.freshness.settled_before == settled.freshness.snapshot_time
    assert [list(b.groups) for b in settled.buckets] == [list(b.groups) for b in raw.buckets]


async def test_filters_and_label_groups(stubs, new_org, query):
    org = await new_org()
    await record(stubs, org.auth,
                 ev(1, DAY, model="a", labels={"rule_type": "x"}, input_tokens=1),
                 ev(2, DAY, model="b", labels={"rule_type": "y"}, input_tokens=10),
                 ev(3, DAY, model="b", input_tokens=100, status="error"),
                 ev(4, DAY, model="c", batch=True, input_tokens=1000))

    async def tokens(filters, group_by=()) -> dict:
        resp = await query.QueryUsage(query_pb2.QueryUsageRequest(
            start_time=at(DAY), end_time=at(DAY + dt.timedelta(days=1)), width="all", group_by=list(group_by),
            filters=[query_pb2.Filter(field=f, values=v) for f, v in filters.items()],
        ), metadata=org.auth)
        [bucket] = resp.buckets
        return {tuple(sorted(g.key.items())): g.metrics.input_tokens for g in bucket.groups}

    assert await tokens({}) == {(): 1111}
    assert await tokens({"model": ["b"]}) == {(): 110}
    assert await tokens({"labels.rule_type": ["x", ""]}) == {(): 1101}  # "" matches the unset label
    assert await tokens({"batch": ["true"]}) == {(): 1000}
    assert await tokens({"status": ["error"], "model": ["a", "b"]}) == {(): 100}
    assert await tokens({"model": ["zzz"]}) == {}
    assert await tokens({}, ["labels.rule_type"]) == {
        (): 1100, (("labels.rule_type", "x"),): 1, (("labels.rule_type", "y"),): 10,
    }


async def test_invalid_queries_name_the_field(new_org, query):
    org = await new_org()
    start, end = at(DAY), at(DAY + dt.timedelta(days=1))
    bad = [
        (query_pb2.QueryUsageRequest(end_time=end), "start_time"),
        (query_pb2.QueryUsageRequest(start_time=end, end_time=start), "end_time"),
        (query_pb2.QueryUsageRequest(start_time=start, end_time=end, width="2h"), "width"),
        (query_pb2.QueryUsageRequest(start_time=start, end_time=end, time_zone="Mars/Olympus"), "time_zone"),
        (query_pb2.QueryUsageRequest(start_time=start, end_time=end, time_zone="../../etc/passwd"), "time_zone"),
        (query_pb2.QueryUsageRequest(start_time=start, end_time=end, group_by=["password"]), "group_by"),
        (query_pb2.QueryUsageRequest(start_time=start, end_time=end, group_by=["model", "model"]), "group_by"),
        (query_pb2.QueryUsageRequest(start_time=start, end_time=end, page_size=1001), "page_size"),
        (query_pb2.QueryUsageRequest(start_time=start, end_time=end, page_token="bm9wZQ"), "page_token"),
        (query_pb2.QueryUsageRequest(start_time=start, end_time=end, filters=[
            query_pb2.Filter(field="model", values=["a"]), query_pb2.Filter(field="model", values=["b"])]), "filters"),
        (query_pb2.QueryUsageRequest(start_time=start, end_time=end, filters=[query_pb2.Filter(field="model")]),
         "filters.values"),
    ]
    for request, field in bad:
        await expect_invalid(query.QueryUsage(request, metadata=org.auth), field)


async def test_reads_follow_the_callers_scope(stubs, new_org, query):
    org, other = await new_org(), await new_org()
    admin = org.auth
    for user in ("alice", "bob"):
        await stubs.admin.CreateUser(admin_pb2.CreateUserRequest(username=f"{user}-{org.name}", user_id=user,
                                                                 password="password-123"), metadata=admin)
    await stubs.admin.CreateProject(admin_pb2.CreateProjectRequest(name="p1", project_id="p1"), metadata=admin)
    alice = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(user_id="alice"), metadata=admin)
    project = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(project_id="p1"), metadata=admin)
    await record(stubs, admin,
                 ev(1, DAY, user_id="alice", project_id="p1", input_tokens=1),
                 ev(2, DAY, user_id="alice", project_id="p2", input_tokens=10),
                 ev(3, DAY, user_id="bob", project_id="p1", input_tokens=100))
    request = query_pb2.QueryUsageRequest(start_time=at(DAY), end_time=at(DAY + dt.timedelta(hours=1)), width="all")

    async def seen(auth) -> int:
        [bucket] = (await query.QueryUsage(request, metadata=auth)).buckets
        return sum(g.metrics.input_tokens for g in bucket.groups)

    assert await seen(admin) == 111
    assert await seen((("authorization", f"Bearer {alice.key}"),)) == 11
    assert await seen((("authorization", f"Bearer {project.key}"),)) == 101
    assert await seen(other.auth) == 0
    # A member cannot widen its scope with filters.
    request.filters.append(query_pb2.Filter(field="user_id", values=["bob"]))
    assert await seen((("authorization", f"Bearer {alice.key}"),)) == 0
