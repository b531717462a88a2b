-- Rollup recomputation (server/rollups/recompute.py). Every statement runs inside one
-- REPEATABLE READ transaction per (organization, UTC day): the first statement
-- fixes the snapshot, the rest recompute from it and delete only what it saw.

-- name: rollup_tuning
-- For this transaction only: plans for the actual windows, no JIT (its compile
-- time dwarfs these statements), sorts and hashes in memory.
select set_config('plan_cache_mode', 'force_custom_plan', true), set_config('jit', 'off', true),
       set_config('work_mem', '64MB', true);

-- name: rollup_dirty_in_day
-- $1 org, $2 UTC day start.
select id, window_start
from dirty_windows
where org_id = $1 and window_start >= $2 and window_start < $2 + interval '1 day';

-- name: rollup_dirty_left
select exists (
    select 1 from dirty_windows
    where org_id = $1 and window_start >= $2 and window_start < $2 + interval '1 day'
);

-- name: rollup_delete_dirty
delete from dirty_windows where org_id = $2 and id = any($1::bigint[]);  -- $2 the org (key: 0014_retention.sql)

-- name: rollup_stamp_hours
-- $1 org, $2 the UTC hours this pass recomputed (migrations/0007_hour_stamps.sql):
-- each gets a fresh stamp.
insert into rollup_hour_stamps (org_id, hour, stamp)
select $1, h, nextval('rollup_stamp_seq') from unnest($2::timestamptz[]) as h
on conflict (org_id, hour) do update set stamp = excluded.stamp;

-- name: rollup_sweep
-- Every (organization, UTC day) with a dirty window, oldest first.
select org_id, date_trunc('day', window_start, 'UTC') as day, count(*) as windows
from dirty_windows
group by 1, 2
order by min(marked_at)
limit $1;

-- name: rollup_lag
-- The rollup backlog (the worker's metrics): windows waiting, and the age of the oldest mark.
select count(distinct (org_id, window_start)) as windows,
       coalesce(extract(epoch from clock_timestamp() - min(marked_at)), 0)::float8 as oldest_seconds
from dirty_windows;

-- Generated from the counter list: the statements that recompute each grain's rollups
-- (server/rollups/statements.py) and cubes (server/rollups/cubes.py).
