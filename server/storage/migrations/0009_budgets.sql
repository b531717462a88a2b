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

-- The decision of a Check, in one place: the open holds of each budget at p_now and
-- whether the usage fits. A budget's usage fits when its holds are at most its headroom
-- (limit - usage - estimate), or strictly below it (limit - usage) when the estimate is
-- zero: a budget that reached its limit admits nothing more. A budget admits the usage
-- when it is not enforced, or when it is not blocked (unpriced usage under DENY) and the
-- usage fits. Arrays in p_budget_ids order.
create function metering_budget_verdicts(
    p_org integer, p_now timestamptz, p_budget_ids text[], p_headroom numeric[], p_strict boolean[],
    p_enforce boolean[], p_blocked boolean[],
    out held numeric[], out fits boolean[], out admits boolean[]
)
language sql stable as $$
    select coalesce(array_agg(coalesce(h.amount, 0) order by a.i), '{}'),
           coalesce(array_agg(f.fits order by a.i), '{}'),
           coalesce(array_agg(not a.enforce or (not a.blocked and f.fits) order by a.i), '{}')
    from unnest(p_budget_ids, p_headroom, p_strict, p_enforce, p_blocked) with ordinality
         as a(id, headroom, strict, enforce, blocked, i)
    left join (
        select hb.budget_id, sum(hb.amount) as amount from budget_holds hb
        where hb.org_id = p_org and hb.budget_id = any(p_budget_ids) and hb.expires_at > p_now
        group by hb.budget_id
    ) h on h.budget_id = a.id
    cross join lateral (
        select case when a.strict then coalesce(h.amount, 0) < a.headroom
                    else coalesce(h.amount, 0) <= a.headroom end as fits
    ) f
$$;

-- The critical section of reserving Checks (server/budgets/check.py), for a batch of
-- them (server/budgets/reserve.py coalesces the concurrent ones of a server process into
-- one transaction, so a hot budget's row lock is held across one commit for many
-- reservations, not one each). Item i is (p_orgs[i], p_nows[i], ...); its budgets are the
-- entries of the p_budget_* arrays whose p_items value is i, in budget_id order.
--
-- First the rows of every budget of the batch are locked in (org_id, budget_id) order, so
-- batches and settlements (metering_budget_close) locking overlapping budgets cannot
-- deadlock. Then for each item in turn (each sees the holds of the items before it):
-- verify that nothing it read before has changed, the organization's budget revision
-- (unless null; else outcome 'changed') and each budget's settle_seq (else 'stale'); take
-- the reservation of an earlier Check with the same request_id if there is one
-- ('existing'); decide (metering_budget_verdicts); insert the reservation and its holds
-- if every budget admits it ('reserved'; else 'checked'). Each statement reads what was
-- committed when it starts, after the locks are taken (READ COMMITTED). One row per
-- item: the holds (with its own), the verdicts, and the settle_seqs read under the locks.
create function metering_budget_reserve(
    p_orgs integer[], p_nows timestamptz[], p_revisions bigint[], p_reservation_ids text[], p_request_ids text[],
    p_expires_at timestamptz[], p_api_key_ids text[], p_user_ids text[],
    p_items integer[], p_budget_ids text[], p_seqs bigint[], p_headroom numeric[], p_strict boolean[],
    p_enforce boolean[], p_blocked boolean[], p_amounts numeric[]
) returns table (
    item integer, outcome text, reservation_id text, expires_at timestamptz, held numeric[], fits boolean[],
    admits boolean[], seqs bigint[]
)
language plpgsql as $$
#variable_conflict use_column
declare
    v_n integer;
    v_org integer;
    v_ids text[];
    v_amounts numeric[];
    v_verdicts record;
begin
    perform 1 from budgets b
    join unnest(p_items, p_budget_ids) as x(i, id) on b.org_id = p_orgs[x.i] and b.budget_id = x.id
    order by b.org_id, b.budget_id
    for update of b;

    for v_n in 1 .. coalesce(array_length(p_orgs, 1), 0) loop
        item := v_n;
        v_org := p_orgs[v_n];
        reservation_id := null;
        expires_at := null;
        held := null;
        fits := null;
        admits := null;
        select coalesce(array_agg(x.id order by x.k), '{}'), coalesce(array_agg(x.amount order by x.k), '{}'),
               coalesce(array_agg(b.settle_seq order by x.k), '{}')
        into v_ids, v_amounts, seqs
        from unnest(p_items, p_budget_ids, p_amounts) with ordinality as x(i, id, amount, k)
        left join budgets b on b.org_id = v_org and b.budget_id = x.id
        where x.i = v_n;

        if coalesce((select k.revision from budget_books k where k.org_id = v_org), 0) <> p_revisions[v_n] then
            outcome := 'changed';
            return next;
            continue;
        end if;
        if seqs is distinct from (select coalesce(array_agg(x.seq order by x.k), '{}')
                                  from unnest(p_items, p_seqs) with ordinality as x(i, seq, k) where x.i = v_n) then
            outcome := 'stale';
            return next;
            continue;
        end if;

        select v.* into v_verdicts from metering_budget_verdicts(
            v_org, p_nows[v_n], v_ids,
            (select coalesce(array_agg(x.h order by x.k), '{}') from unnest(p_items, p_headroom) with ordinality
             as x(i, h, k) where x.i = v_n),
            (select coalesce(array_agg(x.s order by x.k), '{}') from unnest(p_items, p_strict) with ordinality
             as x(i, s, k) where x.i = v_n),
            (select coalesce(array_agg(x.e order by x.k), '{}') from unnest(p_items, p_enforce) with ordinality
             as x(i, e, k) where x.i = v_n),
            (select coalesce(array_agg(x.b order by x.k), '{}') from unnest(p_items, p_blocked) with ordinality
             as x(i, b, k) where x.i = v_n)) as v;
        held := v_verdicts.held;
        fits := v_verdicts.fits;
        admits := v_verdicts.admits;

        if p_request_ids[v_n] is not null then
            select r.reservation_id, r.expires_at into reservation_id, expires_at
            from budget_reservations r where r.org_id = v_org and r.request_id = p_request_ids[v_n];
            if found then
                outcome := 'existing';
                return next;
                continue;
            end if;
        end if;
        if not (true = all(admits)) then
            outcome := 'checked';
            return next;
            continue;
        end if;

        insert into budget_reservations (org_id, reservation_id, request_id, api_key_id, user_id, create_time,
                                         expires_at)
        values (v_org, p_reservation_ids[v_n], p_request_ids[v_n], p_api_key_ids[v_n], p_user_ids[v_n], p_nows[v_n],
                p_expires_at[v_n]);
        insert into budget_holds (org_id, budget_id, reservation_id, amount, expires_at)
        select v_org, x.id, p_reservation_ids[v_n], x.amount, p_expires_at[v_n]
        from unnest(v_ids, v_amounts) as x(id, amount)
        where x.amount > 0;
        select coalesce(array_agg(x.h + x.a order by x.k), '{}') into held
        from unnest(held, v_amounts) with ordinality as x(h, a, k);
        outcome := 'reserved';
        reservation_id := p_reservation_ids[v_n];
        expires_at := p_expires_at[v_n];
        return next;
    end loop;
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
        returning h.org_id, h.budget_id
    ), moved as (
        update budgets b set settle_seq = b.settle_seq + 1
        from (select distinct r.org_id, r.budget_id from released r) g
        where b.org_id = g.org_id and b.budget_id = g.budget_id
        returning 1
    )
    select c.org_id, c.reservation_id from closed c;
end;
$$;
