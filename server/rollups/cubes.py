"""The statements that recompute the cubes of a grain (server/rollups/recompute.py).

Cubes (server/storage/migrations/0004_cubes.sql for UTC days, 0008_hour_cubes.sql for UTC hours):
the grain's per-series rollups summed over the series that share the cube
dimensions (server.query.plan.CUBE_DIMENSIONS), each row keyed by a representative
series: the least series id of the window with the row's cube dimensions. Run in the
rollup pass's transaction, after the grain's rollups were recomputed. One template
for both grains: only the table names differ. The columns and their sums are the
rollups' (server/rollups/statements.py).
"""

from __future__ import annotations

import functools

from server.rollups.statements import Statements, delete_windows, stored, sums_of_rollups

GRAINS = ("1h", "1d")
# The window of a rollup row and its cube dimensions: rows with equal values share a representative.
_PARTITION = ("r.window_start, s.kind, s.project_id, s.model, s.provider, s.endpoint, s.api_name, s.service_tier, "
              "s.batch, s.status, s.currency, s.price_version")


@functools.cache
def cube_statements(grain: str, wide: bool = False) -> Statements:
    """delete: the cube rows of some windows, both tables; insert: the cubes summed from the
    grain's rollups of those windows; insert_counters: the same for the extra counters. Not
    wide, insert raises "out of range" where a counter sum does not fit a bigint."""
    if grain not in GRAINS:
        raise ValueError(f"grain: one of {GRAINS}")
    rollups, counters = f"rollups_{grain}", f"rollup_counters_{grain}"
    cubes, cube_counters = f"cubes_{grain}", f"cube_counters_{grain}"
    windows = "r.org_id = $1 and r.window_start = any($2::timestamptz[])"
    return Statements(
        delete=delete_windows(cubes, cube_counters),
        # One pass over the rollups: each row learns its representative from a window
        # function and is summed into it. No self-join, so no plan can turn it into
        # windows x series x series (a fresh table's statistics once made it 1.9 s for
        # 3,000 rows).
        insert=stored(cubes, f"""
    select r.window_start, r.rep as series_id, {sums_of_rollups(wide)}
    from (
        select r.*, min(s.series_id) over (partition by {_PARTITION}) as rep
        from {rollups} r
        join series s on s.org_id = r.org_id and s.series_id = r.series_id
        where {windows}
    ) r
    group by r.window_start, r.rep""", wide),
        # By the counters' primary key (org, window, series, name): one index probe per
        # series, whatever the planner believes about the sizes. Windows without extra
        # counters (the common case) skip the representatives (~20 ms a day of 6,000 series).
        insert_counters=f"""
with reps as (
    select r.window_start, r.series_id, min(s.series_id) over (partition by {_PARTITION}) as rep
    from {rollups} r
    join series s on s.org_id = r.org_id and s.series_id = r.series_id
    where {windows}
)
insert into {cube_counters} (org_id, window_start, series_id, name, value)
select $1, r.window_start, m.rep, r.name, sum(r.value)
from reps m
join {counters} r on r.org_id = $1 and r.window_start = m.window_start and r.series_id = m.series_id
where exists (select 1 from {counters} c where c.org_id = $1 and c.window_start = any($2::timestamptz[]))
group by r.window_start, m.rep, r.name""",
    )
