-- The price book (DESIGN §6, README "Prices and costs").
--
-- * A price version is an immutable price sheet for one (provider, model,
--   currency) of one organization: a unit price per usage type (and, for
--   images, per size/quality variant), in force from effective_from until the
--   next version of the same key takes over. A correction is a new version
--   with the same effective_from: the later one (higher version_id) wins.
--   Versions are never updated or deleted, so an event stamped with a version
--   can always be costed again exactly as it was priced.
-- * price_books.revision counts the changes of an organization's book; every
--   server checks it before pricing a write batch and reloads its in-memory
--   copy when it moved (server/pricing/pricer.py), so replicas price alike.
-- * series.price_version puts the version into the dictionary-encoded series
--   key, so the rollups (grouped by series) and the query engine keep usage of
--   different versions apart: a cost line item is then the exact sum of
--   quantity x unit price per version. Its values: the version that priced the
--   events; 'unpriced' for usage without a cost and without a price; null for
--   costs the caller gave (and for series written before this migration).

create table price_books (
    org_id      integer primary key references organizations (org_id),
    revision    bigint not null default 0,
    update_time timestamptz not null default now()
);

create table price_versions (
    org_id         integer not null references organizations (org_id),
    version_id     bigint generated always as identity,
    version        text generated always as ('pv_' || version_id) stored,
    provider       text not null default '',  -- '' = any provider
    model          text not null,
    currency       text not null,
    effective_from timestamptz not null,
    note           text not null default '',
    created_by     text not null,
    create_time    timestamptz not null default now(),
    primary key (org_id, version_id),
    unique (org_id, version)
);
create index price_versions_key on price_versions (org_id, provider, model, currency, effective_from);

create table prices (
    org_id     integer not null,
    version_id bigint not null,
    usage_type text not null,
    variant    text not null default '',  -- images: '<size>' or '<size> <quality>'; '' = any
    unit_price numeric not null check (unit_price >= 0),
    primary key (org_id, version_id, usage_type, variant),
    foreign key (org_id, version_id) references price_versions (org_id, version_id)
);

alter table series add column price_version text;

-- Repricing writes audited adjustments too.
alter table event_adjustments drop constraint event_adjustments_action_check;
alter table event_adjustments add constraint event_adjustments_action_check
    check (action in ('update', 'void', 'reprice'));

-- Unpriced usage is listed by time range (PriceService.ListUnpricedEvents).
create index events_unpriced on events (org_id, ts) where unpriced;

create or replace function metering_dimension(s series, field text) returns text
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
        when 'price_version' then s.price_version
        else case when field like 'labels.%' then s.labels ->> substr(field, 8) end
    end
$$;
