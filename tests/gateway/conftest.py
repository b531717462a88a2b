"""Tenants for the gateway tests: an organization with an admin user and two members,
each with an API key bound to the user."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import pytest

from metering.v1 import admin_pb2
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


@pytest.fixture
def new_tenant(stubs: Stubs, new_org: Callable[[], Awaitable[Org]]) -> Callable[[], Awaitable[Tenant]]:
    async def make() -> Tenant:
        org = await new_org()

        async def person(prefix: str, role: int) -> Person:
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
