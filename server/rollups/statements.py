"""The statements that recompute the rollups of a grain (server/rollups/recompute.py), generated
from the counter list (server.core.events.COUNTER_FIELDS) as the ingest and query statements are.

Grains (server/storage/migrations/0002_rollups.sql), finest first: 15-minute windows summed from
the raw active events, then UTC hours from the 15-minute rows and UTC days from the hours. A
pass recomputes them in this order in one transaction, so each coarser grain sums rows already
recomputed. Every statement takes $1 org and $2 the window starts of its grain (timestamptz[]).
The cubes (server/rollups/cubes.py) sum the same columns the same way.

Sums never overflow (server/storage/migrations/0010_exact_sums.sql). A pass first sums the
counters in bigint (metering_sum, which raises "out of range" past it, as does reading a finer
row kept wide); that always succeeds for real usage. When it raises, the pass runs again with
the wide statements: every counter summed exactly, in numeric, and kept in the row's bigint
columns when they all fit, else in its `wide` array (COUNTER_FIELDS order, the bigint columns
null; it takes 9,223,373 events at the per-event maximum of one series in one window); a
coarser row adds both. Rows stay bigint so that queries sum bigint (server/query/sql.py), and
the bigint pass is what keeps the pass as fast as before (the wide one takes ~40% longer).
The event counts need no such care: 2^63 events are 292,000 years at 10^6 events/s.
"""

from __future__ import annotations

import dataclasses
import functools

from server.core.events import COUNTER_FIELDS, MONEY_FIELDS

GRAINS = ("15m", "1h", "1d")
# A grain's window, and the finer grain a coarser one is summed from.
WIDTHS = {"15m": "15 minutes", "1h": "1 hour", "1d": "1 day"}
FINER = {"1h": "15m", "1d": "1h"}
# The event counts, the counters (bigint columns, or `wide`), the money and the newest event.
COUNTS = ("events", "unpriced_events")
COLUMNS = (*COUNTS, *COUNTER_FIELDS, *MONEY_FIELDS, "last_event_at")
INT64_MAX = 2**63 - 1
_FIRST = COUNTER_FIELDS[0]
# How a 15-minute row gets each column from its raw events (alias e); events without a cost add 0.
# Bigint (the first try), or wide: numeric sums, exact whatever their size.
_FROM_EVENTS = {
    "events": "count(*)", "unpriced_events": "count(*) filter (where e.unpriced)",
    **{c: f"metering_sum(e.{c})" for c in COUNTER_FIELDS}, **{c: f"coalesce(sum(e.{c}), 0)" for c in MONEY_FIELDS},
    "last_event_at": "max(e.ts)",
}
_WIDE_FROM_EVENTS = {**_FROM_EVENTS, **{c: f"sum(e.{c})" for c in COUNTER_FIELDS}}
# How a coarser row (a rollup of a coarser grain, or a cube) gets each column from rollup rows
# (alias r). In bigint a wide row raises (its counters are null: reading the first calls
# metering_wide_row); wide, a counter is the sum of the bigint columns plus the wide values.
_FROM_ROLLUPS = {
    **{c: f"metering_sum(r.{c})" for c in (*COUNTS, *COUNTER_FIELDS)},
    _FIRST: f"metering_sum(coalesce(r.{_FIRST}, metering_wide_row(r.wide)))",
    **{c: f"sum(r.{c})" for c in MONEY_FIELDS}, "last_event_at": "max(r.last_event_at)",
}
_WIDE_FROM_ROLLUPS = {
    **_FROM_ROLLUPS,
    **{c: f"coalesce(sum(r.{c}), 0) + coalesce(sum(r.wide[{i}]), 0)" for i, c in enumerate(COUNTER_FIELDS, 1)},
}


@dataclasses.dataclass(frozen=True)
class Statements:
    """The three statements that replace a grain's rows, run in this order."""

    delete: str  # $1 org, $2 window starts: the rows of those windows, both tables
    insert: str  # $1 org, $2 window starts: the rows recomputed
    insert_counters: str  # the same for the extra counters

    def in_order(self) -> tuple[str, str, str]:
        return self.delete, self.insert, self.insert_counters


def sums_of_rollups(wide: bool) -> str:
    """The aggregates of COLUMNS over rollup rows aliased r, each named as its column; wide: then `fits`."""
    return _named(_WIDE_FROM_ROLLUPS if wide else _FROM_ROLLUPS, wide)


def _named(sums: dict[str, str], wide: bool) -> str:
    """The aggregates, each named as its column; wide: and `fits`, whether every counter sum fits a bigint."""
    named = [f"{sums[c]} as {c}" for c in COLUMNS]
    if wide:
        named.append(f"greatest({', '.join(sums[c] for c in COUNTER_FIELDS)}) <= {INT64_MAX} as fits")
    return ", ".join(named)


def stored(table: str, grouped: str, wide: bool) -> str:
    """Insert into `table` the rows of `grouped`, a select of (window_start, series_id, COLUMNS
    and, wide, fits): wide, the counters in their bigint columns when they all fit, else in `wide`."""
    values = [f"s.{c}" for c in COLUMNS]
    if wide:
        values = [f"case when s.fits then s.{c}::bigint end" if c in COUNTER_FIELDS else f"s.{c}" for c in COLUMNS]
        values.append(f"case when not s.fits then array[{', '.join(f's.{c}' for c in COUNTER_FIELDS)}] end")
    return f"""
insert into {table} (org_id, window_start, series_id, {", ".join((*COLUMNS, "wide") if wide else COLUMNS)})
select $1, s.window_start, s.series_id, {", ".join(values)}
from ({grouped}
) s"""


def delete_windows(table: str, counters: str) -> str:
    """$1 org, $2 window starts: delete their rows of `table` and of its extra-counter table."""
    return f"""
with counters as (
    delete from {counters} where org_id = $1 and window_start = any($2::timestamptz[])
)
delete from {table} where org_id = $1 and window_start = any($2::timestamptz[])"""


def _from_events(table: str, counters: str, width: str, wide: bool) -> tuple[str, str]:
    """The base grain: each window's active raw events, by series."""
    events = f"""
from unnest($2::timestamptz[]) as w(window_start)
join events e on e.org_id = $1 and e.ts >= w.window_start and e.ts < w.window_start + interval '{width}'"""
    insert = stored(table, f"""
    select w.window_start, e.series_id, {_named(_WIDE_FROM_EVENTS if wide else _FROM_EVENTS, wide)}{events}
    where e.active
    group by w.window_start, e.series_id""", wide)
    insert_counters = f"""
insert into {counters} (org_id, window_start, series_id, name, value)
select $1, w.window_start, e.series_id, kv.key, sum(kv.value::numeric){events}
cross join lateral jsonb_each_text(e.counters) as kv
where e.active and e.counters is not null
group by w.window_start, e.series_id, kv.key"""
    return insert, insert_counters


def _from_finer(table: str, counters: str, width: str, finer: str, wide: bool) -> tuple[str, str]:
    """A coarser grain: the finer grain's rows (already recomputed in this transaction) in each window."""
    def within(source: str) -> str:
        return f"""
from unnest($2::timestamptz[]) as w(window_start)
join {source} r on r.org_id = $1 and r.window_start >= w.window_start
    and r.window_start < w.window_start + interval '{width}'"""

    insert = stored(table, f"""
    select w.window_start, r.series_id, {sums_of_rollups(wide)}{within(f"rollups_{finer}")}
    group by w.window_start, r.series_id""", wide)
    insert_counters = f"""
insert into {counters} (org_id, window_start, series_id, name, value)
select $1, w.window_start, r.series_id, r.name, sum(r.value){within(f"rollup_counters_{finer}")}
group by w.window_start, r.series_id, r.name"""
    return insert, insert_counters


@functools.cache
def rollup_statements(grain: str, wide: bool = False) -> Statements:
    """The statements that recompute the rollups_<grain> and rollup_counters_<grain> rows of
    some windows; a coarser grain reads the finer one, so run the grains in GRAINS order.
    Not wide, they raise "out of range" where a counter sum does not fit a bigint."""
    if grain not in GRAINS:
        raise ValueError(f"grain: one of {GRAINS}")
    table, counters = f"rollups_{grain}", f"rollup_counters_{grain}"
    if grain in FINER:
        insert, insert_counters = _from_finer(table, counters, WIDTHS[grain], FINER[grain], wide)
    else:
        insert, insert_counters = _from_events(table, counters, WIDTHS[grain], wide)
    return Statements(delete_windows(table, counters), insert, insert_counters)
