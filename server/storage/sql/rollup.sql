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
delete from dirty_windows where id = any($1::bigint[]);

-- name: rollup_stamp_hours
-- $1 org, $2 the UTC hours this pass recomputed (migrations/0007_hour_stamps.sql):
-- each gets a fresh stamp.
insert into rollup_hour_stamps (org_id, hour, stamp)
select $1, h, nextval('rollup_stamp_seq') from unnest($2::timestamptz[]) as h
on conflict (org_id, hour) do update set stamp = excluded.stamp;

-- name: rollup_delete_15m
-- $1 org, $2 window starts: their rows in both tables of the grain.
with counters as (
    delete from rollup_counters_15m where org_id = $1 and window_start = any($2::timestamptz[])
)
delete from rollups_15m where org_id = $1 and window_start = any($2::timestamptz[]);

-- name: rollup_delete_1h
with counters as (
    delete from rollup_counters_1h where org_id = $1 and window_start = any($2::timestamptz[])
)
delete from rollups_1h where org_id = $1 and window_start = any($2::timestamptz[]);

-- name: rollup_delete_1d
with counters as (
    delete from rollup_counters_1d where org_id = $1 and window_start = any($2::timestamptz[])
)
delete from rollups_1d where org_id = $1 and window_start = any($2::timestamptz[]);

-- name: rollup_insert_15m
-- $1 org, $2 15-minute window starts: recomputed from the raw active events.
insert into rollups_15m (
    org_id, window_start, series_id, events, unpriced_events, input_tokens,
    output_tokens, input_cached_tokens, input_cache_write_tokens, input_text_tokens, output_text_tokens, input_cached_text_tokens,
    input_audio_tokens, input_cached_audio_tokens, output_audio_tokens, input_image_tokens, input_cached_image_tokens, output_image_tokens,
    num_model_requests, num_requests, images, characters, seconds, usage_bytes,
    num_sessions, units_used, input_cost, output_cost, cost, last_event_at
)
select $1, w.window_start, e.series_id, count(*), count(*) filter (where e.unpriced),
       metering_sum(e.input_tokens), metering_sum(e.output_tokens), metering_sum(e.input_cached_tokens), metering_sum(e.input_cache_write_tokens),
       metering_sum(e.input_text_tokens), metering_sum(e.output_text_tokens), metering_sum(e.input_cached_text_tokens), metering_sum(e.input_audio_tokens),
       metering_sum(e.input_cached_audio_tokens), metering_sum(e.output_audio_tokens), metering_sum(e.input_image_tokens), metering_sum(e.input_cached_image_tokens),
       metering_sum(e.output_image_tokens), metering_sum(e.num_model_requests), metering_sum(e.num_requests), metering_sum(e.images),
       metering_sum(e.characters), metering_sum(e.seconds), metering_sum(e.usage_bytes), metering_sum(e.num_sessions),
       metering_sum(e.units_used),
       coalesce(sum(e.input_cost), 0), coalesce(sum(e.output_cost), 0), coalesce(sum(e.cost), 0),
       max(e.ts)
from unnest($2::timestamptz[]) as w(window_start)
join events e on e.org_id = $1 and e.ts >= w.window_start and e.ts < w.window_start + interval '15 minutes'
where e.active
group by w.window_start, e.series_id;

-- name: rollup_insert_counters_15m
insert into rollup_counters_15m (org_id, window_start, series_id, name, value)
select $1, w.window_start, e.series_id, kv.key, metering_sum(kv.value::bigint)
from unnest($2::timestamptz[]) as w(window_start)
join events e on e.org_id = $1 and e.ts >= w.window_start and e.ts < w.window_start + interval '15 minutes'
cross join lateral jsonb_each_text(e.counters) as kv
where e.active and e.counters is not null
group by w.window_start, e.series_id, kv.key;

-- name: rollup_insert_1h
-- $1 org, $2 UTC hour starts: summed from rollups_15m (already recomputed in this transaction).
insert into rollups_1h (
    org_id, window_start, series_id, events, unpriced_events, input_tokens,
    output_tokens, input_cached_tokens, input_cache_write_tokens, input_text_tokens, output_text_tokens, input_cached_text_tokens,
    input_audio_tokens, input_cached_audio_tokens, output_audio_tokens, input_image_tokens, input_cached_image_tokens, output_image_tokens,
    num_model_requests, num_requests, images, characters, seconds, usage_bytes,
    num_sessions, units_used, input_cost, output_cost, cost, last_event_at
)
select $1, w.window_start, r.series_id,
       metering_sum(r.events), metering_sum(r.unpriced_events), metering_sum(r.input_tokens), metering_sum(r.output_tokens),
       metering_sum(r.input_cached_tokens), metering_sum(r.input_cache_write_tokens), metering_sum(r.input_text_tokens), metering_sum(r.output_text_tokens),
       metering_sum(r.input_cached_text_tokens), metering_sum(r.input_audio_tokens), metering_sum(r.input_cached_audio_tokens), metering_sum(r.output_audio_tokens),
       metering_sum(r.input_image_tokens), metering_sum(r.input_cached_image_tokens), metering_sum(r.output_image_tokens), metering_sum(r.num_model_requests),
       metering_sum(r.num_requests), metering_sum(r.images), metering_sum(r.characters), metering_sum(r.seconds),
       metering_sum(r.usage_bytes), metering_sum(r.num_sessions), metering_sum(r.units_used),
       sum(r.input_cost), sum(r.output_cost), sum(r.cost), max(r.last_event_at)
from unnest($2::timestamptz[]) as w(window_start)
join rollups_15m r on r.org_id = $1 and r.window_start >= w.window_start
              and r.window_start < w.window_start + interval '1 hour'
group by w.window_start, r.series_id;

-- name: rollup_insert_counters_1h
insert into rollup_counters_1h (org_id, window_start, series_id, name, value)
select $1, w.window_start, r.series_id, r.name, metering_sum(r.value)
from unnest($2::timestamptz[]) as w(window_start)
join rollup_counters_15m r on r.org_id = $1 and r.window_start >= w.window_start
                      and r.window_start < w.window_start + interval '1 hour'
group by w.window_start, r.series_id, r.name;

-- name: rollup_insert_1d
-- $1 org, $2 UTC day starts: summed from rollups_1h (already recomputed in this transaction).
insert into rollups_1d (
    org_id, window_start, series_id, events, unpriced_events, input_tokens,
    output_tokens, input_cached_tokens, input_cache_write_tokens, input_text_tokens, output_text_tokens, input_cached_text_tokens,
    input_audio_tokens, input_cached_audio_tokens, output_audio_tokens, input_image_tokens, input_cached_image_tokens, output_image_tokens,
    num_model_requests, num_requests, images, characters, seconds, usage_bytes,
    num_sessions, units_used, input_cost, output_cost, cost, last_event_at
)
select $1, w.window_start, r.series_id,
       metering_sum(r.events), metering_sum(r.unpriced_events), metering_sum(r.input_tokens), metering_sum(r.output_tokens),
       metering_sum(r.input_cached_tokens), metering_sum(r.input_cache_write_tokens), metering_sum(r.input_text_tokens), metering_sum(r.output_text_tokens),
       metering_sum(r.input_cached_text_tokens), metering_sum(r.input_audio_tokens), metering_sum(r.input_cached_audio_tokens), metering_sum(r.output_audio_tokens),
       metering_sum(r.input_image_tokens), metering_sum(r.input_cached_image_tokens), metering_sum(r.output_image_tokens), metering_sum(r.num_model_requests),
       metering_sum(r.num_requests), metering_sum(r.images), metering_sum(r.characters), metering_sum(r.seconds),
       metering_sum(r.usage_bytes), metering_sum(r.num_sessions), metering_sum(r.units_used),
       sum(r.input_cost), sum(r.output_cost), sum(r.cost), max(r.last_event_at)
from unnest($2::timestamptz[]) as w(window_start)
join rollups_1h r on r.org_id = $1 and r.window_start >= w.window_start
              and r.window_start < w.window_start + interval '1 day'
group by w.window_start, r.series_id;

-- name: rollup_insert_counters_1d
insert into rollup_counters_1d (org_id, window_start, series_id, name, value)
select $1, w.window_start, r.series_id, r.name, metering_sum(r.value)
from unnest($2::timestamptz[]) as w(window_start)
join rollup_counters_1h r on r.org_id = $1 and r.window_start >= w.window_start
                      and r.window_start < w.window_start + interval '1 day'
group by w.window_start, r.series_id, r.name;

-- name: rollup_sweep
-- Every (organization, UTC day) with a dirty window, oldest first.
select org_id, date_trunc('day', window_start, 'UTC') as day, count(*) as windows
from dirty_windows
group by 1, 2
order by min(marked_at)
limit $1;

-- The cubes' statements: server/rollups/cubes.py.
