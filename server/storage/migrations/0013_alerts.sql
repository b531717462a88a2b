-- Alerts and notifications (DESIGN §12, server/alerts/, worker/delivery.py).
--
-- * alert_states: one row per (rule, period, threshold), the last transition written for
--   it. Detection (server/alerts/detect.py) holds the rule's advisory lock, reads the
--   period's usage in a snapshot taken after it, compares with these rows and writes the
--   transitions it finds, each with its event and deliveries, in one transaction: a crash
--   delays a notification, never loses or doubles one.
-- * alert_events is the outbox: one row per notification, its event_id the webhook-id.
-- * alert_deliveries: one row per (event, destination), made in the event's transaction
--   for every endpoint that wants its type (and the email of a spend alert); the worker
--   claims due rows with a lease, so a killed worker's deliveries are taken up again.
-- * alert_attempts: every attempt, its status, latency and the start of the response.
-- * Every key starts with org_id, so the tables can be distributed by organization.

create table alert_states (
    org_id       integer not null references organizations (org_id),
    rule_id      text not null,  -- the budget's id
    period_start timestamptz not null,  -- a calendar period's start; fixed for total and rolling
    threshold    text not null,  -- the percentage as the budget has it ("80"), or 'unpriced'
    state        text not null check (state in ('triggered', 'resolved')),
    event_id     text not null,  -- of the last transition
    update_time  timestamptz not null default now(),
    primary key (org_id, rule_id, period_start, threshold)
);

create table alert_events (
    org_id      integer not null references organizations (org_id),
    event_id    text not null,  -- 'evt_...': the webhook-id, the same on every attempt
    type        text not null,
    payload     jsonb not null,  -- {"type", "timestamp", "data"} as delivered
    create_time timestamptz not null default now(),
    primary key (org_id, event_id)
);
create index alert_events_created on alert_events (org_id, create_time, event_id);

create table webhook_endpoints (
    org_id              integer not null references organizations (org_id),
    endpoint_id         text not null,  -- 'we_...'
    url                 text not null,
    event_types         text[] not null default '{}',  -- empty: every type
    description         text not null default '',
    disabled            boolean not null default false,
    secret              text not null,  -- 'whsec_...' (Standard Webhooks)
    previous_secret     text,  -- after a rotation, also signs until previous_expires_at
    previous_expires_at timestamptz,
    create_time         timestamptz not null default now(),
    update_time         timestamptz not null default now(),
    primary key (org_id, endpoint_id)
);
create index webhook_endpoints_created on webhook_endpoints (org_id, create_time, endpoint_id);

create table alert_emails (
    org_id         integer not null,
    budget_id      text not null,  -- the spend alert's id is its budget's
    project_id     text not null default '',  -- '': the organization's
    recipients     text[] not null,
    subject_prefix text not null default '',
    create_time    timestamptz not null default now(),
    primary key (org_id, budget_id),
    foreign key (org_id, budget_id) references budgets (org_id, budget_id) on delete cascade
);
create index alert_emails_listed on alert_emails (org_id, project_id, create_time, budget_id);

create table alert_deliveries (
    org_id          integer not null references organizations (org_id),
    delivery_id     text not null,  -- 'dlv_...'
    event_id        text not null,
    channel         text not null check (channel in ('webhook', 'email')),
    endpoint_id     text,  -- webhook
    recipients      text[],  -- email
    subject_prefix  text,
    state           text not null default 'pending' check (state in ('pending', 'delivered', 'failed')),
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    lease_until     timestamptz,  -- claimed by a worker until then
    create_time     timestamptz not null default now(),
    retry_from      timestamptz not null default now(),  -- the retry horizon counts from here (a redeliver resets it)
    primary key (org_id, delivery_id),
    foreign key (org_id, event_id) references alert_events (org_id, event_id)
);
create index alert_deliveries_due on alert_deliveries (next_attempt_at) where state = 'pending';
create index alert_deliveries_of_endpoint on alert_deliveries (org_id, endpoint_id, create_time, delivery_id);

create table alert_attempts (
    org_id           integer not null,
    delivery_id      text not null,
    attempt          integer not null,
    start_time       timestamptz not null,
    status_code      integer,  -- HTTP status; null: no response (error says why)
    latency_ms       double precision not null,
    response_excerpt text not null default '',
    error            text not null default '',
    primary key (org_id, delivery_id, attempt),
    foreign key (org_id, delivery_id) references alert_deliveries (org_id, delivery_id) on delete cascade
);
