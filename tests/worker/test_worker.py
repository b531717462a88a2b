"""The arq worker end to end: the server enqueues after commit, burst workers
settle the rollups; two workers at once; a worker killed mid-job; Redis down
while ingesting. Real Postgres, real Redis, `Worker(burst=True, poll_delay=0)`."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from metering.v1 import ingest_pb2, query_pb2
from server.core.config import ConfigError
from server.rollups.queue import ROLLUP_JOB, connect, enqueue_rollup, rollup_job_id
from server.rollups.recompute import dirty_days, recompute_day
from server.runtime.app import MeteringServer
from tests.conftest import MASTER_KEY
from tests.worker.checks import assert_rollups_exact, dirty_count, org_number, stamp, totals, usage
from tests.worker.conftest import run_worker
from worker.settings import worker_settings

ROOT = Path(__file__).resolve().parents[2]
START = dt.datetime(2024, 7, 1, tzinfo=dt.UTC)
# arq's Worker.close() calls redis' deprecated close(); not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")


def spread(n: int, days: int, offset: int = 0) -> list:
    return [usage(offset + i, START + dt.timedelta(minutes=(i * 997) % (days * 1440), seconds=i % 60))
            for i in range(n)]


async def query(stubs, org, **fields) -> query_pb2.QueryUsageResponse:
    request = query_pb2.QueryUsageRequest(
        start_time=stamp(START), end_time=stamp(START + dt.timedelta(days=21)), width="1d",
        time_zone="Asia/Kathmandu", group_by=["model", "labels.rule_type"], page_size=1000, **fields,
    )
    return await stubs.query.QueryUsage(request, metadata=org.auth)


async def record(stubs, org, events) -> None:
    for i in range(0, len(events), 500):
        resp = await stubs.ingest.RecordEvents(
            ingest_pb2.RecordEventsRequest(events=events[i:i + 500]), metadata=org.auth)
        assert resp.recorded == len(events[i:i + 500])


async def test_ingest_enqueues_and_a_burst_worker_settles(rstubs, rollup_org, burst, db):
    org = await rollup_org()
    number = await org_number(db, org.organization_id)
    await record(rstubs, org, spread(300, days=5))
    raw = await query(rstubs, org)
    assert raw.freshness.raw_windows > 0

    worker = await burst()
    assert worker.jobs_failed == 0 and worker.jobs_complete >= 5  # one job per (organization, day)
    assert await dirty_count(db, number) == 0
    assert await assert_rollups_exact(db, number) == 300
    settled = await query(rstubs, org)
    assert settled.freshness.raw_windows == 0
    assert totals(settled.buckets) == totals(raw.buckets)


async def test_job_ids_dedupe_per_day(redis_url, queue):
    name = queue + "-dedupe"
    redis = connect(redis_url, name)
    try:
        day = dt.datetime(2024, 1, 2, 13, tzinfo=dt.UTC)
        assert await enqueue_rollup(redis, name, 7, day)
        assert not await enqueue_rollup(redis, name, 7, day + dt.timedelta(hours=5))  # same UTC day
        assert await enqueue_rollup(redis, name, 7, day + dt.timedelta(days=1))
        assert await enqueue_rollup(redis, name, 8, day)
        assert await redis.zcard(name) == 3
        job = await redis.get("arq:job:" + rollup_job_id(name, 7, day))
        assert b'"f":"rollup_day"' in job and b'"a":[7,"2024-01-02T00:00:00+00:00"]' in job  # JSON, not pickle
    finally:
        await redis.delete(name, *(f"arq:job:{rollup_job_id(name, o, d)}" for o in (7, 8)
                                   for d in (day, day + dt.timedelta(days=1))))
        await redis.aclose(close_connection_pool=True)


async def test_two_workers_at_once(rstubs, rollup_org, rollup_server, worker_env, db):
    org = await rollup_org()
    number = await org_number(db, org.organization_id)
    await record(rstubs, org, spread(600, days=20))
    expected = totals((await query(rstubs, org)).buckets)
    await rollup_server.enqueuer.flush()

    async def late_writes() -> None:  # keep dirtying the days the workers are rolling up
        for batch in range(4):
            await record(rstubs, org, spread(25, days=20, offset=10_000 + 100 * batch))
            await asyncio.sleep(0.01)

    first, second, _ = await asyncio.gather(run_worker(worker_env), run_worker(worker_env), late_writes())
    assert first.jobs_complete + second.jobs_complete >= 20  # a job per day, at least
    assert first.jobs_failed == second.jobs_failed == 0
    await rollup_server.enqueuer.flush()
    await run_worker(worker_env)  # whatever the late writes queued after the two finished
    assert await dirty_count(db, number) == 0
    assert await assert_rollups_exact(db, number) == 700
    settled = await query(rstubs, org)
    assert settled.freshness.raw_windows == 0
    assert totals(settled.buckets) != expected  # the late writes count ...
    assert settled.buckets[0].groups  # ... and the answer is the raw events': checked by assert_rollups_exact


async def _wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_worker_killed_mid_job_then_restarted(
    rstubs, rollup_org, rollup_server, worker_env, database_url, redis_url, queue, db
):
    org = await rollup_org()
    number = await org_number(db, org.organization_id)
    await record(rstubs, org, spread(120, days=1))
    await rollup_server.enqueuer.flush()
    expected = totals((await query(rstubs, org)).buckets)
    dirty_before = await dirty_count(db, number)
    # Its own queue, and nothing else dirty in the database: the worker we kill
    # holds exactly one job, so no other job's lease outlives the kill.
    queue = queue + "-kill"
    worker_env = {**worker_env, "METERING_QUEUE_NAME": queue}
    for other, day in await dirty_days(db):
        if other != number:
            await recompute_day(db, other, day)
    redis = connect(redis_url, queue)
    try:
        assert await enqueue_rollup(redis, queue, number, START)
    finally:
        await redis.aclose(close_connection_pool=True)

    blocker = await asyncpg.connect(database_url)
    proc = None
    try:
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("select id from dirty_windows where org_id = $1 for update", number)
        env = {**os.environ, **worker_env, "METERING_LOG_LEVEL": "WARNING"}
        proc = subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=env)

        async def job_blocked() -> bool:  # recomputed, now waiting to delete the dirty marks
            return await db.fetchval(
                "select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                "and query like 'delete from dirty_windows%' and datname = current_database()"
            ) > 0

        await _wait_for(job_blocked, what="the worker's job to block on the locked dirty rows")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        await lock.rollback()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        await blocker.close()

    async def backend_gone() -> bool:
        return not await job_blocked_or_running(db)

    await _wait_for(backend_gone, what="the killed worker's transaction to end")
    assert await dirty_count(db, number) == dirty_before  # nothing of the killed pass committed
    assert await db.fetchval("select count(*) from rollups_15m where org_id = $1", number) == 0
    assert totals((await query(rstubs, org)).buckets) == expected  # exact meanwhile, from raw events

    # The job is still queued and marked in progress until its lease (job_timeout + 10 s)
    # runs out; expire the lease now instead of waiting, then restart a worker. A cron sweep the
    # killed worker had started (one fires every 15 s) is left the same way; it is not this test's
    # job: it is removed, or the burst worker would wait out its lease (minutes) and then count it
    # failed (a cron job is tried once).
    redis = connect(redis_url, queue)
    try:
        job_id = rollup_job_id(queue, number, START)
        assert await redis.exists("arq:in-progress:" + job_id)
        assert not await enqueue_rollup(redis, queue, number, START)  # the sweep cannot double it
        for queued in await redis.zrange(queue, 0, -1):
            name = queued.decode() if isinstance(queued, bytes) else str(queued)
            if name != job_id:
                await redis.zrem(queue, name)
                await redis.delete(*(f"arq:{kind}:{name}" for kind in ("job", "in-progress", "retry")))
        await redis.pexpire("arq:in-progress:" + job_id, 1)
        await asyncio.sleep(0.01)
    finally:
        await redis.aclose(close_connection_pool=True)
    worker = await run_worker(worker_env)
    assert worker.jobs_complete >= 1 and worker.jobs_failed == 0
    assert await dirty_count(db, number) == 0
    assert await assert_rollups_exact(db, number) == 120
    settled = await query(rstubs, org)
    assert settled.freshness.raw_windows == 0 and totals(settled.buckets) == expected


async def job_blocked_or_running(db) -> bool:
    return await db.fetchval(
        "select count(*) from pg_stat_activity where query like 'delete from dirty_windows%' "
        "and state <> 'idle' and datname = current_database() and pid <> pg_backend_pid()"
    ) > 0


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_redis_down_while_ingesting_then_the_sweep_catches_up(
    rstubs, rollup_org, database_url, queue, worker_env, redis_url, db, caplog
):
    down = MeteringServer(database_url, "127.0.0.1:0", MASTER_KEY, redis_url=f"redis://127.0.0.1:{_dead_port()}/0",
                          queue_name=queue, rollup_delay=0)
    port = await down.start()
    org = await rollup_org()
    number = await org_number(db, org.organization_id)
    try:
        import grpc

        from metering.v1 import ingest_pb2_grpc

        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            ingest = ingest_pb2_grpc.IngestServiceStub(ch)
            started = time.monotonic()
            for i in range(0, 200, 50):
                resp = await ingest.RecordEvents(
                    ingest_pb2.RecordEventsRequest(events=spread(200, days=3)[i:i + 50]), metadata=org.auth)
                assert resp.recorded == 50
            resp = await ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=usage(9, START)), metadata=org.auth)
            assert resp.outcome == ingest_pb2.OUTCOME_RECORDED
            assert time.monotonic() - started < 5  # acknowledgements never waited for Redis
        assert down.enqueuer is not None  # a server given a Redis URL enqueues rollups
        await down.enqueuer.flush()
        assert down.enqueuer.failures > 0
        assert any("rollup enqueue failed" in r.message for r in caplog.records)
    finally:
        await down.stop(grace=1)
    assert await dirty_count(db, number) > 0
    expected = totals((await query(rstubs, org)).buckets)  # exact meanwhile

    worker = await run_worker(worker_env)  # its sweep (run at startup) enqueues the dirty days
    assert worker.jobs_failed == 0 and worker.jobs_complete >= 4
    assert await dirty_count(db, number) == 0
    assert await assert_rollups_exact(db, number) == 201
    settled = await query(rstubs, org)
    assert settled.freshness.raw_windows == 0 and totals(settled.buckets) == expected


def test_worker_settings_come_from_the_environment():
    with pytest.raises(ConfigError, match="METERING_DATABASE_URL"):
        worker_settings({"METERING_REDIS_URL": "redis://x"})
    with pytest.raises(ConfigError, match="METERING_REDIS_URL"):
        worker_settings({"METERING_DATABASE_URL": "postgresql://x"})
    with pytest.raises(ConfigError, match="METERING_SWEEP_SECONDS"):
        worker_settings({"METERING_DATABASE_URL": "postgresql://x", "METERING_REDIS_URL": "redis://x",
                         "METERING_SWEEP_SECONDS": "7"})
    settings = worker_settings({"METERING_DATABASE_URL": "postgresql://x", "METERING_REDIS_URL": "redis://:secret@h:1/2",
                                "METERING_QUEUE_NAME": "q1"})
    assert settings["queue_name"] == "q1" and settings["ctx"]["queue"] == "q1"
    assert [f.name for f in settings["functions"]] == [ROLLUP_JOB]
    assert "secret" not in repr({k: v for k, v in settings.items() if k != "redis_settings"})
