"""Monthly partitions of events and event_payloads, created on first use."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import asyncpg

from server.storage.db import q


class Partitions:
    def __init__(self) -> None:
        self._known: set[dt.datetime] = set()

    async def ensure(self, pool: asyncpg.Pool, stamps: Iterable[dt.datetime]) -> None:
        # (year, month) pairs first: cheap per event; datetimes only for new months.
        utc = (ts if ts.tzinfo is dt.UTC else ts.astimezone(dt.UTC) for ts in stamps)
        pairs = {(ts.year, ts.month) for ts in utc}
        months = {dt.datetime(y, m, 1, tzinfo=dt.UTC) for y, m in pairs} - self._known
        if not months:
            return
        async with pool.acquire() as conn:
            for month in sorted(months):
                await conn.execute(q("ensure_partition"), month)
        self._known |= months
