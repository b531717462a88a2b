"""Monthly partitions of events and event_payloads, created on first use."""

from __future__ import annotations

import datetime as dt

import asyncpg

from server.db import q


def month_of(ts: dt.datetime) -> dt.datetime:
    return ts.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class Partitions:
    def __init__(self) -> None:
        self._known: set[dt.datetime] = set()

    async def ensure(self, pool: asyncpg.Pool, stamps: set[dt.datetime]) -> None:
        months = {month_of(ts) for ts in stamps} - self._known
        if not months:
            return
        async with pool.acquire() as conn:
            for month in sorted(months):
                await conn.execute(q("ensure_partition"), month)
        self._known |= months
