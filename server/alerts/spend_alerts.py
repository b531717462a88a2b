"""Spend alerts (OpenAI's admin spend alerts, served by the OpenAI dialect): each is a
budget of the caller's organization, so the same detection and delivery serve it:

    scope      none (the organization), or project_id = the project
    metric     cost in usd; limit = threshold_amount / 100, exact (cents <-> decimal)
    period     month, calendar-aligned in UTC; mode ALERT; one threshold, 100%

plus its email settings (alert_emails: recipients, subject prefix), to which the
`budget.threshold.triggered` events of that budget are mailed. The alert's id is its
budget's; deleting the budget deletes the alert.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import re

import asyncpg

from server.budgets.budget import Budget
from server.budgets.store import BudgetStore
from server.core.convert import Row
from server.core.errors import InvalidArgument, NotFound
from server.storage.db import q

MAX_CENTS = 2**53 - 1
MAX_RECIPIENTS = 20
MAX_PREFIX = 100
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
NAME = "spend alert"
_CENTS = decimal.Context(prec=80)
_EMAIL = re.compile(r"^[^@\s<>,;\"\\]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z0-9-]{1,63}$")


@dataclasses.dataclass(frozen=True)
class SpendAlert:
    alert_id: str
    project_id: str  # "": the organization's
    threshold_cents: int
    recipients: tuple[str, ...]
    subject_prefix: str
    create_time: dt.datetime | None = None


def _alert(row: Row) -> SpendAlert:
    cents = int(decimal.Decimal(row["limit_amount"]).scaleb(2, _CENTS).to_integral_value(decimal.ROUND_DOWN))
    return SpendAlert(row["budget_id"], row["project_id"], cents, tuple(row["recipients"]), row["subject_prefix"],
                      row["create_time"])


def validated(alert: SpendAlert) -> SpendAlert:
    if not 1 <= alert.threshold_cents <= MAX_CENTS:
        raise InvalidArgument("threshold_amount", f"cents, from 1 to {MAX_CENTS}")
    if not 1 <= len(alert.recipients) <= MAX_RECIPIENTS:
        raise InvalidArgument("recipients", f"1 to {MAX_RECIPIENTS} email addresses")
    for address in alert.recipients:
        if not _EMAIL.match(address):
            raise InvalidArgument("recipients", f"not an email address: {address[:254]!r}")
    if len(alert.subject_prefix) > MAX_PREFIX or any(c in alert.subject_prefix for c in "\r\n\x00"):
        raise InvalidArgument("subject_prefix", f"at most {MAX_PREFIX} characters on one line")
    return alert


def budget_of(alert: SpendAlert) -> Budget:
    scope = (("project_id", (alert.project_id,)),) if alert.project_id else ()
    return Budget(name=NAME, scope=scope, metric="cost", currency="usd",
                  limit=decimal.Decimal(alert.threshold_cents).scaleb(-2, _CENTS), period="month", time_zone="UTC",
                  week_start=1, rolling_window=None, mode="alert", thresholds=(decimal.Decimal(100),),
                  on_unpriced="allow", on_unavailable="fail_open")


class SpendAlerts:
    def __init__(self, pool: asyncpg.Pool, budgets: BudgetStore) -> None:
        self.pool = pool
        self.budgets = budgets

    async def _require_project(self, org_id: int, project_id: str) -> None:
        if project_id and await self.pool.fetchrow(q("find_project"), org_id, project_id) is None:
            raise NotFound(f"project {project_id[:64]!r} not found")

    async def create(self, org_id: int, alert: SpendAlert) -> SpendAlert:
        alert = validated(alert)
        await self._require_project(org_id, alert.project_id)
        budget = await self.budgets.create(org_id, budget_of(alert))
        try:
            await self.pool.execute(q("insert_alert_email"), org_id, budget.budget_id, alert.project_id,
                                    list(alert.recipients), alert.subject_prefix)
        except BaseException:
            await self.budgets.delete(org_id, budget.budget_id)
            raise
        return await self.get(org_id, alert.project_id, budget.budget_id)

    async def get(self, org_id: int, project_id: str, alert_id: str) -> SpendAlert:
        row = await self.pool.fetchrow(q("get_spend_alert"), org_id, alert_id, project_id)
        if row is None:
            raise NotFound(f"spend alert {alert_id[:64]!r} not found")
        return _alert(row)

    async def page(self, org_id: int, project_id: str, *, after: str = "", before: str = "",
                   limit: int = 0, descending: bool = False) -> tuple[list[SpendAlert], bool]:
        """A page in create order (newest first when descending): after an id, or the page
        before an id; and whether more follow in that direction."""
        size = limit or DEFAULT_LIMIT
        if not 1 <= size <= MAX_LIMIT:
            raise InvalidArgument("limit", f"from 1 to {MAX_LIMIT}")
        for value in (after, before):
            if value:
                await self.get(org_id, project_id, value)  # an unknown cursor is a 404, not an empty page
        backwards = bool(before) and not after
        rows = await self.pool.fetch(q("list_spend_alerts"), org_id, project_id, before if backwards else after,
                                     descending != backwards, size + 1)
        found = [_alert(r) for r in rows[:size]]
        return (found[::-1] if backwards else found), len(rows) > size

    async def update(self, org_id: int, alert: SpendAlert) -> SpendAlert:
        alert = validated(alert)
        current = await self.get(org_id, alert.project_id, alert.alert_id)
        wanted = budget_of(alert)
        await self.budgets.update(org_id, current.alert_id,
                                  lambda b: dataclasses.replace(b, limit=wanted.limit))
        await self.pool.execute(q("update_alert_email"), org_id, current.alert_id, alert.project_id,
                                list(alert.recipients), alert.subject_prefix)
        return await self.get(org_id, alert.project_id, alert.alert_id)

    async def delete(self, org_id: int, project_id: str, alert_id: str) -> None:
        await self.get(org_id, project_id, alert_id)
        await self.budgets.delete(org_id, alert_id)  # its email settings go with it
