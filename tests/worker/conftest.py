"""Worker fixtures: a second gRPC server on the session database that enqueues
rollups on a real Redis, in a queue of its own, and burst arq workers."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from arq.worker import Worker

from metering.v1 import admin_pb2, admin_pb2_grpc, ingest_pb2_grpc, query_pb2_grpc, records_pb2_grpc
from server.runtime.app import MeteringServer
from server.tenants.credentials import random_text
from tests.conftest import MASTER, MASTER_KEY, Org
from tests.support import services
from worker.settings import worker_settings


@pytest.fixture(scope="session")
def redis_url() -> str:
    return services.redis_url()


@pytest.fixture(scope="session")
def queue() -> str:
    """A queue (and job-id namespace) no other test session shares."""
    return "metering-test-" + random_text(12)


@pytest.fixture(scope="session")
def worker_env(database_url: str, redis_url: str, queue: str) -> dict[str, str]:
    return {
        "METERING_DATABASE_URL": database_url, "METERING_REDIS_URL": redis_url,
        "METERING_QUEUE_NAME": queue, "METERING_ROLLUP_DELAY": "0",
    }


@pytest.fixture(scope="session")
async def rollup_server(
    database_url: str, redis_url: str, queue: str, server: MeteringServer
) -> AsyncIterator[MeteringServer]:
    srv = MeteringServer(database_url, "127.0.0.1:0", MASTER_KEY, redis_url=redis_url, queue_name=queue, rollup_delay=0)
    await srv.start()
    yield srv
    await srv.stop(grace=1)


@dataclasses.dataclass
class RollupStubs:
    ingest: ingest_pb2_grpc.IngestServiceStub
    records: records_pb2_grpc.RecordServiceStub
    admin: admin_pb2_grpc.AdminServiceStub
    query: query_pb2_grpc.QueryServiceStub


@pytest.fixture(scope="session")
async def rstubs(rollup_server: MeteringServer) -> AsyncIterator[RollupStubs]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{rollup_server.port}") as ch:
        yield RollupStubs(
            ingest_pb2_grpc.IngestServiceStub(ch), records_pb2_grpc.RecordServiceStub(ch),
            admin_pb2_grpc.AdminServiceStub(ch), query_pb2_grpc.QueryServiceStub(ch),
        )


@pytest.fixture
def rollup_org(rstubs: RollupStubs) -> Callable[[], Awaitable[Org]]:
    async def make() -> Org:
        org = await rstubs.admin.CreateOrganization(
            admin_pb2.CreateOrganizationRequest(name="org-" + random_text(10)), metadata=MASTER
        )
        key = await rstubs.admin.CreateApiKey(
            admin_pb2.CreateApiKeyRequest(organization=org.organization_id, name="admin"), metadata=MASTER
        )
        return Org(org.organization_id, org.name, key.key)

    return make


async def run_worker(env: dict[str, str], **overrides: Any) -> Worker:
    """A burst worker: runs until its queue is empty, then closes."""
    worker = Worker(**worker_settings(env, burst=True, poll_delay=0, handle_signals=False, **overrides))
    try:
        await worker.main()
    finally:
        await asyncio.shield(worker.close())
    return worker


@pytest.fixture
def burst(worker_env: dict[str, str], rollup_server: MeteringServer) -> Callable[..., Awaitable[Worker]]:
    """Flush the server's pending enqueues, then run a burst worker."""

    async def go(**overrides: Any) -> Worker:
        assert rollup_server.enqueuer is not None
        await rollup_server.enqueuer.flush()
        return await run_worker(worker_env, **overrides)

    return go
