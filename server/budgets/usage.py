"""A budget's usage in its current period, from the one query engine.

The spec is the one a QueryUsage call for the same numbers would make: the budget's
scope as filters (a cost budget adds its currency), the period as the range, width
"all" and only the budget's metric; read with an admin principal of the organization.
So `used` is, by construction, what QueryUsage reports for that scope and range.
A rolling budget reads minute (windows up to 6 hours) or hour buckets instead, to
know when its oldest usage leaves the window.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal

from server.budgets.budget import Budget
from server.budgets.periods import Period, current_period
from server.core.money import EXACT, ZERO
from server.core.principal import Principal
from server.query.engine import Metrics, QueryEngine, make_spec

_FINE_ROLLING = dt.timedelta(hours=6)


@dataclasses.dataclass(frozen=True)
class Reading:
    budget: Budget
    period: Period
    usage: decimal.Decimal  # of the period, in the budget's metric
    unpriced: int  # events of the period without a cost (cost budgets; 0 otherwise)


def org_admin(principal: Principal) -> Principal:
    """Reads every event of the caller's organization (the budget's scope is the filter)."""
    return Principal(org_id=principal.org_id, organization_id=principal.organization_id, role="admin")


def _metrics(budget: Budget) -> list[str]:
    if budget.is_cost:
        return ["cost", "unpriced_events"]
    return ["counters"] if budget.metric.startswith("counters.") else [budget.metric]


def _amount(budget: Budget, m: Metrics) -> decimal.Decimal:
    if budget.is_cost:
        return m.cost
    if budget.metric.startswith("counters."):
        return decimal.Decimal(m.extra.get(budget.metric.removeprefix("counters."), 0))
    return decimal.Decimal(m.counters[budget.metric])


def filters(budget: Budget) -> list[tuple[str, tuple[str, ...]]]:
    """The budget's scope as query filters."""
    extra = [("currency", (budget.currency,))] if budget.is_cost else []
    return sorted([*budget.scope, *extra])


async def read(engine: QueryEngine, org: Principal, budget: Budget, now: dt.datetime) -> Reading:
    period = current_period(budget.period, now, budget.time_zone, budget.week_start, budget.rolling_window)
    window = budget.rolling_window
    width = "all" if window is None else "1m" if window <= _FINE_ROLLING else "1h"
    spec = make_spec(period.start, period.end, width=width, filters=filters(budget), metrics=_metrics(budget))
    result = await engine.aggregate(org_admin(org), spec)
    total, unpriced, oldest = ZERO, 0, None
    for bucket in result.buckets:
        for group in bucket.groups:
            m = group.metrics
            total = EXACT.add(total, _amount(budget, m))
            unpriced += m.unpriced_events
            if oldest is None and m.events:
                oldest = bucket.start
    if window is not None:
        period = current_period(budget.period, now, window=window, oldest=oldest)
    return Reading(budget, period, total, unpriced)
