"""The process: the gRPC server (app), `metering up` with its supervised children and its
guardian (up, supervise, lifeline, guardian), one up per data dir and where the admin verbs
find it (running), who may share a port (ports), the CLI verbs, and the embedded Postgres and
Redis. May import every package."""
