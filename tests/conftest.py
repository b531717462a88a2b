"""Shared fixtures: a fresh database per test session on a real Postgres, one
real gRPC server on loopback, and a factory for isolated organizations."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import grpc
import httpx
import pytest

from metering.logs import ACCESS_LOGGER
from metering.v1 import admin_pb2, admin_pb2_grpc, ingest_pb2_grpc, prices_pb2_grpc, query_pb2_grpc, records_pb2_grpc
from server.runtime.app import MeteringServer
from server.tenants.credentials import random_text
from tests.support import services
from tests.support.pg_proxy import PgProxy

MASTER_KEY = "test-master-key-" + random_text(16)
# Organizations start with an empty price book in tests (and in the servers tests start), unless a
# test asks for the catalog (tests/server/pricing/test_catalog.py); users get it by default.
os.environ.setdefault("METERING_DEFAULT_PRICES", "none")


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    admin = services.postgres_admin_dsn()
    dsn = await services.create_test_database(admin)
    yield dsn
    await services.drop_test_database(admin, dsn)


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[PgProxy]:
    """A TCP proxy on loopback in front of the test database, which a test can cut (tests/support/pg_proxy.py)."""
    proxy = await PgProxy(database_url).start()
    yield proxy
    await proxy.close()


@pytest.fixture(scope="session")
async def db(database_url: str, server: MeteringServer) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the migrated test database, for assertions on what was stored."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def server(database_url: str) -> AsyncIterator[MeteringServer]:
    logging.getLogger("server.api.interceptors").setLevel(logging.WARNING)
    srv = MeteringServer(database_url, "127.0.0.1:0", MASTER_KEY)
    await srv.start()
    yield srv
    await srv.stop(grace=1)


@pytest.fixture(scope="session")
async def channel(server: MeteringServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@dataclasses.dataclass
class Stubs:
    ingest: ingest_pb2_grpc.IngestServiceStub
    records: records_pb2_grpc.RecordServiceStub
    admin: admin_pb2_grpc.AdminServiceStub


@pytest.fixture(scope="session")
def stubs(channel: grpc.aio.Channel) -> Stubs:
    return Stubs(
        ingest_pb2_grpc.IngestServiceStub(channel),
        records_pb2_grpc.RecordServiceStub(channel),
        admin_pb2_grpc.AdminServiceStub(channel),
    )


@dataclasses.dataclass
class PriceStubs:
    prices: prices_pb2_grpc.PriceServiceStub
    costs: prices_pb2_grpc.CostServiceStub
    query: query_pb2_grpc.QueryServiceStub


@pytest.fixture(scope="session")
def pstubs(channel: grpc.aio.Channel) -> PriceStubs:
    """The price book, cost and query services (the pricing and costs tests share them)."""
    return PriceStubs(prices_pb2_grpc.PriceServiceStub(channel), prices_pb2_grpc.CostServiceStub(channel),
                      query_pb2_grpc.QueryServiceStub(channel))


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


MASTER = bearer(MASTER_KEY)


@dataclasses.dataclass
class Org:
    organization_id: str
    name: str
    admin_key: str

    @property
    def auth(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.admin_key)


@pytest.fixture
def new_org(stubs: Stubs) -> Callable[[], Awaitable[Org]]:
    """Creates a fresh organization with an admin key, so tests never share data."""

    async def make() -> Org:
        org = await stubs.admin.CreateOrganization(
            admin_pb2.CreateOrganizationRequest(name="org-" + random_text(10)), metadata=MASTER
        )
        key = await stubs.admin.CreateApiKey(
            admin_pb2.CreateApiKeyRequest(organization=org.organization_id, name="admin"), metadata=MASTER
        )
        return Org(org.organization_id, org.name, key.key)

    return make


# --- REST gateway -----------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def asgi_lifespan(app: Any) -> AsyncIterator[None]:
    """Runs an ASGI app's lifespan (startup before, shutdown after) as a server would."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))

    async def expect(kind: str) -> None:
        reply = asyncio.ensure_future(outbox.get())
        done, _ = await asyncio.wait({reply, task}, return_when=asyncio.FIRST_COMPLETED)
        if reply not in done:
            reply.cancel()
            task.result()  # raises the app's error
            raise RuntimeError(f"lifespan ended before {kind}")
        message = reply.result()
        if message["type"] != kind:
            raise RuntimeError(f"lifespan: expected {kind}, got {message}")

    await inbox.put({"type": "lifespan.startup"})
    await expect("lifespan.startup.complete")
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await expect("lifespan.shutdown.complete")
        await task


GatewayClient = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(scope="session")
def gateway_client(server: MeteringServer) -> GatewayClient:
    """Factory: `async with gateway_client(**create_app_kwargs) as http:` a gateway app (own
    channel, lifespan run) on the test server, behind an httpx client."""
    from gateway.app import create_app

    @contextlib.asynccontextmanager
    async def make(**kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(f"127.0.0.1:{server.port}", **kwargs)
        async with asgi_lifespan(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client:
            yield client

    return make


@pytest.fixture(scope="session")
async def http(gateway_client: GatewayClient) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway with default settings, shared by the session."""
    async with gateway_client() as client:
        yield client


@pytest.fixture
def saved_logging():
    """The root logger's handlers and levels, put back after the test: for tests that run
    configure_logging in-process (directly or through `metering`'s main), whose handler writes to
    the stderr pytest captured for that test only (later tests' log lines then fail on a closed file)."""
    root, access = logging.getLogger(), logging.getLogger(ACCESS_LOGGER)
    handlers, levels = list(root.handlers), (root.level, access.level)
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(levels[0])
    access.setLevel(levels[1])
