"""Connection pools and the named SQL queries kept in server/storage/sql/*.sql."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import operator
import pathlib
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from prometheus_client import Gauge

SQL_DIR = pathlib.Path(__file__).parent / "sql"
_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@functools.cache
def queries() -> dict[str, str]:
    """Every named query: `-- name: foo` starts a query that runs to the next name."""
    found: dict[str, str] = {}
    for path in sorted(SQL_DIR.glob("*.sql")):
        text = path.read_text()
        marks = list(_NAME.finditer(text))
        for mark, nxt in zip(marks, [*marks[1:], None], strict=True):
            body = text[mark.end() : nxt.start() if nxt else len(text)].strip()
            if mark.group(1) in found:
                raise RuntimeError(f"query {mark.group(1)} defined twice")
            found[mark.group(1)] = body
    return found


def q(name: str) -> str:
    return queries()[name]


@contextlib.asynccontextmanager
async def planned_per_call(pool: asyncpg.Pool) -> AsyncIterator[PoolConnectionProxy]:
    """A pooled connection in a read-only transaction whose statements are planned for their actual
    arguments on every call (plans.sql plan_for_arguments): for a keyset listing, whose cursor and
    "$n is null or ..." filters a generic plan cannot see."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute(q("plan_for_arguments"))
        yield conn


class Parameters:
    """The parameters of a statement built in Python, by name: numbered $1, $2, ... in the
    order declared, so a statement refers to each by name (adding one cannot shift the
    others), and arguments() puts the values in that same order."""

    def __init__(self, declared: Iterable[tuple[str, str]]) -> None:
        """declared: (name, Postgres type) pairs, in argument order."""
        self.declared = tuple(declared)
        self.names = tuple(name for name, _ in self.declared)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"parameters declared twice: {sorted({n for n in self.names if self.names.count(n) > 1})}")
        self._number = {name: i for i, name in enumerate(self.names, start=1)}
        self._type = dict(self.declared)
        self._pick = operator.itemgetter(*self.names) if len(self.names) > 1 else None

    def __getitem__(self, name: str) -> str:
        """The placeholder with its type: `$n::type`."""
        return f"${self._number[name]}::{self._type[name]}"

    def bare(self, name: str) -> str:
        """The placeholder alone, `$n`: Postgres infers its type from where it is used."""
        return f"${self._number[name]}"

    def arguments(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The values in placeholder order; `values` holds exactly the declared names."""
        if len(values) != len(self.names):
            raise ValueError(f"expected the values of {len(self.names)} parameters, got {len(values)}: "
                             f"missing {sorted(set(self.names) - set(values))}, "
                             f"unknown {sorted(set(values) - set(self.names))}")
        if self._pick is None:
            return tuple(values[name] for name in self.names)
        picked: tuple[Any, ...] = self._pick(values)  # raises KeyError for a name not given
        return picked


def _jsonb_encode(value: Any) -> bytes:
    return b"\x01" + json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _jsonb_decode(data: bytes) -> Any:
    return json.loads(data[1:])


async def init_connection(conn: asyncpg.Connection) -> None:
    """Binary jsonb codec: usable in queries and in binary COPY alike."""
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog", format="binary"
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release hook: asyncpg still rolls back an open transaction, but skips its
    default reset query (a round trip per release, ~10% of a small write). The
    service never leaves session state on a pooled connection: locks are
    transaction-scoped, cursors live inside transactions, settings are SET LOCAL."""


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 10, application_name: str = "metering", **kwargs: Any
) -> asyncpg.Pool:
    """application_name: shown in pg_stat_activity (metering-server, metering-worker)."""
    kwargs.setdefault("reset", _keep_session)
    kwargs.setdefault("server_settings", {"application_name": application_name})
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection, **kwargs
    )
    assert pool is not None
    return pool


POOL_SAMPLE_SECONDS = 5.0


def sample_pool(pool: asyncpg.Pool, gauge: Gauge) -> None:
    """The pool's connections by state into `gauge` (server/core/metrics.db_pool_gauge)."""
    size, idle = pool.get_size(), pool.get_idle_size()
    gauge.labels("in_use").set(size - idle)
    gauge.labels("idle").set(idle)
    gauge.labels("max").set(pool.get_max_size())


async def track_pool(pool: asyncpg.Pool, gauge: Gauge, every: float = POOL_SAMPLE_SECONDS) -> None:
    """sample_pool every `every` seconds until cancelled."""
    while True:
        with contextlib.suppress(Exception):  # a closing pool: the next sample (or the cancel) follows
            sample_pool(pool, gauge)
        await asyncio.sleep(every)
