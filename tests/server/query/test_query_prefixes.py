"""A long bucket read while its last day is written keeps its clean past by etag
(server/query/prefixes.py): the past is read once, the written day every time, and the
sum stays the raw events' sum through appends, rollup passes and a change in the past."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from metering.v1 import records_pb2
from server.core.principal import Principal
from server.query import prefixes
from server.query.engine import QueryEngine, UsageResult
from server.query.spec import make_spec
from tests.server.query.test_query import DAY, ev, record
from tests.server.query.test_query_etag import settle
from tests.server.query.test_query_tails import row

UTC = dt.UTC
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)


def test_a_bucket_is_cut_at_the_day_of_its_first_dirty_window():
    edges = [DAY, DAY + 10 * D, DAY + 11 * D, DAY + 30 * D]
    # bucket 0: first dirty window on day 4 -> cut at day 4; bucket 1: dirty on its first day -> no prefix;
    # bucket 2: clean -> not cut
    dirty = sorted([DAY + 4 * D + 13 * H, DAY + 7 * D, DAY + 10 * D + 3 * H])
    assert prefixes.cuts(edges, [0, 1, 2], dirty) == {0: DAY + 4 * D}
    # a window overlapping the bucket's start leaves it no clean prefix; under a day is not cut
    assert prefixes.cuts([DAY + 5 * H, DAY + 9 * D], [0], [DAY + 5 * H - dt.timedelta(minutes=10)]) == {}
    assert prefixes.cuts([DAY + 5 * H, DAY + 9 * D], [0], [DAY + D + 2 * H]) == {}
    assert prefixes.cuts([DAY + 5 * H, DAY + 9 * D], [0], [DAY + 2 * D + 2 * H]) == {0: DAY + 2 * D}


def totals(result: UsageResult) -> dict[str | None, tuple[int, int, Decimal | None]]:
    [bucket] = result.buckets
    return {g.key[0]: (g.row.events, g.row.counters[0], g.row.cost) for g in bucket.groups}


async def test_the_clean_past_of_a_month_is_kept_while_today_is_written(stubs, new_org, db, pool):
    org = await new_org()
    number = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    admin = Principal(org_id=number, organization_id=org.organization_id, role="admin")
    spec = make_spec(DAY, DAY + 30 * D, width="all", time_zone="America/New_York", group_by=["model"])
    engine = QueryEngine(pool)
    today = DAY + 20 * D

    await record(stubs, org.auth, ev(1, DAY + D, model="a", input_tokens=5, cost="0.5"),
                 ev(2, DAY + 9 * D, model="b", input_tokens=7))
    await settle(db, org.organization_id, DAY + D, DAY + 9 * D)
    await record(stubs, org.auth, ev(3, today + 2 * H, model="a", input_tokens=11, cost="0.25"))
    expected = {"a": (2, 16, Decimal("0.75")), "b": (1, 7, Decimal(0))}
    assert totals(await engine.aggregate(admin, spec)) == expected
    # The month's bucket (New York's) starts at 04:00 UTC; its prefix runs to today's UTC midnight.
    [prefix_etag] = [e for e, kept in engine.settled.items() if ("b",) in kept and ("a",) in kept
                     and kept[("a",)].counters[0] == 5]
    kept = engine.settled.get(prefix_etag)
    assert kept is not None

    # Today rolled up, then more appended: the prefix is reused (shown by planting a wrong
    # value in it), only today is read.
    await settle(db, org.organization_id, today)
    await record(stubs, org.auth, ev(4, today + 5 * H, model="b", input_tokens=100))
    real = dict(kept)
    kept[("b",)] = row(1, 1000, "0", DAY + 9 * D)
    assert totals(await engine.aggregate(admin, spec))["b"] == (2, 1100, Decimal(0))
    kept.update(real)
    expected["b"] = (2, 107, Decimal(0))
    assert totals(await engine.aggregate(admin, spec)) == expected

    # A void in the past: that day is dirty, the cut moves before it, the answer stays exact;
    # once settled, the past has a new stamp and so a new prefix (the planted value is not read).
    kept[("a",)] = row(1, 1000, "0.5", DAY + D)
    found = await stubs.records.ListEvents(records_pb2.ListEventsRequest(), metadata=org.auth)
    [voided] = [e for e in found.events if e.request_id == "q-2"]
    await stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=voided.event_id), metadata=org.auth)
    expected["b"] = (1, 100, Decimal(0))
    assert totals(await engine.aggregate(admin, spec)) == expected
    await settle(db, org.organization_id, DAY + 9 * D)
    assert totals(await engine.aggregate(admin, spec)) == expected


async def test_a_range_ending_inside_a_window_is_exact_read_to_the_window_end_or_not(stubs, new_org, db, pool):
    """A range ending inside a 15-minute window with no event after its end there (a query up
    to now) is read to the window's end (its rollup and tail); with one, the window is read
    raw (server/storage/sql/query.sql, end_clear). Both give exactly the events before the end."""
    org = await new_org()
    number = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    admin = Principal(org_id=number, organization_id=org.organization_id, role="admin")
    engine = QueryEngine(pool)
    noon = DAY + 12 * H
    minute = dt.timedelta(minutes=1)
    await record(stubs, org.auth, ev(1, noon + 5 * minute, model="a", input_tokens=5),
                 ev(2, noon + 20 * minute, model="a", input_tokens=7))
    await settle(db, org.organization_id, DAY)
    await record(stubs, org.auth, ev(3, noon + 8 * minute, model="a", input_tokens=11))  # appended: a tail

    def spec(end: dt.datetime):
        return make_spec(DAY, end, width="1d", group_by=["model"])
    assert totals(await engine.aggregate(admin, spec(noon + 10 * minute))) == {"a": (2, 16, Decimal(0))}
    assert totals(await engine.aggregate(admin, spec(noon + 7 * minute))) == {"a": (1, 5, Decimal(0))}
    assert totals(await engine.aggregate(admin, spec(noon + 25 * minute))) == {"a": (3, 23, Decimal(0))}
    await settle(db, org.organization_id, DAY)
    assert totals(await engine.aggregate(admin, spec(noon + 10 * minute))) == {"a": (2, 16, Decimal(0))}
    assert totals(await engine.aggregate(admin, spec(noon + 6 * minute))) == {"a": (1, 5, Decimal(0))}
