"""Reservations: their TTL (on a moved clock, no sleeping), the sweep, settlement rules,
and who may release one."""

from __future__ import annotations

import datetime as dt
import decimal

import grpc
import pytest
from google.protobuf import duration_pb2

from metering.v1 import budgets_pb2, event_pb2, ingest_pb2
from server.budgets.reservations import Reservations
from server.core.principal import Principal
from tests.server.budgets.conftest import by_id

D = decimal.Decimal


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


async def _principal(db, team) -> Principal:
    org_id = await db.fetchval("select org_id from organizations where id = $1", team.org.organization_id)
    return Principal(org_id=org_id, organization_id=team.org.organization_id, role="admin")


async def test_a_hold_stops_counting_at_its_ttl(new_team, checkers, db):
    team = await new_team()
    await team.create(limit="1", mode=budgets_pb2.BUDGET_MODE_ENFORCE)
    clock = Clock(dt.datetime.now(dt.UTC).replace(microsecond=0))  # reservations expire on whole seconds
    checker = checkers(clock=clock)
    principal = await _principal(db, team)
    ttl = duration_pb2.Duration(seconds=90)
    taken = await checker.check(principal, budgets_pb2.CheckRequest(estimated_cost="1", reserve=True,
                                                                     reservation_ttl=ttl))
    assert taken.allowed and taken.expires_at == clock.now + dt.timedelta(seconds=90)
    clock.now += dt.timedelta(seconds=89)
    held = await checker.check(principal, budgets_pb2.CheckRequest(estimated_cost="0.01", reserve=True))
    assert not held.allowed and held.states[0].reserved == D(1)
    clock.now += dt.timedelta(seconds=1)  # expires_at reached: no longer held
    free = await checker.check(principal, budgets_pb2.CheckRequest(estimated_cost="1", reserve=True))
    assert free.allowed and free.states[0].reserved == D(1)  # the new reservation only


async def test_an_expired_reservation_is_not_settled_and_the_sweep_closes_it(new_team, server, checkers, db):
    team = await new_team()
    budget = await team.create(limit="10")
    principal = await _principal(db, team)
    past = checkers(clock=lambda: dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20))
    stale = await past.check(principal, budgets_pb2.CheckRequest(estimated_cost="3", reserve=True))
    live = await team.check(estimated_cost="2", reserve=True)
    assert by_id(await team.check())[budget.budget_id].reserved == "2"  # the expired one holds nothing

    await team.record(cost="0.5", reservation_id=stale.reservation_id)  # recorded, settles nothing
    await team.record(cost="0.25", reservation_id="res_unknown")
    state = by_id(await team.check())[budget.budget_id]
    assert (state.used, state.reserved) == ("2.75", "2")

    states = "select reservation_id, state from budget_reservations where org_id = $1 order by state"
    assert dict(await db.fetch(states, principal.org_id)) == {stale.reservation_id: "open", live.reservation_id: "open"}
    await Reservations(server.pool).sweep()
    assert dict(await db.fetch(states, principal.org_id)) == {stale.reservation_id: "expired",
                                                              live.reservation_id: "open"}
    assert await db.fetchval("select count(*) from budget_holds where org_id = $1 and reservation_id = $2",
                             principal.org_id, stale.reservation_id) == 0


async def test_a_duplicate_event_settles_nothing_twice(new_team, db):
    team = await new_team()
    budget = await team.create(limit="10")
    first = await team.check(estimated_cost="1", reserve=True)
    second = await team.check(estimated_cost="1", reserve=True)
    await team.record(cost="0.5", reservation_id=first.reservation_id, request_id="evt-1")
    # a retry of that event carrying another reservation: a duplicate, recorded once, settling nothing
    retry = event_pb2.UsageEvent(kind="completions", model="m", cost="0.5", reservation_id=second.reservation_id,
                                 request_id="evt-1")
    reply = await team.stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=retry), metadata=team.admin)
    assert reply.outcome == ingest_pb2.OUTCOME_DUPLICATE
    state = by_id(await team.check())[budget.budget_id]
    assert (state.used, state.reserved) == ("1.5", "1")


async def test_members_release_their_own_reservations_only(new_team):
    team = await new_team()
    await team.create(limit="10", mode=budgets_pb2.BUDGET_MODE_ENFORCE)
    mine = await team.check(auth=team.member, estimated_cost="1", reserve=True)
    theirs = await team.check(auth=team.other, estimated_cost="1", reserve=True)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await team.budgets.ReleaseReservation(budgets_pb2.ReleaseReservationRequest(
            reservation_id=theirs.reservation_id), metadata=team.member)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    released = await team.budgets.ReleaseReservation(budgets_pb2.ReleaseReservationRequest(
        reservation_id=mine.reservation_id), metadata=team.member)
    assert released.released
    by_admin = await team.budgets.ReleaseReservation(budgets_pb2.ReleaseReservationRequest(
        reservation_id=theirs.reservation_id), metadata=team.admin)
    assert by_admin.released


@pytest.mark.parametrize("seconds", [0.5, 86401])
async def test_a_ttl_outside_a_second_and_a_day_is_refused(new_team, seconds):
    team = await new_team()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await team.check(reserve=True, reservation_ttl=duration_pb2.Duration(
            seconds=int(seconds), nanos=int(seconds % 1 * 1e9)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(err.value.details()).startswith("reservation_ttl")
