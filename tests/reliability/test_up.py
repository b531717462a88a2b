"""`metering up` under faults, as real processes: SIGKILL of up under ingest takes its whole
stack down within 5 s and a restart on the same data dir is exact; the death of its embedded
Postgres or Redis stops up with a message and a non-zero exit."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest

from bench.stress import up as stress_up
from tests.server.runtime import up_process
from tests.support import services

MASTER_KEY = "up-test-master-" + secrets.token_hex(12)


@pytest.fixture
def home() -> Iterator[Path]:
    with up_process.scratch_dir("metering-home-") as path:
        yield path


@pytest.fixture
def data_dir() -> Iterator[Path]:
    with up_process.scratch_dir("metering-up-") as path:
        yield path / "data"


@contextlib.asynccontextmanager
async def external(kind: str) -> AsyncIterator[dict[str, str]]:
    """Settings for up: "postgres" and/or "redis" local (a fresh database, a queue of its own);
    what is not named is embedded."""
    settings: dict[str, str] = {}
    admin = services.postgres_admin_dsn()
    dsn = await services.create_test_database(admin) if "postgres" in kind else None
    if dsn is not None:
        settings["METERING_DATABASE_URL"] = dsn
    if "redis" in kind:
        settings["METERING_REDIS_URL"] = services.redis_url()
        settings["METERING_QUEUE_NAME"] = "metering:test-up:" + secrets.token_hex(4)
    try:
        yield settings
    finally:
        if dsn is not None:
            await services.drop_test_database(admin, dsn)


@pytest.mark.parametrize("backing", ["embedded", "local"])
async def test_sigkill_of_up_under_ingest_leaves_nothing_running_and_a_restart_is_exact(
    backing: str, data_dir: Path, home: Path,
) -> None:
    """The fast variant of `python -m bench.stress --only kill-up` (bench/stress/up.py)."""
    async with external("postgres+redis" if backing == "local" else "") as settings:
        env = up_process.clean_env(home, METERING_MASTER_KEY=MASTER_KEY, **settings)
        result = await stress_up.kill_up(kills=1, data_dir=data_dir, env=env, between=(10, 10))
    print(f"stack of up ({backing}: {result['stack']}) gone {result['stack_gone_max_s']}s after SIGKILL")
    expected = {"up", "server", "gateway", "worker", "guardian"}
    if backing == "embedded":
        expected |= {"postgres", "redis-server"}
    assert expected <= set(result["stack"]), result  # what had to die was found, and died within 5 s
    assert result["stack_gone_max_s"] <= stress_up.STACK_GONE_WITHIN
    assert result["ingest_errors"] > 0  # the kill did cut ingest
    assert result["events"] == result["acked_events"] > 0 and result["exactly_once"], result


@pytest.mark.parametrize("dies", ["postgres", "redis"])
async def test_up_stops_with_a_message_when_its_embedded_server_dies(dies: str, data_dir: Path, home: Path) -> None:
    """Postgres embedded with Redis local, or the other way round: kill the embedded one."""
    async with external("redis" if dies == "postgres" else "postgres") as settings:
        env = up_process.clean_env(home, METERING_MASTER_KEY=MASTER_KEY, **settings)
        up = stress_up.start_up(data_dir, env)
        procs: list[psutil.Process] = []
        try:
            await stress_up.wait_ready(up)
            procs = stress_up.stack(up)
            pidfile = data_dir / ("postgres/postmaster.pid" if dies == "postgres" else "redis/redis.pid")
            victim = int(pidfile.read_text().split("\n", 1)[0])
            os.kill(victim, signal.SIGKILL)
            code = await stress_up.wait_exit(up)
            assert code != 0
            name = "embedded postgres" if dies == "postgres" else "embedded redis"
            assert f"{name} (pid {victim}) died" in up.output, up.output[-3000:]
            await stress_up.wait_all_gone(procs, data_dir, 30)
        finally:
            stress_up.kill_all(procs + stress_up.mentioning(data_dir))
