-- The query engine (server/query/engine.py). Statements run in one REPEATABLE READ,
-- read-only transaction: the dirty windows read first decide which ranges come
-- from rollups and which from raw events, in the same snapshot. The aggregate
-- itself is written for the sources each call reads: server/query/sql.py.

-- name: query_state
-- $1 org, $2 start, $3 end, $4 end's window's end: what the engine reads before the aggregate, in one round trip
-- (the transaction's first statement, so its snapshot is the transaction's):
-- * tuning, for this transaction only. The planner cannot estimate how many rows the
--   unnested ranges select, so: plan for the actual arguments every time (a generic plan
--   once chose a nested loop over the series and took minutes), aggregate by hashing in
--   memory rather than sorting wide rows, read each range with a bitmap scan (heap in
--   physical order: 1M late-arriving raw events in 2 s rather than 6), and never
--   JIT-compile (it costs seconds here);
-- * the dirty marks of the 15-minute windows overlapping [start, end), one per mark
--   (mark_starts, mark_appends, mark_ids in parallel, by window): whether only events were
--   appended to the window since its rollup (then its rollup plus the events of these
--   marks is exact: migrations/0005_tails.sql);
-- * the rollup stamps of the UTC hours and days overlapping [start, end), as
--   (stamp_starts, stamp_ends, stamps) by start (server/query/etags.py,
--   migrations/0006_stamps.sql, 0007_hour_stamps.sql);
-- * freshness: every window before oldest_dirty is rolled up (null: all of them);
-- * end_clear: no event lies in [end, $4), $4 the end of end's 15-minute window: a range
--   ending inside a window (a query up to now) may then be read up to that window's end,
--   from its rollup and tail, rather than the window's events raw.
select set_config('plan_cache_mode', 'force_custom_plan', true) || set_config('jit', 'off', true)
       || set_config('work_mem', '64MB', true) || set_config('enable_sort', 'off', true)
       || set_config('enable_indexscan', 'off', true) || set_config('enable_nestloop', 'off', true) as tuning,
       m.starts as mark_starts, m.appends as mark_appends, m.ids as mark_ids,
       s.starts as stamp_starts, s.ends as stamp_ends, s.stamps,
       now() as snapshot_time,
       (select min(window_start) from dirty_windows where org_id = $1) as oldest_dirty,
       not exists (select 1 from events where org_id = $1 and ts >= $3 and ts < $4) as end_clear
from (select array_agg(window_start order by window_start, id) as starts,
             array_agg(appends order by window_start, id) as appends,
             array_agg(id order by window_start, id) as ids
      from dirty_windows
      where org_id = $1 and window_start > $2::timestamptz - interval '15 minutes' and window_start < $3) m,
     (select array_agg(start order by start) as starts, array_agg(stop order by start) as ends,
             array_agg(stamp order by start) as stamps
      from (select day as start, day + interval '1 day' as stop, stamp from rollup_stamps
            where org_id = $1 and day > $2::timestamptz - interval '1 day' and day < $3
            union all
            select hour, hour + interval '1 hour', stamp from rollup_hour_stamps
            where org_id = $1 and hour > $2::timestamptz - interval '1 hour' and hour < $3) spans) s;
