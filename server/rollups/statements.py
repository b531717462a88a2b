"""The statements that recompute the rollups of a grain (server/rollups/recompute.py), generated
from the counter list (server.core.events.COUNTER_FIELDS) as the ingest and query statements are.

Grains (server/storage/migrations/0002_rollups.sql), finest first: 15-minute windows summed from
the raw active events, then UTC hours from the 15-minute rows and UTC days from the hours. A
pass recomputes them in this order in one transaction, so each coarser grain sums rows already
recomputed. Every statement takes $1 org and $2 the window starts of its grain (timestamptz[]).
The cubes (server/rollups/cubes.py) sum the same columns the same way.
"""

from __future__ import annotations

import dataclasses
import functools

from server.core.events import COUNTER_FIELDS, MONEY_FIELDS

GRAINS = ("15m", "1h", "1d")
# A grain's window, and the finer grain a coarser one is summed from.
WIDTHS = {"15m": "15 minutes", "1h": "1 hour", "1d": "1 day"}
FINER = {"1h": "15m", "1d": "1h"}
# The exact bigint sums (metering_sum), then the money sums and the newest event.
SUMMED = ("events", "unpriced_events", *COUNTER_FIELDS)
COLUMNS = (*SUMMED, *MONEY_FIELDS, "last_event_at")
# How a 15-minute row gets each column from its raw events (alias e); events without a cost add 0.
_FROM_EVENTS = {
    "events": "count(*)", "unpriced_events": "count(*) filter (where e.unpriced)",
    **{c: f"metering_sum(e.{c})" for c in COUNTER_FIELDS}, **{c: f"coalesce(sum(e.{c}), 0)" for c in MONEY_FIELDS},
    "last_event_at": "max(e.ts)",
}
# How a coarser row (a rollup of a coarser grain, or a cube) gets each column from rollup rows (alias r).
_FROM_ROLLUPS = {
    **{c: f"metering_sum(r.{c})" for c in SUMMED}, **{c: f"sum(r.{c})" for c in MONEY_FIELDS},
    "last_event_at": "max(r.last_event_at)",
}


@dataclasses.dataclass(frozen=True)
class Statements:
    """The three statements that replace a grain's rows, run in this order."""

    delete: str  # $1 org, $2 window starts: the rows of those windows, both tables
    insert: str  # $1 org, $2 window starts: the rows recomputed
    insert_counters: str  # the same for the extra counters

    def in_order(self) -> tuple[str, str, str]:
        return self.delete, self.insert, self.insert_counters


def column_list() -> str:
    """The columns every rollup and cube table has after its key (org_id, window_start, series_id)."""
    return ", ".join(COLUMNS)


def sums_of_rollups() -> str:
    """The aggregates of column_list() over rollup rows aliased r."""
    return ", ".join(_FROM_ROLLUPS[c] for c in COLUMNS)


def delete_windows(table: str, counters: str) -> str:
    """$1 org, $2 window starts: delete their rows of `table` and of its extra-counter table."""
    return f"""
with counters as (
    delete from {counters} where org_id = $1 and window_start = any($2::timestamptz[])
)
delete from {table} where org_id = $1 and window_start = any($2::timestamptz[])"""


def _from_events(table: str, counters: str, width: str) -> tuple[str, str]:
    """The base grain: each window's active raw events, by series."""
    events = f"""
from unnest($2::timestamptz[]) as w(window_start)
join events e on e.org_id = $1 and e.ts >= w.window_start and e.ts < w.window_start + interval '{width}'"""
    insert = f"""
insert into {table} (org_id, window_start, series_id, {column_list()})
select $1, w.window_start, e.series_id, {", ".join(_FROM_EVENTS[c] for c in COLUMNS)}{events}
where e.active
group by w.window_start, e.series_id"""
    insert_counters = f"""
insert into {counters} (org_id, window_start, series_id, name, value)
select $1, w.window_start, e.series_id, kv.key, metering_sum(kv.value::bigint){events}
cross join lateral jsonb_each_text(e.counters) as kv
where e.active and e.counters is not null
group by w.window_start, e.series_id, kv.key"""
    return insert, insert_counters


def _from_finer(table: str, counters: str, width: str, finer: str) -> tuple[str, str]:
    """A coarser grain: the finer grain's rows (already recomputed in this transaction) in each window."""
    def within(source: str) -> str:
        return f"""
from unnest($2::timestamptz[]) as w(window_start)
join {source} r on r.org_id = $1 and r.window_start >= w.window_start
    and r.window_start < w.window_start + interval '{width}'"""

    insert = f"""
insert into {table} (org_id, window_start, series_id, {column_list()})
select $1, w.window_start, r.series_id, {sums_of_rollups()}{within(f"rollups_{finer}")}
group by w.window_start, r.series_id"""
    insert_counters = f"""
insert into {counters} (org_id, window_start, series_id, name, value)
select $1, w.window_start, r.series_id, r.name, metering_sum(r.value){within(f"rollup_counters_{finer}")}
group by w.window_start, r.series_id, r.name"""
    return insert, insert_counters


@functools.cache
def rollup_statements(grain: str) -> Statements:
    """The statements that recompute the rollups_<grain> and rollup_counters_<grain> rows of
    some windows; a coarser grain reads the finer one, so run the grains in GRAINS order."""
    if grain not in GRAINS:
        raise ValueError(f"grain: one of {GRAINS}")
    table, counters = f"rollups_{grain}", f"rollup_counters_{grain}"
    if grain in FINER:
        insert, insert_counters = _from_finer(table, counters, WIDTHS[grain], FINER[grain])
    else:
        insert, insert_counters = _from_events(table, counters, WIDTHS[grain])
    return Statements(delete_windows(table, counters), insert, insert_counters)
