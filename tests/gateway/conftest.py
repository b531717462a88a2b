"""Tenants for the gateway tests: an organization with an admin user and two members,
each with an API key bound to the user; and the gateway served over real HTTP (`live_gateway`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import uvicorn

from gateway.app import create_app
from gateway.http.connections import GuardedConfig, HttpLimits
from metering.v1 import admin_pb2
from server.runtime.app import MeteringServer
from server.tenants.credentials import random_text
from tests.conftest import MASTER, Org, Stubs

PASSWORD = "correct horse battery"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclasses.dataclass
class Person:
    user_id: str
    username: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return auth(self.key)


@dataclasses.dataclass
class Tenant:
    org: Org
    admin: Person
    member: Person
    other: Person

    @property
    def org_admin(self) -> dict[str, str]:
        """The organization's admin key, bound to no user."""
        return auth(self.org.admin_key)


async def module_org(stubs: Stubs, prefix: str) -> Org:
    """An organization with an admin key, for a module-scoped fixture (new_org makes one per test)."""
    org = await stubs.admin.CreateOrganization(
        admin_pb2.CreateOrganizationRequest(name=f"{prefix}-{random_text(8)}"), metadata=MASTER)
    key = await stubs.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(organization=org.organization_id, name="admin"), metadata=MASTER)
    return Org(org.organization_id, org.name, key.key)


@pytest.fixture
def new_tenant(stubs: Stubs, new_org: Callable[[], Awaitable[Org]]) -> Callable[[], Awaitable[Tenant]]:
    async def make() -> Tenant:
        org = await new_org()

        async def person(prefix: str, role: admin_pb2.Role) -> Person:
            name = f"{prefix}-{random_text(8).lower()}"
            user = await stubs.admin.CreateUser(admin_pb2.CreateUserRequest(
                organization=org.organization_id, username=name, password=PASSWORD, role=role,
            ), metadata=MASTER)
            key = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
                organization=org.organization_id, user_id=user.user_id, name=name,
            ), metadata=MASTER)
            return Person(user.user_id, name, key.key)

        return Tenant(
            org,
            await person("admin", admin_pb2.ROLE_ADMIN),
            await person("member", admin_pb2.ROLE_MEMBER),
            await person("other", admin_pb2.ROLE_MEMBER),
        )

    return make


class LoopbackServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test runner keeps its own signal handlers
        yield


@contextlib.asynccontextmanager
async def serve_gateway(server: MeteringServer, limits: HttpLimits | None = None) -> AsyncIterator[str]:
    """The gateway served as `python -m gateway` serves it (uvicorn, GuardedConfig) on an ephemeral
    loopback port in front of the test gRPC server; yields its base URL."""
    config = GuardedConfig(create_app(f"127.0.0.1:{server.port}"), limits=limits or HttpLimits(), host="127.0.0.1",
                           port=0, log_config=None, access_log=False, lifespan="on")
    srv = LoopbackServer(config)
    task = asyncio.create_task(srv.serve())
    while not srv.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    port = srv.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        await task


@pytest.fixture(scope="module")
async def live_gateway(server: MeteringServer) -> AsyncIterator[str]:
    """The gateway's base URL over real HTTP, for clients that need a real server (the official openai
    SDK, urllib) and for socket behaviour (keep-alive, slow clients)."""
    async with serve_gateway(server) as url:
        yield url
