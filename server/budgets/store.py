"""Stored budgets: create, read, list (AIP-158 pages by create time), update, delete.

Every change bumps the organization's budget revision in its own transaction
(server/budgets/book.py), and the change is validated before anything is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import asyncpg

from metering import page_token
from server.budgets.book import Books
from server.budgets.budget import Budget, from_row
from server.core.errors import FailedPrecondition, InvalidArgument, NotFound
from server.storage.db import q
from server.tenants.credentials import random_text

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_BUDGETS = 10_000  # per organization: every server keeps an organization's budgets in memory


def _not_found(budget_id: str) -> NotFound:
    return NotFound(f"budget {budget_id[:64]!r} not found")


class BudgetStore:
    def __init__(self, pool: asyncpg.Pool, books: Books) -> None:
        self.pool = pool
        self.books = books

    async def create(self, org_id: int, budget: Budget) -> Budget:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(q("bump_budget_book"), org_id)  # also serializes the organization's creates
            if await conn.fetchval(q("count_budgets"), org_id) >= MAX_BUDGETS:
                raise FailedPrecondition(f"an organization has at most {MAX_BUDGETS} budgets")
            row = await conn.fetchrow(q("insert_budget"), org_id, "bud_" + random_text(16), *budget.values())
        self.books.forget(org_id)
        assert row is not None
        return from_row(row)

    async def get(self, org_id: int, budget_id: str) -> Budget:
        row = await self.pool.fetchrow(q("get_budget"), org_id, budget_id)
        if row is None:
            raise _not_found(budget_id)
        return from_row(row)

    async def page(self, org_id: int, page_size: int, token: str, binding: str) -> tuple[list[Budget], str]:
        """A page of the organization's budgets by create time, and the next page's token
        ("" at the end). `binding` names what else decides the pages (the caller's scope)."""
        size = page_size or DEFAULT_PAGE_SIZE
        if not 0 < size <= MAX_PAGE_SIZE:
            raise InvalidArgument("page_size", f"between 1 and {MAX_PAGE_SIZE}")
        after: tuple[dt.datetime | None, str | None] = (None, None)
        if token:
            try:
                fields = page_token.decode(token, binding)
                after = fields.instant("t"), fields.text("i")
            except page_token.PageTokenError as err:
                raise InvalidArgument("page_token", str(err)) from None
        rows = await self.pool.fetch(q("list_budgets"), org_id, *after, size + 1)
        budgets = [from_row(r) for r in rows[:size]]
        last = budgets[-1] if len(rows) > size else None
        if last is None or last.create_time is None:
            return budgets, ""
        return budgets, page_token.encode({"t": last.create_time.isoformat(), "i": last.budget_id}, binding)

    async def update(self, org_id: int, budget_id: str, change: Callable[[Budget], Budget]) -> Budget:
        """`change` makes the new budget from the current one (under its row lock); it
        raises InvalidArgument to write nothing."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q("lock_budget"), org_id, budget_id)
            if row is None:
                raise _not_found(budget_id)
            new = change(from_row(row))
            row = await conn.fetchrow(q("update_budget"), org_id, budget_id, *new.values())
            await conn.execute(q("bump_budget_book"), org_id)
        self.books.forget(org_id)
        assert row is not None
        return from_row(row)

    async def delete(self, org_id: int, budget_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(q("delete_budget"), org_id, budget_id) is None:
                raise _not_found(budget_id)
            await conn.execute(q("bump_budget_book"), org_id)
        self.books.forget(org_id)
