"""ExportService over gRPC: a usage export is every page of QueryUsage and an event export every
page of ListEvents (same rows, sums and counts for several filters, zones and widths), scoped as
they are, resumable from any chunk's cursor with every row once, and refusing bad input before
the first chunk."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from metering import exports
from metering.v1 import event_pb2, exports_pb2_grpc, ingest_pb2, query_pb2, query_pb2_grpc, records_pb2
from tests.support.export_data import DAY, Tenant, at, tenant

END = DAY + dt.timedelta(days=3)


@pytest.fixture(scope="module")
def export(channel: grpc.aio.Channel) -> exports_pb2_grpc.ExportServiceStub:
    return exports_pb2_grpc.ExportServiceStub(channel)


@pytest.fixture(scope="module")
def query(channel: grpc.aio.Channel) -> query_pb2_grpc.QueryServiceStub:
    return query_pb2_grpc.QueryServiceStub(channel)


@pytest.fixture(scope="module")
async def usage(stubs) -> Tenant:
    return await tenant(stubs)


async def all_pages(call, request, auth) -> list:
    pages, token = [], ""
    while True:
        request.page_token = token
        page = await call(request, metadata=auth)
        pages.append(page)
        token = page.next_page_token
        if not token:
            return pages


async def chunks(call, request, auth) -> list:
    return [chunk async for chunk in call(request, metadata=auth)]


QUERIES = [
    dict(width="1d"),
    dict(width="1h", group_by=["model", "project_id"], page_size=7),
    dict(width="1d", time_zone="America/New_York", group_by=["labels.size"], page_size=1),
    dict(width="1h", time_zone="Asia/Kathmandu", filters=[query_pb2.Filter(field="model", values=["gpt-4o"])],
         page_size=5),
    dict(width="all", group_by=["user_id"], metrics=["input_tokens", "cost"]),
    dict(width="1m", filters=[query_pb2.Filter(field="labels.size", values=["m", ""])], page_size=1000),
]


@pytest.mark.parametrize("shape", QUERIES, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items())[:60])
async def test_usage_export_is_every_page_of_the_query(query, export, usage, shape):
    request = query_pb2.QueryUsageRequest(start_time=at(DAY - dt.timedelta(hours=3)), end_time=at(END), **shape)
    pages = await all_pages(query.QueryUsage, query_pb2.QueryUsageRequest(**{**shape, "page_size": 1000},
                            start_time=request.start_time, end_time=request.end_time), usage.admin)
    got = await chunks(export.ExportUsage, request, usage.admin)
    buckets = [b for chunk in got for b in chunk.buckets]
    assert buckets == [b for page in pages for b in page.buckets]
    assert len(got) == -(-len(buckets) // (request.page_size or 100))
    assert all(chunk.cursor for chunk in got[:-1]) and not got[-1].cursor
    # the rows of the export add up to the query's numbers
    columns = exports.usage_columns(list(request.group_by), list(request.metrics))
    rows = [dict(zip(columns.header, row, strict=True)) for chunk in got for row in columns.rows(chunk)]
    total = sum(g.metrics.events for b in buckets for g in b.groups)
    assert sum(r["events"] for r in rows) == total > 0
    assert sum(r["input_tokens"] for r in rows) == sum(g.metrics.input_tokens for b in buckets for g in b.groups)
    assert len(rows) == sum(max(1, len(b.groups)) for b in buckets)  # an empty bucket is one row


async def test_event_export_is_every_page_of_the_listing(stubs, export, usage):
    for shape in (dict(), dict(models=["gpt-4o", "text-embedding-3-small"], project_ids=["proj-a"]),
                  dict(start_time=at(DAY + dt.timedelta(hours=7)), end_time=at(DAY + dt.timedelta(hours=40))),
                  dict(include_payload=True, kinds=["completions"])):
        listed = await all_pages(stubs.records.ListEvents, records_pb2.ListEventsRequest(page_size=1000, **shape),
                                 usage.admin)
        got = await chunks(export.ExportEvents, records_pb2.ListEventsRequest(page_size=7, **shape), usage.admin)
        events = [e for chunk in got for e in chunk.events]
        assert events == [e for page in listed for e in page.events] and events
        assert len(got) == -(-len(events) // 7)
        assert all(bool(e.request_raw) == ("include_payload" in shape) for e in events)
    everything = await chunks(export.ExportEvents, records_pb2.ListEventsRequest(), usage.admin)
    assert len(everything) == 1 and len(everything[0].events) == usage.events  # default chunk: 1,000 events


async def test_a_member_exports_only_its_own_usage(stubs, export, usage, new_org):
    request = query_pb2.QueryUsageRequest(start_time=at(DAY), end_time=at(END), width="all", group_by=["user_id"])
    [chunk] = await chunks(export.ExportUsage, request, usage.member)
    assert [(dict(g.key), g.metrics.events) for g in chunk.buckets[0].groups] == [({"user_id": usage.member_id}, 30)]
    got = await chunks(export.ExportEvents, records_pb2.ListEventsRequest(), usage.member)
    assert {e.user_id for c in got for e in c.events} == {usage.member_id}
    # asking for another user's events is not a way around the scope
    got = await chunks(export.ExportEvents, records_pb2.ListEventsRequest(user_ids=[usage.other_id]), usage.member)
    assert [e for c in got for e in c.events] == []
    stranger = await new_org()
    [chunk] = await chunks(export.ExportUsage, request, stranger.auth)
    assert [g for b in chunk.buckets for g in b.groups] == []
    got = await chunks(export.ExportEvents, records_pb2.ListEventsRequest(), stranger.auth)
    assert [e for c in got for e in c.events] == []


async def test_resuming_at_any_cursor_gives_every_row_once(export, usage):
    events = records_pb2.ListEventsRequest(page_size=8)
    whole = [e.event_id for c in await chunks(export.ExportEvents, events, usage.admin) for e in c.events]
    usage_request = query_pb2.QueryUsageRequest(start_time=at(DAY), end_time=at(END), width="1h", page_size=9,
                                                group_by=["model"])
    buckets = [b for c in await chunks(export.ExportUsage, usage_request, usage.admin) for b in c.buckets]
    for stop in (1, 3, 5):
        first = []
        async for chunk in export.ExportEvents(events, metadata=usage.admin):  # interrupted after `stop` chunks
            first.append(chunk)
            if len(first) == stop:
                break
        resumed = records_pb2.ListEventsRequest(page_size=8, page_token=first[-1].cursor)
        rest = await chunks(export.ExportEvents, resumed, usage.admin)
        assert [e.event_id for c in first + rest for e in c.events] == whole
        assert len(set(whole)) == len(whole) == usage.events

        first_usage = []
        async for part in export.ExportUsage(usage_request, metadata=usage.admin):
            first_usage.append(part)
            if len(first_usage) == stop:
                break
        resumed_usage = query_pb2.QueryUsageRequest()
        resumed_usage.CopyFrom(usage_request)
        resumed_usage.page_token = first_usage[-1].cursor
        rest_usage = await chunks(export.ExportUsage, resumed_usage, usage.admin)
        assert [b for c in first_usage + rest_usage for b in c.buckets] == buckets


@pytest.mark.parametrize(("request_fields", "field"), [
    (dict(start_time=at(DAY), width="2d"), "width"),
    (dict(start_time=at(DAY), time_zone="Mars/Olympus"), "time_zone"),
    (dict(), "start_time"),
    (dict(start_time=at(DAY), if_none_match="abc"), "if_none_match"),
    (dict(start_time=at(DAY), known_etags=["abc"]), "known_etags"),
    (dict(start_time=at(DAY), page_token="bogus"), "page_token"),
    (dict(start_time=at(DAY), page_size=1001), "page_size"),
])
async def test_bad_usage_requests_fail_before_the_first_chunk(export, usage, request_fields, field):
    call = export.ExportUsage(query_pb2.QueryUsageRequest(**request_fields), metadata=usage.admin)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(field), caught.value.details()


async def test_bad_event_requests_and_credentials_are_refused(export, usage):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await export.ExportEvents(records_pb2.ListEventsRequest(page_token="bogus"), metadata=usage.admin).read()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await export.ExportEvents(records_pb2.ListEventsRequest(), metadata=(("authorization", "Bearer nope"),)).read()
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_pages_with_large_payloads_are_split_under_the_message_limit(stubs, export, new_org):
    org = await new_org()
    big = "x" * (900 << 10)
    events = [event_pb2.UsageEvent(request_id=f"big-{i}", kind="completions", model="m", timestamp=at(DAY),
                                   request_raw=big, response_raw=big) for i in range(6)]
    for event in events:  # one by one: a batch holds at most 16 MiB
        await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=[event]), metadata=org.auth)
    got = await chunks(export.ExportEvents, records_pb2.ListEventsRequest(include_payload=True), org.auth)
    assert sorted(e.request_id for c in got for e in c.events) == sorted(e.request_id for e in events)
    assert len(got) > 1 and all(c.ByteSize() <= 4 << 20 for c in got)
    assert all(e.request_raw == big for c in got for e in c.events)
