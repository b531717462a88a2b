"""The gRPC API: one servicer module per service (thin: proto to domain and back),
the interceptors that authenticate and map errors, rate limits, and replies built
as bytes (wire, bucket_cache). May import every package but runtime."""
