"""A budget's usage in its current period, from the one query engine.

The spec is the one a QueryUsage call for the same numbers would make: the budget's
scope as filters (a cost budget adds its currency), the period as the range, width
"all" and only the budget's metric; read with an admin principal of the organization.
So `used` is, by construction, what QueryUsage reports for that scope and range.
A rolling budget reads minute (windows up to 6 hours) or hour buckets instead, to
know when its oldest usage leaves the window. A calendar period read before and
unchanged since is not aggregated again (Settled).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal

from metering.lru import LRU
from server.budgets.budget import Budget
from server.budgets.periods import Period, current_period
from server.core.money import EXACT, ZERO
from server.core.principal import Principal
from server.query.engine import Metrics, QueryEngine
from server.query.spec import MAX_GROUP_BY, UsageSpec, make_spec

_FINE_ROLLING = dt.timedelta(hours=6)
MAX_SETTLED = 100_000  # settled readings kept per server process (~200 bytes each)


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


class Settled:
    """The last settled reading of each calendar period: (etag of its one bucket, usage,
    unpriced), by organization and query. The engine names a bucket's answer by its etag
    only while no window of it is dirty, and the etag changes with the answer
    (server/query/etags.py). So a reading first asks the engine for the period's etag now,
    in one statement (QueryEngine.etags); while it is the kept one, the kept totals are the
    answer in that statement's snapshot and no aggregate runs. A period read dirty is
    forgotten, so the next reading goes straight to the aggregate."""

    def __init__(self, max_items: int = MAX_SETTLED) -> None:
        self._kept: LRU[tuple[int, UsageSpec], tuple[str, decimal.Decimal, int]] = LRU(max_items)

    def get(self, org_id: int, spec: UsageSpec) -> tuple[str, decimal.Decimal, int] | None:
        return self._kept.get((org_id, spec))

    def put(self, org_id: int, spec: UsageSpec, etag: str, usage: decimal.Decimal, unpriced: int) -> None:
        """etag "": the period was dirty when read (forgets what was kept)."""
        if etag:
            self._kept.put((org_id, spec), (etag, usage, unpriced))
        else:
            self._kept.pop((org_id, spec))


async def read(engine: QueryEngine, org: Principal, budget: Budget, now: dt.datetime,
               settled: Settled | None = None) -> Reading:
    """settled: the last settled readings (a calendar period, unchanged, is not aggregated again)."""
    period = current_period(budget.period, now, budget.time_zone, budget.week_start, budget.rolling_window)
    window = budget.rolling_window
    width = "all" if window is None else "1m" if window <= _FINE_ROLLING else "1h"
    spec = make_spec(period.start, period.end, width=width, filters=filters(budget), metrics=_metrics(budget))
    known = settled.get(org.org_id, spec) if settled is not None and window is None else None
    if known is not None and await engine.etags(org_admin(org), spec) == [known[0]]:
        return Reading(budget, period, known[1], known[2])  # one statement: the period is as it was
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
    elif settled is not None:  # kept while settled; while dirty, the next reading goes straight to the engine
        settled.put(org.org_id, spec, result.buckets[0].etag, total, unpriced)
    return Reading(budget, period, total, unpriced)


async def read_many(engine: QueryEngine, org: Principal, budgets: list[Budget],
                    now: dt.datetime) -> dict[str, Reading]:
    """The readings of many calendar budgets, one engine read per distinct period: the
    period's usage grouped by every field the budgets filter on, each budget's usage the sum
    of the groups its scope holds (a value in the filter's values, "" for unset, as the
    engine filters). So reading an organization's rules costs one aggregate, not one each;
    each equals read()'s. Budgets it cannot do so (rolling, or more fields than a query
    may group by) are left out of the answer."""
    by_period: dict[Period, list[Budget]] = {}
    for budget in budgets:
        if budget.rolling_window is None:
            period = current_period(budget.period, now, budget.time_zone, budget.week_start)
            by_period.setdefault(period, []).append(budget)
    found: dict[str, Reading] = {}
    for period, some in by_period.items():
        fields = sorted({field for b in some for field, _ in filters(b)})
        if len(fields) > MAX_GROUP_BY:
            continue
        metrics = sorted({m for b in some for m in _metrics(b)})
        spec = make_spec(period.start, period.end, width="all", group_by=fields, metrics=metrics)
        [bucket] = (await engine.aggregate(org_admin(org), spec)).buckets
        groups = [({f: v or "" for f, v in zip(fields, g.key, strict=True)}, g.metrics) for g in bucket.groups]
        for budget in some:
            total, unpriced = ZERO, 0
            scope = filters(budget)
            for key, m in groups:
                if all(key[field] in values for field, values in scope):
                    total = EXACT.add(total, _amount(budget, m))
                    unpriced += m.unpriced_events if budget.is_cost else 0
            found[budget.budget_id] = Reading(budget, period, total, unpriced)
    return found
