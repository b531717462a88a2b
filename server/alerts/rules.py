"""What a budget's reading means for its alerts: which thresholds are crossed, and the
transitions from the states last written.

A threshold (a percentage of the limit) is crossed when the period's usage reaches
limit * percentage / 100 (a zero amount: when there is any usage). `triggered` when it is
crossed and its state is not already triggered; `resolved` when it is no longer crossed
and its state is triggered (a void, an adjustment, a repricing or a raised limit brought
the usage back under it). The unpriced rule of a cost budget is triggered when its period
has events without a cost; it resolves silently (no event) once they are priced, so a
later appearance is told again.

Calendar periods key the states by their start, so a new period starts clean; `total`
and `rolling` budgets have one key (EPOCH), their states following the usage.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal

from server.budgets.budget import Budget
from server.budgets.periods import CALENDAR
from server.budgets.usage import Reading
from server.core.convert import money
from server.core.money import EXACT

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
UNPRICED = "unpriced"  # the threshold key of the unpriced rule
TRIGGERED = "budget.threshold.triggered"
RESOLVED = "budget.threshold.resolved"
UNPRICED_EVENT = "usage.unpriced"
EVENT_TYPES = (TRIGGERED, RESOLVED, UNPRICED_EVENT)
_HUNDRED = decimal.Decimal(100)


@dataclasses.dataclass(frozen=True)
class Transition:
    threshold: str  # the key: the percentage as text, or UNPRICED
    state: str  # "triggered" / "resolved"
    event_type: str | None  # None: written without an event (the unpriced rule resolving)


def period_key(reading: Reading) -> dt.datetime:
    return reading.period.start if reading.budget.period in CALENDAR else EPOCH


def amount(budget: Budget, percentage: decimal.Decimal) -> decimal.Decimal:
    return EXACT.divide(EXACT.multiply(budget.limit, percentage), _HUNDRED)


def crossed(budget: Budget, percentage: decimal.Decimal, usage: decimal.Decimal) -> bool:
    level = amount(budget, percentage)
    return usage >= level if level > 0 else usage > 0


def transitions(reading: Reading, states: dict[str, str]) -> list[Transition]:
    """The transitions `reading` makes from `states` (threshold key -> last state written)."""
    budget, found = reading.budget, []
    for percentage in budget.thresholds:
        key = money(percentage)
        now_crossed = crossed(budget, percentage, reading.usage)
        was = states.get(key) == "triggered"
        if now_crossed and not was:
            found.append(Transition(key, "triggered", TRIGGERED))
        elif was and not now_crossed:
            found.append(Transition(key, "resolved", RESOLVED))
    if budget.is_cost:
        was = states.get(UNPRICED) == "triggered"
        if reading.unpriced and not was:
            found.append(Transition(UNPRICED, "triggered", UNPRICED_EVENT))
        elif was and not reading.unpriced:
            found.append(Transition(UNPRICED, "resolved", None))
    return found
