-- Retention (server/storage/horizons.py, server/retention/, migrations/0014_retention.sql).

-- name: retention_of
-- $1 org: its settings (null: the defaults) and the floor of the dropped months.
select r.event_days, r.payload_days, f.events_before, f.payloads_before
from retention_floor f
left join retention_settings r on r.org_id = $1;

-- name: retention_lock
-- Serializes settings changes with the partition drop (server/retention/drop.py): a drop
-- decides on the settings committed before it, and a change after it meets its floor.
select pg_advisory_xact_lock(hashtext('metering_retention'));

-- name: put_retention
insert into retention_settings (org_id, event_days, payload_days) values ($1, $2, $3)
on conflict (org_id) do update set event_days = excluded.event_days, payload_days = excluded.payload_days,
    update_time = now()
returning event_days, payload_days, update_time;

-- name: all_retention
-- Every organization's settings (nulls: the defaults), for the drop.
select o.org_id, r.event_days, r.payload_days
from organizations o
left join retention_settings r on r.org_id = o.org_id;

-- name: retention_tuning
-- $1 how long the drop waits for a lock (this transaction only).
select set_config('lock_timeout', $1, true);

-- name: retention_partitions
-- The monthly partitions of events and event_payloads (named <parent>_YYYY_MM).
select p.relname as parent, c.relname as partition
from pg_inherits i
join pg_class c on c.oid = i.inhrelid
join pg_class p on p.oid = i.inhparent
where p.relname in ('events', 'event_payloads') and p.relnamespace = 'public'::regnamespace
order by c.relname;

-- name: retention_partition_lock
-- The drop's lock on partitions: the same lock metering_ensure_partition takes.
select pg_advisory_xact_lock(hashtext('metering_ensure_partition'));

-- name: retention_dirty_in
-- $1, $2 a month: is any window in it, of any organization, still dirty (not rolled up)?
select exists (select 1 from dirty_windows where window_start >= $1 and window_start < $2);

-- name: retention_raise_floor
update retention_floor set events_before = greatest(events_before, $1),
    payloads_before = greatest(payloads_before, $2)
returning events_before, payloads_before;

-- name: retention_forget_keys
-- The request keys of dropped events (the dedupe horizon: a key lives as long as its event).
delete from request_keys where ts < $1;
