-- The price book (server/pricing/versions.py, server/pricing/rules.py) and repricing
-- (server/costs/reprice.py).

-- name: price_book_revisions
-- $1 orgs. Read before pricing every write batch: a book whose revision moved is reloaded.
-- catalog_id: the shared catalog the book uses (null: none), loaded once per process.
select org_id, revision, catalog_id from price_books where org_id = any($1::integer[]);

-- name: price_book_versions
-- $1 orgs: every version of their own with its prices (a version without prices: one row, null
-- usage_type); the versions of the catalog a book uses are price_catalog_versions.
select v.org_id, v.version_id, v.version, v.provider, v.model, v.currency, v.effective_from, v.note,
       v.created_by, v.create_time, p.usage_type, p.variant, p.unit_price
from price_versions v
left join prices p on p.org_id = v.org_id and p.version_id = v.version_id
where v.org_id = any($1::integer[])
order by v.org_id, v.version_id, p.usage_type, p.variant;

-- name: lock_price_book
-- Serializes changes to one organization's book (the row lock lasts until commit).
insert into price_books (org_id) values ($1)
on conflict (org_id) do update set org_id = excluded.org_id
returning revision, catalog_id;

-- name: bump_price_book
update price_books set revision = revision + 1, update_time = now() where org_id = $1 returning revision;

-- name: next_price_version_ids
-- $1 how many: version ids in increasing order (the versions of one call, in input order).
select nextval(pg_get_serial_sequence('price_versions', 'version_id')) as version_id
from generate_series(1, $1::integer)
order by 1;

-- name: insert_price_versions
-- $1 org, $2.. per version: id, provider, model, currency, effective_from, note; $8 created_by.
with v as (
    insert into price_versions (org_id, version_id, provider, model, currency, effective_from, note, created_by)
    overriding system value
    select $1, * , $8 from unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[])
    returning create_time
)
select max(create_time) from v;

-- name: insert_prices
-- $1 org, per price: version id, usage type, variant, unit price.
insert into prices (org_id, version_id, usage_type, variant, unit_price)
select $1, * from unnest($2::bigint[], $3::text[], $4::text[], $5::numeric[]);

-- name: list_unpriced_events
-- Newest first, keyset-paginated on (ts, event_id); $4/$5 the last row of the previous page;
-- $6..$8 the read scope; $9 models (null: any). Run in planned_per_call (server/storage/db.py).
select e.*, s.kind, s.project_id, s.user_id, s.api_key_id, s.client_id, s.model, s.provider,
       s.endpoint, s.api_name, s.service_tier, s.batch, s.status, s.currency, s.labels,
       p.error_message, null::text as config_json, null::text as request_raw, null::text as request_json,
       null::text as response_json, null::text as response_raw
from events e
join series s on s.org_id = e.org_id and s.series_id = e.series_id
left join event_payloads p on p.org_id = e.org_id and p.ts = e.ts and p.event_id = e.event_id
where e.org_id = $1 and e.unpriced and e.active
  and ($2::timestamptz is null or e.ts >= $2)
  and ($3::timestamptz is null or e.ts < $3)
  and ($4::timestamptz is null or (e.ts, e.event_id) < ($4, $5::uuid))
  and ($6::text is null or s.project_id = $6)
  and ($7::text is null or s.user_id = $7)
  and ($8::text is null or s.api_key_id = $8)
  and ($9::text[] is null or s.model = any($9))
order by e.ts desc, e.event_id desc
limit $10;

-- name: reprice_candidates
-- $1 org, [$2, $3) event time, $4 models, $5 providers (null: any). The active
-- events the price book priced, or left unpriced; caller-given costs never.
select e.ts, e.event_id, e.price_version, e.unpriced, e.input_cost, e.output_cost, e.cost,
       e.input_tokens, e.output_tokens, e.input_cached_tokens, e.input_cache_write_tokens,
       e.input_text_tokens, e.output_text_tokens, e.input_cached_text_tokens, e.input_audio_tokens,
       e.input_cached_audio_tokens, e.output_audio_tokens, e.input_image_tokens, e.input_cached_image_tokens,
       e.output_image_tokens, e.num_model_requests, e.num_requests, e.images, e.characters, e.seconds,
       e.usage_bytes, e.num_sessions, e.units_used,
       s.kind, s.project_id, s.user_id, s.api_key_id, s.client_id, s.model, s.provider, s.endpoint,
       s.api_name, s.service_tier, s.batch, s.status, s.currency, s.labels
from events e
join series s on s.org_id = e.org_id and s.series_id = e.series_id
where e.org_id = $1 and e.ts >= $2 and e.ts < $3 and e.active
  and (e.price_version is not null or e.unpriced)
  and ($4::text[] is null or s.model = any($4))
  and ($5::text[] is null or coalesce(s.provider, '') = any($5))
order by e.ts, e.event_id;

-- name: reprice_lock
-- The same rows, locked for the apply transaction.
select e.event_id
from events e
join series s on s.org_id = e.org_id and s.series_id = e.series_id
where e.org_id = $1 and e.ts >= $2 and e.ts < $3 and e.active
  and (e.price_version is not null or e.unpriced)
  and ($4::text[] is null or s.model = any($4))
  and ($5::text[] is null or coalesce(s.provider, '') = any($5))
order by e.ts, e.event_id
for update of e;

-- name: reprice_events
-- $1 org; per event: ts, id, new series, costs and version.
update events e set series_id = u.series_id, input_cost = u.input_cost, output_cost = u.output_cost,
    cost = u.cost, price_version = u.price_version, unpriced = false, updated_at = now()
from unnest($2::timestamptz[], $3::uuid[], $4::bigint[], $5::numeric[], $6::numeric[], $7::numeric[], $8::text[])
    as u(ts, event_id, series_id, input_cost, output_cost, cost, price_version)
where e.org_id = $1 and e.ts = u.ts and e.event_id = u.event_id;

-- name: reprice_audit
insert into event_adjustments (org_id, event_id, ts, actor, action, reason, before, after)
select $1, u.event_id, u.ts, $2, 'reprice', $3, u.before, u.after
from unnest($4::uuid[], $5::timestamptz[], $6::jsonb[], $7::jsonb[]) as u(event_id, ts, before, after);

-- name: catalog_state
-- The installed catalog, locked until commit (one installer at a time).
select version, catalog_id from price_catalog_state where singleton for update;

-- name: catalog_claim
insert into price_catalog_state (version, entries) values ('', 0) on conflict do nothing;

-- name: catalog_new
-- $1 the genai-prices version: a new, empty catalog (its versions follow).
insert into price_catalogs (version) values ($1) returning catalog_id;

-- name: catalog_insert
-- $1 catalog; $2..$7 per entry: version id, provider, model, currency, effective_from, note.
insert into price_catalog (catalog_id, version_id, provider, model, currency, effective_from, note)
select $1, * from unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[]);

-- name: catalog_insert_prices
insert into price_catalog_prices (version_id, usage_type, variant, unit_price)
select * from unnest($1::bigint[], $2::text[], $3::text[], $4::numeric[]);

-- name: catalog_installed
update price_catalog_state set version = $1, entries = $2, catalog_id = $3, install_time = now() where singleton;

-- name: catalog_in_use
-- The catalogs books use (a scan of price_books, at an install only).
select distinct catalog_id from price_books where catalog_id is not null;

-- name: catalog_forget
-- $1 the catalogs to keep (the new one, the one it replaces, those books use): the others go.
delete from price_catalogs where catalog_id <> all($1::integer[]);

-- name: price_catalog_versions
-- $1 catalog, $2 created_by: its versions with their prices, as price_book_versions reads a book's
-- own (each has prices), created when it was installed.
select c.version_id, 'pv_' || c.version_id as version, c.provider, c.model, c.currency, c.effective_from, c.note,
       $2::text as created_by, s.install_time as create_time, p.usage_type, p.variant, p.unit_price
from price_catalog c
join price_catalogs s on s.catalog_id = c.catalog_id
join price_catalog_prices p on p.version_id = c.version_id
where c.catalog_id = $1
order by c.version_id, p.usage_type, p.variant;

-- name: attach_price_catalog
-- $1 org: its book starts as the installed catalog, shared (a reference to the catalog's versions,
-- not a copy: one row); nothing if no catalog is installed, or the book exists already.
insert into price_books (org_id, revision, catalog_id)
select $1, 1, s.catalog_id from price_catalog_state s where s.catalog_id is not null
on conflict (org_id) do nothing;

-- name: price_catalog_default
-- The default organization gets the catalog at the first start that installs one, as
-- long as nothing was ever done to its book.
select o.org_id from organizations o
where o.id = 'org_default' and not exists (select 1 from price_books b where b.org_id = o.org_id);
