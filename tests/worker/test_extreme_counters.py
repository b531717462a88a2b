"""Property: extreme counters sum exactly wherever sums are kept (issue 15, item 1).

Events whose counters are 0, 1, the per-event maximum (server.ingest.validation.MAX_COUNTER)
or anything between, in every fixed counter and in extra counters, with costs up to the
largest an event may carry; adjusted to other extremes, voided; and some raised in place to
2^63 - 1, as events accepted before the maximum existed may be. Before and after the real
worker settled them (its sweep must never fail):
- the query engine (in process) equals an exact Python sum (tests/worker/oracle.py), however
  far past int64 its sums go;
- QueryUsage and the tallies over gRPC equal it too, or, where a sum exceeds their int64
  fields, answer OUT_OF_RANGE naming a metric that does;
- GetCosts equals the exact sum of the costs, always (its amounts and quantities are decimals);
- rollups (15m, 1h, 1d) and cubes (1h, 1d) equal the raw events summed exactly in Python.

Examples per run: METERING_HYPOTHESIS_EXAMPLES (default 10, ~30 s), as in test_exactness.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import grpc
import pytest
from google.protobuf import field_mask_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering.v1 import admin_pb2, event_pb2, ingest_pb2, prices_pb2, prices_pb2_grpc, query_pb2, records_pb2
from server.core.events import COUNTER_FIELDS
from server.core.principal import Principal
from server.ingest.validation import MAX_COUNTER
from server.query.engine import QueryEngine
from server.query.reports import TALLY_CATEGORY, TOKEN_CATEGORIES
from server.query.spec import make_spec
from server.storage.db import create_pool
from tests.conftest import Org
from tests.worker import oracle
from tests.worker.checks import EXACT_SUMS, assert_rollups_exact, dirty_count, org_number, stamp
from tests.worker.conftest import RollupStubs
from tests.worker.test_cubes import assert_cubes_exact
from tests.worker.test_exactness import model_of

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")  # arq's, of redis
EXAMPLES = int(os.environ.get("METERING_HYPOTHESIS_EXAMPLES", "10"))
INT64_MAX = 2**63 - 1
D = decimal.Decimal
MAX_COST = D("99999999999999999999.999999999999999999")
DAY = dt.datetime(2024, 9, 16, tzinfo=dt.UTC)
START, END = DAY - dt.timedelta(hours=5), DAY + dt.timedelta(days=2)
EXTRA = ("inference", "eval_prompt")
QUERIES = (  # (width, zone, group_by): raw, rollups of each grain, the cubes (kind, model), other zones
    ("1d", "UTC", ()), ("1h", "UTC", ("model",)), ("all", "UTC", ("user_id",)), ("1d", "Asia/Kolkata", ("kind",)),
    ("month", "America/New_York", ("model", "labels.rule_type")),
)

extreme = st.one_of(st.sampled_from((0, 1, MAX_COUNTER - 1, MAX_COUNTER)), st.integers(0, MAX_COUNTER))
money = st.one_of(st.sampled_from((D(0), D("0.000000000000000001"), MAX_COST)),
                  st.decimals(0, MAX_COST, places=18, allow_nan=False, allow_infinity=False))


@st.composite
def events(draw: st.DrawFn, i: int) -> event_pb2.UsageEvent:
    e = event_pb2.UsageEvent(
        request_id=f"x-{i}", timestamp=stamp(DAY + dt.timedelta(seconds=draw(st.integers(-4 * 3600, 40 * 3600)))),
        kind=draw(st.sampled_from(("completions", "embeddings"))), model=draw(st.sampled_from(("m1", "m2"))),
        user_id=draw(st.sampled_from(("u1", "u2"))), client_id="c", labels={"rule_type": draw(st.sampled_from("ab"))},
        counters=draw(st.dictionaries(st.sampled_from(EXTRA), extreme, max_size=2)),
    )
    for name in COUNTER_FIELDS:
        setattr(e, name, draw(extreme))
    given = draw(st.sampled_from(((), ("input_cost",), ("input_cost", "output_cost"), ("cost",))))
    left = MAX_COST  # what the event may still cost: input_cost + output_cost is its cost
    for name in given:
        amount = min(draw(money), left)
        setattr(e, name, format(amount, "f"))
        left = EXACT_SUMS.subtract(left, amount)
    return e


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    n = draw(st.integers(1, 8))
    return {
        "events": [draw(events(i)) for i in range(n)],
        # adjustments: (event, counter or extra counter, new value)
        "updates": draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from((*COUNTER_FIELDS[:3], *EXTRA)),
                                           extreme), max_size=2)),
        "voids": draw(st.lists(st.integers(0, n - 1), max_size=2, unique=True)),
        # raised to 2^63 - 1 in place: accepted before the maximum existed
        "legacy": draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from(("input_tokens", "seconds",
                                                                                  "inference"))), max_size=3)),
    }


@pytest.fixture(scope="module")
async def pool(database_url: str, rollup_server: object) -> AsyncIterator[asyncpg.Pool]:
    made = await create_pool(database_url, min_size=1, max_size=2)
    yield made
    await made.close()


@pytest.fixture(scope="module")
async def costs(rollup_server) -> AsyncIterator[prices_pb2_grpc.CostServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{rollup_server.port}") as ch:
        yield prices_pb2_grpc.CostServiceStub(ch)


def engine_buckets(result) -> list[tuple[dt.datetime, dt.datetime, dict]]:
    """The engine's answer in the oracle's shape."""
    return [(b.start, b.end, {g.key: {
        "events": g.row.events, "unpriced_events": g.row.unpriced_events,
        **dict(zip(COUNTER_FIELDS, g.row.counters, strict=True)), "counters": g.row.extra or {},
        "input_cost": g.row.input_cost, "output_cost": g.row.output_cost, "cost": g.row.cost,
        "last_event_time": g.row.last_event_at} for g in b.groups}) for b in result.buckets]


def too_large(expected: list[tuple[dt.datetime, dt.datetime, dict]]) -> set[str]:
    """The metrics whose sum exceeds int64 in some bucket and group."""
    return {name for _, _, groups in expected for m in groups.values()
            for name, value in [*((f, m[f]) for f in ("events", "unpriced_events", *COUNTER_FIELDS)),
                                *((f"counters.{n}", v) for n, v in m["counters"].items())] if value > INT64_MAX}


async def check_queries(rstubs: RollupStubs, engine: QueryEngine, org: Org, principal: Principal,
                        stored: dict[str, oracle.Stored]) -> None:
    for width, zone, group_by in QUERIES:
        expected = oracle.aggregate(stored.values(), START, END, width, zone, group_by, {})
        result = await engine.aggregate(principal, make_spec(START, END, width=width, time_zone=zone,
                                                             group_by=group_by))
        got = engine_buckets(result)
        assert got == expected, (width, zone, group_by, [
            (lo, key, name, g.get(key, {}).get(name), e.get(key, {}).get(name))
            for (lo, _, g), (_, _, e) in zip(got, expected, strict=True)
            for key in set(g) | set(e) for name in set(g.get(key, {})) | set(e.get(key, {}))
            if g.get(key, {}).get(name) != e.get(key, {}).get(name)])
        request = query_pb2.QueryUsageRequest(start_time=stamp(START), end_time=stamp(END), width=width,
                                              time_zone=zone, group_by=group_by)
        over = too_large(expected)
        try:
            reply = await rstubs.query.QueryUsage(request, metadata=org.auth)
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.OUT_OF_RANGE, err.details()
            assert (err.details() or "").split(":")[0] in over, (err.details(), over)
        else:
            assert not over, over
            assert oracle.from_response(reply.buckets, group_by) == expected


async def check_tallies(rstubs: RollupStubs, org: Org, stored: dict[str, oracle.Stored]) -> None:
    expected: dict[tuple, dict[str, int]] = {}
    for e in stored.values():
        if e.active and START <= e.ts < END:
            day = e.ts.replace(hour=0, minute=0, second=0, microsecond=0)
            category = TALLY_CATEGORY[e.dims["kind"] or ""]
            counts = expected.setdefault((day, e.dims["user_id"], category, e.dims["model"]), {})
            parts = {"tokens": ("input_tokens", "output_tokens")} if category in TOKEN_CATEGORIES else {
                "input_tokens": ("input_tokens",), "output_tokens": ("output_tokens",)}
            for name, summed in parts.items():
                counts[name] = counts.get(name, 0) + sum(e.counters[c] for c in summed)
    request = query_pb2.GetUsageTalliesRequest(window="day", start_time=stamp(DAY - dt.timedelta(days=1)),
                                               end_time=stamp(END))
    over = {name for counts in expected.values() for name, value in counts.items() if value > INT64_MAX}
    try:
        reply = await rstubs.query.GetUsageTallies(request, metadata=org.auth)
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.OUT_OF_RANGE and (err.details() or "").split(":")[0] in over
        return
    assert not over
    got = {(t.start_time.ToDatetime(dt.UTC), t.user_id, category, model): dict(counts.counts)
           for t in reply.tallies for category, c in t.value.items() for model, counts in c.models.items()}
    assert got == expected


async def check_costs(costs: prices_pb2_grpc.CostServiceStub, org: Org, stored: dict[str, oracle.Stored]) -> None:
    """Caller-given costs by UTC day, exact: nothing of the amounts is bounded by int64."""
    expected: dict[dt.datetime, D] = {}
    for e in stored.values():
        if e.active and e.cost is not None and START <= e.ts < END:
            day = e.ts.replace(hour=0, minute=0, second=0, microsecond=0)
            expected[day] = EXACT_SUMS.add(expected.get(day, D(0)), e.cost)
    reply = await costs.GetCosts(prices_pb2.GetCostsRequest(
        start_time=stamp(START.replace(hour=0)), end_time=stamp(END)), metadata=org.auth)
    got: dict[dt.datetime, D] = {}
    for b in reply.buckets:
        for r in b.results:
            day = b.start_time.ToDatetime(dt.UTC)
            got[day] = EXACT_SUMS.add(got.get(day, D(0)), D(r.amount.value))
    assert {day: amount for day, amount in got.items() if amount} == {d: a for d, a in expected.items() if a}


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(scenario=scenarios())
async def test_extreme_counters_sum_exactly(
    scenario, rstubs: RollupStubs, rollup_org: Callable[[], Awaitable[Org]], burst, db, pool, costs,
):
    org = await rollup_org()
    number = await org_number(db, org.organization_id)
    keys = await rstubs.admin.ListApiKeys(admin_pb2.ListApiKeysRequest(organization=org.organization_id),
                                          metadata=org.auth)
    key_id = keys.api_keys[0].api_key_id
    principal = Principal(org_id=number, organization_id=org.organization_id, role="admin")
    engine = QueryEngine(pool)
    reply = await rstubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=scenario["events"]),
                                             metadata=org.auth)
    assert reply.recorded == len(scenario["events"]), [r.message for r in reply.results]
    ids = [r.event_id for r in reply.results]
    stored = {eid: model_of(e, key_id) for eid, e in zip(ids, scenario["events"], strict=True)}

    for i, field, value in scenario["updates"]:
        top = "counters" if field in EXTRA else field
        patch = event_pb2.UsageEvent(event_id=ids[i], counters={field: value} if top == "counters" else {})
        if top != "counters":
            setattr(patch, field, value)
        path = f"counters.{field}" if top == "counters" else field
        updated = await rstubs.records.UpdateEvent(records_pb2.UpdateEventRequest(
            event=patch, update_mask=field_mask_pb2.FieldMask(paths=[path])), metadata=org.auth)
        stored[ids[i]] = dataclasses.replace(model_of(updated, key_id), active=stored[ids[i]].active)
    for i in scenario["voids"]:
        await rstubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=ids[i]), metadata=org.auth)
        stored[ids[i]].active = False
    for i, field in scenario["legacy"]:
        if field in EXTRA:
            await db.execute("update events set counters = coalesce(counters, '{}') || $3::jsonb "
                             "where org_id = $1 and event_id = $2", number, uuid.UUID(ids[i]),
                             json.dumps({field: INT64_MAX}))
            stored[ids[i]].extra = {**(stored[ids[i]].extra or {}), field: INT64_MAX}
        else:
            await db.execute(f"update events set {field} = $3 where org_id = $1 and event_id = $2", number,
                             uuid.UUID(ids[i]), INT64_MAX)
            stored[ids[i]].counters[field] = INT64_MAX
        await db.execute("insert into dirty_windows (org_id, window_start) select org_id, "
                         "date_bin('15 minutes', ts, timestamptz '2000-01-01') from events "
                         "where org_id = $1 and event_id = $2", number, uuid.UUID(ids[i]))

    for settled in (False, True):
        await check_queries(rstubs, engine, org, principal, stored)
        await check_tallies(rstubs, org, stored)
        await check_costs(costs, org, stored)
        if not settled:
            worker = await burst()  # its sweep (run at startup) enqueues every dirty day
            assert worker.jobs_failed == 0
            assert await dirty_count(db, number) == 0
            active = sum(e.active for e in stored.values())
            assert await assert_rollups_exact(db, number) == active
            await assert_cubes_exact(db, number)
