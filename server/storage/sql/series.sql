-- name: insert_series
insert into series (org_id, fingerprint, kind, project_id, user_id, api_key_id, client_id, model,
                    provider, endpoint, api_name, service_tier, batch, status, currency, labels, price_version)
select * from unnest($1::integer[], $2::bytea[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                     $13::boolean[], $14::text[], $15::text[], $16::jsonb[], $17::text[])
order by 1, 2
on conflict (org_id, fingerprint) do nothing;

-- name: find_series
select org_id, fingerprint, series_id
from series
where (org_id, fingerprint) in (select * from unnest($1::integer[], $2::bytea[]));
