"""QueryUsage etags (server/query/engine.py, migrations/0006_stamps.sql): a settled page names
its answer; the same request with if_none_match gets not_modified exactly while the
answer is unchanged, and a full answer whenever anything in the page changed."""

from __future__ import annotations

import datetime as dt

from metering.v1 import admin_pb2, query_pb2, records_pb2
from server.rollups.recompute import recompute_day
from tests.server.query.test_query import DAY, at, ev, expect_invalid, record

UTC = dt.UTC


def month_request(**fields) -> query_pb2.QueryUsageRequest:
    return query_pb2.QueryUsageRequest(start_time=at(DAY), end_time=at(DAY + dt.timedelta(days=3)), width="1d",
                                       group_by=["model"], **fields)


async def settle(db, organization_id: str, *days: dt.datetime) -> None:
    number = await db.fetchval("select org_id from organizations where id = $1", organization_id)
    for day in days:
        await recompute_day(db, number, day)


def tokens(reply: query_pb2.QueryUsageResponse) -> list[dict[str, int]]:
    return [{dict(g.key)["model"]: g.metrics.input_tokens for g in b.groups} for b in reply.buckets]


async def test_a_settled_page_is_not_modified_until_its_answer_changes(stubs, new_org, query, db):
    org = await new_org()
    await record(stubs, org.auth, ev(1, DAY + dt.timedelta(hours=1), model="a", input_tokens=5),
                 ev(2, DAY + dt.timedelta(days=1), model="b", input_tokens=7))
    dirty = await query.QueryUsage(month_request(), metadata=org.auth)
    assert dirty.etag == "" and not dirty.not_modified  # windows still dirty: no etag

    await settle(db, org.organization_id, DAY, DAY + dt.timedelta(days=1))
    first = await query.QueryUsage(month_request(), metadata=org.auth)
    assert first.etag and not first.not_modified and tokens(first) == [{"a": 5}, {"b": 7}, {}]
    again = await query.QueryUsage(month_request(if_none_match=first.etag), metadata=org.auth)
    assert again.not_modified and again.etag == first.etag and list(again.buckets) == []
    assert again.freshness.raw_windows == 0 and again.freshness.snapshot_time.ToDatetime(UTC) > DAY
    other = await query.QueryUsage(month_request(if_none_match="not-it"), metadata=org.auth)
    assert not other.not_modified and tokens(other) == tokens(first) and other.etag == first.etag

    # An appended event: dirty, so a full answer and no etag, until the worker settles it.
    await record(stubs, org.auth, ev(3, DAY + dt.timedelta(days=2), model="a", input_tokens=11))
    appended = await query.QueryUsage(month_request(if_none_match=first.etag), metadata=org.auth)
    assert not appended.not_modified and appended.etag == "" and tokens(appended) == [{"a": 5}, {"b": 7}, {"a": 11}]
    await settle(db, org.organization_id, DAY + dt.timedelta(days=2))
    settled = await query.QueryUsage(month_request(if_none_match=first.etag), metadata=org.auth)
    assert not settled.not_modified and settled.etag not in ("", first.etag) and tokens(settled) == tokens(appended)

    # A void is a change, not an append: the same.
    found = await stubs.records.ListEvents(records_pb2.ListEventsRequest(), metadata=org.auth)
    [voided] = [e for e in found.events if e.request_id == "q-1"]
    await stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=voided.event_id), metadata=org.auth)
    changed = await query.QueryUsage(month_request(if_none_match=settled.etag), metadata=org.auth)
    assert not changed.not_modified and changed.etag == "" and tokens(changed) == [{}, {"b": 7}, {"a": 11}]
    await settle(db, org.organization_id, DAY)
    final = await query.QueryUsage(month_request(if_none_match=settled.etag), metadata=org.auth)
    assert not final.not_modified and final.etag not in ("", settled.etag) and tokens(final) == tokens(changed)


async def test_an_etag_names_the_page_the_query_and_the_scope(stubs, new_org, query, db):
    org = await new_org()
    admin = org.auth
    await stubs.admin.CreateProject(admin_pb2.CreateProjectRequest(name="p1", project_id="p1"), metadata=admin)
    member = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(project_id="p1"), metadata=admin)
    await record(stubs, admin, ev(1, DAY, model="a", project_id="p1", input_tokens=1),
                 ev(2, DAY, model="a", project_id="p2", input_tokens=10))
    await settle(db, org.organization_id, DAY)
    whole = await query.QueryUsage(month_request(), metadata=admin)
    scoped = await query.QueryUsage(month_request(if_none_match=whole.etag),
                                    metadata=(("authorization", f"Bearer {member.key}"),))
    assert not scoped.not_modified and scoped.etag != whole.etag and tokens(scoped)[0] == {"a": 1}
    by_project = await query.QueryUsage(
        month_request(if_none_match=whole.etag, filters=[query_pb2.Filter(field="project_id", values=["p2"])]),
        metadata=admin)
    assert not by_project.not_modified and tokens(by_project)[0] == {"a": 10}
    paged = await query.QueryUsage(month_request(if_none_match=whole.etag, page_size=1), metadata=admin)
    assert not paged.not_modified and paged.etag != whole.etag and len(paged.buckets) == 1
    # The end time changes the page only through its buckets: a later end over the same
    # buckets (the first page of a longer range) keeps the etag.
    longer = month_request(if_none_match=paged.etag, page_size=1)
    longer.end_time.CopyFrom(at(DAY + dt.timedelta(days=9)))
    same_page = await query.QueryUsage(longer, metadata=admin)
    assert same_page.not_modified and same_page.next_page_token

    other = await new_org()  # another organization never matches, even with the same request
    foreign = await query.QueryUsage(month_request(if_none_match=whole.etag), metadata=other.auth)
    assert not foreign.not_modified and tokens(foreign) == [{}, {}, {}]


async def test_a_rollup_pass_that_changes_the_days_changes_the_etag(stubs, new_org, query, db):
    """A write and its rollup both committed between two reads leave no dirty window to
    see: the stamp of the day is what tells the second read that the answer changed."""
    org = await new_org()
    await record(stubs, org.auth, ev(1, DAY, model="a", input_tokens=1))
    await settle(db, org.organization_id, DAY)
    before = await query.QueryUsage(month_request(), metadata=org.auth)
    await record(stubs, org.auth, ev(2, DAY + dt.timedelta(hours=23, minutes=59), model="a", input_tokens=2))
    await settle(db, org.organization_id, DAY)
    after = await query.QueryUsage(month_request(if_none_match=before.etag), metadata=org.auth)
    assert not after.not_modified and tokens(after)[0] == {"a": 3}
    # Days outside the page do not change it.
    await record(stubs, org.auth, ev(3, DAY + dt.timedelta(days=5), model="a", input_tokens=4))
    await settle(db, org.organization_id, DAY + dt.timedelta(days=5))
    unchanged = await query.QueryUsage(month_request(if_none_match=after.etag), metadata=org.auth)
    assert unchanged.not_modified


async def test_a_pass_changes_the_etags_of_the_hours_it_recomputed_and_of_their_day(stubs, new_org, query, db):
    """Stamps by hour (migrations/0007_hour_stamps.sql): a pass over a day's 10:00 window
    leaves the other hourly buckets of the day named as they were, and renames the
    10:00 bucket and the day."""
    org = await new_org()
    await record(stubs, org.auth, *(ev(h, DAY + dt.timedelta(hours=h, minutes=5), model="a", input_tokens=h)
                                    for h in range(24)))
    await settle(db, org.organization_id, DAY)

    def hourly(**fields) -> query_pb2.QueryUsageRequest:
        return query_pb2.QueryUsageRequest(start_time=at(DAY), end_time=at(DAY + dt.timedelta(days=1)), width="1h",
                                           group_by=["model"], page_size=24, **fields)

    hours = await query.QueryUsage(hourly(), metadata=org.auth)
    day = await query.QueryUsage(month_request(), metadata=org.auth)
    assert all(b.etag for b in hours.buckets) and day.etag
    await record(stubs, org.auth, ev(100, DAY + dt.timedelta(hours=10, minutes=20), model="a", input_tokens=1000))
    await settle(db, org.organization_id, DAY)
    again = await query.QueryUsage(hourly(known_etags=[b.etag for b in hours.buckets]), metadata=org.auth)
    assert [b.not_modified for b in again.buckets] == [h != 10 for h in range(24)]
    assert tokens(again)[10] == {"a": 1010} and again.buckets[10].etag not in ("", hours.buckets[10].etag)
    day_again = await query.QueryUsage(month_request(if_none_match=day.etag), metadata=org.auth)
    assert not day_again.not_modified and tokens(day_again)[0] == {"a": sum(range(24)) + 1000}


async def test_known_buckets_come_back_empty_and_only_the_others_are_read(stubs, new_org, query, db):
    org = await new_org()
    await record(stubs, org.auth, *(ev(i, DAY + dt.timedelta(days=i, hours=3), model="a", input_tokens=10 ** i)
                                    for i in range(3)))
    await settle(db, org.organization_id, *(DAY + dt.timedelta(days=i) for i in range(3)))
    first = await query.QueryUsage(month_request(), metadata=org.auth)
    etags = [b.etag for b in first.buckets]
    assert all(etags) and len(set(etags)) == 3 and tokens(first) == [{"a": 1}, {"a": 10}, {"a": 100}]

    # Today is being written: the settled days are known, only the last bucket is read.
    await record(stubs, org.auth, ev(9, DAY + dt.timedelta(days=2, hours=5), model="b", input_tokens=7))
    live = await query.QueryUsage(month_request(known_etags=etags), metadata=org.auth)
    assert [b.not_modified for b in live.buckets] == [True, True, False] and live.etag == ""
    assert [b.etag for b in live.buckets] == [etags[0], etags[1], ""]
    assert tokens(live) == [{}, {}, {"a": 100, "b": 7}]  # read at the right bucket
    # A known bucket between unknown ones is left empty too; the others are exact.
    middle = await query.QueryUsage(month_request(known_etags=[etags[1], "stale"]), metadata=org.auth)
    assert [b.not_modified for b in middle.buckets] == [False, True, False]
    assert tokens(middle) == [{"a": 1}, {}, {"a": 100, "b": 7}]

    await settle(db, org.organization_id, DAY + dt.timedelta(days=2))
    settled = await query.QueryUsage(month_request(known_etags=etags), metadata=org.auth)
    assert [b.not_modified for b in settled.buckets] == [True, True, False]
    assert settled.buckets[2].etag not in ("", etags[2]) and settled.etag
    every = await query.QueryUsage(month_request(known_etags=[b.etag for b in settled.buckets]), metadata=org.auth)
    assert all(b.not_modified for b in every.buckets) and tokens(every) == [{}, {}, {}]
    assert every.etag == settled.etag  # the page's etag follows its buckets'


async def test_too_many_known_etags_is_invalid(new_org, query):
    org = await new_org()
    await expect_invalid(query.QueryUsage(month_request(known_etags=["x"] * 1001), metadata=org.auth), "known_etags")
