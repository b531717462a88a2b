-- Hour stamps: the rollup stamps of 0006_stamps.sql by UTC hour.
--
-- A rollup pass recomputes the 15-minute and hourly rows of its dirty hours, and
-- the day's rows and cubes. With one stamp a day, each pass changed the etag of
-- every bucket of the day: a dashboard of today's hours, polled while usage comes
-- in, read all of them again after every pass, though only the hours written to
-- had changed. Now a pass sets a fresh stamp on each hour it recomputed
-- (server/rollups/recompute.py) and no day stamp, and a bucket's etag takes the newest stamp
-- of the hours and days it overlaps (day stamps: those set before this migration).
--
-- * Still exact, by the argument of 0006 applied hour by hour: a bucket reads the
--   15-minute and hourly rows of its own hours, and daily rows and cubes only of
--   UTC days it covers whole. A pass changes 15-minute and hourly rows only in the
--   hours it stamps, and a day's rows and cubes only while stamping at least one
--   hour of that day, which any bucket covering the day overlaps.
-- * Two overlapping passes over one day still cannot both commit: both delete
--   dirty marks the other saw, and both rewrite the day's rows.
create table rollup_hour_stamps (
    org_id integer not null,
    hour   timestamptz not null,
    stamp  bigint not null,
    primary key (org_id, hour)
);
