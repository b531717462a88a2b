-- name: get_event
-- $1 org, $2 event_id, $3 the millisecond the id encodes, $4..$6 read scope (null: any)
select e.*, s.kind, s.project_id, s.user_id, s.api_key_id, s.client_id, s.model, s.provider,
       s.endpoint, s.api_name, s.service_tier, s.batch, s.status, s.currency, s.labels,
       p.error_message, p.config_json, p.request_raw, p.request_json, p.response_json, p.response_raw
from events e
join series s on s.org_id = e.org_id and s.series_id = e.series_id
left join event_payloads p on p.org_id = e.org_id and p.ts = e.ts and p.event_id = e.event_id
where e.org_id = $1 and e.event_id = $2
  and e.ts >= $3 and e.ts < $3 + interval '1 millisecond'
  and ($4::text is null or s.project_id = $4)
  and ($5::text is null or s.user_id = $5)
  and ($6::text is null or s.api_key_id = $6);

-- name: lock_event
select e.* from events e
where e.org_id = $1 and e.event_id = $2 and e.ts >= $3 and e.ts < $3 + interval '1 millisecond'
for update;

-- name: event_by_request_id
select event_id from request_keys where org_id = $1 and request_id = $2;

-- name: list_events
-- Newest first, keyset-paginated on (ts, event_id). Payload columns other than
-- error_message are read only when asked for ($17). Run in planned_per_call (server/storage/db.py).
select e.*, s.kind, s.project_id, s.user_id, s.api_key_id, s.client_id, s.model, s.provider,
       s.endpoint, s.api_name, s.service_tier, s.batch, s.status, s.currency, s.labels,
       p.error_message,
       case when $17 then p.config_json end as config_json,
       case when $17 then p.request_raw end as request_raw,
       case when $17 then p.request_json end as request_json,
       case when $17 then p.response_json end as response_json,
       case when $17 then p.response_raw end as response_raw
from events e
join series s on s.org_id = e.org_id and s.series_id = e.series_id
left join event_payloads p on p.org_id = e.org_id and p.ts = e.ts and p.event_id = e.event_id
where e.org_id = $1
  and ($2::timestamptz is null or e.ts >= $2)
  and ($3::timestamptz is null or e.ts < $3)
  and ($4::timestamptz is null or (e.ts, e.event_id) < ($4, $5::uuid))
  and ($6::text is null or s.project_id = $6)
  and ($7::text is null or s.user_id = $7)
  and ($8::text is null or s.api_key_id = $8)
  and ($9::text[] is null or s.project_id = any($9))
  and ($10::text[] is null or s.user_id = any($10))
  and ($11::text[] is null or s.api_key_id = any($11))
  and ($12::text[] is null or s.client_id = any($12))
  and ($13::text[] is null or s.model = any($13))
  and ($14::text[] is null or s.kind = any($14))
  and ($15 or e.active)
order by e.ts desc, e.event_id desc
limit $16 offset $18;

-- name: update_event
update events set series_id = $4, input_tokens = $5, output_tokens = $6, input_cached_tokens = $7,
    input_cache_write_tokens = $8, input_text_tokens = $9, output_text_tokens = $10,
    input_cached_text_tokens = $11, input_audio_tokens = $12, input_cached_audio_tokens = $13,
    output_audio_tokens = $14, input_image_tokens = $15, input_cached_image_tokens = $16,
    output_image_tokens = $17, num_model_requests = $18, num_requests = $19, images = $20,
    characters = $21, seconds = $22, usage_bytes = $23, num_sessions = $24, units_used = $25,
    counters = $26, input_cost = $27, output_cost = $28, cost = $29, unpriced = $30,
    has_payload = $31, price_version = $32, updated_at = now()
where org_id = $1 and ts = $2 and event_id = $3;

-- name: upsert_payload
insert into event_payloads (org_id, ts, event_id, error_message, config_json, request_raw,
                            request_json, response_json, response_raw)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
on conflict (org_id, ts, event_id) do update set
    error_message = excluded.error_message, config_json = excluded.config_json,
    request_raw = excluded.request_raw, request_json = excluded.request_json,
    response_json = excluded.response_json, response_raw = excluded.response_raw;

-- name: void_event
update events set active = false, updated_at = now()
where org_id = $1 and ts = $2 and event_id = $3;

-- name: event_history
-- $1 org, $2 event_id: its audit trail in the order it was written (index event_adjustments_event).
select at, actor, action, reason, before, after from event_adjustments
where org_id = $1 and event_id = $2
order by adjustment_id;

-- name: insert_adjustment
insert into event_adjustments (org_id, event_id, ts, actor, action, reason, before, after)
values ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: mark_window_dirty
insert into dirty_windows (org_id, window_start) values ($1, $2);
