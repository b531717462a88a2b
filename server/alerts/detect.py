"""Detection, exactly once: each rule's transitions, from committed data, into the outbox.

For one rule (a budget), detection

0. reads the rule's usage and compares it with its states without any lock (all rules of
   the organization at once: one grouped engine reading per distinct period,
   server/budgets/usage.py read_many, and their states in one statement): a rule whose
   states already follow the reading is done; only one that moved goes on;
1. takes the rule's advisory lock (lock_alert_rule, held to its commit), so detections of
   one rule are serialized across processes and replicas;
2. reads the budget as it is now, then its period's usage from the one query engine, as a
   Check reads it (server/budgets/usage.py: rollups, tails and raw events in one snapshot,
   taken after the lock, so it holds everything the previous detection saw and more);
3. compares with the (rule, period, threshold) states last written (server/alerts/rules.py)
   and writes each transition's state, its event (the outbox row) and the event's
   deliveries in the same transaction (insert_alert_event).

So a crossing is written once however many processes detect it at once (the second waits
for the lock, then finds the state already `triggered`), a crash before the commit leaves
nothing (the next detection finds the crossing again), and the states always follow the
latest reading. `used` here is the period's usage alone: reservations are estimates, not
spend, and are not alerted on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from server.alerts.events import payload
from server.alerts.rules import EPOCH, Transition, period_key, transitions
from server.budgets.budget import Budget, from_row
from server.budgets.usage import Reading, read, read_many
from server.core.principal import Principal
from server.query.engine import QueryEngine
from server.storage.db import q
from server.tenants.credentials import random_text

log = logging.getLogger(__name__)
LONGEST_PERIOD = dt.timedelta(days=400)  # a calendar period starts less than this before now (a year's)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Detector:
    def __init__(self, pool: asyncpg.Pool, engine: QueryEngine | None = None, *,
                 clock: Callable[[], dt.datetime] = _utcnow, slots: int | None = None) -> None:
        """slots: detections at once (each holds two connections); default half the pool."""
        self.pool = pool
        self.engine = engine or QueryEngine(pool)
        self.clock = clock
        # each detection holds a connection while the engine reads on another
        self._slots = asyncio.Semaphore(slots or max(1, (pool.get_max_size() - 1) // 2))
        self._reads = asyncio.Semaphore(max(1, pool.get_max_size() - 1))  # unlocked readings at once

    async def sweep(self) -> int:
        """Every organization with rules; returns the events written."""
        written = 0
        for row in await self.pool.fetch(q("alert_rule_orgs")):
            written += await self.organization(row["org_id"], row["organization_id"])
        return written

    async def organization(self, org_id: int, organization_id: str | None = None) -> int:
        """Every rule of one organization; returns the events written."""
        if organization_id is None:
            row = await self.pool.fetchrow(q("organization_by_number"), org_id)
            if row is None:
                return 0
            organization_id = row["id"]
        org = Principal(org_id=org_id, organization_id=organization_id, role="admin")
        rules = [from_row(r) for r in await self.pool.fetch(q("alert_rules"), org_id)]
        if not rules:
            return 0
        now = self.clock()
        states = await self.pool.fetch(q("alert_states_of_org"), org_id, [b.budget_id for b in rules],
                                       now - LONGEST_PERIOD, EPOCH)
        known: dict[tuple[str, dt.datetime], dict[str, str]] = {}
        for r in states:
            known.setdefault((r["rule_id"], r["period_start"]), {})[r["threshold"]] = r["state"]

        readings = await read_many(self.engine, org, rules, now)

        async def look(budget: Budget) -> int:
            """Read without the lock first: a rule whose states already follow its reading (the
            common case: nothing crossed) costs its share of one grouped reading; one that moved
            is read again and written under the lock (rule)."""
            reading = readings.get(budget.budget_id)
            if reading is None:
                async with self._reads:
                    reading = await read(self.engine, org, budget, now)
            if not transitions(reading, known.get((budget.budget_id, period_key(reading)), {})):
                return 0
            return await self.rule(org, budget.budget_id)
        return sum(await asyncio.gather(*(look(budget) for budget in rules)))

    async def rule(self, org: Principal, budget_id: str) -> int:
        """One budget's transitions, written with their events; returns how many events."""
        async with self._slots, self.pool.acquire() as conn, conn.transaction():
            await conn.execute(q("lock_alert_rule"), org.org_id, budget_id)
            row = await conn.fetchrow(q("get_budget"), org.org_id, budget_id)
            if row is None:
                return 0  # deleted meanwhile
            reading = await read(self.engine, org, from_row(row), self.clock())
            key = period_key(reading)
            states = {r["threshold"]: r["state"]
                      for r in await conn.fetch(q("alert_states_of"), org.org_id, budget_id, key)}
            changes = transitions(reading, states)
            for change in changes:
                await self._write(conn, org, reading, key, change)
        written = sum(1 for c in changes if c.event_type)
        if written:
            log.info("alerts: %d events for budget %s", written, budget_id)
        return written

    async def _write(self, conn: PoolConnectionProxy[asyncpg.Record], org: Principal, reading: Reading,
                     key: dt.datetime, change: Transition) -> None:
        event_id = ""
        if change.event_type is not None:
            event_id = "evt_" + random_text(24)
            body = payload(org.organization_id, reading, change, self.clock())
            await conn.execute(q("insert_alert_event"), org.org_id, event_id, change.event_type, body,
                               reading.budget.budget_id)
        await conn.execute(q("put_alert_state"), org.org_id, reading.budget.budget_id, key, change.threshold,
                           change.state, event_id)
