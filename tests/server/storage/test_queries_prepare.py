"""Every named query in server/sql/*.sql prepares against the migrated schema, so a typo or
a column renamed by a migration fails here rather than in production."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from server.storage.db import init_connection, queries

NAMES = sorted(queries())


def test_queries_are_found():
    assert len(NAMES) >= 20
    assert {"claim_request_keys", "find_request_keys", "mark_dirty", "get_event", "list_events",
            "insert_api_key", "key_by_prefix"} <= set(NAMES)
    assert all(queries()[name].strip() for name in NAMES)


@pytest.fixture(scope="module")
async def conn(database_url, server) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database the server has migrated, set up as the server's pool sets up its own."""
    connection = await asyncpg.connect(database_url)
    await init_connection(connection)
    yield connection
    await connection.close()


@pytest.mark.parametrize("name", NAMES)
async def test_query_prepares(conn, name):
    statement = await conn.prepare(queries()[name])
    assert statement.get_parameters() is not None
