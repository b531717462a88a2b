"""Recompute the rollups of one (organization, UTC day) from raw events (DESIGN §5).

One REPEATABLE READ transaction: its first statement fixes the snapshot and
reads the day's dirty_windows rows; the dirty 15-minute windows are recomputed
from the raw events of that snapshot, then their UTC hours from the 15-minute
rows and the day from the hours; finally exactly the dirty rows the snapshot saw
are deleted. A write committed after the snapshot left its own dirty row, which
stays and triggers another pass.

Why this is exact under retries, crashes and concurrency:
* a crash or kill before COMMIT changes nothing;
* two overlapping passes over the same day both delete the dirty rows they saw,
  and any dirty row the later snapshot saw was still visible to the earlier one
  (deleters are only these passes), so their delete sets intersect and
  Postgres aborts one of them with a serialization failure (or a unique
  violation on the rollup keys); the loser is retried from a fresh snapshot;
* so committed passes over a day are serial, each one sees every event of its
  windows up to its snapshot, and a window without a visible dirty row has
  rollups equal to its raw events in any later snapshot.

A pass sums in bigint; where a sum does not fit (a row, or a finer row kept wide), that
raises and the pass runs again in a fresh snapshot with the wide statements, which keep
such rows' sums exactly in numeric (server/rollups/statements.py). It never fails on them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import asyncpg

from server.core.windows import day_start, hour_start
from server.rollups.cubes import GRAINS as CUBE_GRAINS
from server.rollups.cubes import cube_statements
from server.rollups.statements import rollup_statements
from server.storage.db import q

# SQLSTATEs that mean "another pass got there first": retry from a fresh snapshot.
RETRYABLE = frozenset({"40001", "40P01", "23505"})


@dataclasses.dataclass(frozen=True)
class RollupPass:
    windows: int  # 15-minute windows recomputed (0: nothing was dirty)
    dirty_left: bool  # dirty rows committed after our snapshot remain for this day


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.PostgresError) and getattr(exc, "sqlstate", None) in RETRYABLE


async def recompute_day(pool: asyncpg.Pool, org_id: int, day: dt.datetime) -> RollupPass:
    """One pass over the dirty windows of (org_id, UTC day `day`). Raises a
    retryable asyncpg error when a concurrent pass won (see is_retryable)."""
    day = day_start(day.astimezone(dt.UTC))
    try:
        return await _pass(pool, org_id, day, wide=False)
    except asyncpg.NumericValueOutOfRangeError:  # a sum beyond bigint: again, keeping it wide
        return await _pass(pool, org_id, day, wide=True)


async def _pass(pool: asyncpg.Pool, org_id: int, day: dt.datetime, wide: bool) -> RollupPass:
    async with pool.acquire() as conn:
        async with conn.transaction(isolation="repeatable_read"):
            await conn.execute(q("rollup_tuning"))  # the snapshot is taken here, before anything is read
            dirty = await conn.fetch(q("rollup_dirty_in_day"), org_id, day)
            if not dirty:
                return RollupPass(0, False)
            windows = sorted({r["window_start"] for r in dirty})
            hours = sorted({hour_start(w) for w in windows})
            for grain, starts in (("15m", windows), ("1h", hours), ("1d", [day])):  # finest first
                statements: tuple[str, ...] = rollup_statements(grain, wide).in_order()
                if grain in CUBE_GRAINS:  # the cubes sum the rows just written, in the same snapshot
                    statements += cube_statements(grain, wide).in_order()
                for statement in statements:
                    await conn.execute(statement, org_id, starts)
            await conn.execute(q("rollup_delete_dirty"), [r["id"] for r in dirty], org_id)
            await conn.execute(q("rollup_stamp_hours"), org_id, hours)
        left = await conn.fetchval(q("rollup_dirty_left"), org_id, day)
    return RollupPass(len(windows), bool(left))


async def dirty_days(pool: asyncpg.Pool, limit: int = 10_000) -> list[tuple[int, dt.datetime]]:
    """(org_id, UTC day) pairs that still have dirty windows, oldest mark first."""
    rows = await pool.fetch(q("rollup_sweep"), limit)
    return [(r["org_id"], r["day"]) for r in rows]
