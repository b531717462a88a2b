"""The worker's two loops (delivery and detection) stop on close(), also when their wake-up (a
NOTIFY, a change, a retry due) comes in the same moment as the close. With asyncio.wait_for on Python 3.11 the
cancellation was lost then (CPython gh-86296) and close() waited forever: a fresh-clone CI run
hung in tests/worker/test_worker.py, a closed burst worker's delivery loop still claiming
deliveries 10 minutes later. Each loop runs against its own empty database, so it is idle and
waiting when it is closed. (tests/metering/test_waits.py checks the wait they share.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from server.alerts.detect import Detector
from server.storage.db import create_pool
from server.storage.migrate import migrate_dsn
from tests.support import services
from worker.alerts import Detection
from worker.delivery import Deliverer, DeliveryConfig

IDLE = 0.3  # seconds: long enough for a loop to claim or detect nothing and wait
CLOSED_WITHIN = 5.0


@pytest.fixture(scope="module")
async def empty() -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    async with services.own_database() as dsn:
        await migrate_dsn(dsn)
        pool = await create_pool(dsn, min_size=1, max_size=8)
        try:
            yield dsn, pool
        finally:
            await pool.close()


async def test_the_delivery_loop_stops_when_woken_as_it_is_closed(empty) -> None:
    _, pool = empty
    for _ in range(3):
        deliverer = Deliverer(pool, DeliveryConfig(poll=30))
        deliverer.start()
        await asyncio.sleep(IDLE)
        deliverer._notified()  # a NOTIFY heard in the same moment
        async with asyncio.timeout(CLOSED_WITHIN):
            await deliverer.close()


async def test_the_detection_loop_stops_when_woken_as_it_is_closed(empty) -> None:
    _, pool = empty
    for _ in range(3):
        detection = Detection(Detector(pool), sweep=3600)
        detection.start()
        await asyncio.sleep(IDLE)
        detection.changed(1)  # an organization's usage changed in the same moment
        async with asyncio.timeout(CLOSED_WITHIN):
            await detection.close()

