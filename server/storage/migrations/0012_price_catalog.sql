-- The price catalog (server/pricing/catalog.py, docs/prices.md "The catalog"): the
-- dated price versions of the installed genai-prices, kept once per database as a
-- template. A server installs it at start when it differs from the package's (one
-- transaction, serialized on price_catalog_state). A new organization's price book
-- starts as a copy of it (one INSERT ... SELECT, prices.sql copy_price_catalog),
-- unless METERING_DEFAULT_PRICES=none. Copies are ordinary versions of the
-- organization: events are stamped with them, and a later catalog changes no book
-- until `metering prices sync` imports it.

create table price_catalog_state (
    singleton    boolean primary key default true check (singleton),
    version      text not null,  -- genai-prices version the template holds
    entries      integer not null,
    install_time timestamptz not null default now()
);

create table price_catalog (
    entry_id       integer primary key,
    provider       text not null,
    model          text not null,
    currency       text not null,
    effective_from timestamptz not null,
    note           text not null,
    unique (provider, model, currency, effective_from)
);

create table price_catalog_prices (
    entry_id   integer not null references price_catalog (entry_id) on delete cascade,
    usage_type text not null,
    variant    text not null default '',
    unit_price numeric not null check (unit_price >= 0),
    primary key (entry_id, usage_type, variant)
);
