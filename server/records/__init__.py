"""Stored events one at a time: get and list, update (an adjustment with an audit
trail) and void. May import core, storage, pricing and ingest."""
