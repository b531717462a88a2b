"""Reservations after their Check: release without usage, and the sweep of expired ones.

A reservation is settled by the event carrying its id, in the transaction that writes
the event (server/ingest/writer.py, metering_budget_close); released here; or expires
at its TTL. An expired hold stops counting at once (a Check ignores holds past their
expiry); the sweep, which every server runs once a minute, marks such reservations
expired, removes their holds, and deletes reservations closed over a week ago. Running
it on every replica at once is harmless: each takes rows the others have not locked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from server.core.errors import NotFound
from server.core.principal import Principal
from server.storage.db import q

log = logging.getLogger(__name__)
SWEEP_INTERVAL = 60.0  # seconds
SWEEP_BATCH = 1000


class Reservations:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._sweeper: asyncio.Task[None] | None = None

    async def release(self, principal: Principal, reservation_id: str) -> bool:
        """True when it was open and is released now; False when already settled, released
        or expired. A scoped caller may release only the reservations it took."""
        row = await self.pool.fetchrow(q("get_reservation"), principal.org_id, reservation_id)
        if row is None or not _may_release(principal, row):
            raise NotFound(f"reservation {reservation_id[:64]!r} not found")
        closed = await self.pool.fetch(q("close_reservations"), [principal.org_id], [reservation_id], [None],
                                       "released")
        return bool(closed)

    async def sweep(self) -> tuple[int, int]:
        """(reservations expired now, closed ones deleted), at most SWEEP_BATCH of each."""
        row = await self.pool.fetchrow(q("sweep_reservations"), SWEEP_BATCH)
        assert row is not None
        return row["expired"], row["forgotten"]

    def start(self, interval: float = SWEEP_INTERVAL) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_every(interval))

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def _sweep_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                expired, forgotten = await self.sweep()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("reservation sweep failed: %s", type(exc).__name__)
                continue
            if expired or forgotten:
                log.info("reservation sweep: %d expired, %d forgotten", expired, forgotten)


def _may_release(principal: Principal, row: asyncpg.Record) -> bool:
    """An organization admin releases any reservation; another caller those its user or key took."""
    if principal.is_admin and principal.project_id is None:
        return True
    if principal.user_id is not None and row["user_id"] == principal.user_id:
        return True
    return principal.api_key_id is not None and row["api_key_id"] == principal.api_key_id
