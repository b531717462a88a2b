"""Checks of one budget are serialized in Postgres across server processes: concurrent
reservations spread over two servers on the same database never admit more than the
limit, and their settlement leaves exactly the events' usage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from metering.v1 import budgets_pb2, budgets_pb2_grpc, event_pb2, ingest_pb2, ingest_pb2_grpc
from server.runtime.app import MeteringServer
from tests.conftest import MASTER_KEY
from tests.server.budgets.conftest import by_id


@pytest.fixture(scope="module")
async def second_server(database_url: str, server: MeteringServer) -> AsyncIterator[MeteringServer]:
    """Another server process on the same database (its own pool, caches and port)."""
    other = MeteringServer(database_url, "127.0.0.1:0", MASTER_KEY)
    await other.start()
    yield other
    await other.stop(grace=1)


@pytest.fixture(scope="module")
async def two_channels(server: MeteringServer, second_server: MeteringServer) -> AsyncIterator[
        list[grpc.aio.Channel]]:
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") for s in (server, second_server)]
    yield channels
    for channel in channels:
        await channel.close()


HELD = """select (select coalesce(sum(amount), 0) from budget_held where budget_id = $1),
                  (select coalesce(sum(amount), 0) from budget_holds where budget_id = $1)"""


async def test_200_reservations_over_two_servers_admit_exactly_the_limit(new_team, two_channels, db):
    team = await new_team()
    budget = await team.create(limit="50", mode=budgets_pb2.BUDGET_MODE_ENFORCE)
    stubs = [budgets_pb2_grpc.BudgetServiceStub(c) for c in two_channels]
    # both servers know the budget before the race, so neither reloads it mid-way
    for stub in stubs:
        await stub.Check(budgets_pb2.CheckRequest(), metadata=team.admin)

    async def reserve(i: int) -> budgets_pb2.CheckResponse:
        request = budgets_pb2.CheckRequest(estimated_cost="1", reserve=True, request_id=f"race-{i}")
        reply: budgets_pb2.CheckResponse = await stubs[i % 2].Check(request, metadata=team.admin, timeout=60)
        return reply

    replies = await asyncio.gather(*(reserve(i) for i in range(200)))
    allowed = [r for r in replies if r.allowed]
    assert len(allowed) == 50
    assert all(r.reservation_id for r in allowed) and not any(r.reservation_id for r in replies if not r.allowed)
    full = by_id(await team.check())[budget.budget_id]
    assert (full.used, full.reserved, full.remaining, full.allowed) == ("50", "50", "0", False)
    assert tuple(await db.fetchrow(HELD, budget.budget_id)) == (50, 50)  # the sums by second match the holds

    # each reservation settles with an event of $0.50, half of them through each server
    ingest = [ingest_pb2_grpc.IngestServiceStub(c) for c in two_channels]
    await asyncio.gather(*(
        ingest[i % 2].RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
            kind="completions", model="m", cost="0.50", reservation_id=r.reservation_id)), metadata=team.admin)
        for i, r in enumerate(allowed)))
    settled = by_id(await team.check())[budget.budget_id]
    assert (settled.used, settled.reserved, settled.remaining, settled.allowed) == ("25", "0", "25", True)
    assert tuple(await db.fetchrow(HELD, budget.budget_id)) == (0, 0)
