"""Check over gRPC: coverage, limits, reservations and their settlement, idempotency,
policies for unpriced usage."""

from __future__ import annotations

import grpc
import pytest

from metering.v1 import budgets_pb2
from tests.server.budgets.conftest import by_id


async def test_a_check_reports_every_covering_budget(new_team):
    team = await new_team()
    org_wide = await team.create(name="all", limit="10")
    gpt = await team.create(name="gpt", limit="5", scope={"model": "gpt-4o"})
    await team.create(name="other model", limit="5", scope={"model": "claude"})
    await team.record(model="gpt-4o", cost="1.25")
    await team.record(model="claude", cost="2")

    reply = await team.check(model="gpt-4o", estimated_cost="0.02")
    assert reply.allowed
    states = by_id(reply)
    assert set(states) == {org_wide.budget_id, gpt.budget_id}
    assert (states[org_wide.budget_id].used, states[org_wide.budget_id].remaining) == ("3.25", "6.75")
    assert (states[gpt.budget_id].used, states[gpt.budget_id].limit) == ("1.25", "5")
    assert states[gpt.budget_id].HasField("resets_at") and not states[gpt.budget_id].reason


async def test_an_enforced_limit_denies_and_an_alert_only_reports(new_team):
    team = await new_team()
    enforced = await team.create(limit="2", mode=budgets_pb2.BUDGET_MODE_ENFORCE, scope={"model": "a"})
    alert = await team.create(limit="2", scope={"model": "a"})
    await team.record(model="a", cost="1.5")

    fits = await team.check(model="a", estimated_cost="0.5")
    assert fits.allowed and all(s.allowed for s in fits.budgets)
    over = await team.check(model="a", estimated_cost="0.51")
    assert not over.allowed
    states = by_id(over)
    assert (states[enforced.budget_id].allowed, states[enforced.budget_id].reason) == (False, "LIMIT_EXCEEDED")
    assert (states[alert.budget_id].allowed, states[alert.budget_id].reason) == (True, "LIMIT_EXCEEDED")

    await team.record(model="a", cost="0.5")  # the limit reached: nothing more, not even an unestimated call
    reached = await team.check(model="a")
    assert not reached.allowed and by_id(reached)[enforced.budget_id].remaining == "0"


async def test_a_reservation_holds_until_its_event_settles_it(new_team):
    team = await new_team()
    budget = await team.create(limit="1", mode=budgets_pb2.BUDGET_MODE_ENFORCE)
    first = await team.check(estimated_cost="0.6", reserve=True)
    assert first.allowed and first.reservation_id.startswith("res_")
    assert by_id(first)[budget.budget_id].reserved == "0.6"
    second = await team.check(estimated_cost="0.6", reserve=True)
    assert not second.allowed and not second.reservation_id

    await team.record(cost="0.1", reservation_id=first.reservation_id)
    after = by_id(await team.check())[budget.budget_id]
    assert (after.used, after.reserved) == ("0.1", "0")
    third = await team.check(estimated_cost="0.6", reserve=True)
    assert third.allowed


async def test_a_retried_check_returns_the_same_reservation(new_team):
    team = await new_team()
    budget = await team.create(limit="1", mode=budgets_pb2.BUDGET_MODE_ENFORCE)
    first = await team.check(estimated_cost="0.7", reserve=True, request_id="r-1")
    again = await team.check(estimated_cost="0.7", reserve=True, request_id="r-1")
    assert again.allowed and again.reservation_id == first.reservation_id
    assert by_id(again)[budget.budget_id].reserved == "0.7"  # held once


async def test_release_gives_the_estimate_back(new_team):
    team = await new_team()
    budget = await team.create(limit="1", mode=budgets_pb2.BUDGET_MODE_ENFORCE)
    taken = await team.check(estimated_cost="1", reserve=True)
    released = await team.budgets.ReleaseReservation(
        budgets_pb2.ReleaseReservationRequest(reservation_id=taken.reservation_id), metadata=team.admin)
    assert released.released
    again = await team.budgets.ReleaseReservation(
        budgets_pb2.ReleaseReservationRequest(reservation_id=taken.reservation_id), metadata=team.admin)
    assert not again.released
    assert by_id(await team.check())[budget.budget_id].used == "0"


async def test_unpriced_usage_is_reported_and_deny_denies(new_team):
    team = await new_team()
    allow = await team.create(limit="100", mode=budgets_pb2.BUDGET_MODE_ENFORCE)
    deny = await team.create(limit="100", mode=budgets_pb2.BUDGET_MODE_ENFORCE,
                             on_unpriced=budgets_pb2.UNPRICED_POLICY_DENY)
    priced = await team.check(estimated_cost="1")
    assert priced.allowed
    await team.record(model="no-price-for-this-" + deny.budget_id, input_tokens=1000)  # no cost, no price
    reply = await team.check(estimated_cost="1")
    states = by_id(reply)
    assert states[allow.budget_id].unpriced_events == states[deny.budget_id].unpriced_events == 1
    assert states[allow.budget_id].allowed and states[allow.budget_id].used == "0"
    assert (states[deny.budget_id].allowed, states[deny.budget_id].reason) == (False, "UNPRICED_USAGE")
    assert not reply.allowed


async def test_counter_budgets_count_their_counter(new_team):
    team = await new_team()
    tokens = await team.create(metric="input_tokens", limit="1000", mode=budgets_pb2.BUDGET_MODE_ENFORCE)
    extra = await team.create(metric="counters.inference", limit="10")
    await team.record(input_tokens=600, counters={"inference": 4})
    reply = await team.check(estimated_counters={"input_tokens": 500, "counters.inference": 1})
    states = by_id(reply)
    assert not reply.allowed and states[tokens.budget_id].used == "600"
    assert states[extra.budget_id].used == "4" and states[extra.budget_id].allowed


@pytest.mark.parametrize(("field", "value"), [
    ("estimated_cost", "-1"), ("estimated_cost", "abc"), ("kind", "nonsense"), ("currency", "dollars"),
])
async def test_bad_checks_name_the_field(new_team, field, value):
    team = await new_team()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await team.check(**{field: value})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and str(err.value.details()).startswith(field)

