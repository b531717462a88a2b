"""1,000 events crossing the same threshold at once, recorded through two server processes
while detections run from two pools (two workers) at the same time: exactly one
`triggered` is written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from metering.v1 import event_pb2, ingest_pb2, ingest_pb2_grpc
from server.alerts.detect import Detector
from server.runtime.app import MeteringServer
from server.storage.db import create_pool
from tests.conftest import MASTER_KEY


@pytest.fixture(scope="module")
async def second_ingest(database_url: str, server: MeteringServer) -> AsyncIterator[ingest_pb2_grpc.IngestServiceStub]:
    other = MeteringServer(database_url, "127.0.0.1:0", MASTER_KEY)
    await other.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as channel:
        yield ingest_pb2_grpc.IngestServiceStub(channel)
    await other.stop(grace=1)


async def test_a_thousand_events_crossing_at_once_trigger_once(new_team, org_number, pool, database_url,
                                                               second_ingest):
    team = await new_team()
    org_id = await org_number(team)
    await team.create(limit="5", thresholds=["100"])  # crossed at the 500th event of $0.01
    ingests = [team.stubs.ingest, second_ingest]
    other_pool = await create_pool(database_url, min_size=1, max_size=6)
    detectors = [Detector(pool), Detector(other_pool)]
    done = asyncio.Event()

    async def record(i: int) -> None:
        events = [event_pb2.UsageEvent(kind="completions", model="m", cost="0.01") for _ in range(50)]
        reply = await ingests[i % 2].RecordEvents(ingest_pb2.RecordEventsRequest(events=events),
                                                  metadata=team.admin)
        assert reply.recorded == 50

    async def detect(detector: Detector) -> int:
        written = 0
        while not done.is_set():
            written += sum(await asyncio.gather(*(detector.organization(org_id) for _ in range(3))))
        return written + await detector.organization(org_id)

    try:
        watching = [asyncio.ensure_future(detect(d)) for d in detectors]
        await asyncio.gather(*(record(i) for i in range(20)))
        done.set()
        written = sum(await asyncio.gather(*watching))
    finally:
        await other_pool.close()
    rows = await pool.fetch("select type from alert_events where org_id = $1", org_id)
    assert [r["type"] for r in rows] == ["budget.threshold.triggered"]
    assert written == 1
