-- The appended events of a few series: a query narrowed to a user, an API key, a project
-- or a client (a budget's scope) reads the events appended to its own series since the
-- last rollup pass (its "tails", 0005_tails.sql), not every event appended to the
-- organization. The marks' index gains the series as its last column, so one bitmap index
-- scan finds (mark, series) pairs without visiting the other events. Under ~9,500 events/s
-- of ingest (80,000-130,000 tail events), a Check's read of one user's month took 9-15 ms
-- this way, 270-540 ms by mark alone (server/query/sql.py). An index of its own on
-- (org_id, series_id, ts) did as well but doubled a raw COPY's time per row in this
-- machine's test (random series scatter the inserts); this one grows at the right end, as
-- the marks' index did.
create index events_mark_series on events (org_id, mark_id, series_id);
drop index events_mark;
