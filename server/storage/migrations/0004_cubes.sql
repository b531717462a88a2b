-- Cubes: per-UTC-day rollups keyed by a smaller dimension set.
--
-- A series is the full dimension set (user, API key, client, labels, ...), so
-- with many users rollups_1d barely shrinks a grouped month. cubes_1d holds,
-- per UTC day, the sums of rollups_1d over all series that agree on the cube's
-- dimensions: kind, project_id, model, provider, endpoint, api_name,
-- service_tier, batch, status, currency and price_version (not user_id,
-- api_key_id, client_id nor labels).
--
-- * A cube row is keyed by a representative series: the smallest series id,
--   among the day's series, with the row's cube dimensions. Any series with
--   those dimensions would do: the query engine only reads cubes when every
--   field it groups on, filters on or scopes by is a cube dimension, and then
--   it reads the representative's values of exactly those fields. So cube rows
--   have rollups_1d's shape and join the series table like it.
-- * Rows are recomputed from rollups_1d in the same REPEATABLE READ transaction
--   that recomputes the day's rollups (server/rollups/recompute.py), under the same
--   dirty-window protocol: a day with a visible dirty mark is never read from
--   any rollup table or cube, and a day without one has cubes equal to its raw
--   events in that snapshot. Never incremented in place.
-- * Deploying: stop workers of the previous version first (they would update
--   rollups_1d without the cubes). This migration fills the cubes of every day
--   already rolled up, in its own transaction.

create table cubes_1d (like rollups_1d including all);
create table cube_counters_1d (like rollup_counters_1d including all);

insert into cubes_1d (
    org_id, window_start, series_id, events, unpriced_events, input_tokens,
    output_tokens, input_cached_tokens, input_cache_write_tokens, input_text_tokens, output_text_tokens, input_cached_text_tokens,
    input_audio_tokens, input_cached_audio_tokens, output_audio_tokens, input_image_tokens, input_cached_image_tokens, output_image_tokens,
    num_model_requests, num_requests, images, characters, seconds, usage_bytes,
    num_sessions, units_used, input_cost, output_cost, cost, last_event_at
)
select r.org_id, r.window_start, m.rep,
       metering_sum(r.events), metering_sum(r.unpriced_events), metering_sum(r.input_tokens), metering_sum(r.output_tokens),
       metering_sum(r.input_cached_tokens), metering_sum(r.input_cache_write_tokens), metering_sum(r.input_text_tokens), metering_sum(r.output_text_tokens),
       metering_sum(r.input_cached_text_tokens), metering_sum(r.input_audio_tokens), metering_sum(r.input_cached_audio_tokens), metering_sum(r.output_audio_tokens),
       metering_sum(r.input_image_tokens), metering_sum(r.input_cached_image_tokens), metering_sum(r.output_image_tokens), metering_sum(r.num_model_requests),
       metering_sum(r.num_requests), metering_sum(r.images), metering_sum(r.characters), metering_sum(r.seconds),
       metering_sum(r.usage_bytes), metering_sum(r.num_sessions), metering_sum(r.units_used),
       sum(r.input_cost), sum(r.output_cost), sum(r.cost), max(r.last_event_at)
from rollups_1d r
join (
    select d.org_id, d.window_start, s.series_id,
           min(s.series_id) over (partition by d.org_id, d.window_start, s.kind, s.project_id, s.model, s.provider,
                                  s.endpoint, s.api_name, s.service_tier, s.batch, s.status, s.currency,
                                  s.price_version) as rep
    from (select distinct org_id, window_start, series_id from rollups_1d) d
    join series s on s.org_id = d.org_id and s.series_id = d.series_id
) m on m.org_id = r.org_id and m.window_start = r.window_start and m.series_id = r.series_id
group by r.org_id, r.window_start, m.rep;

insert into cube_counters_1d (org_id, window_start, series_id, name, value)
select r.org_id, r.window_start, m.rep, r.name, metering_sum(r.value)
from rollup_counters_1d r
join (
    select d.org_id, d.window_start, s.series_id,
           min(s.series_id) over (partition by d.org_id, d.window_start, s.kind, s.project_id, s.model, s.provider,
                                  s.endpoint, s.api_name, s.service_tier, s.batch, s.status, s.currency,
                                  s.price_version) as rep
    from (select distinct org_id, window_start, series_id from rollups_1d) d
    join series s on s.org_id = d.org_id and s.series_id = d.series_id
) m on m.org_id = r.org_id and m.window_start = r.window_start and m.series_id = r.series_id
group by r.org_id, r.window_start, m.rep, r.name;
