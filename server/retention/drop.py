"""The retention sweep: drops whole monthly partitions of events and event_payloads (never
DELETE) once they are past every organization's horizon, by a day's grace, and, for
events, once no window in them is dirty (every window rolled up). Then forgets the request
keys of the dropped events.

Why a dirty window in a dropped month cannot exist: a window is marked dirty only in the
transaction that writes or changes one of its events. Changes (update, void, repricing)
need the event, and a dropped month has none. Ingest refuses event times before the
organization's horizon and before the floor of dropped months (retention_floor), raised in
the transaction of the drop. The drop decides under the parent tables' ACCESS EXCLUSIVE
locks, so every write to the month has committed (with its mark) or waits and then meets the
floor; and it drops nothing while a mark is left in the month. So the rollups of a dropped
month are final, and queries over it read them (exact) and never its raw events."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from typing import Any

import asyncpg

from server.storage.db import q
from server.storage.horizons import Retention, effective, retention_defaults

log = logging.getLogger(__name__)
GRACE = dt.timedelta(days=1)  # past the horizon: a process's cached horizon is at most seconds old
LOCK_TIMEOUT = "2s"  # waiting longer for the parents' locks would stall ingest: try at the next sweep
_PARTITION = re.compile(r"^(events|event_payloads)_(\d{4})_(\d{2})$")


@dataclasses.dataclass
class SweepResult:
    dropped: list[str] = dataclasses.field(default_factory=list)
    kept_dirty: list[str] = dataclasses.field(default_factory=list)  # past the horizon, not rolled up yet
    keys_forgotten: int = 0


def _month_end(start: dt.datetime) -> dt.datetime:
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def _longest(rows: list[asyncpg.Record], defaults: Retention) -> Retention:
    """What every organization keeps: the longest retention of each kind (None: for ever)."""
    kept = [effective(r["event_days"], r["payload_days"], defaults) for r in rows]
    return Retention(_max([k.event_days for k in kept]), _max([k.payload_days for k in kept]))


def _max(days: list[int | None]) -> int | None:
    """The longest (None: for ever, also when there is nobody to ask)."""
    finite = [d for d in days if d is not None]
    return max(finite) if days and len(finite) == len(days) else None


def _before(days: int | None, now: dt.datetime) -> dt.datetime | None:
    return None if days is None else now - dt.timedelta(days=days) - GRACE


async def _months(pool: asyncpg.Pool) -> dict[dt.datetime, set[str]]:
    """Month start -> the parents ('events', 'event_payloads') that have its partition."""
    months: dict[dt.datetime, set[str]] = {}
    for row in await pool.fetch(q("retention_partitions")):
        match = _PARTITION.match(row["partition"])
        if match:
            start = dt.datetime(int(match[2]), int(match[3]), 1, tzinfo=dt.UTC)
            months.setdefault(start, set()).add(match[1])
    return months


async def drop_expired(pool: asyncpg.Pool, defaults: Retention | None = None,
                       now: dt.datetime | None = None) -> SweepResult:
    """Drops every partition that may go, oldest month first; idempotent."""
    defaults = retention_defaults() if defaults is None else defaults
    now = dt.datetime.now(dt.UTC) if now is None else now
    result = SweepResult()
    kept = _longest(await pool.fetch(q("all_retention")), defaults)  # decided again under the lock, month by month
    before = [b for b in (_before(kept.event_days, now), _before(kept.payload_days, now)) if b is not None]
    for start, parents in sorted((await _months(pool)).items()):
        end = _month_end(start)
        if not before or end > max(before):
            break  # this month and the later ones are inside every horizon
        dropped = await _drop_month(pool, defaults, now, start, end, parents, result)
        if "events" in dropped:
            status = await pool.execute(q("retention_forget_keys"), end)
            result.keys_forgotten += int(status.split()[-1])
    if result.dropped or result.kept_dirty:
        log.info("retention dropped %s; kept (windows not rolled up yet) %s", result.dropped, result.kept_dirty)
    return result


async def _drop_month(pool: asyncpg.Pool, defaults: Retention, now: dt.datetime, start: dt.datetime,
                      end: dt.datetime, parents: set[str], result: SweepResult) -> set[str]:
    suffix = f"{start:%Y_%m}"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(q("retention_tuning"), LOCK_TIMEOUT)
        await conn.execute(q("retention_lock"))  # settings changes wait for this decision
        kept = _longest(await conn.fetch(q("all_retention")), defaults)
        events_before, payloads_before = _before(kept.event_days, now), _before(kept.payload_days, now)
        drop = {parent for parent, before in (("events", events_before), ("event_payloads", payloads_before))
                if parent in parents and before is not None and end <= before}
        if "events" in drop and "event_payloads" in parents:
            drop.add("event_payloads")  # payloads never outlive their events
        if not drop:
            return set()
        await conn.execute(q("retention_partition_lock"))
        try:
            for parent in sorted(drop):  # the parents first: a writer takes them before a partition
                await conn.execute(f"lock table {parent} in access exclusive mode")
        except asyncpg.LockNotAvailableError:
            log.info("retention: %s busy, trying %s again at the next sweep", sorted(drop), suffix)
            return set()
        if "events" in drop and await conn.fetchval(q("retention_dirty_in"), start, end):
            result.kept_dirty.append(f"events_{suffix}")
            drop = set()  # its payloads wait too: the month is dropped whole or not yet
        for parent in sorted(drop):
            await conn.execute(f"drop table {parent}_{suffix}")  # names from the catalog, matched above
            result.dropped.append(f"{parent}_{suffix}")
        if drop:
            await conn.execute(q("retention_raise_floor"), end if "events" in drop else None,
                               end if "event_payloads" in drop else None)
    return drop


async def retention_sweep(ctx: dict[str, Any]) -> int:
    """The worker's cron job: partitions dropped now."""
    return len((await drop_expired(ctx["db"], ctx.get("retention_defaults"))).dropped)
