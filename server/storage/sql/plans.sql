-- How statements are planned (server/storage/db.py).

-- name: plan_for_arguments
-- For the rest of the transaction: plan every statement for its actual arguments, every
-- time (server/storage/db.py planned_per_call, used by the keyset listings). A generic plan
-- (Postgres's choice for a prepared statement after five executions, when the plans it made
-- so far cost more than the generic one would) cannot see the page's cursor, nor which
-- "$n is null or ..." filters are off: it read the primary key from the newest event down to
-- the cursor on every page of list_events (a million-event export: 0.2 to 9 s a page instead
-- of ~2 ms); list_unpriced_events, once a member's listings had made it generic on a pooled
-- connection, read every series and every one of the organization's events on each page
-- (41 s a page at 500,000 unpriced events instead of ~7 ms); list_deliveries a sequential
-- scan of the deliveries for one delivery (0.1 s at 300,000 instead of 2 ms).
select set_config('plan_cache_mode', 'force_custom_plan', true);
