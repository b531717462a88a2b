"""Each organization's budgets, kept in memory to find the budgets covering a usage.

A copy is named by the organization's budget revision (budget_books, bumped in the
transaction of every budget change). It is never trusted for an answer: a Check
verifies the revision in the same statement that locks the covering budgets
(metering_budget_check) and reloads on a mismatch, so a budget created or changed on
another replica counts from the moment its change commits. When Postgres cannot be
reached, the copy is what a degraded Check knows (server/budgets/check.py).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import asyncpg

from metering.lru import LRU
from server.budgets.budget import Budget, from_row
from server.budgets.scope import CoverIndex
from server.storage.db import q

MAX_ORGANIZATIONS = 10_000


@dataclasses.dataclass(frozen=True)
class Book:
    revision: int
    budgets: tuple[Budget, ...]  # by budget_id
    index: CoverIndex
    loaded_at: float  # the clock's reading when loaded

    @classmethod
    def of(cls, revision: int, budgets: list[Budget], loaded_at: float) -> Book:
        return cls(revision, tuple(budgets), CoverIndex(budgets), loaded_at)


class Books:
    def __init__(self, pool: asyncpg.Pool, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.pool = pool
        self.clock = clock
        self._kept: LRU[int, Book] = LRU(MAX_ORGANIZATIONS)

    async def get(self, org_id: int) -> Book:
        return self._kept.get(org_id) or await self.load(org_id)

    async def load(self, org_id: int) -> Book:
        rows = await self.pool.fetch(q("budget_book"), org_id)
        book = Book.of(rows[0]["revision"], [from_row(r) for r in rows if r["budget_id"] is not None], self.clock())
        self._kept.put(org_id, book)
        return book

    def cached(self, org_id: int) -> Book | None:
        """The copy kept, however old (a degraded Check's knowledge); None: none."""
        return self._kept.get(org_id)

    def forget(self, org_id: int) -> None:
        self._kept.pop(org_id)
