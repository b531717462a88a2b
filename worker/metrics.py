"""The worker's Prometheus metrics (docs/metrics.md), served on METERING_WORKER_METRICS_ADDR
(its own variable: under `metering up` the worker runs beside the server, which serves
METERING_METRICS_ADDR).

* every job's duration by job name and outcome (done, retry, failed, cancelled): `instrument`
  wraps each function and cron job of the worker's settings, whoever added them;
* the rollup backlog (dirty windows waiting, age of the oldest mark) and the pool's connections,
  sampled every SAMPLE_SECONDS while the metrics are served.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
from arq import Retry
from arq.cron import CronJob
from arq.worker import Function
from prometheus_client import Gauge, Histogram

from metering.metrics import JOB_BUCKETS, new_registry
from server.core.metrics import db_pool_gauge
from server.storage.db import q, sample_pool

METRICS_ADDR = "METERING_WORKER_METRICS_ADDR"
SAMPLE_SECONDS = 10.0
REGISTRY = new_registry()
JOB_SECONDS = Histogram(
    "metering_worker_job_duration_seconds", "Time a worker job ran, by job (rollup_day, sweep_dirty, ...) and "
    "outcome: done, retry (run again later: a conflict, or writes after its snapshot), failed, cancelled "
    "(timeout or shutdown).", ["job", "outcome"], buckets=JOB_BUCKETS, registry=REGISTRY)
DIRTY_WINDOWS = Gauge(
    "metering_rollup_dirty_windows", "15-minute windows waiting for a rollup pass (queries read their raw "
    "events meanwhile).", registry=REGISTRY)
OLDEST_DIRTY = Gauge(
    "metering_rollup_oldest_dirty_age_seconds", "Age of the oldest dirty-window mark: how far rollups trail "
    "(0 when none waits).", registry=REGISTRY)
DB_POOL = db_pool_gauge(REGISTRY)

Job = Callable[..., Coroutine[Any, Any, Any]]


def timed(name: str, job: Job) -> Job:
    """`job`, its every run observed in JOB_SECONDS."""

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        started, outcome = time.perf_counter(), "failed"
        try:
            result = await job(ctx, *args, **kwargs)
            outcome = "done"
            return result
        except Retry:
            outcome = "retry"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            JOB_SECONDS.labels(name, outcome).observe(time.perf_counter() - started)

    return run


async def sample(pool: asyncpg.Pool) -> None:
    """The rollup backlog and the pool's connections, now."""
    row = await pool.fetchrow(q("rollup_lag"))
    assert row is not None  # an aggregate: one row
    DIRTY_WINDOWS.set(row["windows"])
    OLDEST_DIRTY.set(row["oldest_seconds"])
    sample_pool(pool, DB_POOL)


async def _sample_every(ctx: dict[str, Any], every: float) -> None:
    while True:
        with contextlib.suppress(Exception):  # Postgres away: the gauges keep their last value
            await sample(ctx["db"])
        await asyncio.sleep(every)


def instrument(settings: dict[str, Any], *, sample_every: float | None = None) -> dict[str, Any]:
    """arq settings whose jobs are timed, and which sample the gauges every `sample_every`
    seconds between startup and shutdown (None: never)."""
    settings = dict(settings)
    settings["functions"] = [_timed(f) for f in settings.get("functions", ())]
    settings["cron_jobs"] = [_timed(c) for c in settings.get("cron_jobs", ())]
    if sample_every is not None:
        startup, shutdown = settings.get("on_startup"), settings.get("on_shutdown")

        async def on_startup(ctx: dict[str, Any]) -> None:
            if startup is not None:
                await startup(ctx)
            ctx["metrics_sampler"] = asyncio.create_task(_sample_every(ctx, sample_every))

        async def on_shutdown(ctx: dict[str, Any]) -> None:
            sampler = ctx.pop("metrics_sampler", None)
            if sampler is not None:
                sampler.cancel()
            if shutdown is not None:
                await shutdown(ctx)

        settings["on_startup"], settings["on_shutdown"] = on_startup, on_shutdown
    return settings


def _timed(job: Any) -> Any:
    if isinstance(job, (Function, CronJob)):
        return dataclasses.replace(job, coroutine=timed(job.name, job.coroutine))
    return job
