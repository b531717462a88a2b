"""Where the tests get Postgres and Redis (DESIGN §9).

Each is, in order: the URL in an environment variable; a local server on the standard
port if it answers within ~1 s; an embedded server under a temp dir, kept for the life
of the process and stopped at exit. Results are cached per process.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import asyncpg
import redis

from server.runtime.embedded_postgres import EmbeddedPostgres
from server.runtime.embedded_redis import EmbeddedRedis

LOCAL_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
PROBE_TIMEOUT = 1.0
TEST_DB_PREFIX = "metering_t_"
_TEST_DB_NAME = re.compile(rf"^{TEST_DB_PREFIX}[0-9a-f]+$")

_T = TypeVar("_T")
_lock = threading.RLock()
_cache: dict[str, str] = {}  # "postgres" / "redis" -> what the functions below return
_embedded: list[EmbeddedPostgres | EmbeddedRedis] = []
_temp_dirs: list[Path] = []


def _run_sync(factory: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine from sync code, even if this thread already runs an event loop."""

    async def main() -> _T:
        return await factory()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _postgres_answers(dsn: str) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(dsn, timeout=PROBE_TIMEOUT)
        except Exception:  # refused, timed out, no such role/database, ...: not usable
            return False
        try:
            return await conn.fetchval("SELECT 1", timeout=PROBE_TIMEOUT) == 1
        finally:
            await conn.close(timeout=PROBE_TIMEOUT)

    return _run_sync(probe)


def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _temp_data_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="metering-test-"))
    _temp_dirs.append(path)
    return path


def _stop_embedded() -> None:
    """Stop the embedded servers this module started and delete their temp dirs (runs at exit)."""
    with _lock:
        while _embedded:
            _embedded.pop().stop()
        while _temp_dirs:
            shutil.rmtree(_temp_dirs.pop(), ignore_errors=True)
        _cache.clear()


atexit.register(_stop_embedded)


def postgres_admin_dsn() -> str:
    """A DSN of a superuser on a server where tests may create databases (cached)."""
    with _lock:
        if "postgres" not in _cache:
            _cache["postgres"] = _find_postgres()
        return _cache["postgres"]


def redis_url() -> str:
    """A Redis URL for the tests (cached)."""
    with _lock:
        if "redis" not in _cache:
            _cache["redis"] = _find_redis()
        return _cache["redis"]


def _find_postgres() -> str:
    if os.environ.get("METERING_TEST_DATABASE_URL"):
        return os.environ["METERING_TEST_DATABASE_URL"]
    if _postgres_answers(LOCAL_POSTGRES_DSN):
        return LOCAL_POSTGRES_DSN
    server = EmbeddedPostgres(_temp_data_dir())
    server.start()
    _embedded.append(server)
    return server.dsn("postgres")


def _find_redis() -> str:
    if os.environ.get("METERING_TEST_REDIS_URL"):
        return os.environ["METERING_TEST_REDIS_URL"]
    if _redis_answers(LOCAL_REDIS_URL):
        return LOCAL_REDIS_URL
    server = EmbeddedRedis(_temp_data_dir())
    url = server.start()
    _embedded.append(server)
    return url


def with_database(dsn: str, database: str) -> str:
    """The same DSN (URL form) naming another database."""
    parts = urlsplit(dsn)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ValueError("expected a postgresql:// URL")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in {"dbname", "database"}]
    encoded = urlencode(query, quote_via=quote, safe="/")
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(database, safe=""), encoded, parts.fragment))


def database_name(dsn: str) -> str:
    """The database a URL-form DSN names (dbname= in the query wins, as in libpq)."""
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query))
    return query.get("dbname") or query.get("database") or unquote(parts.path.lstrip("/"))


async def create_test_database(admin_dsn: str) -> str:
    """CREATE DATABASE metering_t_<random hex> on the admin DSN's server; return its DSN."""
    name = TEST_DB_PREFIX + secrets.token_hex(8)
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_test_database(admin_dsn: str, dsn: str) -> None:
    """DROP DATABASE ... WITH (FORCE) a database made by create_test_database."""
    name = database_name(dsn)
    if not _TEST_DB_NAME.match(name):
        raise ValueError(f"refusing to drop {name!r}: not a test database")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def own_database() -> AsyncIterator[str]:
    """A fresh, empty database on the tests' Postgres, dropped afterwards (its DSN): for a test whose
    data (a million events) should never be scanned, swept or rolled up by the session's other tests."""
    admin = postgres_admin_dsn()
    dsn = await create_test_database(admin)
    try:
        yield dsn
    finally:
        await drop_test_database(admin, dsn)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
