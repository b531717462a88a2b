-- Exact sums: rollups and cubes keep counter sums that do not fit a bigint (issue 15, item 1).
--
-- An event's counters are bigint and at most 10^12 each (server/ingest/validation.py,
-- MAX_COUNTER; events stored before that limit may hold up to 2^63 - 1), but nothing
-- bounds how many events a sum holds: two events of 2^63 - 1 made every rollup pass
-- fail with "bigint out of range", and 9,223,373 maximal events of one series in one
-- UTC day would too. A year of maximal events at 10^6 events/s sums to 3.2 * 10^25.
--
-- * The counters of a rollup or cube row stay bigint when they all fit (always, for
--   real usage), so passes and queries keep summing bigint (server/query/sql.py: numeric
--   columns made the cold 31-day grouped query's statement 2.2x slower). A row whose
--   sums do not all fit has null counters and all of its counter sums, exact, in `wide`
--   (numeric[], server.core.events.COUNTER_FIELDS order). The rollup pass tries bigint
--   first and, where a sum does not fit, runs again deciding per row
--   (server/rollups/statements.py, recompute.py); a coarser row adds both forms.
-- * metering_wide_row(wide) raises "out of range" where a bigint read meets a wide row
--   (a pass, or a query, which then reads again summing in numeric: server/query/engine.py).
--   A check keeps the two forms apart: a row has all its counters, or none and `wide`
--   (not valid: the rows already there have them all).
-- * The extra-counter tables hold one value per row: plain numeric. metering_sum gains a
--   numeric form, so statements written for bigint values (the backfills of 0004 and
--   0008, which tests/worker/test_cubes.py runs again) still read them.
-- * Only the extra-counter tables are rewritten; the others gain a column and lose
--   their not-null constraints, which changes no row.
-- * Deploying: stop workers of the previous version first (they would sum a wide row's
--   null counters as nothing).

alter table rollups_15m add column wide numeric[],
    add constraint rollups_15m_wide check (num_nulls(
        input_tokens, output_tokens, input_cached_tokens, input_cache_write_tokens, input_text_tokens,
        output_text_tokens, input_cached_text_tokens, input_audio_tokens, input_cached_audio_tokens,
        output_audio_tokens, input_image_tokens, input_cached_image_tokens, output_image_tokens,
        num_model_requests, num_requests, images, characters, seconds, usage_bytes, num_sessions, units_used
    ) = case when wide is null then 0 else 21 end) not valid,
    alter column input_tokens drop not null, alter column output_tokens drop not null,
    alter column input_cached_tokens drop not null, alter column input_cache_write_tokens drop not null,
    alter column input_text_tokens drop not null, alter column output_text_tokens drop not null,
    alter column input_cached_text_tokens drop not null, alter column input_audio_tokens drop not null,
    alter column input_cached_audio_tokens drop not null, alter column output_audio_tokens drop not null,
    alter column input_image_tokens drop not null, alter column input_cached_image_tokens drop not null,
    alter column output_image_tokens drop not null, alter column num_model_requests drop not null,
    alter column num_requests drop not null, alter column images drop not null,
    alter column characters drop not null, alter column seconds drop not null,
    alter column usage_bytes drop not null, alter column num_sessions drop not null,
    alter column units_used drop not null;

alter table rollups_1h add column wide numeric[],
    add constraint rollups_1h_wide check (num_nulls(
        input_tokens, output_tokens, input_cached_tokens, input_cache_write_tokens, input_text_tokens,
        output_text_tokens, input_cached_text_tokens, input_audio_tokens, input_cached_audio_tokens,
        output_audio_tokens, input_image_tokens, input_cached_image_tokens, output_image_tokens,
        num_model_requests, num_requests, images, characters, seconds, usage_bytes, num_sessions, units_used
    ) = case when wide is null then 0 else 21 end) not valid,
    alter column input_tokens drop not null, alter column output_tokens drop not null,
    alter column input_cached_tokens drop not null, alter column input_cache_write_tokens drop not null,
    alter column input_text_tokens drop not null, alter column output_text_tokens drop not null,
    alter column input_cached_text_tokens drop not null, alter column input_audio_tokens drop not null,
    alter column input_cached_audio_tokens drop not null, alter column output_audio_tokens drop not null,
    alter column input_image_tokens drop not null, alter column input_cached_image_tokens drop not null,
    alter column output_image_tokens drop not null, alter column num_model_requests drop not null,
    alter column num_requests drop not null, alter column images drop not null,
    alter column characters drop not null, alter column seconds drop not null,
    alter column usage_bytes drop not null, alter column num_sessions drop not null,
    alter column units_used drop not null;

alter table rollups_1d add column wide numeric[],
    add constraint rollups_1d_wide check (num_nulls(
        input_tokens, output_tokens, input_cached_tokens, input_cache_write_tokens, input_text_tokens,
        output_text_tokens, input_cached_text_tokens, input_audio_tokens, input_cached_audio_tokens,
        output_audio_tokens, input_image_tokens, input_cached_image_tokens, output_image_tokens,
        num_model_requests, num_requests, images, characters, seconds, usage_bytes, num_sessions, units_used
    ) = case when wide is null then 0 else 21 end) not valid,
    alter column input_tokens drop not null, alter column output_tokens drop not null,
    alter column input_cached_tokens drop not null, alter column input_cache_write_tokens drop not null,
    alter column input_text_tokens drop not null, alter column output_text_tokens drop not null,
    alter column input_cached_text_tokens drop not null, alter column input_audio_tokens drop not null,
    alter column input_cached_audio_tokens drop not null, alter column output_audio_tokens drop not null,
    alter column input_image_tokens drop not null, alter column input_cached_image_tokens drop not null,
    alter column output_image_tokens drop not null, alter column num_model_requests drop not null,
    alter column num_requests drop not null, alter column images drop not null,
    alter column characters drop not null, alter column seconds drop not null,
    alter column usage_bytes drop not null, alter column num_sessions drop not null,
    alter column units_used drop not null;

alter table cubes_1d add column wide numeric[],
    add constraint cubes_1d_wide check (num_nulls(
        input_tokens, output_tokens, input_cached_tokens, input_cache_write_tokens, input_text_tokens,
        output_text_tokens, input_cached_text_tokens, input_audio_tokens, input_cached_audio_tokens,
        output_audio_tokens, input_image_tokens, input_cached_image_tokens, output_image_tokens,
        num_model_requests, num_requests, images, characters, seconds, usage_bytes, num_sessions, units_used
    ) = case when wide is null then 0 else 21 end) not valid,
    alter column input_tokens drop not null, alter column output_tokens drop not null,
    alter column input_cached_tokens drop not null, alter column input_cache_write_tokens drop not null,
    alter column input_text_tokens drop not null, alter column output_text_tokens drop not null,
    alter column input_cached_text_tokens drop not null, alter column input_audio_tokens drop not null,
    alter column input_cached_audio_tokens drop not null, alter column output_audio_tokens drop not null,
    alter column input_image_tokens drop not null, alter column input_cached_image_tokens drop not null,
    alter column output_image_tokens drop not null, alter column num_model_requests drop not null,
    alter column num_requests drop not null, alter column images drop not null,
    alter column characters drop not null, alter column seconds drop not null,
    alter column usage_bytes drop not null, alter column num_sessions drop not null,
    alter column units_used drop not null;

alter table cubes_1h add column wide numeric[],
    add constraint cubes_1h_wide check (num_nulls(
        input_tokens, output_tokens, input_cached_tokens, input_cache_write_tokens, input_text_tokens,
        output_text_tokens, input_cached_text_tokens, input_audio_tokens, input_cached_audio_tokens,
        output_audio_tokens, input_image_tokens, input_cached_image_tokens, output_image_tokens,
        num_model_requests, num_requests, images, characters, seconds, usage_bytes, num_sessions, units_used
    ) = case when wide is null then 0 else 21 end) not valid,
    alter column input_tokens drop not null, alter column output_tokens drop not null,
    alter column input_cached_tokens drop not null, alter column input_cache_write_tokens drop not null,
    alter column input_text_tokens drop not null, alter column output_text_tokens drop not null,
    alter column input_cached_text_tokens drop not null, alter column input_audio_tokens drop not null,
    alter column input_cached_audio_tokens drop not null, alter column output_audio_tokens drop not null,
    alter column input_image_tokens drop not null, alter column input_cached_image_tokens drop not null,
    alter column output_image_tokens drop not null, alter column num_model_requests drop not null,
    alter column num_requests drop not null, alter column images drop not null,
    alter column characters drop not null, alter column seconds drop not null,
    alter column usage_bytes drop not null, alter column num_sessions drop not null,
    alter column units_used drop not null;

alter table rollup_counters_15m alter column value type numeric;
alter table rollup_counters_1h alter column value type numeric;
alter table rollup_counters_1d alter column value type numeric;
alter table cube_counters_1d alter column value type numeric;
alter table cube_counters_1h alter column value type numeric;

-- Raises "out of range" for a row kept wide (called only for one, see server/query/sql.py):
-- immutable and strict so that naming it costs nothing where it is not called (a volatile
-- function in the read made the cold grouped query 18-50% slower).
create function metering_wide_row(wide numeric[]) returns bigint
language plpgsql immutable strict parallel safe as $$
begin
    raise exception 'a rollup row holds counter sums beyond bigint' using errcode = '22003';
end;
$$;

create aggregate metering_sum(numeric) (
    sfunc = numeric_add, stype = numeric, initcond = '0', combinefunc = numeric_add, parallel = safe
);
