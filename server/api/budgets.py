"""BudgetService: budgets (organization admins write; a scoped caller reads the budgets
that lie inside its own scope), Check and the release of reservations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from google.protobuf import duration_pb2

from metering import page_token
from metering.v1 import budgets_pb2, budgets_pb2_grpc, query_pb2
from server.api.context import Context, Core, caller, in_organization
from server.budgets.budget import Budget
from server.budgets.scope import visible_to
from server.budgets.service import Budgets
from server.budgets.state import State
from server.budgets.validation import (
    MODE_FROM_PROTO,
    PERIOD_FROM_PROTO,
    UNAVAILABLE_FROM_PROTO,
    UNPRICED_FROM_PROTO,
    budget_from_proto,
    merge,
)
from server.core import convert
from server.core.errors import InvalidArgument, NotFound, PermissionDenied
from server.core.principal import Principal

E = TypeVar("E", bound=int)


def _reverse(mapping: Mapping[E, str]) -> dict[str, E]:
    return {name: number for number, name in sorted(mapping.items())}  # the named value over UNSPECIFIED


PERIOD_TO_PROTO = _reverse(PERIOD_FROM_PROTO)
MODE_TO_PROTO = _reverse(MODE_FROM_PROTO)
UNPRICED_TO_PROTO = _reverse(UNPRICED_FROM_PROTO)
UNAVAILABLE_TO_PROTO = _reverse(UNAVAILABLE_FROM_PROTO)


def budget_pb(b: Budget, organization_id: str, current: State | None = None) -> budgets_pb2.Budget:
    msg = budgets_pb2.Budget(
        budget_id=b.budget_id, organization_id=organization_id, name=b.name,
        scope=[query_pb2.Filter(field=field, values=values) for field, values in b.scope],
        metric=b.metric, currency=b.currency, limit=convert.money(b.limit), period=PERIOD_TO_PROTO[b.period],
        time_zone=b.time_zone, week_start=b.week_start, mode=MODE_TO_PROTO[b.mode],
        thresholds=[convert.money(t) for t in b.thresholds], on_unpriced=UNPRICED_TO_PROTO[b.on_unpriced],
        on_unavailable=UNAVAILABLE_TO_PROTO[b.on_unavailable],
    )
    if b.rolling_window is not None:
        msg.rolling_window.CopyFrom(duration_pb2.Duration(seconds=int(b.rolling_window.total_seconds())))
    if b.create_time is not None:
        msg.create_time.CopyFrom(convert.timestamp(b.create_time))
    if b.update_time is not None:
        msg.update_time.CopyFrom(convert.timestamp(b.update_time))
    if current is not None:
        msg.state.CopyFrom(state_pb(current, shown=True))
    return msg


def state_pb(s: State, *, shown: bool) -> budgets_pb2.BudgetState:
    """shown=False: a budget the caller may not read covers its usage: the verdict, not the numbers."""
    b = s.budget
    msg = budgets_pb2.BudgetState(budget_id=b.budget_id, name=b.name, metric=b.metric, currency=b.currency,
                                  mode=MODE_TO_PROTO[b.mode], allowed=s.allowed, reason=s.reason)
    if s.period is not None:
        msg.period_start.CopyFrom(convert.timestamp(s.period.start))
        if s.period.resets_at is not None:
            msg.resets_at.CopyFrom(convert.timestamp(s.period.resets_at))
    if shown:
        msg.limit = convert.money(b.limit)
        msg.unpriced_events = s.unpriced
        if s.used is not None and s.reserved is not None and s.remaining is not None:
            msg.used, msg.reserved, msg.remaining = map(convert.money, (s.used, s.reserved, s.remaining))
    return msg


def _required(field: str, value: str) -> str:
    if not value:
        raise InvalidArgument(field, "required", reason="REQUIRED")
    return value


class BudgetsServicer(budgets_pb2_grpc.BudgetServiceServicer):
    def __init__(self, core: Core, budgets: Budgets) -> None:
        self.core = core
        self.store = budgets.store
        self.checker = budgets.checker
        self.reservations = budgets.reservations

    async def _reader(self, context: Context, organization: str) -> Principal:
        return await in_organization(self.core, await caller(self.core, context), organization)

    async def _writer(self, context: Context, organization: str) -> Principal:
        principal = await self._reader(context, organization)
        if not principal.is_admin or principal.project_id is not None:
            raise PermissionDenied("budgets are written by an organization admin")
        return principal

    async def _default_zone(self, principal: Principal, budget: budgets_pb2.Budget) -> str:
        """The zone a budget written without one takes: the organization's (read only then)."""
        return "UTC" if budget.time_zone.strip() else await self.core.tenants.time_zone(principal.org_id)

    async def _visible(self, principal: Principal, budget_id: str) -> Budget:
        budget = await self.store.get(principal.org_id, _required("budget_id", budget_id))
        if not visible_to(budget, principal):
            raise NotFound(f"budget {budget_id[:64]!r} not found")
        return budget

    async def CreateBudget(self, request: budgets_pb2.CreateBudgetRequest, context: Context) -> budgets_pb2.Budget:
        principal = await self._writer(context, request.organization)
        zone = await self._default_zone(principal, request.budget)
        stored = await self.store.create(principal.org_id, budget_from_proto(request.budget, default_zone=zone))
        return budget_pb(stored, principal.organization_id)

    async def GetBudget(self, request: budgets_pb2.GetBudgetRequest, context: Context) -> budgets_pb2.Budget:
        principal = await self._reader(context, request.organization)
        budget = await self._visible(principal, request.budget_id)
        [current] = await self.checker.states(principal, [budget])
        return budget_pb(budget, principal.organization_id, current)

    async def ListBudgets(
        self, request: budgets_pb2.ListBudgetsRequest, context: Context,
    ) -> budgets_pb2.ListBudgetsResponse:
        principal = await self._reader(context, request.organization)
        binding = page_token.request_digest(principal.org_id, principal.read_scope())
        budgets, token = await self.store.page(principal.org_id, request.page_size, request.page_token, binding)
        shown = [b for b in budgets if visible_to(b, principal)]
        states = {s.budget.budget_id: s for s in await self.checker.states(principal, shown)}
        return budgets_pb2.ListBudgetsResponse(
            budgets=[budget_pb(b, principal.organization_id, states.get(b.budget_id)) for b in shown],
            next_page_token=token,
        )

    async def UpdateBudget(self, request: budgets_pb2.UpdateBudgetRequest, context: Context) -> budgets_pb2.Budget:
        principal = await self._writer(context, request.organization)
        budget_id = _required("budget.budget_id", request.budget.budget_id)
        zone = await self._default_zone(principal, request.budget)

        def change(current: Budget) -> Budget:
            wanted = merge(budget_pb(current, principal.organization_id), request.budget, request.update_mask)
            return budget_from_proto(wanted, default_zone=zone)

        updated = await self.store.update(principal.org_id, budget_id, change)
        return budget_pb(updated, principal.organization_id)

    async def DeleteBudget(
        self, request: budgets_pb2.DeleteBudgetRequest, context: Context,
    ) -> budgets_pb2.DeleteBudgetResponse:
        principal = await self._writer(context, request.organization)
        await self.store.delete(principal.org_id, _required("budget_id", request.budget_id))
        return budgets_pb2.DeleteBudgetResponse()

    async def Check(self, request: budgets_pb2.CheckRequest, context: Context) -> budgets_pb2.CheckResponse:
        principal = await self._reader(context, request.organization)
        verdict = await self.checker.check(principal, request, context.time_remaining())
        response = budgets_pb2.CheckResponse(
            allowed=verdict.allowed, reservation_id=verdict.reservation_id, degraded=verdict.degraded,
            degraded_reason=verdict.degraded_reason,
            budgets=[state_pb(s, shown=visible_to(s.budget, principal)) for s in verdict.states],
        )
        if verdict.expires_at is not None:
            response.reservation_expire_time.CopyFrom(convert.timestamp(verdict.expires_at))
        return response

    async def ReleaseReservation(
        self, request: budgets_pb2.ReleaseReservationRequest, context: Context,
    ) -> budgets_pb2.ReleaseReservationResponse:
        principal = await self._reader(context, request.organization)
        released = await self.reservations.release(principal, _required("reservation_id", request.reservation_id))
        return budgets_pb2.ReleaseReservationResponse(released=released)
