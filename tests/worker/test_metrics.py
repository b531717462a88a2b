"""The worker's metrics scraped over HTTP: every job run timed by job and outcome, the rollup
backlog (windows waiting, age of the oldest) before and after a burst worker settles it."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from arq import Retry

from metering.metrics import serve_metrics
from metering.v1 import ingest_pb2
from server.rollups.queue import ROLLUP_JOB, SWEEP_JOB
from tests.support.prometheus import Scrape, scrape
from tests.support.services import free_port
from tests.worker.checks import usage
from worker.metrics import METRICS_ADDR, REGISTRY, sample, timed

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
ROOT = Path(__file__).resolve().parents[2]
START = dt.datetime(2024, 9, 1, tzinfo=dt.UTC)
JOBS = "metering_worker_job_duration_seconds_count"


@pytest.fixture(scope="module")
async def metrics_url() -> AsyncIterator[str]:
    served = serve_metrics(("127.0.0.1", 0), REGISTRY, METRICS_ADDR)
    yield f"http://127.0.0.1:{served.port}/metrics"
    served.close()


def moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


async def test_jobs_are_timed_and_the_backlog_follows_the_rollups(rstubs, rollup_org, burst, db, metrics_url):
    org = await rollup_org()
    events = [usage(i, START + dt.timedelta(days=i % 3, minutes=20 * i)) for i in range(30)]
    reply = await rstubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=events), metadata=org.auth)
    assert reply.recorded == 30
    await asyncio.sleep(0.05)  # a mark's age is measured from its commit
    await sample(db)
    before = await scrape(metrics_url)
    assert before.value("metering_rollup_dirty_windows") >= 30  # one 15-minute window per event
    assert before.value("metering_rollup_oldest_dirty_age_seconds") > 0

    worker = await burst()
    await sample(db)
    after = await scrape(metrics_url)
    assert moved(before, after, JOBS, job=ROLLUP_JOB, outcome="done") == worker.jobs_complete - moved(
        before, after, JOBS, job=SWEEP_JOB, outcome="done") >= 3  # one per (organization, day)
    assert moved(before, after, JOBS, job=ROLLUP_JOB, outcome="failed") == worker.jobs_failed == 0
    assert (after.value("metering_rollup_dirty_windows"), after.value("metering_rollup_oldest_dirty_age_seconds")) \
        == (0, 0)
    assert after.value("metering_db_pool_connections", state="max") == db.get_max_size()
    assert after.types["metering_worker_job_duration_seconds"] == "histogram"


async def test_a_retry_and_a_failure_are_counted_as_such(metrics_url):
    async def conflict(ctx: dict) -> None:
        raise Retry(defer=1)

    async def broken(ctx: dict) -> None:
        raise RuntimeError("boom")

    before = await scrape(metrics_url)
    with pytest.raises(Retry):
        await timed("test_conflict", conflict)({})
    with pytest.raises(RuntimeError):
        await timed("test_broken", broken)({})
    after = await scrape(metrics_url)
    assert moved(before, after, JOBS, job="test_conflict", outcome="retry") == 1
    assert moved(before, after, JOBS, job="test_broken", outcome="failed") == 1


async def test_python_m_worker_serves_its_metrics(worker_env: dict[str, str], tmp_path: Path):
    port = free_port()
    env = {**os.environ, **worker_env, "METERING_WORKER_METRICS_ADDR": f"127.0.0.1:{port}",
           "METERING_LOG_FORMAT": "json"}
    log = tmp_path / "worker.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=env, stderr=err)
    try:
        found = None
        for _ in range(200):  # the sweep runs at start; the sampler reads the backlog once the pool is open
            await asyncio.sleep(0.05)
            assert proc.poll() is None, log.read_text()
            try:
                found = await scrape(f"http://127.0.0.1:{port}/metrics")
            except httpx.TransportError:
                continue
            if found.value("metering_db_pool_connections", state="max") and \
                    found.value(JOBS, job=SWEEP_JOB, outcome="done"):
                break
        assert found is not None and found.value("metering_db_pool_connections", state="max") > 0
        assert found.value(JOBS, job=SWEEP_JOB, outcome="done") >= 1
        assert "process_cpu_seconds_total" in {s.name for s in found.samples}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert proc.returncode == 0, log.read_text()
    assert all(line.startswith("{") for line in log.read_text().splitlines())  # JSON lines only
