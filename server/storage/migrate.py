"""Forward-only plain-SQL migrations from server/storage/migrations/NNNN_name.sql.

Applied in order under an advisory lock, each in its own transaction, and
recorded in schema_migrations; re-running is a no-op.
"""

from __future__ import annotations

import logging
import pathlib

import asyncpg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = pathlib.Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = 0x6D657465  # "mete"


def available() -> list[tuple[int, str, pathlib.Path]]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        number, _, name = path.stem.partition("_")
        if not number.isdigit():
            raise RuntimeError(f"migration file without a number: {path.name}")
        found.append((int(number), name, path))
    numbers = [n for n, _, _ in found]
    if len(set(numbers)) != len(numbers):
        raise RuntimeError("two migrations share a number")
    return found


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; returns the names applied now."""
    applied_now: list[str] = []
    await conn.execute("select pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            "create table if not exists schema_migrations ("
            " version integer primary key, name text not null,"
            " applied_at timestamptz not null default now())"
        )
        done = {r["version"] for r in await conn.fetch("select version from schema_migrations")}
        for number, name, path in available():
            if number in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute(
                    "insert into schema_migrations (version, name) values ($1, $2)", number, name
                )
            log.info("applied migration %04d_%s", number, name)
            applied_now.append(f"{number:04d}_{name}")
    finally:
        await conn.execute("select pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


async def migrate_dsn(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
