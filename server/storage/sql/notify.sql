-- Invalidations across processes and replicas (server/storage/notify.py).

-- name: notify
-- $1 channel, $2 payload "<topic>:<org_id>:<subject>": delivered to every listening session when
-- (and only if) the transaction that sends it commits.
select pg_notify($1, $2);

-- name: ping
-- The listener's liveness check: Postgres answers.
select 1;
