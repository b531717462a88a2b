"""A budget as the core sees it, after validation (DESIGN §11)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from typing import Any

from server.core.convert import Row

Scope = tuple[tuple[str, tuple[str, ...]], ...]  # (field, values) sorted by field; () = the whole organization

MODES = ("alert", "enforce")
UNPRICED_POLICIES = ("allow", "deny")
UNAVAILABLE_POLICIES = ("fail_open", "fail_closed")
# What a budget writes, in the column order of insert_budget/update_budget (after org_id, budget_id).
COLUMNS = ("name", "scope", "metric", "currency", "limit_amount", "period", "time_zone", "week_start",
           "rolling_window", "mode", "thresholds", "on_unpriced", "on_unavailable")


@dataclasses.dataclass(frozen=True)
class Budget:
    name: str
    scope: Scope
    metric: str  # "cost", a fixed counter, or "counters.<name>"
    currency: str  # cost budgets; "" otherwise
    limit: decimal.Decimal
    period: str  # server/budgets/periods.py PERIODS
    time_zone: str
    week_start: int  # ISO weekday, 1 (Monday) .. 7
    rolling_window: dt.timedelta | None  # rolling only
    mode: str  # MODES
    thresholds: tuple[decimal.Decimal, ...]
    on_unpriced: str  # UNPRICED_POLICIES
    on_unavailable: str  # UNAVAILABLE_POLICIES
    budget_id: str = ""  # "" until stored
    create_time: dt.datetime | None = None
    update_time: dt.datetime | None = None

    @property
    def enforced(self) -> bool:
        return self.mode == "enforce"

    @property
    def is_cost(self) -> bool:
        return self.metric == "cost"

    def values(self) -> tuple[Any, ...]:
        """The stored columns (COLUMNS order)."""
        return (self.name, [[field, list(values)] for field, values in self.scope], self.metric, self.currency,
                self.limit, self.period, self.time_zone, self.week_start, self.rolling_window, self.mode,
                list(self.thresholds), self.on_unpriced, self.on_unavailable)


def from_row(row: Row) -> Budget:
    return Budget(
        name=row["name"], scope=tuple((field, tuple(values)) for field, values in row["scope"]),
        metric=row["metric"], currency=row["currency"], limit=row["limit_amount"], period=row["period"],
        time_zone=row["time_zone"], week_start=row["week_start"], rolling_window=row["rolling_window"],
        mode=row["mode"], thresholds=tuple(row["thresholds"]), on_unpriced=row["on_unpriced"],
        on_unavailable=row["on_unavailable"], budget_id=row["budget_id"], create_time=row["create_time"],
        update_time=row["update_time"],
    )
