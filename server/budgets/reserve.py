"""The critical section of reserving Checks, batched: the concurrent reservations of one
server process share one transaction (metering_budget_reserve), as ingest's group commit
shares one among concurrent events (server/ingest/group_commit.py).

A reservation must be durable before it is answered, and a budget's row lock is held
until the commit is flushed: one reservation per transaction would allow a hot budget
about one reservation per WAL flush. Batched, each flush carries every reservation that
queued meanwhile, and each is still decided under the locks, in order, seeing the holds
of the ones before it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from collections.abc import Sequence
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from server.ingest.group_commit import GroupCommitter
from server.storage.db import q

MAX_BATCH = 256
MAX_INFLIGHT = 4  # transactions of one process at once (batches of other budgets proceed meanwhile)
Database: TypeAlias = "asyncpg.Pool | PoolConnectionProxy[asyncpg.Record]"


@dataclasses.dataclass(frozen=True)
class Item:
    """One reserving Check's critical section: its budgets in budget_id order, each with the
    settle_seq read before the usage, its headroom and verdict inputs, and the amount held."""

    org_id: int
    now: dt.datetime
    revision: int
    reservation_id: str
    request_id: str | None
    expires_at: dt.datetime
    api_key_id: str | None
    user_id: str | None
    budget_ids: list[str]
    seqs: list[int]
    headroom: list[decimal.Decimal]
    strict: list[bool]
    enforce: list[bool]
    blocked: list[bool]
    amounts: list[decimal.Decimal]


async def reserve(db: Database, items: Sequence[Item]) -> list[asyncpg.Record]:
    """The outcome of each item (budget_reserve's row), in order, in one statement."""
    per_budget = [entry for item in items for entry in zip(
        item.budget_ids, item.seqs, item.headroom, item.strict, item.enforce, item.blocked, item.amounts,
        strict=True)]
    columns = list(map(list, zip(*per_budget, strict=True))) if per_budget else [[] for _ in range(7)]
    rows = await db.fetch(
        q("budget_reserve"), [i.org_id for i in items], [i.now for i in items], [i.revision for i in items],
        [i.reservation_id for i in items], [i.request_id for i in items], [i.expires_at for i in items],
        [i.api_key_id for i in items], [i.user_id for i in items], [len(i.budget_ids) for i in items], *columns,
    )
    by_item = {row["item"]: row for row in rows}
    return [by_item[n] for n in range(1, len(items) + 1)]


class Reserver:
    """Coalesces the concurrent reserving Checks of this process into batches."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._committer: GroupCommitter[Item, asyncpg.Record] = GroupCommitter(
            self._write, max_batch=MAX_BATCH, max_inflight=MAX_INFLIGHT, name="budget_reservations")

    async def submit(self, item: Item) -> asyncpg.Record:
        return await self._committer.submit(item)

    async def _write(self, items: list[Item]) -> list[asyncpg.Record]:
        return await reserve(self.pool, items)

    async def close(self) -> None:
        await self._committer.close()
