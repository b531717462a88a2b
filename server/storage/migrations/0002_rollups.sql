-- Rollups: exact per-series sums of active events on UTC time grains.
--
-- * rollups_15m is the base grain: every IANA zone offset in use since 2000 is a
--   multiple of 15 minutes, so local hours, days and months are unions of
--   15-minute windows. rollups_1h and rollups_1d are UTC hours and days, summed
--   from the finer grain; a query uses the coarsest grain that fits each
--   stretch of its range and reads the raw events for the rest.
-- * Keys start with org_id (Citus distribution column) and window_start, then
--   the series (the dictionary-encoded dimensions and labels of 0001).
-- * Rows are only ever replaced by recomputing from raw events (server/rollups/recompute.py)
--   in the same REPEATABLE READ transaction that deletes the dirty_windows rows
--   its snapshot saw; never incremented in place.
-- * A window with a dirty_windows row is never read from any rollup table: the
--   query engine reads its raw events instead (same snapshot), so results are
--   exact whether or not the worker has caught up.

create table rollups_15m (
    org_id                    integer not null,
    window_start              timestamptz not null,
    series_id                 bigint not null,
    events                    bigint not null,  -- active events
    unpriced_events           bigint not null,  -- of which without a cost
    input_tokens              bigint not null,
    output_tokens             bigint not null,
    input_cached_tokens       bigint not null,
    input_cache_write_tokens  bigint not null,
    input_text_tokens         bigint not null,
    output_text_tokens        bigint not null,
    input_cached_text_tokens  bigint not null,
    input_audio_tokens        bigint not null,
    input_cached_audio_tokens bigint not null,
    output_audio_tokens       bigint not null,
    input_image_tokens        bigint not null,
    input_cached_image_tokens bigint not null,
    output_image_tokens       bigint not null,
    num_model_requests        bigint not null,
    num_requests              bigint not null,
    images                    bigint not null,
    characters                bigint not null,
    seconds                   bigint not null,
    usage_bytes               bigint not null,
    num_sessions              bigint not null,
    units_used                bigint not null,
    input_cost                numeric not null,  -- exact sums; events without a cost add 0
    output_cost               numeric not null,
    cost                      numeric not null,
    last_event_at             timestamptz not null,
    primary key (org_id, window_start, series_id)
);

-- UTC hours (window_start on the hour) and UTC days (window_start at midnight UTC).
create table rollups_1h (like rollups_15m including all);
create table rollups_1d (like rollups_15m including all);

-- Extra counters (the events' `counters` map), one narrow row per name, on the
-- same grains and keys; only series and windows that have any get rows.
create table rollup_counters_15m (
    org_id       integer not null,
    window_start timestamptz not null,
    series_id    bigint not null,
    name         text not null,
    value        bigint not null,
    primary key (org_id, window_start, series_id, name)
);
create table rollup_counters_1h (like rollup_counters_15m including all);
create table rollup_counters_1d (like rollup_counters_15m including all);

-- Exact bigint sum with a by-value state: much cheaper than sum(bigint), whose
-- numeric result and int128 state dominate wide aggregates. Overflow raises
-- "bigint out of range" instead of wrapping: the answer is exact or an error.
create aggregate metering_sum(bigint) (
    sfunc = int8pl, stype = bigint, initcond = '0', combinefunc = int8pl, parallel = safe
);

-- The value of one dimension of a series by name ('kind', 'project_id', ...,
-- 'batch' as 'true'/'false', or 'labels.<name>'); null when unset. Inlined by
-- the planner into the query engine's filters and group keys.
create function metering_dimension(s series, field text) returns text
language sql immutable parallel safe as $$
    select case field
        when 'kind' then s.kind
        when 'project_id' then s.project_id
        when 'user_id' then s.user_id
        when 'api_key_id' then s.api_key_id
        when 'client_id' then s.client_id
        when 'model' then s.model
        when 'provider' then s.provider
        when 'endpoint' then s.endpoint
        when 'api_name' then s.api_name
        when 'service_tier' then s.service_tier
        when 'batch' then s.batch::text
        when 'status' then s.status
        when 'currency' then s.currency
        else case when field like 'labels.%' then s.labels ->> substr(field, 8) end
    end
$$;
