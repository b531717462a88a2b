"""Budgets on the session's real server: a stub, and an organization with an admin key,
two members with keys bound to their users, and helpers to create budgets and record
usage."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from metering.v1 import admin_pb2, budgets_pb2, budgets_pb2_grpc, event_pb2, ingest_pb2, query_pb2
from server.budgets.book import Books
from server.budgets.check import Checker
from server.query.engine import QueryEngine
from server.runtime.app import MeteringServer
from server.tenants.credentials import random_text
from tests.conftest import MASTER, Org, Stubs, bearer

Metadata = tuple[tuple[str, str], ...]


@pytest.fixture(scope="session")
def budgets(channel: grpc.aio.Channel) -> budgets_pb2_grpc.BudgetServiceStub:
    return budgets_pb2_grpc.BudgetServiceStub(channel)


@dataclasses.dataclass
class Team:
    org: Org
    member_user: str
    member: Metadata  # a member's key, bound to its user
    other_user: str
    other: Metadata  # another member of the same organization
    stubs: Stubs
    budgets: budgets_pb2_grpc.BudgetServiceStub

    @property
    def admin(self) -> Metadata:
        return self.org.auth

    async def create(self, *, auth: Metadata | None = None, **fields: Any) -> budgets_pb2.Budget:
        scope = fields.pop("scope", {})
        fields.setdefault("limit", "50")
        budget = budgets_pb2.Budget(scope=[query_pb2.Filter(field=f, values=v if isinstance(v, list) else [v])
                                           for f, v in scope.items()], **fields)
        return await self.budgets.CreateBudget(budgets_pb2.CreateBudgetRequest(budget=budget),
                                               metadata=auth or self.admin)

    async def check(self, *, auth: Metadata | None = None, **fields: Any) -> budgets_pb2.CheckResponse:
        return await self.budgets.Check(budgets_pb2.CheckRequest(**fields), metadata=auth or self.admin)

    async def record(self, *, auth: Metadata | None = None, **fields: Any) -> str:
        fields.setdefault("kind", "completions")
        fields.setdefault("model", "m")
        reply = await self.stubs.ingest.RecordEvent(
            ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(**fields)), metadata=auth or self.admin)
        assert reply.outcome == ingest_pb2.OUTCOME_RECORDED
        return reply.event_id


@pytest.fixture
def new_team(stubs: Stubs, new_org: Callable[[], Awaitable[Org]],
             budgets: budgets_pb2_grpc.BudgetServiceStub) -> Callable[[], Awaitable[Team]]:
    async def make() -> Team:
        org = await new_org()
        people = []
        for name in ("member", "other"):
            user = await stubs.admin.CreateUser(admin_pb2.CreateUserRequest(
                organization=org.organization_id, username=f"{name}-{random_text(10).lower()}",
                password="pw-" + random_text(16), role=admin_pb2.ROLE_MEMBER), metadata=MASTER)
            key = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
                organization=org.organization_id, user_id=user.user_id), metadata=MASTER)
            people.append((user.user_id, bearer(key.key)))
        return Team(org, *people[0], *people[1], stubs, budgets)

    return make


def by_id(response: budgets_pb2.CheckResponse) -> dict[str, budgets_pb2.BudgetState]:
    return {s.budget_id: s for s in response.budgets}


MakeChecker = Callable[..., Checker]


@pytest.fixture
async def checkers(server: MeteringServer) -> AsyncIterator[MakeChecker]:
    """Factory of Checkers on the session server's pool (a clock or an engine of the test's
    choosing), closed after the test."""
    made: list[Checker] = []

    def make(engine: QueryEngine | None = None, clock: Callable[[], dt.datetime] | None = None) -> Checker:
        assert server.pool is not None
        checker = Checker(server.pool, engine or QueryEngine(server.pool), Books(server.pool))
        if clock is not None:
            checker.clock = clock
        made.append(checker)
        return checker

    yield make
    for checker in made:
        await checker.close()
