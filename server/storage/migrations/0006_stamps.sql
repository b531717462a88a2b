-- Rollup stamps: which rollup pass last changed the rollups of an (organization,
-- UTC day), so a query can tell that a settled range still has the same answer
-- (QueryUsageResponse.etag, server/query/engine.py).
--
-- * Every rollup pass (server/rollups/recompute.py) sets its day's stamp to a fresh
--   nextval() inside its own transaction, after its snapshot was taken.
-- * A query's answer over a range changes only by a committed write, which marks
--   its windows dirty in the same transaction, or by a rollup pass, which deletes
--   such marks and sets a stamp. So if two snapshots both see no dirty window in
--   the range and the same max(stamp) over the range's days, nothing changed in
--   between: a pass committed in between took its stamp after it began, hence
--   after the first snapshot saw every stamp taken so far, so its stamp is larger.
--   (A pass still running at the first snapshot and touching the range had its
--   marks visible there, so that snapshot had no etag.)
-- * Days rolled up before this table existed have no row: stamp 0, same argument.
create sequence rollup_stamp_seq;
create table rollup_stamps (
    org_id integer not null,
    day    timestamptz not null,
    stamp  bigint not null,
    primary key (org_id, day)
);
