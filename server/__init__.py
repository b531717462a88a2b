"""The metering server: the core of the service and its gRPC API.

Packages, from the bottom up (a package imports only those listed before it):

- core: the usage event, the principal, domain errors, configuration, conversions, money, windows
- storage: the connection pool and named SQL, migrations, partitions, series ids
- pricing: price rules, the in-memory pricer, stored price versions
- ingest: validation, the event writer, group commit
- records: one event's read, update and void with its audit trail
- query: the one usage query engine and the reports built on it
- costs: cost reports, repricing, unpriced usage
- rollups: recomputation of dirty windows, cubes, the arq queue
- tenants: organizations, users, keys, credentials, authentication
- api: the gRPC servicers, interceptors, rate limits, hand-built wire replies
- runtime: the process: app, `metering up`, the CLI, embedded Postgres and Redis

The server never imports `worker` or `gateway`.
"""
