-- The metering core: tenants, credentials, events, idempotency keys, dirty windows.
--
-- Layout decisions (see README "Storage"):
-- * Every key starts with org_id (an internal integer), so the schema can be
--   distributed by organization (Citus) without rewriting queries.
-- * Dimensions are dictionary-encoded: an event points at a `series` row that
--   holds its project/user/key/model/... and labels. Events are then a narrow,
--   fixed-width row of counters, which keeps COPY ingest and rollups fast.
-- * events and event_payloads are range-partitioned by event time (monthly);
--   partitions are created on demand by the ingest path (metering_ensure_partition).
-- * Dedupe lives in request_keys, a plain table with primary key
--   (org_id, request_id): a unique index on the partitioned events table would
--   have to include the event time, and a retry may carry another time.
-- * event_id is a UUID whose first 48 bits are the event time in milliseconds,
--   so a lookup by id prunes to one partition and uses the primary key.

create table organizations (
    org_id      integer generated always as identity primary key,
    id          text not null unique,
    name        text not null unique,
    create_time timestamptz not null default now()
);

create table projects (
    org_id      integer not null references organizations (org_id),
    project_id  text not null,
    name        text not null,
    create_time timestamptz not null default now(),
    primary key (org_id, project_id)
);

create table users (
    org_id        integer not null references organizations (org_id),
    user_id       text not null,
    username      text not null unique,
    password_hash text not null,
    role          text not null check (role in ('admin', 'member')),
    create_time   timestamptz not null default now(),
    primary key (org_id, user_id)
);

create table api_keys (
    org_id      integer not null references organizations (org_id),
    api_key_id  text not null unique,
    prefix      text not null unique,
    secret_hash bytea not null,
    project_id  text,
    user_id     text,
    role        text not null check (role in ('admin', 'member')),
    name        text not null default '',
    create_time timestamptz not null default now(),
    revoke_time timestamptz,
    primary key (org_id, api_key_id)
);

-- Server-wide secrets (the login-token signing key), generated on first start.
create table server_secrets (
    name  text primary key,
    value bytea not null
);

create table series (
    org_id       integer not null,
    series_id    bigint generated always as identity,
    fingerprint  bytea not null,
    kind         text not null,
    project_id   text,
    user_id      text,
    api_key_id   text,
    client_id    text,
    model        text,
    provider     text,
    endpoint     text,
    api_name     text,
    service_tier text,
    batch        boolean not null,
    status       text not null,
    currency     text not null,
    labels       jsonb not null default '{}',
    primary key (org_id, series_id),
    unique (org_id, fingerprint)
);

create table events (
    org_id                    integer not null,
    ts                        timestamptz not null,
    event_id                  uuid not null,
    series_id                 bigint not null,
    request_id                text not null,
    received_at               timestamptz not null,
    updated_at                timestamptz not null,
    active                    boolean not null default true,
    input_tokens              bigint not null default 0,
    output_tokens             bigint not null default 0,
    input_cached_tokens       bigint not null default 0,
    input_cache_write_tokens  bigint not null default 0,
    input_text_tokens         bigint not null default 0,
    output_text_tokens        bigint not null default 0,
    input_cached_text_tokens  bigint not null default 0,
    input_audio_tokens        bigint not null default 0,
    input_cached_audio_tokens bigint not null default 0,
    output_audio_tokens       bigint not null default 0,
    input_image_tokens        bigint not null default 0,
    input_cached_image_tokens bigint not null default 0,
    output_image_tokens       bigint not null default 0,
    num_model_requests        bigint not null default 1,
    num_requests              bigint not null default 0,
    images                    bigint not null default 0,
    characters                bigint not null default 0,
    seconds                   bigint not null default 0,
    usage_bytes               bigint not null default 0,
    num_sessions              bigint not null default 0,
    units_used                bigint not null default 0,
    counters                  jsonb,
    input_cost                numeric,
    output_cost               numeric,
    cost                      numeric,
    price_version             text,
    unpriced                  boolean not null default false,
    has_payload               boolean not null default false,
    primary key (org_id, ts, event_id)
) partition by range (ts);

create table event_payloads (
    org_id        integer not null,
    ts            timestamptz not null,
    event_id      uuid not null,
    error_message text,
    config_json   text,
    request_raw   text,
    request_json  text,
    response_json text,
    response_raw  text,
    primary key (org_id, ts, event_id)
) partition by range (ts);

create table request_keys (
    org_id     integer not null,
    request_id text not null,
    event_id   uuid not null,
    ts         timestamptz not null,
    primary key (org_id, request_id)
);

-- Audit trail of adjustments and voids.
create table event_adjustments (
    org_id        integer not null,
    adjustment_id bigint generated always as identity,
    event_id      uuid not null,
    ts            timestamptz not null,
    at            timestamptz not null default now(),
    actor         text not null,
    action        text not null check (action in ('update', 'void')),
    reason        text not null default '',
    before        jsonb not null,
    after         jsonb not null,
    primary key (org_id, adjustment_id)
);

-- Windows (15-minute grain) whose rollups are stale. Insert-only from the write
-- path, so concurrent writers never contend on a row; the rollup worker deletes
-- the rows it has recomputed, in the same transaction as the new rollups.
create table dirty_windows (
    id           bigint generated always as identity primary key,
    org_id       integer not null,
    window_start timestamptz not null,
    marked_at    timestamptz not null default now()
);
create index dirty_windows_window on dirty_windows (org_id, window_start);

-- Creates the monthly partitions of events and event_payloads holding `at`.
create function metering_ensure_partition(at timestamptz) returns void
language plpgsql as $$
declare
    lo timestamptz := date_trunc('month', at at time zone 'UTC') at time zone 'UTC';
    hi timestamptz := lo + interval '1 month';
    suffix text := to_char(lo at time zone 'UTC', 'YYYY_MM');
    parent text;
begin
    perform pg_advisory_xact_lock(hashtext('metering_ensure_partition'));
    foreach parent in array array['events', 'event_payloads'] loop
        if to_regclass(format('%I_%s', parent, suffix)) is null then
            execute format('create table %I partition of %I for values from (%L) to (%L)',
                           parent || '_' || suffix, parent, lo, hi);
        end if;
    end loop;
end;
$$;

insert into organizations (id, name) values ('org_default', 'default');
