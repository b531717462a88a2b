"""Postgres unreachable: a Check answers by each budget's on_unavailable policy from what
the server knew, marked degraded; with nothing known, it fails open and says so.

The server reaches Postgres through a TCP relay of the test's own; cutting the relay (its
listener closed, its connections dropped) is what a network partition looks like to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest

from metering.v1 import admin_pb2, admin_pb2_grpc, budgets_pb2, budgets_pb2_grpc
from server.runtime.app import MeteringServer
from tests.conftest import MASTER_KEY
from tests.server.budgets.conftest import by_id


class Relay:
    """Forwards TCP connections from a local port to Postgres until cut."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.stalled = False  # connections stay open but carry nothing (packets lost)

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    if self.stalled:
                        continue
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await self.server.wait_closed()
        self.writers.clear()


@pytest.fixture
async def relayed(database_url: str) -> AsyncIterator[tuple[MeteringServer, Relay]]:
    parts = urlsplit(database_url)
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = await relay.start()
    netloc = f"{parts.username}@127.0.0.1:{port}" if parts.username else f"127.0.0.1:{port}"
    server = MeteringServer(urlunsplit(parts._replace(netloc=netloc)), "127.0.0.1:0", MASTER_KEY)
    await server.start()
    yield server, relay
    await relay.cut()  # what the server still holds fails at once: its pool closes
    await server.stop(grace=1)


async def test_unreachable_postgres_answers_by_each_budgets_policy(new_team, relayed):
    team, stranger = await new_team(), await new_team()
    server, relay = relayed
    open_ = await team.create(limit="10", mode=budgets_pb2.BUDGET_MODE_ENFORCE)
    closed = await team.create(limit="10", mode=budgets_pb2.BUDGET_MODE_ENFORCE,
                               on_unavailable=budgets_pb2.UNAVAILABLE_POLICY_FAIL_CLOSED)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = budgets_pb2_grpc.BudgetServiceStub(channel)
        # both callers authenticate now (keys are cached a few seconds); only `team`'s budgets are read
        healthy = await stub.Check(budgets_pb2.CheckRequest(estimated_cost="1"), metadata=team.admin)
        assert healthy.allowed and not healthy.degraded and len(healthy.budgets) == 2
        await admin_pb2_grpc.AdminServiceStub(channel).WhoAmI(admin_pb2.WhoAmIRequest(), metadata=stranger.admin)
        await stranger.create(limit="0", mode=budgets_pb2.BUDGET_MODE_ENFORCE)  # through the session's server

        await relay.cut()
        reply = await stub.Check(budgets_pb2.CheckRequest(estimated_cost="1", reserve=True), metadata=team.admin)
        assert reply.degraded and not reply.allowed and not reply.reservation_id
        states = by_id(reply)
        assert (states[open_.budget_id].allowed, states[open_.budget_id].reason) == (True, "DATABASE_UNAVAILABLE")
        assert (states[closed.budget_id].allowed, states[closed.budget_id].reason) == (False, "DATABASE_UNAVAILABLE")
        assert not states[open_.budget_id].used and states[open_.budget_id].limit == "10"
        assert "on_unavailable" in reply.degraded_reason

        # this server never read the stranger's budgets (its zero limit would deny): fail open, said so
        blind = await stub.Check(budgets_pb2.CheckRequest(estimated_cost="1"), metadata=stranger.admin)
        assert blind.degraded and blind.allowed and not blind.budgets
        assert "fail open" in blind.degraded_reason


async def test_a_postgres_that_stops_answering_gives_a_degraded_answer_before_the_deadline(new_team, relayed):
    team = await new_team()
    server, relay = relayed
    budget = await team.create(limit="10", mode=budgets_pb2.BUDGET_MODE_ENFORCE,
                               on_unavailable=budgets_pb2.UNAVAILABLE_POLICY_FAIL_CLOSED)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = budgets_pb2_grpc.BudgetServiceStub(channel)
        assert (await stub.Check(budgets_pb2.CheckRequest(), metadata=team.admin)).allowed
        relay.stalled = True  # the connections the server holds go silent
        reply = await stub.Check(budgets_pb2.CheckRequest(), metadata=team.admin, timeout=2)
        # answered within 80% of the caller's 2 s
        assert reply.degraded and not reply.allowed
        assert reply.degraded_reason.startswith("DATABASE_UNAVAILABLE (no answer within 1.")
        assert by_id(reply)[budget.budget_id].reason == "DATABASE_UNAVAILABLE"
