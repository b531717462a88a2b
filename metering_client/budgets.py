"""Spend control (DESIGN §11): ask BudgetService.Check before a model call, and hold the
estimate in a reservation that the call's recorded event settles.

    result = client.check(model="gpt-4o", estimated_cost="0.02")
    if not result.allowed:
        ...                                   # result.denied_by says which budget, and why

    with client.reserve(model="gpt-4o", estimated_cost="0.02") as reservation:   # BudgetExceededError if denied
        reply = call_the_model()
        reservation.record(input_tokens=..., output_tokens=..., cost=...)       # carries reservation_id: settles it
    # leaving the block without recording releases the reservation (ReleaseReservation)

The scope of the coming usage is given by the event fields it will be recorded with (model,
project_id, kind, labels, ...); what is left out defaults as ingest defaults it: client_id to the
client's configured one (here), user_id and api_key_id to the credentials' own (on the server).
Any event carrying the reservation's id that is recorded through the same client settles it
(`reservation.record(...)`, `client.record(reservation_id=...)`, a UsageTracker on that client with
`log_request(..., reservation_id=...)`); an event recorded elsewhere settles it on the server all the
same, but the block does not know, and releases it when it ends. A reservation never settled or
released expires at its TTL.

This module holds what the sync and asyncio clients share: the request, the typed result, the
reservation handles and the registry of open reservations each client keeps.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import logging
import math
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypedDict

from google.protobuf import duration_pb2, timestamp_pb2

from metering.v1 import budgets_pb2
from metering_client.events import decimal_text
from metering_client.results import AsyncReceipt, MeteringClientError, Receipt

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 5.0  # seconds: a check sits in the request path
_TEXT_SCOPE = ("organization", "project_id", "user_id", "api_key_id", "client_id", "kind", "model", "provider",
               "endpoint", "api_name", "service_tier", "currency")
SCOPE_FIELDS = frozenset({*_TEXT_SCOPE, "batch", "labels"})
_MODES = {budgets_pb2.BUDGET_MODE_ENFORCE: "enforce"}  # anything else is ALERT (the default)


class Scope(TypedDict, total=False):
    """The scope of the coming usage: CheckRequest's fields, named as the event's."""

    organization: str  # id or name; default the credentials' own (the master key may name another)
    project_id: str
    user_id: str
    api_key_id: str
    client_id: str
    kind: str
    model: str
    provider: str
    endpoint: str
    api_name: str
    service_tier: str
    batch: bool
    currency: str  # of estimated_cost; default "usd"
    labels: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class BudgetStatus:
    """One budget covering the checked usage, in its current period. The amounts are None when
    the caller may not read the budget (it still learns the verdict) or when the server answered
    without Postgres (CheckResult.degraded)."""

    budget_id: str
    name: str
    metric: str  # "cost" or a counter ("input_tokens", "counters.<name>")
    currency: str  # cost budgets
    mode: str  # "alert" or "enforce"
    limit: decimal.Decimal | None
    used: decimal.Decimal | None  # the period's exact usage plus open reservations
    reserved: decimal.Decimal | None  # of which open reservations
    remaining: decimal.Decimal | None  # limit - used; negative when usage went above its estimate
    period_start: dt.datetime | None
    resets_at: dt.datetime | None  # None for an all-time budget
    unpriced_events: int  # events of the period without a cost (never counted as $0)
    allowed: bool  # this budget admits the checked usage
    reason: str  # "LIMIT_EXCEEDED", "UNPRICED_USAGE", "DATABASE_UNAVAILABLE", or "" within the limit


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """BudgetService.Check's answer."""

    allowed: bool  # every enforcing budget admits the usage
    budgets: tuple[BudgetStatus, ...]  # every budget covering the usage
    reservation_id: str | None  # when a reservation was asked for and taken
    reservation_expires_at: dt.datetime | None
    degraded: bool  # Postgres was unreachable: each budget answered by its on_unavailable policy
    degraded_reason: str

    @property
    def denied_by(self) -> tuple[BudgetStatus, ...]:
        """The budgets that refuse the usage."""
        return tuple(b for b in self.budgets if not b.allowed)


class BudgetExceededError(MeteringClientError):
    """reserve(): the check refused the usage; `result` says which budgets and why."""

    def __init__(self, result: CheckResult) -> None:
        self.result = result
        why = ", ".join(f"{b.name or b.budget_id} ({b.reason or 'denied'})" for b in result.denied_by)
        super().__init__(f"usage refused by budget(s): {why or 'unknown'}")


# -- the request and the answer ------------------------------------------------------------------

def _duration(ttl: dt.timedelta | float) -> duration_pb2.Duration:
    seconds = ttl.total_seconds() if isinstance(ttl, dt.timedelta) else ttl
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise TypeError("ttl: expected a timedelta or seconds")
    duration = duration_pb2.Duration()
    duration.FromMicroseconds(round(seconds * 1_000_000))
    return duration


def check_request(
    scope: Mapping[str, Any], *, default_client_id: str | None, estimated_cost: object, estimated_counters:
    Mapping[str, int] | None, reserve: bool, ttl: dt.timedelta | float | None, request_id: str | None,
) -> budgets_pb2.CheckRequest:
    """The CheckRequest, its scope checked by name and type (TypeError, as record() does)."""
    unknown = set(scope) - SCOPE_FIELDS
    if unknown:
        raise TypeError(f"not a scope field of a check: {', '.join(sorted(unknown))}")
    request = budgets_pb2.CheckRequest(reserve=reserve, request_id=request_id or "")
    for name in _TEXT_SCOPE:
        value = scope.get(name)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name}: expected str, got {type(value).__name__}")
        setattr(request, name, value or "")
    if not request.client_id and default_client_id:
        request.client_id = default_client_id
    batch = scope.get("batch", False)
    if not isinstance(batch, bool):
        raise TypeError(f"batch: expected bool, got {type(batch).__name__}")
    request.batch = batch
    for key, text in (scope.get("labels") or {}).items():
        if not isinstance(text, str):
            raise TypeError(f"labels.{key}: expected str, got {type(text).__name__}")
        request.labels[str(key)] = text
    if estimated_cost is not None:
        request.estimated_cost = decimal_text(estimated_cost, "estimated_cost")
    for name, count in (estimated_counters or {}).items():
        if isinstance(count, bool) or not isinstance(count, int):
            raise TypeError(f"estimated_counters.{name}: expected int, got {type(count).__name__}")
        request.estimated_counters[str(name)] = count
    if ttl is not None:
        request.reservation_ttl.CopyFrom(_duration(ttl))
    return request


def _amount(text: str) -> decimal.Decimal | None:
    return decimal.Decimal(text) if text else None


def _time(message: Any, name: str) -> dt.datetime | None:
    if not message.HasField(name):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, name)
    when: dt.datetime = stamp.ToDatetime(tzinfo=dt.UTC)
    return when


def budget_status(state: budgets_pb2.BudgetState) -> BudgetStatus:
    return BudgetStatus(
        budget_id=state.budget_id, name=state.name, metric=state.metric, currency=state.currency,
        mode=_MODES.get(state.mode, "alert"), limit=_amount(state.limit), used=_amount(state.used),
        reserved=_amount(state.reserved), remaining=_amount(state.remaining),
        period_start=_time(state, "period_start"), resets_at=_time(state, "resets_at"),
        unpriced_events=state.unpriced_events, allowed=state.allowed, reason=state.reason,
    )


def check_result(response: budgets_pb2.CheckResponse) -> CheckResult:
    return CheckResult(
        allowed=response.allowed, budgets=tuple(budget_status(s) for s in response.budgets),
        reservation_id=response.reservation_id or None,
        reservation_expires_at=_time(response, "reservation_expire_time"),
        degraded=response.degraded, degraded_reason=response.degraded_reason,
    )


# -- reservations ---------------------------------------------------------------------------------

class _Held:
    """What the sync and async handles share: the check's answer, the event fields the scope gives,
    and whether an event carrying the id was recorded (settled) or the hold was released."""

    def __init__(self, result: CheckResult, scope: Mapping[str, Any]) -> None:
        self.result = result
        self.reservation_id = result.reservation_id or ""  # "" when allowed without a hold (degraded)
        self.expires_at = result.reservation_expires_at
        self.settled = False
        self.released = False
        self._defaults = {k: v for k, v in scope.items() if k != "organization" and v is not None}

    def event_fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        if "reservation_id" in fields:
            raise TypeError("'reservation_id' is set by the reservation")
        merged = {**self._defaults, **fields}
        if self.reservation_id:
            merged["reservation_id"] = self.reservation_id
        return merged

    @property
    def open(self) -> bool:
        """Held, and neither settled by a recorded event nor released."""
        return bool(self.reservation_id) and not self.settled and not self.released

    def __repr__(self) -> str:
        state = "settled" if self.settled else "released" if self.released else "open" if self.open else "none"
        return f"<{type(self).__name__} {self.reservation_id or '-'} {state}>"


class Reservation(_Held):
    """MeteringClient.reserve()'s handle. `record(**fields)` records the call's event (the
    reservation's scope fields as defaults, its reservation_id set), which settles it."""

    def __init__(self, result: CheckResult, scope: Mapping[str, Any], record: Callable[..., Receipt],
                 release: Callable[[str], bool]) -> None:
        super().__init__(result, scope)
        self._record = record
        self._release = release

    def record(self, **fields: Any) -> Receipt:
        return self._record(**self.event_fields(fields))

    def release(self) -> bool:
        """Release the hold now (the call was not made); False if already settled, released or expired."""
        if not self.open:
            return False
        released = self._release(self.reservation_id)
        self.released = True
        return released


class AsyncReservation(_Held):
    """AsyncMeteringClient.reserve()'s handle: Reservation with `await`."""

    def __init__(self, result: CheckResult, scope: Mapping[str, Any], record: Callable[..., Awaitable[AsyncReceipt]],
                 release: Callable[[str], Awaitable[bool]]) -> None:
        super().__init__(result, scope)
        self._record = record
        self._release = release

    async def record(self, **fields: Any) -> AsyncReceipt:
        return await self._record(**self.event_fields(fields))

    async def release(self) -> bool:
        if not self.open:
            return False
        released = await self._release(self.reservation_id)
        self.released = True
        return released


class OpenReservations:
    """A client's reservations inside their `reserve()` block, by id: recording an event that
    carries one marks it settled, so the block does not release it."""

    def __init__(self) -> None:
        self._open: dict[str, _Held] = {}
        self._lock = threading.Lock()

    def add(self, held: _Held) -> None:
        if held.reservation_id:
            with self._lock:
                self._open[held.reservation_id] = held

    def remove(self, held: _Held) -> None:
        with self._lock:
            self._open.pop(held.reservation_id, None)

    def settle(self, reservation_id: str) -> None:
        if not reservation_id:
            return
        with self._lock:
            held = self._open.get(reservation_id)
        if held is not None:
            held.settled = True


def release_failed(reservation_id: str, error: Exception) -> None:
    """Leaving a reserve() block could not release the hold: it expires at its TTL instead."""
    log.warning("could not release reservation %s (%s); it expires at its TTL", reservation_id, error)
