"""The aggregate statement of the query engine (server/query/engine.py), written for the sources a call reads.

One row per (bucket, group) with the event count, the fixed counters (an array in
server.core.events.COUNTER_FIELDS order), the costs, the newest event time, and the extra
counters as {name: sum} (null when the group has none). One statement, so the group keys
of the series are computed once.

Sources (server/query/plan.py decides which stretch comes from which): the rollup grains
("days" rollups_1d, "cubes" cubes_1d, "hours" rollups_1h, "hour_cubes" cubes_1h, "windows"
rollups_15m) and the
raw events ("raw"), each read over (lo, hi) ranges; and "tails", the events appended to
rolled-up windows since their rollup, read by their marks (server/storage/migrations/0005_tails.sql).
Only the sources a call reads are written into its statement: Postgres plans every branch
of a statement on every call (plans are custom, see query_tuning in sql/query.sql), and a
branch over the partitioned events costs planning time even when its ranges are empty (a
dashboard reading only today's appended events planned for 3-8 ms, then ran for 2).
Each source gives one text, so asyncpg prepares each variant once per connection.

Each range is read by its own index scan: "lateral (... offset 0)" keeps the planner from
turning the range join into a scan of the whole table.

Sums never overflow (docs/queries.md, "Exact sums"). A statement sums the counters in bigint
(metering_sum; summing numeric made the cold grouped month's statement 2.2x slower, and asyncpg
decodes 9,300 groups' counters in 110 ms as numeric, 18 ms as bigint) and raises "out of range"
when a sum exceeds it or when it meets a rollup row whose sums are kept wide
(server/storage/migrations/0010_exact_sums.sql: such a row's counter columns are null, and
reading the first one asked for then calls metering_wide_row, which raises; 4-5% of the
statement's time). The engine then reads the call again with the statement's `wide` form,
which sums in numeric and adds the wide rows' values (server/query/engine.py): every sum is
exact, whatever its size.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from asyncpg.pool import PoolConnectionProxy

from server.core.events import COUNTER_FIELDS
from server.query.rows import GroupRow, Record

ROLLUPS = {  # source -> (table of fixed counters, table of extra counters)
    "days": ("rollups_1d", "rollup_counters_1d"),
    "cubes": ("cubes_1d", "cube_counters_1d"),
    "hours": ("rollups_1h", "rollup_counters_1h"),
    "hour_cubes": ("cubes_1h", "cube_counters_1h"),
    "windows": ("rollups_15m", "rollup_counters_15m"),
}
SOURCES = (*ROLLUPS, "raw", "tails")
# Named parameters, numbered in this order in every statement (unused ones left out).
_COMMON = ("org", "starts", "group_by", "filters", "project", "user", "api_key")
# The columns every source gives, in this order, and how one event gives each.
COLUMNS = ("events", "unpriced_events", *COUNTER_FIELDS, "input_cost", "output_cost", "cost", "last_event_at")
_FROM_EVENT = {
    "events": "1::bigint", "unpriced_events": "e.unpriced::int::bigint", **{c: f"e.{c}" for c in COUNTER_FIELDS},
    **{c: f"coalesce(e.{c}, 0)" for c in ("input_cost", "output_cost", "cost")}, "last_event_at": "e.ts",
}
# Each column's aggregate, and what stands in for it when not asked for (QueryUsageRequest.metrics).
_SUM = {**{c: f"metering_sum(p.{c})" for c in ("events", "unpriced_events", *COUNTER_FIELDS)},
        **{c: f"sum(p.{c})" for c in ("input_cost", "output_cost", "cost")}, "last_event_at": "max(p.last_event_at)"}
_WIDE_SUM = {**_SUM, **{c: f"sum(p.{c})" for c in COUNTER_FIELDS}}
_UNASKED = {**{c: "0::bigint" for c in ("events", "unpriced_events", *COUNTER_FIELDS)},
            **{c: "null::numeric" for c in ("input_cost", "output_cost", "cost")}, "last_event_at": "null::timestamptz"}
_METRIC_COLUMN = {"last_event_time": "last_event_at"}  # UsageMetrics names that differ from the column
# A query is "narrow" when its filters and scope select at most NARROW_SERIES series (counted
# by SERIES_COUNT). It reads its rollup rows by series and its appended events by (mark,
# series) pairs in the marks' index (usage_statement): one index descent per pair, against
# every event appended since the last rollup pass by mark.
NARROW_SERIES = 64
# Where a record's counters are: after the bucket and the group key, at GroupRow's place.
_COUNTERS = 2 + GroupRow._fields.index("counters")


def parameters(sources: Iterable[str]) -> tuple[str, ...]:
    """The parameter names of the statement for `sources`, in $1, $2, ... order."""
    used = set(sources)
    ranged = [f"{source}_{end}" for source in (*ROLLUPS, "raw") if source in used for end in ("lo", "hi")]
    return (*_COMMON, *ranged, *(("tails",) if "tails" in used else ()))


async def usage_rows(conn: PoolConnectionProxy, sources: frozenset[str], metrics: frozenset[str] | None,
                     arguments: Sequence[object], wide: bool = False, narrow: bool = False) -> list[Record]:
    """The records of usage_statement(sources, metrics, wide, narrow) with `arguments`; read wide, the
    counters are made Python ints. Not wide, raises asyncpg's NumericValueOutOfRangeError
    when a counter sum does not fit a bigint."""
    rows = await conn.fetch(usage_statement(sources, metrics, wide, narrow), *arguments)
    if not wide:
        return list(rows)
    return [(*row[:_COUNTERS], [int(v) for v in row[_COUNTERS]], *row[_COUNTERS + 1:]) for row in rows]


@functools.lru_cache(maxsize=512)  # sources x metric sets: callers choose the metrics
def usage_statement(sources: frozenset[str], metrics: frozenset[str] | None = None, wide: bool = False,
                    narrow: bool = False) -> str:
    """The statement reading `sources` (a non-empty subset of SOURCES); its parameters are
    parameters(sources): org, the bucket starts (sorted; width_bucket numbers them from 1),
    the group-by fields, the filters {field: [values]} ('' matches unset), the read scope
    (project, user, API key; null: any), then (lo, hi) arrays per ranged source, then the
    marks whose appended events are the tails. metrics: the UsageMetrics fields asked for
    (server.query.spec.METRICS; None: all); the others are read from no table, summed by no
    aggregate and come back as 0 or null (the extra counters: null). The counters are summed
    in bigint, or with `wide` in numeric, with the values of the rollup rows kept wide.
    narrow: the query selects few series (NARROW_SERIES): its rollup rows and
    tails are read by series."""
    if not sources or not sources <= set(SOURCES):
        raise ValueError(f"sources: a non-empty subset of {SOURCES}, not {sorted(sources)}")
    asked = set(COLUMNS) if metrics is None else {"events", *(_METRIC_COLUMN.get(m, m) for m in metrics)}
    if not asked <= set(COLUMNS) | {"counters"}:
        raise ValueError(f"metrics: unknown {sorted(asked - set(COLUMNS) - {'counters'})}")
    extra = metrics is None or "counters" in metrics
    columns = [c for c in COLUMNS if c in asked]
    read = ", ".join(columns)
    summed = [c for c in columns if c in COUNTER_FIELDS]
    if wide:  # every counter of a rollup row: its bigint column, or its place in `wide`
        read_rollup = ", ".join(f"coalesce(r.{c}::numeric, r.wide[{COUNTER_FIELDS.index(c) + 1}]) as {c}"
                                if c in summed else c for c in columns)
    else:  # a wide row has null counters: reading the first raises (then the call is read wide)
        read_rollup = ", ".join(f"coalesce(r.{c}, metering_wide_row(r.wide)) as {c}" if summed and c == summed[0]
                                else c for c in columns)
    n = {name: f"${i}" for i, name in enumerate(parameters(sources), start=1)}
    bucket = f"width_bucket(r.window_start, {n['starts']}::timestamptz[])"
    parts, counter_parts, held = [], [], []
    for source, (table, counters) in ROLLUPS.items():
        if source not in sources:
            continue
        ranges = f"unnest({n[source + '_lo']}::timestamptz[], {n[source + '_hi']}::timestamptz[]) as q(lo, hi)"
        in_range = f"r.org_id = {n['org']} and r.window_start >= q.lo and r.window_start < q.hi offset 0"
        # a narrow query's own series' rows only (migrations/0019_rollups_by_series.sql)
        own = (f"r.org_id = {n['org']} and r.series_id = any(array(select series_id from s)) "
               f"and r.window_start >= q.lo and r.window_start < q.hi offset 0") if narrow else in_range
        parts.append(f"""
    select {bucket} as bucket, r.*
    from {ranges}
    cross join lateral (select window_start, series_id, {read_rollup} from {table} r where {own}) r""")
        counter_parts.append(f"""
    select {bucket} as bucket, r.series_id, r.name, r.value
    from {ranges}
    cross join lateral (select r.window_start, r.series_id, r.name, r.value from {counters} r where {own}) r""")
        held.append(f"select r.series_id from {ranges} cross join lateral (select r.series_id from {table} r "
                    f"where {in_range}) r")
    events: list[str] = []  # sources of events: (alias e, all columns)
    if "raw" in sources:
        # the series filter inside the scan: a filtered query (one user, one key) over hot,
        # not yet rolled-up windows carries only its own events onward
        events.append(f"""
        select e.* from unnest({n['raw_lo']}::timestamptz[], {n['raw_hi']}::timestamptz[]) as q(lo, hi)
        cross join lateral (
            select e.* from events e
            where e.org_id = {n['org']} and e.ts >= q.lo and e.ts < q.hi and e.active
              and e.series_id in (select series_id from s) offset 0
        ) e""")
    if "tails" in sources:
        tails = f"e.org_id = {n['org']} and e.mark_id = any({n['tails']}::bigint[]) and e.active"
        if not narrow:
            # by their marks, the join with s filtering them (a series filter here was planned as
            # a nested loop over s: 1,500 tail events x 6,300 series took a second)
            events.append(f"""
        select e.* from events e where {tails}""")
        else:
            # a few series' (a budget's user, key or project): the (mark, series) pairs in the
            # marks' index (migrations/0017_events_by_series.sql), only their own events, not
            # every event appended to the organization since the last rollup pass. One index
            # scan per mark: with both lists as arrays in one scan, a planner whose statistics
            # lag the appends (no analyze since) scanned the organization's whole index and
            # filtered 118,000 rows (36-85 ms); mark by mark, 4-20 ms.
            events.append(f"""
        select e.* from unnest({n['tails']}::bigint[]) as m(id)
        cross join lateral (
            select e.* from events e
            where e.org_id = {n['org']} and e.mark_id = m.id and e.series_id = any(array(select series_id from s))
              and e.active offset 0
        ) e""")
        held.append(f"select e.series_id from events e where {tails}")
    if events:
        read = "\n        union all".join(events)
        parts.append(f"""
    select width_bucket(e.ts, {n['starts']}::timestamptz[]) as bucket, e.ts as window_start, e.series_id,
           {", ".join(f"{_FROM_EVENT[c]} as {c}" for c in columns)}
    from ({read}
    ) e""")
        counter_parts.append(f"""
    select width_bucket(e.ts, {n['starts']}::timestamptz[]) as bucket, e.series_id, kv.key as name,
           kv.value::numeric as value
    from ({read}
    ) e
    cross join lateral jsonb_each_text(e.counters) as kv
    where e.counters is not null""")
    # Only cubes and tails: the series they hold, not every series of the organization
    # (computing the group keys of 6,000 series alone takes ~20 ms).
    # (An array, so the series are found by their key rather than by scanning them all.)
    only_held = (f"\n      and s.series_id = any(array({' union '.join(held)}))"
                 if sources <= {"cubes", "hour_cubes", "tails"} and not narrow else "")
    aggregate = {c: (_WIDE_SUM if wide else _SUM)[c] if c in asked else _UNASKED[c] for c in COLUMNS}
    array = "::numeric[]" if wide else ""
    if not extra:
        counter_parts = []
    return f"""
with s as materialized (
    select s.series_id,
           array(select metering_dimension(s, g.field)
                 from unnest({n['group_by']}::text[]) with ordinality as g(field, n) order by g.n) as gkey
    from series s
    where {_selected(n)}{only_held}
),
parts as ({' union all'.join(parts)}
),
usage as (
    select p.bucket, s.gkey, {aggregate['events']} as events, {aggregate['unpriced_events']} as unpriced_events,
           array[{", ".join(aggregate[c] for c in COUNTER_FIELDS)}]{array} as counters,
           {aggregate['input_cost']} as input_cost, {aggregate['output_cost']} as output_cost,
           {aggregate['cost']} as cost, {aggregate['last_event_at']} as last_event_at
    from parts p
    join s on s.series_id = p.series_id
    group by p.bucket, s.gkey
){_extra(counter_parts)}"""


def _selected(n: dict[str, str]) -> str:
    """The condition on a series `s` of being read: the organization's, in the read scope, and
    every filter holding (n: the statement's parameters by name)."""
    return f"""s.org_id = {n['org']}
      and ({n['project']}::text is null or s.project_id = {n['project']})
      and ({n['user']}::text is null or s.user_id = {n['user']})
      and ({n['api_key']}::text is null or s.api_key_id = {n['api_key']})
      and not exists (
          select 1 from jsonb_each({n['filters']}::jsonb) as f(field, vals)
          where not f.vals ? coalesce(metering_dimension(s, f.field), '')
      )"""


# How many series a query selects ($1 org, $2 filters, $3-$5 the read scope): whether it is
# narrow (usage_statement).
SERIES_COUNT = f"""select count(*) from series s where {_selected(
    {name: f"${i}" for i, name in enumerate(("org", "filters", "project", "user", "api_key"), start=1)})}"""


def _extra(counter_parts: list[str]) -> str:
    """The extra counters per group as {name: sum}, and the final select."""
    if not counter_parts:
        return """
select u.*, null::jsonb as extra
from usage u"""
    return f""",
counter_parts as ({' union all'.join(counter_parts)}
),
extra as (
    select bucket, gkey, jsonb_object_agg(name, total) as extra
    from (
        select p.bucket, s.gkey, p.name, sum(p.value) as total
        from counter_parts p
        join s on s.series_id = p.series_id
        group by p.bucket, s.gkey, p.name
    ) c
    group by bucket, gkey
)
select u.*, e.extra
from usage u
left join extra e on e.bucket = u.bucket and e.gkey = u.gkey"""
