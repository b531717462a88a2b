"""A two-organization world for the security tests: organization A with two projects, an admin
user, two members and scoped keys, each with usage carrying unique markers; organization B with
its own admin key and usage; revoked, malformed and expired credentials."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from metering.v1 import admin_pb2, event_pb2, ingest_pb2, prices_pb2, prices_pb2_grpc
from server.tenants.credentials import random_text
from tests.conftest import MASTER, MASTER_KEY, Stubs, bearer

PASSWORD = "pw-" + random_text(20)


@dataclasses.dataclass
class World:
    org_a: str
    org_b: str
    keys: dict[str, str]  # principal name -> bearer secret ("" = none)
    users: dict[str, str]  # member/other/admin -> user_id
    usernames: dict[str, str]
    events: dict[str, str]  # name -> event_id (in A unless named b_*)
    markers: dict[str, str]  # name -> a string only that event carries (request id / model)
    price_version: str
    passwords: list[str]

    def metadata(self, principal: str) -> tuple[tuple[str, str], ...]:
        secret = self.keys[principal]
        if principal == "master":
            return (*bearer(secret), ("x-metering-organization", self.org_a))
        if principal == "no_key":
            return ()
        if principal == "malformed":
            return (("authorization", secret),)
        return bearer(secret)


PRINCIPALS = ["master", "org_admin", "member", "project_key", "other_org", "revoked", "no_key", "malformed",
              "expired"]


async def _event(stubs: Stubs, key: str, name: str, **fields: Any) -> tuple[str, str]:
    marker = f"{name}-{random_text(12)}"
    reply = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
        request_id=f"rid-{marker}", kind="completions", model=f"model-{marker}", input_tokens=10, output_tokens=5,
        client_id=f"client-{marker}", labels={"marker": marker}, **fields,
    )), metadata=bearer(key))
    return reply.event_id, marker


@pytest.fixture(scope="session")
async def world(stubs: Stubs, channel: grpc.aio.Channel) -> World:
    admin = stubs.admin
    a = await admin.CreateOrganization(admin_pb2.CreateOrganizationRequest(name="iso-a-" + random_text(8)),
                                       metadata=MASTER)
    b = await admin.CreateOrganization(admin_pb2.CreateOrganizationRequest(name="iso-b-" + random_text(8)),
                                       metadata=MASTER)
    for p in ("pa", "pb"):
        await admin.CreateProject(admin_pb2.CreateProjectRequest(organization=a.organization_id, name=p,
                                                                 project_id=p), metadata=MASTER)
    users, usernames = {}, {}
    for name, role in (("admin", admin_pb2.ROLE_ADMIN), ("member", admin_pb2.ROLE_MEMBER),
                       ("other", admin_pb2.ROLE_MEMBER)):
        usernames[name] = f"iso-{name}-{random_text(8).lower()}"
        u = await admin.CreateUser(admin_pb2.CreateUserRequest(
            organization=a.organization_id, username=usernames[name], password=PASSWORD, role=role),
            metadata=MASTER)
        users[name] = u.user_id

    async def key(org: str, **kw: str) -> str:
        return (await admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(organization=org, **kw),
                                         metadata=MASTER)).key

    keys = {
        "master": MASTER_KEY,
        "org_admin": await key(a.organization_id, name="admin"),
        "member": await key(a.organization_id, user_id=users["member"]),
        "other_member": await key(a.organization_id, user_id=users["other"]),
        "project_key": await key(a.organization_id, project_id="pa"),
        "project_b_key": await key(a.organization_id, project_id="pb"),
        "other_org": await key(b.organization_id, name="b-admin"),
    }
    revoked = await admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(organization=a.organization_id),
                                       metadata=MASTER)
    await admin.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(organization=a.organization_id,
                                                           api_key_id=revoked.api_key.api_key_id), metadata=MASTER)
    keys["revoked"] = revoked.key
    keys["no_key"] = ""
    keys["malformed"] = "Bearer mk_garbage_" + random_text(5) + " extra"
    short = await admin.Login(admin_pb2.LoginRequest(username=usernames["admin"], password=PASSWORD, ttl_seconds=1))
    keys["expired"] = short.token

    events, markers = {}, {}
    for name, k, fields in (
        ("member_pa", keys["member"], {"project_id": "pa"}),
        ("other_pb", keys["other_member"], {"project_id": "pb"}),
        ("admin_pa", keys["org_admin"], {"project_id": "pa"}),
        ("b_event", keys["other_org"], {}),
    ):
        events[name], markers[name] = await _event(stubs, k, name, **fields)
    prices = prices_pb2_grpc.PriceServiceStub(channel)
    created = await prices.CreatePriceVersions(prices_pb2.CreatePriceVersionsRequest(
        organization=a.organization_id, versions=[prices_pb2.NewPriceVersion(
            model="iso-model-" + random_text(6), prices=[prices_pb2.Price(usage_type="input", unit_price="0.001")],
            effective_from=timestamp_pb2.Timestamp(seconds=946684800))]), metadata=MASTER)
    await asyncio.sleep(max(0.0, short.expire_time.seconds + 1.05 - dt.datetime.now(dt.UTC).timestamp()))
    return World(a.organization_id, b.organization_id, keys, users, usernames, events, markers,
                 created.results[0].version.version, [PASSWORD])
