"""Spend control (DESIGN §11): budgets over any scope of the query engine, their
calendar or rolling periods in any zone (periods), validation, storage and the
in-memory copy that finds the budgets covering a usage (store, book, scope), the
usage of a period from the one query engine (usage), Check with reservations,
serialized in Postgres (check, state), and the reservations' release and sweep.
May import core, storage, ingest, query and tenants."""
