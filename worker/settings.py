"""Worker configuration, read from the environment when the worker starts.

METERING_DATABASE_URL and METERING_REDIS_URL are required; METERING_QUEUE_NAME
(default "metering:rollups") isolates queues; METERING_ROLLUP_DELAY (seconds,
default 1) is how long a re-run waits; METERING_SWEEP_SECONDS (default 15, a
divisor of 60) is the sweep's period.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from arq import cron, func
from arq.connections import RedisSettings

from server.core.config import ConfigError
from server.retention.drop import retention_sweep
from server.rollups.queue import HEALTH_CHECK_SUFFIX, ROLLUP_JOB, SWEEP_JOB, deserialize, queue_name, serialize
from server.storage.db import create_pool
from server.storage.horizons import retention_defaults
from server.storage.migrate import migrate_dsn
from worker import alerts
from worker.jobs import rollup_day, sweep_dirty
from worker.metrics import METRICS_ADDR, SAMPLE_SECONDS, instrument

JOB_TIMEOUT = 300  # seconds; a job killed with its worker is picked up again this + 10 s later
MAX_TRIES = 10_000  # re-runs of a day kept dirty by steady writes count as tries (arq resets them daily)
MAX_JOBS = 8
# On SIGTERM/SIGINT, jobs running finish for up to this many seconds before they are cancelled
# (a cancelled rollup runs again: passes are idempotent). Without it arq cancels them at once,
# and its close() then raises the cancellation: the worker exited 1 whenever a job was running.
SHUTDOWN_WAIT = 10


async def startup(ctx: dict[str, Any]) -> None:
    await migrate_dsn(ctx["database_url"])
    ctx["db"] = await create_pool(ctx["database_url"], min_size=1, max_size=MAX_JOBS + 1 + alerts.CONNECTIONS,
                                  application_name="metering-worker")
    await alerts.start(ctx)


async def shutdown(ctx: dict[str, Any]) -> None:
    await alerts.stop(ctx)
    pool = ctx.pop("db", None)
    if pool is not None:
        await pool.close()


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise ConfigError(f"{name} must be set for the worker")
    return value


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 <= value <= 3600:
        raise ConfigError(f"{name} must be between 0 and 3600, got {raw!r}")
    return value


def worker_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for arq.Worker (arq accepts the dict as settings)."""
    env = os.environ if env is None else env
    database_url = _required(env, "METERING_DATABASE_URL")
    redis_url = _required(env, "METERING_REDIS_URL")
    queue = queue_name(env)
    delay = _number(env, "METERING_ROLLUP_DELAY", 1.0)
    sweep_every = int(_number(env, "METERING_SWEEP_SECONDS", 15))
    if sweep_every < 1 or 60 % sweep_every:
        raise ConfigError("METERING_SWEEP_SECONDS must divide 60 (1, 2, 3, 5, 10, 15, 20, 30 or 60)")
    try:
        redis_settings = RedisSettings.from_dsn(redis_url)
    except Exception:  # never echo the URL: it may hold a password
        raise ConfigError("METERING_REDIS_URL is not a redis:// or unix:// URL") from None
    settings: dict[str, Any] = {
        "functions": [func(rollup_day, name=ROLLUP_JOB, keep_result=0, max_tries=MAX_TRIES, timeout=JOB_TIMEOUT)],
        "cron_jobs": [cron(sweep_dirty, name=SWEEP_JOB, second=set(range(0, 60, sweep_every)), microsecond=0,
                           unique=True, run_at_startup=True, timeout=JOB_TIMEOUT, keep_result=0),
                      # docs/storage.md "Retention": drops the partitions past every organization's horizon
                      cron(retention_sweep, name="metering:retention", minute=17, second=0, microsecond=0,
                           unique=True, timeout=JOB_TIMEOUT, keep_result=0)],
        "redis_settings": redis_settings,
        "queue_name": queue,
        "health_check_key": queue + HEALTH_CHECK_SUFFIX,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "ctx": {"database_url": database_url, "queue": queue, "rollup_delay": delay,
                "retention_defaults": retention_defaults(env),  # a bad METERING_RETENTION_DAYS fails here
                **alerts.settings(env)},  # and a bad alerts or delivery setting (worker/alerts.py)
        "job_serializer": serialize,
        "job_deserializer": deserialize,
        "keep_result": 0,
        "max_jobs": MAX_JOBS,
        "job_completion_wait": SHUTDOWN_WAIT,
        "job_timeout": JOB_TIMEOUT,
        "max_tries": MAX_TRIES,
    }
    settings.update(overrides)
    # Every job timed; the backlog and pool sampled when the metrics are served (worker/metrics.py).
    return instrument(settings, sample_every=SAMPLE_SECONDS if env.get(METRICS_ADDR) else None)
