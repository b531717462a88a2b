-- name: ensure_partition
select metering_ensure_partition($1);

-- name: claim_request_keys
-- Claims idempotency keys in the write transaction; rows already claimed (by a
-- committed transaction, or one we waited for) come back missing from RETURNING.
insert into request_keys (org_id, request_id, event_id, ts)
select * from unnest($1::integer[], $2::text[], $3::uuid[], $4::timestamptz[])
on conflict (org_id, request_id) do nothing
returning org_id, request_id;

-- name: find_request_keys
select org_id, request_id, event_id
from request_keys
where (org_id, request_id) in (select * from unnest($1::integer[], $2::text[]));

-- name: mark_dirty
insert into dirty_windows (org_id, window_start)
select * from unnest($1::integer[], $2::timestamptz[]);
