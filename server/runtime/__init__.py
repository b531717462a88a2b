"""The process: the gRPC server (app), `metering up` and its supervised children,
the CLI verbs, and the embedded Postgres and Redis. May import every package."""
