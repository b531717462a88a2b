"""The one usage query engine (rollups for settled windows, raw events for dirty ones,
exact), its request (spec) and what is built on it: bucket edges in any zone, the statement per source and
its rows (GroupRow), tails, etags, and the dialects' reports. May import core, storage,
ingest (its validation limits) and records."""
