"""Delivery of the outbox by the worker's loop, against a real receiver on loopback that
verifies Standard Webhooks signatures: a receiver down then back gets every event, the log
showing the retries; past the retry horizon a delivery is `failed` and Redeliver sends it
again with the same webhook-id; a rotated secret and the previous one both sign during the
overlap; one slow receiver does not hold another; private URLs are refused unless allowed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import grpc
import pytest
from google.protobuf import duration_pb2

from metering.v1 import alerts_pb2, alerts_pb2_grpc
from server.alerts.detect import Detector
from server.runtime.app import MeteringServer
from server.storage.db import create_pool
from tests.server.budgets.conftest import Team, budgets, new_team
from tests.worker.webhooks import Receiver
from worker.delivery import Deliverer, DeliveryConfig

__all__ = ["budgets", "new_team"]
FAST = DeliveryConfig(retry_base=0.05, horizon=60, timeout=2, poll=0.05, private_allowed=True)
STATES = "select state, attempts from alert_deliveries where org_id = $1 order by create_time"


@pytest.fixture(scope="module")
async def pool(database_url: str, server: MeteringServer) -> AsyncIterator[asyncpg.Pool]:
    made = await create_pool(database_url, min_size=1, max_size=8)
    yield made
    await made.close()


@pytest.fixture(scope="module")
async def alerts(server: MeteringServer) -> AsyncIterator[alerts_pb2_grpc.AlertServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield alerts_pb2_grpc.AlertServiceStub(channel)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = Receiver()
    yield made
    await made.stop()


@pytest.fixture
def allow_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERING_WEBHOOK_ALLOW_PRIVATE", "1")


async def _org_id(pool: asyncpg.Pool, team: Team) -> int:
    value: int = await pool.fetchval("select org_id from organizations where id = $1", team.org.organization_id)
    return value


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


async def _endpoint(alerts, team: Team, url: str, **fields) -> alerts_pb2.WebhookEndpoint:
    request = alerts_pb2.CreateWebhookEndpointRequest(endpoint=alerts_pb2.WebhookEndpoint(url=url, **fields))
    made: alerts_pb2.WebhookEndpoint = await alerts.CreateWebhookEndpoint(request, metadata=team.admin)
    return made


async def test_receiver_down_then_back_gets_every_event_once_retried(new_team, alerts, pool, receiver,
                                                                     allow_private):
    team = await new_team()
    org_id = await _org_id(pool, team)
    endpoint = await _endpoint(alerts, team, receiver.url, event_types=["budget.threshold.triggered"])
    assert endpoint.secret.startswith("whsec_")
    got = await alerts.GetWebhookEndpoint(alerts_pb2.GetWebhookEndpointRequest(endpoint_id=endpoint.endpoint_id),
                                          metadata=team.admin)
    assert got.secret == ""  # shown once
    receiver.secrets = [endpoint.secret]
    await team.create(limit="10", thresholds=["50", "100"])
    await team.record(cost="6")
    await team.record(cost="5")
    assert await Detector(pool).organization(org_id) == 2
    deliverer = Deliverer(pool, FAST)
    deliverer.start()
    try:
        async def retried() -> bool:
            return all(r["attempts"] >= 2 for r in await pool.fetch(STATES, org_id))
        await _until(retried)  # the receiver is down: every delivery retried
        await receiver.start()

        async def delivered() -> bool:
            return {r["state"] for r in await pool.fetch(STATES, org_id)} == {"delivered"}
        await _until(delivered)
    finally:
        await deliverer.close()
    thresholds = sorted(r.payload["data"]["threshold"] for r in receiver.received)
    assert thresholds == ["100", "50"] and receiver.rejected == 0
    events = {r["event_id"] for r in await pool.fetch("select event_id from alert_events where org_id = $1", org_id)}
    assert {r.webhook_id for r in receiver.received} == events
    log = await alerts.ListDeliveries(alerts_pb2.ListDeliveriesRequest(endpoint_id=endpoint.endpoint_id),
                                      metadata=team.admin)
    for delivery in log.deliveries:
        assert delivery.state == alerts_pb2.DELIVERY_STATE_DELIVERED
        *failed, last = delivery.log
        assert failed and all(a.status_code == 0 and a.error for a in failed)
        assert (last.status_code, last.response_excerpt) == (200, "thanks") and last.latency_ms > 0


async def test_past_the_horizon_failed_then_redelivered_with_the_same_id(new_team, alerts, pool, receiver,
                                                                         allow_private):
    team = await new_team()
    org_id = await _org_id(pool, team)
    endpoint = await _endpoint(alerts, team, receiver.url)
    receiver.secrets = [endpoint.secret]
    await team.create(limit="1", thresholds=["100"])
    await team.record(cost="2")
    assert await Detector(pool).organization(org_id) == 1
    deliverer = Deliverer(pool, DeliveryConfig(retry_base=0.05, horizon=0.3, timeout=2, poll=0.05,
                                               private_allowed=True))
    deliverer.start()
    try:
        async def failed() -> bool:
            return [r["state"] for r in await pool.fetch(STATES, org_id)] == ["failed"]
        await _until(failed)
        await receiver.start()
        [delivery] = (await alerts.ListDeliveries(alerts_pb2.ListDeliveriesRequest(), metadata=team.admin)).deliveries
        again = await alerts.Redeliver(alerts_pb2.RedeliverRequest(delivery_id=delivery.delivery_id),
                                       metadata=team.admin)
        assert again.state == alerts_pb2.DELIVERY_STATE_PENDING
        await asyncio.wait_for(receiver.arrived.wait(), 15)
    finally:
        await deliverer.close()
    assert [r.webhook_id for r in receiver.received] == [delivery.event_id]


async def test_both_secrets_sign_during_a_rotation(new_team, alerts, pool, receiver, allow_private):
    team = await new_team()
    org_id = await _org_id(pool, team)
    endpoint = await _endpoint(alerts, team, receiver.url)
    rotated = await alerts.RotateWebhookSecret(alerts_pb2.RotateWebhookSecretRequest(
        endpoint_id=endpoint.endpoint_id, overlap=duration_pb2.Duration(seconds=3600)), metadata=team.admin)
    assert rotated.secret != endpoint.secret and rotated.HasField("previous_secret_expire_time")
    receiver.secrets = [endpoint.secret, rotated.secret]  # a receiver on either verifies
    await receiver.start()
    await team.create(limit="1", thresholds=["100"])
    await team.record(cost="2")
    assert await Detector(pool).organization(org_id) == 1
    deliverer = Deliverer(pool, FAST)
    deliverer.start()
    try:
        await asyncio.wait_for(receiver.arrived.wait(), 15)
    finally:
        await deliverer.close()
    assert len(receiver.received) == 1 and receiver.rejected == 0


async def test_a_slow_receiver_does_not_hold_another(new_team, alerts, pool, allow_private):
    team = await new_team()
    org_id = await _org_id(pool, team)
    slow, quick = Receiver(), Receiver()
    slow.delay = 1.5
    for r in (slow, quick):
        r.secrets = [(await _endpoint(alerts, team, r.url)).secret]
        await r.start()
    await team.create(limit="10", thresholds=["10", "20", "30", "40", "50"])
    await team.record(cost="6")
    assert await Detector(pool).organization(org_id) == 5  # 5 events for each receiver
    deliverer = Deliverer(pool, DeliveryConfig(retry_base=0.05, horizon=60, timeout=5, poll=0.05, per_endpoint=2,
                                               concurrency=4, private_allowed=True))
    deliverer.start()
    try:
        async def quick_done() -> bool:
            return len(quick.received) == 5
        await _until(quick_done)
        assert len(slow.received) < 5  # the slow one is still at it, with at most 2 in flight
    finally:
        await deliverer.close()
        for r in (slow, quick):
            await r.stop()


async def test_private_urls_are_refused_unless_allowed(new_team, alerts, monkeypatch):
    monkeypatch.delenv("METERING_WEBHOOK_ALLOW_PRIVATE", raising=False)
    team = await new_team()
    for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "http://10.0.0.1/", "ftp://x.example/"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _endpoint(alerts, team, url)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "url" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _endpoint(alerts, team, "https://example.com/hook", event_types=["budget.nope"])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
