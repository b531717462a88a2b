-- name: ensure_partition
select metering_ensure_partition($1);

-- name: claim_request_keys
-- Claims idempotency keys in the write transaction; keys already claimed (by a
-- committed transaction, or one we waited for) are skipped: the command tag
-- counts the claimed ones.
insert into request_keys (org_id, request_id, event_id, ts)
select * from unnest($1::integer[], $2::text[], $3::uuid[], $4::timestamptz[])
on conflict (org_id, request_id) do nothing;

-- name: claimed_request_keys
-- Which of the keys this transaction claimed: those now holding our event ids.
select k.org_id, k.request_id
from request_keys k
join unnest($1::integer[], $2::text[], $3::uuid[]) as c(org_id, request_id, event_id)
  on k.org_id = c.org_id and k.request_id = c.request_id and k.event_id = c.event_id;

-- name: find_request_keys
select org_id, request_id, event_id
from request_keys
where (org_id, request_id) in (select * from unnest($1::integer[], $2::text[]));

-- name: mark_changed
-- Marks of windows whose events were changed (repricing): read raw until settled.
insert into dirty_windows (org_id, window_start)
select * from unnest($1::integer[], $2::timestamptz[]);

-- name: mark_dirty
-- Marks of appended events (migrations/0005_tails.sql); their ids go on the events.
insert into dirty_windows (org_id, window_start, appends)
select o, w, true from unnest($1::integer[], $2::timestamptz[]) as m(o, w)
returning id, org_id, window_start;
