"""The critical section of a Check (metering_budget_check) and the restart that keeps the
usage and the holds of one moment: shown step by step on real Postgres connections."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
from typing import Any

import asyncpg

from metering.v1 import budgets_pb2
from server.core.principal import Principal
from server.query.engine import QueryEngine, UsageResult
from server.query.spec import UsageSpec
from server.storage.db import q
from server.tenants.credentials import random_text

NOW = dt.datetime.now(dt.UTC)
D = decimal.Decimal


async def _org(db: asyncpg.Pool, organization_id: str) -> Principal:
    org_id = await db.fetchval("select org_id from organizations where id = $1", organization_id)
    return Principal(org_id=org_id, organization_id=organization_id, role="admin")


def _reserve(org_id: int, budget_id: str, seq: int, headroom: str, amount: str,
             revision: int | None = None) -> tuple[Any, ...]:
    """budget_reserve's arguments: one item of one enforced budget, reserving `amount` if the
    holds fit `headroom`."""
    return ([org_id], [NOW], [revision], ["res_" + random_text(16)], [None], [NOW + dt.timedelta(minutes=5)],
            [None], [None], [1], [budget_id], [seq], [D(headroom)], [False], [True], [False], [D(amount)])


async def _waiting_for_a_lock(db: asyncpg.Pool, pid: int) -> None:
    for _ in range(500):
        if await db.fetchval("select wait_event_type = 'Lock' from pg_stat_activity where pid = $1", pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second check never waited for the budget's lock")


async def test_a_second_check_waits_for_the_first_and_sees_its_hold(new_team, db, database_url):
    team = await new_team()
    budget = await team.create(limit="1", mode=budgets_pb2.BUDGET_MODE_ENFORCE)
    org = await _org(db, team.org.organization_id)
    first, second = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        async with first.transaction():
            [row] = await first.fetch(q("budget_reserve"), *_reserve(org.org_id, budget.budget_id, 0, "0.4", "0.6"))
            assert (row["outcome"], row["held"], row["admits"]) == ("reserved", [D("0.6")], [True])
            # the first check's transaction is still open: the second blocks on the budget's row
            pending = asyncio.create_task(second.fetch(
                q("budget_reserve"), *_reserve(org.org_id, budget.budget_id, 0, "0.4", "0.6")))
            await _waiting_for_a_lock(db, second.get_server_pid())
            assert not pending.done()
        [row] = await pending
        # 0.6 held does not fit the headroom of 0.4 (limit 1 - usage 0 - estimate 0.6)
        assert (row["outcome"], row["held"], row["fits"], row["admits"]) == ("checked", [D("0.6")], [False], [False])
    finally:
        await first.close()
        await second.close()


async def test_a_settlement_or_a_budget_change_since_the_usage_was_read_sends_the_check_back(new_team, db):
    team = await new_team()
    budget = await team.create(limit="1", mode=budgets_pb2.BUDGET_MODE_ENFORCE)
    org = await _org(db, team.org.organization_id)
    revision = await db.fetchval("select revision from budget_books where org_id = $1", org.org_id)
    [row] = await db.fetch(q("budget_reserve"), *_reserve(org.org_id, budget.budget_id, 1, "1", "0.1", revision))
    assert (row["outcome"], row["seqs"]) == ("stale", [0])  # the budget's settle_seq is 0, not 1
    [row] = await db.fetch(q("budget_reserve"), *_reserve(org.org_id, budget.budget_id, 0, "1", "0.1",
                                                          revision - 1))
    assert row["outcome"] == "changed"
    assert await db.fetchval("select count(*) from budget_holds where org_id = $1", org.org_id) == 0
    # a Check without a reservation verifies the same, in one snapshot and without locks
    read = [org.org_id, NOW, revision, [budget.budget_id], [1], [D(1)], [False], [True], [False]]
    assert (await db.fetchrow(q("budget_read"), *read))["outcome"] == "stale"
    read[4] = [0]
    assert (await db.fetchrow(q("budget_read"), *read))["outcome"] == "checked"
    read[2] = revision - 1
    assert (await db.fetchrow(q("budget_read"), *read))["outcome"] == "changed"


class SettlingEngine(QueryEngine):
    """The real engine; after its first read, a reservation settles (its event written by the
    real ingest path) before the Check reaches its critical section: the interleaving the
    settle_seq verification exists for."""

    def __init__(self, pool: asyncpg.Pool, settle: Any) -> None:
        super().__init__(pool)
        self.settle = settle
        self.reads = 0

    async def aggregate(self, principal: Principal, spec: UsageSpec, **kwargs: Any) -> UsageResult:
        result = await super().aggregate(principal, spec, **kwargs)
        self.reads += 1
        if self.reads == 1:
            await self.settle()
        return result


async def test_a_check_that_lost_a_race_to_a_settlement_reads_again(new_team, server, checkers, db):
    team = await new_team()
    await team.create(limit="1", mode=budgets_pb2.BUDGET_MODE_ENFORCE)
    taken = await team.check(estimated_cost="0.9", reserve=True)
    org = await _org(db, team.org.organization_id)

    async def settle() -> None:
        await team.record(cost="0.2", reservation_id=taken.reservation_id)

    engine = SettlingEngine(server.pool, settle)
    checker = checkers(engine)
    verdict = await checker.check(org, budgets_pb2.CheckRequest(estimated_cost="0.8", reserve=True))
    # read once before the settlement (usage 0, hold 0.9 gone by the lock: 0.8 would not fit
    # against 0.9 held, but would against nothing); sent back, read again: usage 0.2, no hold
    assert engine.reads == 2
    [state] = verdict.states
    assert verdict.allowed and (state.used, state.reserved) == (D("1.0"), D("0.8"))


class CountingEngine(QueryEngine):
    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.reads = 0

    async def aggregate(self, principal: Principal, spec: UsageSpec, **kwargs: Any) -> UsageResult:
        self.reads += 1
        return await super().aggregate(principal, spec, **kwargs)

    async def etags(self, principal: Principal, spec: UsageSpec) -> list[str]:
        """A reading too: of a period read settled before (server/budgets/usage.py, Settled)."""
        self.reads += 1
        return await super().etags(principal, spec)


async def test_the_settle_seq_a_process_remembers_is_verified_like_one_just_read(new_team, server, checkers, db):
    """A Check takes the settle_seq the last critical section of its process saw (no extra
    round trip); a settlement since then sends it back once, and the answer is exact."""
    team = await new_team()
    await team.create(limit="1", mode=budgets_pb2.BUDGET_MODE_ENFORCE)
    org = await _org(db, team.org.organization_id)
    engine = CountingEngine(server.pool)
    checker = checkers(engine)
    taken = await checker.check(org, budgets_pb2.CheckRequest(estimated_cost="0.9", reserve=True))
    await checker.check(org, budgets_pb2.CheckRequest())
    assert engine.reads == 2  # nothing settled: each Check read the usage once
    await team.record(cost="0.3", reservation_id=taken.reservation_id)
    verdict = await checker.check(org, budgets_pb2.CheckRequest(estimated_cost="0.7", reserve=True))
    # the period's etag had changed (an event), so the usage was aggregated; then the remembered
    # settle_seq had moved: read again
    assert engine.reads == 5
    [state] = verdict.states
    assert verdict.allowed and (state.used, state.reserved) == (D("1.0"), D("0.7"))
