"""Fast variants of `python -m bench.stress` (the full runs are documented in README
"Guarantees"): after each fault, every total equals the acknowledged events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench import stress
from bench.stress.processes import PrivateRedis
from server.runtime.app import MeteringServer


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.stop()


async def test_worker_sigkilled_during_rollups_under_ingest(
    database_url: str, server: MeteringServer, private_redis: PrivateRedis,
) -> None:
    result = await stress.worker_kills(database_url, private_redis.url, kills=3, up=(0.4, 0.9), batch=100)
    assert result["events"] == result["acked_events"] > 0
    assert result["exact_before_settle"]  # queries were exact while windows were still dirty


async def test_redis_down_during_ingest(database_url: str, server: MeteringServer) -> None:
    result = await stress.redis_outage(database_url, down_seconds=2.0, before=0.7, after=0.7)
    assert result["acked_while_redis_down"] > 0 and result["ingest_errors"] == 0
    assert result["events"] == result["acked_events"]


async def test_postgres_restarted_during_sdk_ingest() -> None:
    result = await stress.postgres_restart(down_seconds=1.5, before=1.0, after=1.0)
    assert result["events"] == result["sdk_sent"] > 0
    assert set(result["outcomes"]) <= {"RECORDED", "DUPLICATE"}


async def test_concurrent_update_void_and_ingest_in_one_window(database_url: str, server: MeteringServer) -> None:
    result = await stress.concurrency(database_url, events=150, rounds=2)
    assert result["input_tokens"] == result["expected_input_tokens"]
