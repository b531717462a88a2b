"""The gRPC side of the gateway: the channel and call helpers (client), the batcher
that coalesces single-event writes, the identities and answer caches. May import
gateway.http."""
