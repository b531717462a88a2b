"""Embedded Postgres / Redis (server/runtime/embedded_postgres.py) and where tests get servers
(tests/support/services.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aredis

from server.core.config import default_data_dir as _default_data_dir
from server.runtime.embedded_postgres import EmbeddedPostgres, _pid_alive, stop_orphaned_postgres
from server.runtime.embedded_redis import EmbeddedRedis
from tests.support import services


def default_data_dir() -> Path:
    return _default_data_dir(os.environ)

ROOT = Path(__file__).resolve().parents[3]


async def _scalar(dsn: str, sql: str) -> object:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])


def _wait_dead(pid: int) -> None:
    deadline = time.monotonic() + 10
    while _pid_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still alive"
        time.sleep(0.01)


def _child(code: str, data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """Run code in a child python; return it and the first line it prints (after its server is up)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(data_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    proc.stdout.close()
    assert line, "child failed to start its server"
    return proc, line


def _crash(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("METERING_DATA_DIR", str(tmp_path / "d"))
    assert default_data_dir() == tmp_path / "d"
    monkeypatch.delenv("METERING_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "metering"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_data_dir() == Path.home() / ".local" / "share" / "metering"


async def test_postgres_start_attach_stop_restart(tmp_path: Path) -> None:
    pgdata = tmp_path.resolve() / "postgres"
    first = EmbeddedPostgres(tmp_path)
    dsn = first.start()
    assert dsn.startswith("postgresql://postgres@/metering?host=/")
    assert await _scalar(dsn, "SELECT 1") == 1
    assert await _scalar(dsn, "SELECT current_database()") == "metering"
    assert first.start() == dsn  # idempotent

    second = EmbeddedPostgres(tmp_path)  # attaches to the running server
    assert second.start() == dsn
    pid = _postmaster_pid(pgdata)
    second.stop()
    assert await _scalar(dsn, "SELECT 1") == 1  # still held by first
    first.stop()
    first.stop()
    second.stop()
    _wait_dead(pid)
    assert not (pgdata / "postmaster.pid").exists()

    third = EmbeddedPostgres(tmp_path)
    try:
        assert third.start() == dsn
        assert await _scalar(third.dsn("postgres"), "SELECT current_database()") == "postgres"
        from pgserver._commands import POSTGRES_BIN_PATH  # imported only now: it needs XDG_RUNTIME_DIR set

        psql = POSTGRES_BIN_PATH / "psql"
        out = subprocess.run([psql, "-X", "-tA", dsn, "-c", "SELECT current_database()"],
                             capture_output=True, text=True)
        assert out.stdout.strip() == "metering", out.stderr  # libpq takes the same DSN
    finally:
        third.stop()


_PG_CHILD = """
import sys, time
from pathlib import Path
from server.runtime.embedded_postgres import EmbeddedPostgres
print(EmbeddedPostgres(Path(sys.argv[1])).start(), flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("postmaster_dies_too", [False, True])
async def test_postgres_after_crash(tmp_path: Path, postmaster_dies_too: bool) -> None:
    pgdata = tmp_path.resolve() / "postgres"
    child, dsn = _child(_PG_CHILD, tmp_path)
    other = EmbeddedPostgres(tmp_path)  # attach from this process while the child runs
    assert other.start() == dsn
    other.stop()
    assert await _scalar(dsn, "SELECT 1") == 1  # the child's handle keeps it up
    _crash(child)
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == [child.pid]  # the stale pid trap
    old = _postmaster_pid(pgdata)
    if postmaster_dies_too:
        os.kill(old, signal.SIGKILL)
        _wait_dead(old)

    server = EmbeddedPostgres(tmp_path)
    assert server.start() == dsn
    assert _postmaster_pid(pgdata) != old and not _pid_alive(old)  # no live holder: stopped, not attached to
    assert await _scalar(dsn, "SELECT 1") == 1
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == [os.getpid()]
    pid = _postmaster_pid(pgdata)
    server.stop()
    _wait_dead(pid)  # really stopped: the dead child's handle no longer keeps it up
    assert not (pgdata / "postmaster.pid").exists()


async def test_redis_start_attach_stop_restart(tmp_path: Path) -> None:
    redis_dir = tmp_path.resolve() / "redis"
    first = EmbeddedRedis(tmp_path)
    url = first.start()
    assert url == f"unix://{redis_dir}/redis.sock"
    client = aredis.from_url(url)
    try:
        assert await client.ping()
        await client.set("k", "v")
        second = EmbeddedRedis(tmp_path)
        assert second.start() == url
        second.stop()
        assert await client.get("k") == b"v"  # still held by first
    finally:
        await client.aclose()
    pid = int((redis_dir / "redis.pid").read_text())
    first.stop()
    first.stop()
    _wait_dead(pid)
    assert not (redis_dir / "redis.sock").exists()

    third = EmbeddedRedis(tmp_path)
    assert third.start() == url
    client = aredis.from_url(url)
    try:
        assert await client.ping()
        assert await client.get("k") is None  # a queue: nothing kept across restarts
    finally:
        await client.aclose()
        third.stop()


async def test_redis_under_a_data_dir_too_long_for_its_socket(tmp_path: Path) -> None:
    """A data dir whose socket path does not fit AF_UNIX (108 bytes): the socket goes to a private
    dir under the temp dir (this path once crashed with a NameError)."""
    deep = tmp_path.resolve() / ("d" * 60) / ("e" * 60)
    server = EmbeddedRedis(deep)
    url = server.start()
    try:
        sock = Path(url.removeprefix("unix://"))
        assert sock.parent != deep / "redis" and len(str(sock).encode()) <= 107
        assert sock.parent.stat().st_mode & 0o777 == 0o700
        client = aredis.from_url(url)
        try:
            assert await client.ping()
        finally:
            await client.aclose()
    finally:
        server.stop()


_REDIS_CHILD = """
import sys, time, redis
from pathlib import Path
from server.runtime.embedded_redis import EmbeddedRedis
url = EmbeddedRedis(Path(sys.argv[1])).start()
redis.Redis.from_url(url).set("from-child", "1")
print(url, flush=True)
time.sleep(60)
"""


async def test_redis_after_crash(tmp_path: Path) -> None:
    redis_dir = tmp_path.resolve() / "redis"
    child, url = _child(_REDIS_CHILD, tmp_path)
    _crash(child)
    pid = int((redis_dir / "redis.pid").read_text())

    server = EmbeddedRedis(tmp_path)
    assert server.start() == url
    assert not _pid_alive(pid) and server.pid != pid  # no live holder: stopped and replaced, not attached to
    client = aredis.from_url(url)
    try:
        assert await client.get("from-child") is None
    finally:
        await client.aclose()
    new = server.pid
    assert new is not None
    server.stop()
    _wait_dead(new)
    assert not (redis_dir / "redis.sock").exists()


async def test_orphaned_servers_are_stopped_only_once_no_live_process_holds_them(tmp_path: Path) -> None:
    """What the guardian of a dead `up` calls (server/runtime/guardian.py)."""
    postgres, _ = _child(_PG_CHILD, tmp_path)
    redis, _ = _child(_REDIS_CHILD, tmp_path)
    pg_pid = _postmaster_pid(tmp_path.resolve() / "postgres")
    redis_pid = int((tmp_path.resolve() / "redis" / "redis.pid").read_text())
    try:
        assert stop_orphaned_postgres(tmp_path) is None and EmbeddedRedis(tmp_path).stop_orphan() is None
        assert _pid_alive(pg_pid) and _pid_alive(redis_pid)  # their holders live
    finally:
        _crash(postgres)
        _crash(redis)
    assert EmbeddedRedis(tmp_path).stop_orphan() == redis_pid
    assert stop_orphaned_postgres(tmp_path) == pg_pid
    assert not _pid_alive(pg_pid) and not _pid_alive(redis_pid)
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()


def test_services_use_env_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "_cache", {})
    monkeypatch.setenv("METERING_TEST_DATABASE_URL", "postgresql://u@db.example/x")
    monkeypatch.setenv("METERING_TEST_REDIS_URL", "redis://cache.example/1")
    assert services.postgres_admin_dsn() == "postgresql://u@db.example/x"
    assert services.redis_url() == "redis://cache.example/1"


def test_services_prefer_local_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "_cache", {})
    monkeypatch.delenv("METERING_TEST_DATABASE_URL", raising=False)
    monkeypatch.delenv("METERING_TEST_REDIS_URL", raising=False)
    if not services._postgres_answers(services.LOCAL_POSTGRES_DSN):
        pytest.skip("no Postgres on 127.0.0.1:5432")
    assert services.postgres_admin_dsn() == "postgresql://postgres@127.0.0.1:5432/test"
    assert services.postgres_admin_dsn() is services.postgres_admin_dsn()
    if services._redis_answers(services.LOCAL_REDIS_URL):
        assert services.redis_url() == "redis://127.0.0.1:6379/0"


async def test_create_and_drop_test_database() -> None:
    admin = services.postgres_admin_dsn()
    dsn = await services.create_test_database(admin)
    name = services.database_name(dsn)
    assert name.startswith("metering_t_")
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") == name
        await services.drop_test_database(admin, dsn)  # WITH (FORCE): our open connection is no obstacle
    finally:
        conn.terminate()
    assert await _scalar(admin, f"SELECT count(*) FROM pg_database WHERE datname = '{name}'") == 0
    with pytest.raises(ValueError):
        await services.drop_test_database(admin, services.with_database(admin, "metering"))


def test_with_database() -> None:
    assert services.with_database("postgresql://postgres@127.0.0.1:5432/test", "x") == (
        "postgresql://postgres@127.0.0.1:5432/x"
    )
    assert services.with_database("postgresql://postgres@/postgres?host=/a/b&dbname=y", "x") == (
        "postgresql://postgres@/x?host=/a/b"
    )
    assert services.database_name("postgresql://postgres@/x?host=/a/b") == "x"


async def test_services_fall_back_to_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    emptied: list[tuple[str, object]] = [("_cache", {}), ("_embedded", []), ("_temp_dirs", [])]
    for name, value in emptied:
        monkeypatch.setattr(services, name, value)
    monkeypatch.delenv("METERING_TEST_DATABASE_URL", raising=False)
    monkeypatch.delenv("METERING_TEST_REDIS_URL", raising=False)
    monkeypatch.setattr(services, "LOCAL_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:1/test")
    monkeypatch.setattr(services, "LOCAL_REDIS_URL", "redis://127.0.0.1:1/0")
    try:
        admin = services.postgres_admin_dsn()
        assert admin.startswith("postgresql://postgres@/postgres?host=/")
        dsn = await services.create_test_database(admin)
        assert await _scalar(dsn, "SELECT current_database()") == services.database_name(dsn)
        await services.drop_test_database(admin, dsn)

        url = services.redis_url()
        assert url.startswith("unix:///")
        client = aredis.from_url(url)
        try:
            assert await client.ping()
        finally:
            await client.aclose()
        temp_dirs = list(services._temp_dirs)
    finally:
        services._stop_embedded()
    assert temp_dirs and not any(d.exists() for d in temp_dirs)
