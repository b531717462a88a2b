-- Alerts: detection state, the outbox, webhook endpoints, deliveries (server/alerts/,
-- worker/delivery.py, migrations/0013_alerts.sql).

-- name: alert_rules
-- $1 org: the budgets alerts follow: those with thresholds, and every cost budget (unpriced usage).
select * from budgets where org_id = $1 and (cardinality(thresholds) > 0 or metric = 'cost')
order by budget_id;

-- name: alert_rule_orgs
-- The organizations with any budget alerts follow.
select distinct b.org_id, o.id as organization_id
from budgets b join organizations o using (org_id)
where cardinality(b.thresholds) > 0 or b.metric = 'cost'
order by b.org_id;

-- name: lock_alert_rule
-- $1 org, $2 rule: serializes detection of one rule across processes (held to commit).
select pg_advisory_xact_lock(hashtextextended('metering.alerts:' || ($1::integer)::text || ':' || $2::text, 0));

-- name: alert_states_of
-- $1 org, $2 rule, $3 period_start: the thresholds' last transitions in that period.
select threshold, state from alert_states where org_id = $1 and rule_id = $2 and period_start = $3;

-- name: alert_states_of_org
-- $1 org, $2 rules: the thresholds' last transitions of these rules, in the periods starting
-- after $3 (every current period: a year is the longest) or at $4 (the key of total and
-- rolling budgets).
select rule_id, period_start, threshold, state from alert_states
where org_id = $1 and rule_id = any($2::text[]) and (period_start > $3 or period_start = $4);

-- name: put_alert_state
insert into alert_states (org_id, rule_id, period_start, threshold, state, event_id)
values ($1, $2, $3, $4, $5, $6)
on conflict (org_id, rule_id, period_start, threshold)
do update set state = excluded.state, event_id = excluded.event_id, update_time = now();

-- name: insert_alert_event
-- $1 org, $2 event_id, $3 type, $4 payload; then one delivery per endpoint wanting the type,
-- and the email of the budget's spend alert ($5 budget_id) for a triggered threshold.
with event as (
    insert into alert_events (org_id, event_id, type, payload) values ($1, $2, $3, $4)
    returning org_id, event_id
), hooks as (
    insert into alert_deliveries (org_id, delivery_id, event_id, channel, endpoint_id)
    select $1, 'dlv_' || replace(gen_random_uuid()::text, '-', ''), e.event_id, 'webhook', w.endpoint_id
    from event e join webhook_endpoints w on w.org_id = e.org_id
    where not w.disabled and (cardinality(w.event_types) = 0 or $3 = any (w.event_types))
    returning 1
), mails as (
    insert into alert_deliveries (org_id, delivery_id, event_id, channel, recipients, subject_prefix)
    select $1, 'dlv_' || replace(gen_random_uuid()::text, '-', ''), e.event_id, 'email', m.recipients,
           m.subject_prefix
    from event e join alert_emails m on m.org_id = e.org_id and m.budget_id = $5
    where $3 = 'budget.threshold.triggered'
    returning 1
)
select (select count(*) from hooks) + (select count(*) from mails) as deliveries, pg_notify('metering_alerts', '');

-- name: insert_webhook_endpoint
insert into webhook_endpoints (org_id, endpoint_id, url, event_types, description, disabled, secret)
values ($1, $2, $3, $4, $5, $6, $7)
returning *;

-- name: get_webhook_endpoint
select * from webhook_endpoints where org_id = $1 and endpoint_id = $2;

-- name: list_webhook_endpoints
select * from webhook_endpoints
where org_id = $1 and ($2::timestamptz is null or (create_time, endpoint_id) > ($2, $3))
order by create_time, endpoint_id limit $4;

-- name: update_webhook_endpoint
update webhook_endpoints set url = $3, event_types = $4, description = $5, disabled = $6, update_time = now()
where org_id = $1 and endpoint_id = $2
returning *;

-- name: rotate_webhook_secret
-- $3 the new secret, $4 how long the old one still signs
update webhook_endpoints set previous_secret = secret, previous_expires_at = now() + $4::interval,
    secret = $3, update_time = now()
where org_id = $1 and endpoint_id = $2
returning *;

-- name: delete_webhook_endpoint
delete from webhook_endpoints where org_id = $1 and endpoint_id = $2 returning endpoint_id;

-- name: claim_deliveries
-- Due deliveries, leased to this worker for $1; $2 at most, $4 at most per endpoint, none of
-- the endpoints in $3 (those this worker still sends to).
update alert_deliveries d set lease_until = now() + $1::interval, attempts = d.attempts + 1
from (
    select org_id, delivery_id from alert_deliveries
    where (org_id, delivery_id) in (
        select org_id, delivery_id from (
            select org_id, delivery_id, next_attempt_at,
                   row_number() over (partition by org_id, coalesce(endpoint_id, delivery_id)
                                      order by next_attempt_at) as n
            from alert_deliveries
            where state = 'pending' and next_attempt_at <= now() and (lease_until is null or lease_until <= now())
              and coalesce(endpoint_id, '') <> all ($3::text[])
        ) c
        where n <= $4
        order by next_attempt_at
        limit $2)
    for update skip locked
) due, alert_events e
where d.org_id = due.org_id and d.delivery_id = due.delivery_id and e.org_id = d.org_id and e.event_id = d.event_id
returning d.org_id, d.delivery_id, d.event_id, d.channel, d.endpoint_id, d.recipients, d.subject_prefix, d.attempts,
    d.retry_from, e.type, e.payload, e.create_time as event_time;

-- name: delivery_endpoint
-- The endpoint of a claimed delivery, with the secrets that sign now.
select url, disabled, secret, case when previous_expires_at > now() then previous_secret end as previous_secret
from webhook_endpoints where org_id = $1 and endpoint_id = $2;

-- name: record_attempt
-- $1 org, $2 delivery, $3 attempt, $4 start, $5 status, $6 latency ms, $7 excerpt, $8 error,
-- $9 the outcome ('delivered', 'pending' or 'failed'), $10 next attempt (pending)
with attempt as (
    insert into alert_attempts (org_id, delivery_id, attempt, start_time, status_code, latency_ms,
                                response_excerpt, error)
    values ($1, $2, $3, $4, $5, $6, $7, $8)
    on conflict do nothing
)
update alert_deliveries set state = $9, next_attempt_at = coalesce($10, next_attempt_at), lease_until = null
where org_id = $1 and delivery_id = $2 and attempts = $3;

-- name: next_delivery_due
-- When the earliest pending delivery is due (null: none).
select min(greatest(next_attempt_at, coalesce(lease_until, next_attempt_at))) from alert_deliveries
where state = 'pending';

-- name: list_deliveries
-- $1 org, $2 endpoint ('' every one), $3/$4 after (create_time, delivery_id), $5 limit, $6 one delivery ('' all)
-- Run in planned_per_call (server/storage/db.py).
select d.*, e.type,
       coalesce((select jsonb_agg(to_jsonb(a) - 'org_id' - 'delivery_id' order by a.attempt)
                 from alert_attempts a where a.org_id = d.org_id and a.delivery_id = d.delivery_id), '[]') as log
from alert_deliveries d join alert_events e using (org_id, event_id)
where d.org_id = $1 and ($2 = '' or d.endpoint_id = $2)
  and ($3::timestamptz is null or (d.create_time, d.delivery_id) > ($3, $4)) and ($6 = '' or d.delivery_id = $6)
order by d.create_time, d.delivery_id limit $5;

-- name: redeliver
-- Back to pending, due now, with a fresh retry horizon (same event, same webhook-id).
update alert_deliveries set state = 'pending', next_attempt_at = now(), retry_from = now(), lease_until = null
where org_id = $1 and delivery_id = $2
returning delivery_id, pg_notify('metering_alerts', '');

-- name: count_webhook_endpoints
select count(*) from webhook_endpoints where org_id = $1;

-- name: insert_alert_email
insert into alert_emails (org_id, budget_id, project_id, recipients, subject_prefix)
values ($1, $2, $3, $4, $5);

-- name: update_alert_email
update alert_emails set recipients = $4, subject_prefix = $5
where org_id = $1 and budget_id = $2 and project_id = $3
returning budget_id;

-- name: get_spend_alert
-- $1 org, $2 alert (budget) id, $3 project ('' the organization's)
select m.budget_id, m.project_id, m.recipients, m.subject_prefix, m.create_time, b.limit_amount
from alert_emails m join budgets b using (org_id, budget_id)
where m.org_id = $1 and m.budget_id = $2 and m.project_id = $3;

-- name: list_spend_alerts
-- $1 org, $2 project, $3 from (an id: the rows past it in this order; '' from the start),
-- $4 descending, $5 limit
with mark as (
    select create_time, budget_id from alert_emails where org_id = $1 and project_id = $2 and budget_id = $3
)
select m.budget_id, m.project_id, m.recipients, m.subject_prefix, m.create_time, b.limit_amount
from alert_emails m join budgets b using (org_id, budget_id)
where m.org_id = $1 and m.project_id = $2
  and ($3 = '' or (case when $4 then (m.create_time, m.budget_id) < (select create_time, budget_id from mark)
                        else (m.create_time, m.budget_id) > (select create_time, budget_id from mark) end))
order by case when $4 then m.create_time end desc, case when $4 then m.budget_id end desc,
         m.create_time, m.budget_id
limit $5;
