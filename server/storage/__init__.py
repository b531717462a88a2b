"""Postgres: the asyncpg pool and the named queries of sql/*.sql, forward-only
migrations (migrations/*.sql), monthly partitions and series ids (the bounded LRU
cache is metering.lru, shared with the gateway). May import core."""
