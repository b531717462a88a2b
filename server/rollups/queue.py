"""The rollup queue: every Redis name in one place, the JSON job codec, and the
server's after-commit hook that enqueues rollup jobs.

Jobs carry only integers and ISO strings, encoded as JSON (never pickle). A job
recomputes one (organization, UTC day); its id is deterministic, so a day that
is already queued is not queued twice. Enqueueing is best effort: a failure
(Redis down) is logged and forgotten, and the worker's sweep finds the day
through its dirty_windows rows.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from server.core.windows import day_start

log = logging.getLogger(__name__)

QUEUE_NAME_ENV = "METERING_QUEUE_NAME"
DEFAULT_QUEUE_NAME = "metering:rollups"
ROLLUP_JOB = "rollup_day"  # args: org_id (int), UTC day start (ISO 8601)
SWEEP_JOB = "sweep_dirty"
HEALTH_CHECK_SUFFIX = ":health-check"
ENQUEUE_TIMEOUT = 2.0  # seconds; Redis is optional on the write path
_WARN_EVERY = 60.0


def queue_name(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get(QUEUE_NAME_ENV) or DEFAULT_QUEUE_NAME


def rollup_job_id(queue: str, org_id: int, day: dt.datetime) -> str:
    """Deterministic: one queued job per (queue, organization, UTC day)."""
    return f"{queue}:rollup:{org_id}:{day_start(day.astimezone(dt.UTC)).date().isoformat()}"


def serialize(data: dict[str, Any]) -> bytes:
    return json.dumps(data, default=str, separators=(",", ":")).encode()


def deserialize(raw: bytes) -> dict[str, Any]:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("job payload is not an object")
    return value


def connect(redis_url: str, queue: str) -> ArqRedis:
    """A lazily connecting client: creating it never touches Redis."""
    pool = ConnectionPool.from_url(redis_url, socket_connect_timeout=ENQUEUE_TIMEOUT, socket_timeout=ENQUEUE_TIMEOUT)
    return ArqRedis(pool, job_serializer=serialize, job_deserializer=deserialize, default_queue_name=queue)


async def enqueue_rollup(redis: ArqRedis, queue: str, org_id: int, day: dt.datetime, defer: float = 0.0) -> bool:
    """True if queued now, False if that day's job was already queued or running."""
    day = day_start(day.astimezone(dt.UTC))
    job = await redis.enqueue_job(
        ROLLUP_JOB, org_id, day.isoformat(), _job_id=rollup_job_id(queue, org_id, day),
        _queue_name=queue, _defer_by=defer or None,
    )
    return job is not None


class RollupEnqueuer:
    """Called after each write commits with the (org_id, window_start) pairs it
    marked dirty. Never blocks the write path: pairs are coalesced per
    (organization, day) and sent by one background task."""

    def __init__(self, redis_url: str, queue: str | None = None, *, defer: float = 1.0) -> None:
        self.queue = queue or queue_name()
        self.defer = defer
        self.redis = connect(redis_url, self.queue)
        self._pending: set[tuple[int, dt.datetime]] = set()
        # (org, day) -> monotonic time its job was queued. A job queued with `defer`
        # runs no earlier than that much later and then reads every dirty mark of
        # its day, so marks made meanwhile need no job of their own: under steady
        # ingest this is one Redis call per (org, day) per `defer` instead of one per commit.
        self._queued: dict[tuple[int, dt.datetime], float] = {}
        self._task: asyncio.Task[None] | None = None
        self._last_warning = 0.0
        self.failures = 0

    def notify(self, windows: Iterable[tuple[int, dt.datetime]]) -> None:
        """Never raises: the write it follows has committed already."""
        try:
            for org_id, window in windows:
                self._pending.add((org_id, day_start(window.astimezone(dt.UTC))))
            if self._pending and (self._task is None or self._task.done()):
                self._task = asyncio.get_running_loop().create_task(self._send(), context=contextvars.Context())
        except Exception as exc:  # pragma: no cover - defensive
            self._warn(exc)

    async def _send(self) -> None:
        while self._pending:
            batch, self._pending = sorted(self._pending), set()
            now = time.monotonic()
            if len(self._queued) > 10_000:
                self._queued = {k: t for k, t in self._queued.items() if now - t < self.defer / 2}
            for org_id, day in batch:
                if now - self._queued.get((org_id, day), -1e9) < self.defer / 2:
                    continue  # a job queued moments ago has not started yet: it will see these marks
                try:
                    async with asyncio.timeout(ENQUEUE_TIMEOUT * 2):
                        # False: queued (maybe by another server process) or running; a
                        # running job misses marks made after it began, so ask again a
                        # little later (the worker's sweep is the backstop either way).
                        await enqueue_rollup(self.redis, self.queue, org_id, day, self.defer)
                        self._queued[(org_id, day)] = now
                except Exception as exc:  # Redis down, timeout, ...: best effort
                    self._warn(exc)
                    break  # Redis is unreachable: leave the rest to the sweep

    def _warn(self, exc: BaseException) -> None:
        self.failures += 1
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY:
            self._last_warning = now
            log.warning("rollup enqueue failed (%s); the worker's sweep will pick the windows up",
                        type(exc).__name__)

    async def flush(self) -> None:
        """Wait until everything notified so far was sent (or given up on)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def close(self) -> None:
        await self.flush()
        await self.redis.aclose(close_connection_pool=True)
