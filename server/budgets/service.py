"""The budgets of a server process: storage, the in-memory copies, Check and reservations,
made, started and stopped together (server/runtime/app.py)."""

from __future__ import annotations

import asyncpg

from server.budgets.book import Books
from server.budgets.check import Checker
from server.budgets.reservations import Reservations
from server.budgets.store import BudgetStore
from server.query.engine import QueryEngine


class Budgets:
    def __init__(self, pool: asyncpg.Pool, engine: QueryEngine) -> None:
        self.books = Books(pool)
        self.store = BudgetStore(pool, self.books)
        self.checker = Checker(pool, engine, self.books)
        self.reservations = Reservations(pool)

    def start(self) -> None:
        """The sweep of expired reservations, once a minute."""
        self.reservations.start()

    async def close(self) -> None:
        await self.reservations.close()
        await self.checker.close()
