"""A budget's decision and its reported state.

From a Reading (the period's usage) and an estimate, `admission` gives what the
critical section (metering_budget_check, migrations/0009_budgets.sql) compares the
open holds against, under the budget's lock:

- headroom = limit - usage - estimate; the usage fits when holds <= headroom. With
  no estimate (0), when holds < limit - usage: a budget whose limit is reached admits
  nothing more, and a zero limit admits nothing.
- blocked: a cost budget with on_unpriced DENY whose period has unpriced usage.
- a budget admits the usage when it is not enforced (alert), or when it is not
  blocked and the usage fits.
"""

from __future__ import annotations

import dataclasses
import decimal

from server.budgets.budget import Budget
from server.budgets.periods import Period
from server.budgets.usage import Reading
from server.core.money import EXACT

LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
UNPRICED_USAGE = "UNPRICED_USAGE"
DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"


@dataclasses.dataclass(frozen=True)
class Admission:
    headroom: decimal.Decimal
    strict: bool  # holds < headroom rather than <=
    enforce: bool
    blocked: bool
    amount: decimal.Decimal  # the estimate a reservation holds


def _blocked(reading: Reading) -> bool:
    return reading.budget.is_cost and reading.budget.on_unpriced == "deny" and reading.unpriced > 0


def admission(reading: Reading, estimate: decimal.Decimal) -> Admission:
    budget = reading.budget
    headroom = EXACT.subtract(EXACT.subtract(budget.limit, reading.usage), estimate)
    return Admission(headroom, not estimate, budget.enforced, _blocked(reading), estimate)


@dataclasses.dataclass(frozen=True)
class State:
    """One budget's current period, as Check reports it. used/reserved are None when
    Postgres could not be reached (a degraded answer)."""

    budget: Budget
    period: Period | None
    used: decimal.Decimal | None  # usage of the period + open holds
    reserved: decimal.Decimal | None  # of which open holds
    unpriced: int
    allowed: bool
    reason: str

    @property
    def remaining(self) -> decimal.Decimal | None:
        return None if self.used is None else EXACT.subtract(self.budget.limit, self.used)


def state(reading: Reading, held: decimal.Decimal, fits: bool, admits: bool) -> State:
    """The state after the critical section: `held` the open holds (with the reservation
    just taken, if any), `fits`/`admits` its verdicts."""
    reason = LIMIT_EXCEEDED if not fits else UNPRICED_USAGE if _blocked(reading) else ""
    return State(reading.budget, reading.period, EXACT.add(reading.usage, held), held, reading.unpriced, admits,
                 reason)


def unavailable(budget: Budget) -> State:
    """Postgres cannot be reached: the budget's on_unavailable policy answers (an alert
    budget always allows)."""
    allowed = not budget.enforced or budget.on_unavailable == "fail_open"
    return State(budget, None, None, None, 0, allowed, DATABASE_UNAVAILABLE)
