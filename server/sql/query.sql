-- The query engine (server/query.py). Statements run in one REPEATABLE READ,
-- read-only transaction: the dirty windows read first decide which ranges come
-- from rollups and which from raw events, in the same snapshot.
--
-- Parameters of query_usage: $1 org; $2 bucket starts
-- (sorted; width_bucket numbers them from 1); $3..$10 (lo, hi) ranges read from
-- the 1d, 1h and 15m rollups and from raw events; $11 group-by fields;
-- $12 filters {field: [values]} ('' matches unset); $13..$15 the read scope;
-- $16, $17 (lo, hi) ranges of UTC days read from the cubes (cubes_1d: only when
-- every field of $11..$15 is a cube dimension, see server/query_plan.py; those
-- days are then not in $3, $4); $18 true when the cubes and tails are the only sources;
-- $19 the marks whose appended events ("tails") are added to rolled-up windows.
-- Each range is read by its own index scan: "lateral (... offset 0)" keeps the
-- planner from turning the range join into a scan of the whole table.

-- name: query_tuning
-- For this transaction only. The planner cannot estimate how many rows the
-- unnested ranges select, so: plan for the actual arguments every time (a
-- generic plan once chose a nested loop over the series and took minutes),
-- aggregate by hashing in memory rather than sorting wide rows, read each
-- range with a bitmap scan (heap in physical order: 1M late-arriving raw
-- events in 2 s rather than 6), and never JIT-compile (it costs seconds here).
select set_config('plan_cache_mode', 'force_custom_plan', true), set_config('jit', 'off', true),
       set_config('work_mem', '64MB', true), set_config('enable_sort', 'off', true),
       set_config('enable_indexscan', 'off', true);

-- name: query_dirty_windows
-- $1 org, $2 start, $3 end: the dirty 15-minute windows overlapping [start, end),
-- each with whether only events were appended to it since its rollup (then its
-- rollup plus the events of these marks is exact: migrations/0005_tails.sql).
select window_start, bool_and(appends) as appends, array_agg(id) as ids
from dirty_windows
where org_id = $1 and window_start > $2::timestamptz - interval '15 minutes' and window_start < $3
group by window_start;

-- name: query_stamps
-- $1 org, $2 start, $3 end: the rollup stamps of the UTC days overlapping
-- [start, end), by day (server/query_etags.py, migrations/0006_stamps.sql).
select day, stamp from rollup_stamps
where org_id = $1 and day > $2::timestamptz - interval '1 day' and day < $3
order by day;

-- name: query_freshness
-- Every window before oldest_dirty is rolled up (null: all of them).
select now() as snapshot_time,
       (select min(window_start) from dirty_windows where org_id = $1) as oldest_dirty;

-- name: query_usage
-- One row per (bucket, group) with the event count, the fixed counters (an
-- array in server.events.COUNTER_FIELDS order), the costs, and the extra
-- counters as {name: sum} (null when the group has none). One statement, so
-- the series' group keys are computed once.
with s as materialized (
    select s.series_id,
           array(select metering_dimension(s, g.field)
                 from unnest($11::text[]) with ordinality as g(field, n) order by g.n) as gkey
    from series s
    where s.org_id = $1
      and ($13::text is null or s.project_id = $13)
      and ($14::text is null or s.user_id = $14)
      and ($15::text is null or s.api_key_id = $15)
      and not exists (
          select 1 from jsonb_each($12::jsonb) as f(field, vals)
          where not f.vals ? coalesce(metering_dimension(s, f.field), '')
      )
      -- Only cube days and tails ($18): only the series they hold, not every series of
      -- the org (computing the group keys of 6,000 series alone takes ~20 ms).
      and (not $18::boolean or s.series_id in (
          select c.series_id
          from unnest($16::timestamptz[], $17::timestamptz[]) as q(lo, hi)
          cross join lateral (
              select c.series_id from cubes_1d c
              where c.org_id = $1 and c.window_start >= q.lo and c.window_start < q.hi offset 0
          ) c
          union
          select e.series_id from events e where e.org_id = $1 and e.mark_id = any($19::bigint[])
      ))
),
parts as (
    select width_bucket(r.window_start, $2::timestamptz[]) as bucket, r.*
    from unnest($3::timestamptz[], $4::timestamptz[]) as q(lo, hi)
    cross join lateral (
        select window_start, series_id, events, unpriced_events, input_tokens, output_tokens,
               input_cached_tokens, input_cache_write_tokens, input_text_tokens, output_text_tokens, input_cached_text_tokens, input_audio_tokens,
               input_cached_audio_tokens, output_audio_tokens, input_image_tokens, input_cached_image_tokens, output_image_tokens, num_model_requests,
               num_requests, images, characters, seconds, usage_bytes, num_sessions,
               units_used, input_cost, output_cost, cost, last_event_at
        from rollups_1d r
        where r.org_id = $1 and r.window_start >= q.lo and r.window_start < q.hi offset 0
    ) r
    union all
    select width_bucket(r.window_start, $2::timestamptz[]) as bucket, r.*
    from unnest($16::timestamptz[], $17::timestamptz[]) as q(lo, hi)
    cross join lateral (
        select window_start, series_id, events, unpriced_events, input_tokens, output_tokens,
               input_cached_tokens, input_cache_write_tokens, input_text_tokens, output_text_tokens, input_cached_text_tokens, input_audio_tokens,
               input_cached_audio_tokens, output_audio_tokens, input_image_tokens, input_cached_image_tokens, output_image_tokens, num_model_requests,
               num_requests, images, characters, seconds, usage_bytes, num_sessions,
               units_used, input_cost, output_cost, cost, last_event_at
        from cubes_1d r
        where r.org_id = $1 and r.window_start >= q.lo and r.window_start < q.hi offset 0
    ) r
    union all
    select width_bucket(r.window_start, $2::timestamptz[]) as bucket, r.*
    from unnest($5::timestamptz[], $6::timestamptz[]) as q(lo, hi)
    cross join lateral (
        select window_start, series_id, events, unpriced_events, input_tokens, output_tokens,
               input_cached_tokens, input_cache_write_tokens, input_text_tokens, output_text_tokens, input_cached_text_tokens, input_audio_tokens,
               input_cached_audio_tokens, output_audio_tokens, input_image_tokens, input_cached_image_tokens, output_image_tokens, num_model_requests,
               num_requests, images, characters, seconds, usage_bytes, num_sessions,
               units_used, input_cost, output_cost, cost, last_event_at
        from rollups_1h r
        where r.org_id = $1 and r.window_start >= q.lo and r.window_start < q.hi offset 0
    ) r
    union all
    select width_bucket(r.window_start, $2::timestamptz[]) as bucket, r.*
    from unnest($7::timestamptz[], $8::timestamptz[]) as q(lo, hi)
    cross join lateral (
        select window_start, series_id, events, unpriced_events, input_tokens, output_tokens,
               input_cached_tokens, input_cache_write_tokens, input_text_tokens, output_text_tokens, input_cached_text_tokens, input_audio_tokens,
               input_cached_audio_tokens, output_audio_tokens, input_image_tokens, input_cached_image_tokens, output_image_tokens, num_model_requests,
               num_requests, images, characters, seconds, usage_bytes, num_sessions,
               units_used, input_cost, output_cost, cost, last_event_at
        from rollups_15m r
        where r.org_id = $1 and r.window_start >= q.lo and r.window_start < q.hi offset 0
    ) r
    union all
    select width_bucket(e.ts, $2::timestamptz[]), e.ts, e.series_id, 1::bigint, e.unpriced::int::bigint,
           e.input_tokens, e.output_tokens, e.input_cached_tokens, e.input_cache_write_tokens, e.input_text_tokens,
           e.output_text_tokens, e.input_cached_text_tokens, e.input_audio_tokens, e.input_cached_audio_tokens,
           e.output_audio_tokens, e.input_image_tokens, e.input_cached_image_tokens, e.output_image_tokens,
           e.num_model_requests, e.num_requests, e.images, e.characters, e.seconds, e.usage_bytes, e.num_sessions,
           e.units_used, coalesce(e.input_cost, 0), coalesce(e.output_cost, 0), coalesce(e.cost, 0), e.ts
    from (
        select e.*
        from unnest($9::timestamptz[], $10::timestamptz[]) as q(lo, hi)
        cross join lateral (
            select e.*
            from events e
            -- the series filter inside the scan: a filtered query (one user, one key)
            -- over hot, not yet rolled-up windows carries only its own events onward
            where e.org_id = $1 and e.ts >= q.lo and e.ts < q.hi and e.active
              and e.series_id in (select series_id from s) offset 0
        ) e
        union all
        -- tails: events appended to rolled-up windows since their rollup, by their marks
        -- (few; the join with s below filters them: a series filter here was planned as a
        -- nested loop over s, 1,500 tail events x 6,300 series took a second)
        select e.*
        from events e
        where e.org_id = $1 and e.mark_id = any($19::bigint[]) and e.active
    ) e
),
counter_parts as (
    select width_bucket(r.window_start, $2::timestamptz[]) as bucket, r.series_id, r.name, r.value
    from unnest($3::timestamptz[], $4::timestamptz[]) as q(lo, hi)
    cross join lateral (
        select r.window_start, r.series_id, r.name, r.value
        from rollup_counters_1d r
        where r.org_id = $1 and r.window_start >= q.lo and r.window_start < q.hi offset 0
    ) r
    union all
    select width_bucket(r.window_start, $2::timestamptz[]) as bucket, r.series_id, r.name, r.value
    from unnest($16::timestamptz[], $17::timestamptz[]) as q(lo, hi)
    cross join lateral (
        select r.window_start, r.series_id, r.name, r.value
        from cube_counters_1d r
        where r.org_id = $1 and r.window_start >= q.lo and r.window_start < q.hi offset 0
    ) r
    union all
    select width_bucket(r.window_start, $2::timestamptz[]) as bucket, r.series_id, r.name, r.value
    from unnest($5::timestamptz[], $6::timestamptz[]) as q(lo, hi)
    cross join lateral (
        select r.window_start, r.series_id, r.name, r.value
        from rollup_counters_1h r
        where r.org_id = $1 and r.window_start >= q.lo and r.window_start < q.hi offset 0
    ) r
    union all
    select width_bucket(r.window_start, $2::timestamptz[]) as bucket, r.series_id, r.name, r.value
    from unnest($7::timestamptz[], $8::timestamptz[]) as q(lo, hi)
    cross join lateral (
        select r.window_start, r.series_id, r.name, r.value
        from rollup_counters_15m r
        where r.org_id = $1 and r.window_start >= q.lo and r.window_start < q.hi offset 0
    ) r
    union all
    select width_bucket(e.ts, $2::timestamptz[]), e.series_id, kv.key, kv.value::bigint
    from unnest($9::timestamptz[], $10::timestamptz[]) as q(lo, hi)
    cross join lateral (
        select e.ts, e.series_id, e.counters
        from events e
        where e.org_id = $1 and e.ts >= q.lo and e.ts < q.hi and e.active and e.counters is not null
          and e.series_id in (select series_id from s) offset 0
    ) e
    cross join lateral jsonb_each_text(e.counters) as kv
    union all
    select width_bucket(e.ts, $2::timestamptz[]), e.series_id, kv.key, kv.value::bigint
    from events e
    cross join lateral jsonb_each_text(e.counters) as kv
    where e.org_id = $1 and e.mark_id = any($19::bigint[]) and e.active and e.counters is not null
),
usage as (
    select p.bucket, s.gkey, metering_sum(p.events) as events, metering_sum(p.unpriced_events) as unpriced_events,
           array[metering_sum(p.input_tokens), metering_sum(p.output_tokens), metering_sum(p.input_cached_tokens),
                 metering_sum(p.input_cache_write_tokens), metering_sum(p.input_text_tokens), metering_sum(p.output_text_tokens),
                 metering_sum(p.input_cached_text_tokens), metering_sum(p.input_audio_tokens), metering_sum(p.input_cached_audio_tokens),
                 metering_sum(p.output_audio_tokens), metering_sum(p.input_image_tokens), metering_sum(p.input_cached_image_tokens),
                 metering_sum(p.output_image_tokens), metering_sum(p.num_model_requests), metering_sum(p.num_requests),
                 metering_sum(p.images), metering_sum(p.characters), metering_sum(p.seconds),
                 metering_sum(p.usage_bytes), metering_sum(p.num_sessions), metering_sum(p.units_used)] as counters,
           sum(p.input_cost) as input_cost, sum(p.output_cost) as output_cost, sum(p.cost) as cost,
           max(p.last_event_at) as last_event_at
    from parts p
    join s on s.series_id = p.series_id
    group by p.bucket, s.gkey
),
extra as (
    select bucket, gkey, jsonb_object_agg(name, total) as extra
    from (
        select p.bucket, s.gkey, p.name, metering_sum(p.value) as total
        from counter_parts p
        join s on s.series_id = p.series_id
        group by p.bucket, s.gkey, p.name
    ) c
    group by bucket, gkey
)
select u.*, e.extra
from usage u
left join extra e on e.bucket = u.bucket and e.gkey = u.gkey;
