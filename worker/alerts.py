"""The worker's alerts: detection after rollups and on a sweep, and delivery, started and
stopped with the worker (worker/settings.py).

Detection (server/alerts/detect.py) runs for an organization while it has dirty windows
(writes, voids, adjustments and repricings all mark them; looked at every 0.25 s) and when a
rollup job of its windows ran, coalesced in this process, and for every organization with
rules every METERING_ALERT_SWEEP_SECONDS (default 30), which catches a raised limit, a new
period and anything a crash left. Both loops work from Postgres alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import asyncpg

from metering.waits import wait_set
from server.alerts.detect import Detector
from server.core.config import ConfigError
from server.rollups.recompute import dirty_days
from worker.delivery import Deliverer, DeliveryConfig, config_from_env

log = logging.getLogger(__name__)
DEFAULT_SWEEP = 30.0
DIRTY_POLL = 0.25  # seconds between looks at the organizations with dirty windows
DIRTY_LIMIT = 10_000  # (organization, day) pairs a look reads
DETECTION_SLOTS = 2  # detections at once, two connections each
CONNECTIONS = 2 * DETECTION_SLOTS + 2  # of the worker's pool: detection, the delivery loop's listener and writes


def sweep_seconds(env: Mapping[str, str]) -> float:
    raw = env.get("METERING_ALERT_SWEEP_SECONDS")
    if not raw:
        return DEFAULT_SWEEP
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"METERING_ALERT_SWEEP_SECONDS must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= 3600:
        raise ConfigError(f"METERING_ALERT_SWEEP_SECONDS must be above 0 and at most 3600, got {raw!r}")
    return value


class Detection:
    def __init__(self, detector: Detector, sweep: float) -> None:
        self.detector = detector
        self.sweep = sweep
        self._changed: set[int] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def changed(self, org_id: int) -> None:
        """The organization's usage changed: detect soon."""
        self._changed.add(org_id)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self.sweep  # the first sweep a period after start (burst workers never sweep)
        while True:
            try:
                if loop.time() >= next_sweep:
                    self._changed.clear()
                    await self.detector.sweep()
                    next_sweep = loop.time() + self.sweep
                # organizations with windows not yet rolled up have changed too: the query engine
                # reads their raw events, so detection need not wait for the rollup
                self._changed.update(org_id for org_id, _ in await dirty_days(self.detector.pool, DIRTY_LIMIT))
                while self._changed:
                    await self.detector.organization(self._changed.pop())
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("alerts: detection failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1)
            self._wake.clear()
            await wait_set(self._wake, max(0.0, min(DIRTY_POLL, next_sweep - loop.time())))


def settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The worker context's alert settings, read (and checked) with the worker's."""
    return {"alert_sweep": sweep_seconds(env), "delivery": config_from_env(env)}


async def start(ctx: dict[str, Any]) -> None:
    ctx["alerts"] = Detection(Detector(ctx["db"], slots=DETECTION_SLOTS), ctx.get("alert_sweep", DEFAULT_SWEEP))
    ctx["deliverer"] = Deliverer(ctx["db"], ctx.get("delivery") or DeliveryConfig())
    ctx["alerts"].start()
    ctx["deliverer"].start()


async def stop(ctx: dict[str, Any]) -> None:
    for name in ("alerts", "deliverer"):
        running = ctx.pop(name, None)
        if running is not None:
            await running.close()
