"""A budget's `used` is derived: QueryUsage for the same scope and period, plus the open
reservations. Voids, adjustments and repricing change it at once; a property test holds
it over random events, reservations, settlements, voids and adjustments in zones around
DST changes, at a fixed clock (a Checker on the real pool and engine)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import os
from typing import Any

import grpc
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering.v1 import budgets_pb2, event_pb2, prices_pb2, prices_pb2_grpc, query_pb2, query_pb2_grpc, records_pb2
from server.budgets.periods import current_period
from server.core.principal import Principal
from tests.server.budgets.conftest import by_id

EXAMPLES = int(os.environ.get("METERING_HYPOTHESIS_EXAMPLES", "15"))
D = decimal.Decimal
UTC = dt.UTC
ANCHORS = (
    (dt.datetime(2024, 11, 3, 12, tzinfo=UTC), "America/New_York"),  # a 25-hour day
    (dt.datetime(2024, 3, 10, 12, tzinfo=UTC), "America/New_York"),  # a 23-hour day
    (dt.datetime(2024, 4, 6, 20, tzinfo=UTC), "Australia/Lord_Howe"),  # 24.5 hours
    (dt.datetime(2024, 5, 1, 18, 20, tzinfo=UTC), "Asia/Kathmandu"),  # five minutes into the day
)
METRICS = ("cost", "input_tokens", "counters.inference")


def stamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


async def _query(channel: grpc.aio.Channel, auth: Any, metric: str, filters: dict[str, list[str]],
                 start: dt.datetime, end: dt.datetime, zone: str) -> D:
    """What QueryUsage says of the metric for these filters and range."""
    reply = await query_pb2_grpc.QueryServiceStub(channel).QueryUsage(query_pb2.QueryUsageRequest(
        start_time=stamp(start), end_time=stamp(end), width="all", time_zone=zone,
        filters=[query_pb2.Filter(field=f, values=v) for f, v in filters.items()]), metadata=auth)
    total = D(0)
    for bucket in reply.buckets:
        for group in bucket.groups:
            m = group.metrics
            if metric == "cost":
                total += D(m.cost or "0")
            elif metric.startswith("counters."):
                total += m.counters.get(metric.removeprefix("counters."), 0)
            else:
                total += getattr(m, metric)
    return total


async def test_a_void_an_adjustment_and_a_repricing_change_used_at_once(new_team, stubs, channel):
    team = await new_team()
    budget = await team.create(limit="100", scope={"model": "priced-later"})
    records = stubs.records
    first = await team.record(model="priced-later", cost="4")
    second = await team.record(model="priced-later", cost="6")
    assert by_id(await team.check(model="priced-later"))[budget.budget_id].used == "10"

    await records.VoidEvent(records_pb2.VoidEventRequest(event_id=first, reason="t"), metadata=team.admin)
    assert by_id(await team.check(model="priced-later"))[budget.budget_id].used == "6"
    await records.UpdateEvent(records_pb2.UpdateEventRequest(
        event=event_pb2.UsageEvent(event_id=second, cost="2.5"), update_mask=field_mask_pb2.FieldMask(paths=["cost"]),
        reason="t"), metadata=team.admin)
    assert by_id(await team.check(model="priced-later"))[budget.budget_id].used == "2.5"

    # unpriced usage, then a price for it: repricing costs it, and used follows at once
    await team.record(model="priced-later", input_tokens=1000)
    before = by_id(await team.check(model="priced-later"))[budget.budget_id]
    assert (before.used, before.unpriced_events) == ("2.5", 1)
    prices = prices_pb2_grpc.PriceServiceStub(channel)
    await prices.CreatePriceVersions(prices_pb2.CreatePriceVersionsRequest(versions=[prices_pb2.NewPriceVersion(
        model="priced-later", effective_from=stamp(dt.datetime(2020, 1, 1, tzinfo=UTC)),
        prices=[prices_pb2.Price(usage_type="input", unit_price="0.001")])]), metadata=team.admin)
    await prices.ApplyRepricing(prices_pb2.ApplyRepricingRequest(
        start_time=stamp(dt.datetime(2020, 1, 1, tzinfo=UTC)), models=["priced-later"], reason="t"),
        metadata=team.admin)
    after = by_id(await team.check(model="priced-later"))[budget.budget_id]
    assert (after.used, after.unpriced_events) == ("3.5", 0)


async def test_a_period_edge_end_to_end_in_kathmandu(new_team, channel):
    """The current Kathmandu day over gRPC: the event a second before its local midnight is
    yesterday's, the one at midnight today's; used equals QueryUsage over the period."""
    team = await new_team()
    budget = await team.create(period=budgets_pb2.BUDGET_PERIOD_DAY, time_zone="Asia/Kathmandu",
                               metric="input_tokens")
    period = current_period("day", dt.datetime.now(UTC), "Asia/Kathmandu")
    await team.record(input_tokens=7, timestamp=stamp(period.start - dt.timedelta(seconds=1)))
    await team.record(input_tokens=11, timestamp=stamp(period.start))
    state = by_id(await team.check())[budget.budget_id]
    assert state.used == "11" and state.period_start == stamp(period.start) and state.resets_at == stamp(period.end)
    assert await _query(channel, team.admin, "input_tokens", {}, period.start, period.end, "UTC") == 11


@dataclasses.dataclass
class Plan:
    anchor: dt.datetime
    zone: str
    budgets: list[dict[str, Any]]
    events: list[dict[str, Any]]
    reservations: list[dict[str, Any]]  # each: its usage scope, estimate, and whether an event settles it
    voids: list[int]
    adjustments: list[tuple[int, str, int]]  # (event, new cost, new input tokens)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    anchor, zone = draw(st.sampled_from(ANCHORS))
    models, users = ("m1", "m2"), ("u1", "u2")
    budgets = [{
        "metric": draw(st.sampled_from(METRICS)),
        "period": draw(st.sampled_from(("day", "week", "month", "rolling"))),
        "week_start": draw(st.integers(1, 7)),
        "scope": draw(st.fixed_dictionaries({}, optional={
            "model": st.lists(st.sampled_from(models), min_size=1, max_size=2, unique=True),
            "user_id": st.lists(st.sampled_from(users), min_size=1, max_size=2, unique=True)})),
    } for _ in range(draw(st.integers(1, 3)))]
    events = [{
        "model": draw(st.sampled_from(models)), "user_id": draw(st.sampled_from(users)),
        "offset": draw(st.integers(-3 * 86400, 86400 // 2)),
        "cost": draw(st.one_of(st.none(), st.decimals(0, 100, places=4).map(str))),
        "input_tokens": draw(st.integers(0, 10**6)), "inference": draw(st.integers(0, 50)),
    } for _ in range(draw(st.integers(0, 12)))]
    reservations = [{
        "model": draw(st.sampled_from(models)), "user_id": draw(st.sampled_from(users)),
        "cost": str(draw(st.decimals(0, 10, places=2))), "input_tokens": draw(st.integers(0, 1000)),
        "inference": draw(st.integers(0, 5)), "settle": draw(st.booleans()),
    } for _ in range(draw(st.integers(0, 4)))]
    n = len(events)
    voids = draw(st.lists(st.integers(0, n - 1), unique=True, max_size=2)) if n else []
    adjustments = draw(st.lists(st.tuples(st.integers(0, n - 1), st.decimals(0, 50, places=3).map(str),
                                          st.integers(0, 1000)), max_size=2)) if n else []
    return Plan(anchor, zone, budgets, events, reservations, voids, adjustments)


def _covers(scope: dict[str, list[str]], usage: dict[str, str]) -> bool:
    return all(usage[field] in values for field, values in scope.items())


def _estimate(reservation: dict[str, Any], metric: str) -> D:
    return D(reservation["cost"]) if metric == "cost" else D(
        reservation["input_tokens"] if metric == "input_tokens" else reservation["inference"])


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(plan=plans())
async def test_used_is_query_usage_plus_open_reservations(plan, new_team, checkers, db, channel, stubs):
    team = await new_team()
    org_id = await db.fetchval("select org_id from organizations where id = $1", team.org.organization_id)
    principal = Principal(org_id=org_id, organization_id=team.org.organization_id, role="admin")
    # Reads at the anchor's time; reservations are taken (and settled) at the real time, since
    # settlement judges expiry by the database's clock.
    checker = checkers(clock=lambda: plan.anchor)
    reserver = checkers()
    made = []
    for b in plan.budgets:
        rolling = duration_pb2.Duration(seconds=36 * 3600) if b["period"] == "rolling" else None
        period = budgets_pb2.BudgetPeriod.Value(f"BUDGET_PERIOD_{b['period'].upper()}")
        made.append(await team.create(metric=b["metric"], period=period, time_zone=plan.zone,
                                      week_start=b["week_start"], rolling_window=rolling, scope=b["scope"],
                                      limit="1000000000"))
    event_ids = []
    for e in plan.events:
        fields = {"model": e["model"], "user_id": e["user_id"], "input_tokens": e["input_tokens"],
                  "counters": {"inference": e["inference"]},
                  "timestamp": stamp(plan.anchor + dt.timedelta(seconds=e["offset"]))}
        event_ids.append(await team.record(**fields, **({"cost": e["cost"]} if e["cost"] is not None else {})))
    open_ = []
    for r in plan.reservations:
        verdict = await reserver.check(principal, budgets_pb2.CheckRequest(
            model=r["model"], user_id=r["user_id"], estimated_cost=r["cost"], reserve=True,
            estimated_counters={"input_tokens": r["input_tokens"], "counters.inference": r["inference"]}))
        assert verdict.allowed and verdict.reservation_id
        if r["settle"]:
            await team.record(model=r["model"], user_id=r["user_id"], cost=r["cost"], input_tokens=r["input_tokens"],
                              reservation_id=verdict.reservation_id, timestamp=stamp(plan.anchor))
        else:
            open_.append(r)
    for i in plan.voids:
        await stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=event_ids[i], reason="t"),
                                      metadata=team.admin)
    for i, cost, tokens in plan.adjustments:
        if i not in plan.voids:
            await stubs.records.UpdateEvent(records_pb2.UpdateEventRequest(
                event=event_pb2.UsageEvent(event_id=event_ids[i], cost=cost, input_tokens=tokens),
                update_mask=field_mask_pb2.FieldMask(paths=["cost", "input_tokens"]), reason="t"),
                metadata=team.admin)

    budgets = [b for b in (await checker.books.load(org_id)).budgets]
    states = {s.budget.budget_id: s for s in await checker.states(principal, budgets)}
    for b, msg in zip(plan.budgets, made, strict=True):
        s = states[msg.budget_id]
        assert s.period is not None
        filters = {**b["scope"], **({"currency": ["usd"]} if b["metric"] == "cost" else {})}
        usage = await _query(channel, team.admin, b["metric"], filters, s.period.start, s.period.end, plan.zone)
        held = sum((_estimate(r, b["metric"]) for r in open_ if _covers(b["scope"], r)), D(0))
        assert (s.used, s.reserved) == (usage + held, held), (b, s.period)
