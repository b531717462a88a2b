"""What the server, the gateway and the SDK share: the generated API (metering.v1, made from
protos/metering/v1 by protos/generate.py; do not edit it) and the small dependency-free helpers
all sides use: page_token (the one opaque page-token codec), lru (the one bounded LRU map) and
exports (the rows of an export as CSV or NDJSON, for the gateway and `metering export`), waits (a timed
wait that a cancellation always ends: asyncio.wait_for is banned, see there); and what
every process (server, gateway, worker) shares to be watched: logs (the one logging setup, JSON lines
with the request id, access lines) and metrics (Prometheus registries, serving them, the multi-process
sum of a serve).

Imports nothing else of the project (tests/test_architecture.py): server, gateway and SDK import it.
"""
