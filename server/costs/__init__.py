"""Costs: cost reports by day, project, line item and key from the query engine,
repricing of stored events, and the list of unpriced usage. May import core,
storage, pricing, ingest, records (its event page tokens) and query."""
