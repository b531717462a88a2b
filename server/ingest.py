"""The exactly-once write path (DESIGN §4).

One transaction per batch: claim the (organization, request_id) keys, COPY the
newly claimed events and their payloads, mark their 15-minute windows dirty,
commit. A key is claimed in the same transaction as its event, so a failed write
never burns a key; a key held by a concurrent uncommitted transaction makes us
wait for it, then count as a duplicate (or claim it, if that one rolled back).
Keys are claimed in sorted order so concurrent batches cannot deadlock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Sequence

import asyncpg

from server.db import q
from server.events import COUNTER_FIELDS, PAYLOAD_FIELDS, NewEvent
from server.partitions import Partitions
from server.pricing_book import Pricer
from server.series import SeriesCache

# Called after a write commits with the (org_id, window_start) pairs it marked dirty.
AfterCommit = Callable[[Iterable[tuple[int, dt.datetime]]], None]
WINDOW = dt.timedelta(minutes=15)  # the base grain every IANA zone offset aligns to
_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

EVENT_COLUMNS = (
    "org_id", "ts", "event_id", "series_id", "request_id", "received_at", "updated_at",
    *COUNTER_FIELDS, "counters", "input_cost", "output_cost", "cost", "price_version", "unpriced", "has_payload",
)
PAYLOAD_COLUMNS = ("org_id", "ts", "event_id", *PAYLOAD_FIELDS)


@dataclasses.dataclass(frozen=True)
class Written:
    recorded: bool  # False: a duplicate of event_id
    event_id: uuid.UUID
    request_id: str
    received_at: dt.datetime | None = None  # when recorded; None for a duplicate


def window_start(ts: dt.datetime) -> dt.datetime:
    return ts - (ts - _EPOCH) % WINDOW


class EventWriter:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.series = SeriesCache()
        self.partitions = Partitions()
        self.pricer = Pricer()  # prices events without a cost (server/pricing_book.py)
        self.after_commit: AfterCommit | None = None  # e.g. enqueue rollups (server/rollups_queue.py)

    async def write(self, items: Sequence[tuple[int, NewEvent]]) -> list[Written]:
        """Write (org_id, event) pairs; returns one result per item, in order."""
        items = await self.pricer.price(self.pool, items)
        first: dict[tuple[int, str], int] = {}
        for i, (org, event) in enumerate(items):
            first.setdefault((org, event.request_id), i)
        candidates = sorted(first.items())  # ((org, request_id), index), sorted: no deadlocks
        await self.partitions.ensure(self.pool, {items[i][1].ts for _, i in candidates})
        series_ids = await self.series.resolve(self.pool, {(org, e.series) for org, e in items})

        async with self.pool.acquire() as conn, conn.transaction():
            claimed_rows = await conn.fetch(
                q("claim_request_keys"),
                [org for (org, _), _ in candidates],
                [rid for (_, rid), _ in candidates],
                [items[i][1].event_id for _, i in candidates],
                [items[i][1].ts for _, i in candidates],
            )
            claimed = {(r["org_id"], r["request_id"]) for r in claimed_rows}
            existing: dict[tuple[int, str], uuid.UUID] = {}
            taken = [key for key, _ in candidates if key not in claimed]
            if taken:
                rows = await conn.fetch(q("find_request_keys"), [o for o, _ in taken], [r for _, r in taken])
                existing = {(r["org_id"], r["request_id"]): r["event_id"] for r in rows}
            fresh = [items[i] for key, i in candidates if key in claimed]
            now = dt.datetime.now(dt.UTC)
            windows = await self._copy(conn, fresh, series_ids, now) if fresh else []
        if windows and self.after_commit is not None:
            self.after_commit(windows)

        results = []
        for i, (org, event) in enumerate(items):
            key = (org, event.request_id)
            if first[key] == i and key in claimed:
                results.append(Written(True, event.event_id, event.request_id, now))
            else:
                original = existing.get(key) or items[first[key]][1].event_id
                results.append(Written(False, original, event.request_id))
        return results

    async def _copy(
        self, conn: asyncpg.Connection, fresh: list[tuple[int, NewEvent]], series_ids: dict, now: dt.datetime
    ) -> list[tuple[int, dt.datetime]]:
        records = []
        payloads = []
        windows = set()
        for org, e in fresh:
            records.append((
                org, e.ts, e.event_id, series_ids[(org, e.series)], e.request_id, now, now,
                *e.counters, e.extra_counters, e.input_cost, e.output_cost, e.cost,
                e.price_version, e.cost is None, e.payload is not None,
            ))
            if e.payload is not None:
                payloads.append((org, e.ts, e.event_id, *e.payload))
            windows.add((org, window_start(e.ts)))
        await conn.copy_records_to_table("events", records=records, columns=EVENT_COLUMNS)
        if payloads:
            await conn.copy_records_to_table("event_payloads", records=payloads, columns=PAYLOAD_COLUMNS)
        ordered = sorted(windows)
        await conn.execute(q("mark_dirty"), [o for o, _ in ordered], [w for _, w in ordered])
        return ordered
