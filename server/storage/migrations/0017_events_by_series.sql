-- Events by series and time: a query narrowed to a few series (one user's, one API key's,
-- one project's: a budget's scope) reads the appended events of its own series (its
-- "tails", 0005_tails.sql) rather than every event appended to the organization since the
-- last rollup pass. Under 9,000 events/s of ingest, a Check of one user's month found 50
-- of 60,000 tail events in 5-13 ms with this index, 210-420 ms without
-- (server/query/sql.py says when it is used). Its cost is one more index entry per event
-- at ingest (docs/capacity.md, docs/budgets.md).
create index events_series on events (org_id, series_id, ts);
