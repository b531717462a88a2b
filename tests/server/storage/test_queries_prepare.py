"""Every named query of server/storage/sql/*.sql, and every statement generated in Python from
the column lists (the rollups', the cubes', the ingest write), prepares against the migrated
schema, so a typo or a column renamed by a migration fails here rather than in production."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import asyncpg
import pytest
from asyncpg.prepared_stmt import PreparedStatement

from server.ingest import writer
from server.rollups.cubes import GRAINS as CUBE_GRAINS
from server.rollups.cubes import cube_statements
from server.rollups.statements import GRAINS, rollup_statements
from server.storage.db import Parameters, init_connection, queries

NAMES = sorted(queries())
_KINDS = ("delete", "insert", "insert_counters")
# Generated statements by a name of their own; each takes $1 org, $2 window starts (server/rollups/recompute.py).
GENERATED = {
    **{f"rollups_{grain}.{kind}": sql
       for grain in GRAINS for kind, sql in zip(_KINDS, rollup_statements(grain).in_order(), strict=True)},
    **{f"cubes_{grain}.{kind}": sql
       for grain in CUBE_GRAINS for kind, sql in zip(_KINDS, cube_statements(grain).in_order(), strict=True)},
    # the pass again when a sum does not fit a bigint: only the inserts differ
    **{f"rollups_{grain}.insert.wide": rollup_statements(grain, wide=True).insert for grain in GRAINS},
    **{f"cubes_{grain}.insert.wide": cube_statements(grain, wide=True).insert for grain in CUBE_GRAINS},
}
_COMMENT = re.compile(r"--[^\n]*")


def placeholders(sql: str) -> int:
    """The highest $n of a statement's text outside its comments (which document the parameters)."""
    return max((int(n) for n in re.findall(r"\$(\d+)", _COMMENT.sub("", sql))), default=0)


async def prepared(conn: asyncpg.Connection, sql: str) -> PreparedStatement:
    """Prepares `sql` on the server and checks Postgres took exactly the parameters its text
    uses: a `$n` Postgres does not see as one (inside a string literal) would take no argument."""
    statement = await conn.prepare(sql)
    assert len(statement.get_parameters()) == placeholders(sql)
    return statement


def test_queries_are_found():
    assert len(NAMES) >= 20
    assert {"claim_request_keys", "find_request_keys", "mark_dirty", "get_event", "list_events",
            "insert_api_key", "key_by_prefix", "rollup_dirty_in_day", "rollup_sweep"} <= set(NAMES)
    assert all(queries()[name].strip() for name in NAMES)


def test_generated_statements_are_found():
    assert len(GENERATED) == 4 * (len(GRAINS) + len(CUBE_GRAINS)) == 20
    assert len(set(GENERATED.values())) == len(GENERATED)  # no grain got another's statement
    for grain in GRAINS:  # each statement writes its own grain's tables
        assert all(f"_{grain} " in GENERATED[f"rollups_{grain}.{kind}"] for kind in _KINDS)


def test_placeholders_reads_the_statement_not_its_comments():
    assert placeholders("select 1") == 0
    assert placeholders("-- $1 org, $14 window\nselect $1, $2::int[] from t where x = $12") == 12


@pytest.fixture(scope="module")
async def conn(database_url, server) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database the server has migrated, set up as the server's pool sets up its own."""
    connection = await asyncpg.connect(database_url)
    await init_connection(connection)
    yield connection
    await connection.close()


@pytest.mark.parametrize("name", NAMES)
async def test_query_prepares(conn, name):
    await prepared(conn, queries()[name])


@pytest.mark.parametrize("name", sorted(GENERATED))
async def test_generated_statement_prepares(conn, name):
    statement = await prepared(conn, GENERATED[name])
    # what recompute_day binds: the organization number and the window starts
    assert [t.name for t in statement.get_parameters()] == ["int4", "timestamptz[]"]


async def test_the_ingest_write_prepares_with_its_named_parameters(conn):
    """Each named parameter of the one-statement write is the placeholder of its number and
    declared type, and every declared one is used (server/ingest/writer.py)."""
    declared: Parameters = writer._WRITE_PARAMETERS
    statement = await prepared(conn, writer._WRITE_SMALL)
    types = await conn.fetchval(
        "select array_agg(t::regtype::oid order by i) from unnest($1::text[]) with ordinality as u(t, i)",
        [kind for _, kind in declared.declared])
    assert [t.oid for t in statement.get_parameters()] == types
    assert len(types) == len(declared.names) == placeholders(writer._WRITE_SMALL)


@pytest.mark.parametrize(("broken", "error"), [
    # a column renamed by a migration
    (lambda sql: sql.replace("request_id", "request_ident"), asyncpg.UndefinedColumnError),
    # a table that does not exist
    (lambda sql: sql.replace("request_keys", "request_key"), asyncpg.UndefinedTableError),
    # two statements where one is expected (a lost `-- name:` line)
    (lambda sql: sql + ";\n" + queries()["mark_dirty"], asyncpg.PostgresSyntaxError),
])
async def test_a_broken_query_is_caught(conn, broken, error):
    sql = queries()["find_request_keys"]
    await prepared(conn, sql)
    with pytest.raises(error):
        await prepared(conn, broken(sql))


async def test_a_placeholder_in_a_literal_is_caught(conn):
    sql = "select window_start from dirty_windows where org_id = $1 and window_start > now() - interval '$2 minutes'"
    with pytest.raises(AssertionError):  # prepares, but takes one argument where its author meant two
        await prepared(conn, sql)
