-- Retention (docs/storage.md "Retention", server/retention/).
--
-- * retention_settings: an organization's own retention, overriding the global defaults
--   (METERING_RETENTION_DAYS, METERING_PAYLOAD_RETENTION_DAYS). A null column takes the
--   default; 0 keeps for ever. Raw events are kept event_days, payloads payload_days <=
--   event_days. Rollups and cubes are kept for ever, so usage and cost stay exact.
-- * retention_floor: one row, the ends of the months whose partitions were dropped
--   (events, payloads). Ingest refuses event times before it whatever an organization's
--   retention says later, so a dropped month can never be written to again: a rollup pass
--   recomputes a window from its raw events, and over a dropped month it would replace
--   the kept rollups by nothing.
-- * Partitions are shared by all organizations: a month is dropped once it is past every
--   organization's horizon (server/retention/drop.py); before that an organization's
--   events past its own horizon are already gone for it (NOT_FOUND, OUTSIDE_RETENTION).

create table retention_settings (
    org_id       integer primary key references organizations (org_id),
    event_days   integer check (event_days >= 0),
    payload_days integer check (payload_days >= 0),
    update_time  timestamptz not null default now(),
    check (payload_days is null or event_days is null or event_days = 0
           or (payload_days > 0 and payload_days <= event_days))
);

create table retention_floor (
    single             boolean primary key default true check (single),
    events_before      timestamptz,
    payloads_before    timestamptz
);
insert into retention_floor (single) values (true);

-- Organization first in every key (docs/scaling.md): the marks' key becomes (org_id, id).
-- The rollup pass deletes its marks by organization and id (rollup_delete_dirty).
alter table dirty_windows drop constraint dirty_windows_pkey;
alter table dirty_windows add primary key (org_id, id);

-- The partitions of a dropped month are never created again, whatever path a write takes:
-- the same function as 0001_core.sql's, refusing months before the floor (SQLSTATE 22008,
-- answered OUT_OF_RANGE "a time is out of the range the service keeps").
create or replace function metering_ensure_partition(at timestamptz) returns void
language plpgsql as $$
declare
    lo timestamptz := date_trunc('month', at at time zone 'UTC') at time zone 'UTC';
    hi timestamptz := lo + interval '1 month';
    suffix text := to_char(lo at time zone 'UTC', 'YYYY_MM');
    parent text;
begin
    perform pg_advisory_xact_lock(hashtext('metering_ensure_partition'));
    if hi <= (select events_before from retention_floor) then
        raise exception 'the events of % are dropped (retention)', suffix using errcode = '22008';
    end if;
    foreach parent in array array['events', 'event_payloads'] loop
        if to_regclass(format('%I_%s', parent, suffix)) is null then
            execute format('create table %I partition of %I for values from (%L) to (%L)',
                           parent || '_' || suffix, parent, lo, hi);
        end if;
    end loop;
end;
$$;
