"""Replicas on one box, as real processes (issue 21, item 2): two `metering serve` on their own
ports, two workers and two gateways sharing the test database and Redis (bench/stress/replicas.py).
A change made through one server is enforced by the other at once (the notifications of
server/storage/notify.py); SIGKILL of one server under SDK and gateway ingest, given both servers in
one gRPC target, loses and doubles nothing. The fast variant of `python -m bench.stress --only replicas`."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest

from bench.stress import replicas as stress_replicas
from metering.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    budgets_pb2,
    budgets_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    prices_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
)
from server.runtime.app import MeteringServer
from tests.conftest import MASTER_KEY
from tests.server.pricing.test_prices import ev, new_version, set_prices
from tests.server.tenants.test_revocation import AT_ONCE, member_key, refused_after, warmed
from tests.support import services


@pytest.fixture(scope="module")
async def cluster(database_url: str, server: MeteringServer) -> AsyncIterator[stress_replicas.Cluster]:
    """The session's database (migrated), the local Redis with a queue of the cluster's own."""
    async with stress_replicas.cluster(database_url, services.redis_url(), MASTER_KEY) as running:
        yield running


@pytest.fixture(scope="module")
async def channels(cluster: stress_replicas.Cluster) -> AsyncIterator[list[grpc.aio.Channel]]:
    """One channel to each server, in order."""
    opened = [grpc.aio.insecure_channel(addr) for addr in cluster.grpc_addrs]
    yield opened
    for channel in opened:
        await channel.close()


async def test_a_key_revoked_through_one_server_is_refused_by_the_other_at_once(channels, new_org):
    admins = [admin_pb2_grpc.AdminServiceStub(ch) for ch in channels]
    org = await new_org()
    key = await member_key(admins[1], org)
    await warmed(admins, key.key)  # both servers hold the key in their caches
    await admins[0].RevokeApiKey(admin_pb2.RevokeApiKeyRequest(
        organization=org.organization_id, api_key_id=key.api_key.api_key_id), metadata=org.auth)
    took = await refused_after(admins, key.key, time.monotonic(), AT_ONCE)
    print(f"replicas: revoked through server 0, refused by server 1 {took[1] * 1000:.1f} ms after")


async def test_a_price_set_through_one_server_prices_the_next_event_of_the_other(channels, new_org):
    org = await new_org()
    ingest = ingest_pb2_grpc.IngestServiceStub(channels[1])
    records = records_pb2_grpc.RecordServiceStub(channels[1])
    at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)

    async def cost_on_server_1(request_id: str) -> str:
        reply = await ingest.RecordEvent(ingest_pb2.RecordEventRequest(
            event=ev(request_id, "m", at, input_tokens=1000)), metadata=org.auth)
        event = await records.GetEvent(records_pb2.GetEventRequest(event_id=reply.event_id), metadata=org.auth)
        return event.cost

    assert await cost_on_server_1("before") == ""  # server 1 holds the empty price book now
    prices = prices_pb2_grpc.PriceServiceStub(channels[0])
    await set_prices(prices, org.auth, new_version("m", {"input": "0.001"}, at - dt.timedelta(days=1)))
    assert await cost_on_server_1("after") == "1"


async def test_a_budget_created_through_one_server_is_enforced_by_the_other(channels, new_org):
    org = await new_org()
    budgets = [budgets_pb2_grpc.BudgetServiceStub(ch) for ch in channels]
    check = budgets_pb2.CheckRequest(estimated_cost="2")
    assert (await budgets[1].Check(check, metadata=org.auth)).allowed  # no budget yet, as server 1 reads it
    await budgets[0].CreateBudget(budgets_pb2.CreateBudgetRequest(budget=budgets_pb2.Budget(
        name="cap", limit="1", mode=budgets_pb2.BUDGET_MODE_ENFORCE)), metadata=org.auth)
    reply = await budgets[1].Check(check, metadata=org.auth)
    assert not reply.allowed and [b.reason for b in reply.budgets] == ["LIMIT_EXCEEDED"], reply


async def test_sigkill_of_one_server_under_sdk_and_gateway_ingest_loses_and_doubles_nothing(
    cluster: stress_replicas.Cluster, database_url: str,
) -> None:
    """Last in this module: it kills server 0, frozen (SIGSTOP) for 0.4 s first so that calls of both
    clients are in flight on it when it dies. The SDK and a REST client (POST /v1/events:batchRecord
    through both gateways) go on through server 1; every total is exact once the workers rolled up
    (kill_one_under_ingest checks the rest: each server took both clients' events before the kill,
    the survivor after it, raw events = QueryUsage = rollups = acknowledged, no request id twice)."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    try:
        result = await stress_replicas.kill_one_under_ingest(cluster, pool, MASTER_KEY, before=1.5, after=1.5,
                                                             freeze=0.4)
    finally:
        await pool.close()
    print({k: v for k, v in result.items() if "per_s" in k or "resumed" in k or "frozen" in k or "events" in k})
    assert result["rest_failed_posts"] > 0  # the kill cut calls: answered 503 by the gateways, posted again
    assert result["events"] == result["sdk_events"] + result["rest_events"] > 0 and result["exactly_once"]
    assert cluster.servers[0].poll() is not None and cluster.servers[1].poll() is None
