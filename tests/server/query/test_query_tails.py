"""A bucket that only had events appended since its rollup is read as its settled answer
(kept by etag, server/query/tails.py) plus the appended events; the statement of each
read is written for its sources (server/query/sql.py), its rows read as GroupRows
(server/query/rows.py)."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest

from metering.v1 import records_pb2
from server.core.events import COUNTER_FIELDS
from server.core.principal import Principal
from server.query.engine import QueryEngine, UsageResult
from server.query.rows import GroupRow, Groups
from server.query.spec import make_spec
from server.query.sql import SOURCES, parameters, usage_statement
from server.query.tails import add_groups
from tests.server.query.test_query import DAY, ev, record
from tests.server.query.test_query_etag import settle

UTC = dt.UTC
NOON = DAY + dt.timedelta(hours=12)


def row(events: int, tokens: int, cost: str, last: dt.datetime | None, extra: dict[str, int] | None = None,
        unpriced: int = 0) -> GroupRow:
    counters = [0] * len(COUNTER_FIELDS)
    counters[0] = tokens
    return GroupRow(events, unpriced, counters, Decimal(0), Decimal(0), Decimal(cost), last, extra)


def test_groups_add_exactly_and_are_left_unchanged():
    settled: Groups = {("a",): row(2, 5, "123456789012345678.123456789012345678", NOON, {"x": 1}, unpriced=1),
                       ("b",): row(1, 1, "0.10", None)}
    appended: Groups = {("a",): row(1, 7, "0.000000000000000001", DAY, {"x": 2, "y": 3}, unpriced=1),
                        ("c",): row(1, 2, "1", NOON, None)}
    before = {key: value for key, value in settled.items()}
    total = add_groups(settled, appended)
    assert settled == before  # the kept rows are not changed
    assert total[("a",)] == GroupRow(
        events=3, unpriced_events=2, counters=[12] + [0] * (len(COUNTER_FIELDS) - 1), input_cost=Decimal(0),
        output_cost=Decimal(0), cost=Decimal("123456789012345678.123456789012345679"), last_event_at=NOON,
        extra={"x": 3, "y": 3})
    assert total[("b",)] == settled[("b",)] and total[("c",)] == appended[("c",)]


def test_costs_not_asked_for_stay_unset_when_added():
    unasked = GroupRow(1, 0, [0] * len(COUNTER_FIELDS), None, None, None, None, None)
    total = add_groups({("a",): unasked}, {("a",): unasked._replace(events=2)})
    assert total[("a",)] == unasked._replace(events=3)


@pytest.mark.parametrize("sources", [frozenset(c) for n in range(1, len(SOURCES) + 1)
                                     for c in itertools.combinations(SOURCES, n)], ids=lambda s: "+".join(sorted(s)))
async def test_every_statement_prepares(pool, sources):
    async with pool.acquire() as conn:
        statement = await conn.prepare(usage_statement(sources))
        assert len(statement.get_parameters()) == len(parameters(sources))
        # the bucket, the group key, then a GroupRow's fields in its order (server/query/rows.py),
        # whichever metrics are asked for
        assert [a.name for a in statement.get_attributes()] == ["bucket", "gkey", *GroupRow._fields]
        some = await conn.prepare(usage_statement(sources, frozenset({"cost"})))
        assert [a.name for a in some.get_attributes()] == ["bucket", "gkey", *GroupRow._fields]
        wide = await conn.prepare(usage_statement(sources, wide=True))  # sums in numeric (server/query/sql.py)
        assert [a.name for a in wide.get_attributes()] == ["bucket", "gkey", *GroupRow._fields]
        narrow = await conn.prepare(usage_statement(sources, narrow=True))  # tails by series (server/query/sql.py)
        assert len(narrow.get_parameters()) == len(parameters(sources))


def test_a_statement_needs_known_sources():
    for bad in (frozenset(), frozenset({"minutes"})):
        with pytest.raises(ValueError):
            usage_statement(bad)


def tokens(result: UsageResult) -> list[dict[str | None, tuple[int, int, Decimal | None, dict | None]]]:
    return [{g.key[0]: (g.row.events, g.row.counters[0], g.row.cost, g.row.extra) for g in b.groups}
            for b in result.buckets]


async def test_appended_events_are_added_to_the_settled_answer(stubs, new_org, db, pool):
    org = await new_org()
    number = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    admin = Principal(org_id=number, organization_id=org.organization_id, role="admin")
    spec = make_spec(DAY, DAY + dt.timedelta(days=2), width="1d", group_by=["model"])
    engine = QueryEngine(pool)

    await record(stubs, org.auth, ev(1, NOON, model="a", input_tokens=5, cost="0.5", counters={"x": 1}),
                 ev(2, NOON, model="b", input_tokens=7))
    await settle(db, org.organization_id, DAY)
    clean = await engine.aggregate(admin, spec)
    assert clean.buckets[0].etag and len(engine.settled) == 0

    # Appended (in a window already rolled up, and in another): the settled answer is kept, the events added.
    await record(stubs, org.auth, ev(3, NOON, model="a", input_tokens=11, cost="0.25", counters={"x": 2}),
                 ev(4, NOON + dt.timedelta(hours=3), model="c", input_tokens=1))
    live = await engine.aggregate(admin, spec)
    assert live.buckets[0].etag == "" and len(engine.settled) == 1
    expected = {"a": (2, 16, Decimal("0.75"), {"x": 3}), "b": (1, 7, Decimal(0), None), "c": (1, 1, Decimal(0), None)}
    assert tokens(live) == [expected, {}]
    [(etag, kept)] = engine.settled.items()
    assert {key[0]: value.counters[0] for key, value in kept.items()} == {"a": 5, "b": 7}  # the settled part alone

    # Asked again after more appends: the kept part is used, not read again. Shown by
    # planting a wrong value in it (the real rows are put back after).
    await record(stubs, org.auth, ev(5, NOON, model="b", input_tokens=100))
    real = dict(kept)
    kept[("a",)] = row(2, 1000, "0.5", NOON, {"x": 1})
    planted = await engine.aggregate(admin, spec)
    assert tokens(planted)[0]["a"][1] == 1000 + 11 and tokens(planted)[0]["b"][1] == 107
    kept.update(real)
    expected["b"] = (2, 107, Decimal(0), None)
    assert tokens(await engine.aggregate(admin, spec)) == [expected, {}]

    # A void is a change, not an append: the bucket is read as it is (the planted value would show otherwise).
    kept[("a",)] = row(2, 1000, "0.5", NOON, {"x": 1})
    found = await stubs.records.ListEvents(records_pb2.ListEventsRequest(), metadata=org.auth)
    [voided] = [e for e in found.events if e.request_id == "q-2"]
    await stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=voided.event_id), metadata=org.auth)
    changed = await engine.aggregate(admin, spec)
    del expected["b"]
    expected["b"] = (1, 100, Decimal(0), None)
    assert tokens(changed) == [expected, {}]

    # Settled again: a new stamp, a clean bucket with an etag of its own, read as it is.
    await settle(db, org.organization_id, DAY)
    final = await engine.aggregate(admin, spec)
    assert final.buckets[0].etag not in ("", clean.buckets[0].etag, etag) and tokens(final) == [expected, {}]


async def test_appended_events_are_read_by_series_or_by_mark_alike(stubs, new_org, db, pool):
    """A statement reads the appended events of a few series by series (events_series), of
    many by their marks (server/query/sql.py, NARROW_SERIES): both give the raw events' sums."""
    org = await new_org()
    number = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    admin = Principal(org_id=number, organization_id=org.organization_id, role="admin")
    engine = QueryEngine(pool)
    users = 300
    await record(stubs, org.auth, *(ev(i, NOON, user_id=f"u{i}", input_tokens=i, cost="0.01") for i in range(users)))
    await settle(db, org.organization_id, DAY)
    await record(stubs, org.auth, *(ev(users + i, NOON + dt.timedelta(minutes=i % 60), user_id=f"u{i % 7}",
                                       input_tokens=1000, cost="1") for i in range(70)))
    month = (DAY, DAY + dt.timedelta(days=30))

    def expected(n: int) -> tuple[int, int, Decimal, None]:
        appended = sum(1 for i in range(70) if i % 7 == n)
        return 1 + appended, n + 1000 * appended, Decimal("0.01") + appended, None

    # every series: by mark
    many = await engine.aggregate(admin, make_spec(*month, width="all", group_by=["user_id"]))
    assert tokens(many) == [{f"u{n}": expected(n) for n in range(users)}]
    for n in (3, 200):  # one user's series: by series
        one = await engine.aggregate(admin, make_spec(*month, width="all", group_by=["user_id"],
                                                      filters=[("user_id", [f"u{n}"])]))
        assert tokens(one) == [{f"u{n}": expected(n)}]
    # a filter listing 100 users selects 100 series: by mark
    hundred = await engine.aggregate(admin, make_spec(*month, width="all", group_by=["user_id"],
                                                      filters=[("user_id", [f"u{n}" for n in range(100)])]))
    assert tokens(hundred) == [{f"u{n}": expected(n) for n in range(100)}]
    # counted: 300 series of kind "completions" (by mark), 1 of model "rare" (by series)
    await record(stubs, org.auth, ev(1000, NOON, user_id="u1", model="rare", input_tokens=3),
                 ev(1001, NOON + dt.timedelta(minutes=20), user_id="u1", model="rare", input_tokens=4))
    kinds = await engine.aggregate(admin, make_spec(*month, width="all", group_by=["user_id"],
                                                    filters=[("kind", ["completions"])]))
    assert sum(g.row.counters[0] for g in kinds.buckets[0].groups) == sum(range(users)) + 70_000 + 7
    rare = await engine.aggregate(admin, make_spec(*month, width="all", group_by=["user_id"],
                                                   filters=[("model", ["rare"])]))
    assert tokens(rare) == [{"u1": (2, 7, Decimal(0), None)}]
    await settle(db, org.organization_id, DAY)
    settled = await engine.aggregate(admin, make_spec(*month, width="all", group_by=["user_id"],
                                                      filters=[("model", ["rare"])]))
    assert tokens(settled) == tokens(rare)


async def test_a_lone_buckets_appended_part_is_kept_and_only_new_marks_are_read(stubs, new_org, db, pool):
    """A budget's period read again while usage comes in: its appended groups are kept with
    the marks they sum (server/query/tails.py appended_rows), and only the marks added since
    are read; a change (void) or a rollup pass starts over."""
    org = await new_org()
    number = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    admin = Principal(org_id=number, organization_id=org.organization_id, role="admin")
    spec = make_spec(DAY, DAY + dt.timedelta(days=30), width="all", group_by=["model"],
                     filters=[("user_id", ["u1"])])
    engine = QueryEngine(pool)
    await record(stubs, org.auth, ev(1, NOON, model="a", user_id="u1", input_tokens=5))
    await settle(db, org.organization_id, DAY)
    await record(stubs, org.auth, ev(2, NOON, model="a", user_id="u1", input_tokens=7),
                 ev(3, NOON, model="a", user_id="u2", input_tokens=1000))
    assert tokens(await engine.aggregate(admin, spec)) == [{"a": (2, 12, Decimal(0), None)}]
    [(etag, (marks, kept))] = engine.appended.items()
    assert len(marks) == 1 and kept[("a",)].counters[0] == 7

    # More appended: the kept part is used (a planted value shows), only the new mark is read.
    await record(stubs, org.auth, ev(4, NOON + dt.timedelta(minutes=40), model="b", user_id="u1", input_tokens=11))
    kept[("a",)] = row(1, 700, "0", NOON)
    assert tokens(await engine.aggregate(admin, spec)) == [{"a": (2, 705, Decimal(0), None),
                                                            "b": (1, 11, Decimal(0), None)}]
    now_marks, total = engine.appended.get(etag) or (frozenset(), {})
    assert len(now_marks) == 2 and total[("b",)].counters[0] == 11

    # A void is a change: read as it is (the planted value is not used); a rollup pass moves the etag on.
    found = await stubs.records.ListEvents(records_pb2.ListEventsRequest(), metadata=org.auth)
    [voided] = [e for e in found.events if e.request_id == "q-4"]
    await stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=voided.event_id), metadata=org.auth)
    assert tokens(await engine.aggregate(admin, spec)) == [{"a": (2, 12, Decimal(0), None)}]
    await settle(db, org.organization_id, DAY)
    await record(stubs, org.auth, ev(5, NOON, model="a", user_id="u1", input_tokens=100))
    assert tokens(await engine.aggregate(admin, spec)) == [{"a": (3, 112, Decimal(0), None)}]
