-- Budgets and reservations (DESIGN §11, server/budgets/).
--
-- * A budget's `used` is never stored: it is the query engine's exact usage of the
--   period plus the open holds below, computed on every Check.
-- * Every key starts with org_id, so the tables can be distributed by organization.
-- * budget_books.revision counts the changes to an organization's budgets (create,
--   update, delete), as price_books does for prices: a server keeps the budgets in
--   memory to find those covering a usage, and a Check verifies the revision under
--   its locks, so a budget created or changed by another replica is never missed.
-- * budgets.settle_seq counts the reservations of the budget settled or released
--   (their holds removed). A Check reads it before the query engine's snapshot and
--   verifies it under the budget's row lock: when no hold left between the two, the
--   snapshot's usage and the holds read under the lock are of the same moment
--   (server/budgets/check.py has the argument).
-- * A reservation holds an amount per covering budget (budget_holds) while open;
--   settling, releasing or expiring it removes its holds. A hold past expires_at no
--   longer counts, whether or not the sweep has removed it yet.

create table budget_books (
    org_id   integer primary key references organizations (org_id),
    revision bigint not null default 0
);

create table budgets (
    org_id         integer not null references organizations (org_id),
    budget_id      text not null,
    name           text not null default '',
    scope          jsonb not null default '[]',  -- [[field, [values, ...]], ...] sorted by field
    metric         text not null,  -- 'cost', a counter column, or 'counters.<name>'
    currency       text not null default '',  -- cost budgets only
    limit_amount   numeric not null check (limit_amount >= 0),
    period         text not null check (period in ('day', 'week', 'month', 'quarter', 'year', 'total', 'rolling')),
    time_zone      text not null default 'UTC',
    week_start     smallint not null default 1 check (week_start between 1 and 7),
    rolling_window interval,
    mode           text not null check (mode in ('alert', 'enforce')),
    thresholds     numeric[] not null default '{}',
    on_unpriced    text not null check (on_unpriced in ('allow', 'deny')),
    on_unavailable text not null check (on_unavailable in ('fail_open', 'fail_closed')),
    settle_seq     bigint not null default 0,
    create_time    timestamptz not null default now(),
    update_time    timestamptz not null default now(),
    primary key (org_id, budget_id),
    check ((period = 'rolling') = (rolling_window is not null))
);
create index budgets_created on budgets (org_id, create_time, budget_id);

create table budget_reservations (
    org_id         integer not null references organizations (org_id),
    reservation_id text not null,
    request_id     text,  -- the Check's idempotency key, if it gave one
    api_key_id     text,  -- who took it: a member may release only its own
    user_id        text,
    state          text not null default 'open' check (state in ('open', 'settled', 'released', 'expired')),
    create_time    timestamptz not null default now(),
    expires_at     timestamptz not null,
    close_time     timestamptz,
    event_id       uuid,  -- the event that settled it
    primary key (org_id, reservation_id)
);
create unique index budget_reservations_request on budget_reservations (org_id, request_id)
    where request_id is not null;
-- The sweep (across organizations): open reservations by expiry, closed ones by age.
create index budget_reservations_expiry on budget_reservations (expires_at) where state = 'open';
create index budget_reservations_closed on budget_reservations (close_time) where state <> 'open';

create table budget_holds (
    org_id         integer not null,
    budget_id      text not null,
    reservation_id text not null,
    amount         numeric not null check (amount > 0),
    expires_at     timestamptz not null,  -- the reservation's, so a Check reads one table
    primary key (org_id, budget_id, reservation_id),
    foreign key (org_id, budget_id) references budgets (org_id, budget_id) on delete cascade,
    foreign key (org_id, reservation_id) references budget_reservations (org_id, reservation_id) on delete cascade
);
create index budget_holds_reservation on budget_holds (org_id, reservation_id);

-- The open holds of each budget summed by expiry second (reservations expire on whole
-- seconds), kept with budget_holds in the same statements and under the same row locks: a
-- Check sums at most one row per second of the longest TTL in use (600 for the default),
-- however many reservations are open (a hot budget at 2,000 reservations/s holds 1.2M).
-- Rows at 0 stay until the sweep removes the expired ones.
create table budget_held (
    org_id     integer not null,
    budget_id  text not null,
    expires_at timestamptz not null,
    amount     numeric not null check (amount >= 0),
    primary key (org_id, budget_id, expires_at),
    foreign key (org_id, budget_id) references budgets (org_id, budget_id) on delete cascade
);

-- The decision of a Check, in one place: the open holds of each budget at p_now (plus
-- p_extra: the holds a batch has taken and not yet written; null: none) and whether the
-- usage fits. A budget's usage fits when its holds are at most its headroom (limit - usage
-- - estimate), or strictly below it (limit - usage) when the estimate is zero: a budget that
-- reached its limit admits nothing more. A budget admits the usage when it is not enforced,
-- or when it is not blocked (unpriced usage under DENY) and the usage fits. Arrays in
-- p_budget_ids order.
create function metering_budget_verdicts(
    p_org integer, p_now timestamptz, p_budget_ids text[], p_headroom numeric[], p_strict boolean[],
    p_enforce boolean[], p_blocked boolean[], p_extra numeric[],
    out held numeric[], out fits boolean[], out admits boolean[]
)
language plpgsql stable as $$  -- plpgsql: its plan is kept per session (a SQL function's is made per call)
#variable_conflict use_column
begin
    select coalesce(array_agg(t.held order by a.i), '{}'),
           coalesce(array_agg(f.fits order by a.i), '{}'),
           coalesce(array_agg(not a.enforce or (not a.blocked and f.fits) order by a.i), '{}')
    into held, fits, admits
    from unnest(p_budget_ids, p_headroom, p_strict, p_enforce, p_blocked) with ordinality
         as a(id, headroom, strict, enforce, blocked, i)
    left join (
        select hb.budget_id, sum(hb.amount) as amount from budget_held hb
        where hb.org_id = p_org and hb.budget_id = any(p_budget_ids) and hb.expires_at > p_now
        group by hb.budget_id
    ) h on h.budget_id = a.id
    cross join lateral (select coalesce(h.amount, 0) + coalesce(p_extra[a.i], 0) as held) t
    cross join lateral (
        select case when a.strict then t.held < a.headroom else t.held <= a.headroom end as fits
    ) f;
end;
$$;

-- The critical section of reserving Checks (server/budgets/check.py), for a batch of
-- them (server/budgets/reserve.py coalesces the concurrent ones of a server process into
-- one transaction, so a hot budget's row lock is held across one commit for many
-- reservations, not one each). Item n is (p_orgs[n], p_nows[n], ...); its budgets are the
-- next p_counts[n] entries of the p_budget_* arrays, in budget_id order.
--
-- First the rows of every budget of the batch are locked in (org_id, budget_id) order, so
-- batches and settlements (metering_budget_close) locking overlapping budgets cannot
-- deadlock, and their settle_seqs and the organizations' budget revisions are read: under
-- the locks nothing can change them, nor the budgets' holds, until the batch commits.
-- Then for each item in turn: verify that nothing it read before has changed, the
-- organization's budget revision (else outcome 'changed') and each budget's settle_seq
-- (else 'stale'); take the reservation of an earlier Check with the same request_id if
-- there is one ('existing'); decide on the stored holds plus those of the items before it
-- (metering_budget_verdicts); reserve if every budget admits it ('reserved'; else
-- 'checked'). The batch's reservations, holds and held sums are written at the end, three
-- statements (a row updated once per item would grow a version chain every later read
-- walks). One row per item: the holds (with its own), the verdicts, and the settle_seqs
-- read under the locks.
create function metering_budget_reserve(
    p_orgs integer[], p_nows timestamptz[], p_revisions bigint[], p_reservation_ids text[], p_request_ids text[],
    p_expires_at timestamptz[], p_api_key_ids text[], p_user_ids text[], p_counts integer[],
    p_budget_ids text[], p_seqs bigint[], p_headroom numeric[], p_strict boolean[], p_enforce boolean[],
    p_blocked boolean[], p_amounts numeric[]
) returns table (
    item integer, outcome text, reservation_id text, expires_at timestamptz, held numeric[], fits boolean[],
    admits boolean[], seqs bigint[]
)
language plpgsql as $$
#variable_conflict use_column
declare
    v_entry_orgs integer[];  -- the organization of each entry of the p_budget_* arrays
    v_all_seqs bigint[];  -- the settle_seq of each entry, read under the locks
    v_revisions bigint[];  -- each item's organization's budget revision
    v_first integer := 1;  -- the item's first entry
    v_last integer;
    v_ids text[];
    v_amounts numeric[];
    v_extra numeric[];
    v_verdicts record;
    v_reserved integer[] := '{}';  -- the items reserved, in order
    h_orgs integer[] := '{}';  -- the holds they take
    h_ids text[] := '{}';
    h_reservations text[] := '{}';
    h_amounts numeric[] := '{}';
    h_expires timestamptz[] := '{}';
begin
    select coalesce(array_agg(p_orgs[c.n] order by c.n, x.k), '{}') into v_entry_orgs
    from unnest(p_counts) with ordinality as c(count, n)
    cross join lateral generate_series(1, c.count) as x(k);
    perform 1 from budgets b
    join unnest(v_entry_orgs, p_budget_ids) as x(org_id, id) on b.org_id = x.org_id and b.budget_id = x.id
    order by b.org_id, b.budget_id
    for update of b;
    select coalesce(array_agg(b.settle_seq order by x.k), '{}') into v_all_seqs
    from unnest(v_entry_orgs, p_budget_ids) with ordinality as x(org_id, id, k)
    left join budgets b on b.org_id = x.org_id and b.budget_id = x.id;
    select coalesce(array_agg(coalesce(k.revision, 0) order by x.n), '{}') into v_revisions
    from unnest(p_orgs) with ordinality as x(org_id, n)
    left join budget_books k on k.org_id = x.org_id;

    for v_n in 1 .. coalesce(array_length(p_orgs, 1), 0) loop
        item := v_n;
        reservation_id := null;
        expires_at := null;
        held := null;
        fits := null;
        admits := null;
        v_last := v_first + p_counts[v_n] - 1;
        seqs := coalesce(v_all_seqs[v_first:v_last], '{}');
        v_ids := coalesce(p_budget_ids[v_first:v_last], '{}');
        v_amounts := coalesce(p_amounts[v_first:v_last], '{}');
        if v_revisions[v_n] <> p_revisions[v_n] then
            outcome := 'changed';
        elsif seqs is distinct from coalesce(p_seqs[v_first:v_last], '{}') then
            outcome := 'stale';
        else
            select coalesce(array_agg(t.amount order by x.k), '{}') into v_extra
            from unnest(v_ids) with ordinality as x(id, k)
            cross join lateral (
                select coalesce(sum(h.amount), 0) as amount
                from unnest(h_orgs, h_ids, h_amounts, h_expires) as h(org_id, id, amount, expires_at)
                where h.org_id = p_orgs[v_n] and h.id = x.id and h.expires_at > p_nows[v_n]
            ) t;
            select v.* into v_verdicts from metering_budget_verdicts(
                p_orgs[v_n], p_nows[v_n], v_ids, coalesce(p_headroom[v_first:v_last], '{}'),
                coalesce(p_strict[v_first:v_last], '{}'), coalesce(p_enforce[v_first:v_last], '{}'),
                coalesce(p_blocked[v_first:v_last], '{}'), v_extra) as v;
            held := v_verdicts.held;
            fits := v_verdicts.fits;
            admits := v_verdicts.admits;
            outcome := 'checked';
            if p_request_ids[v_n] is not null then
                select r.reservation_id, r.expires_at into reservation_id, expires_at
                from budget_reservations r where r.org_id = p_orgs[v_n] and r.request_id = p_request_ids[v_n];
                if found then
                    outcome := 'existing';
                else  -- an item of this batch with the same request_id
                    select p_reservation_ids[r.n], p_expires_at[r.n] into reservation_id, expires_at
                    from unnest(v_reserved) as r(n)
                    where p_orgs[r.n] = p_orgs[v_n] and p_request_ids[r.n] = p_request_ids[v_n];
                    if found then
                        outcome := 'existing';
                    end if;
                end if;
            end if;
            if outcome = 'checked' and true = all(admits) then
                v_reserved := v_reserved || v_n;
                for v_k in 1 .. coalesce(array_length(v_ids, 1), 0) loop
                    held[v_k] := held[v_k] + v_amounts[v_k];
                    if v_amounts[v_k] > 0 then
                        h_orgs := h_orgs || p_orgs[v_n];
                        h_ids := h_ids || v_ids[v_k];
                        h_reservations := h_reservations || p_reservation_ids[v_n];
                        h_amounts := h_amounts || v_amounts[v_k];
                        h_expires := h_expires || p_expires_at[v_n];
                    end if;
                end loop;
                outcome := 'reserved';
                reservation_id := p_reservation_ids[v_n];
                expires_at := p_expires_at[v_n];
            end if;
        end if;
        return next;
        v_first := v_last + 1;
    end loop;

    insert into budget_reservations (org_id, reservation_id, request_id, api_key_id, user_id, create_time, expires_at)
    select p_orgs[r.n], p_reservation_ids[r.n], p_request_ids[r.n], p_api_key_ids[r.n], p_user_ids[r.n], p_nows[r.n],
           p_expires_at[r.n]
    from unnest(v_reserved) as r(n);
    insert into budget_holds (org_id, budget_id, reservation_id, amount, expires_at)
    select * from unnest(h_orgs, h_ids, h_reservations, h_amounts, h_expires);
    insert into budget_held (org_id, budget_id, expires_at, amount)
    select h.org_id, h.id, h.expires_at, sum(h.amount)
    from unnest(h_orgs, h_ids, h_expires, h_amounts) as h(org_id, id, expires_at, amount)
    group by 1, 2, 3
    on conflict (org_id, budget_id, expires_at) do update set amount = budget_held.amount + excluded.amount;
end;
$$;

-- Settles (p_state 'settled', by the events p_event_ids, in the transaction that writes
-- them) or releases ('released') the open, unexpired reservations named by (p_orgs,
-- p_ids); unknown, closed and expired ones are left as they are. Their holds are
-- removed and each budget that loses one has its settle_seq moved, under the budget's
-- row lock, taken in (org_id, budget_id) order as a Check takes it: a Check that read
-- the usage before this commits sees the move and reads again. Returns the
-- reservations closed now.
create function metering_budget_close(p_orgs integer[], p_ids text[], p_event_ids uuid[], p_state text)
returns table (org_id integer, reservation_id text)
language plpgsql as $$
#variable_conflict use_column
begin
    perform 1 from budgets b
    where (b.org_id, b.budget_id) in (
        select h.org_id, h.budget_id from budget_holds h
        join unnest(p_orgs, p_ids) as x(o, r) on h.org_id = x.o and h.reservation_id = x.r)
    order by b.org_id, b.budget_id
    for update;

    return query
    with closed as (
        update budget_reservations r
        set state = p_state, close_time = now(), event_id = x.e
        from unnest(p_orgs, p_ids, p_event_ids) as x(o, r, e)
        where r.org_id = x.o and r.reservation_id = x.r and r.state = 'open' and r.expires_at > now()
        returning r.org_id, r.reservation_id
    ), released as (
        delete from budget_holds h using closed c
        where h.org_id = c.org_id and h.reservation_id = c.reservation_id
        returning h.org_id, h.budget_id, h.expires_at, h.amount
    ), unheld as (
        update budget_held t set amount = t.amount - r.amount
        from (select r.org_id, r.budget_id, r.expires_at, sum(r.amount) as amount from released r
              group by 1, 2, 3) r
        where t.org_id = r.org_id and t.budget_id = r.budget_id and t.expires_at = r.expires_at
        returning 1
    ), moved as (
        update budgets b set settle_seq = b.settle_seq + 1
        from (select distinct r.org_id, r.budget_id from released r) g
        where b.org_id = g.org_id and b.budget_id = g.budget_id
        returning 1
    )
    select c.org_id, c.reservation_id from closed c;
end;
$$;
