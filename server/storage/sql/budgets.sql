-- Budgets, reservations and their holds (server/budgets/, migrations/0009_budgets.sql).

-- name: budget_book
-- $1 org: every budget of the organization with the revision they are at (one
-- snapshot); one row with a null budget_id when it has none.
select k.revision, b.*
from (select coalesce((select revision from budget_books where org_id = $1), 0) as revision) k
left join budgets b on b.org_id = $1
order by b.budget_id;

-- name: bump_budget_book
-- In the transaction of every budget change: the servers' copies are stale from now.
insert into budget_books (org_id, revision) values ($1, 1)
on conflict (org_id) do update set revision = budget_books.revision + 1
returning revision;

-- name: count_budgets
select count(*) from budgets where org_id = $1;

-- name: insert_budget
insert into budgets (org_id, budget_id, name, scope, metric, currency, limit_amount, period, time_zone,
                     week_start, rolling_window, mode, thresholds, on_unpriced, on_unavailable)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
returning *;

-- name: update_budget
update budgets set name = $3, scope = $4, metric = $5, currency = $6, limit_amount = $7, period = $8,
    time_zone = $9, week_start = $10, rolling_window = $11, mode = $12, thresholds = $13, on_unpriced = $14,
    on_unavailable = $15, update_time = now()
where org_id = $1 and budget_id = $2
returning *;

-- name: get_budget
select * from budgets where org_id = $1 and budget_id = $2;

-- name: lock_budget
select * from budgets where org_id = $1 and budget_id = $2 for update;

-- name: delete_budget
delete from budgets where org_id = $1 and budget_id = $2 returning budget_id;

-- name: list_budgets
-- By create time, keyset-paginated on (create_time, budget_id): $2/$3 the last row of the
-- previous page (null: from the start), $4 rows.
select * from budgets
where org_id = $1 and ($2::timestamptz is null or (create_time, budget_id) > ($2, $3::text))
order by create_time, budget_id
limit $4;

-- name: lock_budgets
-- A Check that lost the race to settlements three times reads the usage under the locks.
select budget_id from budgets where org_id = $1 and budget_id = any($2::text[]) order by budget_id for update;

-- name: budget_seqs
-- $1 org, $2 budget ids: the organization's budget revision and each budget's settle_seq
-- (null: gone), read before the query engine's snapshot (server/budgets/check.py).
select coalesce((select revision from budget_books where org_id = $1), 0) as revision,
       array(select b.settle_seq from unnest($2::text[]) with ordinality as x(id, i)
             left join budgets b on b.org_id = $1 and b.budget_id = x.id
             order by x.i) as seqs;

-- name: budget_read
-- The critical section of a Check without a reservation (and of GetBudget, ListBudgets):
-- nothing locked or written, so no transaction to commit; one statement, so the budget
-- revision, the settle_seqs and the holds it reads are of one snapshot, taken after the
-- usage's (server/budgets/check.py). $1 org, $2 now, $3 the revision read before (null: not
-- verified), $4 budget ids, $5 their settle_seqs as read before the usage, $6..$9 headroom,
-- strict, enforce, blocked (metering_budget_verdicts). The columns of budget_reserve.
select case when coalesce((select revision from budget_books where org_id = $1), 0) <> $3::bigint then 'changed'
            when s.seqs is distinct from $5::bigint[] then 'stale'
            else 'checked' end as outcome,
       null::text as reservation_id, null::timestamptz as expires_at, v.held, v.fits, v.admits, s.seqs
from (select coalesce(array_agg(b.settle_seq order by x.i), '{}') as seqs
      from unnest($4::text[]) with ordinality as x(id, i)
      left join budgets b on b.org_id = $1 and b.budget_id = x.id) s
cross join metering_budget_verdicts($1::integer, $2::timestamptz, $4::text[], $6::numeric[], $7::boolean[],
                                    $8::boolean[], $9::boolean[], null) v;

-- name: budget_reserve
-- The critical section of a batch of reserving Checks: metering_budget_reserve in
-- migrations/0009_budgets.sql (its comment says what the arrays hold).
select * from metering_budget_reserve($1::integer[], $2::timestamptz[], $3::bigint[], $4::text[], $5::text[],
                                      $6::timestamptz[], $7::text[], $8::text[], $9::integer[], $10::text[],
                                      $11::bigint[], $12::numeric[], $13::boolean[], $14::boolean[],
                                      $15::boolean[], $16::numeric[]);

-- name: get_reservation
select * from budget_reservations where org_id = $1 and reservation_id = $2;

-- name: close_reservations
-- Settles ($4 'settled', with the events $3) or releases ($4 'released') open, unexpired
-- reservations ($1 orgs, $2 ids), removing their holds: metering_budget_close in
-- migrations/0009_budgets.sql. Returns the reservations closed now.
select * from metering_budget_close($1::integer[], $2::text[], $3::uuid[], $4::text);

-- name: sweep_reservations
-- Expired reservations (a minute past expiry, so no server's clock still counts them) are
-- marked expired and their holds removed, with the expired seconds of budget_held;
-- reservations closed over a week ago are deleted (a retried Check's request_id is
-- honoured that long). At most $1 reservations of each kind per call.
with expired as (
    update budget_reservations r set state = 'expired', close_time = now()
    where (r.org_id, r.reservation_id) in (
        select org_id, reservation_id from budget_reservations
        where state = 'open' and expires_at < now() - interval '1 minute'
        limit $1 for update skip locked)
    returning r.org_id, r.reservation_id
), released as (
    delete from budget_holds h using expired e
    where h.org_id = e.org_id and h.reservation_id = e.reservation_id
    returning 1
), unheld as (
    delete from budget_held where expires_at < now() - interval '1 minute'
    returning 1
), forgotten as (
    delete from budget_reservations r
    where (r.org_id, r.reservation_id) in (
        select org_id, reservation_id from budget_reservations
        where state <> 'open' and close_time < now() - interval '7 days'
        limit $1 for update skip locked)
    returning 1
)
select (select count(*) from expired) as expired, (select count(*) from forgotten) as forgotten;
