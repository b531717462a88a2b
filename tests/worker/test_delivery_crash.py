"""The real worker (`python -m worker`) end to end: events recorded through a server that
enqueues rollups, the worker's rollup job runs detection, its delivery loop signs and sends;
SIGKILLed while deliveries are in flight, a second worker delivers everything, duplicates
only with the same webhook-id; Redis down while a threshold is crossed, delivered once back."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import subprocess
import sys
import time

import asyncpg
import grpc

from metering.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    alerts_pb2,
    alerts_pb2_grpc,
    budgets_pb2,
    budgets_pb2_grpc,
    event_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
)
from server.runtime.app import MeteringServer
from server.tenants.credentials import random_text
from tests.conftest import MASTER, MASTER_KEY, bearer
from tests.support.pg_proxy import PgProxy
from tests.worker.webhooks import Receiver

ROOT = pathlib.Path(__file__).resolve().parents[2]
STATES = ("select d.state from alert_deliveries d join organizations o using (org_id) where o.id = $1")


async def _until(condition, timeout: float = 120) -> None:
    """A ceiling, not a speed check: a worker started late in the suite first sweeps every dirty
    window the earlier tests left (the alerts bench measures the delay)."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


def _worker(worker_env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A queue of its own: a worker SIGKILLed here must not leave a leased rollup job in the shared
    # queue, which other tests' burst workers would wait out (arq's job timeout).
    queue = worker_env["METERING_QUEUE_NAME"] + "-crash"
    env = {**os.environ, **worker_env, "METERING_QUEUE_NAME": queue, "METERING_LOG_LEVEL": "WARNING",
           "METERING_WEBHOOK_ALLOW_PRIVATE": "1",
           "METERING_WEBHOOK_TIMEOUT": "1", "METERING_WEBHOOK_RETRY_BASE": "0.1",
           "METERING_ALERT_SWEEP_SECONDS": "3600"}
    return subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=env)


async def test_worker_killed_mid_delivery_loses_nothing(rollup_server: MeteringServer, rstubs, rollup_org,
                                                        worker_env, db: asyncpg.Pool, monkeypatch):
    monkeypatch.setenv("METERING_WEBHOOK_ALLOW_PRIVATE", "1")
    org = await rollup_org()
    receiver = Receiver()
    receiver.delay = 0.6  # deliveries are in flight when the worker dies
    await receiver.start()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{rollup_server.port}") as channel:
            alerts = alerts_pb2_grpc.AlertServiceStub(channel)
            endpoint = await alerts.CreateWebhookEndpoint(alerts_pb2.CreateWebhookEndpointRequest(
                endpoint=alerts_pb2.WebhookEndpoint(url=receiver.url)), metadata=org.auth)
            receiver.secrets = [endpoint.secret]
            await budgets_pb2_grpc.BudgetServiceStub(channel).CreateBudget(budgets_pb2.CreateBudgetRequest(
                budget=budgets_pb2.Budget(limit="10", thresholds=["10", "20", "30", "40", "50", "60"])),
                metadata=org.auth)
        workers.append(_worker(worker_env))
        await rstubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
            kind="completions", model="m", cost="7")), metadata=org.auth)

        async def in_flight() -> bool:  # the first attempts reached the receiver
            return receiver.arrived.is_set() or await db.fetchval(
                "select count(*) from alert_deliveries d join organizations o using (org_id) "
                "where o.id = $1 and d.lease_until is not null", org.organization_id) > 0
        await _until(in_flight)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=10)
        workers.append(_worker(worker_env))

        async def all_delivered() -> bool:
            states = [r["state"] for r in await db.fetch(STATES, org.organization_id)]
            return len(states) == 6 and set(states) == {"delivered"}
        await _until(all_delivered)
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=15)
        await receiver.stop()
    events = {r["event_id"] for r in await db.fetch(
        "select e.event_id from alert_events e join organizations o using (org_id) where o.id = $1",
        org.organization_id)}
    assert len(events) == 6
    assert {r.webhook_id for r in receiver.received} == events  # every one, duplicates only as the same id
    assert receiver.rejected == 0


async def test_redis_down_then_back_delivers_once(database_url: str, redis_url: str, db: asyncpg.Pool,
                                                  worker_env, monkeypatch):
    """Redis is down while the threshold is crossed (the server cannot enqueue the rollup): once
    it is back, the worker's sweep finds the dirty windows, their rollup runs detection, and the
    event is delivered once."""
    monkeypatch.setenv("METERING_WEBHOOK_ALLOW_PRIVATE", "1")
    proxy = await PgProxy(redis_url).start()
    queue = "metering-test-" + random_text(12)
    server = MeteringServer(database_url, "127.0.0.1:0", MASTER_KEY, redis_url=proxy.dsn, queue_name=queue,
                            rollup_delay=0)
    await server.start()
    receiver = Receiver()
    await receiver.start()
    worker = None
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            org = await admin.CreateOrganization(admin_pb2.CreateOrganizationRequest(name="org-" + random_text(10)),
                                                 metadata=MASTER)
            auth = bearer((await admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
                organization=org.organization_id), metadata=MASTER)).key)
            endpoint = await alerts_pb2_grpc.AlertServiceStub(channel).CreateWebhookEndpoint(
                alerts_pb2.CreateWebhookEndpointRequest(endpoint=alerts_pb2.WebhookEndpoint(url=receiver.url)),
                metadata=auth)
            receiver.secrets = [endpoint.secret]
            await budgets_pb2_grpc.BudgetServiceStub(channel).CreateBudget(budgets_pb2.CreateBudgetRequest(
                budget=budgets_pb2.Budget(limit="1", thresholds=["100"])), metadata=auth)
            proxy.down()
            reply = await ingest_pb2_grpc.IngestServiceStub(channel).RecordEvent(ingest_pb2.RecordEventRequest(
                event=event_pb2.UsageEvent(kind="completions", model="m", cost="2")), metadata=auth)
            assert reply.outcome == ingest_pb2.OUTCOME_RECORDED  # acknowledged: committed to Postgres
        proxy.up()
        worker = _worker({**worker_env, "METERING_QUEUE_NAME": queue, "METERING_REDIS_URL": proxy.dsn})
        await asyncio.wait_for(receiver.arrived.wait(), 30)
        await asyncio.sleep(0.3)  # nothing more comes
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            await asyncio.to_thread(worker.wait, 15)  # the proxy, on this loop, serves its shutdown
        await receiver.stop()
        await server.stop(grace=1)
        await proxy.close()
    assert len(receiver.received) == 1 and receiver.received[0].payload["type"] == "budget.threshold.triggered"
