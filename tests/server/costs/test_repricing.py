"""Repricing: preview what a new or corrected price version changes over a past range,
apply it as audited adjustments the rollups and cost queries pick up; the applied
delta equals the preview; caller-given costs are never touched."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import grpc
import pytest

from metering.v1 import admin_pb2, prices_pb2, records_pb2
from server.runtime.app import MeteringServer
from tests.server.costs.test_costs import get_costs, results, rollup_org
from tests.server.pricing.test_prices import (
    DAY,
    T0,
    ev,
    new_version,
    record,
    set_prices,
    stamp,
)

D = decimal.Decimal
END = T0 + 4 * DAY


def by_key(costs: prices_pb2.GetCostsResponse) -> dict[tuple, D]:
    """(day, project, line item, currency) -> amount."""
    out = {}
    for b in costs.buckets:
        for r in b.results:
            out[(b.start_time.ToDatetime(dt.UTC), r.project_id if r.HasField("project_id") else None, r.line_item,
                 r.amount.currency)] = D(r.amount.value)
    return out


async def preview(pstubs, org, **fields) -> prices_pb2.RepricingReport:
    return await pstubs.prices.PreviewRepricing(
        prices_pb2.PreviewRepricingRequest(start_time=stamp(T0), end_time=stamp(END), **fields), metadata=org.auth)


async def apply(pstubs, org, token: str = "", **fields) -> prices_pb2.RepricingReport:
    return await pstubs.prices.ApplyRepricing(prices_pb2.ApplyRepricingRequest(
        start_time=stamp(T0), end_time=stamp(END), preview_token=token, reason="list price correction", **fields),
        metadata=org.auth)


def deltas(report: prices_pb2.RepricingReport) -> dict[tuple, D]:
    return {(d.day.ToDatetime(dt.UTC), d.project_id if d.HasField("project_id") else None, d.line_item,
             d.currency): D(d.delta) for d in report.deltas}


async def test_preview_equals_the_applied_delta(stubs, pstubs, new_org, db, server: MeteringServer):
    org = await new_org()
    [v1] = [r.version for r in await set_prices(
        pstubs.prices, org.auth,
        new_version("m", {"input": "0.000002", "cached_input": "0.000001", "output": "0.00001"}))]
    ids = await record(
        stubs, org.auth,
        ev("a", "m", T0 + dt.timedelta(hours=1), project_id="web", input_tokens=1000, input_cached_tokens=200,
           output_tokens=50),
        ev("b", "m", T0 + DAY + dt.timedelta(hours=3), project_id="app", input_tokens=10, output_tokens=5),
        ev("c", "m", T0 + 2 * DAY, project_id="web", input_tokens=999, output_tokens=1, cost="0.42"),  # caller's
        ev("d", "m", T0 + 2 * DAY + dt.timedelta(hours=1), project_id="web", input_tokens=7, seconds=3),  # unpriced
        ev("e", "m", T0 + 5 * DAY, project_id="web", input_tokens=10),  # outside the range
    )
    await rollup_org(server, org.organization_id)  # the old costs are settled in the rollups
    before = by_key(await get_costs(pstubs, org.auth, T0, END, group_by=["project_id", "line_item"]))
    # A correction of v1 (same effective_from): output was mistyped, and seconds get a price.
    [v2] = [r.version for r in await set_prices(
        pstubs.prices, org.auth, new_version("m", {"output": "0.000012", "second": "0.001"}))]
    # Nothing moves by itself.
    assert by_key(await get_costs(pstubs, org.auth, T0, END, group_by=["project_id", "line_item"])) == before

    report = await preview(pstubs, org)
    assert (report.events, report.skipped, report.applied) == (3, 0, False)  # a, b and the unpriced d
    assert deltas(report) == {
        (T0, "web", "m, output", "usd"): D("0.0001"),  # 50 x 0.000002 more
        (T0, "web", "m, input", "usd"): D(0), (T0, "web", "m, cached input", "usd"): D(0),
        (T0 + DAY, "app", "m, output", "usd"): D("0.00001"),
        (T0 + DAY, "app", "m, input", "usd"): D(0),
        (T0 + 2 * DAY, "web", "m, input", "usd"): D("0.000014"),  # d, priced now: 7 x 0.000002
        (T0 + 2 * DAY, "web", "m, seconds", "usd"): D("0.003"),
    }
    [total] = report.totals
    assert (total.currency, D(total.delta)) == ("usd", D("0.000124") + D("0.003"))

    applied = await apply(pstubs, org, report.preview_token)
    assert applied.applied and deltas(applied) == deltas(report) and applied.preview_token == report.preview_token
    assert list(applied.totals) == list(report.totals)

    # The cost queries move by exactly the previewed delta, from raw events and again from rollups.
    after = by_key(await get_costs(pstubs, org.auth, T0, END, group_by=["project_id", "line_item"]))
    moved = {k: after.get(k, D(0)) - before.get(k, D(0)) for k in {*before, *after}}
    assert {k: v for k, v in moved.items() if v} == {k: v for k, v in deltas(report).items() if v}
    await rollup_org(server, org.organization_id)
    assert by_key(await get_costs(pstubs, org.auth, T0, END, group_by=["project_id", "line_item"])) == after

    got = {}
    for eid in ids:
        e = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=eid), metadata=org.auth)
        got[e.request_id] = e
    assert (got["a"].cost, got["a"].price_version) == ("0.0024", v2.version)  # 0.0016 + 0.0002 + 0.0006
    assert (got["c"].cost, got["c"].price_version, got["c"].updated_at) == ("0.42", "", got["c"].received_at)
    assert (got["d"].cost, got["d"].unpriced, got["d"].price_version) == ("0.003014", False, v2.version)
    assert (got["e"].price_version, got["e"].cost) == (v1.version, "0.00002")  # outside the range
    audit = await db.fetch(
        "select event_id, actor, action, reason, before, after from event_adjustments where org_id = "
        "(select org_id from organizations where id = $1) order by adjustment_id", org.organization_id)
    assert {str(r["event_id"]) for r in audit} == {got[x].event_id for x in "abd"}
    row = next(r for r in audit if str(r["event_id"]) == got["a"].event_id)
    assert (row["action"], row["reason"]) == ("reprice", "list price correction")
    assert json.loads(row["before"])["price_version"] == v1.version
    assert json.loads(row["after"]) == {"price_version": v2.version, "unpriced": False, "cost": "0.0024",
                                        "input_cost": "0.0018", "output_cost": "0.0006"}

    # Applied once, there is nothing left to move.
    again = await preview(pstubs, org)
    assert (again.events, list(again.deltas)) == (0, [])


async def test_apply_refuses_an_outdated_preview(stubs, pstubs, new_org):
    org = await new_org()
    await set_prices(pstubs.prices, org.auth, new_version("m", {"input": "0.001"}))
    [eid] = await record(stubs, org.auth, ev("a", "m", T0 + DAY, input_tokens=10))
    await set_prices(pstubs.prices, org.auth, new_version("m", {"input": "0.002"}))
    report = await preview(pstubs, org)
    assert report.events == 1
    await record(stubs, org.auth, ev("late", "nope", T0 + DAY, input_tokens=10))  # unpriced: no change
    await set_prices(pstubs.prices, org.auth, new_version("nope", {"input": "0.5"}))  # ... now it would be
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await apply(pstubs, org, report.preview_token)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "preview again" in (err.value.details() or "")
    e = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=eid), metadata=org.auth)
    assert e.cost == "0.01"  # nothing was applied
    fresh = await preview(pstubs, org)
    done = await apply(pstubs, org, fresh.preview_token)
    assert done.events == 2 and deltas(done) == deltas(fresh)


async def test_filters_and_skips(stubs, pstubs, new_org):
    org = await new_org()
    [a1, b1] = [r.version for r in await set_prices(
        pstubs.prices, org.auth, new_version("a", {"input": "0.001", "output": "0.001"}),
        new_version("b", {"input": "0.001"}))]
    await record(stubs, org.auth, ev("a1", "a", T0, input_tokens=1, output_tokens=1),
                 ev("b1", "b", T0, input_tokens=1))
    # a's new version drops its output price: a1 cannot be priced by it and keeps its price.
    [a2, b2] = [r.version for r in await set_prices(
        pstubs.prices, org.auth, new_version("a", {"input": "0.002"}, replace=True),
        new_version("b", {"input": "0.003"}))]
    report = await preview(pstubs, org)
    assert (report.events, report.skipped) == (1, 1)
    assert deltas(report) == {(T0, None, "b, input", "usd"): D("0.002")}
    assert (await preview(pstubs, org, models=["a"])).events == 0
    assert (await preview(pstubs, org, versions=[a2.version])).events == 0
    assert (await preview(pstubs, org, versions=[b2.version])).events == 1
    assert (await preview(pstubs, org, providers=["elsewhere"])).events == 0
    applied = await apply(pstubs, org, models=["b"])
    assert applied.events == 1
    costs = await get_costs(pstubs, org.auth, T0, T0 + DAY, group_by=["line_item", "price_version"])
    assert sorted(results(costs.buckets[0])) == sorted([
        ("a, input", a1.version, "0.001", "usd", "1", "tokens"),
        ("a, output", a1.version, "0.001", "usd", "1", "tokens"),
        ("b, input", b2.version, "0.003", "usd", "1", "tokens")])


async def test_only_admins_reprice(stubs, pstubs, new_org):
    org = await new_org()
    project = await stubs.admin.CreateProject(admin_pb2.CreateProjectRequest(name="p1"), metadata=org.auth)
    key = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(project_id=project.project_id),
                                         metadata=org.auth)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pstubs.prices.PreviewRepricing(prices_pb2.PreviewRepricingRequest(start_time=stamp(T0)),
                                             metadata=(("authorization", f"Bearer {key.key}"),))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pstubs.prices.PreviewRepricing(prices_pb2.PreviewRepricingRequest(), metadata=org.auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "start_time" in (err.value.details() or "")


async def test_caller_given_costs_are_never_overwritten(stubs, pstubs, new_org, db):
    org = await new_org()
    await set_prices(pstubs.prices, org.auth, new_version("m", {"input": "0.001", "output": "0.002"}))
    given = [
        ev("full", "m", T0, input_tokens=10, output_tokens=10, input_cost="0.5", output_cost="0.25", cost="1"),
        ev("total-only", "m", T0, input_tokens=10, cost="0.000000000000000001"),
        ev("input-only", "m", T0, input_tokens=10, input_cost="0"),
        ev("zero", "m", T0, input_tokens=10, cost="0"),
    ]
    ids = await record(stubs, org.auth, *given)
    await set_prices(pstubs.prices, org.auth, new_version("m", {"input": "0.009"}))  # a correction
    report = await apply(pstubs, org)
    assert report.events == 0
    stored = {}
    for eid in ids:
        e = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=eid), metadata=org.auth)
        stored[e.request_id] = (e.input_cost if e.HasField("input_cost") else None,
                                e.output_cost if e.HasField("output_cost") else None, e.cost, e.price_version,
                                e.unpriced)
    assert stored == {
        "full": ("0.5", "0.25", "1", "", False), "total-only": (None, None, "0.000000000000000001", "", False),
        "input-only": ("0", None, "0", "", False), "zero": (None, None, "0", "", False),
    }
    assert await db.fetchval(
        "select count(*) from event_adjustments where event_id = any($1::uuid[])", ids) == 0
    costs = await get_costs(pstubs, org.auth, T0, T0 + DAY, group_by=["line_item"])
    assert results(costs.buckets[0]) == [
        ("m, input", "0.5", "usd", "40", "tokens"),  # quantity: the input tokens of the caller-costed usage
        ("m, other", "0.250000000000000001", "usd", None, ""),
        ("m, output", "0.25", "usd", "10", "tokens"),
    ]
