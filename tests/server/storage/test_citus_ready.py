"""Ready for Citus (docs/scaling.md): the migrated schema can be distributed by org_id as it
is, and no statement needs a join Citus cannot route to one node.

1. The catalog (pg_class, pg_constraint, pg_index): every table is a reference table, a local
   table, or distributed by org_id, which then has an org_id column, and each of its primary
   keys, unique constraints, unique indexes and exclusion constraints holds org_id; its
   foreign keys to other distributed tables pair org_id with org_id (colocated), and no
   reference table has a foreign key to a distributed one.
2. The statements: every named query of server/storage/sql/*.sql, the statements generated in
   Python (rollups, cubes, the ingest write, the query engine's aggregate) and the bodies of
   the SQL functions the migrations define. Where a JOIN meets a distributed table, its ON
   clause ties that table's org_id to another side's org_id or to a parameter (USING with
   org_id counts); a distributed table named in a join condition is tied the same way; a
   CROSS JOIN of a distributed table is refused. A static reading, not EXPLAIN: comments and
   string literals are removed, aliases are resolved from FROM / JOIN / USING / UPDATE / INTO,
   and each join condition runs to the next clause at its own depth. Semi-joins written as
   IN (subquery) are not read (each side is filtered by its own org_id there).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable

import asyncpg
import pytest

from server.ingest.writer import _WRITE_SMALL
from server.query.sql import SOURCES, usage_statement
from server.storage.db import queries
from tests.server.storage.test_queries_prepare import GENERATED

# Global lookups, replicated to every node (create_reference_table): read by a key without the
# organization (an API key by prefix, a user by username, an organization by id or name) or
# shared by all organizations (the price catalog, the retention floor, server secrets).
REFERENCE = frozenset({
    "organizations", "users", "api_keys", "server_secrets", "retention_floor",
    "price_catalogs", "price_catalog_state", "price_catalog", "price_catalog_prices",
})
LOCAL = frozenset({"schema_migrations"})  # the coordinator's own: written by the migrator only
DISTRIBUTION_COLUMN = "org_id"


@pytest.fixture(scope="module")
async def conn(database_url: str, server: object) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


# --- 1. the catalog -----------------------------------------------------------------------------

async def catalog_problems(conn: asyncpg.Connection, reference: Iterable[str] = REFERENCE) -> list[str]:
    reference = frozenset(reference)
    tables = {r["name"]: r["org_col"] for r in await conn.fetch("""
        select c.relname as name,
               (select a.attnum from pg_attribute a
                where a.attrelid = c.oid and a.attname = $1 and not a.attisdropped) as org_col
        from pg_class c
        where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p') and not c.relispartition""",
        DISTRIBUTION_COLUMN)}
    problems = [f"{name}: no org_id column; distribute it by org_id or list it as a reference or local table"
                for name, col in sorted(tables.items()) if col is None and name not in reference | LOCAL]
    distributed = {name: col for name, col in tables.items() if name not in reference | LOCAL and col is not None}
    for row in await conn.fetch("""
        select t.relname as tbl, k.conname, k.contype::text as contype, k.conkey, f.relname as ref, k.confkey
        from pg_constraint k
        join pg_class t on t.oid = k.conrelid
        left join pg_class f on f.oid = k.confrelid
        where t.relnamespace = 'public'::regnamespace and not t.relispartition and k.contype in ('p', 'u', 'f', 'x')
        order by 1, 2"""):
        table, kind = row["tbl"], row["contype"]
        if kind == "f" and table in reference and row["ref"] in distributed:
            problems.append(f"{table}.{row['conname']}: a reference table's foreign key to distributed {row['ref']}")
        if table not in distributed:
            continue
        col = distributed[table]
        if col not in row["conkey"]:
            problems.append(f"{table}.{row['conname']}: {_KINDS[kind]} without org_id")
        elif kind == "f" and row["ref"] in distributed:
            paired = row["confkey"][list(row["conkey"]).index(col)]
            if paired != distributed[row["ref"]]:
                problems.append(f"{table}.{row['conname']}: org_id is not paired with {row['ref']}.org_id")
    for row in await conn.fetch("""
        select t.relname as tbl, i.relname as idx, x.indkey::int2[] as cols
        from pg_index x
        join pg_class t on t.oid = x.indrelid
        join pg_class i on i.oid = x.indexrelid
        where t.relnamespace = 'public'::regnamespace and not t.relispartition and x.indisunique
          and not exists (select 1 from pg_constraint k where k.conindid = x.indexrelid)
        order by 1, 2"""):
        if row["tbl"] in distributed and distributed[row["tbl"]] not in row["cols"]:
            problems.append(f"{row['tbl']}.{row['idx']}: unique index without org_id")
    return problems


_KINDS = {"p": "primary key", "u": "unique constraint", "f": "foreign key", "x": "exclusion constraint"}


async def test_the_catalog_distributes_by_org_id(conn):
    assert await catalog_problems(conn) == []


async def test_every_listed_table_exists(conn):
    names = {r["relname"] for r in await conn.fetch(
        "select relname from pg_class where relnamespace = 'public'::regnamespace and relkind in ('r', 'p')")}
    assert REFERENCE | LOCAL <= names


async def test_the_catalog_check_finds_what_citus_refuses(conn):
    async with conn.transaction():
        await conn.execute("""
            create table citus_bad (org_id integer, id bigint primary key, name text, unique (org_id, name));
            create table citus_bad_child (org_id integer, id bigint, parent bigint references citus_bad (id),
                                          primary key (org_id, id));
            create unique index citus_bad_name on citus_bad (name);
            create table citus_bad_lookup (code text primary key, parent bigint references citus_bad (id))""")
        found = await catalog_problems(conn, REFERENCE | {"citus_bad_lookup"})
        await conn.execute("rollback; begin")  # nothing of it stays
    assert found == [
        "citus_bad.citus_bad_pkey: primary key without org_id",
        "citus_bad_child.citus_bad_child_parent_fkey: foreign key without org_id",
        "citus_bad_lookup.citus_bad_lookup_parent_fkey: a reference table's foreign key to distributed citus_bad",
        "citus_bad.citus_bad_name: unique index without org_id",
    ]


# --- 2. the statements ----------------------------------------------------------------------------

_COMMENT = re.compile(r"--[^\n]*")
_STRING = re.compile(r"'(?:[^']|'')*'")
_DOLLAR_QUOTE = re.compile(r"\$(\w*)\$")
_WORD = r"[a-z_][a-z0-9_]*"
_REF = re.compile(rf"\b(?:from|join|using|update|into)\s+(?:only\s+)?({_WORD})(?!\s*\()(?:\s+(?:as\s+)?({_WORD}))?")
_NOT_ALIAS = frozenset({
    "where", "on", "using", "join", "left", "right", "inner", "full", "cross", "group", "order", "limit", "set",
    "select", "returning", "values", "natural", "lateral", "union", "having", "window", "for", "offset", "with",
})
_CLAUSE_END = re.compile(r"\b(?:join|left|right|inner|full|cross|where|group|order|limit|having|union|returning|"
                         r"window|offset|for|on\s+conflict)\b")


def _clean(sql: str) -> str:
    """Lower case, without comments or string literals (dollar-quoted bodies are kept: they
    are the statements of the functions the migrations define)."""
    return _STRING.sub("''", _COMMENT.sub("", sql)).lower()


class Aliases:
    """Where each name of a statement is defined: a table (FROM, JOIN, USING, UPDATE, INTO,
    with or without an alias), or something else (a CTE, a subquery, a function's rows). A
    name means its nearest definition before the place it is used (aliases are scoped, and
    statements and function bodies reuse them)."""

    def __init__(self, sql: str) -> None:
        self.defs: list[tuple[int, str, str | None]] = []  # (position, name, table or None)
        for m in _REF.finditer(sql):
            table, alias = m[1], m[2]
            self.defs.append((m.start(), table, table))
            if alias and alias not in _NOT_ALIAS:
                self.defs.append((m.start(), alias, table))
        for m in _PAREN_ALIAS.finditer(sql):
            if m[1] not in _NOT_ALIAS:
                self.defs.append((m.start(), m[1], None))
        for m in _CTE.finditer(sql):
            self.defs.append((m.start(), m[1], None))
        self.defs.sort(key=lambda d: d[0])

    def table(self, name: str, at: int) -> str | None:
        found = None
        for pos, defined, table in self.defs:
            if pos >= at:
                break
            if defined == name:
                found = table
        return found


_PAREN_ALIAS = re.compile(rf"\)\s+(?:with\s+ordinality\s+)?(?:as\s+)?({_WORD})\b")
_CTE = re.compile(rf"(?:\bwith|,)\s+(?:recursive\s+)?({_WORD})\s+as\s+(?:(?:not\s+)?materialized\s+)?\(")


def _skip_parens(sql: str, i: int) -> int:
    """The index after the parenthesis group opening at sql[i]."""
    depth = 0
    for j in range(i, len(sql)):
        depth += {"(": 1, ")": -1}.get(sql[j], 0)
        if depth == 0:
            return j + 1
    return len(sql)


def _condition(sql: str, i: int) -> str:
    """The text from i to the end of its clause: the next clause keyword at the same depth,
    the end of the statement, or a closing parenthesis of an enclosing group."""
    depth, j = 0, i
    while j < len(sql):
        ch = sql[j]
        if ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                break
            depth -= 1
        elif ch == ";":
            break
        elif depth == 0 and (j == 0 or not sql[j - 1].isalnum() and sql[j - 1] != "_") and _CLAUSE_END.match(sql, j):
            break
        j += 1
    return sql[i:j]


_OPERAND = rf"(?:\$\d+|{_WORD}(?:\.{_WORD})?)(?:::{_WORD})?"
_EQUALITY = re.compile(rf"({_OPERAND})\s*=\s*({_OPERAND})")


def _tied(condition: str, name: str, distributed_at: dict[str, bool]) -> bool:
    """Does the condition equate name.org_id with an org_id, a parameter or a value that is
    not a column of a distributed table (an unnest's column, a function's variable)?"""
    mine = f"{name}.{DISTRIBUTION_COLUMN}"
    for left, right in _EQUALITY.findall(condition):
        left, right = left.split("::")[0], right.split("::")[0]
        if mine not in (left, right):
            continue
        other = right if left == mine else left
        owner, dot, column = other.partition(".")
        if not dot or column == DISTRIBUTION_COLUMN or not distributed_at.get(owner, False):
            return True
    return False


def join_problems(sql: str, distributed: frozenset[str]) -> list[str]:
    """The joins of `sql` that meet a distributed table without tying it on org_id."""
    sql = _clean(sql)
    names = Aliases(sql)
    problems = []
    for join in re.finditer(r"\b(cross\s+)?join\s+", sql):
        i = join.end()
        if sql.startswith("lateral", i):
            i += len("lateral")
            while sql[i].isspace():
                i += 1
        joined = None
        if sql[i] == "(":
            i = _skip_parens(sql, i)
        else:
            name = re.match(_WORD, sql[i:])
            assert name, f"cannot read the join at {sql[join.start():join.start() + 60]!r}"
            i += name.end()
            if sql[i:i + 1] == "(":
                i = _skip_parens(sql, i)  # a function: unnest(...), jsonb_each_text(...)
            else:
                joined = name[0]
        alias_match = re.match(rf"\s+(?:as\s+)?({_WORD})", sql[i:])
        if alias_match and alias_match[1] not in _NOT_ALIAS:
            i += alias_match.end()
            if sql[i:i + 1] == "(":
                i = _skip_parens(sql, i)  # a column list: unnest(...) as c(org_id, ...)
        where = sql[join.start():join.start() + 80].split("\n")[0]
        rest = sql[i:].lstrip()
        joined_table = joined if joined in distributed and names.table(joined, i) == joined else None
        if joined_table and join[1]:
            problems.append(f"cross join of distributed {joined}: {where!r}")
            continue
        if rest.startswith("using"):
            using = rest[len("using"):].lstrip()
            columns = using[1:_skip_parens(using, 0) - 1] if using.startswith("(") else ""
            if joined_table and DISTRIBUTION_COLUMN not in re.findall(_WORD, columns):
                problems.append(f"{joined} joined without org_id: {where!r}")
            continue
        if not rest.startswith("on"):
            continue  # cross join of a function or subquery: its own filters tie it
        at = sql.index(rest, i) + 2
        condition = _condition(sql, at)
        used = set(re.findall(rf"\b({_WORD})\.{_WORD}", condition))
        distributed_at = {n: names.table(n, at) in distributed for n in used}
        untied = sorted({str(names.table(n, at)) for n in used
                         if distributed_at[n] and not _tied(condition, n, distributed_at)})
        if untied:
            problems.append(f"{' and '.join(untied)} joined without org_id: {where!r}")
    return problems


def statements() -> dict[str, str]:
    everything = frozenset(SOURCES)
    return {
        **{f"sql/{name}": text for name, text in queries().items()},
        **{f"generated/{name}": text for name, text in GENERATED.items()},
        "generated/ingest write": _WRITE_SMALL,
        "generated/query usage": usage_statement(everything),
        "generated/query usage wide": usage_statement(everything, wide=True),
    }


async def distributed_tables(conn: asyncpg.Connection) -> frozenset[str]:
    return frozenset(r["relname"] for r in await conn.fetch("""
        select c.relname from pg_class c
        where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p') and not c.relispartition
          and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'org_id')""")
        if r["relname"] not in REFERENCE | LOCAL)


async def test_statements_join_distributed_tables_on_org_id(conn):
    distributed = await distributed_tables(conn)
    assert {"events", "series", "rollups_1d", "request_keys", "dirty_windows", "budgets"} <= distributed
    found = {name: join_problems(text, distributed) for name, text in statements().items()}
    assert {name: problems for name, problems in found.items() if problems} == {}
    assert len(found) > 100


async def test_function_bodies_join_on_org_id(conn):
    distributed = await distributed_tables(conn)
    bodies = await conn.fetch("""
        select p.proname, p.prosrc from pg_proc p
        where p.pronamespace = 'public'::regnamespace and p.prolang in (
            select oid from pg_language where lanname in ('sql', 'plpgsql'))""")
    assert {"metering_budget_reserve", "metering_ensure_partition"} <= {r["proname"] for r in bodies}
    found = {r["proname"]: join_problems(r["prosrc"], distributed) for r in bodies}
    assert {name: problems for name, problems in found.items() if problems} == {}


@pytest.mark.parametrize(("sql", "problems"), [
    ("select * from events e join series s on s.series_id = e.series_id",
     ["events and series joined without org_id: 'join series s on s.series_id = e.series_id'"]),
    ("select * from events e join series s on s.org_id = e.org_id and s.series_id = e.series_id", []),
    ("select * from events e left join event_payloads p on p.event_id = e.event_id where e.org_id = $1",
     ["event_payloads and events joined without org_id: "
      "'join event_payloads p on p.event_id = e.event_id where e.org_id = $1'"]),
    ("select * from budgets b join unnest($1::text[]) as x(id) on b.budget_id = x.id",
     ["budgets joined without org_id: 'join unnest($1::text[]) as x(id) on b.budget_id = x.id'"]),
    ("select * from unnest($2::text[]) as x(id) left join budgets b on b.org_id = $1 and b.budget_id = x.id", []),
    ("select * from api_keys k join organizations o using (org_id)", []),  # reference tables
    ("select * from rollups_1d r join series using (series_id)",
     ["series joined without org_id: 'join series using (series_id)'"]),
    ("select * from rollups_1d r cross join series s", ["cross join of distributed series: 'cross join series s'"]),
    ("select * from events e cross join lateral jsonb_each_text(e.counters) as kv", []),
    ("select * from events e join (select org_id, id from dirty_windows) d on d.id = e.mark_id -- d.org_id = e.org_id",
     ["events joined without org_id: 'join (select org_id, id from dirty_windows) d on d.id = e.mark_id '"]),
    ("select 'join series s on true' from events", []),  # nor are string literals
])
def test_join_check_reads_joins(sql, problems):
    assert join_problems(sql, frozenset({"events", "event_payloads", "series", "rollups_1d", "budgets",
                                         "dirty_windows"})) == problems


async def test_a_real_statement_without_its_org_id_tie_is_refused(conn):
    distributed = await distributed_tables(conn)
    for name, tie in (("get_event", "s.org_id = e.org_id and "), ("list_events", "p.org_id = e.org_id and "),
                      ("price_book_versions", "p.org_id = v.org_id and ")):
        text = queries()[name]
        assert tie in text and join_problems(text, distributed) == []
        assert join_problems(text.replace(tie, ""), distributed), name
    rollup = GENERATED["cubes_1d.insert"]
    assert "s.org_id = r.org_id" in rollup
    assert join_problems(rollup.replace("s.org_id = r.org_id", "s.kind = r.kind"), distributed)
