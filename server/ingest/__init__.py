"""Ingest, exactly once: validation of new events, the event writer (claims request
keys, writes events and payloads, marks windows dirty in one transaction) and the
group commit that coalesces concurrent calls. May import core, storage and pricing."""
