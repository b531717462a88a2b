"""Spend control in the SDK against the real server: check(), reserve() whose recorded event settles
it (or whose block releases it), log_request(..., reservation_id=...), and the async twins."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
from typing import Any

import pytest

from metering.v1 import budgets_pb2, budgets_pb2_grpc, query_pb2
from metering_client import (
    AsyncMeteringClient,
    AsyncUsageTracker,
    BudgetExceededError,
    BudgetStatus,
    CheckResult,
    MeteringClient,
    Outcome,
    UsageTracker,
)
from metering_client.budgets import check_request

D = decimal.Decimal
MODEL = "gpt-budget"


async def cost_budget(channel, org, limit: str, *, mode=budgets_pb2.BUDGET_MODE_ENFORCE, **scope: str):
    """A monthly cost budget of the organization, scoped by `scope` (field -> one value)."""
    stub = budgets_pb2_grpc.BudgetServiceStub(channel)
    return await stub.CreateBudget(budgets_pb2.CreateBudgetRequest(budget=budgets_pb2.Budget(
        name=f"limit {limit}", limit=limit, mode=mode, period=budgets_pb2.BUDGET_PERIOD_MONTH,
        scope=[query_pb2.Filter(field=field, values=[value]) for field, value in scope.items()],
    )), metadata=org.auth)


async def settled_by(db, reservation_id: str) -> tuple[str, str]:
    """(state, the settling event's id) of a reservation, as the server stored it. The server keeps the
    settling event on the reservation; the stored event itself does not carry reservation_id."""
    row = await db.fetchrow("select state, event_id from budget_reservations where reservation_id = $1",
                            reservation_id)
    assert row is not None
    return row["state"], str(row["event_id"])


def used(result: CheckResult) -> D | None:
    [status] = result.budgets
    return status.used


def test_the_request_is_checked_by_name_and_type():
    request = check_request({"model": "m", "labels": {"task": "t"}, "batch": True}, default_client_id="app",
                            estimated_cost=0.1, estimated_counters={"input_tokens": 9}, reserve=True,
                            ttl=dt.timedelta(minutes=2), request_id="r1")
    assert (request.model, dict(request.labels), request.batch, request.client_id) == ("m", {"task": "t"}, True, "app")
    assert (request.estimated_cost, dict(request.estimated_counters)) == ("0.1", {"input_tokens": 9})
    assert (request.reserve, request.reservation_ttl.seconds, request.request_id) == (True, 120, "r1")
    assert check_request({"client_id": "mine"}, default_client_id="app", estimated_cost=None, estimated_counters=None,
                         reserve=False, ttl=None, request_id=None).client_id == "mine"
    cases: list[tuple[dict[str, object], Any]] = [
        ({"modle": "m"}, None), ({"batch": "yes"}, None), ({"model": 4}, None), ({"labels": {"a": 1}}, None),
        ({}, {"input_tokens": 1.5}),
    ]
    for scope, counters in cases:
        with pytest.raises(TypeError):
            check_request(scope, default_client_id=None, estimated_cost=None, estimated_counters=counters,
                          reserve=False, ttl=None, request_id=None)


async def test_check_reports_every_covering_budget(target, new_org, channel):
    org = await new_org()
    budget = await cost_budget(channel, org, "1.00", model=MODEL)
    await cost_budget(channel, org, "5", model="another")
    await cost_budget(channel, org, "2", mode=budgets_pb2.BUDGET_MODE_ALERT, client_id="app-1")

    def run() -> tuple[CheckResult, CheckResult, CheckResult, CheckResult]:
        with MeteringClient(target, org.admin_key, client_id="app-1") as client:
            within = client.check(model=MODEL, estimated_cost="0.5")
            above = client.check(model=MODEL, estimated_cost=decimal.Decimal("1.01"))
            other_client = client.check(model=MODEL, client_id="app-2", estimated_cost="0.5")
            uncovered = client.check(model="nothing", client_id="app-2", estimated_cost="1000")
        return within, above, other_client, uncovered

    within, above, other_client, uncovered = await asyncio.to_thread(run)
    assert within.allowed and within.reservation_id is None and not within.degraded
    by_name = {b.name: b for b in within.budgets}
    assert set(by_name) == {"limit 1.00", "limit 2"}  # client_id defaulted to the configured one
    status = by_name["limit 1.00"]
    assert isinstance(status, BudgetStatus) and status.budget_id == budget.budget_id
    assert (status.limit, status.used, status.reserved, status.remaining) == (D(1), D(0), D(0), D(1))
    assert (status.metric, status.currency, status.mode, status.allowed, status.reason) == (
        "cost", "usd", "enforce", True, "")
    now = dt.datetime.now(dt.UTC)
    assert status.period_start is not None and status.resets_at is not None
    assert status.period_start <= now < status.resets_at and status.period_start.day == 1
    assert by_name["limit 2"].mode == "alert"
    assert not above.allowed and [b.name for b in above.denied_by] == ["limit 1.00"]
    assert above.denied_by[0].reason == "LIMIT_EXCEEDED"
    assert [b.name for b in other_client.budgets] == ["limit 1.00"]
    assert uncovered.allowed and uncovered.budgets == ()


async def test_a_recorded_event_settles_its_reservation(target, new_org, channel, db):
    org = await new_org()
    await cost_budget(channel, org, "1", model=MODEL)

    def run():
        with MeteringClient(target, org.admin_key) as client:
            with client.reserve(model=MODEL, kind="completions", estimated_cost="0.6") as reservation:
                held = client.check(model=MODEL)
                crowded = client.check(model=MODEL, estimated_cost="0.6")
                receipt = reservation.record(request_id="settling", input_tokens=7, cost="0.25")
            outcome = receipt.result(timeout=10).outcome
            client.flush()
            after = client.check(model=MODEL)
            stored = client.get_event(request_id="settling")
        return reservation, held, crowded, outcome, after, stored

    reservation, held, crowded, outcome, after, stored = await asyncio.to_thread(run)
    assert reservation.reservation_id and reservation.expires_at is not None
    assert reservation.settled and not reservation.released
    assert (held.budgets[0].used, held.budgets[0].reserved) == (D("0.6"), D("0.6"))
    assert not crowded.allowed  # 0.6 held + 0.6 more > 1
    assert outcome is Outcome.RECORDED
    # The hold is gone; the event's own cost counts instead.
    assert (after.budgets[0].used, after.budgets[0].reserved) == (D("0.25"), D(0))
    assert (stored.model, stored.kind, stored.input_tokens) == (MODEL, "completions", 7)  # the scope as defaults
    assert await settled_by(db, reservation.reservation_id) == ("settled", stored.event_id)


async def test_leaving_the_block_without_recording_releases(target, new_org, channel):
    org = await new_org()
    await cost_budget(channel, org, "1", model=MODEL)

    def run():
        with MeteringClient(target, org.admin_key) as client:
            with client.reserve(model=MODEL, estimated_cost="0.9", ttl=600) as quiet:
                pass
            with pytest.raises(ZeroDivisionError), client.reserve(model=MODEL, estimated_cost="0.9") as failed:
                1 / 0  # noqa: B018 - the model call failed
            with client.reserve(model=MODEL, estimated_cost="0.9") as explicit:
                first, again = explicit.release(), explicit.release()
            after = client.check(model=MODEL)
            with pytest.raises(BudgetExceededError) as refused:
                with client.reserve(model=MODEL, estimated_cost="1.01"):
                    raise AssertionError("the block must not run")
            direct = client.check(model=MODEL, estimated_cost="0.5", reserve=True, request_id="chk-1")
            retried = client.check(model=MODEL, estimated_cost="0.5", reserve=True, request_id="chk-1")
            assert direct.reservation_id is not None
            released = client.release_reservation(direct.reservation_id)
            released_again = client.release_reservation(direct.reservation_id)
        return quiet, failed, (first, again), after, refused.value, direct, retried, (released, released_again)

    quiet, failed, explicit, after, refused, direct, retried, released = await asyncio.to_thread(run)
    assert quiet.released and failed.released and not quiet.settled
    assert explicit == (True, False)
    assert (after.budgets[0].used, after.budgets[0].reserved) == (D(0), D(0))
    assert not refused.result.allowed and refused.result.denied_by[0].reason == "LIMIT_EXCEEDED"
    assert "limit 1" in str(refused)
    assert retried.reservation_id == direct.reservation_id  # the same request_id: the same hold
    assert released == (True, False)


async def test_log_request_settles_a_reservation(target, new_org, channel, db):
    org = await new_org()
    await cost_budget(channel, org, "1", model="gpt-4")

    def run():
        with MeteringClient(target, org.admin_key) as client:
            tracker = UsageTracker(client=client)
            with client.reserve(model="gpt-4", estimated_cost="0.5") as reservation:
                tracker.log_request("seed-1", "gpt-4", "openai", "my_app", "user123", "{}", "", "{}", "{}", "",
                                    10, 20, 0.1, 0.2, "success", reservation_id=reservation.reservation_id)
            tracker.flush()
            after = client.check(model="gpt-4")
            stored = client.get_event(request_id="seed-1")
        return reservation, after, stored

    reservation, after, stored = await asyncio.to_thread(run)
    assert reservation.settled and not reservation.released  # recorded through this client: not released
    assert (after.budgets[0].used, after.budgets[0].reserved) == (D("0.3"), D(0))
    assert await settled_by(db, reservation.reservation_id) == ("settled", stored.event_id)


async def test_async_twins(target, new_org, channel, db):
    org = await new_org()
    await cost_budget(channel, org, "1", model=MODEL)
    async with AsyncMeteringClient(target, org.admin_key) as client:
        first = await client.check(model=MODEL, estimated_cost="0.4")
        async with client.reserve(model=MODEL, kind="embeddings", estimated_cost="0.4") as settled:
            receipt = await settled.record(input_tokens=1, cost="0.1")
        outcome = (await receipt).outcome  # delivered: the hold is gone before the next reservation
        async with client.reserve(model=MODEL, estimated_cost="0.4") as dropped:
            held = await client.check(model=MODEL)
        tracker = AsyncUsageTracker(client=client)
        async with client.reserve(model=MODEL, estimated_cost="0.4") as logged:
            await tracker.log_request("async-1", MODEL, "openai", "app", "u", "{}", "", "{}", "{}", "", 1, 1,
                                      0.05, 0.05, "success", reservation_id=logged.reservation_id)
        await client.flush()
        after = await client.check(model=MODEL)
        with pytest.raises(BudgetExceededError):
            async with client.reserve(model=MODEL, estimated_cost="2"):
                raise AssertionError("the block must not run")
    assert first.allowed and used(first) == D(0)
    assert outcome is Outcome.RECORDED and settled.settled
    assert (await settled_by(db, settled.reservation_id))[0] == "settled"
    assert (await settled_by(db, dropped.reservation_id))[0] == "released"
    assert dropped.released and held.budgets[0].reserved == D("0.4")
    assert logged.settled and not logged.released
    assert (after.budgets[0].used, after.budgets[0].reserved) == (D("0.2"), D(0))
