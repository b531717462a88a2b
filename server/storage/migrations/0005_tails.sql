-- Rollup + tail: a window that only had events appended since its rollup was
-- computed is read as that rollup plus the appended events (its "tail"), not raw.
--
-- * dirty_windows.appends: true for the marks of the ingest path (their
--   transaction only inserted events); false for updates, voids, repricing,
--   which change events a rollup may already hold: such a window is read raw
--   until the worker settles it.
-- * events.mark_id: the id of the dirty_windows row the event's own write
--   inserted for its window (same transaction). A rollup computed at snapshot S
--   holds exactly the events whose mark S saw, and the worker deletes exactly
--   those marks with it, so rollup + the events of the marks still present is
--   exact in any later snapshot. Older rows have no mark_id: their windows'
--   marks (from before this migration) are not appends, so they are read raw.
alter table dirty_windows add column appends boolean not null default false;
alter table events add column mark_id bigint;
create index events_mark on events (org_id, mark_id);
