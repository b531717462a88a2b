"""Postgres: the asyncpg pool and the named queries of sql/*.sql, forward-only
migrations (migrations/*.sql), monthly partitions, series ids, and the one bounded
LRU cache. May import core."""
