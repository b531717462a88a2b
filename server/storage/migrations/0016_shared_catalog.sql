-- One price catalog shared by every book that uses it (server/pricing/catalog.py, docs/prices.md
-- "The catalog"), replacing the per-organization copy of migration 0012.
--
-- * price_catalogs: each installed genai-prices release, an immutable set of dated versions. A
--   server installs a new set when its package differs from the current one
--   (price_catalog_state.catalog_id); sets no book refers to are dropped at a later install.
-- * price_catalog: the versions of a set. Their version_id is drawn from price_versions'
--   sequence, so a catalog version's name (pv_<id>) is unique among every organization's own
--   versions too, and events are stamped with it as with any version.
-- * price_books.catalog_id: the set a book uses (null: none). The book is the organization's
--   own versions merged with the set's by date: an own version takes over from its
--   effective_from, and at the same instant it wins over the catalog's (as a copy made when
--   the organization was created would have: its ids came before every own version's).
--   Nothing changes a book's set: a newer catalog reaches a book through `metering prices sync`,
--   as its own versions.
--
-- Books that hold a copy of the catalog (organizations created before this migration) keep it:
-- those versions are the organization's own, and its events are stamped with them. The old
-- template is emptied here; the next server start installs the catalog as a set.

drop table price_catalog_prices;
drop table price_catalog;
delete from price_catalog_state;

create table price_catalogs (
    catalog_id   integer generated always as identity primary key,
    version      text not null,  -- the genai-prices version it was read from
    install_time timestamptz not null default now()
);

alter table price_catalog_state add column catalog_id integer references price_catalogs (catalog_id);

create table price_catalog (
    version_id     bigint primary key,  -- from price_versions' sequence: pv_<version_id>
    catalog_id     integer not null references price_catalogs (catalog_id) on delete cascade,
    provider       text not null,
    model          text not null,
    currency       text not null,
    effective_from timestamptz not null,
    note           text not null,
    unique (catalog_id, provider, model, currency, effective_from)
);

create table price_catalog_prices (
    version_id bigint not null references price_catalog (version_id) on delete cascade,
    usage_type text not null,
    variant    text not null default '',
    unit_price numeric not null check (unit_price >= 0),
    primary key (version_id, usage_type, variant)
);

-- No foreign key: a distributed table's keys all hold org_id (docs/scaling.md). An install drops
-- only sets that no book uses and that were not current before it (server/pricing/catalog.py).
alter table price_books add column catalog_id integer;
