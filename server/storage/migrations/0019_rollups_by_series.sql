-- Rollups by series and time: a narrow query (a budget's user, key or project; a rule of
-- one model: at most server/query/sql.py NARROW_SERIES series) reads the rollup rows of its
-- own series, not every series' rows of its range. A Check of one user's month under ingest
-- read all of the organization's rollup rows of the day after every rollup pass (1,000 users:
-- 15,000+ hour rows to find 15). The rollups are written by the worker, not the ingest path;
-- a pass over a day of 200,000 events of 1,000 users took 0.52-0.57 s with these indexes and
-- 0.51-0.57 s without (three passes each, alternated).
create index rollups_15m_series on rollups_15m (org_id, series_id, window_start);
create index rollups_1h_series on rollups_1h (org_id, series_id, window_start);
create index rollups_1d_series on rollups_1d (org_id, series_id, window_start);
create index rollup_counters_15m_series on rollup_counters_15m (org_id, series_id, window_start);
create index rollup_counters_1h_series on rollup_counters_1h (org_id, series_id, window_start);
create index rollup_counters_1d_series on rollup_counters_1d (org_id, series_id, window_start);
