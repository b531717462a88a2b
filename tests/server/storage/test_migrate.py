"""Migrations (server/storage/migrate.py): applied in order to an empty database, once, recorded,
and safe when two processes migrate at the same time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from server.storage import migrate as migrate_module
from server.storage.migrate import available, migrate
from tests.support import services

# Advisory locks held in this database (pg_locks spans the whole server).
ADVISORY_HERE = (
    "select count(*) from pg_locks where locktype = 'advisory'"
    " and database = (select oid from pg_database where datname = current_database())"
)
TABLES = {
    "organizations", "projects", "users", "api_keys", "server_secrets", "series", "events", "event_payloads",
    "request_keys", "event_adjustments", "dirty_windows", "schema_migrations",
}


@pytest.fixture
async def scratch() -> AsyncIterator[str]:
    """An empty database of its own, dropped afterwards."""
    admin = services.postgres_admin_dsn()
    dsn = await services.create_test_database(admin)
    try:
        yield dsn
    finally:
        await services.drop_test_database(admin, dsn)


async def snapshot(conn: asyncpg.Connection) -> dict[str, object]:
    """Everything a migration could change: tables, columns, indexes, functions, rows of seed data."""
    return {
        "columns": [tuple(r) for r in await conn.fetch(
            "select table_name, column_name, data_type, is_nullable, column_default "
            "from information_schema.columns where table_schema = 'public' order by 1, 2")],
        "indexes": [tuple(r) for r in await conn.fetch(
            "select tablename, indexname, indexdef from pg_indexes where schemaname = 'public' order by 1, 2")],
        "constraints": [tuple(r) for r in await conn.fetch(
            "select conrelid::regclass::text, conname, pg_get_constraintdef(oid) from pg_constraint "
            "where connamespace = 'public'::regnamespace order by 1, 2")],
        "functions": [tuple(r) for r in await conn.fetch(
            "select proname, md5(prosrc) from pg_proc where pronamespace = 'public'::regnamespace order by 1")],
        "organizations": [tuple(r) for r in await conn.fetch("select org_id, id, name from organizations order by 1")],
        "migrations": [tuple(r) for r in await conn.fetch(
            "select version, name, applied_at from schema_migrations order by 1")],
    }


async def test_migrations_on_an_empty_database(scratch):
    conn = await asyncpg.connect(scratch)
    try:
        tables_before = await conn.fetchval("select count(*) from pg_tables where schemaname = 'public'")
        assert tables_before == 0

        applied = await migrate(conn)
        expected = [f"{n:04d}_{name}" for n, name, _ in available()]
        assert applied == expected and applied[0] == "0001_core"

        public = await conn.fetch("select tablename from pg_tables where schemaname = 'public'")
        tables = {r["tablename"] for r in public}
        assert TABLES <= tables
        partitioned = {r["relname"] for r in await conn.fetch("select relname from pg_class where relkind = 'p'")}
        assert {"events", "event_payloads"} <= partitioned
        recorded = [(r["version"], r["name"]) for r in await conn.fetch(
            "select version, name from schema_migrations order by version")]
        assert recorded == [(n, name) for n, name, _ in available()]
        assert await conn.fetchval("select name from organizations where org_id = 1") == "default"

        before = await snapshot(conn)
        assert await migrate(conn) == []  # a second run applies nothing ...
        assert await snapshot(conn) == before  # ... and changes nothing
        assert await migrate_module.migrate_dsn(scratch) == []  # nor does a run on another connection
        assert await snapshot(conn) == before
        # The advisory lock is released after each run.
        assert await conn.fetchval(ADVISORY_HERE) == 0
    finally:
        await conn.close()


async def test_concurrent_migrations_are_safe(scratch):
    conns = [await asyncpg.connect(scratch) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        expected = [f"{n:04d}_{name}" for n, name, _ in available()]
        assert sorted(results, key=len, reverse=True) == [expected, [], []]  # one applied all, the others nothing
        counts = await conns[0].fetch("select version, count(*) from schema_migrations group by version")
        assert all(r["count"] == 1 for r in counts) and len(counts) == len(expected)
        assert await conns[0].fetchval("select count(*) from organizations") == 1
    finally:
        for c in conns:
            await c.close()


async def test_failed_migration_is_rolled_back_and_unrecorded(scratch, tmp_path, monkeypatch):
    (tmp_path / "0001_first.sql").write_text("create table first_table (id int primary key);")
    (tmp_path / "0002_broken.sql").write_text(
        "create table second_table (id int); insert into first_table values (1); select 1 / 0;")
    monkeypatch.setattr(migrate_module, "MIGRATIONS_DIR", tmp_path)
    conn = await asyncpg.connect(scratch)
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await migrate(conn)
        assert [r["name"] for r in await conn.fetch("select name from schema_migrations")] == ["first"]
        assert await conn.fetchval("select to_regclass('second_table')") is None
        assert await conn.fetchval("select count(*) from first_table") == 0
        assert await conn.fetchval(ADVISORY_HERE) == 0
        # Fixed, it applies on the next run; the first is not applied again.
        (tmp_path / "0002_broken.sql").write_text("create table second_table (id int);")
        assert await migrate(conn) == ["0002_broken"]
    finally:
        await conn.close()
