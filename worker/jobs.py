"""The worker's jobs. arq may run a job more than once (retries, a killed
worker, the sweep): both jobs are idempotent."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from arq import Retry

from server.rollups.queue import enqueue_rollup
from server.rollups.recompute import dirty_days, is_retryable, recompute_day

log = logging.getLogger(__name__)
CONFLICT_RETRY_SECONDS = 0.2  # another pass over the same day won; try again from a fresh snapshot
SWEEP_LIMIT = 10_000  # (organization, day) pairs enqueued per sweep
# A day written to without pause stays dirty: each pass recomputes its hot windows
# from raw events, so a pass gets longer as they fill. Waiting this many times the
# last pass before the next keeps the worker's share of the machine at most
# 1 / (1 + HOT_DAY_BACKOFF) per hot day, leaving the rest to ingest. Queries stay
# exact meanwhile (they read a dirty window's raw events); only rollups trail.
HOT_DAY_BACKOFF = 3.0


async def rollup_day(ctx: dict[str, Any], org_id: int, day: str) -> int:
    """Recompute the dirty windows of one (organization, UTC day); returns how many."""
    started = time.monotonic()
    try:
        done = await recompute_day(ctx["db"], int(org_id), dt.datetime.fromisoformat(day))
    except Exception as exc:
        if is_retryable(exc):
            raise Retry(defer=CONFLICT_RETRY_SECONDS * ctx.get("job_try", 1)) from exc
        raise
    if "alerts" in ctx:
        ctx["alerts"].changed(int(org_id))  # detection follows the changed windows (worker/alerts.py)
    if done.dirty_left:
        # Writes committed after our snapshot: their enqueue found this job
        # running and was refused, so run again.
        raise Retry(defer=max(ctx["rollup_delay"], HOT_DAY_BACKOFF * (time.monotonic() - started)))
    return done.windows


async def sweep_dirty(ctx: dict[str, Any]) -> int:
    """Enqueue a rollup for every (organization, day) still dirty (Redis was down,
    a worker died, a job gave up); days already queued are skipped by job id."""
    queued = 0
    for org_id, day in await dirty_days(ctx["db"], SWEEP_LIMIT):
        if await enqueue_rollup(ctx["redis"], ctx["queue"], org_id, day, ctx["rollup_delay"]):
            queued += 1
    if queued:
        log.info("sweep queued %d rollup jobs", queued)
    return queued
